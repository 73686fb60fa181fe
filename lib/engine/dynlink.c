/* dynlink: probes on libraries that are not loaded yet. A probe whose MODULE is not mapped is
 * pending; an int3 on the dynamic linker's _dl_debug_state (the r_brk every debugger watches,
 * called after each dlopen/dlclose has updated the link map, before a new library's
 * constructors run) tells us when the module set changed (dynlink_apply.c then applies the
 * pending probes and retires those of unloaded libraries). Owns the watch (placing and
 * removing that int3, a site of a probe of the engine's own, never listed) and whether a
 * target waits for its library. Never installs or removes a probe of the owner. */
#include "engine/engine_internal.h"
#include "spec/target.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DL_HOOK "_dl_debug_state"

bool eng_dl_absent(const struct diag_modmap *mods, const char *target)
{
	struct diag_target t; /* a malformed target is not pending: installing it says why */
	return diag_target_parse(target, &t, NULL) == 0 && t.module[0] &&
	       strncmp(t.module, "0x", 2) != 0 && diag_modmap_count_name(mods, t.module) == 0;
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
		r = diag_sym_resolve(e->syms, &mods, DL_HOOK, NULL, &locs, &n, NULL, NULL, err);
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
