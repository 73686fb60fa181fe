/* stop: stopping and freezing threads for the engine's own use, and the engine's table of
 * threads. Owns eng_wait_secure (every wait of the engine goes through it: it moves a thread stopped at
 * one of our int3s to its slot before the stop is reaped, see docs/reliability.md), stopping
 * one thread (for a remote syscall or a slot page), freezing every thread of a process (for a
 * jump patch, recovery, detach) and thawing them. A stop seen on the way that is not ours is
 * served as usual through e->serve_status, the wait loop's handler (wait.c) that
 * diag_engine_new installs: the one call from this file up, and it is a callback. Never
 * decides anything about probes, hits or process life itself. */
#include "engine/engine_internal.h"
#include "util/clock.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- the engine's thread table ---- */

int eng_thread_track(struct diag_engine *e, struct diag_thread *t)
{
	return diag_u64map_put(&e->threads, (uint64_t)t->tid, t);
}

void eng_thread_forget(struct diag_engine *e, struct diag_thread *t)
{
	diag_u64map_del(&e->threads, (uint64_t)t->tid);
	diag_proc_del_thread(t->proc, t->tid);
}

/* ---- the wait that secures a trap ---- */

/* A thread at one of our int3s goes to its slot (or, the int3 removed since, back to the
 * restored instruction) while its stop is still unreported. Linux keeps the SIGTRAP of a
 * ptrace-stop only until a wait reports it: if the tracer dies after that, the thread runs on
 * with no signal, and at addr + 1 it would skip the displaced instruction. Moved first, it
 * runs the slot instead; dead before the move, we leave the SIGTRAP pending and the safety
 * handler does the move. (docs/reliability.md) */
/* Where a thread that trapped on addr (one of our int3s) goes on: the breakpoint's slot, or
 * addr itself for a tombstone (removed since it trapped: the original instruction is back);
 * 0 when addr is not ours (the target's own trap). */
static uint64_t resume_of_trap(const struct diag_bptable *bps, uint64_t addr)
{
	const struct diag_bp *bp = diag_bp_at(bps, addr);
	if (bp)
		return bp->jump ? 0 : bp->slot;
	return diag_u64map_get(&bps->tombstones, addr) ? addr : 0;
}

static void secure_trap(struct diag_engine *e, pid_t tid)
{
	struct diag_thread *t = diag_u64map_get(&e->threads, (uint64_t)tid);
	diag_regs regs;
	if (!t || diag_regs_read(tid, &regs) < 0)
		return;
	uint64_t to = resume_of_trap(&eproc_mem(eproc_of(t->proc))->bps, diag_regs_trap_addr(&regs));
	if (!to)
		return; /* the target's own trap */
	diag_regs at = regs;
	diag_regs_set_pc(&at, to);
	if (diag_regs_write(tid, &at) == 0) {
		e->moved_tid = tid;
		e->moved_regs = regs;
	}
}

/* waitpid(which, status, flags | __WALL) that secures a breakpoint trap before reaping it.
 * Returns the tid, 0 (WNOHANG, nothing) or a negative errno. */
pid_t eng_wait_secure(struct diag_engine *e, pid_t which, int *status, int flags)
{
	for (;;) {
		siginfo_t si;
		si.si_pid = 0;
		int r = waitid(which < 0 ? P_ALL : P_PID, which < 0 ? 0 : (id_t)which, &si,
			       WEXITED | WSTOPPED | WNOWAIT | __WALL | (flags & WNOHANG));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (si.si_pid == 0)
			return 0;
		e->reported_ns = (uint64_t)diag_clock_mono_ns();
		if (si.si_code == CLD_TRAPPED && si.si_status == SIGTRAP)
			secure_trap(e, si.si_pid);
		pid_t w = waitpid(si.si_pid, status, WNOHANG | __WALL);
		if (w == si.si_pid)
			return w;
		if (e->moved_tid == si.si_pid)
			e->moved_tid = 0; /* gone under us: a SIGKILL */
		if (w < 0 && errno != ECHILD && errno != EINTR)
			return -errno;
	}
}

#define FIRST_STOP_MS 1000 /* the longest a new child's first stop is waited for */

bool eng_wait_first_stop(struct diag_engine *e, struct diag_thread *t, int *gone)
{
	*gone = -1;
	if (diag_u64map_get(&e->orphans, (uint64_t)t->tid)) {
		t->stopped = true; /* reaped already: eng_life_claim takes it from there */
		return true;
	}
	uint64_t until = (uint64_t)diag_clock_mono_ns() + FIRST_STOP_MS * 1000000ULL;
	bool stopped = false;
	for (;;) {
		int status;
		pid_t w = eng_wait_secure(e, t->tid, &status, WNOHANG);
		if (w == t->tid) {
			if ((stopped = WIFSTOPPED(status))) {
				diag_u64map_put(&e->orphans, (uint64_t)t->tid,
						(void *)(intptr_t)(status + 1));
				t->stopped = true;
			} else {
				*gone = status;
			}
			break;
		}
		uint64_t now = (uint64_t)diag_clock_mono_ns();
		if (w < 0 || now >= until)
			break;
		/* SIGCHLD wakes the poll; what it consumes of other stops, the dispatch's wait
		 * loop (told to run again) still reaps */
		struct signalfd_siginfo si;
		struct pollfd p = {.fd = e->sigfd, .events = POLLIN};
		poll(&p, 1, (int)((until - now) / 1000000ULL) + 1);
		while (read(e->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
			;
	}
	uint64_t more = 1;
	if (write(e->morefd, &more, sizeof(more)) < 0) {
		/* the eventfd cannot overflow at 1 a call; the next SIGCHLD or tick runs the loop */
	}
	return stopped;
}

/* ---- stopping and freezing ---- */

/* Our interrupt can win the race with one of our int3s the thread has just executed: the
 * kernel reports the interrupt (a job-control trap) before it dequeues the SIGTRAP, so the
 * thread stops at addr + 1 with the trap still pending. Used like that (a remote syscall, a
 * detach), the trap would be taken in a stop nobody serves as a hit and the thread would go on
 * at addr + 1, past the displaced instruction (a target died in _dl_debug_update, past the
 * `ret` of _dl_debug_state). True when t is at one of ours with a SIGTRAP pending. */
static bool trap_pending(const struct diag_thread *t)
{
	diag_regs regs;
	if (diag_regs_read(t->tid, &regs) < 0)
		return false;
	if (!resume_of_trap(&eproc_mem(eproc_of(t->proc))->bps, diag_regs_trap_addr(&regs)))
		return false;
	unsigned long long pending = 0; /* SigPnd of /proc/TID/status: the thread's own */
	return diag_proc_status_field(t->tid, "SigPnd", 16, &pending) &&
	       (pending & (1ULL << (SIGTRAP - 1)));
}

/* Interrupt t and wait until it is in a ptrace-stop, handling every other stop of t on the
 * way (hits are served as usual). Returns 0, or -ESRCH when it exited. */
static int stop_thread(struct diag_engine *e, struct diag_thread *t)
{
	pid_t tid = t->tid;
	if (t->stopped)
		return 0;
	int r = diag_thread_interrupt(tid);
	if (r < 0)
		return r;
	bool interrupted = true;
	for (;;) {
		int status;
		pid_t w = eng_wait_secure(e, tid, &status, 0);
		if (w < 0)
			return w;
		if (!diag_u64map_get(&e->threads, (uint64_t)tid))
			return -ESRCH;
		if (WIFSTOPPED(status) && (status >> 16) == PTRACE_EVENT_STOP && t->announced) {
			int sig = WSTOPSIG(status);
			if (sig == SIGTRAP && trap_pending(t)) {
				/* let it take the trap: it stops again at once with the SIGTRAP,
				 * which the wait secures and serves as every hit. Interrupted again
				 * only after that stop (sooner, the interrupt could win once more),
				 * if serving it let the thread run on. */
				if (ptrace(PTRACE_CONT, tid, 0, 0) < 0)
					return -errno;
				interrupted = false;
				continue;
			}
			/* our interrupt; a job-stopped thread re-traps with its stop signal and
			 * goes back to its group-stop (PTRACE_LISTEN) when we resume it */
			t->stopped = true;
			t->group_stop = sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN ||
					sig == SIGTTOU;
			return 0;
		}
		e->serve_status(e, tid, status); /* wait.c's, installed by diag_engine_new */
		if (!diag_u64map_get(&e->threads, (uint64_t)tid))
			return -ESRCH;
		if (t->stopped) /* kept stopped (freeze) */
			return 0;
		if (!interrupted) {
			if ((r = diag_thread_interrupt(tid)) < 0)
				return r;
			interrupted = true;
		}
	}
}

struct diag_thread *eng_stop_one(struct diag_engine *e, struct eproc *ep)
{
	pid_t pid = ep->tp->pid;
	for (int tries = 0; tries < 64; tries++) {
		struct diag_thread *pick = NULL;
		size_t pos = 0;
		uint64_t k;
		void *v;
		while (diag_u64map_next(&ep->tp->threads, &pos, &k, &v)) {
			struct diag_thread *t = v;
			if (!t->announced || diag_thread_is_zombie(t))
				continue; /* a zombie leader never stops: waiting would hang */
			if (t->stopped)
				return t;
			if (!pick)
				pick = t;
		}
		if (!pick)
			return NULL;
		if (stop_thread(e, pick) == 0)
			return pick;
		if (!diag_u64map_get(&e->procs, (uint64_t)pid))
			return NULL;
	}
	return NULL;
}

void eng_resume_stopped(struct diag_engine *e, struct diag_thread *t)
{
	(void)e;
	if (t->stopped && !eproc_of(t->proc)->freeze)
		diag_thread_resume(t, t->pending_sig);
	t->pending_sig = 0;
}

static struct diag_thread *running_thread(struct eproc *ep)
{
	size_t pos = 0;
	uint64_t k;
	void *v;
	while (diag_u64map_next(&ep->tp->threads, &pos, &k, &v)) {
		struct diag_thread *t = v;
		if (t->announced && !t->stopped && !diag_thread_is_zombie(t))
			return t;
	}
	return NULL;
}

struct diag_thread *eng_freeze(struct diag_engine *e, struct eproc *ep)
{
	pid_t pid = ep->tp->pid;
	ep->freeze++;
	for (struct diag_thread *t; (t = running_thread(ep));) {
		pid_t tid = t->tid;
		int r = stop_thread(e, t);
		if (!diag_u64map_get(&e->procs, (uint64_t)pid))
			return NULL;
		if (r < 0 && diag_proc_thread(ep->tp, tid) == t)
			eng_thread_forget(e, t);
	}
	size_t pos = 0;
	uint64_t k;
	void *v;
	struct diag_thread *any = NULL;
	while (diag_u64map_next(&ep->tp->threads, &pos, &k, &v)) {
		struct diag_thread *t = v;
		if (t->stopped && t->event != PTRACE_EVENT_VFORK)
			return t; /* one that can run a remote syscall */
		if (t->stopped && !any)
			any = t;
	}
	return any;
}

void eng_thaw(struct diag_engine *e, struct eproc *ep)
{
	(void)e;
	if (--ep->freeze > 0)
		return;
	size_t pos = 0;
	uint64_t k;
	void *v;
	while (diag_u64map_next(&ep->tp->threads, &pos, &k, &v)) {
		struct diag_thread *t = v;
		if (t->stopped && t->announced) {
			diag_thread_resume(t, t->pending_sig);
			t->pending_sig = 0;
		}
	}
}
