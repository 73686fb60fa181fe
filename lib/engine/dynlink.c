/* dynlink: probes on libraries that are not loaded yet. A probe whose MODULE is not mapped is
 * pending; an int3 on the dynamic linker's _dl_debug_state (the r_brk every debugger watches,
 * called after each dlopen/dlclose has updated the link map, before a new library's
 * constructors run) tells us when the module set changed: pending probes are applied, and
 * the probes of an unloaded library lose their breakpoints (the memory is gone: nothing is
 * written) and wait, pending again, for the library to come back. */
#include "engine/engine_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DL_HOOK "_dl_debug_state"

/* The MODULE of "MODULE:FUNC" (a lone ':', not C++'s "::"), "" when there is none or the
 * target is FILE:LINE. */
static void target_module(const char *target, char *out, size_t cap)
{
	out[0] = '\0';
	for (const char *p = target; *p; p++) {
		if (*p != ':')
			continue;
		if (p[1] == ':') {
			p++;
			continue;
		}
		if (p[1] && strspn(p + 1, "0123456789") == strlen(p + 1))
			return; /* FILE:LINE */
		snprintf(out, cap, "%.*s", (int)(p - target), target);
		return;
	}
}

bool eng_dl_absent(const struct diag_modmap *mods, const char *target)
{
	char module[256];
	target_module(target, module, sizeof(module));
	return module[0] && strncmp(module, "0x", 2) != 0 &&
	       diag_modmap_count_name(mods, module) == 0;
}

/* The hook is a site of a probe of the engine's own, never listed. */
int eng_dl_watch(struct diag_engine *e, struct eproc *ep, struct diag_thread **stopped,
		   struct diag_error *err)
{
	if (ep->dl_probe || ep->tp->mem_owner)
		return 0;
	struct diag_modmap mods = {0};
	struct diag_location *locs = NULL;
	size_t n = 0;
	int r = diag_modmap_read(ep->tp->pid, &mods, err);
	if (r == 0)
		r = diag_sym_resolve(e->syms, &mods, DL_HOOK, &locs, &n, err);
	struct probe *pr = r == 0 && n ? calloc(1, sizeof(*pr)) : NULL;
	struct site *s = pr ? calloc(1, sizeof(*s)) : NULL;
	if (r == 0 && !s)
		r = diag_error_set(err, -ENOMEM, "out of memory");
	if (r == 0 && (r = eng_safety_ensure(e, ep, stopped, err)) == 0 &&
	    /* the safety handler may exist already (an int3 probe came first): then no thread
	     * was stopped for it, and the slot page near the dynamic linker needs one */
	    (r = eng_bp_get(e, ep, stopped, locs[0].addr, &s->bp, err)) == 0 &&
	    (r = diag_bp_add_user(s->bp, s)) < 0)
		diag_bp_del_user(&ep->bps, ep->tp, s->bp, s);
	if (r < 0) {
		free(s);
		free(pr);
		diag_error_prefix(err, "cannot watch library loads (" DL_HOOK "): ");
	} else {
		s->pr = pr;
		s->kind = SITE_DL;
		pr->sites = s;
		pr->nsites = 1;
		pr->state = DIAG_PROBE_APPLIED;
		ep->dl_probe = pr;
	}
	free(locs);
	diag_modmap_release(&mods);
	return r;
}

void eng_dl_unwatch(struct eproc *ep, bool write)
{
	struct probe *pr = ep->dl_probe;
	if (!pr)
		return;
	if (write && pr->sites[0].bp)
		diag_bp_del_user(&ep->bps, ep->tp, pr->sites[0].bp, &pr->sites[0]);
	free(pr->sites);
	free(pr);
	ep->dl_probe = NULL;
}

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
	do {
		ep->dl_dirty = false;
		dl_apply(e, ep);
	} while (diag_u64map_get(&e->procs, (uint64_t)pid) == ep && ep->dl_dirty);
	if (diag_u64map_get(&e->procs, (uint64_t)pid) == ep)
		ep->dl_busy = false;
}
