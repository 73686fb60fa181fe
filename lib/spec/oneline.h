/* spec/oneline: the one-line probe form of `diagnosed -e`, for the first minutes of an
 * incident (README "Use it"):
 *
 *     TYPE[,KEY[=VAL]...] TARGET[@call|@return|@end] [VALUE...] [if CONDITION...]
 *
 * e.g. `log handle_request req->path`, `hist handle_request@return elapsed`,
 * `incr,by_value handle_request req->method if req->len > 4096`. KEY alone is true, VAL a
 * number if it reads as one, else a string (the instrument's custom settings). Turns the line
 * into the spec JSON the rest of the daemon checks (so every field error is the spec's own).
 * Pure: never touches a process or a file. */
#ifndef DIAG_SPEC_ONELINE_H
#define DIAG_SPEC_ONELINE_H

#include <cjson/cJSON.h>

#include "util/error.h"

#define DIAG_ONELINE_MAX 4096

/* Parse line into a spec object with id `id`, the instrument named after the target (and its
 * event when not call: "handle@return"). Returns 0 and *out
 * (the caller deletes it), or -DIAG_E_PARSE / -DIAG_E_LIMIT / -ENOMEM with err naming the
 * part ("-e 'hist': a TARGET must follow the type"). */
int diag_spec_oneline(const char *line, const char *id, cJSON **out, struct diag_error *err);

#endif
