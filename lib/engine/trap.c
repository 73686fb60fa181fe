/* trap: serving an int3 hit. Reads the stopped thread's registers (or takes those
 * eng_wait_secure saved when it moved the thread to its slot), runs the capture of hit.c
 * while the thread is stopped, resumes it at the out-of-line slot, then fires the events and
 * charges the stop to the probes (the governor's stopped time). At the dynamic linker's r_brk
 * the thread waits until dynlink_apply.c has placed the probes of the new libraries. A trap
 * that is not ours goes back to the target unchanged. Never patches or unpatches itself. */
#include "engine/engine_internal.h"
#include "util/clock.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>

#include "arch/record.h"

struct mem_arg {
	struct diag_proc *p;
	pid_t tid;
};

static ssize_t read_mem_cb(void *arg, uint64_t addr, void *buf, size_t len)
{
	return diag_proc_read(((struct mem_arg *)arg)->p, addr, buf, len);
}

static int read_fpregs_cb(void *arg, diag_fpregs *out)
{
	return diag_fpregs_read(((struct mem_arg *)arg)->tid, out);
}

static bool ret_site(const struct diag_bp *bp)
{
	for (size_t i = 0; i < bp->nusers; i++)
		if (((const struct site *)bp->users[i])->kind == SITE_RET_EXIT)
			return true;
	return false;
}

void eng_trap_serve(struct diag_engine *e, struct diag_thread *t)
{
	diag_regs regs;
	bool moved = e->moved_tid == t->tid;
	e->moved_tid = 0;
	if (moved)
		regs = e->moved_regs;
	else if (diag_regs_read(t->tid, &regs) < 0)
		return; /* gone: its exit is reported next */
	struct eproc *mem = eproc_mem(eproc_of(t->proc));
	uint64_t addr = diag_regs_trap_addr(&regs);
	struct diag_bp *bp = diag_bp_at(&mem->bps, addr);
	bool frozen = eproc_of(t->proc)->freeze > 0;
	if (!bp) {
		if (diag_u64map_get(&mem->bps.tombstones, addr)) {
			/* trapped on a breakpoint removed since: run the restored instruction */
			if (!moved) {
				diag_regs_set_pc(&regs, addr);
				diag_regs_write(t->tid, &regs);
			}
			if (!frozen)
				diag_thread_resume(t, 0);
		} else {
			diag_thread_resume(t, SIGTRAP); /* the target's own trap */
		}
		return;
	}
	if (!moved) { /* reaped by a wait that could not secure it first (see eng_wait_secure) */
		diag_regs at_slot = regs;
		diag_regs_set_pc(&at_slot, bp->slot);
		diag_regs_write(t->tid, &at_slot);
	}
	uint64_t ts = (uint64_t)diag_clock_wall_ns(), t0 = (uint64_t)diag_clock_mono_ns();
	struct site *fired_small[8], **fired = fired_small;
	if (bp->nusers > 8 && !(fired = malloc(bp->nusers * sizeof(*fired))))
		fired = NULL;
	struct mem_arg ma = {t->proc, t->tid};
	struct eng_stack_req sr = {e, eproc_of(t->proc), t->tid, &regs, addr};
	struct diag_expr_ctx ctx = {
		.pid = t->proc->pid, .tid = t->tid, .regs = &regs, .read_fpregs = read_fpregs_cb,
		.read_mem = read_mem_cb, .arg = &ma, .time_ns = ts, .comm_of = eng_comm_of, .comm_arg = t,
		.stack = eng_stack_text, .stack_arg = &sr,
	};
	if (t->ext)
		eng_ret_purge(t, bp, diag_regs_sp(&regs));
	size_t n = fired ? eng_capture(e, t, bp, &ctx, false, fired) : 0;
	if (fired && ret_site(bp)) {
		/* a return site on an int3: the jump frames returning here, opened by entry
		 * records that may still wait in the ring */
		uint64_t tsc = diag_record_ticks();
		eng_fast_drain(e, mem);
		n += eng_exit_trap(e, t, bp, &ctx, tsc, fired + n, n);
	}
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
	e->stopped_ns += stopped;
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
