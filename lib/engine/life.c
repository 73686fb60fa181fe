/* life: a traced process's life as the engine follows it. Owns the engine's record of a
 * process (struct eproc: created at attach or fork, dropped at exit or detach), new threads
 * and children (clone, fork, vfork: a fork child inherits the parent's breakpoints, ring,
 * safety handler and journal; a vfork child shares its parent's memory), exec (the old
 * image's breakpoints forgotten, every probe placed again in the new one), a thread's exit and
 * the process's, and detach (threads out of the slots, every byte restored, pages unmapped).
 * Never serves a hit and never waits itself (stop.c does). */
#include "engine/engine_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <unistd.h>

/* ---- the engine's record of a process ---- */

struct eproc *eng_proc_new(struct diag_engine *e, struct diag_proc *tp)
{
	struct eproc *ep = calloc(1, sizeof(*ep));
	if (!ep)
		return NULL;
	ep->tp = tp;
	tp->owner = ep;
	ep->journal_fd = -1;
	diag_bptable_init(&ep->bps);
	eng_hooks_set(ep);
	diag_u64map_init(&ep->jumps);
	diag_u64map_init(&ep->xframes); /* a fork child's start empty: the copied ring's
					 * records before the fork are its parent's */
	diag_u64map_init(&ep->slots);
	diag_u64map_init(&ep->tps);
	diag_u64map_init(&ep->tp_tried);
	if (diag_u64map_put(&e->procs, (uint64_t)tp->pid, ep) < 0) {
		free(ep);
		return NULL;
	}
	return ep;
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
	eng_fast_reset(ep);
	eng_xf_release(&ep->xframes);
	eng_safety_forget(ep);
	eng_guard_forget(ep);
	eng_journal_close(ep, true); /* gone, or left with every byte restored */
	diag_u64map_del(&e->procs, (uint64_t)ep->tp->pid);
	eng_stack_forget(e, ep);
	diag_proc_free(ep->tp);
	free(ep);
}

/* ---- new threads and children, exec, exit ---- */

/* The first stop of a new thread or child: it was auto-attached and starts stopped. */
void eng_life_claim(struct diag_engine *e, struct diag_thread *t)
{
	void *st = diag_u64map_del(&e->orphans, (uint64_t)t->tid);
	t->announced = true;
	if (st) {
		t->stopped = true;
		/* stopped once, before it runs: its records will carry this thread pointer */
		eng_fast_learn(eproc_mem(eproc_of(t->proc)), t);
		if (!eproc_of(t->proc)->freeze)
			diag_thread_resume(t, 0);
	}
}

void eng_life_clone(struct diag_engine *e, struct diag_thread *parent, pid_t tid)
{
	struct diag_thread *t = diag_proc_add_thread(parent->proc, tid);
	if (!t || eng_thread_track(e, t) < 0)
		return;
	eng_life_claim(e, t);
}

void eng_life_fork(struct diag_engine *e, struct diag_thread *parent, pid_t child, bool vfork)
{
	struct eproc *pep = eproc_of(parent->proc);
	struct diag_proc *tp;
	if (diag_proc_adopt(child, vfork ? eproc_mem(pep)->tp : NULL, &tp) < 0)
		return;
	struct eproc *cep = eng_proc_new(e, tp);
	if (!cep) {
		diag_proc_free(tp);
		return;
	}
	struct diag_thread *t = diag_proc_thread(tp, child);
	eng_thread_track(e, t);
	/* The child's copy of memory already holds our int3s and slots. */
	if (!vfork && diag_bptable_clone(&cep->bps, &eproc_mem(pep)->bps) < 0)
		diag_bptable_init(&cep->bps);
	eng_hooks_set(cep);
	if (!vfork) /* its copied memory holds the parent's patches: so does its journal */
		eng_journal_open(e, cep, eproc_mem(pep)->journal_path);
	int gone = -1;
	if (!vfork) {
		/* a shared ring is the parent's in the child too: the child gets its own before
		 * it runs, and before its sites take their counts from it */
		bool stopped = eng_ring_shared(eproc_mem(pep)) && eng_wait_first_stop(e, t, &gone);
		eng_fast_fork(e, cep, eproc_mem(pep), stopped ? t : NULL);
		eng_safety_fork(cep, eproc_mem(pep));
		eng_guard_fork(cep, eproc_mem(pep));
	}
	if (e->cb.on_process)
		e->cb.on_process(e->cb.ctx, pep->tp->pid, DIAG_PROC_FORK, child);
	eng_probes_clone_sites(e, cep, eproc_mem(pep) == pep ? pep : eproc_mem(pep));
	eng_life_claim(e, t);
	if (gone != -1) /* it died before its first stop */
		e->serve_status(e, child, gone); /* wait.c's: it exits as any process */
}

static void snapshot_counts(struct eproc *mem);

void eng_life_exec(struct diag_engine *e, struct diag_thread *t)
{
	struct diag_proc *tp = t->proc;
	struct eproc *ep = eproc_of(tp);
	/* A shared ring outlived the old image: what its threads recorded up to the exec is
	 * delivered while their records (tids, sites) still stand. */
	if (!tp->mem_owner)
		eng_ring_exec_drain(e, ep);
	/* Every other thread is gone; the exec'ing thread now carries the leader's tid. */
	size_t pos = 0;
	uint64_t k;
	void *v;
	while (diag_u64map_next(&tp->threads, &pos, &k, &v))
		if ((pid_t)k != tp->pid && v != t)
			eng_thread_forget(e, v);
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
		eng_thread_track(e, t);
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
	/* A new image: the old breakpoints and slot pages went with the old one. The probes'
	 * hits and drops go on from the old image's: its counters read from a shared ring; a
	 * private one went with the old memory (reading its address now would read the new
	 * image's), so the last snapshot (a thread's exit) stands in. */
	if (!tp->mem_owner) {
		if (eng_ring_shared(ep))
			snapshot_counts(ep);
		for (struct probe *pr = ep->probes; pr; pr = pr->next) {
			pr->fast_done += pr->fast_counted;
			pr->fast_counted = 0;
		}
		ep->ring_drops_done += ep->ring_drops;
	}
	for (struct probe *pr = ep->probes; pr; pr = pr->next)
		eng_probe_forget_sites(pr);
	free(t->ext); /* frames waiting for returns into the old image */
	t->ext = NULL;
	diag_bptable_release(&ep->bps);
	diag_bptable_init(&ep->bps);
	eng_hooks_set(ep);
	eng_journal_reset(e, ep); /* a new image: nothing of ours is in it */
	eng_fast_reset(ep); /* the ring, slots and thread pointers went with the old image */
	eng_xf_release(&ep->xframes); /* frames of the old image's functions */
	ep->rs_nwant = 0;             /* return addresses of the old image */
	eng_dl_unwatch(ep, false);
	eng_safety_forget(ep); /* exec reset the action and unmapped the handler */
	eng_guard_forget(ep);  /* likewise */
	eng_stack_forget(e, ep); /* the old image's modules */
	if (tp->mem_owner) { /* a vfork child gets its own memory at exec */
		/* the records it made in its parent's ring are its own; the thread pointer is
		 * the parent's again */
		struct eproc *pmem = eproc_mem(ep);
		eng_fast_drain(e, pmem);
		eng_fast_thread_gone(pmem, t);
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
	eng_fast_drain(e, ep); /* a heartbeat as fresh as the new jumps (dynlink_apply.c) */
	if (ep->exec_waiter) { /* adopted at this exec by a selector (adopt.c): held */
		ep->exec_waiter = 0;
		ep->exec_outcome = 1;
		ep->held = true;
		ep->freeze++;
	}
	if (!ep->freeze)
		diag_thread_resume(t, 0);
}

void eng_life_gone(struct diag_engine *e, struct diag_thread *t)
{
	struct diag_proc *tp = t->proc;
	struct eproc *ep = eproc_of(tp);
	pid_t pid = tp->pid;
	bool leader = t->tid == pid;
	eng_thread_forget(e, t);
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

/* The counters of the jump sites, kept with each probe: they die with the process. */
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

void eng_life_exiting(struct diag_engine *e, struct diag_thread *t)
{
	struct eproc *ep = eproc_of(t->proc);
	if (ep->held) { /* killed while held at its exec (adopt.c): a dying process is not held,
			 * or its exit stop would wait for a release that may never come */
		ep->held = false;
		ep->freeze--;
	}
	/* it is exiting: never borrow it again (resuming it lets it die under us) */
	t->zombie = true;
	/* the last moment the ring is readable: hits recorded just before exit count (and
	 * before its thread pointer can name a new thread) */
	eng_fast_drain(e, eproc_mem(eproc_of(t->proc)));
	eng_fast_thread_gone(eproc_mem(eproc_of(t->proc)), t);
	snapshot_counts(eproc_mem(eproc_of(t->proc)));
}

/* ---- detach ---- */

/* Move a stopped thread out of any slot so the slot pages can go. A capture trampoline's
 * program may copy a string of a few KiB: tens of thousands of steps in the worst case. */
static void leave_slots(struct diag_engine *e, struct eproc *ep, struct diag_thread *t)
{
	struct diag_bptable *bps = &eproc_mem(ep)->bps;
	for (int steps = 0; steps < 65536; steps++) {
		diag_regs regs;
		/* held at a capture program's fault (frozen at its signal stop, or a step ran the
		 * load): on to its landing, or it steps the load for ever and leaves with the
		 * signal, which no guard repairs once we are gone */
		if ((t->pending_sig == SIGSEGV || t->pending_sig == SIGBUS) &&
		    eng_fast_fault(e, t, t->pending_sig))
			t->pending_sig = 0;
		if (diag_regs_read(t->tid, &regs) < 0)
			return;
		uint64_t to = diag_bptable_unslot(bps, diag_regs_pc(&regs));
		if (to == 0) /* or a capture trampoline's slot */
			to = eng_fast_unslot(eproc_mem(ep), diag_regs_pc(&regs));
		if (to == 0) {
			/* a pushf stepped inside a trampoline saved our trap flag and its popf
			 * restored it: clear it, or the target dies of SIGTRAP once we are gone */
			if (steps && diag_regs_stepping(&regs)) {
				diag_regs_clear_step(&regs);
				diag_regs_write(t->tid, &regs);
			}
			return;
		}
		if (to != 1) {
			diag_regs_set_pc(&regs, to);
			if (steps && diag_regs_stepping(&regs)) /* as above */
				diag_regs_clear_step(&regs);
			diag_regs_write(t->tid, &regs);
			return;
		}
		/* inside a relocated branch sequence: a few steps take it out (detach only) */
		if (diag_thread_step(t) < 0)
			return;
	}
}

void eng_proc_detach(struct diag_engine *e, struct eproc *ep)
{
	pid_t pid = ep->tp->pid;
	eng_freeze(e, ep); /* never thawed: the threads are detached stopped */
	/* waiting may have seen the whole process exit */
	if (!diag_u64map_get(&e->procs, (uint64_t)pid))
		return;
	size_t pos = 0;
	uint64_t k;
	void *v;
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
			leave_slots(e, ep, t);
		if (!diag_thread_is_zombie(t) && t->event != PTRACE_EVENT_VFORK)
			any = any ? any : t; /* it can run a remote syscall */
	}
	if (!ep->tp->mem_owner) {
		diag_bptable_restore_all(&ep->bps, ep->tp);
		eng_safety_remove(ep, any); /* after the bytes: no int3 is left to need it */
		eng_guard_remove(ep, any);  /* no trampoline is patched, no thread is in one */
		diag_xol_unmap_all(&ep->bps.xol, any);
		eng_fast_unmap(ep, any);
	}
	pos = 0;
	while (diag_u64map_next(&ep->tp->threads, &pos, &k, &v)) {
		struct diag_thread *t = v;
		diag_thread_detach(t->tid, t->pending_sig);
	}
	eproc_drop(e, ep);
}
