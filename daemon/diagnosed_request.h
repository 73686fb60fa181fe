/* diagnosed_request: one control-protocol line (docs/protocol.md) parsed into a command and
 * its checked arguments. Pure: it never consults the daemon's state (the manager, the socket),
 * so the control server's whole input surface can be fuzzed (tests/fuzz/fuzz_protocol.c).
 * May include lib/spec and lib/util only. */
#ifndef DMN_REQUEST_H
#define DMN_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "spec/spec.h"
#include "util/error.h"

enum dmn_cmd {
	DMN_CMD_ADD, DMN_CMD_REMOVE, DMN_CMD_LIST, DMN_CMD_STATS, DMN_CMD_TAIL,
	DMN_CMD_ATTACH, DMN_CMD_DETACH, DMN_CMD_STATUS, DMN_CMD_WAIT, DMN_CMD_SYMBOLS,
	DMN_CMD_VARS,
};
struct dmn_request {
	enum dmn_cmd cmd;
	bool has_id;
	char id[DIAG_SPEC_ID_MAX + 1];
	pid_t pid;               /* attach, detach, symbols, vars */
	char text[DIAG_SPEC_EXPR_MAX + 1]; /* symbols: glob ("" = all); vars: target */
	uint64_t hits;           /* wait */
	double timeout_s;        /* wait (default 60) */
	struct diag_spec *spec;  /* add; owned until taken (set to NULL) */
};
/* Parse one request line. Returns 0 with *out (release with dmn_request_fini), or a negative
 * code (-DIAG_E_PARSE, -DIAG_E_INVALID, -ENOMEM) with err holding the exact error reply, one
 * line ("id: no probe 'x'"; err->field names the request's field); *out is then untouched. */
int dmn_request_parse(const char *line, size_t len, struct dmn_request *out,
		      struct diag_error *err);
void dmn_request_fini(struct dmn_request *r);

#endif
