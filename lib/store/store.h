/* store: where specs live between daemon runs. The embedded default is one JSON file (an
 * array of specs with their `applied` records) replaced atomically: temp file in the same
 * directory, fsync, rename, fsync of the directory, so a crash at any moment leaves either the
 * old or the new file. A NULL path is an in-memory store (nothing persisted). Never interprets
 * specs beyond the codec in lib/spec. */
#ifndef DIAG_STORE_H
#define DIAG_STORE_H

#include <stddef.h>

#include "spec/spec.h"
#include "util/error.h"

struct diag_store;

/* path NULL: in-memory store. Returns 0 or -errno. */
int diag_store_open(const char *path, struct diag_store **out);
void diag_store_free(struct diag_store *st);
const char *diag_store_path(const struct diag_store *st); /* NULL when in memory */

/* Load every spec (with applied). A missing file is an empty store (returns 0). A corrupt file
 * is renamed to PATH.corrupt-<unix time> and -DIAG_E_PARSE returned with err naming the
 * reason and the new name; *specs is then empty. Returns the count or a negative code. */
int diag_store_load(struct diag_store *st, struct diag_spec ***specs, struct diag_error *err);

/* Replace the whole content atomically. Returns 0 or -errno with err naming the step. */
int diag_store_save(struct diag_store *st, struct diag_spec *const *specs, size_t n,
		    struct diag_error *err);

#endif
