/* retprobe: return and end events without touching the target's stack. A return probe puts an
 * int3 at the function's entry that only remembers the frame (thread, sp, return address,
 * time) and an int3 at each return address seen; the return is the frame whose sp + 8 equals
 * sp at the return address. A frame left by longjmp or an exception never returns there: it
 * is purged as soon as the thread is seen above it, so it leaves no stale record and produces
 * no event. The return address is read, never written: unwinders, exceptions and longjmp work
 * through probed frames. */
#include "engine/engine_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/branch.h"
#include "bp/site_check.h"
#include "util/grow.h"

#define MAX_PENDING 4096   /* frames per thread (deep recursion beyond: returns lost, counted) */
#define MAX_RET_SITES ENG_RET_SITES_MAX
#define MAX_END_SITES 64   /* exits per function */
#define MAX_EXIT_SCAN (1u << 20) /* longest function whose exits are planned */

static struct tpending *pending_of(struct diag_thread *t, bool grow)
{
	struct tpending *tp = t->ext;
	if (grow && (!tp || tp->n == tp->cap)) {
		size_t cap = tp ? tp->cap * 2 : 8;
		if (cap > MAX_PENDING)
			return tp && tp->n < tp->cap ? tp : NULL;
		struct tpending *n = realloc(tp, sizeof(*n) + cap * sizeof(n->v[0]));
		if (!n)
			return NULL;
		if (!tp)
			n->n = 0;
		n->cap = cap;
		t->ext = tp = n;
	}
	return tp;
}

/* Frames at or below `sp_limit` (their sp at entry) are gone. */
static void purge_below(struct tpending *tp, uint64_t sp_limit)
{
	size_t w = 0;
	for (size_t i = 0; i < tp->n; i++)
		if (tp->v[i].sp > sp_limit)
			tp->v[w++] = tp->v[i];
	tp->n = w;
}

static struct site *ret_site_for(struct probe *pr, struct diag_bp *bp)
{
	for (size_t i = 0; i < pr->nrsites; i++)
		if (pr->rsites[i]->bp == bp)
			return pr->rsites[i];
	if (pr->nrsites == MAX_RET_SITES)
		return NULL;
	if (DIAG_GROW(&pr->rsites, &pr->caprsites, pr->nrsites + 1) < 0)
		return NULL;
	struct site *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->pr = pr;
	s->bp = bp;
	s->kind = SITE_RET;
	if (diag_bp_add_user(bp, s) < 0) {
		free(s);
		return NULL;
	}
	pr->rsites[pr->nrsites++] = s;
	return s;
}

void eng_ret_purge(struct diag_thread *t, const struct diag_bp *bp, uint64_t sp)
{
	struct tpending *tp = t->ext;
	if (!tp || !tp->n)
		return;
	uint64_t top = 0;
	bool have_top = false;
	size_t w = 0;
	for (size_t i = 0; i < tp->n; i++) {
		const struct pending *p = &tp->v[i];
		bool dead;
		if (sp > p->sp) { /* the thread is above that frame: gone, unless returning now */
			dead = !(sp == p->sp + 8 && bp->addr == p->ra);
		} else if (sp == p->sp) {
			/* a call at that frame's depth: a tail call from it pushed nothing and shares
			 * its return address; anything else (or the same function entered again
			 * from the same place) means the frame was left without returning */
			if (!have_top)
				have_top = diag_proc_read(t->proc, sp, &top, sizeof(top)) == sizeof(top);
			dead = !have_top || top != p->ra || p->entry->bp == bp;
		} else {
			dead = false; /* deeper: still inside it */
		}
		if (!dead)
			tp->v[w++] = *p;
	}
	tp->n = w;
}

void eng_ret_enter(struct diag_engine *e, struct diag_thread *t, struct site *s,
		     const diag_regs *regs, uint64_t ts)
{
	(void)e;
	struct eproc *mem = eproc_mem(eproc_of(t->proc));
	uint64_t ra;
	struct tpending *tp = pending_of(t, false);
	struct diag_bp *rabp = NULL;
	if (diag_proc_read(t->proc, diag_regs_sp(regs), &ra, sizeof(ra)) != sizeof(ra) ||
	    eng_bp_in_jump(&mem->bps, ra) ||
	    /* the return address is read from the target's stack: it may point anywhere */
	    (!diag_bp_at(&mem->bps, ra) && diag_site_check_mapping(mem->tp->pid, ra, NULL) < 0) ||
	    diag_bp_get(&mem->bps, mem->tp, t, ra, &rabp, NULL) < 0 || rabp == s->bp ||
	    !ret_site_for(s->pr, rabp) || !(tp = pending_of(t, true))) {
		s->pr->lost_returns++;
		return;
	}
	tp->v[tp->n++] = (struct pending){.entry = s, .sp = diag_regs_sp(regs), .ra = ra, .t0 = ts};
}

struct site *eng_ret_match(struct diag_thread *t, struct site *s, uint64_t sp, uint64_t *t0)
{
	struct tpending *tp = pending_of(t, false);
	if (!tp)
		return NULL;
	struct site *entry = NULL;
	for (size_t i = tp->n; i-- > 0;) {
		struct pending *p = &tp->v[i];
		if (p->sp + 8 == sp && p->ra == s->bp->addr && p->entry->pr == s->pr) {
			entry = p->entry;
			*t0 = p->t0;
			tp->v[i] = tp->v[--tp->n];
			break;
		}
	}
	/* anything deeper than the frame returning now was left without returning */
	purge_below(tp, sp - 9);
	return entry;
}

static void forget_frames(struct eproc *ep, struct probe *pr)
{
	size_t pos = 0;
	uint64_t k;
	void *v;
	while (diag_u64map_next(&ep->tp->threads, &pos, &k, &v)) {
		struct tpending *tp = ((struct diag_thread *)v)->ext;
		size_t w = 0;
		for (size_t i = 0; tp && i < tp->n; i++)
			if (tp->v[i].entry->pr != pr)
				tp->v[w++] = tp->v[i];
		if (tp)
			tp->n = w;
	}
}

void eng_ret_forget(struct diag_engine *e, struct eproc *ep, struct probe *pr)
{
	struct eproc *mem = eproc_mem(ep);
	bool alive = diag_u64map_get(&e->procs, (uint64_t)mem->tp->pid) == mem;
	for (size_t i = 0; i < pr->nrsites; i++) {
		if (alive && pr->rsites[i]->bp) /* exit jumps: taken off by the caller */
			diag_bp_del_user(&mem->bps, mem->tp, pr->rsites[i]->bp, pr->rsites[i]);
		free(pr->rsites[i]);
	}
	free(pr->rsites);
	pr->rsites = NULL;
	pr->nrsites = pr->caprsites = 0;
	if (alive) {
		forget_frames(mem, pr);
		/* vfork children run on the same memory, with threads of their own */
		size_t pos = 0;
		uint64_t k;
		void *v;
		while (diag_u64map_next(&e->procs, &pos, &k, &v))
			if (((struct eproc *)v)->tp->mem_owner == mem->tp)
				forget_frames(v, pr);
	}
}

/* The function's code as compiled: live bytes, with what our own patches (int3s, jumps)
 * replaced put back (another probe's jump at the entry would read as a tail call). */
static bool read_unpatched(struct eproc *ep, uint64_t start, uint8_t *code, size_t len)
{
	if (diag_proc_read(ep->tp, start, code, len) != (ssize_t)len)
		return false;
	size_t pos = 0;
	uint64_t k;
	void *v;
	while (diag_u64map_next(&eproc_mem(ep)->bps.by_addr, &pos, &k, &v)) {
		const struct diag_bp *bp = v;
		for (size_t i = 0; i < bp->written_len && i < sizeof(bp->orig_bytes); i++)
			if (bp->addr + i >= start && bp->addr + i < start + len)
				code[bp->addr + i - start] = bp->orig_bytes[i];
	}
	return true;
}

int eng_end_locations(struct eproc *ep, struct diag_location **locs, size_t *n,
			struct diag_error *err)
{
	size_t total = 0, cap = 0;
	struct diag_location *out = NULL;
	for (size_t i = 0; i < *n; i++) {
		const struct diag_location *l = &(*locs)[i];
		size_t len = l->func_end > l->func_start ? l->func_end - l->func_start : 0;
		uint8_t *code = len && len < (1u << 20) ? malloc(len) : NULL;
		uint64_t exits[MAX_END_SITES];
		int k = -DIAG_E_PARSE;
		if (code && read_unpatched(ep, l->func_start, code, len))
			k = diag_function_exits(code, len, l->func_start, exits, MAX_END_SITES);
		free(code);
		if (k < 0 || k > MAX_END_SITES || k == 0) {
			free(out);
			return diag_error_set_field(err, "target", k < 0 ? k : -DIAG_E_INVALID,
					      k > MAX_END_SITES
						      ? "target: '%s' has %d exits (max %d) for an end probe"
					      : k == 0 ? "target: '%s' has no ret or tail call to probe (%d/%d)"
						       : "target: cannot decode '%s' to find its exits (%d/%d)",
					      l->symbol, k, MAX_END_SITES);
		}
		if (DIAG_GROW(&out, &cap, total + (size_t)k) < 0) {
			free(out);
			return diag_error_set(err, -ENOMEM, "out of memory");
		}
		for (int j = 0; j < k; j++) {
			out[total] = *l;
			out[total].addr = exits[j];
			out[total].offset = exits[j] - l->func_start;
			total++;
		}
	}
	free(*locs);
	*locs = out;
	*n = total;
	return 0;
}

/* ---- exits for exit trampolines (exitjump.c places them) ---- */

int eng_exit_plans_of(struct eproc *ep, uint64_t func_start, uint64_t func_end,
		      struct diag_exit_plan **plans, size_t *n, char *why, size_t cap)
{
	size_t len = func_end > func_start ? func_end - func_start : 0;
	if (!len || len > MAX_EXIT_SCAN) {
		snprintf(why, cap, "exits: the function's size is %s", len ? "too large to scan"
									    : "unknown");
		return 1;
	}
	uint8_t *code = malloc(len);
	struct diag_exit_plan *p = calloc(MAX_END_SITES, sizeof(*p));
	int k = -ENOMEM;
	if (code && p)
		k = read_unpatched(ep, func_start, code, len)
			    ? diag_exit_plans(code, len, func_start, p, MAX_END_SITES)
			    : -EIO;
	free(code);
	if (k <= 0 || k > MAX_END_SITES) {
		free(p);
		snprintf(why, cap, k == 0 ? "exits: no ret or tail call"
				   : k > MAX_END_SITES ? "exits: %d of them (max %d)"
						       : "exits: cannot read or decode the function (%d)",
			 k, MAX_END_SITES);
		return 1;
	}
	*plans = p;
	*n = (size_t)k;
	return 0;
}

bool eng_exit_plan_free(const struct diag_bptable *t, const struct diag_exit_plan *p,
			uint64_t keep_clear, char *why, size_t cap)
{
	uint64_t end = p->term + p->term_len;
	if (p->why[0]) {
		snprintf(why, cap, "exit at 0x%llx: %s", (unsigned long long)p->term, p->why);
		return false;
	}
	if (p->start < keep_clear) {
		snprintf(why, cap, "exit at 0x%llx: its jump would overlap the entry's",
			 (unsigned long long)p->term);
		return false;
	}
	/* another probe's patch inside the window, or the window inside another jump */
	for (uint64_t a = p->start; a < end; a++) {
		const struct diag_bp *b = diag_bp_at(t, a);
		if ((b && (a != p->start || !b->jump)) || (a == p->start && eng_bp_in_jump(t, a))) {
			snprintf(why, cap, "exit at 0x%llx: another probe's patch at 0x%llx",
				 (unsigned long long)p->term, (unsigned long long)a);
			return false;
		}
	}
	return true;
}
