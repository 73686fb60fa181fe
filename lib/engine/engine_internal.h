/* engine_internal: what the engine's files share (not the engine's API, which is engine.h):
 * the state of an engine, a process, a probe and its sites, and each file's functions for the
 * files above it. The files, bottom first; a file calls only files listed before it (and the
 * modules below the engine), never one after it:
 *
 *   stack.c            the `stack` value: unwinding a stopped thread, naming its frames
 *   journal.c          writing the journal of every patch (for a successor to take out)
 *   stop.c             the engine's thread table; the trap-securing wait; stopping one
 *                      thread, freezing and thawing every thread of a process
 *   journal_recover.c  reading journals: a dead predecessor's patches taken out, sweeping
 *   safety_install.c   the SIGTRAP safety handler: installed into a target, its table kept
 *                      in step with the int3s, copied at fork, removed at detach
 *   guard_install.c    the SIGSEGV/SIGBUS fault guard of capture trampolines: installed
 *                      before the first that reads memory, copied at fork, removed at detach
 *   breakpoints.c      the hooks of every patch (journal, safety table); a breakpoint with a
 *                      thread stopped for its slot page; addresses inside a jump's bytes
 *   retprobe.c         return and end events: frames waiting for their return, exits
 *   hit.c              capture (conditions, values) and fire (events to the owner): the one
 *                      hit path, called by int3 hits (trap.c) and ring records (ring.c)
 *   exitjump.c         return and end events from ring records: exit trampolines' records
 *                      (DIAG_REC_EXIT) and the entry records of return probes (ring.c's
 *                      drain hands them over)
 *   wake.c             when the rings are drained: the drain timer's adaptive period
 *   ring.c             the ring in the target (shared with the daemon, or private), its
 *                      drain into hit.c and exitjump.c, counters, heartbeat, thread pointers
 *   fastpath.c         jump probes: placing a jump, slot pages, counting sites
 *   retsite.c          return sites: jumps at the return addresses of functions that leave
 *                      by a tail call, placed as their entry records name them
 *   dynlink.c          the watch on library loads; whether a target waits for its library
 *   probe.c            a probe's life in one process: resolve, compile, place, remove
 *   dynlink_apply.c    the libraries changed: pending probes applied, unloaded ones retired
 *   trap.c             serving an int3 hit (registers, capture, resume, fire)
 *   life.c             process life: the eproc record, clone, fork, vfork, exec, exit,
 *                      detach (leaving slots, restoring every byte)
 *   wait.c             the wait loop (diag_engine_dispatch): each stop to its owner
 *   adopt.c            processes taken at their exec (the exec gate) or at the open of a
 *                      library (the library gate): seized, the stop waited for, held
 *                      until released (API)
 *   introspect.c       `symbols` and `vars` of any process (API; touches no process)
 *   engine.c           the API of engine.h: engine, attach, probes, stats, detach, free
 *
 * The one call up is a callback: stop.c serves the stops it sees while waiting for its own
 * through e->serve_status (wait.c's eng_wait_serve, installed by diag_engine_new), the way the
 * owner hears of hits through e->cb. */
#ifndef DIAG_ENGINE_INTERNAL_H
#define DIAG_ENGINE_INTERNAL_H

#include "arch/ring.h"
#include "arch/trampoline.h"
#include "bp/breakpoint.h"
#include "util/clock.h"
#include "engine/engine.h"
#include "expr/expr.h"
#include "sym/modmap.h"
#include "sym/symtab.h"
#include "ptrace/tracee.h"

struct probe;
struct eng_stack_proc;
struct eng_safety;
struct eng_guard;
struct diag_unwinder;

enum site_kind {
	SITE_CALL,      /* an event at this address */
	SITE_RET_ENTRY, /* function entry of a return probe: remembers the frame, no event */
	SITE_RET,       /* a return address: the event of the frame it matches */
	SITE_END,       /* an exit of the function body (ret, tail-call jmp) */
	SITE_RET_EXIT,  /* an exit jump of a return probe, or a return site (a jump at a return
			 * address, `at`): the event of the frame it closes (its value and
			 * condition are the entry site's, borrowed) */
	SITE_DL,        /* the dynamic linker's r_brk: the set of libraries changed */
};

/* One probe at one address. */
struct site {
	struct probe *pr;
	struct diag_bp *bp;
	enum site_kind kind;
	char what[96];   /* what this address is, for `applied` */
	struct diag_expr *value;     /* NULL: no value */
	struct diag_expr *condition; /* NULL: always */
	uint64_t fast_base;  /* jump: the breakpoint's counter when this site joined it (a probe
			      * counts only its own hits, not those of probes placed there before) */
	uint64_t counted;    /* a counting jump (eng_slot.count_only): its hits delivered as
			      * counts so far (of eng_fast_site_count) */
	char why[128];       /* int3: why this address takes no jump ("int3: value: ...") */
	bool want_ra;        /* a return probe's entry jump whose function leaves by a tail call:
			      * its records carry the return address (retsite.c) */
	uint64_t at;         /* a return site's return address (0: not a return site) */
	unsigned int3_tries; /* a return site refused an int3 this often (a refusal can pass:
			      * a thread inside pthread_create blocks every signal meanwhile) */
};

struct probe {
	struct probe *next;
	void *cookie;
	char *target, *value, *condition;
	enum diag_event_kind event;
	bool counts;             /* the owner takes counts (diag_probe_def.counts) */
	enum diag_probe_state state;
	char error[DIAG_ERRMSG_MAX];
	uint64_t hits, filtered;
	uint64_t trapped;        /* hits taken through int3 sites (conditions not applied) */
	uint64_t fast_counted;   /* jump sites' counters, last read (kept when the process exits) */
	uint64_t fast_done;      /* jump sites' hits in the images before the last exec */
	uint64_t stopped_ns;
	uint64_t lost_returns;   /* entries whose return could not be watched */
	size_t nskips;           /* instances resolved but not patched, and why (first few) */
	struct diag_skip skips[DIAG_PROBE_MAX_SKIPS];
	struct site *sites;
	size_t nsites;
	struct site **rsites;    /* return probes: one site per return address seen */
	size_t nrsites, caprsites;
	size_t nretsites;        /* of rsites, the return sites (retsite.c), placed or refused */
};

#define ENG_RET_SITES_MAX 1024 /* distinct return addresses watched per probe */
#define ENG_RS_WANT_MAX 64     /* return addresses waiting for their return site, per process */

/* A frame entered under a return probe, waiting for its return (per thread). */
struct pending {
	struct site *entry;
	uint64_t sp;   /* sp at entry: the return comes back with sp + 8 */
	uint64_t ra;   /* the return address */
	uint64_t t0;   /* CLOCK_REALTIME at entry */
};

struct tpending { /* diag_thread.ext */
	size_t n, cap;
	struct pending v[];
};

/* The engine's state for one process (diag_proc.owner). */
struct eproc {
	struct diag_proc *tp;
	struct diag_bptable bps;  /* unused by a vfork child: it shares its parent's */
	struct probe *probes;
	int freeze;               /* >0: stopped for patching or detach: keep every stop */
	bool held;                /* adopted at its exec and not released yet (adopt.c): one
				   * count of freeze is the hold's */
	pid_t exec_waiter;        /* adopt.c: a traced thread of ours at the exec gate, allowed:
				   * its exec stop holds the process (life.c), its interrupt stop
				   * says the exec failed (wait.c); 0: none */
	int exec_outcome;         /* for exec_waiter: 0 waiting, 1 held, -1 the exec failed */
	pid_t open_waiter;        /* adopt.c: a thread of ours in an open held at the library
				   * gate, allowed, interrupted: its interrupt stop (right after
				   * the open returns) holds the process (wait.c); 0: none */
	bool open_held;           /* for open_waiter: its stop came */
	/* fast path (ring.c): hits recorded by capture trampolines into the ring v2 mapping in
	 * the target (arch/ring.h): its geometry as the daemon made it (never re-read) */
	uint64_t ring_addr;       /* 0: no ring mapped */
	uint64_t ring_bytes;      /* the whole mapping */
	uint64_t ring_nsubs, ring_sub_units, ring_sub_stride, ring_counters;
	uint8_t *ring_local;      /* the daemon's own mapping of a shared ring (NULL: private,
				   * read with process_vm_readv) */
	bool ring_final;          /* the last drain of an image (exec): nothing waits */
	bool ring_foreign;        /* a fork child that kept its parent's shared ring (it could
				   * not be given its own): never drained, only unmapped */
	/* the ring's thread table as written (arch/ring.h): the thread pointer and tid holding
	 * each slot (0: free), and the sub-ring it gave */
	uint64_t ring_slot_tp[DIAG_RING_TP_SLOTS];
	pid_t ring_slot_tid[DIAG_RING_TP_SLOTS];
	uint8_t ring_slot_sub[DIAG_RING_TP_SLOTS];
	uint64_t ring_tails[DIAG_RING_MAX_SUBS]; /* next unit to consume, per sub-ring */
	unsigned ring_stalls[DIAG_RING_MAX_SUBS]; /* drains that found the next record unpublished */
	uint64_t ring_sub_drops[DIAG_RING_MAX_SUBS]; /* each sub-ring's drop counter at its last
				   * drain: a frame spanning a drop is not paired (exitjump.c) */
	uint64_t ring_drops;      /* the sub-rings' drop counters summed, last read, plus ... */
	uint64_t ring_skipped;    /* ... records the drain gave up: one reserved and never
				   * published, and the published ones it held back */
	uint64_t ring_drops_done; /* drops in the rings of the images before the last exec */
	uint32_t next_site;
	struct diag_u64map jumps; /* site id -> struct diag_bp (jump) */
	struct diag_u64map slots; /* capture slot page -> struct eng_slot (live and retired) */
	struct diag_u64map tps;   /* thread pointer -> tid (records name threads by it) */
	struct diag_u64map tp_tried; /* thread pointers a stop of every thread did not name */
	bool tp_learn;            /* a record names an unknown thread pointer: learn at the next
				   * dispatch (every thread stopped once), then drain again */
	bool draining;            /* eng_fast_drain is running (a nested stop must not re-enter) */
	struct eng_safety *safety; /* the SIGTRAP safety handler, once an int3 is placed */
	struct eng_guard *guard;  /* the fault guard, once a capture trampoline reads memory */
	struct probe *dl_probe;   /* the engine's own watch on library loads (dynlink.c) */
	int journal_fd;           /* journal.c: this process's patches, -1 when none */
	char journal_path[300];
	size_t journal_regions;   /* slot pages already journaled */
	bool dl_dirty;            /* a library was loaded or unloaded since the last look */
	bool dl_busy;             /* eng_dl_changed is running (a nested stop only marks dirty) */
	struct eng_stack_proc *stack; /* stack.c: modules naming frames (NULL until a stack value) */
	struct diag_u64map xframes; /* exitjump.c: open frames of jump return probes, by thread
				     * pointer (a vfork child's are its parent's) */
	/* exitjump.c -> retsite.c: return addresses that entry records named and that have no
	 * return site of their probe yet (placed at the next dispatch) */
	struct eng_rs_want {
		uint64_t ra;
		struct site *entry;
	} rs_want[ENG_RS_WANT_MAX];
	size_t rs_nwant;
};

/* wake.c: the drain timer's period and what the drains since the last tick found */
struct eng_wake {
	uint64_t period_ns;  /* 0: not set yet (the longest) */
	bool full, busy;     /* a ring over the high mark / over the low mark */
	unsigned calm;       /* ticks in a row with every ring under the low mark */
	uint64_t changes;    /* period changes, for tests and stats */
};

struct diag_engine {
	struct diag_engine_callbacks cb;
	int sigfd;
	struct diag_u64map procs;   /* pid -> struct eproc */
	struct diag_u64map threads; /* tid -> struct diag_thread */
	struct diag_u64map orphans; /* tid -> status+1: first stops seen before their clone/fork event */
	struct diag_symcache *syms;
	struct diag_dwarf_cache *dwarf;
	uint64_t hits;
	uint64_t dropped;           /* fast-path hits lost to full rings, all processes ever */
	uint64_t stopped_ns;        /* time threads spent stopped by int3 hits, all processes ever */
	struct diag_expr_result *scratch; /* one per site of the busiest breakpoint */
	size_t nscratch;
	int epfd;                   /* what diag_engine_fd() returns: sigfd + timerfd + morefd */
	int morefd;                 /* eventfd: a dispatch stopped at its time bound, call again */
	int timerfd;                /* drains the rings while any exists */
	bool timer_armed;
	struct eng_wake wake;       /* wake.c: the timer's period */
	bool no_fast;               /* DIAG_NO_FASTPATH set: int3 for everything (tests) */
	bool full_records;          /* DIAG_FULL_RECORDS set: every register in every record,
	                             * never the slim layout (comparisons, bench/log_rate.sh) */
	size_t ring_bytes;          /* each new ring mapping's records, all sub-rings (the
				     * daemon's --ring-kib; diag_engine_set_ring_size) */
	uint8_t *drain_buf;         /* ring.c: records read from a sub-ring */
	bool ring_shared;           /* new rings are shared with the daemon when the target
				     * allows (--shared-ring, DIAG_RING_SHARED=1; ring.c) */
	bool defer_render;          /* hit.c: events carry their value unrendered (hit.raw) */
	void *raw_buf;              /* hit.c: one deferred value, packed */
	uint64_t tsc0, ns0, tsc1, ns1; /* TSC -> CLOCK_REALTIME calibration */
	char journal_dir[200];      /* DIAG_JOURNAL_DIR or /run/diagnose/journal; "" = none */
	size_t recovered;
	struct diag_unwinder *unwinder; /* stack.c: created at the first stack value */
	uint64_t reported_ns;       /* CLOCK_MONOTONIC when the last wait reported a stop: a
				     * hit's stopped time runs from there to its CONT (governor) */
	pid_t moved_tid;            /* a thread sent to its slot before its stop was reaped */
	diag_regs moved_regs;       /* ... and its registers at the trap */
	/* wait.c's handler of one reaped status, for stop.c (see above) */
	void (*serve_status)(struct diag_engine *e, pid_t tid, int status);
};

static inline struct eproc *eproc_of(struct diag_proc *p)
{
	return p->owner;
}

/* The process whose memory (and breakpoints) a process uses. */
static inline struct eproc *eproc_mem(struct eproc *ep)
{
	return ep->tp->mem_owner ? eproc_of(ep->tp->mem_owner) : ep;
}

/* ---- stack.c: the `stack` value (diag_expr_ctx.stack, arg a struct eng_stack_req) ---- */
struct eng_stack_req {
	struct diag_engine *e;
	struct eproc *ep;                    /* the thread's process */
	pid_t tid;                           /* stopped at the breakpoint */
	const diag_regs *regs;               /* as read at the stop */
	uint64_t pc;                         /* the breakpoint's address: where the walk starts */
};
int eng_stack_text(void *req, int max, char *out, size_t cap);
/* Drop ep's cached modules and unwind state (exec, exit, detach). */
void eng_stack_forget(struct diag_engine *e, struct eproc *ep);
void eng_stack_free(struct diag_engine *e);

/* ---- journal.c: writing the journal ---- */
int eng_journal_open(struct diag_engine *e, struct eproc *ep, const char *copy_from);
void eng_journal_close(struct eproc *ep, bool done);
void eng_journal_reset(struct diag_engine *e, struct eproc *ep);
/* The slot pages mapped since the last call; one page mapped; our SIGTRAP action. */
void eng_journal_pages(struct eproc *ep);
void eng_journal_map(struct eproc *ep, uint64_t addr, uint64_t len, const char *what);
void eng_journal_sigaction(struct eproc *ep, uint64_t ours, const void *old_action);
/* Our action for another signal (the fault guard's SIGSEGV, SIGBUS) over the target's. */
void eng_journal_action(struct eproc *ep, int sig, uint64_t ours, const void *old_action);
/* A patch about to be written; a patch whose bytes are back. */
void eng_journal_patch(struct eproc *ep, const struct diag_bp *bp);
void eng_journal_unpatch(struct eproc *ep, const struct diag_bp *bp);
/* The journal of process pid: DIR/PID-STARTTIME (start time 0 when pid is gone). */
void eng_journal_path(const struct diag_engine *e, pid_t pid, char *out, size_t cap);
unsigned long long eng_journal_starttime(pid_t pid);

/* ---- stop.c: the thread table, the trap-securing wait, stopping and freezing ---- */
int eng_thread_track(struct diag_engine *e, struct diag_thread *t);
void eng_thread_forget(struct diag_engine *e, struct diag_thread *t);
/* waitpid(which, status, flags | __WALL) that secures a breakpoint trap before reaping it.
 * Returns the tid, 0 (WNOHANG, nothing) or a negative errno. */
pid_t eng_wait_secure(struct diag_engine *e, pid_t which, int *status, int flags);
/* A new fork child's first stop, before it runs (its ring is made its own first): reaped
 * already, or waited for (a bounded time) and parked in e->orphans for eng_life_claim. True
 * with t stopped; false when it did not stop in time, or died (*gone: its wait status, which
 * the caller serves once the child is set up; -1 otherwise). */
bool eng_wait_first_stop(struct diag_engine *e, struct diag_thread *t, int *gone);
/* A stopped thread of ep (one is stopped if none is), or NULL when none is left. */
struct diag_thread *eng_stop_one(struct diag_engine *e, struct eproc *ep);
void eng_resume_stopped(struct diag_engine *e, struct diag_thread *t);
/* Stop every thread of ep and keep them stopped (freeze); returns one of them or NULL when the
 * process is gone. eng_thaw resumes them all. */
struct diag_thread *eng_freeze(struct diag_engine *e, struct eproc *ep);
void eng_thaw(struct diag_engine *e, struct eproc *ep);

/* ---- journal_recover.c: reading journals ---- */
struct diag_journal_report {
	bool found;
	size_t restored, mismatched, unmapped;
};
/* Remove the journals of processes that are gone, and clean ones nobody traces. */
void eng_journal_sweep(struct diag_engine *e);
/* A predecessor's journal for this process: take its patches out (threads frozen meanwhile). */
int eng_journal_recover(struct diag_engine *e, struct eproc *ep, struct diag_journal_report *rep);

/* ---- safety_install.c: the SIGTRAP safety handler in the target ---- */
int eng_safety_arm(struct eproc *ep, const struct diag_bp *bp);
void eng_safety_disarmed(struct eproc *ep, const struct diag_bp *bp);
/* Before the first int3 of a process: install the SIGTRAP safety handler (a stopped thread is
 * borrowed, or stopped and returned in *stopped). */
int eng_safety_ensure(struct diag_engine *e, struct eproc *ep, struct diag_thread **stopped,
		      struct diag_error *err);
/* Detach: the target's own action back, the handler unmapped (t stopped). */
void eng_safety_remove(struct eproc *ep, struct diag_thread *t);
/* Forget without touching the target (exit, exec). */
void eng_safety_forget(struct eproc *ep);
int eng_safety_fork(struct eproc *child, const struct eproc *parent);

/* ---- guard_install.c: the fault guard in the target ---- */
/* Before the first capture trampoline of ep that reads memory is patched in (every call after
 * the first success is free): the guard mapped and chained over the target's SIGSEGV and
 * SIGBUS actions (a stopped thread is borrowed, or stopped and returned in *stopped). */
int eng_guard_ensure(struct diag_engine *e, struct eproc *ep, struct diag_thread **stopped,
		     struct diag_error *err);
/* Detach, once no capture trampoline is patched or running: each action back unless the
 * target replaced ours since, the blob unmapped (t stopped). */
void eng_guard_remove(struct eproc *ep, struct diag_thread *t);
/* Forget without touching the target (exit, exec). */
void eng_guard_forget(struct eproc *ep);
int eng_guard_fork(struct eproc *child, const struct eproc *parent);

/* ---- breakpoints.c: the engine's side of every breakpoint ---- */
/* Install the hooks (journal, safety table) in ep's breakpoint table. */
void eng_hooks_set(struct eproc *ep);
/* diag_bp_get in mem; a slot page that must be mapped first gets a thread stopped for it (kept
 * in *stopped for the caller to resume) when none is. */
int eng_bp_get(struct diag_engine *e, struct eproc *mem, struct diag_thread **stopped,
	       uint64_t addr, struct diag_bp **out, struct diag_error *err);
/* True when addr lies inside the bytes a jump replaced (never executed while it is there). */
bool eng_bp_in_jump(const struct diag_bptable *t, uint64_t addr);

/* ---- retprobe.c: return and end events ---- */
/* Before a hit is served: drop the frames this thread has left without returning (longjmp,
 * an exception) judging by where it is now. */
void eng_ret_purge(struct diag_thread *t, const struct diag_bp *bp, uint64_t sp);
/* Entry of a return probe: remember the frame and watch its return address. */
void eng_ret_enter(struct diag_engine *e, struct diag_thread *t, struct site *s,
		   const diag_regs *regs, uint64_t ts);
/* At a return address: the entry site of the frame returning here with this sp, or NULL;
 * *t0 is when it was entered. Dead frames (left by longjmp or an exception) are purged. */
struct site *eng_ret_match(struct diag_thread *t, struct site *s, uint64_t sp, uint64_t *t0);
/* Forget a return probe's return sites and every frame waiting on it. */
void eng_ret_forget(struct diag_engine *e, struct eproc *ep, struct probe *pr);
/* The exits of the function [func_start, func_end) for exit trampolines (arch/branch.h):
 * returns 0 with *plans (malloc'd, *n of them, each with its own why), or 1 with why (cap
 * bytes) saying why no exit trampoline can be planned. */
struct diag_exit_plan;
int eng_exit_plans_of(struct eproc *ep, uint64_t func_start, uint64_t func_end,
		      struct diag_exit_plan **plans, size_t *n, char *why, size_t cap);
/* Whether plan p can take a jump now: planned, clear of [.., keep_clear) (a return probe's
 * entry jump), no other patch inside it (a jump of ours exactly at its start is shared).
 * False with why. */
bool eng_exit_plan_free(const struct diag_bptable *t, const struct diag_exit_plan *p,
			uint64_t keep_clear, char *why, size_t cap);
/* END events: replace each function location by its exits; returns the new count. */
int eng_end_locations(struct eproc *ep, struct diag_location **locs, size_t *n,
		      struct diag_error *err);

/* ---- hit.c: the hit path ---- */
/* diag_expr_ctx.comm_of, its arg a struct diag_thread * (NULL: "") */
const char *eng_comm_of(void *thread);
/* While the thread is stopped (t) or from a ring record (t NULL): conditions and captures.
 * cond_done: the record exists because the target found the one condition there true (it is
 * not evaluated again: its reads were not captured). Returns how many sites fired; their
 * results are in e->scratch, the sites in fired[]. */
size_t eng_capture(struct diag_engine *e, struct diag_thread *t, struct diag_bp *bp,
		   const struct diag_expr_ctx *ctx, bool cond_done, struct site **fired);
/* One site's condition and value on ctx (x: the site holding the expressions, s the one
 * counting), result into e->scratch[slot]; true when it fires. */
bool eng_capture_site(struct diag_engine *e, struct site *s, struct site *x,
		      const struct diag_expr_ctx *ctx, bool cond_done, size_t slot);
/* Render and deliver the events of the n fired sites (after the thread runs again). */
void eng_fire(struct diag_engine *e, struct diag_thread *t, pid_t pid, pid_t tid,
	      struct site **fired, size_t n, uint64_t ts);
/* n hits of a counting site (no value, no thread: the drain's time ts) as one hit whose count
 * is n. */
void eng_fire_counted(struct diag_engine *e, pid_t pid, struct site *s, uint64_t n, uint64_t ts);

/* ---- exitjump.c: return and end events from ring records ---- */
struct diag_ring_rec;
struct diag_cap_snapshot;
/* A drained record that is not a plain call event: flagged DIAG_REC_EXIT (an exit
 * trampoline), or recorded at the entry of a return probe. bp is the jump breakpoint of the
 * record's site, rec the record's header as read (regs, tsc, thread), snap its payload. */
void eng_exit_record(struct diag_engine *e, struct eproc *ep, struct diag_bp *bp,
		     const struct diag_ring_rec *rec, const struct diag_cap_snapshot *snap,
		     pid_t tid, uint64_t ts);
/* An int3 hit of thread t at a return site that took no jump (bp, its SITE_RET_EXIT users):
 * the jump frames returning there close (tsc: the clock now; elapsed includes the stop's
 * delay), their events captured into e->scratch from slot on and their entry sites appended
 * to fired. Returns how many fired. */
size_t eng_exit_trap(struct diag_engine *e, struct diag_thread *t, struct diag_bp *bp,
		     const struct diag_expr_ctx *ctx, uint64_t tsc, struct site **fired, size_t slot);

/* The open frames of jump return probes (eproc.xframes: thread pointer -> its frames), kept
 * on records alone: an entry record at sp opens a frame (and purges those at or below sp,
 * left without an exit), an exit record at sp closes the one entered at sp. Bounded: beyond
 * ENG_XFRAMES_MAX open frames on a thread an entry is refused (its return lost, counted). */
#define ENG_XFRAMES_MAX 4096
struct eng_xframe {
	uint64_t sp;               /* at entry: the exit's sp is the same */
	uint64_t tsc;              /* the entry record's clock */
	struct site *entry;        /* the return probe's entry site (its expressions) */
	bool unwatched;            /* entered with no return site at its return address yet: a
				    * purge counts its return as lost (it may have passed unseen) */
};
/* An entry record at sp of the n entry sites at its address: frames at or below sp are gone;
 * one frame per site is opened (unwatched[i]: see eng_xframe; may be NULL). Returns 0,
 * -ENOSPC (too deep) or -ENOMEM: frames not opened. */
int eng_xf_enter(struct diag_u64map *m, uint64_t thread, uint64_t sp, uint64_t tsc,
		 struct site *const *entries, const bool *unwatched, size_t n);
/* An exit record at sp: frames below sp are gone, the frames entered at sp close (up to cap
 * of them into out; only: a return site's breakpoint, then only the frames of its probes).
 * Returns how many. */
size_t eng_xf_exit(struct diag_u64map *m, uint64_t thread, uint64_t sp, const struct diag_bp *only,
		   struct eng_xframe *out, size_t cap);
void eng_xf_drop_thread(struct diag_u64map *m, uint64_t thread);
void eng_xf_forget(struct diag_u64map *m, const struct probe *pr);
/* Open frames (of pr; NULL: of every probe). */
size_t eng_xf_open(const struct diag_u64map *m, const struct probe *pr);
void eng_xf_release(struct diag_u64map *m);

/* ---- wake.c: when the rings are drained ---- */
/* Arm (at the current period) or disarm the drain timer. */
void eng_wake_arm(struct diag_engine *e, bool want);
/* A drain found `used` of a ring's (or sub-ring's) `capacity` waiting (any unit, the same for
 * both). */
void eng_wake_note(struct diag_engine *e, uint64_t used, uint64_t capacity);
/* After the drains of one timer tick: adapt the period to what they found. */
void eng_wake_tick(struct diag_engine *e);

/* ---- ring.c: the ring in the target, the daemon's view of it, its drain ---- */
/* Map ep's ring (every thread frozen, t one of them): shared with the daemon (a memfd both
 * map) when the target lets us create one, else private to the target. */
int eng_ring_map(struct diag_engine *e, struct eproc *ep, struct diag_thread *t);
/* Fork: the child's ring. A shared ring would be the parent's in the child too: the child
 * (stopped, thread t) gets its own at the same address with the parent's control block and
 * counters; a private one was copied by the fork. */
void eng_ring_fork(struct diag_engine *e, struct eproc *child, struct eproc *parent,
		   struct diag_thread *t);
/* Every stopped thread's thread pointer learnt (no slot given: they may have recorded). */
void eng_fast_learn_all(struct eproc *ep);
/* Exec: the old image's ring drained one last time (a shared ring outlives the old image's
 * memory: records written up to the exec are delivered), threads never learnt named by no tid. */
void eng_ring_exec_drain(struct diag_engine *e, struct eproc *ep);
/* The ring forgotten (the daemon's mapping dropped), or unmapped in the target first with
 * stopped thread t (NULL: forget only). */
void eng_ring_reset(struct eproc *ep);
void eng_ring_unmap(struct eproc *ep, struct diag_thread *t);
/* The daemon maps ep's ring too (status, tests). */
bool eng_ring_shared(const struct eproc *ep);
size_t eng_ring_subs(const struct eproc *ep, struct diag_engine_ring_sub *out, size_t cap);
/* A probe that asks for nothing but its count, from an owner that takes counts: its site's
 * counters are its hits, nothing is recorded (delivered by eng_fast_counts). */
bool eng_site_counting(const struct site *u);
/* Consume every published record of ep's ring, push its heartbeat forward, deliver the
 * counts of its counting sites. */
void eng_fast_drain(struct diag_engine *e, struct eproc *ep);
/* Before work that keeps the engine from draining while ep's threads run (a library's pending
 * probes placed: its symbols read first, seconds on a loaded or sanitized build): ep's
 * trampolines record for ns more, as if drained; the next drain brings the heartbeat back to
 * its normal length. A daemon that dies meanwhile leaves a bounded ring filling, no more. */
void eng_fast_keepalive(struct diag_engine *e, struct eproc *ep, uint64_t ns);
/* Dispatch level: processes whose records name an unknown thread learn every thread's thread
 * pointer (one freeze each), then drain again. */
void eng_fast_learn_pending(struct diag_engine *e);
/* A stopped thread's thread pointer, for naming its records (seize, clone, fork, exec); ep
 * is the memory's owner. A vfork child names its parent's thread pointer while its parent
 * waits (until it execs or exits). */
void eng_fast_learn(struct eproc *ep, struct diag_thread *t);
/* A thread is exiting (its records drained): its thread pointer may be reused. */
void eng_fast_thread_gone(struct eproc *ep, struct diag_thread *t);
/* The exact number of hits of a jump breakpoint (its counters in the target, summed). */
uint64_t eng_fast_count(struct eproc *mem, const struct diag_bp *bp);
/* The hits of one site on a jump since the site was placed (0 for an int3 site). */
uint64_t eng_fast_site_count(struct eproc *mem, const struct site *s);
/* Arm or disarm the drain timer: armed while any process has a ring. */
void eng_fast_timer(struct diag_engine *e);

/* ---- fastpath.c: jump probes, slots, counting sites ---- */
/* A capture trampoline's slot page, as the daemon built it (the target's copy of the header is
 * never trusted): for fault repair, for moving threads out, and unmapping once retired. */
struct eng_slot {
	uint64_t page;
	struct diag_tramp_layout layout;
	struct diag_tramp_slot_header hdr;
	bool cond_in_daemon;      /* the conditions at the site are evaluated on the record */
	bool count_only;          /* every probe there only counts: the counters are the hits,
				   * nothing is recorded (delivered by eng_fast_counts) */
	uint64_t term;            /* an exit trampoline's terminator (0: an entry trampoline) */
	bool retsite;             /* an entry trampoline at a return address (a return site) */
	bool retired;             /* its jump is out; unmapped once no thread is inside */
	size_t adopt;             /* a fork child's copy: probes still to join the trampoline
				   * built for the same probes in the parent (no rebuild) */
};
/* Try to place site s at loc as a jump (fast path), or join the jump already there. Returns 0
 * when placed, 1 when the site must use an int3 instead (s->why says why), or a negative code
 * with err set. */
int eng_fast_place(struct diag_engine *e, struct eproc *ep, struct site *s,
		   const struct diag_location *loc, struct diag_error *err);
/* Site s leaves its jump bp, others remain: the trampoline rebuilt for them (every thread
 * of mem frozen by the caller). */
void eng_fast_leave(struct diag_engine *e, struct eproc *mem, struct diag_bp *bp,
		    struct site *s);
/* The hits of ep's counting sites since the last call, delivered as counts. */
void eng_fast_counts(struct diag_engine *e, struct eproc *ep);
/* Exec: the ring and slots went with the old image. */
void eng_fast_reset(struct eproc *ep);
/* Detach: unmap the ring and every slot page with stopped thread t (NULL: forget only). */
void eng_fast_unmap(struct eproc *ep, struct diag_thread *t);
/* A jump breakpoint is going away: its site id forgotten, its slot retired. */
void eng_fast_forget(struct eproc *mem, struct diag_bp *bp);
/* Every thread frozen: unmap the retired slots no thread is inside (moved out when it can). */
void eng_fast_reap(struct diag_engine *e, struct eproc *mem);
/* Where a stopped thread at pc continues once the capture slots are gone: 0 when pc is in
 * none, 1 when it must first run (step) out, else the original address. */
uint64_t eng_fast_unslot(const struct eproc *mem, uint64_t pc);
/* A SIGSEGV/SIGBUS stop of t: when its pc lies in one of our capture slots' programs, resume
 * it at the slot's landing (the read gives a fault value) and return true. */
bool eng_fast_fault(struct diag_engine *e, struct diag_thread *t, int sig); /* e may be NULL */
/* Fork (child stopped, its thread t, before it runs; NULL when it could not be waited for): the
 * child's own ring (ring.c) and its copy of the parent's jumps and slots. */
void eng_fast_fork(struct diag_engine *e, struct eproc *child, struct eproc *parent,
		   struct diag_thread *t);
/* A return site for entry site `entry` at return address ra, in the function [func_start,
 * func_end) of the caller (ep frozen or not: frozen here): a new jump, or one of another probe
 * joined. Returns 0 (placed, the site in entry->pr->rsites), 1 (no jump fits: why, cap bytes)
 * or a negative code. */
int eng_fast_place_retsite(struct diag_engine *e, struct eproc *ep, struct site *entry,
			   uint64_t ra, uint64_t func_start, uint64_t func_end, char *why,
			   size_t cap);

/* ---- retsite.c: return sites ---- */
/* Dispatch level: the return sites the drains asked for (eproc.rs_want), placed. */
void eng_retsite_place_pending(struct diag_engine *e);
/* A fork child's probe pr (installed, a copy of its parent's src): it joins the copies of
 * src's return sites (no freeze: the child has not run since the fork). */
void eng_retsite_adopt(struct diag_engine *e, struct eproc *child, struct probe *pr,
		       const struct probe *src);

/* ---- dynlink.c: the watch on library loads ---- */
/* True when target names a MODULE that is not mapped (the probe waits for it). */
bool eng_dl_absent(const struct diag_modmap *mods, const char *target);
/* Watch library loads in ep (once). */
int eng_dl_watch(struct diag_engine *e, struct eproc *ep, struct diag_thread **stopped,
		 struct diag_error *err);
/* Stop watching; write = restore the byte (detach), else forget (exit, exec). */
void eng_dl_unwatch(struct eproc *ep, bool write);

/* ---- probe.c: a probe in one process ---- */
int eng_probe_install(struct diag_engine *e, struct eproc *ep, struct probe *pr,
		      struct diag_error *err);
void eng_probe_uninstall(struct diag_engine *e, struct eproc *ep, struct probe *pr);
void eng_probe_free(struct probe *pr);
/* Drop a probe's sites and compiled expressions without touching the target (its memory is
 * gone: exit, exec, an unloaded library). */
void eng_probe_forget_sites(struct probe *pr);
struct probe *eng_probe_copy(const struct probe *src);
int eng_probes_clone_sites(struct diag_engine *e, struct eproc *child, struct eproc *parent);

/* ---- dynlink_apply.c: the libraries changed ---- */
/* Apply pending probes, retire those of unloaded libraries. */
void eng_dl_changed(struct diag_engine *e, struct eproc *ep);

/* ---- trap.c: an int3 hit ---- */
/* Serve thread t stopped with SIGTRAP: ours (a hit, or a breakpoint removed since) or the
 * target's own (delivered). */
void eng_trap_serve(struct diag_engine *e, struct diag_thread *t);

/* ---- life.c: process life ---- */
/* The engine's record of a process just seized or adopted (NULL: out of memory). */
struct eproc *eng_proc_new(struct diag_engine *e, struct diag_proc *tp);
/* The first stop of a new thread or child (it was auto-attached and starts stopped). */
void eng_life_claim(struct diag_engine *e, struct diag_thread *t);
void eng_life_clone(struct diag_engine *e, struct diag_thread *parent, pid_t tid);
void eng_life_fork(struct diag_engine *e, struct diag_thread *parent, pid_t child, bool vfork);
void eng_life_exec(struct diag_engine *e, struct diag_thread *t);
/* PTRACE_EVENT_EXIT: the ring read for the last time, the counters kept. */
void eng_life_exiting(struct diag_engine *e, struct diag_thread *t);
/* A thread reaped; the leader's exit drops the process. */
void eng_life_gone(struct diag_engine *e, struct diag_thread *t);
/* Leave ep: every thread stopped and out of the slots, every byte back, pages unmapped,
 * threads detached, the record dropped. */
void eng_proc_detach(struct diag_engine *e, struct eproc *ep);

/* ---- wait.c: the wait loop ---- */
/* One status reaped by eng_wait_secure, to its owner (also e->serve_status). */
void eng_wait_serve(struct diag_engine *e, pid_t tid, int status);

/* ---- adopt.c: taking a process (for engine.c's attach too) ---- */
/* Seize every thread of pid (none stopped) into a new record. */
int eng_adopt_seize(struct diag_engine *e, pid_t pid, struct eproc **out, struct diag_error *err);
/* A process just seized: a dead predecessor's patches taken out, then our journal opened;
 * on an error it is detached. */
int eng_adopt_journal(struct diag_engine *e, struct eproc *ep, struct diag_error *err);

#endif
