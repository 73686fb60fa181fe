/* indexer: the daemon's side of diagnose-indexer, the unprivileged, sandboxed worker that
 * parses target-supplied ELF and DWARF files (lib/sym's symbol tables, lib/dwarf's indexes)
 * so that the root daemon never does. The daemon opens the files and passes descriptors; each
 * request has a deadline; a worker that crashes, is killed or times out is reaped, the
 * request fails with a precise message, and the next request starts a new worker. Replies are
 * hostile input: every decoder validates counts, lengths and references.
 * Not thread-safe: one owner (the daemon's main loop) calls it. */
#ifndef DIAG_INDEXER_INDEXER_H
#define DIAG_INDEXER_INDEXER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "indexer/wire.h"
#include "util/error.h"

#define DIAG_INDEXER_TIMEOUT_MS 10000
#define DIAG_INDEXER_UID 65534 /* nobody */

struct diag_indexer_opts {
	const char *exe;       /* NULL: $DIAG_INDEXER, else diagnose-indexer beside /proc/self/exe */
	uid_t uid;             /* the worker's uid and gid when started as root (0: nobody) */
	gid_t gid;
	unsigned timeout_ms;   /* per request; 0: DIAG_INDEXER_TIMEOUT_MS */
};

struct diag_indexer;

/* Nothing is started before the first request. opts may be NULL. 0 or -ENOMEM. */
int diag_indexer_new(const struct diag_indexer_opts *opts, struct diag_indexer **out);
/* Stops the worker (SIGKILL, reaped). Accepts NULL. */
void diag_indexer_free(struct diag_indexer *ix);

/* The running worker's pid, or 0. */
pid_t diag_indexer_pid(const struct diag_indexer *ix);
/* Incremented at each worker start: state the worker held (open files) is gone when it
 * changed. */
unsigned diag_indexer_generation(const struct diag_indexer *ix);
/* A new file id for OPEN requests (unique for ix's life). */
uint32_t diag_indexer_file_id(struct diag_indexer *ix);
/* Starts the worker if none runs (or the one running has died). 0 or a negative code with the reason in err. */
int diag_indexer_start(struct diag_indexer *ix, struct diag_error *err);

struct diag_ix_reply {
	uint8_t *buf;
	struct diag_ix_rd rd; /* positioned after the status */
	int status;           /* >= 0 */
};
void diag_ix_reply_release(struct diag_ix_reply *r);

/* One request. key names the file (a request that killed the worker marks key: later calls
 * for it fail at once with the same message, without a new worker); what says what was being
 * done, for messages ("reading the DWARF of /x/lib.so"). Returns the reply's status (>= 0)
 * with *rep filled, or a negative code with err set: the worker's own error (its message
 * sanitized), or "the indexer crashed (SIGSEGV) reading ...", "... timed out after 10 s",
 * "... sent a malformed reply". */
int diag_indexer_call(struct diag_indexer *ix, const char *key, const char *what,
		      const struct diag_ix_buf *req, const int *fds, size_t nfds,
		      struct diag_ix_reply *rep, struct diag_error *err);

/* Marks a reply as malformed: fails the call's key like a crash (the worker may be
 * compromised: it is restarted). Returns the error code set in err. */
int diag_indexer_bad_reply(struct diag_indexer *ix, const char *key, const char *what,
			   const char *why, struct diag_error *err);

#endif
