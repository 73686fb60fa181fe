/* probe: a probe's life in one process: resolve its target to addresses, compile its value and
 * condition against each address's scope, then share or create the breakpoints. Everything
 * that can fail (names, expressions, relocation) fails before the first byte is written, or
 * is undone before returning. */
#include "engine/engine_internal.h"

#include "bp/site_check.h"
#include "dwarf/dwarf.h"
#include "sym/ifunc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void eng_probe_free(struct probe *pr)
{
	if (!pr)
		return;
	free(pr->target);
	free(pr->value);
	free(pr->condition);
	free(pr->sites);
	for (size_t i = 0; i < pr->nrsites; i++)
		free(pr->rsites[i]);
	free(pr->rsites);
	free(pr);
}

static char *dup_or_null(const char *s)
{
	return s && *s ? strdup(s) : NULL;
}

void eng_probe_forget_sites(struct probe *pr)
{
	for (size_t i = 0; i < pr->nsites; i++) {
		diag_expr_free(pr->sites[i].value);
		diag_expr_free(pr->sites[i].condition);
	}
	free(pr->sites);
	pr->sites = NULL;
	pr->nsites = 0;
	for (size_t i = 0; i < pr->nrsites; i++)
		free(pr->rsites[i]);
	pr->nrsites = 0;
}

struct probe *eng_probe_copy(const struct probe *src)
{
	struct probe *pr = calloc(1, sizeof(*pr));
	if (!pr)
		return NULL;
	pr->cookie = src->cookie;
	pr->event = src->event;
	pr->counts = src->counts;
	pr->target = strdup(src->target);
	pr->value = dup_or_null(src->value);
	pr->condition = dup_or_null(src->condition);
	if (!pr->target || (src->value && *src->value && !pr->value) ||
	    (src->condition && *src->condition && !pr->condition)) {
		eng_probe_free(pr);
		return NULL;
	}
	return pr;
}

/* Removing the last user of a jump rewrites several bytes, and any other rebuilds its
 * trampoline: every thread must be stopped. */
static bool needs_freeze(const struct probe *pr)
{
	for (size_t i = 0; i < pr->nsites; i++)
		if (pr->sites[i].bp && pr->sites[i].bp->jump)
			return true;
	for (size_t i = 0; i < pr->nrsites; i++) /* a return probe's exit jumps */
		if (pr->rsites[i]->bp && pr->rsites[i]->bp->jump)
			return true;
	return false;
}

/* A jump site leaves its breakpoint (mem frozen when others stay); false when the bytes
 * were no longer ours. */
static bool jump_site_free(struct diag_engine *e, struct eproc *mem, struct site *s,
			   bool frozen)
{
	if (s->bp->jump) /* what a counting site counted until now is its last hits */
		eng_fast_counts(e, mem);
	if (s->bp->jump && s->bp->nusers == 1)
		eng_fast_forget(mem, s->bp);
	else if (frozen && s->bp->jump)
		eng_fast_leave(e, mem, s->bp, s);
	bool left = diag_bp_del_user(&mem->bps, mem->tp, s->bp, s) == DIAG_BP_LEFT;
	s->bp = NULL;
	return !left;
}

/* Say which instance kept the target's own rewrite of its bytes ("instance at work+0: left
 * in place: ..."), in `left` (cap bytes, appended to). */
static void note_left(const struct site *s, char *left, size_t cap)
{
	size_t used = strlen(left);
	if (used + 4 < cap)
		snprintf(left + used, cap - used, "%sinstance at %s: left in place: the target "
			 "rewrote the patched bytes", used ? "; " : "", s->what);
}

static void sites_free(struct diag_engine *e, struct eproc *ep, struct probe *pr, char *left,
		       size_t cap)
{
	struct eproc *mem = eproc_mem(ep);
	pid_t pid = mem->tp->pid;
	bool frozen = needs_freeze(pr);
	if (frozen)
		eng_freeze(e, mem);
	/* stopping may have seen the process exit: its breakpoints went with it */
	bool alive = diag_u64map_get(&e->procs, (uint64_t)pid) == mem;
	for (size_t i = 0; i < pr->nsites; i++) {
		struct site *s = &pr->sites[i];
		if (alive && s->bp && !jump_site_free(e, mem, s, frozen) && left)
			note_left(s, left, cap);
		diag_expr_free(s->value);
		diag_expr_free(s->condition);
	}
	/* the exit jumps of a return probe; its frames waiting for them (the frames name their
	 * entry site: the sites are freed after) */
	for (size_t i = 0; alive && i < pr->nrsites; i++)
		if (pr->rsites[i]->bp && pr->rsites[i]->bp->jump &&
		    !jump_site_free(e, mem, pr->rsites[i], frozen) && left)
			note_left(pr->rsites[i], left, cap);
	if (alive)
		eng_xf_forget(&mem->xframes, pr);
	eng_ret_forget(e, ep, pr);
	free(pr->sites);
	pr->sites = NULL;
	pr->nsites = 0;
	if (frozen && alive) {
		eng_fast_reap(e, mem); /* slot pages no thread is inside any more */
		eng_thaw(e, mem);
	}
}

void eng_probe_uninstall(struct diag_engine *e, struct eproc *ep, struct probe *pr)
{
	char left[DIAG_ERRMSG_MAX] = "";
	sites_free(e, ep, pr, left, sizeof(left));
	if (pr->state == DIAG_PROBE_APPLIED)
		pr->state = DIAG_PROBE_REMOVED;
	/* the owner records it with the probe (`applied`) and logs it */
	if (left[0] && e->cb.on_probe_state)
		e->cb.on_probe_state(e->cb.ctx, ep->tp->pid, pr->cookie, DIAG_PROBE_REMOVED, left);
}

static int compile_site(struct diag_engine *e, struct eproc *ep, struct probe *pr,
			const struct diag_location *loc, struct site *s, struct diag_error *err)
{
	struct diag_expr_scope scope = {
		.pid = ep->tp->pid,
		.elf_path = loc->mod->host_path,
		.build_id = loc->mod->build_id,
		.bias = loc->mod->bias,
		.pc = loc->addr,
		.event = pr->event,
		.dwarf = e->dwarf,
		.field = "value",
	};
	int r = 0;
	if (pr->value)
		r = diag_expr_compile(pr->value, &scope, &s->value, err);
	if (r == 0 && pr->condition) {
		scope.field = "condition"; /* its errors name the field they are about */
		r = diag_expr_compile(pr->condition, &scope, &s->condition, err);
	}
	return r;
}

/* Create or share the breakpoint; a slot page may need a stopped thread to be mapped. */
static int place_site(struct diag_engine *e, struct eproc *ep, struct site *s,
		      const struct diag_location *loc, struct diag_thread **stopped,
		      struct diag_error *err)
{
	uint64_t addr = loc->addr;
	struct eproc *mem = eproc_mem(ep);
	const struct diag_bp *there = diag_bp_at(&mem->bps, addr);
	/* every probe at an address costs each hit there (int3: the stop grows with them) */
	if (there && there->nusers >= DIAG_PROBE_MAX_PER_ADDR)
		return diag_error_set_field(err, "target", -DIAG_E_LIMIT,
					    "target: %s (0x%" PRIx64 ") has %zu probes already, the limit "
					    "per address (DIAG_PROBE_MAX_PER_ADDR %d); remove one first",
					    s->what, addr, there->nusers, DIAG_PROBE_MAX_PER_ADDR);
	int r = mem == ep ? eng_fast_place(e, ep, s, loc, err) : 1;
	if (*stopped && !(*stopped)->stopped)
		*stopped = NULL; /* placing a jump stopped and resumed every thread */
	if (r <= 0)
		return r; /* placed as a jump, or failed */
	/* an int3 must never outlive us unprotected: a dead daemon would leave a SIGTRAP behind */
	if (!diag_bp_at(&mem->bps, addr) && (r = eng_safety_ensure(e, mem, stopped, err)) < 0) {
		diag_error_lead_field(err, "target");
		return r;
	}
	r = eng_bp_get(e, mem, stopped, addr, &s->bp, err);
	if (r == 0 && (r = diag_bp_add_user(s->bp, s)) < 0) {
		diag_bp_del_user(&mem->bps, mem->tp, s->bp, s);
		s->bp = NULL;
		diag_error_set(err, r, "out of memory");
	}
	return r;
}

/* A patch goes only into code mapped from a file, at the start of an instruction of a known
 * function decoded from that function's first byte: whatever named the address (a symbol,
 * FUNC+OFF, 0xADDR, a DWARF line or inlined entry, an IFUNC's GOT slot). */
static int check_location(struct diag_engine *e, struct eproc *ep, const struct diag_modmap *mods,
			  const struct diag_location *loc, struct diag_error *err)
{
	struct eproc *mem = eproc_mem(ep);
	int r = diag_site_check_mapping(mem->tp->pid, loc->addr, err);
	if (r < 0)
		return r;
	char func[256], label[400];
	uint64_t start = loc->func_start, off = 0;
	if (loc->kind != DIAG_LOC_INLINED && start && loc->symbol[0])
		snprintf(func, sizeof(func), "%s", loc->symbol);
	else if (diag_sym_lookup_addr(e->syms, mods, loc->addr, func, sizeof(func), &off) == 0)
		start = loc->addr - off; /* an inlined copy's bounds are DWARF's: use the ELF function */
	else
		return diag_error_set(err, -DIAG_E_INVALID,
				      "0x%" PRIx64 " is not inside any known function of %s", loc->addr,
				      loc->mod ? loc->mod->name : "the process");
	if (loc->note[0])
		snprintf(label, sizeof(label), "%.128s (%.200s+%" PRIu64 ")", loc->note, func,
			 loc->addr - start);
	else
		snprintf(label, sizeof(label), "%.200s+%" PRIu64, func, loc->addr - start);
	return diag_site_check_boundary(&mem->bps, mem->tp, func, start, loc->addr, label, err);
}

static ssize_t read_target(void *arg, uint64_t addr, void *buf, size_t len)
{
	return diag_proc_read(arg, addr, buf, len);
}

/* An IFUNC's resolver runs once, at load, and never again: probe the implementation it chose
 * in this process, as gdb does, and say which ("strlen -> __strlen_avx2"). */
static int ifunc_chosen(struct diag_engine *e, struct eproc *ep, const struct diag_modmap *mods,
			struct diag_location *loc, struct diag_error *err)
{
	if (!loc->ifunc || (loc->kind != DIAG_LOC_FUNCTION && loc->kind != DIAG_LOC_CLONE))
		return 0;
	uint64_t impl, start, size;
	int r = diag_ifunc_resolve(loc->mod, loc->symbol, loc->func_start, read_target,
				   eproc_mem(ep)->tp, &impl, err);
	if (r < 0)
		return r;
	const struct diag_module *m = diag_modmap_find(mods, impl);
	char name[200];
	if (diag_sym_lookup_func(e->syms, mods, impl, name, sizeof(name), &start, &size) == 0 &&
	    start == impl) {
		loc->func_end = impl + size;
	} else { /* a stripped library: no size (an int3 then); a name only from debug info */
		struct diag_dwarf_file *df = NULL;
		struct diag_dwarf_scope *sc = NULL;
		if (m && diag_dwarf_cache_get(e->dwarf, m->host_path, m->build_id, &df, NULL) == 0 &&
		    diag_dwarf_scope_at(df, impl - m->bias, &sc, NULL) == 0 && sc->func &&
		    sc->low_pc == impl - m->bias)
			snprintf(name, sizeof(name), "%s", sc->func);
		else
			snprintf(name, sizeof(name), "%s+0x%" PRIx64, m ? m->name : "?",
				 m ? impl - m->bias : impl);
		diag_dwarf_scope_free(sc);
		loc->func_end = 0;
	}
	snprintf(loc->note, sizeof(loc->note), "%.60s -> %.60s", loc->symbol, name);
	snprintf(loc->symbol, sizeof(loc->symbol), "%s", name);
	loc->addr = loc->func_start = impl;
	loc->offset = 0;
	loc->ifunc = false;
	if (m)
		loc->mod = m;
	return 0;
}

/* IFUNCs replaced by their implementations; two names of one implementation are one site. */
static int ifuncs_chosen(struct diag_engine *e, struct eproc *ep, const struct diag_modmap *mods,
			 struct diag_location *locs, size_t *n, struct diag_error *err)
{
	size_t w = 0;
	for (size_t i = 0; i < *n; i++) {
		int r = ifunc_chosen(e, ep, mods, &locs[i], err);
		if (r < 0)
			return r;
		bool dup = false;
		for (size_t j = 0; j < w && !dup; j++)
			dup = locs[j].addr == locs[i].addr;
		if (!dup)
			locs[w++] = locs[i];
	}
	*n = w;
	return 0;
}

static void describe(const struct diag_location *l, char *out, size_t cap)
{
	static const char *const kinds[] = {
		[DIAG_LOC_FUNCTION] = "function", [DIAG_LOC_CLONE] = "clone",
		[DIAG_LOC_INLINED] = "inlined", [DIAG_LOC_LINE] = "line",
		[DIAG_LOC_ADDRESS] = "address",
	};
	const char *k = (size_t)l->kind < sizeof(kinds) / sizeof(kinds[0]) && kinds[l->kind]
				? kinds[l->kind] : "address";
	if (l->note[0]) /* the note says what it is: "inlined into main at a.c:3", "clone f.isra.0" */
		snprintf(out, cap, "%.90s", l->note);
	else
		snprintf(out, cap, "%s %.64s+0x%llx", k, l->symbol[0] ? l->symbol : "?",
			 (unsigned long long)l->offset);
}

int eng_probe_install(struct diag_engine *e, struct eproc *ep, struct probe *pr,
			struct diag_error *err)
{
	struct diag_modmap mods = {0};
	struct diag_location *locs = NULL;
	size_t n = 0;
	int r = diag_modmap_read(ep->tp->pid, &mods, err);
	if (r == 0 && eng_dl_absent(&mods, pr->target) && !ep->tp->mem_owner) {
		char names[300];
		diag_modmap_names(&mods, names, sizeof(names));
		/* a library not loaded yet: wait for it (applied when the dynamic linker maps it) */
		struct diag_thread *stopped = NULL;
		r = eng_dl_watch(e, ep, &stopped, err);
		if (stopped)
			eng_resume_stopped(e, stopped);
		diag_modmap_release(&mods);
		if (r < 0) {
			pr->state = DIAG_PROBE_ERROR;
			snprintf(pr->error, sizeof(pr->error), "%s", err ? err->msg : "");
			return r;
		}
		pr->state = DIAG_PROBE_PENDING;
		snprintf(pr->error, sizeof(pr->error),
			 "waiting for its module to be loaded; mapped now: %s", names);
		return 0;
	}
	struct diag_skip *skips = NULL;
	size_t nskips = 0;
	if (r == 0) {
		char *end = NULL;
		uint64_t a = strncmp(pr->target, "0x", 2) == 0 ? strtoull(pr->target, &end, 16) : 0;
		if (end && end > pr->target + 2 && !*end) /* say what is there, module or not */
			r = diag_site_check_mapping(eproc_mem(ep)->tp->pid, a, err);
		if (r == 0)
			r = diag_sym_resolve(e->syms, &mods, pr->target, NULL, &locs, &n, &skips,
					     &nskips, err);
		if (r == 0)
			r = ifuncs_chosen(e, ep, &mods, locs, &n, err);
		if (r < 0)
			diag_error_lead_field(err, "target");
	}
	pr->nskips = nskips;
	for (size_t i = 0; i < nskips && i < DIAG_PROBE_MAX_SKIPS; i++)
		pr->skips[i] = skips[i];
	free(skips);
	if (r == 0 && pr->event == DIAG_EVENT_END)
		r = eng_end_locations(ep, &locs, &n, err);
	if (r == 0 && n > DIAG_PROBE_MAX_ADDRS)
		r = diag_error_set_field(err, "target", -DIAG_E_LIMIT,
					 "target: '%s' matches %zu addresses (max %d)", pr->target, n,
					 DIAG_PROBE_MAX_ADDRS);
	/* one instance of several that cannot be patched (an inlined copy inside a function the
	 * ELF symbols do not name, say) is skipped and said why; the others are probed */
	for (size_t i = 0; r == 0 && i < n;) {
		struct diag_error why = {0};
		if ((r = check_location(e, ep, &mods, &locs[i], n > 1 ? &why : err)) == 0) {
			i++;
			continue;
		}
		if (n == 1) {
			diag_error_lead_field(err, "target");
			break;
		}
		if (pr->nskips < DIAG_PROBE_MAX_SKIPS) {
			struct diag_skip *k = &pr->skips[pr->nskips++];
			k->mod = locs[i].mod;
			describe(&locs[i], k->what, sizeof(k->what));
			snprintf(k->reason, sizeof(k->reason), "%.127s", why.msg);
		}
		locs[i] = locs[--n];
		r = 0;
	}
	if (r == 0 && !(pr->sites = calloc(n, sizeof(*pr->sites))))
		r = diag_error_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; r == 0 && i < n; i++) {
		pr->sites[i].pr = pr;
		describe(&locs[i], pr->sites[i].what, sizeof(pr->sites[i].what));
		pr->sites[i].kind = pr->event == DIAG_EVENT_RETURN ? SITE_RET_ENTRY
				    : pr->event == DIAG_EVENT_END  ? SITE_END
								   : SITE_CALL;
		pr->nsites = i + 1;
		r = compile_site(e, ep, pr, &locs[i], &pr->sites[i], err);
	}
	struct diag_thread *stopped = NULL;
	for (size_t i = 0; r == 0 && i < n; i++)
		r = place_site(e, ep, &pr->sites[i], &locs[i], &stopped, err);
	if (stopped)
		eng_resume_stopped(e, stopped);
	free(locs);
	diag_modmap_release(&mods);
	if (r < 0) {
		sites_free(e, ep, pr, NULL, 0);
		pr->state = DIAG_PROBE_ERROR;
		snprintf(pr->error, sizeof(pr->error), "%s", err ? err->msg : diag_strerror(r));
		return r;
	}
	pr->state = DIAG_PROBE_APPLIED;
	pr->error[0] = '\0';
	return 0;
}

int eng_probes_clone_sites(struct diag_engine *e, struct eproc *child, struct eproc *parent)
{
	struct probe **tail = &child->probes;
	for (struct probe *src = parent->probes; src; src = src->next) {
		struct probe *pr = eng_probe_copy(src);
		if (!pr)
			return -ENOMEM;
		*tail = pr;
		tail = &pr->next;
		/* A vfork child runs on its parent's memory and breakpoints: nothing to place. */
		if (child->tp->mem_owner || src->state != DIAG_PROBE_APPLIED) {
			pr->state = src->state;
			snprintf(pr->error, sizeof(pr->error), "%s", src->error);
			continue;
		}
		struct diag_error err = {0};
		if (eng_probe_install(e, child, pr, &err) < 0 && e->cb.on_probe_state)
			e->cb.on_probe_state(e->cb.ctx, child->tp->pid, pr->cookie, pr->state,
					     pr->error);
		else
			eng_retsite_adopt(e, child, pr, src);
	}
	return 0;
}
