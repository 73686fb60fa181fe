/* arch/safety: the SIGTRAP safety handler that keeps a target alive when the daemon dies with
 * breakpoint probes in place (docs/reliability.md, "Surviving the daemon's death"). The
 * arch-neutral interface, implemented by lib/arch/<arch>/safety.c. Owns building the handler blob
 * (code from the reviewed template, x86-64: safety_template.S, + its data area), the layout the
 * daemon needs to fill it, the sigaction to install, and a host-side mirror of the address table
 * that says which bytes to write where. Never reads or writes a process, never chooses where the
 * blob lives, never installs anything: the engine does that with remote syscalls.
 *
 * Blob: [code | data: table mask, previous action, SIG_DFL action, tombstones, table]. The
 * handler runs only when no tracer intercepts the SIGTRAP (a tracer sees every signal first), so
 * the daemon updates the data area while it is alive and may die between any two writes: each
 * write below leaves the data consistent on its own. */
#ifndef DIAG_ARCH_SAFETY_H
#define DIAG_ARCH_SAFETY_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define DIAG_SAFETY_TOMBS 64            /* tombstone ring: recently removed addresses */
#define DIAG_SAFETY_MAX_ENTRIES 65536   /* table buckets, a power of two */
#define DIAG_SAFETY_EMPTY 0             /* bucket addr: never used; ends a probe chain */
#define DIAG_SAFETY_DELETED 1           /* bucket addr: removed; the chain goes on */

/* The kernel's struct sigaction, as rt_sigaction(2) reads and writes it (sigsetsize 8; the
 * layout of x86-64 and of the generic Linux ABI). */
struct diag_ksigaction {
	uint64_t handler;          /* SIG_DFL 0, SIG_IGN 1, or the handler's address */
	uint64_t flags;            /* SA_* */
	uint64_t restorer;         /* with SA_RESTORER: the frame's return address */
	uint64_t mask;             /* blocked while the handler runs; bit (sig - 1) */
};

struct diag_safety_entry {         /* one table bucket, 16 bytes */
	uint64_t addr;             /* breakpoint address, or DIAG_SAFETY_EMPTY / DIAG_SAFETY_DELETED */
	uint64_t slot;             /* its out-of-line slot (self-contained: runs, jumps back) */
};

/* Runtime addresses inside one built blob. */
struct diag_safety_layout {
	uint64_t page_addr;        /* where the blob lives */
	size_t len;                /* blob bytes */
	uint64_t handler;          /* sa_handler (SA_SIGINFO) */
	uint64_t restorer;         /* rt_sigreturn stub, for SA_RESTORER */
	uint64_t old_action;       /* struct diag_ksigaction: the target's previous SIGTRAP action */
	uint64_t tombs;            /* uint64_t[DIAG_SAFETY_TOMBS] */
	uint64_t table;            /* struct diag_safety_entry[n_entries] */
	size_t n_entries;
};

/* Bytes of a blob with n_entries table buckets. */
size_t diag_safety_size(size_t n_entries);

/* Build the blob to live at runtime address page_addr (8-byte aligned) with n_entries table
 * buckets (a power of two, 2 .. DIAG_SAFETY_MAX_ENTRIES): code, table mask, previous action
 * SIG_DFL (overwrite it with the real one, see diag_safety_action), no tombstone, empty table.
 * Writes *len = diag_safety_size(n_entries) bytes to out and the layout. Returns 0, -EINVAL
 * naming the bad argument, or -ENOSPC when cap < *len. Outputs are written only on success. */
int diag_safety_build(uint64_t page_addr, size_t n_entries, uint8_t *out, size_t cap, size_t *len,
		      struct diag_safety_layout *layout, struct diag_error *err);

/* The action to install for SIGTRAP, given the target's previous one: our handler with
 * SA_SIGINFO | SA_RESTORER, the previous mask and SA_ONSTACK / SA_NODEFER (a chained handler
 * runs as it was set up), and the previous restorer when the previous action is a handler with
 * SA_RESTORER (so a chained handler that blocks returns through the target's own code and never
 * pins our page), else our restorer. */
void diag_safety_action(const struct diag_safety_layout *l, const struct diag_ksigaction *old,
			struct diag_ksigaction *ours);

/* The same rule for any handler blob that chains (the SIGSEGV/SIGBUS guard, guard.h): handler
 * and restorer are the blob's runtime addresses. */
void diag_ksigaction_over(uint64_t handler, uint64_t restorer, const struct diag_ksigaction *old,
			  struct diag_ksigaction *ours);

/* The handler's hash: bucket where the probe chain for addr starts. */
size_t diag_safety_hash(uint64_t addr, size_t n_entries);

/* Host-side mirror of the target's table: the daemon changes the mirror, then writes the one
 * bucket the call names (diag_safety_bucket_addr). */
struct diag_safety_table {
	struct diag_safety_entry *e;
	size_t n;                  /* buckets, a power of two */
	size_t live;               /* addresses present */
};

/* Returns 0, -EINVAL on a bad size, -ENOMEM. */
int diag_safety_table_init(struct diag_safety_table *t, size_t n_entries);
void diag_safety_table_fini(struct diag_safety_table *t);

/* Put addr -> slot; *index is the bucket to write into the target, slot first, then addr
 * (an interrupted pair leaves a bucket with a slot and no address: harmless). Write it BEFORE
 * the breakpoint. Returns 0, -EEXIST if addr is present, -ENOSPC when 3/4 of the buckets are live,
 * -EINVAL for addr 0 or 1 or slot 0. */
int diag_safety_table_put(struct diag_safety_table *t, uint64_t addr, uint64_t slot,
			  size_t *index);

/* Remove addr; *index is the bucket whose addr to overwrite with DIAG_SAFETY_DELETED, AFTER the
 * original byte is back and addr is tombstoned. Returns 0 or -ENOENT. */
int diag_safety_table_del(struct diag_safety_table *t, uint64_t addr, size_t *index);

/* Runtime address of bucket index's addr field (its slot field is 8 bytes further). */
uint64_t diag_safety_bucket_addr(const struct diag_safety_layout *l, size_t index);

/* Runtime address of the tombstone to write for the seq-th removal (seq counts removals). */
uint64_t diag_safety_tomb_addr(const struct diag_safety_layout *l, uint64_t seq);

/* The handler code, for review and tests: the source it is assembled from, bytes and offsets
 * (the template's symbols). */
struct diag_safety_template {
	const char *source;        /* the reviewed template, relative to the source tree */
	const uint8_t *bytes;
	size_t len;                /* code bytes */
	size_t restorer;
	size_t data, d_mask, d_old, d_dfl, d_tombs, d_table;
	size_t n_tombs;
};
const struct diag_safety_template *diag_safety_template(void);

#endif
