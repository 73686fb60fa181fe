/* adopt: processes taken at their exec or at the open of a library (issue 11;
 * docs/architecture.md, "Processes started after the probe"). Owns diag_engine_adopt_exec,
 * diag_engine_adopt_open, diag_engine_release and the seize of a whole process (attach's
 * too): a thread waiting in
 * execve at the exec gate is seized with an interrupt queued, the owner's allow lets the exec
 * go on, and the wait for its stop is bounded by the kernel (no timer): the exec stop when
 * the exec went on, the interrupt's stop when it failed, its death when it was killed. The
 * new image is then held: its eproc is frozen (freeze > 0, held) so no path of the engine
 * resumes it until diag_engine_release. Never answers the gate itself (allow does), never
 * places probes (diag_engine_probe_add does, on the held process) and never serves another
 * process's stops: it waits for this thread alone. */
#include "engine/engine_internal.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>

/* The process tid belongs to (tid itself when /proc no longer says: it is gone, and the seize
 * will say so). */
static pid_t tgid_of(pid_t tid)
{
	unsigned long long tgid = 0;
	return diag_proc_status_field(tid, "Tgid", 10, &tgid) && tgid > 0 ? (pid_t)tgid : tid;
}

/* The next stop or death of the exec'ing thread. A non-leader that exec'd stops under the
 * leader's id (it took it over). A wait for its own id alone could sleep for ever: begun
 * before the exchange of ids, it is woken only by a task of that id, and the exec stop comes
 * from the other one (seen in test_adopt). So a non-leader is waited for among every tracee,
 * the other stops served as the dispatch would. */
static pid_t wait_thread(struct diag_engine *e, pid_t tid, pid_t tgid, int *status)
{
	if (tgid == tid)
		return eng_wait_secure(e, tid, status, 0);
	for (;;) {
		pid_t w = eng_wait_secure(e, -1, status, 0);
		if (w < 0 || w == tid || w == tgid)
			return w;
		eng_wait_serve(e, w, *status);
	}
}

/* The exec failed: the thread is back in user space, stopped (our interrupt, or a signal
 * first); it goes on without us and gets its execve error. */
static int exec_failed(pid_t w, pid_t tid, int status, struct diag_error *err)
{
	diag_regs regs;
	long rc = diag_regs_read(w, &regs) == 0 ? (long)diag_regs_ret(&regs) : 0;
	int sig = (status >> 16) == 0 ? WSTOPSIG(status) : 0;
	diag_thread_detach(w, sig);
	if (rc < 0 && rc > -4096) /* execve's own error, as the thread sees it */
		return diag_error_set(err, (int)rc, "tid %d: its exec failed (%s): not adopted",
				      (int)tid, strerror((int)-rc));
	return diag_error_set(err, -DIAG_E_GONE, "tid %d: its exec failed: not adopted", (int)tid);
}

/* The engine's record of the new image, held at its exec stop (thread w, the leader). */
static int hold_new_image(struct diag_engine *e, pid_t w, struct diag_error *err)
{
	struct diag_proc *tp;
	int r = diag_proc_adopt(w, NULL, &tp);
	if (r < 0) {
		diag_thread_detach(w, 0);
		return diag_error_set(err, r, "pid %d: at its exec: %s", (int)w, strerror(-r));
	}
	struct diag_thread *t = diag_proc_thread(tp, w);
	t->stopped = true;
	t->announced = true;
	t->event = PTRACE_EVENT_EXEC; /* until resumed: still inside execve */
	struct eproc *ep = eng_proc_new(e, tp);
	if (!ep || eng_thread_track(e, t) < 0) {
		if (ep)
			diag_u64map_del(&e->procs, (uint64_t)w);
		free(ep);
		diag_thread_detach(w, 0);
		diag_proc_free(tp);
		return diag_error_set(err, -ENOMEM, "pid %d: at its exec: out of memory", (int)w);
	}
	/* PID-STARTTIME survives an exec: a journal a dead predecessor left is about the old
	 * image, which is gone; opening ours truncates it */
	eng_journal_open(e, ep, NULL);
	ep->freeze++;
	ep->held = true;
	return 0;
}

/* Every tracee's stops served as the dispatch would, until done says so or ep's process is
 * gone (false then). */
static bool serve_until(struct diag_engine *e, struct eproc *ep, pid_t tgid, pid_t tid,
			bool (*done)(const struct diag_engine *e, const struct eproc *ep, pid_t tid))
{
	while (diag_u64map_get(&e->procs, (uint64_t)tgid) == ep && !done(e, ep, tid)) {
		int status;
		pid_t w = eng_wait_secure(e, -1, &status, 0);
		if (w < 0)
			break;
		eng_wait_serve(e, w, status);
	}
	return diag_u64map_get(&e->procs, (uint64_t)tgid) == ep;
}

static bool exec_done(const struct diag_engine *e, const struct eproc *ep, pid_t tid)
{
	(void)e;
	(void)tid;
	return ep->exec_outcome != 0;
}

/* The open's thread stopped as its open returned, or it is gone. */
static bool open_done(const struct diag_engine *e, const struct eproc *ep, pid_t tid)
{
	return ep->open_held || !diag_u64map_get(&e->threads, (uint64_t)tid);
}

/* A thread of a process we trace already is at the gate: its exec stop, served by the usual
 * exec path (its probes placed again), holds it; an interrupt queued now bounds the wait as
 * for a new one. Other tracees' stops are served meanwhile. */
static int adopt_traced(struct diag_engine *e, pid_t tid, pid_t tgid, int (*allow)(void *arg),
			void *arg, pid_t *pid, struct diag_error *err)
{
	struct eproc *ep = diag_u64map_get(&e->procs, (uint64_t)tgid);
	int r = diag_thread_interrupt(tid);
	if (r == 0) {
		ep->exec_waiter = tid;
		ep->exec_outcome = 0;
	}
	allow(arg);
	if (r < 0)
		return diag_error_set(err, r, "tid %d: cannot interrupt it at its exec: %s", (int)tid,
				      strerror(-r));
	if (!serve_until(e, ep, tgid, tid, exec_done))
		return diag_error_set(err, -DIAG_E_GONE, "tid %d: its process %d exited before its "
				      "exec completed", (int)tid, (int)tgid);
	ep->exec_waiter = 0;
	if (ep->exec_outcome <= 0)
		return diag_error_set(err, -DIAG_E_GONE, "tid %d: its exec failed (it is still "
				      "traced, as before)", (int)tid);
	*pid = tgid;
	return 0;
}

int diag_engine_adopt_exec(struct diag_engine *e, pid_t tid, int (*allow)(void *arg), void *arg,
			   pid_t *pid, struct diag_error *err)
{
	pid_t tgid = tgid_of(tid);
	if (diag_u64map_get(&e->procs, (uint64_t)tgid) &&
	    diag_u64map_get(&e->threads, (uint64_t)tid))
		return adopt_traced(e, tid, tgid, allow, arg, pid, err);
	struct diag_error serr = {0};
	int r = diag_thread_seize_exec(tid, &serr);
	allow(arg); /* in every case: an exec never waits on the engine */
	if (r < 0) {
		if (err)
			*err = serr;
		return r;
	}
	for (;;) {
		int status;
		pid_t w = wait_thread(e, tid, tgid, &status);
		if (w < 0)
			return diag_error_set(err, w, "tid %d: lost while waiting for its exec: %s",
					      (int)tid, strerror(-w));
		if (WIFSIGNALED(status))
			return diag_error_set(err, -DIAG_E_GONE,
					      "tid %d: killed (signal %d) before its exec completed",
					      (int)tid, WTERMSIG(status));
		if (WIFEXITED(status))
			return diag_error_set(err, -DIAG_E_GONE,
					      "tid %d: exited (status %d) before its exec completed",
					      (int)tid, WEXITSTATUS(status));
		int event = status >> 16;
		if (event == PTRACE_EVENT_EXIT) { /* dying: its death comes next */
			ptrace(PTRACE_CONT, w, 0, 0);
			continue;
		}
		if (event != PTRACE_EVENT_EXEC)
			return exec_failed(w, tid, status, err);
		r = hold_new_image(e, w, err);
		if (r < 0)
			return r;
		*pid = w;
		return 0;
	}
}

int eng_adopt_seize(struct diag_engine *e, pid_t pid, struct eproc **out, struct diag_error *err)
{
	struct diag_proc *tp;
	int r = diag_proc_seize(pid, &tp, err);
	if (r < 0)
		return r;
	struct eproc *ep = eng_proc_new(e, tp);
	if (!ep) {
		diag_proc_free(tp);
		return diag_error_set(err, -ENOMEM, "out of memory");
	}
	size_t pos = 0;
	uint64_t k;
	void *v;
	while (diag_u64map_next(&tp->threads, &pos, &k, &v))
		if (eng_thread_track(e, v) < 0)
			return diag_error_set(err, -ENOMEM, "out of memory");
	*out = ep;
	return 0;
}

int eng_adopt_journal(struct diag_engine *e, struct eproc *ep, struct diag_error *err)
{
	pid_t pid = ep->tp->pid;
	struct diag_journal_report rep;
	int rr = eng_journal_recover(e, ep, &rep);
	if (rr == 0)
		e->recovered += rep.restored;
	if (diag_u64map_get(&e->procs, (uint64_t)pid) != ep)
		return diag_error_set(err, -ESRCH, "pid %d: exited while attaching", (int)pid);
	if (rr < 0) { /* opening our own journal would truncate the predecessor's */
		eng_proc_detach(e, ep);
		return diag_error_set(err, rr,
				      "pid %d: the patches a previous daemon left could not be taken "
				      "out (%s); not attached, its journal is kept",
				      (int)pid, diag_strerror(rr));
	}
	eng_journal_open(e, ep, NULL);
	eng_journal_sweep(e); /* of processes gone since the daemon started */
	return 0;
}

/* The open's thread, interrupted and allowed: its stop (as the open returns) or its end. */
static int wait_open(struct diag_engine *e, struct eproc *ep, pid_t tid, pid_t tgid,
		     struct diag_error *err)
{
	if (!serve_until(e, ep, tgid, tid, open_done))
		return diag_error_set(err, -DIAG_E_GONE, "tid %d: its process %d exited before its "
				      "open of the library returned", (int)tid, (int)tgid);
	if (ep->open_held)
		return 0;
	ep->open_waiter = 0;
	return diag_error_set(err, -DIAG_E_GONE, "tid %d: exited before its open of the library "
			      "returned", (int)tid);
}

int diag_engine_adopt_open(struct diag_engine *e, pid_t tid, int (*allow)(void *arg), void *arg,
			   pid_t *pid, struct diag_error *err)
{
	pid_t tgid = tgid_of(tid);
	struct eproc *ep = diag_u64map_get(&e->procs, (uint64_t)tgid);
	bool fresh = !ep;
	int r = fresh ? eng_adopt_seize(e, tgid, &ep, err) : 0;
	if (r == 0 && !diag_u64map_get(&e->threads, (uint64_t)tid))
		r = diag_error_set(err, -ESRCH, "tid %d: not a thread of process %d the engine "
				   "knows", (int)tid, (int)tgid);
	if (r == 0 && ep->open_waiter)
		r = diag_error_set(err, -EBUSY, "process %d: thread %d is held at a library's open "
				   "already", (int)tgid, (int)ep->open_waiter);
	if (r == 0 && (r = diag_thread_interrupt(tid)) < 0)
		diag_error_set(err, r, "tid %d: cannot interrupt it at its open: %s", (int)tid,
			       strerror(-r));
	if (r == 0) {
		ep->open_waiter = tid;
		ep->open_held = false;
	}
	allow(arg); /* in every case: an open never waits on the engine */
	if (r == 0)
		r = wait_open(e, ep, tid, tgid, err);
	if (r < 0) {
		if (fresh && ep && diag_u64map_get(&e->procs, (uint64_t)tgid) == ep)
			eng_proc_detach(e, ep);
		return r;
	}
	if (fresh && (r = eng_adopt_journal(e, ep, err)) < 0)
		return r;
	*pid = tgid;
	return 0;
}

int diag_engine_release(struct diag_engine *e, pid_t pid)
{
	struct eproc *ep = diag_u64map_get(&e->procs, (uint64_t)pid);
	if (!ep || !ep->held)
		return 0;
	ep->held = false;
	/* the owner may have taken longer than the heartbeat to place its probes: the jumps
	 * must record from the first instruction the new image runs */
	eng_fast_drain(e, ep);
	eng_thaw(e, ep);
	return 0;
}
