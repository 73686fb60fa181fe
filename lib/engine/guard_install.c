/* guard_install: installs the fault guard (built by lib/arch, arch/guard.h) into a target
 * before its first capture trampoline that reads memory is patched in: the blob mapped and
 * written, our SIGSEGV and SIGBUS actions chained over the target's own, all journaled (the
 * page and both previous actions) so a successor's recovery takes them out. It stays while any
 * capture trampoline can run: after the daemon's death the trampolines stay patched until a
 * recovery, and the guard is what repairs their faults then. Copied at fork, forgotten at exec,
 * and at detach (after every trampoline is gone) each action is put back only if the target has
 * not replaced ours since. See docs/reliability.md, "The fault guard". Never places or removes a
 * trampoline itself, never repairs a fault (the tracer's repair is the engine's signal stop). */
#include "engine/engine_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "arch/guard.h"

struct eng_guard {
	struct diag_guard_layout l;
	struct diag_ksigaction old[DIAG_GUARD_NSIGS]; /* the target's own actions before ours */
	size_t chained;            /* signals 0 .. chained-1 have our action */
	uint64_t map_len;
};

static int write_old(struct eproc *ep, const struct eng_guard *g, size_t i)
{
	return diag_proc_write(ep->tp, g->l.old_action[i], &g->old[i], sizeof(g->old[i])) ==
		       (ssize_t)sizeof(g->old[i])
		       ? 0
		       : -EIO;
}

/* Ours over signal i, chaining to whatever is there. The previous action is in the blob before
 * ours is live; if the target changed its action in between, record that one and go again. */
static int chain_over(struct eproc *ep, struct diag_thread *t, struct eng_guard *g, size_t i)
{
	int sig = diag_guard_signal(i), r;
	struct diag_ksigaction ours, check;
	for (int tries = 0; tries < 3; tries++) {
		if ((r = diag_thread_sigaction(t, sig, NULL, &g->old[i])) < 0 ||
		    (r = write_old(ep, g, i)) < 0)
			return r;
		diag_guard_action(&g->l, &g->old[i], &ours);
		if ((r = diag_thread_sigaction(t, sig, &ours, &check)) < 0)
			return r;
		if (memcmp(&check, &g->old[i], sizeof(check)) == 0)
			return 0;
	}
	/* ours is installed, chaining to the action of the last read: put back what the target
	 * set meanwhile, and give up */
	diag_thread_sigaction(t, sig, &check, NULL);
	return -EAGAIN;
}

/* Put signal i's previous action back unless the target replaced ours since. */
static void unchain(struct diag_thread *t, const struct eng_guard *g, size_t i)
{
	int sig = diag_guard_signal(i);
	struct diag_ksigaction cur;
	if (diag_thread_sigaction(t, sig, &g->old[i], &cur) == 0 && cur.handler != g->l.handler)
		diag_thread_sigaction(t, sig, &cur, NULL); /* the target set its own since: keep it */
}

static void unmap(struct diag_thread *t, uint64_t addr, uint64_t len)
{
	long args[6] = {(long)addr, (long)len, 0, 0, 0, 0}, ret;
	diag_thread_syscall(t, SYS_munmap, args, &ret);
}

/* The page: mapped, written, then journaled; once journaled it stays even if chaining fails
 * (the journal names it: only a recovery or a detach unmaps it). */
static int map_blob(struct eproc *ep, struct diag_thread *t, struct eng_guard *g,
		    struct diag_error *err)
{
	size_t len = diag_guard_size();
	g->map_len = (len + 4095) & ~4095ULL;
	long args[6] = {0, (long)g->map_len, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1,
			0},
	     ret;
	int r = diag_thread_syscall(t, SYS_mmap, args, &ret);
	if (r == 0 && ret < 0 && ret > -4096)
		r = (int)ret;
	if (r < 0)
		return diag_error_set(err, r, "cannot map the fault guard: %s", diag_strerror(r));
	uint8_t blob[4096];
	r = diag_guard_build((uint64_t)ret, blob, sizeof(blob), &len, &g->l, err);
	if (r == 0 && diag_proc_write(ep->tp, g->l.addr, blob, len) != (ssize_t)len)
		r = diag_error_set(err, -EIO, "cannot write the fault guard");
	if (r < 0) {
		unmap(t, (uint64_t)ret, g->map_len);
		return r;
	}
	/* the page first: a recovery that finds an action of ours also finds where it lives */
	eng_journal_map(ep, g->l.addr, g->map_len, "guard");
	return 0;
}

int eng_guard_ensure(struct diag_engine *e, struct eproc *ep, struct diag_thread **stopped,
		     struct diag_error *err)
{
	if (ep->tp->mem_owner || (ep->guard && ep->guard->chained == DIAG_GUARD_NSIGS))
		return 0; /* a vfork child runs on its parent's memory, guard included */
	if (!*stopped && !(*stopped = eng_stop_one(e, ep)))
		return diag_error_set(err, -DIAG_E_GONE, "process %d has no thread left",
				      (int)ep->tp->pid);
	struct eng_guard *g = ep->guard;
	if (!g) {
		if (!(g = calloc(1, sizeof(*g))))
			return diag_error_set(err, -ENOMEM, "out of memory");
		int r = map_blob(ep, *stopped, g, err);
		if (r < 0) {
			free(g);
			return r;
		}
		ep->guard = g;
	}
	for (; g->chained < DIAG_GUARD_NSIGS; g->chained++) {
		int sig = diag_guard_signal(g->chained), r = chain_over(ep, *stopped, g, g->chained);
		if (r < 0)
			return diag_error_set(err, r, "cannot install the fault guard for signal %d: %s",
					      sig, diag_strerror(r));
		eng_journal_action(ep, sig, g->l.handler, &g->old[g->chained]);
	}
	return 0;
}

/* While the daemon lives the guard still runs: it chains every fault of the target's own (the
 * tracer delivers those), so a frozen thread may be inside the blob, with SIGSEGV blocked.
 * Unmapped under it, its next fetch would be a forced SIGSEGV while blocked: the kernel kills
 * the process. A few single steps take it out (to the target's handler, or through our
 * restorer's rt_sigreturn). False if one cannot be moved out. */
static bool threads_out(struct eproc *ep, const struct eng_guard *g)
{
	size_t pos = 0;
	uint64_t k;
	void *v;
	while (diag_u64map_next(&ep->tp->threads, &pos, &k, &v)) {
		struct diag_thread *th = v;
		for (int steps = 0; th->stopped; steps++) {
			diag_regs r;
			if (diag_regs_read(th->tid, &r) < 0 || diag_regs_pc(&r) < g->l.addr ||
			    diag_regs_pc(&r) >= g->l.addr + g->map_len)
				break;
			if (steps == 256 || diag_thread_step(th) < 0)
				return false;
		}
	}
	return true;
}

void eng_guard_remove(struct eproc *ep, struct diag_thread *t)
{
	struct eng_guard *g = ep->guard;
	if (!g)
		return;
	if (t && !threads_out(ep, g)) {
		/* leave it all in place (the page is journaled): better a page than a dead target */
		eng_guard_forget(ep);
		return;
	}
	if (t) {
		for (size_t i = g->chained; i-- > 0;)
			unchain(t, g, i);
		unmap(t, g->l.addr, g->map_len);
	}
	eng_guard_forget(ep);
}

void eng_guard_forget(struct eproc *ep)
{
	free(ep->guard);
	ep->guard = NULL;
}

int eng_guard_fork(struct eproc *child, const struct eproc *parent)
{
	if (!parent->guard || child->tp->mem_owner)
		return 0;
	struct eng_guard *g = malloc(sizeof(*g));
	if (!g)
		return -ENOMEM;
	*g = *parent->guard; /* the child's copy of the blob and both actions */
	child->guard = g;
	return 0;
}
