/* ctl_conn: diagnosectl's side of the control socket (docs/protocol.md): connect, send one
 * JSON request per line, read reply lines. Owns the socket and its read buffer; never
 * interprets replies (that is diagnosectl.c's job). */
#ifndef DIAG_CTL_CONN_H
#define DIAG_CTL_CONN_H

#include <cjson/cJSON.h>

#include "util/error.h"

/* Replies longer than this are refused (the daemon's own request limit is 1 MiB; a list of
 * many specs may be longer, hence the larger bound). */
#define CTL_REPLY_MAX (64u << 20)

struct ctl_conn;

/* Connect to the daemon's socket at path. Returns 0 and *out, or -errno with err set to
 * "cannot connect to PATH: REASON (is diagnosed running?)". */
int diag_ctl_conn_open(const char *path, struct ctl_conn **out, struct diag_error *err);

/* Send req as one line. Returns 0 or -errno with err. */
int diag_ctl_conn_send(struct ctl_conn *c, const cJSON *req, struct diag_error *err);

/* Read one reply line (without its newline) into *line, valid until the next call. Waits at
 * most timeout_ms (< 0: forever). Returns 1 with a line, 0 at end of stream, or a negative code
 * with err (-ETIMEDOUT, -EPROTO for an over-long line, -errno). */
int diag_ctl_conn_recv(struct ctl_conn *c, const char **line, int timeout_ms, struct diag_error *err);

/* Close and free. Accepts NULL. */
void diag_ctl_conn_close(struct ctl_conn *c);

#endif
