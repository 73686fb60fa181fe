/* retsite: return sites, the jump path's watch on return addresses. A return probe on a
 * function that leaves by a tail call (`jmp callee` after its frame is torn down) cannot see
 * its return at the jmp: the callee returns in its stead, straight to the caller. Its entry
 * records carry the return address ([sp] at entry, fastpath.c's add_ra); a drain that finds
 * one its probe has no return site for queues it (exitjump.c, eproc.rs_want), and at the next
 * dispatch this file places a return site there: a jump at that instruction of the caller
 * whose trampoline records an exit (DIAG_REC_RETSITE) that closes the frame entered at
 * sp - 8. Returns before it is placed are counted lost (exitjump.c, unwatched frames). An
 * address that takes no jump gets an int3 for itself, or where none may go is remembered with
 * its reason (`applied`'s skips) and its returns stay lost. The caller's bounds (for the
 * branch check) come from its symbol, or from its FDE in .eh_frame_hdr when none covers it. At most ENG_RET_SITES_MAX return sites per probe. Owns the queue's
 * consumption; never reads the ring nor pairs frames. */
#include "engine/engine_internal.h"

#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bp/site_check.h"

/* entry still names a live want_ra site of ep's probes (the queue outlives nothing, but a
 * probe removed by a drain's caller since leaves a stale pointer: compared, never read) */
static bool live_entry(const struct eproc *ep, const struct site *entry)
{
	for (const struct probe *pr = ep->probes; pr; pr = pr->next)
		for (size_t i = 0; i < pr->nsites; i++)
			if (&pr->sites[i] == entry)
				return entry->kind == SITE_RET_ENTRY && entry->want_ra;
	return false;
}

#define INT3_TRIES 8 /* attempts at an int3 return site before its address is given up */

static struct site *site_at(const struct probe *pr, uint64_t ra)
{
	for (size_t i = 0; i < pr->nrsites; i++)
		if (pr->rsites[i]->at == ra)
			return pr->rsites[i];
	return NULL;
}

static bool tried(const struct probe *pr, uint64_t ra)
{
	return site_at(pr, ra) != NULL;
}

static void note_skip(struct probe *pr, uint64_t ra, const char *why)
{
	if (pr->nskips < DIAG_PROBE_MAX_SKIPS) {
		struct diag_skip *k = &pr->skips[pr->nskips];
		*k = (struct diag_skip){0};
		snprintf(k->what, sizeof(k->what), "return site at 0x%llx", (unsigned long long)ra);
		snprintf(k->reason, sizeof(k->reason), "returns there lost: %s", why);
	}
	pr->nskips++;
}

#define EH_TABLE_MAX (1u << 20) /* entries of an .eh_frame_hdr search table read at most */

static bool rd(struct eproc *ep, uint64_t addr, void *buf, size_t len)
{
	return diag_proc_read(ep->tp, addr, buf, len) == (ssize_t)len;
}

/* The bounds of the function containing ra by its FDE, for code no symbol covers (a static
 * function of a stripped file): the module's .eh_frame_hdr binary search table, read from the
 * target's memory (the segment is loaded), in the layout GNU ld writes (version 1, table of
 * datarel sdata4 pairs), and the FDE it names, whose pc_begin (pcrel sdata4) must agree with
 * the table. Hostile memory: every read bounded, anything else refused. */
static bool fde_bounds(struct eproc *ep, const struct diag_module *mod, uint64_t ra,
		       uint64_t *lo, uint64_t *hi)
{
	Elf64_Ehdr eh;
	if (!rd(ep, mod->start, &eh, sizeof(eh)) || memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phentsize != sizeof(Elf64_Phdr) ||
	    eh.e_phnum > 64)
		return false;
	uint64_t hdr = 0;
	for (unsigned i = 0; i < eh.e_phnum && !hdr; i++) {
		Elf64_Phdr ph;
		if (!rd(ep, mod->start + eh.e_phoff + i * sizeof(ph), &ph, sizeof(ph)))
			return false;
		if (ph.p_type == PT_GNU_EH_FRAME)
			hdr = mod->bias + ph.p_vaddr;
	}
	uint8_t h[12];
	if (!hdr || !rd(ep, hdr, h, sizeof(h)) || h[0] != 1 || h[2] != 0x03 || h[3] != 0x3b)
		return false; /* version 1, udata4 count, datarel sdata4 table */
	uint32_t count;
	memcpy(&count, h + 8, sizeof(count));
	if (!count || count > EH_TABLE_MAX)
		return false;
	/* the last entry whose start is at or below ra */
	uint32_t a = 0, b = count;
	int32_t ent[2];
	while (b - a > 1) {
		uint32_t m = a + (b - a) / 2;
		if (!rd(ep, hdr + 12 + (uint64_t)m * 8, ent, sizeof(ent)))
			return false;
		if (hdr + (int64_t)ent[0] <= ra)
			a = m;
		else
			b = m;
	}
	if (!rd(ep, hdr + 12 + (uint64_t)a * 8, ent, sizeof(ent)))
		return false;
	uint64_t start = hdr + (int64_t)ent[0], fde = hdr + (int64_t)ent[1];
	uint32_t f[4]; /* length, CIE pointer, pc_begin, pc_range */
	if (!rd(ep, fde, f, sizeof(f)) || f[0] == 0xffffffffu || f[0] < 12 || !f[1])
		return false;
	if (fde + 8 + (int64_t)(int32_t)f[2] != start || ra < start || ra - start >= f[3])
		return false; /* not the pcrel sdata4 FDE the table names, or ra past its end */
	*lo = start;
	*hi = start + f[3];
	return true;
}

/* No jump fits at x->at: an int3 for this return address alone (its hits close the jump
 * frames: exitjump.c's eng_exit_trap), where the target allows one. Returns 0, or a negative
 * code with why (cap bytes) extended. */
static int place_int3(struct diag_engine *e, struct eproc *ep, struct site *x, char *why,
		      size_t cap)
{
	struct diag_thread *stopped = NULL;
	struct diag_error err = {0};
	int r = 0;
	/* an int3 must never outlive us unprotected (probe.c's rule) */
	if (!diag_bp_at(&ep->bps, x->at))
		r = eng_safety_ensure(e, ep, &stopped, &err);
	if (r == 0)
		r = eng_bp_get(e, ep, &stopped, x->at, &x->bp, &err);
	if (r == 0 && diag_bp_add_user(x->bp, x) < 0) {
		diag_bp_del_user(&ep->bps, ep->tp, x->bp, x);
		r = diag_error_set(&err, -ENOMEM, "out of memory");
	}
	if (r < 0)
		x->bp = NULL;
	if (stopped)
		eng_resume_stopped(e, stopped);
	if (r < 0) { /* the int3's reason first: the jump's is long */
		char jump[160];
		snprintf(jump, sizeof(jump), "%s", why);
		snprintf(why, cap, "no int3 (%.70s), no jump (%.60s)", err.msg, jump);
	}
	return r;
}

/* One queued return address (ep frozen by the placing, or not yet). */
static void place_one(struct diag_engine *e, struct eproc *ep, const struct diag_modmap *mods,
		      struct site *entry, uint64_t ra)
{
	struct probe *pr = entry->pr;
	struct site *old = site_at(pr, ra);
	char why[160] = "";
	if (old) { /* placed, refused for good, or an int3 refused for now: again */
		if (!old->bp && old->int3_tries && old->int3_tries < INT3_TRIES &&
		    place_int3(e, ep, old, why, sizeof(why)) < 0 && ++old->int3_tries == INT3_TRIES)
			note_skip(pr, ra, why);
		return;
	}
	if (pr->nretsites >= ENG_RET_SITES_MAX) {
		if (pr->nretsites++ == ENG_RET_SITES_MAX)
			note_skip(pr, ra, "the probe has ENG_RET_SITES_MAX return sites already");
		return;
	}
	char name[256];
	uint64_t start = 0, size = 0;
	/* the return address was read from the target's stack: it may point anywhere; code of
	 * a function without a symbol (a static one in a stripped file) has no bounds to check
	 * branches against: no jump there (an int3 needs none) */
	bool code = diag_site_check_mapping(ep->tp->pid, ra, NULL) == 0;
	const struct diag_module *mod = code ? diag_modmap_find(mods, ra) : NULL;
	uint64_t lo = 0, hi = 0;
	if (!code || diag_sym_lookup_func(e->syms, mods, ra, name, sizeof(name), &start, &size) < 0 ||
	    ra <= start || ra >= start + size)
		start = size = 0;
	if (!size && mod && fde_bounds(ep, mod, ra, &lo, &hi) && lo < ra) {
		start = lo;
		size = hi - lo;
	}
	/* the site is made even when refused: the address is not tried again */
	int r = eng_fast_place_retsite(e, ep, entry, ra, start, start + size, why, sizeof(why));
	if (r == 0)
		return;
	struct site *x = r == 1 && code && pr->nrsites ? pr->rsites[pr->nrsites - 1] : NULL;
	if (x && x->at == ra) {
		if (place_int3(e, ep, x, why, sizeof(why)) < 0)
			x->int3_tries = 1; /* tried again as later entries name ra */
		return;
	}
	note_skip(pr, ra, why);
}

static void place_for(struct diag_engine *e, struct eproc *ep)
{
	struct eng_rs_want want[ENG_RS_WANT_MAX];
	size_t n = ep->rs_nwant;
	memcpy(want, ep->rs_want, n * sizeof(want[0]));
	ep->rs_nwant = 0;
	struct diag_modmap mods = {0};
	struct diag_error err = {0};
	if (diag_modmap_read(ep->tp->pid, &mods, &err) < 0)
		return;
	pid_t pid = ep->tp->pid;
	for (size_t i = 0; i < n; i++) {
		if (diag_u64map_get(&e->procs, (uint64_t)pid) != ep)
			break; /* it exited while its threads were stopped for one */
		if (live_entry(ep, want[i].entry))
			place_one(e, ep, &mods, want[i].entry, want[i].ra);
	}
	diag_modmap_release(&mods);
}

void eng_retsite_place_pending(struct diag_engine *e)
{
	pid_t pids[64];
	size_t n = 0, pos = 0;
	uint64_t k;
	void *v;
	while (n < 64 && diag_u64map_next(&e->procs, &pos, &k, &v)) {
		const struct eproc *ep = v;
		if (ep->rs_nwant && !ep->tp->mem_owner && !ep->freeze)
			pids[n++] = (pid_t)k;
	}
	for (size_t i = 0; i < n; i++) {
		struct eproc *ep = diag_u64map_get(&e->procs, (uint64_t)pids[i]);
		if (ep)
			place_for(e, ep);
	}
}

void eng_retsite_adopt(struct diag_engine *e, struct eproc *child, struct probe *pr,
		       const struct probe *src)
{
	struct site *entry = NULL;
	for (size_t i = 0; !entry && i < pr->nsites; i++)
		if (pr->sites[i].kind == SITE_RET_ENTRY && pr->sites[i].want_ra &&
		    pr->sites[i].bp && pr->sites[i].bp->jump)
			entry = &pr->sites[i];
	for (size_t i = 0; entry && i < src->nrsites; i++) {
		const struct site *x = src->rsites[i];
		const struct diag_bp *bp = x->at ? diag_bp_at(&child->bps, x->at) : NULL;
		const struct eng_slot *sl = bp ? diag_u64map_get(&child->slots, bp->slot_page) : NULL;
		char why[160];
		if (sl && sl->retsite && sl->adopt && !tried(pr, x->at))
			eng_fast_place_retsite(e, child, entry, x->at, 0, 0, why, sizeof(why));
	}
}
