/* wait: the wait loop over every traced thread. diag_engine_dispatch drains the rings when
 * the timer ticks, then reaps every stop and exit (eng_wait_secure) for a bounded time and
 * hands each to its owner: an int3 hit to trap.c, clone, fork, vfork, exec and exit to life.c,
 * a signal of the target back to it (or kept while its process is frozen). eng_wait_serve is
 * also what stop.c calls (through e->serve_status) for the stops it sees on the way. Owns no
 * state of its own and never patches anything. */
#include "engine/engine_internal.h"
#include "util/clock.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <sys/ptrace.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_event_stop(struct diag_engine *e, struct diag_thread *t, int sig)
{
	bool job = sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU;
	t->group_stop = job;
	eng_fast_learn(eproc_mem(eproc_of(t->proc)), t); /* a new thread's first stop */
	if (!t->announced) {
		eng_life_claim(e, t);
		return;
	}
	struct eproc *ep = eproc_of(t->proc);
	if (ep->exec_waiter == t->tid) { /* the interrupt adopt.c queued: its exec failed */
		ep->exec_waiter = 0;
		ep->exec_outcome = -1;
	}
	if (ep->open_waiter == t->tid) { /* adopt.c: the library's open returned: held */
		ep->open_waiter = 0;
		ep->open_held = true;
		ep->held = true;
		ep->freeze++;
		return;
	}
	if (eproc_of(t->proc)->freeze)
		return;
	/* A job-control stop stays a stop (PTRACE_LISTEN); an interrupt nobody waits for
	 * just continues. */
	diag_thread_resume(t, 0);
}

static void on_stop(struct diag_engine *e, struct diag_thread *t, int status)
{
	int sig = WSTOPSIG(status), event = status >> 16;
	unsigned long msg = 0;
	t->stopped = true;
	switch (event) {
	case PTRACE_EVENT_CLONE:
	case PTRACE_EVENT_FORK:
	case PTRACE_EVENT_VFORK:
		diag_thread_eventmsg(t->tid, &msg);
		t->event = event; /* until resumed: inside the syscall (diag_thread_syscall) */
		if (event == PTRACE_EVENT_CLONE)
			eng_life_clone(e, t, (pid_t)msg);
		else
			eng_life_fork(e, t, (pid_t)msg, event == PTRACE_EVENT_VFORK);
		if (!eproc_of(t->proc)->freeze)
			diag_thread_resume(t, 0);
		return;
	case PTRACE_EVENT_EXEC:
		eng_life_exec(e, t);
		return;
	case PTRACE_EVENT_STOP:
		on_event_stop(e, t, sig);
		return;
	case PTRACE_EVENT_EXIT:
		eng_life_exiting(e, t);
		if (!eproc_of(t->proc)->freeze)
			diag_thread_resume(t, 0);
		return;
	case 0:
		break;
	default:
		if (!eproc_of(t->proc)->freeze)
			diag_thread_resume(t, 0);
		return;
	}
	t->group_stop = false;
	if (sig == SIGTRAP) {
		eng_trap_serve(e, t);
	} else if (sig == (SIGTRAP | 0x80)) {
		diag_thread_resume(t, 0); /* a syscall stop nobody asked for */
	} else if (eng_fast_fault(e, t, sig)) {
		/* a capture program's read faulted: resumed at its landing, the signal gone */
		if (!eproc_of(t->proc)->freeze)
			diag_thread_resume(t, 0);
	} else if (eproc_of(t->proc)->freeze) {
		t->pending_sig = sig;
	} else {
		diag_thread_resume(t, sig); /* the target's own signal, delivered unchanged */
	}
}

void eng_wait_serve(struct diag_engine *e, pid_t tid, int status)
{
	struct diag_thread *t = diag_u64map_get(&e->threads, (uint64_t)tid);
	if (!t) {
		/* a new thread or child whose creator's event we have not read yet; a tid that
		 * exits unknown (a thread exec killed, forgotten at the exec stop) leaves no parked
		 * stop behind, which a new thread reusing the tid would claim */
		if (WIFSTOPPED(status))
			diag_u64map_put(&e->orphans, (uint64_t)tid, (void *)(intptr_t)(status + 1));
		else
			diag_u64map_del(&e->orphans, (uint64_t)tid);
		return;
	}
	if (WIFEXITED(status) || WIFSIGNALED(status))
		eng_life_gone(e, t);
	else if (WIFSTOPPED(status))
		on_stop(e, t, status);
}

/* One dispatch serves events for this long at most, then leaves morefd readable: threads
 * that trap again as soon as they are resumed (a hot int3 probe) always have a stop pending,
 * and the caller's other work (requests, the governor's ticks) must still run. */
#define DISPATCH_MAX_NS 20000000ULL

int diag_engine_dispatch(struct diag_engine *e)
{
	struct signalfd_siginfo si;
	uint64_t more, start = (uint64_t)diag_clock_mono_ns();
	while (read(e->sigfd, &si, sizeof(si)) == sizeof(si))
		;
	if (read(e->morefd, &more, sizeof(more)) < 0 && errno != EAGAIN)
		return -errno;
	uint64_t ticks;
	if (read(e->timerfd, &ticks, sizeof(ticks)) == sizeof(ticks) || e->timer_armed) {
		size_t pos = 0;
		uint64_t k;
		void *v;
		while (diag_u64map_next(&e->procs, &pos, &k, &v))
			eng_fast_drain(e, v);
		eng_wake_tick(e);
		eng_fast_learn_pending(e); /* records naming a thread not seen stopped yet */
		eng_retsite_place_pending(e); /* return addresses the drains found unwatched */
	}
	for (;;) {
		int status;
		pid_t w = eng_wait_secure(e, -1, &status, WNOHANG);
		if (w == 0 || w == -ECHILD)
			return 0;
		if (w < 0)
			return w;
		eng_wait_serve(e, w, status);
		if ((uint64_t)diag_clock_mono_ns() - start > DISPATCH_MAX_NS) {
			more = 1;
			return write(e->morefd, &more, sizeof(more)) < 0 ? -errno : 0;
		}
	}
}
