/* dynlink_apply: the set of libraries changed (the thread at r_brk waits meanwhile): pending
 * probes whose library is mapped now are installed, and the probes of an unloaded library lose
 * their breakpoints (the memory is gone: nothing is written) and wait, pending again, for the
 * library to come back. Owns no state but the process's dl_busy/dl_dirty marks; never watches
 * library loads itself (dynlink.c). */
#include "engine/engine_internal.h"

#define DL_KEEPALIVE_NS 10000000000ULL /* 10 s: longer than any placement */

/* A breakpoint whose module went away: forget it without writing (its page is gone). */
static void forget_site(struct eproc *mem, struct site *s)
{
	struct diag_bp *bp = s->bp;
	for (size_t i = 0; i < bp->nusers; i++)
		if (bp->users[i] == s) {
			bp->users[i] = bp->users[--bp->nusers];
			break;
		}
	s->bp = NULL;
	if (bp->nusers)
		return;
	eng_fast_forget(mem, bp);
	bp->patched_len = bp->written_len = 0; /* restore nothing */
	diag_bp_destroy(&mem->bps, mem->tp, bp);
}

static bool sites_mapped(const struct probe *pr, const struct diag_modmap *mods)
{
	for (size_t i = 0; i < pr->nsites; i++)
		if (pr->sites[i].bp && !diag_modmap_find(mods, pr->sites[i].bp->addr))
			return false;
	return true;
}

static void dl_apply(struct diag_engine *e, struct eproc *ep)
{
	/* hits recorded in the ring before a dlclose are the unloaded library's probes' own:
	 * consumed while their sites still exist */
	eng_fast_drain(e, ep);
	struct diag_modmap mods = {0};
	if (diag_modmap_read(ep->tp->pid, &mods, NULL) < 0)
		return;
	for (struct probe *pr = ep->probes; pr; pr = pr->next) {
		if (pr->state == DIAG_PROBE_APPLIED && !sites_mapped(pr, &mods)) {
			for (size_t i = 0; i < pr->nrsites; i++) /* a return probe's exit jumps */
				if (pr->rsites[i]->bp && pr->rsites[i]->bp->jump) {
					forget_site(ep, pr->rsites[i]);
					pr->rsites[i]->bp = NULL;
				}
			eng_xf_forget(&eproc_mem(ep)->xframes, pr);
			eng_ret_forget(e, ep, pr); /* frames waiting on its entries go too */
			for (size_t i = 0; i < pr->nsites; i++)
				if (pr->sites[i].bp)
					forget_site(ep, &pr->sites[i]);
			eng_probe_forget_sites(pr);
			pr->state = DIAG_PROBE_PENDING;
			if (e->cb.on_probe_state)
				e->cb.on_probe_state(e->cb.ctx, ep->tp->pid, pr->cookie,
						     DIAG_PROBE_REMOVED, "library unloaded");
		} else if (pr->state == DIAG_PROBE_PENDING && !eng_dl_absent(&mods, pr->target)) {
			struct diag_error err = {0};
			eng_probe_install(e, ep, pr, &err);
			if (e->cb.on_probe_state)
				e->cb.on_probe_state(e->cb.ctx, ep->tp->pid, pr->cookie, pr->state,
						     pr->state == DIAG_PROBE_ERROR ? pr->error : NULL);
		}
	}
	diag_modmap_release(&mods);
}

/* Installing a probe stops the threads, and a thread may hit r_brk again meanwhile (the next
 * step of the same dlopen): that nested look must not install the still-pending probe a second
 * time (its sites would each fire, every hit counted twice). It is left to the outer one. */
void eng_dl_changed(struct diag_engine *e, struct eproc *ep)
{
	if (ep->dl_busy) {
		ep->dl_dirty = true;
		return;
	}
	pid_t pid = ep->tp->pid;
	ep->dl_busy = true;
	/* the threads run on while the pending probes are placed (test_adopt under ASan: libc's
	 * symbols took 1.7 s, and a program's first calls past the 200 ms heartbeat were drops);
	 * every drain meanwhile keeps the stretch (fastpath.c, heartbeat) */
	eng_fast_keepalive(e, ep, DL_KEEPALIVE_NS);
	do {
		ep->dl_dirty = false;
		dl_apply(e, ep);
	} while (diag_u64map_get(&e->procs, (uint64_t)pid) == ep && ep->dl_dirty);
	if (diag_u64map_get(&e->procs, (uint64_t)pid) == ep) {
		ep->dl_busy = false;
		/* placing may have taken longer than the heartbeat (a library's symbols read for
		 * the first time, on a loaded machine): the jumps placed must record from the
		 * first call the thread at r_brk makes once resumed (test_adopt saw a program's
		 * first calls counted and not recorded) */
		eng_fast_drain(e, ep);
	}
}
