/* engine: probes on live processes. Owns the traced processes (lib/ptrace), breakpoints and
 * out-of-line slots (lib/bp), symbol resolution (lib/sym) and value capture (lib/expr).
 * Single-threaded: every call must come from the thread that created the engine (ptrace
 * requests are only accepted from the tracing thread). Knows nothing of specs, stores or
 * plugins: a probe is identified by (pid, cookie), the cookie being the caller's. */
#ifndef DIAG_ENGINE_H
#define DIAG_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <diagnose/event.h>
#include "util/error.h"

struct diag_engine;

/* A probe fired. Delivered after the thread was resumed; pointers valid during the call. */
struct diag_engine_hit {
	void *cookie;
	pid_t pid;
	pid_t tid;
	uint64_t time_ns; /* CLOCK_REALTIME */
	enum diag_event_kind kind;
	/* value.text always set (kind NONE when the probe has no value), but when raw is set
	 * (diag_engine_defer_render): then value.text is NULL and the value is the raw_len bytes
	 * at raw, to be rendered later on any thread (diag_engine_value_render) */
	struct diag_value value;
	const void *raw;
	size_t raw_len;
	/* how many hits this one stands for: 1, or (a probe added with counts, counted in the
	 * target) the hits since the last drain, with no value, tid 0 and the drain's time */
	uint64_t count;
};

/* Deferred rendering: from now on hits of probes with a value carry the value's result
 * unrendered (hit.raw), so that the thread serving targets pays no rendering (snprintf and
 * friends were a fifth of its time per event at 2 M events/s). The raw bytes are valid
 * during the callback; copy them (8-aligned), diag_engine_value_hold the copy before another
 * thread can see it, render it there, then diag_engine_value_release it. A held value stays
 * renderable after its probe is removed; not after diag_engine_free (the types live in the
 * engine's DWARF cache): render or release what is held before. */
void diag_engine_defer_render(struct diag_engine *e, bool on);
void diag_engine_value_hold(const void *raw, size_t n); /* n holds at once */
/* Releases n held values that diag_engine_value_same says are alike raw (one atomic
 * operation for a batch). */
void diag_engine_value_release(const void *raw, size_t n);
/* Whether held values a and b release alike (their expression is the same). */
bool diag_engine_value_same(const void *a, const void *b);
/* The text (NUL-terminated, cut to cap) and value as an undeferred hit would carry them;
 * out's buf points into raw. */
void diag_engine_value_render(const void *raw, char *text, size_t cap, struct diag_value *out);

enum diag_probe_state {
	DIAG_PROBE_PENDING = 0, /* not installed yet (e.g. library not loaded) */
	DIAG_PROBE_APPLIED,
	DIAG_PROBE_REMOVED,     /* removed: bytes restored */
	DIAG_PROBE_ERROR,
};

enum diag_proc_event {
	DIAG_PROC_FORK,  /* `other` is the new child pid, already traced, probes cloned */
	DIAG_PROC_EXEC,  /* the process replaced its image; probes are resolved again */
	DIAG_PROC_EXIT,  /* the process is gone; its probes are dropped */
};

struct diag_engine_callbacks {
	void (*on_hit)(void *ctx, const struct diag_engine_hit *hit);
	/* A probe's state changed outside a direct call (after fork, exec, exit). */
	void (*on_probe_state)(void *ctx, pid_t pid, void *cookie, enum diag_probe_state st,
			       const char *error);
	void (*on_process)(void *ctx, pid_t pid, enum diag_proc_event what, pid_t other);
	void *ctx;
};

struct diag_probe_def {
	const char *target;    /* FUNC, MODULE:FUNC, FUNC+OFF, 0xADDR */
	const char *value;     /* value expression, NULL or "" for none */
	const char *condition; /* NULL or "" for always */
	enum diag_event_kind event;
	void *cookie;          /* the caller's identity for this probe; unique per pid */
	/* The owner takes counts (diag_engine_hit.count): a probe with no value and no
	 * condition is then counted in the target where it takes a jump, with no record per hit,
	 * and its hits are delivered as counts at each drain (exact at any rate) */
	bool counts;
};

#define DIAG_PROBE_MAX_SKIPS 4
#define DIAG_PROBE_MAX_ADDRS 64
/* Probes sharing one address at most: each one adds to the cost of every hit there. */
#define DIAG_PROBE_MAX_PER_ADDR 32

struct diag_probe_info {
	enum diag_probe_state state;
	uint64_t hits;      /* exact: every time a thread reached the probe (fast path: counted in
			     * the target, so hits lost to a full ring are included) */
	uint64_t events;    /* events delivered (condition true, not dropped)*/
	uint64_t filtered;  /* hits whose condition was false */
	uint64_t dropped;   /* fast-path hits of this process lost to a full ring (all its probes) */
	uint64_t stopped_ns;/* time threads spent stopped by this probe's int3 hits, summed over
			     * threads: from the wait reporting each stop to its CONT */
	bool fast;          /* every address uses the fast path (no stop per hit) */
	uint64_t pending;   /* return probes: frames entered and not returned yet */
	uint64_t lost_returns; /* return probes: entries whose return could not be watched */
	size_t naddrs;
	uint64_t addrs[DIAG_PROBE_MAX_ADDRS]; /* runtime addresses patched */
	struct {
		char what[96]; /* "function work", "inlined into main at a.c:12", "clone f.isra.0" */
		bool fast;     /* a jump (no stop per hit), else an int3 */
		char why[128]; /* an int3: why no jump ("int3: value: `stack` needs the thread
				* stopped", "int3: DIAG_NO_FASTPATH"); "" when not known */
		uint32_t record_bytes; /* a jump: ring bytes one hit's record takes (0: the
					* hit is only counted, or not known) */
	} inst[DIAG_PROBE_MAX_ADDRS];         /* parallel to addrs */
	size_t nskips;                        /* instances found but not patched (all of them) */
	struct {
		char what[160];
		char reason[128];
	} skips[DIAG_PROBE_MAX_SKIPS];        /* the first few */
	char error[DIAG_ERRMSG_MAX];
};

struct diag_engine_stats {
	size_t targets, threads, probes, breakpoints;
	size_t recovered;   /* patches of a dead predecessor taken out at attach (journal) */
	uint64_t hits;
	uint64_t dropped; /* fast-path hits lost to a full ring, since the engine started */
	uint64_t stopped_ns; /* time threads spent stopped by int3 hits, since it started */
	uint64_t drain_period_ns;  /* the drain timer's period now (it adapts to the rings' fill) */
	uint64_t drain_changes;    /* how often that period changed */
};

/* Returns 0 and *out, or -errno. */
int diag_engine_new(const struct diag_engine_callbacks *cb, struct diag_engine **out);
/* Removes every probe (original bytes restored), detaches every target. Accepts NULL. */
void diag_engine_free(struct diag_engine *e);

/* From now on ELF symbol tables and DWARF are read by the sandboxed indexer worker ix
 * (lib/indexer), never in this process; ix must outlive e. Call before the first probe or
 * query. Returns 0 or -ENOMEM. */
struct diag_indexer;
int diag_engine_use_indexer(struct diag_engine *e, struct diag_indexer *ix);

/* Bytes of the hit ring each target process maps for its jump probes (all its sub-rings
 * together), for rings mapped from now on; 0 restores the default (DIAG_ENGINE_RING_DEFAULT).
 * The engine splits it into up to 16 sub-rings of a power of two bytes each. A larger ring
 * absorbs longer bursts and longer daemon stalls without drops, at that much of the target's
 * memory (touched only as hits fill it). Returns 0, or -DIAG_E_INVALID with err
 * "ring size: N bytes: must be in [65536, 1073741824]". */
#define DIAG_ENGINE_RING_MIN (64u << 10)
#define DIAG_ENGINE_RING_MAX (1u << 30)
#define DIAG_ENGINE_RING_DEFAULT (16u << 20) /* 16 sub-rings of 1 MiB: 10.9 ms of one thread's
						* `log $arg1` at 500k calls/s (docs/performance.md) */
int diag_engine_set_ring_size(struct diag_engine *e, size_t bytes, struct diag_error *err);
/* Rings mapped from now on are shared with the daemon (a memfd both map: read in place, the
 * last records before an exec delivered) where the target allows it. Off by default: creating
 * one borrows a thread for 4 more remote syscalls, and a daemon killed inside one leaves that
 * thread with the call's registers (docs/reliability.md, known limits). */
void diag_engine_set_ring_shared(struct diag_engine *e, bool on);

/* A file descriptor that becomes readable when diag_engine_dispatch() has work (tracee
 * stops). Poll it, then call dispatch. */
int diag_engine_fd(const struct diag_engine *e);
/* Handle pending tracee events without blocking, for ~20 ms at most (the fd stays readable
 * when events remain). Returns 0 or -errno. */
int diag_engine_dispatch(struct diag_engine *e);

/* Trace every thread of pid (and its future threads and children). Idempotent. */
int diag_engine_attach(struct diag_engine *e, pid_t pid, struct diag_error *err);
/* Processes started after a probe (issue 11; docs/architecture.md, "Processes started after
 * the probe"). tid is a thread waiting at the exec gate (procwatch/execgate.h) and not traced
 * yet. The engine seizes it, calls allow(arg) exactly once (also when the seize fails, so an
 * exec never waits on the engine), and waits, bounded, for its PTRACE_EVENT_EXEC stop. On
 * success *pid is the process (its tgid after the exec) attached with the new image's modules
 * known, and it is HELD: not one instruction of the new image has run. The caller adds its
 * probes (diag_engine_probe_add) and then calls diag_engine_release; until then the process
 * stays stopped. An exec that fails, a thread killed meanwhile, or a process already traced
 * gives a negative code with err naming tid and the reason, and nothing stays traced. */
int diag_engine_adopt_exec(struct diag_engine *e, pid_t tid, int (*allow)(void *arg), void *arg,
			   pid_t *pid, struct diag_error *err);
/* The same at the open of a library (procwatch/libgate.h): tid is a thread whose open of a
 * shared library waits at the library gate, traced by this engine or not. The engine seizes
 * its process if needed (every thread, none stopped), queues an interrupt on tid, calls
 * allow(arg) exactly once (in every case), and waits, bounded by the kernel, for tid's stop:
 * it comes as the open returns, before the dynamic linker maps the file. On success *pid is
 * the process, HELD (tid stopped, the others running until a placement stops them); probes
 * on the library added now are pending and placed when it is mapped (the _dl_debug_state
 * watch), before its constructors and before dlopen returns or main runs. Then
 * diag_engine_release. Errors name tid and the reason; a process seized here and lost is not
 * left traced. */
int diag_engine_adopt_open(struct diag_engine *e, pid_t tid, int (*allow)(void *arg), void *arg,
			   pid_t *pid, struct diag_error *err);
/* Let a process held by diag_engine_adopt_exec or diag_engine_adopt_open run on. A process that is not held (or not
 * traced) is left alone; returns 0 or -errno. */
int diag_engine_release(struct diag_engine *e, pid_t pid);
/* Remove pid's probes, restore its bytes and detach; the process keeps running. */
int diag_engine_detach(struct diag_engine *e, pid_t pid, struct diag_error *err);
bool diag_engine_attached(const struct diag_engine *e, pid_t pid);
/* How pid's jump probes hand their hits over: "shared" (a ring the daemon maps too: read in
 * place, delivered up to an exec), "private" (the target refused the memfd: read with
 * process_vm_readv, the last records before an exec lost), "none" (no jump probe yet). */
const char *diag_engine_ring_kind(const struct diag_engine *e, pid_t pid);
/* One sub-ring of pid's ring as the last drain found it: the threads known to write it (by the
 * thread table, else the hash of their thread pointer) and the hits it dropped when full. */
#define DIAG_ENGINE_RING_SUBS_MAX 64 /* sub-rings of a ring at most (arch/ring.h) */
struct diag_engine_ring_sub {
	unsigned sub, threads;
	uint64_t dropped;
};
/* The sub-rings of pid that have a thread or a drop, up to cap; returns the count (0 without a
 * ring). Two busy threads on one sub-ring share its room: where drops come from. */
size_t diag_engine_ring_subs(const struct diag_engine *e, pid_t pid,
			     struct diag_engine_ring_sub *out, size_t cap);
/* The pids currently traced, up to cap; returns the count. */
size_t diag_engine_pids(const struct diag_engine *e, pid_t *pids, size_t cap);

/* Resolve, compile and install a probe in pid (which must be attached). On error nothing in
 * the target changed and err names the reason (no such symbol, expression error, instruction
 * that cannot be relocated...). Adding a cookie that exists replaces that probe. */
int diag_engine_probe_add(struct diag_engine *e, pid_t pid, const struct diag_probe_def *def,
			  struct diag_error *err);
/* Remove and restore bytes. Returns 0, or -ENOENT if no such probe. */
int diag_engine_probe_remove(struct diag_engine *e, pid_t pid, void *cookie);
int diag_engine_probe_info(const struct diag_engine *e, pid_t pid, void *cookie,
			   struct diag_probe_info *out);

void diag_engine_get_stats(const struct diag_engine *e, struct diag_engine_stats *out);

/* Introspection (introspect.c), for `diagnosectl symbols` and `vars`. Both read only /proc and
 * ELF/DWARF files: pid need not be attached (no ptrace, the process is never stopped). */

#define DIAG_ENGINE_SYMBOLS_MAX 10000 /* functions listed per call at most */

struct diag_expr_var_info; /* expr/expr.h */

/* Calls cb for each function of pid that can be probed (defined ELF functions, module by
 * module, by address) whose name matches glob (fnmatch; NULL or "" = all), at most
 * DIAG_ENGINE_SYMBOLS_MAX times. Returns the number of matches seen, which exceeds
 * DIAG_ENGINE_SYMBOLS_MAX when the list was cut; a non-zero return of cb stops the walk.
 * Errors: -DIAG_E_GONE (no such process), -errno. */
int diag_engine_symbols(struct diag_engine *e, pid_t pid, const char *glob,
			int (*cb)(void *arg, const char *module, const char *name, uint64_t addr,
				  uint64_t size),
			void *arg, struct diag_error *err);

/* Calls cb for each parameter, then each local, in scope at target (FUNC, MODULE:FUNC,
 * FUNC+OFF, 0xADDR; a function means its entry), as a call probe there would see them.
 * Returns the number listed, or -DIAG_E_NOSYM (unknown function, with suggestions; no DWARF
 * function covers the address), -DIAG_E_NODEBUG ("no DWARF for FILE"), -DIAG_E_GONE, -errno. */
int diag_engine_vars(struct diag_engine *e, pid_t pid, const char *target,
		     void (*cb)(void *arg, const struct diag_expr_var_info *v), void *arg,
		     struct diag_error *err);

#endif
