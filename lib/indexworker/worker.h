/* indexworker: the worker's side of diagnose-indexer (daemon/diagnose_indexer.c is its main):
 * the sandbox it enters before reading anything, and the handler of each request, which parses
 * the target files the daemon passes it with lib/dwarf and lib/sym. Kept apart from
 * lib/indexer (the daemon's side: client and wire format), which lib/dwarf and lib/sym use, so
 * the folders do not include each other in a circle. Runs only inside the worker: never in
 * the daemon, never as root after the sandbox, never with a file it opened itself. */
#ifndef DIAG_INDEXWORKER_WORKER_H
#define DIAG_INDEXWORKER_WORKER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "indexer/wire.h"
#include "util/error.h"

/* Drops to uid/gid (when root), no new privileges, not dumpable, no capabilities, resource
 * limits, and the seccomp filter that allows only what parsing needs. 0 or -errno with err. */
int diag_indexer_sandbox(uid_t uid, gid_t gid, struct diag_error *err);
/* Serves requests on sock until the daemon closes it. Returns the exit status. */
int diag_indexer_serve(int sock);

/* One request handled in process (what the worker does with it; the fuzzer calls it too):
 * req[0..len) with fds (taken), reply appended to out. The state (open files) lives in *st. */
struct diag_ix_state;
int diag_ix_state_new(struct diag_ix_state **out);
void diag_ix_state_free(struct diag_ix_state *st);
void diag_ix_handle(struct diag_ix_state *st, const uint8_t *req, size_t len, int *fds,
		    size_t nfds, struct diag_ix_buf *out);

#endif
