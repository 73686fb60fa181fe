/* engine: the wait loop over every traced thread, breakpoint hits, process life (clone, fork,
 * vfork, exec, exit), attach and detach. A hit stops its thread only while registers and the
 * capture plan's memory are read; the thread is resumed (at the out-of-line slot) before the
 * value is rendered and reported. */
#include "engine/engine_internal.h"
#include "util/clock.h"
#include "dwarf/dwarf.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- bookkeeping of processes and threads ---- */

static struct eproc *eproc_new(struct diag_engine *e, struct diag_proc *tp)
{
	struct eproc *ep = calloc(1, sizeof(*ep));
	if (!ep)
		return NULL;
	ep->tp = tp;
	tp->owner = ep;
	ep->seccomp = -1;
	ep->journal_fd = -1;
	diag_bptable_init(&ep->bps);
	eng_hooks_set(ep);
	diag_u64map_init(&ep->jumps);
	if (diag_u64map_put(&e->procs, (uint64_t)tp->pid, ep) < 0) {
		free(ep);
		return NULL;
	}
	return ep;
}

static int track_thread(struct diag_engine *e, struct diag_thread *t)
{
	return diag_u64map_put(&e->threads, (uint64_t)t->tid, t);
}

static void forget_thread(struct diag_engine *e, struct diag_thread *t)
{
	diag_u64map_del(&e->threads, (uint64_t)t->tid);
	diag_proc_del_thread(t->proc, t->tid);
}

/* Drop a process without touching it (it exited or is being left). */
static void eproc_drop(struct diag_engine *e, struct eproc *ep)
{
	size_t pos = 0;
	uint64_t k;
	void *v;
	while (diag_u64map_next(&ep->tp->threads, &pos, &k, &v))
		diag_u64map_del(&e->threads, k);
	while (ep->probes) {
		struct probe *pr = ep->probes;
		ep->probes = pr->next;
		eng_probe_forget_sites(pr);
		eng_probe_free(pr);
	}
	eng_dl_unwatch(ep, false);
	diag_bptable_release(&ep->bps);
	diag_u64map_release(&ep->jumps);
	eng_safety_forget(ep);
	eng_journal_close(ep, true); /* gone, or left with every byte restored */
	diag_u64map_del(&e->procs, (uint64_t)ep->tp->pid);
	eng_stack_forget(e, ep);
	diag_proc_free(ep->tp);
	free(ep);
}

/* ---- hits ---- */

struct mem_arg {
	struct diag_proc *p;
	pid_t tid;
};

static ssize_t read_mem_cb(void *arg, uint64_t addr, void *buf, size_t len)
{
	return diag_proc_read(((struct mem_arg *)arg)->p, addr, buf, len);
}

static int read_fpregs_cb(void *arg, struct user_fpregs_struct *out)
{
	return ptrace(PTRACE_GETFPREGS, ((struct mem_arg *)arg)->tid, 0, out) < 0 ? -errno : 0;
}

static int ensure_scratch(struct diag_engine *e, size_t n)
{
	if (n <= e->nscratch)
		return 0;
	struct diag_expr_result *s = realloc(e->scratch, n * sizeof(*s));
	if (!s)
		return -ENOMEM;
	e->scratch = s;
	e->nscratch = n;
	return 0;
}

/* While the thread is stopped (or from a recorded snapshot): conditions and captures.
 * Returns how many sites fired; their results are in e->scratch and the sites in fired[]. */
/* seq: the ring record of a fast-path hit (0 for a trap): a site that joined the jump after
 * the record was reserved does not see it. */
size_t eng_capture(struct diag_engine *e, struct diag_thread *t, struct diag_bp *bp,
		     const struct diag_expr_ctx *ctx, uint64_t seq, struct site **fired)
{
	if (ensure_scratch(e, bp->nusers + 1) < 0)
		return 0;
	size_t n = 0;
	for (size_t i = 0; i < bp->nusers; i++) {
		struct site *s = bp->users[i], *x = s;
		struct diag_expr_ctx c = *ctx;
		if (seq && seq <= s->fast_seq0)
			continue;
		if (s->kind == SITE_DL) {
			if (t)
				eproc_mem(eproc_of(t->proc))->dl_dirty = true;
			continue;
		}
		if (s->kind == SITE_RET_ENTRY) {
			if (t)
				eng_ret_enter(e, t, s, ctx->regs, ctx->time_ns);
			continue;
		}
		if (s->kind == SITE_RET) {
			uint64_t t0 = 0;
			if (!t || !(x = eng_ret_match(t, s, ctx->regs->rsp, &t0)))
				continue; /* not a frame of this probe returning */
			c.elapsed_ns = ctx->time_ns - t0;
		}
		if (t) /* jump sites count in the target instead */
			s->pr->trapped++;
		if (x->condition) {
			diag_expr_eval(x->condition, &c, &e->scratch[n]);
			if (!diag_expr_truthy(&e->scratch[n])) {
				s->pr->filtered++;
				continue;
			}
		}
		if (x->value)
			diag_expr_eval(x->value, &c, &e->scratch[n]);
		s->pr->hits++;
		fired[n++] = x; /* the site holding the expressions (the entry, for returns) */
	}
	return n;
}

void eng_fire(struct diag_engine *e, struct diag_thread *t, pid_t pid, pid_t tid,
		struct site **fired, size_t n, uint64_t ts)
{
	(void)t;
	char text[DIAG_EXPR_MAX_BYTES + 64];
	e->hits += n;
	for (size_t i = 0; i < n; i++) {
		struct diag_engine_hit hit = {
			.cookie = fired[i]->pr->cookie, .pid = pid, .tid = tid,
			.time_ns = ts, .kind = fired[i]->pr->event,
			.value = {.kind = DIAG_VALUE_NONE, .text = ""},
		};
		if (fired[i]->value)
			diag_expr_render(fired[i]->value, &e->scratch[i], text, sizeof(text),
					 &hit.value);
		if (e->cb.on_hit)
			e->cb.on_hit(e->cb.ctx, &hit);
	}
}

static void on_trap(struct diag_engine *e, struct diag_thread *t)
{
	struct user_regs_struct regs;
	bool moved = e->moved_tid == t->tid;
	e->moved_tid = 0;
	if (moved)
		regs = e->moved_regs;
	else if (ptrace(PTRACE_GETREGS, t->tid, 0, &regs) < 0)
		return; /* gone: its exit is reported next */
	struct eproc *mem = eproc_mem(eproc_of(t->proc));
	uint64_t addr = regs.rip - 1;
	struct diag_bp *bp = diag_bp_at(&mem->bps, addr);
	bool frozen = eproc_of(t->proc)->freeze > 0;
	if (!bp) {
		if (diag_u64map_get(&mem->bps.tombstones, addr)) {
			/* trapped on a breakpoint removed since: run the restored instruction */
			if (!moved) {
				regs.rip = addr;
				ptrace(PTRACE_SETREGS, t->tid, 0, &regs);
			}
			if (!frozen)
				diag_thread_resume(t, 0);
		} else {
			diag_thread_resume(t, SIGTRAP); /* the target's own trap */
		}
		return;
	}
	if (!moved) { /* reaped by a wait that could not secure it first (see wait_secure) */
		struct user_regs_struct at_slot = regs;
		at_slot.rip = bp->slot;
		ptrace(PTRACE_SETREGS, t->tid, 0, &at_slot);
	}
	uint64_t ts = (uint64_t)diag_clock_wall_ns(), t0 = (uint64_t)diag_clock_mono_ns();
	struct site *fired_small[8], **fired = fired_small;
	if (bp->nusers > 8 && !(fired = malloc(bp->nusers * sizeof(*fired))))
		fired = NULL;
	struct mem_arg ma = {t->proc, t->tid};
	struct eng_stack_req sr = {e, eproc_of(t->proc), t->tid, &regs, addr};
	struct diag_expr_ctx ctx = {
		.pid = t->proc->pid, .tid = t->tid, .regs = &regs, .read_fpregs = read_fpregs_cb,
		.read_mem = read_mem_cb, .arg = &ma, .time_ns = ts, .comm = diag_thread_comm(t),
		.stack = eng_stack_text, .stack_arg = &sr,
	};
	if (t->ext)
		eng_ret_purge(t, bp, regs.rsp);
	size_t n = fired ? eng_capture(e, t, bp, &ctx, 0, fired) : 0;
	/* At r_brk the thread waits until the pending probes are placed: resumed first, it ran
	 * into the library (or main, at startup) unprobed while they were, and a generation of a
	 * program that execs lost its first calls. */
	bool dl = mem->dl_dirty;
	if (!frozen && !dl) /* a frozen thread waits at its slot (never reused) for the thaw */
		diag_thread_resume(t, 0);
	/* what the governor limits (issues 6, 15): from the wait's report of the stop to the CONT */
	uint64_t from = e->reported_ns && e->reported_ns <= t0 ? e->reported_ns : t0;
	uint64_t stopped = (uint64_t)diag_clock_mono_ns() - from;
	for (size_t i = 0; i < bp->nusers; i++)
		((struct site *)bp->users[i])->pr->stopped_ns += stopped;
	pid_t tid = t->tid;
	eng_fire(e, t, t->proc->pid, tid, fired, n, ts);
	if (fired != fired_small)
		free(fired);
	if (!dl)
		return;
	mem->dl_dirty = false;
	eng_dl_changed(e, mem); /* may see the process exit: t is looked up again */
	if (!frozen && (t = diag_u64map_get(&e->threads, (uint64_t)tid)) &&
	    !eproc_of(t->proc)->freeze)
		diag_thread_resume(t, 0);
}

/* ---- process life ---- */

/* The first stop of a new thread or child: it was auto-attached and starts stopped. */
static void claim_orphan(struct diag_engine *e, struct diag_thread *t)
{
	void *st = diag_u64map_del(&e->orphans, (uint64_t)t->tid);
	t->announced = true;
	if (st) {
		t->stopped = true;
		if (!eproc_of(t->proc)->freeze)
			diag_thread_resume(t, 0);
	}
}

static void on_clone(struct diag_engine *e, struct diag_thread *parent, pid_t tid)
{
	struct diag_thread *t = diag_proc_add_thread(parent->proc, tid);
	if (!t || track_thread(e, t) < 0)
		return;
	claim_orphan(e, t);
}

static void on_fork(struct diag_engine *e, struct diag_thread *parent, pid_t child, bool vfork)
{
	struct eproc *pep = eproc_of(parent->proc);
	struct diag_proc *tp;
	if (diag_proc_adopt(child, vfork ? eproc_mem(pep)->tp : NULL, &tp) < 0)
		return;
	struct eproc *cep = eproc_new(e, tp);
	if (!cep) {
		diag_proc_free(tp);
		return;
	}
	struct diag_thread *t = diag_proc_thread(tp, child);
	track_thread(e, t);
	/* The child's copy of memory already holds our int3s and slots. */
	if (!vfork && diag_bptable_clone(&cep->bps, &eproc_mem(pep)->bps) < 0)
		diag_bptable_init(&cep->bps);
	eng_hooks_set(cep);
	if (!vfork) /* its copied memory holds the parent's patches: so does its journal */
		eng_journal_open(e, cep, eproc_mem(pep)->journal_path);
	if (!vfork) {
		eng_fast_fork(e, cep, eproc_mem(pep));
		eng_safety_fork(cep, eproc_mem(pep));
	}
	if (e->cb.on_process)
		e->cb.on_process(e->cb.ctx, pep->tp->pid, DIAG_PROC_FORK, child);
	eng_probes_clone_sites(e, cep, eproc_mem(pep) == pep ? pep : eproc_mem(pep));
	claim_orphan(e, t);
}

static void on_exec(struct diag_engine *e, struct diag_thread *t)
{
	struct diag_proc *tp = t->proc;
	struct eproc *ep = eproc_of(tp);
	/* Every other thread is gone; the exec'ing thread now carries the leader's tid. */
	size_t pos = 0;
	uint64_t k;
	void *v;
	while (diag_u64map_next(&tp->threads, &pos, &k, &v))
		if ((pid_t)k != tp->pid && v != t)
			forget_thread(e, v);
	if (t->tid != tp->pid) {
		diag_u64map_del(&e->threads, (uint64_t)t->tid);
		diag_u64map_del(&tp->threads, (uint64_t)t->tid);
		struct diag_thread *leader = diag_proc_add_thread(tp, tp->pid);
		if (leader && leader != t) {
			leader->stopped = true;
			leader->announced = true;
			free(t);
			t = leader;
		}
		track_thread(e, t);
	}
	t->event = PTRACE_EVENT_EXEC; /* until resumed: still inside execve */
	/* The stop arrives under the leader's tid, so t is the leader's record: when another
	 * thread exec'd, the leader's own exit stop marked it a zombie, which would refuse every
	 * remote syscall and stop of the new image ("no thread left"). It is alive again. */
	t->zombie = false;
	t->group_stop = false;
	t->comm_ns = 0; /* exec renames it */
	t->announced = true;
	if (e->moved_tid == t->tid)
		e->moved_tid = 0; /* registers of the old image */
	/* A new image: the old breakpoints and slot pages went with the old one. */
	for (struct probe *pr = ep->probes; pr; pr = pr->next)
		eng_probe_forget_sites(pr);
	free(t->ext); /* frames waiting for returns into the old image */
	t->ext = NULL;
	diag_bptable_release(&ep->bps);
	diag_bptable_init(&ep->bps);
	eng_hooks_set(ep);
	eng_journal_reset(e, ep); /* a new image: nothing of ours is in it */
	diag_u64map_release(&ep->jumps);
	eng_dl_unwatch(ep, false);
	eng_safety_forget(ep); /* exec reset the action and unmapped the handler */
	ep->ring_addr = 0;
	ep->ring_tail = ep->ring_drops = 0;
	ep->ring_stalls = 0;
	ep->next_site = 0; /* the new ring's counters start from the first */
	ep->seccomp = -1;
	eng_stack_forget(e, ep); /* the old image's modules */
	if (tp->mem_owner) { /* a vfork child gets its own memory at exec */
		tp->mem_owner = NULL;
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/mem", (int)tp->pid);
		tp->memfd = open(path, O_RDWR | O_CLOEXEC);
	} else {
		/* the old /proc/PID/mem refers to the old address space */
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/mem", (int)tp->pid);
		int fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd >= 0) {
			close(tp->memfd);
			tp->memfd = fd;
		}
	}
	tp->syscall_insn = 0;
	if (e->cb.on_process)
		e->cb.on_process(e->cb.ctx, tp->pid, DIAG_PROC_EXEC, 0);
	for (struct probe *pr = ep->probes; pr; pr = pr->next) {
		struct diag_error err = {0};
		eng_probe_install(e, ep, pr, &err);
		if (e->cb.on_probe_state)
			e->cb.on_probe_state(e->cb.ctx, tp->pid, pr->cookie, pr->state,
					     pr->state == DIAG_PROBE_ERROR ? pr->error : NULL);
	}
	if (!ep->freeze)
		diag_thread_resume(t, 0);
}

static void on_thread_gone(struct diag_engine *e, struct diag_thread *t)
{
	struct diag_proc *tp = t->proc;
	struct eproc *ep = eproc_of(tp);
	pid_t pid = tp->pid;
	bool leader = t->tid == pid;
	forget_thread(e, t);
	if (!leader)
		return;
	/* A vfork parent's children using its memory lose nothing: they exit or exec first. */
	for (struct probe *pr = ep->probes; pr; pr = pr->next)
		if (e->cb.on_probe_state)
			e->cb.on_probe_state(e->cb.ctx, pid, pr->cookie, DIAG_PROBE_REMOVED,
					     "process exited");
	if (e->cb.on_process)
		e->cb.on_process(e->cb.ctx, pid, DIAG_PROC_EXIT, 0);
	eproc_drop(e, ep);
}

static void on_event_stop(struct diag_engine *e, struct diag_thread *t, int sig)
{
	bool job = sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU;
	t->group_stop = job;
	if (!t->announced) {
		claim_orphan(e, t);
		return;
	}
	if (eproc_of(t->proc)->freeze)
		return;
	/* A job-control stop stays a stop (PTRACE_LISTEN); an interrupt nobody waits for
	 * just continues. */
	diag_thread_resume(t, 0);
}

static void snapshot_counts(struct eproc *mem)
{
	for (struct probe *pr = mem->probes; pr; pr = pr->next) {
		uint64_t n = 0;
		for (size_t i = 0; i < pr->nsites; i++)
			n += eng_fast_site_count(mem, &pr->sites[i]);
		if (n > pr->fast_counted)
			pr->fast_counted = n;
	}
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
		ptrace(PTRACE_GETEVENTMSG, t->tid, 0, &msg);
		t->event = event; /* until resumed: inside the syscall (diag_thread_syscall) */
		if (event == PTRACE_EVENT_CLONE)
			on_clone(e, t, (pid_t)msg);
		else
			on_fork(e, t, (pid_t)msg, event == PTRACE_EVENT_VFORK);
		if (!eproc_of(t->proc)->freeze)
			diag_thread_resume(t, 0);
		return;
	case PTRACE_EVENT_EXEC:
		on_exec(e, t);
		return;
	case PTRACE_EVENT_STOP:
		on_event_stop(e, t, sig);
		return;
	case PTRACE_EVENT_EXIT:
		/* it is exiting: never borrow it again (resuming it lets it die under us) */
		t->zombie = true;
		/* the last moment the ring is readable: hits recorded just before exit count */
		eng_fast_drain(e, eproc_mem(eproc_of(t->proc)));
		snapshot_counts(eproc_mem(eproc_of(t->proc)));
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
		on_trap(e, t);
	} else if (sig == (SIGTRAP | 0x80)) {
		diag_thread_resume(t, 0); /* a syscall stop nobody asked for */
	} else if (eproc_of(t->proc)->freeze) {
		t->pending_sig = sig;
	} else {
		diag_thread_resume(t, sig); /* the target's own signal, delivered unchanged */
	}
}

/* A thread at one of our int3s goes to its slot (or, the int3 removed since, back to the
 * restored instruction) while its stop is still unreported. Linux keeps the SIGTRAP of a
 * ptrace-stop only until a wait reports it: if the tracer dies after that, the thread runs on
 * with no signal, and at addr + 1 it would skip the displaced instruction. Moved first, it
 * runs the slot instead; dead before the move, we leave the SIGTRAP pending and the safety
 * handler does the move. (docs/reliability.md) */
static void secure_trap(struct diag_engine *e, pid_t tid)
{
	struct diag_thread *t = diag_u64map_get(&e->threads, (uint64_t)tid);
	struct user_regs_struct regs;
	if (!t || ptrace(PTRACE_GETREGS, tid, 0, &regs) < 0)
		return;
	struct diag_bptable *bps = &eproc_mem(eproc_of(t->proc))->bps;
	uint64_t addr = regs.rip - 1, to;
	struct diag_bp *bp = diag_bp_at(bps, addr);
	if (bp && !bp->jump)
		to = bp->slot;
	else if (!bp && diag_u64map_get(&bps->tombstones, addr))
		to = addr; /* removed since it trapped: the original instruction is back */
	else
		return; /* the target's own trap */
	struct user_regs_struct at = regs;
	at.rip = to;
	if (ptrace(PTRACE_SETREGS, tid, 0, &at) == 0) {
		e->moved_tid = tid;
		e->moved_regs = regs;
	}
}

/* waitpid(which, status, flags | __WALL) that secures a breakpoint trap before reaping it.
 * Returns the tid, 0 (WNOHANG, nothing) or a negative errno. */
static pid_t wait_secure(struct diag_engine *e, pid_t which, int *status, int flags)
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

static void handle_status(struct diag_engine *e, pid_t tid, int status)
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
		on_thread_gone(e, t);
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
	}
	for (;;) {
		int status;
		pid_t w = wait_secure(e, -1, &status, WNOHANG);
		if (w == 0 || w == -ECHILD)
			return 0;
		if (w < 0)
			return w;
		handle_status(e, w, status);
		if ((uint64_t)diag_clock_mono_ns() - start > DISPATCH_MAX_NS) {
			more = 1;
			return write(e->morefd, &more, sizeof(more)) < 0 ? -errno : 0;
		}
	}
}

/* ---- stopping threads for the engine's own use ---- */

/* Interrupt t and wait until it is in a ptrace-stop, handling every other stop of t on the
 * way (hits are served as usual). Returns 0, or -ESRCH when it exited. */
static int stop_thread(struct diag_engine *e, struct diag_thread *t)
{
	pid_t tid = t->tid;
	if (t->stopped)
		return 0;
	if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0)
		return -errno;
	for (;;) {
		int status;
		pid_t w = wait_secure(e, tid, &status, 0);
		if (w < 0)
			return w;
		if (!diag_u64map_get(&e->threads, (uint64_t)tid))
			return -ESRCH;
		if (WIFSTOPPED(status) && (status >> 16) == PTRACE_EVENT_STOP && t->announced) {
			/* our interrupt; a job-stopped thread re-traps with its stop signal and
			 * goes back to its group-stop (PTRACE_LISTEN) when we resume it */
			int sig = WSTOPSIG(status);
			t->stopped = true;
			t->group_stop = sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN ||
					sig == SIGTTOU;
			return 0;
		}
		handle_status(e, tid, status);
		if (!diag_u64map_get(&e->threads, (uint64_t)tid))
			return -ESRCH;
		if (t->stopped) /* kept stopped (freeze) */
			return 0;
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
			forget_thread(e, t);
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

/* ---- API ---- */

int diag_engine_new(const struct diag_engine_callbacks *cb, struct diag_engine **out)
{
	struct diag_engine *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->sigfd = e->timerfd = e->epfd = e->morefd = -1;
	if (cb)
		e->cb = *cb;
	diag_u64map_init(&e->procs);
	diag_u64map_init(&e->threads);
	diag_u64map_init(&e->orphans);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	/* Tracee stops arrive as SIGCHLD: read through a signalfd so the caller can poll. */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	e->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	e->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	e->epfd = epoll_create1(EPOLL_CLOEXEC);
	e->morefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	e->no_fast = getenv("DIAG_NO_FASTPATH") != NULL;
	const char *jd = getenv("DIAG_JOURNAL_DIR");
	snprintf(e->journal_dir, sizeof(e->journal_dir), "%s", jd ? jd : "/run/diagnose/journal");
	int r = e->sigfd < 0 || e->timerfd < 0 || e->epfd < 0 || e->morefd < 0 ? -errno : 0;
	struct epoll_event ev = {.events = EPOLLIN};
	if (r == 0 && (epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->sigfd, &ev) < 0 ||
		       epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->timerfd, &ev) < 0 ||
		       epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->morefd, &ev) < 0))
		r = -errno;
	if (r == 0)
		r = diag_symcache_new(&e->syms);
	if (r == 0)
		r = diag_dwarf_cache_new(&e->dwarf);
	if (r == 0) /* one DWARF index per file, for symbols (inlined copies, lines) and values */
		diag_symcache_set_dwarf(e->syms, e->dwarf);
	if (r < 0) {
		diag_engine_free(e);
		return r;
	}
	eng_journal_sweep(e);
	*out = e;
	return 0;
}

int diag_engine_use_indexer(struct diag_engine *e, struct diag_indexer *ix)
{
	struct diag_dwarf_cache *dc = NULL;
	int r = diag_dwarf_cache_new_remote(ix, &dc);
	if (r < 0)
		return r;
	diag_dwarf_cache_free(e->dwarf);
	e->dwarf = dc;
	diag_symcache_set_dwarf(e->syms, dc);
	diag_symcache_set_indexer(e->syms, ix);
	return 0;
}

int diag_engine_fd(const struct diag_engine *e)
{
	return e->epfd;
}

bool diag_engine_attached(const struct diag_engine *e, pid_t pid)
{
	return diag_u64map_get(&e->procs, (uint64_t)pid) != NULL;
}

size_t diag_engine_pids(const struct diag_engine *e, pid_t *pids, size_t cap)
{
	size_t pos = 0, n = 0;
	uint64_t k;
	void *v;
	while (diag_u64map_next(&e->procs, &pos, &k, &v))
		if (n < cap)
			pids[n++] = (pid_t)k;
	return n;
}

int diag_engine_attach(struct diag_engine *e, pid_t pid, struct diag_error *err)
{
	if (diag_engine_attached(e, pid))
		return 0;
	struct diag_proc *tp;
	int r = diag_proc_seize(pid, &tp, err);
	if (r < 0)
		return r;
	struct eproc *ep = eproc_new(e, tp);
	if (!ep) {
		diag_proc_free(tp);
		return diag_error_set(err, -ENOMEM, "out of memory");
	}
	size_t pos = 0;
	uint64_t k;
	void *v;
	while (diag_u64map_next(&tp->threads, &pos, &k, &v))
		if (track_thread(e, v) < 0)
			return diag_error_set(err, -ENOMEM, "out of memory");
	/* a predecessor that died left its patches: take them out before anything else */
	struct diag_journal_report rep;
	int rr = eng_journal_recover(e, ep, &rep);
	if (rr == 0)
		e->recovered += rep.restored;
	if (!diag_u64map_get(&e->procs, (uint64_t)pid))
		return diag_error_set(err, -ESRCH, "pid %d: exited while attaching", (int)pid);
	if (rr < 0) { /* opening our own journal would truncate the predecessor's */
		diag_engine_detach(e, pid, NULL);
		return diag_error_set(err, rr,
				      "pid %d: the patches a previous daemon left could not be taken "
				      "out (%s); not attached, its journal is kept",
				      (int)pid, diag_strerror(rr));
	}
	eng_journal_open(e, ep, NULL);
	eng_journal_sweep(e); /* of processes gone since the daemon started */
	return 0;
}

static struct probe *find_probe(const struct eproc *ep, void *cookie, struct probe ***link)
{
	struct probe **pp = (struct probe **)&ep->probes;
	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->cookie == cookie) {
			if (link)
				*link = pp;
			return *pp;
		}
	return NULL;
}

int diag_engine_probe_remove(struct diag_engine *e, pid_t pid, void *cookie)
{
	struct eproc *ep = diag_u64map_get(&e->procs, (uint64_t)pid);
	struct probe **link;
	struct probe *pr = ep ? find_probe(ep, cookie, &link) : NULL;
	if (!pr)
		return -ENOENT;
	*link = pr->next;
	eng_probe_uninstall(e, ep, pr);
	eng_probe_free(pr);
	return 0;
}

int diag_engine_probe_add(struct diag_engine *e, pid_t pid, const struct diag_probe_def *def,
			  struct diag_error *err)
{
	struct eproc *ep = diag_u64map_get(&e->procs, (uint64_t)pid);
	if (!ep)
		return diag_error_set(err, -ESRCH, "process %d is not attached", (int)pid);
	if (!def->target || !*def->target)
		return diag_error_set(err, -DIAG_E_INVALID, "target: empty");
	struct probe tmpl = {
		.cookie = def->cookie, .event = def->event, .target = (char *)def->target,
		.value = (char *)def->value, .condition = (char *)def->condition,
	};
	struct probe *pr = eng_probe_copy(&tmpl);
	if (!pr)
		return diag_error_set(err, -ENOMEM, "out of memory");
	diag_engine_probe_remove(e, pid, def->cookie);
	int r = eng_probe_install(e, ep, pr, err);
	if (r < 0) {
		eng_probe_free(pr);
		return r;
	}
	pr->next = ep->probes;
	ep->probes = pr;
	return 0;
}

int diag_engine_probe_info(const struct diag_engine *e, pid_t pid, void *cookie,
			   struct diag_probe_info *out)
{
	struct eproc *ep = diag_u64map_get(&e->procs, (uint64_t)pid);
	struct probe *pr = ep ? find_probe(ep, cookie, NULL) : NULL;
	if (!pr)
		return -ENOENT;
	memset(out, 0, sizeof(*out));
	out->state = pr->state;
	out->events = pr->hits;
	uint64_t counted = 0;
	for (size_t i = 0; i < pr->nsites; i++)
		counted += eng_fast_site_count(eproc_mem(ep), &pr->sites[i]);
	/* the counters die with the process: the snapshot taken at its exit stands in */
	out->hits = pr->trapped + (counted > pr->fast_counted ? counted : pr->fast_counted);
	out->filtered = pr->filtered;
	out->dropped = eproc_mem(ep)->ring_drops;
	out->stopped_ns = pr->stopped_ns;
	out->lost_returns = pr->lost_returns;
	size_t tpos = 0;
	uint64_t tk;
	void *tv;
	while (diag_u64map_next(&ep->tp->threads, &tpos, &tk, &tv)) {
		const struct tpending *tp = ((struct diag_thread *)tv)->ext;
		for (size_t i = 0; tp && i < tp->n; i++)
			out->pending += tp->v[i].entry->pr == pr;
	}
	out->fast = pr->nsites > 0;
	for (size_t i = 0; i < pr->nsites; i++)
		if (!pr->sites[i].bp || !pr->sites[i].bp->jump)
			out->fast = false;
	for (size_t i = 0; i < pr->nsites && out->naddrs < DIAG_PROBE_MAX_ADDRS; i++)
		if (pr->sites[i].bp) {
			snprintf(out->inst[out->naddrs].what, sizeof(out->inst[0].what), "%s",
				 pr->sites[i].what);
			out->inst[out->naddrs].fast = pr->sites[i].bp->jump;
			out->addrs[out->naddrs++] = pr->sites[i].bp->addr;
		}
	out->nskips = pr->nskips;
	for (size_t i = 0; i < pr->nskips && i < DIAG_PROBE_MAX_SKIPS; i++) {
		snprintf(out->skips[i].what, sizeof(out->skips[i].what), "%s", pr->skips[i].what);
		snprintf(out->skips[i].reason, sizeof(out->skips[i].reason), "%s",
			 pr->skips[i].reason);
	}
	snprintf(out->error, sizeof(out->error), "%s", pr->error);
	return 0;
}

void diag_engine_get_stats(const struct diag_engine *e, struct diag_engine_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->targets = e->procs.count;
	out->threads = e->threads.count;
	out->hits = e->hits;
	out->dropped = e->dropped;
	out->recovered = e->recovered;
	size_t pos = 0;
	uint64_t k;
	void *v;
	while (diag_u64map_next(&e->procs, &pos, &k, &v)) {
		struct eproc *ep = v;
		out->breakpoints += ep->bps.by_addr.count;
		for (struct probe *pr = ep->probes; pr; pr = pr->next)
			out->probes++;
	}
}

/* ---- detach ---- */

/* Move a stopped thread out of any slot so the slot pages can go. */
static void leave_slots(struct eproc *ep, struct diag_thread *t)
{
	struct diag_bptable *bps = &eproc_mem(ep)->bps;
	for (int steps = 0; steps < 512; steps++) {
		struct user_regs_struct regs;
		if (ptrace(PTRACE_GETREGS, t->tid, 0, &regs) < 0)
			return;
		uint64_t to = diag_bptable_unslot(bps, regs.rip);
		if (to == 0) {
			/* a pushf stepped inside a trampoline saved our trap flag and its popf
			 * restored it: clear it, or the target dies of SIGTRAP once we are gone */
			if (steps && (regs.eflags & 0x100)) {
				regs.eflags &= ~0x100ULL;
				ptrace(PTRACE_SETREGS, t->tid, 0, &regs);
			}
			return;
		}
		if (to != 1) {
			regs.rip = to;
			ptrace(PTRACE_SETREGS, t->tid, 0, &regs);
			return;
		}
		/* inside a relocated branch sequence: a few steps take it out (detach only) */
		if (diag_thread_step(t) < 0)
			return;
	}
}

static void eproc_detach(struct diag_engine *e, struct eproc *ep)
{
	pid_t pid = ep->tp->pid;
	ep->freeze++;
	size_t pos = 0;
	uint64_t k;
	void *v;
	for (struct diag_thread *t; (t = running_thread(ep));) {
		pid_t tid = t->tid;
		int r = stop_thread(e, t);
		/* waiting may have seen the whole process exit */
		if (!diag_u64map_get(&e->procs, (uint64_t)pid))
			return;
		if (r < 0 && diag_proc_thread(ep->tp, tid) == t)
			forget_thread(e, t); /* it could not be stopped: it is exiting */
	}
	eng_fast_drain(e, ep); /* hits recorded before the stop still count */
	for (struct probe *pr = ep->probes; pr; pr = pr->next)
		eng_probe_uninstall(e, ep, pr);
	struct diag_thread *any = NULL;
	pos = 0;
	while (diag_u64map_next(&ep->tp->threads, &pos, &k, &v)) {
		struct diag_thread *t = v;
		if (!t->stopped)
			continue;
		if (!ep->tp->mem_owner)
			leave_slots(ep, t);
		if (!diag_thread_is_zombie(t) && t->event != PTRACE_EVENT_VFORK)
			any = any ? any : t; /* it can run a remote syscall */
	}
	if (!ep->tp->mem_owner) {
		diag_bptable_restore_all(&ep->bps, ep->tp);
		eng_safety_remove(ep, any); /* after the bytes: no int3 is left to need it */
		diag_xol_unmap_all(&ep->bps.xol, any);
		eng_fast_unmap(ep, any);
	}
	pos = 0;
	while (diag_u64map_next(&ep->tp->threads, &pos, &k, &v)) {
		struct diag_thread *t = v;
		ptrace(PTRACE_DETACH, t->tid, 0, (void *)(long)t->pending_sig);
	}
	eproc_drop(e, ep);
}

int diag_engine_detach(struct diag_engine *e, pid_t pid, struct diag_error *err)
{
	struct eproc *ep = diag_u64map_get(&e->procs, (uint64_t)pid);
	if (!ep)
		return diag_error_set(err, -ESRCH, "process %d is not attached", (int)pid);
	/* vfork children first: they run on this memory */
	size_t pos = 0;
	uint64_t k;
	void *v;
	while (diag_u64map_next(&e->procs, &pos, &k, &v)) {
		struct eproc *c = v;
		if (c->tp->mem_owner == ep->tp) {
			eproc_detach(e, c);
			pos = 0;
		}
	}
	eproc_detach(e, ep);
	return 0;
}

void diag_engine_free(struct diag_engine *e)
{
	if (!e)
		return;
	for (;;) {
		size_t pos = 0;
		uint64_t k;
		void *v;
		if (!diag_u64map_next(&e->procs, &pos, &k, &v))
			break;
		struct eproc *ep = v;
		if (ep->tp->mem_owner)
			ep = eproc_of(ep->tp->mem_owner);
		diag_engine_detach(e, ep->tp->pid, NULL);
	}
	diag_u64map_release(&e->procs);
	diag_u64map_release(&e->threads);
	diag_u64map_release(&e->orphans);
	diag_symcache_free(e->syms);
	eng_stack_free(e);
	diag_dwarf_cache_free(e->dwarf);
	free(e->scratch);
	if (e->sigfd >= 0)
		close(e->sigfd);
	if (e->timerfd >= 0)
		close(e->timerfd);
	if (e->morefd >= 0)
		close(e->morefd);
	if (e->epfd >= 0)
		close(e->epfd);
	free(e);
}
