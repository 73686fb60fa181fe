/* breakpoints: the engine's side of every breakpoint. The hooks lib/bp runs at each patch and
 * unpatch of a process (the page and the patch journaled first, an int3 covered in the safety
 * handler's table before it is written, tombstoned there after its byte is back), getting a
 * breakpoint with a thread stopped for a new slot page when none is, and whether an address
 * lies in the bytes a jump replaced. Never decides where a probe goes (probe.c, fastpath.c). */
#include "engine/engine_internal.h"

#include <errno.h>

static int hook_arm(void *arg, const struct diag_bp *bp)
{
	struct eproc *ep = arg;
	eng_journal_pages(ep); /* the page holding its slot or trampoline first */
	if (!bp->jump && ep->safety) {
		int r = eng_safety_arm(ep, bp);
		if (r < 0)
			return r;
	}
	eng_journal_patch(ep, bp);
	return 0;
}

static void hook_disarmed(void *arg, const struct diag_bp *bp)
{
	struct eproc *ep = arg;
	if (!bp->jump && ep->safety)
		eng_safety_disarmed(ep, bp);
	eng_journal_unpatch(ep, bp);
}

void eng_hooks_set(struct eproc *ep)
{
	ep->bps.hooks = (struct diag_bp_hooks){.arm = hook_arm, .disarmed = hook_disarmed, .arg = ep};
}

int eng_bp_get(struct diag_engine *e, struct eproc *mem, struct diag_thread **stopped,
	       uint64_t addr, struct diag_bp **out, struct diag_error *err)
{
	int r = diag_bp_get(&mem->bps, mem->tp, *stopped, addr, out, err);
	if (r == -EAGAIN && !*stopped) {
		*stopped = eng_stop_one(e, mem);
		if (!*stopped)
			return diag_error_set(err, -DIAG_E_GONE, "process %d has no thread left",
					      (int)mem->tp->pid);
		r = diag_bp_get(&mem->bps, mem->tp, *stopped, addr, out, err);
	}
	return r;
}

bool eng_bp_in_jump(const struct diag_bptable *t, uint64_t addr)
{
	for (size_t back = 1; back < 24 && back <= addr; back++) {
		const struct diag_bp *b = diag_bp_at(t, addr - back);
		if (b && b->jump && addr < b->addr + b->patched_len)
			return true;
	}
	return false;
}
