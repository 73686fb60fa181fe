/* indexer/wire: the framing and encoding of the daemon <-> diagnose-indexer protocol (a stream
 * socketpair): each message is a u32 little-endian length then that many bytes; file
 * descriptors ride on the first byte (SCM_RIGHTS). Values are fixed-width little-endian
 * integers and length-prefixed strings. The reader is bounds-checked everywhere: a peer that
 * lies about a length gets a failed read, never an overrun. Owns no state beyond a buffer. */
#ifndef DIAG_INDEXER_WIRE_H
#define DIAG_INDEXER_WIRE_H

#include "util/clock.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DIAG_IX_MAX_MSG (128u << 20) /* a reply larger than this is refused */
#define DIAG_IX_MAX_REQ (64u << 10)  /* requests are small */
#define DIAG_IX_MAX_FDS 8
#define DIAG_IX_MAX_STR 4096         /* names, paths, messages */

enum diag_ix_op {
	DIAG_IX_HELLO = 1,   /* worker -> daemon once its sandbox is up */
	DIAG_IX_OPEN,        /* u32 file, str name, str build_id; fds: the file, then debug files */
	DIAG_IX_CLOSE,       /* u32 file */
	DIAG_IX_SCOPE,       /* u32 file, u64 pc */
	DIAG_IX_GLOBAL,      /* u32 file, str name */
	DIAG_IX_ENUM,        /* u32 file, str name */
	DIAG_IX_TYPE,        /* u32 file, str spelling */
	DIAG_IX_INLINES,     /* u32 file */
	DIAG_IX_LINES,       /* u32 file, str file, u32 line */
	DIAG_IX_SYMS,        /* fd: an ELF file */
	DIAG_IX_TEST_OPEN,   /* str path: the worker calls open(2) (proves the sandbox kills it) */
	DIAG_IX_OP_MAX
};

/* Status of an OPEN whose file has no DWARF of its own: the reply carries the build-id and
 * .gnu_debuglink the daemon may look for (hostile strings). */
#define DIAG_IX_NEED_DEBUG 1

struct diag_ix_buf {
	uint8_t *p;
	size_t len, cap;
	bool oom;
};

void diag_ix_put_u8(struct diag_ix_buf *b, uint8_t v);
void diag_ix_put_u32(struct diag_ix_buf *b, uint32_t v);
void diag_ix_put_u64(struct diag_ix_buf *b, uint64_t v);
void diag_ix_put_str(struct diag_ix_buf *b, const char *s); /* NULL: length 0xffffffff */
void diag_ix_put_bytes(struct diag_ix_buf *b, const void *p, size_t n); /* u32 length + bytes */
void diag_ix_put_raw(struct diag_ix_buf *b, const void *p, size_t n);   /* bytes only */
void diag_ix_buf_release(struct diag_ix_buf *b);

struct diag_ix_rd {
	const uint8_t *p;
	size_t len, off;
	bool bad; /* sticky: a read past the end or an invalid string */
};

uint8_t diag_ix_get_u8(struct diag_ix_rd *r);
uint32_t diag_ix_get_u32(struct diag_ix_rd *r);
uint64_t diag_ix_get_u64(struct diag_ix_rd *r);
/* A string of at most max bytes without NUL into a malloc'd copy (*out NULL for a NULL string
 * when nullable). false (r->bad set) when malformed or out of memory. */
bool diag_ix_get_str(struct diag_ix_rd *r, size_t max, bool nullable, char **out);
/* Bytes (u32 length + bytes, at most max): a pointer into the message, or NULL when bad. */
const uint8_t *diag_ix_get_bytes(struct diag_ix_rd *r, size_t max, size_t *n);
/* The same into buf[cap] (truncation is malformed). */
bool diag_ix_get_strbuf(struct diag_ix_rd *r, char *buf, size_t cap);

/* Sends one message (with fds). Returns 0 or -errno; never blocks past deadline_ms
 * (CLOCK_MONOTONIC ms; 0 = no deadline): -ETIMEDOUT. */
int diag_ix_send(int sock, const struct diag_ix_buf *b, const int *fds, size_t nfds,
		 int64_t deadline_ms);
/* Receives one message of at most max bytes into *out (malloc'd) and up to DIAG_IX_MAX_FDS fds
 * (*nfds; extra or truncated fds are closed and fail the read). Returns 0, -EPIPE at end of
 * stream, -EMSGSIZE, -ETIMEDOUT, -EPROTO, -errno. */
int diag_ix_recv(int sock, size_t max, uint8_t **out, size_t *len, int *fds, size_t *nfds,
		 int64_t deadline_ms);

#endif
