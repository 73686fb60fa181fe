/* fastpath: probes that cost the target no stop. A probe whose value and condition compile
 * into capture programs (expr.h, diag_expr_capture_compile) is placed as a jump to a capture
 * trampoline in a slot page of its own near the probed code; the trampoline counts the hit,
 * runs the condition, captures what the value will read and records it into the ring
 * (ring.c). Whatever cannot take a jump takes an int3, and the site says why (s->why).
 * Owns placing, rebuilding, demoting and retiring jumps, slot pages, counting sites (probes
 * whose hits are their counters) and fault repair in slots; the ring, its drain and the
 * threads' pointers are ring.c's. Never stops a thread but through stop.c's freeze. */
#include "engine/engine_internal.h"
#include "util/clock.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/branch.h"
#include "arch/record.h"
#include "capture/capture.h"
#include "util/grow.h"

#define MAX_SCAN (256 * 1024)    /* longest function scanned for branches into a patch */
#define STEP_OUT 4096            /* single steps that may take a thread out of a slot */

/* ---- counting sites: probes whose hits are their counters ---- */

/* Every site at bp (less leaving, plus s when it joins) only counts. */
static bool all_counting(const struct diag_bp *bp, const struct site *s, const struct site *leaving)
{
	bool any = false;
	for (size_t i = 0; bp && i < bp->nusers; i++) {
		const struct site *u = bp->users[i];
		if (u == leaving)
			continue;
		if (!eng_site_counting(u))
			return false;
		any = true;
	}
	return s ? eng_site_counting(s) : any;
}

static void slots_release(struct eproc *ep)
{
	size_t pos = 0;
	uint64_t k;
	void *v;
	while (diag_u64map_next(&ep->slots, &pos, &k, &v))
		free(v);
	diag_u64map_release(&ep->slots);
}

void eng_fast_reset(struct eproc *ep)
{
	eng_ring_reset(ep);
	ep->next_site = 0; /* the new ring's counters start from the first */
	diag_u64map_release(&ep->jumps);
	slots_release(ep);
}

void eng_fast_unmap(struct eproc *ep, struct diag_thread *t)
{
	size_t pos = 0;
	uint64_t k;
	void *v;
	while (t && diag_u64map_next(&ep->slots, &pos, &k, &v))
		diag_xol_unmap_page(t, k);
	eng_ring_unmap(ep, t);
	eng_fast_reset(ep);
}

void eng_fast_forget(struct eproc *mem, struct diag_bp *bp)
{
	if (!bp->jump)
		return;
	diag_u64map_del(&mem->jumps, bp->site_id);
	struct eng_slot *sl = bp->slot_page ? diag_u64map_get(&mem->slots, bp->slot_page) : NULL;
	if (sl)
		sl->retired = true;
}

/* The trampoline at sl switches to counting or back (every thread out of it, the ring
 * drained, so each counter holds exactly the hits already delivered as records). */
static void counting_switch(struct eproc *ep, struct eng_slot *sl, struct diag_bp *bp, bool on)
{
	if (on && !sl->count_only)
		for (size_t i = 0; i < bp->nusers; i++) {
			struct site *u = bp->users[i];
			u->counted = eng_fast_site_count(ep, u);
		}
	sl->count_only = on;
}

/* ---- draining ---- */
/* A jump covering [addr, addr+span) must not hide another breakpoint, nor lie in another jump. */
static bool range_free(const struct diag_bptable *t, uint64_t addr, size_t span)
{
	for (size_t i = 1; i < span; i++)
		if (diag_bp_at(t, addr + i))
			return false;
	return !eng_bp_in_jump(t, addr);
}

static int branches_into(struct eproc *ep, const struct diag_location *loc, size_t span)
{
	size_t len = loc->func_end - loc->func_start;
	if (len > MAX_SCAN)
		return 1;
	uint8_t *code = malloc(len);
	if (!code)
		return 1;
	int r = diag_proc_read(ep->tp, loc->func_start, code, len) == (ssize_t)len
			? diag_branch_into(code, len, loc->func_start, loc->addr, loc->addr + span)
			: 1;
	free(code);
	return r != 0;
}

static int why(struct site *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Says why s takes an int3; returns 1 (the caller's "use an int3"). */
static int why(struct site *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = snprintf(s->why, sizeof(s->why), "int3: ");
	vsnprintf(s->why + n, sizeof(s->why) - (size_t)n, fmt, ap);
	va_end(ap);
	return 1;
}

/* The reasons that need no look at the code. */
static int ineligible(struct diag_engine *e, struct eproc *ep, struct site *s,
		      const struct diag_location *loc)
{
	if (e->no_fast)
		return why(s, "DIAG_NO_FASTPATH");
	if (ep->tp->mem_owner)
		return why(s, "a vfork child shares its parent's patches");
	if (s->kind != SITE_CALL && s->kind != SITE_RET_ENTRY && s->kind != SITE_END)
		return why(s, "this kind of site takes an int3");
	if (!loc->func_end)
		return why(s, "the function's end is unknown (no symbol size)");
	/* an end probe's location is its exit: its patch may start before it (place_end) */
	if (s->kind != SITE_END && loc->func_end - loc->addr < DIAG_TRAMP_PATCH_LEN)
		return why(s, "fewer than %d bytes of the function follow 0x%llx",
			   DIAG_TRAMP_PATCH_LEN, (unsigned long long)loc->addr);
	/* an inlined copy's bounds are its own range, not its caller's: branches from the rest
	 * of the caller into the patched bytes could not be ruled out */
	if (loc->kind == DIAG_LOC_INLINED)
		return why(s, "an inlined copy (branches of its caller into the patch cannot be "
			      "ruled out)");
	return 0;
}

/* What one site asks of the trampoline at its address: a return probe's entry nothing but
 * the record (registers, sp, clock: its expressions are for the exit); a return probe's exit
 * its value and its condition's reads, with no condition in the target (its frame needs the
 * record); the others their value and condition. */
static void capture_of(const struct site *u, const struct diag_expr **vals,
		       const struct diag_expr **conds, size_t *n)
{
	if (u->kind == SITE_RET_ENTRY) {
		vals[*n] = NULL;
		conds[(*n)++] = NULL;
	} else if (u->kind == SITE_RET_EXIT) {
		vals[*n] = u->value;
		conds[(*n)++] = NULL;
		vals[*n] = u->condition;
		conds[(*n)++] = NULL;
	} else {
		vals[*n] = u->value;
		conds[(*n)++] = u->condition;
	}
}

/* The return address ([sp] at entry) saved first in the value program (its jump targets
 * move by the two ops): the entry record of a function that leaves by a tail call names
 * where its callee will return (exitjump.c, retsite.c). */
static int add_ra(struct diag_expr_capture *cap, struct diag_error *err)
{
	struct diag_cap_prog *p = cap->value;
	if (!p && (p = cap->value = calloc(1, sizeof(*p))) != NULL) {
		p->ops[0].op = DIAG_CAP_END;
		p->n = 1;
	}
	if (!p)
		return diag_error_set(err, -ENOMEM, "out of memory");
	uint32_t block = diag_cap_block_bytes(sizeof(uint64_t));
	if (p->n + 2 > DIAG_CAP_MAX_OPS || p->max_payload + block > DIAG_CAP_MAX_PAYLOAD)
		return diag_error_set(err, -DIAG_E_LIMIT,
				      "value: no room left for the return address in the capture");
	memmove(p->ops + 2, p->ops, p->n * sizeof(p->ops[0]));
	for (size_t i = 2; i < p->n + 2; i++)
		if (p->ops[i].op == DIAG_CAP_JMP || p->ops[i].op == DIAG_CAP_JZ ||
		    p->ops[i].op == DIAG_CAP_JNZ)
			p->ops[i].a += 2;
	p->ops[0] = (struct diag_cap_op){.op = DIAG_CAP_REG, .a = (uint32_t)diag_reg_sp()};
	p->ops[1] = (struct diag_cap_op){.op = DIAG_CAP_SAVE_MEM, .a = sizeof(uint64_t)};
	p->n += 2;
	p->max_payload += block;
	return 0;
}

/* The capture of every site at one address, plus s when it joins (s may be NULL), less
 * `leaving` (may be NULL). */
static int compile_for(const struct diag_bp *bp, struct site *s, const struct site *leaving,
		       struct diag_expr_capture *cap, struct diag_error *err)
{
	bool ra = s && s->want_ra;
	size_t n = 0, max = 2 * ((bp ? bp->nusers : 0) + 1);
	const struct diag_expr **vals = calloc(max, sizeof(*vals));
	const struct diag_expr **conds = calloc(max, sizeof(*conds));
	int r = vals && conds ? 0 : diag_error_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; r == 0 && bp && i < bp->nusers; i++)
		if (bp->users[i] != leaving) {
			capture_of(bp->users[i], vals, conds, &n);
			ra = ra || ((const struct site *)bp->users[i])->want_ra;
		}
	if (r == 0 && s)
		capture_of(s, vals, conds, &n);
	memset(cap, 0, sizeof(*cap));
	if (r == 0)
		r = diag_expr_capture_compile((const struct diag_expr *const *)vals,
					      (const struct diag_expr *const *)conds, n, cap, err);
	if (r == 0 && ra && (r = add_ra(cap, err)) < 0)
		diag_expr_capture_free(cap);
	free(vals);
	free(conds);
	return r;
}

/* After steps single steps: a pushf stepped inside a trampoline saved the trap flag and its
 * popf restored it; cleared, or the thread dies of SIGTRAP later (r: its registers now). */
static void unstep(struct diag_thread *t, diag_regs *r, int steps)
{
	if (steps && diag_regs_stepping(r)) {
		diag_regs_clear_step(r);
		diag_regs_write(t->tid, r);
	}
}

/* Every stopped thread out of (lo, hi) (at lo itself a thread just runs the jump). A thread of
 * a hot function is often caught inside: a few single steps take it out, rather than giving
 * up the jump for an int3 that costs 50 times more per hit. False if one cannot be moved. */
static bool threads_out_of(struct eproc *ep, uint64_t lo, uint64_t hi, int max_steps)
{
	size_t pos = 0;
	uint64_t k;
	void *v;
	while (diag_u64map_next(&ep->tp->threads, &pos, &k, &v)) {
		struct diag_thread *t = v;
		diag_regs r;
		for (int steps = 0; t->stopped; steps++) {
			if (diag_regs_read(t->tid, &r) < 0)
				break;
			if (diag_regs_pc(&r) <= lo || diag_regs_pc(&r) >= hi) {
				unstep(t, &r, steps);
				break;
			}
			if (steps == max_steps || diag_thread_step(t) < 0)
				return false;
		}
	}
	return true;
}

static struct diag_thread *any_stopped(struct eproc *ep)
{
	size_t pos = 0;
	uint64_t k;
	void *v;
	while (diag_u64map_next(&ep->tp->threads, &pos, &k, &v)) {
		struct diag_thread *t = v;
		if (t->stopped && !diag_thread_is_zombie(t))
			return t;
	}
	return NULL;
}

static void page_unmap(struct eproc *ep, struct diag_thread *t, uint64_t page)
{
	if (t && diag_xol_unmap_page(t, page) == 0)
		eng_journal_map(ep, page, DIAG_TRAMP_SLOT, "unmapped");
}

/* term: an exit trampoline's terminator (the patch is [addr, term + its length)), 0 for an
 * entry trampoline. */
static void capture_desc(const struct diag_engine *e, struct diag_tramp_capture *c,
			 uint64_t term, bool retsite,
			 uint64_t addr, const uint8_t *code, size_t avail, uint64_t page,
			 const struct eproc *ep, uint32_t site, const struct diag_expr_capture *cap,
			 bool count_only)
{
	*c = (struct diag_tramp_capture){
		.kind = term ? DIAG_TRAMP_EXIT : DIAG_TRAMP_ENTRY, .addr = addr, .term = term,
		.retsite = retsite,
		.code = code, .avail = avail,
		.slot = page, .ring = ep->ring_addr, .site = site,
		.fsgsbase = false, /* %fs:0: the ABI's self pointer, on every processor */
		.cond = cap->cond, .value = cap->value,
		.count_only = count_only && !term && !retsite && !cap->cond && !cap->value,
		/* the registers the site's evaluations read (cap->regs) and the stack pointer */
		.slim = !e->full_records, .slim_regs = cap->regs,
	};
}

/* Before a trampoline can run: the in-target fault guard, which repairs its faults when no
 * daemon is there to (a load through a bad pointer, or the thread pointer's load in a thread
 * without TLS yet: guard_install.c). Every thread frozen, t a stopped one. */
static int guard_for(struct diag_engine *e, struct eproc *ep, struct diag_thread *t,
		     struct diag_error *err)
{
	struct diag_thread *stopped = t;
	return eng_guard_ensure(e, ep, &stopped, err);
}

/* A new capture jump for s alone (every thread of ep frozen, t one of them): an entry
 * trampoline at addr (room bytes of the function from there), or for term != 0 an exit
 * trampoline over [addr, term + its length) (room: those bytes). */
static int place_capture(struct diag_engine *e, struct eproc *ep, struct diag_thread *t,
			 struct site *s, uint64_t addr, uint64_t term, size_t room, size_t span,
			 const struct diag_expr_capture *cap)
{
	if (!threads_out_of(ep, addr, addr + span, 16))
		return why(s, "a thread could not be moved out of the patched bytes");
	if (!ep->ring_addr) {
		int r = eng_ring_map(e, ep, t);
		if (r < 0)
			return why(s, "cannot map the ring: %s", diag_strerror(r));
	}
	struct diag_error gerr = {0};
	if (guard_for(e, ep, t, &gerr) < 0)
		return why(s, "%s", gerr.msg);
	uint32_t id = ep->next_site + 1;
	if (id >= DIAG_RING_MAX_SITES)
		return why(s, "out of site counters (%d per process)", DIAG_RING_MAX_SITES - 1);
	uint8_t code[DIAG_TRAMP_CODE_AVAIL];
	size_t avail = room < sizeof(code) ? room : sizeof(code);
	if (diag_proc_read(ep->tp, addr, code, avail) != (ssize_t)avail)
		return why(s, "cannot read the code at 0x%llx", (unsigned long long)addr);
	uint64_t page;
	int r = diag_xol_map_page(t, addr, &page);
	if (r < 0)
		return why(s, "cannot map a slot page near 0x%llx: %s",
			   (unsigned long long)addr, diag_strerror(r));
	eng_journal_map(ep, page, DIAG_TRAMP_SLOT, "slot");
	struct eng_slot *sl = calloc(1, sizeof(*sl));
	struct diag_tramp_capture c;
	bool retsite = s->kind == SITE_RET_EXIT && s->at; /* a return site */
	capture_desc(e, &c, term, retsite, addr, code, avail, page, ep, id, cap,
		     all_counting(NULL, s, NULL));
	struct diag_error berr = {0};
	struct diag_bp *bp = NULL;
	r = sl ? diag_bp_make_capture(&ep->bps, ep->tp, &c, &bp, &sl->layout, &sl->hdr, &berr)
	       : diag_error_set(&berr, -ENOMEM, "out of memory");
	if (r == 0) {
		sl->page = page;
		sl->term = term;
		sl->retsite = retsite;
		sl->cond_in_daemon = cap->cond_in_daemon || !cap->cond;
		sl->count_only = c.count_only;
		if (diag_u64map_put(&ep->slots, page, sl) < 0 ||
		    diag_u64map_put(&ep->jumps, id, bp) < 0 || diag_bp_add_user(bp, s) < 0) {
			diag_u64map_del(&ep->slots, page);
			diag_u64map_del(&ep->jumps, id);
			diag_bp_destroy(&ep->bps, ep->tp, bp);
			r = diag_error_set(&berr, -ENOMEM, "out of memory");
		}
	}
	if (r < 0) {
		free(sl);
		page_unmap(ep, t, page);
		return why(s, "%s", berr.msg);
	}
	ep->next_site = id;
	s->bp = bp;
	s->fast_base = 0;
	s->counted = 0;
	return 0;
}

static int place_new(struct diag_engine *e, struct eproc *ep, struct diag_thread *t,
		     struct site *s, const struct diag_location *loc,
		     const struct diag_expr_capture *cap, size_t span)
{
	return place_capture(e, ep, t, s, loc->addr, 0, loc->func_end - loc->addr, span, cap);
}

/* A probe that needs a stop joins a fast-path address: turn the jump into an int3 that serves
 * every probe there (ep frozen, t a stopped thread). Returns 1 (use the int3) or a negative
 * code. */
static int demote(struct diag_engine *e, struct eproc *ep, struct diag_bp *jump,
		  struct diag_error *err)
{
	size_t n = jump->nusers;
	void **users = malloc((n ? n : 1) * sizeof(*users));
	if (!users)
		return diag_error_set(err, -ENOMEM, "out of memory");
	memcpy(users, jump->users, n * sizeof(*users));
	uint64_t addr = jump->addr;
	struct diag_thread *t = any_stopped(ep);
	eng_fast_drain(e, ep); /* its records, with the users they were made for */
	eng_fast_forget(ep, jump);
	/* original bytes back, every thread stopped; code the target rewrote gets no int3 */
	struct diag_bp *bp = NULL;
	int r = diag_bp_destroy(&ep->bps, ep->tp, jump) == DIAG_BP_LEFT
			? diag_error_set(err, -DIAG_E_STATE,
					 "0x%llx: the target rewrote the patched bytes; not patched again",
					 (unsigned long long)addr)
			: diag_bp_get(&ep->bps, ep->tp, t, addr, &bp, err);
	for (size_t i = 0; i < n; i++) {
		struct site *u = users[i];
		u->bp = NULL;
		if (r == 0 && diag_bp_add_user(bp, u) == 0)
			u->bp = bp;
	}
	eng_fast_reap(e, ep);
	free(users);
	return r < 0 ? r : 1;
}

/* The trampoline of bp built again for its users plus s (joining) less leaving (ep frozen):
 * the ring drained first (its records were made for the users then), no thread inside. */
static int rebuild(struct diag_engine *e, struct eproc *ep, struct diag_bp *bp,
		   const struct diag_expr_capture *cap, bool count_only, struct diag_error *err)
{
	struct eng_slot *sl = diag_u64map_get(&ep->slots, bp->slot_page);
	if (!sl)
		return diag_error_set(err, -DIAG_E_STATE, "0x%llx: no slot", (unsigned long long)bp->addr);
	if (!threads_out_of(ep, bp->addr, bp->addr + bp->patched_len, 16) ||
	    !threads_out_of(ep, sl->page, sl->page + DIAG_TRAMP_SLOT, STEP_OUT))
		return diag_error_set(err, -DIAG_E_STATE, "a thread could not be moved out of the "
				      "trampoline at 0x%llx", (unsigned long long)bp->addr);
	eng_fast_drain(e, ep);
	struct diag_tramp_capture c;
	capture_desc(e, &c, sl->term, sl->retsite, bp->addr, bp->orig_bytes, bp->patched_len,
		     sl->page, ep, bp->site_id, cap, count_only);
	struct diag_tramp_layout l;
	struct diag_tramp_slot_header h;
	int r = diag_bp_rebuild_capture(ep->tp, bp, &c, &l, &h, err);
	if (r == 0) {
		sl->layout = l;
		sl->hdr = h;
		sl->cond_in_daemon = cap->cond_in_daemon || !cap->cond;
		counting_switch(ep, sl, bp, c.count_only);
	}
	return r;
}

/* s joins the capture jump bp: rebuilt for every probe there, or demoted to an int3 when the
 * probes together need a stop. */
static int join(struct diag_engine *e, struct eproc *ep, struct diag_bp *bp, struct site *s,
		struct diag_error *err)
{
	struct eng_slot *sl = diag_u64map_get(&ep->slots, bp->slot_page);
	if (sl && sl->adopt) {
		/* a fork child's probes join the copy of the parent's trampoline, built for the
		 * same probes; the child has not run since the fork (nothing to rebuild) */
		sl->adopt--;
		s->fast_base = eng_fast_count(ep, bp);
		s->counted = 0;
		s->bp = bp;
		return diag_bp_add_user(bp, s) < 0 ? diag_error_set(err, -ENOMEM, "out of memory") : 0;
	}
	struct diag_expr_capture cap;
	struct diag_error cerr = {0};
	/* an exit jump is never demoted: an int3 at its start is not where its sites are (nor
	 * a return site's: its sites pair with jump frames only) */
	bool exit_jump = sl && (sl->term || sl->retsite);
	int cr = compile_for(bp, s, NULL, &cap, &cerr);
	if (cr < 0)
		why(s, "%s", cerr.msg);
	struct diag_thread *t = eng_freeze(e, ep);
	if (!t) {
		if (cr == 0)
			diag_expr_capture_free(&cap);
		return diag_error_set(err, -DIAG_E_GONE, "process %d exited", (int)ep->tp->pid);
	}
	int r;
	if (cr < 0 && exit_jump) {
		r = 1;
	} else if (cr < 0) {
		for (size_t i = 0; i < bp->nusers; i++) /* they take the int3 because of s */
			snprintf(((struct site *)bp->users[i])->why, sizeof(s->why),
				 "int3: another probe here needs it (%.80s)", s->why + 6);
		r = demote(e, ep, bp, err);
	} else {
		struct diag_error rerr = {0};
		r = guard_for(e, ep, t, &rerr);
		if (r == 0)
			r = rebuild(e, ep, bp, &cap, all_counting(bp, s, NULL), &rerr);
		/* the hits before it are not this probe's: neither counted nor delivered */
		if (r == 0) {
			s->fast_base = eng_fast_count(ep, bp);
			s->counted = 0;
			s->bp = bp;
			r = diag_bp_add_user(bp, s) < 0 ? diag_error_set(err, -ENOMEM, "out of memory")
							 : 0;
		} else {
			why(s, "%s", rerr.msg);
			r = exit_jump ? 1 : demote(e, ep, bp, err);
		}
		diag_expr_capture_free(&cap);
	}
	eng_fast_learn_all(ep);
	eng_thaw(e, ep);
	return r;
}

/* ---- return and end probes: entry and exit trampolines ---- */

/* The capture of an exit of a return probe: its value, and its condition as a value too (the
 * condition runs in the daemon: every exit must record, a frame waits for it). */
static int compile_exit(const struct site *s, struct diag_expr_capture *cap,
			struct diag_error *err)
{
	const struct diag_expr *vals[2] = {s->value, s->condition}, *conds[2] = {NULL, NULL};
	memset(cap, 0, sizeof(*cap));
	return diag_expr_capture_compile(vals, conds, 2, cap, err);
}

/* Take a site placed on a capture jump off it again (ep frozen). */
static void unplace(struct diag_engine *e, struct eproc *ep, struct site *s)
{
	if (!s->bp)
		return;
	if (s->bp->nusers == 1)
		eng_fast_forget(ep, s->bp);
	else
		eng_fast_leave(e, ep, s->bp, s);
	diag_bp_del_user(&ep->bps, ep->tp, s->bp, s);
	s->bp = NULL;
}

static struct site *exit_site(struct probe *pr, const struct site *entry,
			      const struct diag_exit_plan *p, enum site_kind kind)
{
	if (DIAG_GROW(&pr->rsites, &pr->caprsites, pr->nrsites + 1) < 0)
		return NULL;
	struct site *x = calloc(1, sizeof(*x));
	if (!x)
		return NULL;
	*x = (struct site){.pr = pr, .kind = kind, .value = entry->value,
			   .condition = entry->condition};
	snprintf(x->what, sizeof(x->what), "exit at 0x%llx", (unsigned long long)p->term);
	pr->rsites[pr->nrsites++] = x;
	return x;
}

/* One exit jump for site x at plan p, new or joined (ep frozen, t one of its threads). */
static int place_exit(struct diag_engine *e, struct eproc *ep, struct diag_thread *t,
		      struct site *x, const struct diag_exit_plan *p, struct diag_error *err)
{
	struct diag_bp *bp = diag_bp_at(&ep->bps, p->start);
	const struct eng_slot *sl = bp ? diag_u64map_get(&ep->slots, bp->slot_page) : NULL;
	if (bp) /* another probe's exit jump there (or a fork child's copy): share it */
		return sl && sl->term == p->term ? join(e, ep, bp, x, err)
						 : why(x, "another patch at 0x%llx",
						       (unsigned long long)p->start);
	if (!t)
		return why(x, "the exit at 0x%llx has no jump in the copy of the parent",
			   (unsigned long long)p->term);
	struct diag_expr_capture cap;
	struct diag_error cerr = {0};
	if ((x->kind == SITE_END ? compile_for(NULL, x, NULL, &cap, &cerr)
				 : compile_exit(x, &cap, &cerr)) < 0)
		return why(x, "%s", cerr.msg);
	size_t window = (size_t)(p->term + p->term_len - p->start);
	int r = place_capture(e, ep, t, x, p->start, p->term, window, window, &cap);
	diag_expr_capture_free(&cap);
	return r;
}

/* A return probe's instance: an entry jump and a jump at every exit, or none (1, s->why):
 * an exit left unwatched would lose its returns without a word. */
static int place_return(struct diag_engine *e, struct eproc *ep, struct site *s,
			const struct diag_location *loc, struct diag_bp *entry, size_t span,
			struct diag_error *err)
{
	char buf[160];
	struct diag_exit_plan *plans = NULL;
	size_t n = 0;
	if (eng_exit_plans_of(ep, loc->func_start, loc->func_end, &plans, &n, buf, sizeof(buf)))
		return why(s, "%s", buf);
	bool tail = false;
	for (size_t i = 0; i < n; i++) {
		/* the callee of a tail call returns in this function's stead: at the jmp the
		 * call is not over (elapsed would stop short, result would be unset). Its return
		 * is watched where it lands: a return site at each return address the entry
		 * records name (retsite.c) */
		if (plans[i].tail_call) {
			tail = true;
			continue;
		}
		if (!eng_exit_plan_free(&ep->bps, &plans[i], loc->addr + span, buf, sizeof(buf))) {
			free(plans);
			return why(s, "%s", buf);
		}
	}
	struct diag_expr_capture xcap;
	struct diag_error xerr = {0};
	if (tail && compile_exit(s, &xcap, &xerr) < 0) { /* what every return site will run */
		free(plans);
		return why(s, "return site: %s", xerr.msg);
	}
	if (tail)
		diag_expr_capture_free(&xcap);
	s->want_ra = tail;
	/* a fork child adopts the copies of its parent's trampolines: no freeze before its
	 * first stop, every jump already there */
	const struct eng_slot *esl = entry ? diag_u64map_get(&ep->slots, entry->slot_page) : NULL;
	bool adopting = esl && esl->adopt;
	struct diag_thread *t = adopting ? NULL : eng_freeze(e, ep);
	if (!t && !adopting) {
		free(plans);
		return diag_error_set(err, -DIAG_E_GONE, "process %d exited", (int)ep->tp->pid);
	}
	size_t first = s->pr->nrsites;
	int r = 0;
	for (size_t i = 0; r == 0 && i < n; i++) {
		if (plans[i].tail_call)
			continue;
		struct site *x = exit_site(s->pr, s, &plans[i], SITE_RET_EXIT);
		r = x ? place_exit(e, ep, t, x, &plans[i], err)
		      : diag_error_set(err, -ENOMEM, "out of memory");
		if (r > 0)
			why(s, "exit at 0x%llx: %s", (unsigned long long)plans[i].term, x->why + 6);
	}
	if (r == 0 && entry) {
		r = join(e, ep, entry, s, err);
	} else if (r == 0) {
		struct diag_expr_capture ecap;
		struct diag_error cerr = {0};
		r = compile_for(NULL, s, NULL, &ecap, &cerr) < 0
			    ? why(s, "%s", cerr.msg)
			    : place_capture(e, ep, t, s, loc->addr, 0, loc->func_end - loc->addr,
					    span, &ecap);
		diag_expr_capture_free(&ecap);
	}
	if (r != 0) { /* all or nothing */
		s->want_ra = false;
		for (size_t i = first; i < s->pr->nrsites; i++) {
			unplace(e, ep, s->pr->rsites[i]);
			free(s->pr->rsites[i]);
		}
		s->pr->nrsites = first;
		eng_fast_reap(e, ep);
	}
	free(plans);
	if (!adopting) {
		eng_fast_learn_all(ep);
		eng_thaw(e, ep);
	}
	eng_fast_timer(e);
	return r;
}

/* An end probe's instance at one exit (loc->addr, the terminator): an exit jump, or an int3
 * there alone (end events need no pairing). */
static int place_end(struct diag_engine *e, struct eproc *ep, struct site *s,
		     const struct diag_location *loc, struct diag_error *err)
{
	char buf[160];
	struct diag_exit_plan *plans = NULL;
	size_t n = 0;
	if (eng_exit_plans_of(ep, loc->func_start, loc->func_end, &plans, &n, buf, sizeof(buf)))
		return why(s, "%s", buf);
	const struct diag_exit_plan *p = NULL;
	for (size_t i = 0; i < n; i++)
		if (plans[i].term == loc->addr)
			p = &plans[i];
	int r = 1;
	if (!p)
		why(s, "0x%llx is not an exit of the function", (unsigned long long)loc->addr);
	else if (diag_bp_at(&ep->bps, p->start) && diag_bp_at(&ep->bps, p->start)->jump)
		r = 0; /* join the exit jump there (place_exit) */
	else if (!eng_exit_plan_free(&ep->bps, p, 0, buf, sizeof(buf)))
		why(s, "%s", buf);
	else
		r = 0;
	struct diag_bp *there = p ? diag_bp_at(&ep->bps, p->start) : NULL;
	const struct eng_slot *sl = there ? diag_u64map_get(&ep->slots, there->slot_page) : NULL;
	if (r == 0 && sl && sl->adopt) { /* a fork child: its copy of the parent's jump */
		r = place_exit(e, ep, NULL, s, p, err);
	} else if (r == 0) {
		struct diag_thread *t = eng_freeze(e, ep);
		if (!t)
			r = diag_error_set(err, -DIAG_E_GONE, "process %d exited", (int)ep->tp->pid);
		else {
			r = place_exit(e, ep, t, s, p, err);
			eng_fast_learn_all(ep);
			eng_thaw(e, ep);
			eng_fast_timer(e);
		}
	}
	free(plans);
	return r;
}

/* A return site's jump at ra (ep frozen, t one of its threads): the bytes there movable, no
 * other patch among them, no branch of the caller's function into them. */
static int place_retsite_jump(struct diag_engine *e, struct eproc *ep, struct diag_thread *t,
			      struct site *x, const struct diag_location *caller)
{
	uint64_t ra = caller->addr, term = 0;
	size_t room = caller->func_end - ra;
	struct diag_error quiet = {0};
	int span = diag_bp_jump_span(ep->tp, ra, room, &quiet);
	if (span <= 0 && room >= DIAG_TRAMP_PATCH_LEN) {
		/* a loop's `jmp` right after the call: an exit trampoline with it as its
		 * terminator (the arch refuses anything but a ret or jmp of the jump's length) */
		term = ra;
		span = DIAG_TRAMP_PATCH_LEN;
	}
	if (span <= 0 || (size_t)span > room)
		return why(x, "%s", quiet.msg[0] ? quiet.msg : "the instructions there cannot be moved");
	if (!range_free(&ep->bps, ra, (size_t)span))
		return why(x, "another patch lies in the %d bytes a jump would replace", span);
	if (branches_into(ep, caller, (size_t)span))
		return why(x, "a branch of %s lands inside the patched bytes",
			   caller->symbol[0] ? caller->symbol : "the caller");
	struct diag_expr_capture cap;
	struct diag_error cerr = {0};
	if (compile_exit(x, &cap, &cerr) < 0)
		return why(x, "%s", cerr.msg);
	int r = place_capture(e, ep, t, x, ra, term, term ? (size_t)span : room, (size_t)span, &cap);
	diag_expr_capture_free(&cap);
	if (r && term && quiet.msg[0]) /* the first reason says more */
		why(x, "%s", quiet.msg);
	return r;
}

int eng_fast_place_retsite(struct diag_engine *e, struct eproc *ep, struct site *entry,
			   uint64_t ra, uint64_t func_start, uint64_t func_end, char *whybuf,
			   size_t cap)
{
	struct probe *pr = entry->pr;
	struct diag_exit_plan where = {.term = ra};
	struct site *x = exit_site(pr, entry, &where, SITE_RET_EXIT);
	if (!x)
		return -ENOMEM;
	x->at = ra;
	snprintf(x->what, sizeof(x->what), "return site at 0x%llx", (unsigned long long)ra);
	struct diag_location caller = {.addr = ra, .func_start = func_start, .func_end = func_end};
	struct diag_bp *bp = diag_bp_at(&ep->bps, ra);
	const struct eng_slot *sl = bp ? diag_u64map_get(&ep->slots, bp->slot_page) : NULL;
	int r;
	if (e->no_fast) {
		r = why(x, "DIAG_NO_FASTPATH");
	} else if (bp && sl && sl->retsite) { /* another probe's return site (or a fork copy) */
		struct diag_error err = {0};
		r = join(e, ep, bp, x, &err);
		if (r < 0)
			why(x, "%s", err.msg);
	} else if (bp) {
		r = why(x, "another probe's patch is at this address");
	} else if (!func_end) {
		r = why(x, "no symbol covers the return address (the caller's bounds are unknown)");
	} else if (func_end <= ra || func_end - ra < DIAG_TRAMP_PATCH_LEN) {
		r = why(x, "fewer than %d bytes of the caller follow it", DIAG_TRAMP_PATCH_LEN);
	} else {
		struct diag_thread *t = eng_freeze(e, ep);
		/* the entry records made before the jump are read while it is not there: a
		 * frame they open is unwatched (its return may pass first), not watched */
		if (t)
			eng_fast_drain(e, ep);
		r = t ? place_retsite_jump(e, ep, t, x, &caller) : -DIAG_E_GONE;
		if (t) {
			eng_fast_learn_all(ep);
			eng_thaw(e, ep);
		}
	}
	pr->nretsites++;
	if (r == 0) {
		eng_fast_timer(e);
		return 0;
	}
	/* kept without a breakpoint: the address is not tried again */
	snprintf(whybuf, cap, "%s", x->why[0] ? x->why + 6 : diag_strerror(r));
	return r < 0 ? r : 1;
}

int eng_fast_place(struct diag_engine *e, struct eproc *ep, struct site *s,
		   const struct diag_location *loc, struct diag_error *err)
{
	s->why[0] = '\0';
	struct diag_bp *bp = diag_bp_at(&ep->bps, loc->addr);
	if (bp && !bp->jump) { /* share the int3 already there, and its reason */
		const struct site *u = bp->nusers ? bp->users[0] : NULL;
		return u && u->why[0] ? why(s, "%s", u->why + 6)
				      : why(s, "another probe's int3 is at this address");
	}
	if (s->kind == SITE_END)
		return ineligible(e, ep, s, loc) ? 1 : place_end(e, ep, s, loc, err);
	if (bp && bp->slot_page && s->kind == SITE_RET_ENTRY)
		return ineligible(e, ep, s, loc) ? 1
						 : place_return(e, ep, s, loc, bp, bp->patched_len, err);
	if (bp && bp->slot_page)
		return join(e, ep, bp, s, err);
	if (bp)
		return why(s, "an old trampoline is at this address");
	if (ineligible(e, ep, s, loc))
		return 1;
	struct diag_expr_capture cap;
	struct diag_error cerr = {0};
	if (compile_for(NULL, s, NULL, &cap, &cerr) < 0)
		return why(s, "%s", cerr.msg);
	size_t room = loc->func_end - loc->addr;
	struct diag_error quiet = {0};
	int span = diag_bp_jump_span(ep->tp, loc->addr, room, &quiet);
	int r = 1;
	if (span <= 0 || (size_t)span > room)
		why(s, "%s", quiet.msg[0] ? quiet.msg : "the instructions there cannot be moved");
	else if (!range_free(&ep->bps, loc->addr, (size_t)span))
		why(s, "another patch lies in the %d bytes a jump would replace", span);
	else if (branches_into(ep, loc, (size_t)span))
		why(s, "a branch of %s lands inside the patched bytes (0x%llx..0x%llx)",
		    loc->symbol[0] ? loc->symbol : "the function", (unsigned long long)loc->addr + 1,
		    (unsigned long long)loc->addr + (unsigned long long)span - 1);
	else
		r = 0;
	if (r) {
		diag_expr_capture_free(&cap);
		return 1;
	}
	if (s->kind == SITE_RET_ENTRY) {
		diag_expr_capture_free(&cap);
		return place_return(e, ep, s, loc, NULL, (size_t)span, err);
	}
	struct diag_thread *t = eng_freeze(e, ep);
	if (!t) {
		diag_expr_capture_free(&cap);
		return diag_error_set(err, -DIAG_E_GONE, "process %d exited", (int)ep->tp->pid);
	}
	r = place_new(e, ep, t, s, loc, &cap, (size_t)span);
	diag_expr_capture_free(&cap);
	eng_fast_learn_all(ep);
	eng_thaw(e, ep);
	eng_fast_timer(e);
	return r;
}

void eng_fast_leave(struct diag_engine *e, struct eproc *mem, struct diag_bp *bp,
		    struct site *s)
{
	struct diag_expr_capture cap;
	struct diag_error err = {0};
	if (!bp->slot_page || bp->nusers < 2 || compile_for(bp, NULL, s, &cap, &err) < 0)
		return; /* the old trampoline captures a little more than needed: still right */
	eng_fast_drain(e, mem);
	rebuild(e, mem, bp, &cap, all_counting(bp, NULL, s), &err);
	diag_expr_capture_free(&cap);
}

/* ---- slots: threads inside, retiring, faults ---- */

uint64_t eng_fast_unslot(const struct eproc *mem, uint64_t pc)
{
	const struct eng_slot *sl =
		diag_u64map_get(&mem->slots, pc & ~(uint64_t)(DIAG_TRAMP_SLOT - 1));
	if (!sl)
		return 0;
	uint64_t orig = 0;
	switch (diag_tramp_locate(&sl->layout, pc, &orig)) {
	case DIAG_TRAMP_RELOCATED:
		return orig;
	case DIAG_TRAMP_OUTSIDE: /* the header or past the code: not where a thread can be */
	case DIAG_TRAMP_RECORDING:
	case DIAG_TRAMP_MID_INSN:
	default:
		return 1;
	}
}

/* Move t out of the slot page sl (its jump is out, so a relocated copy continues at its
 * original); true when it is out. */
static bool move_out(struct eproc *mem, struct diag_thread *t, const struct eng_slot *sl)
{
	for (int steps = 0; steps < STEP_OUT; steps++) {
		diag_regs r;
		/* a step ran a program's faulting load (the fault is held in pending_sig): on to
		 * the landing, as at its signal stop, or it would step the load for ever */
		if ((t->pending_sig == SIGSEGV || t->pending_sig == SIGBUS) &&
		    eng_fast_fault(NULL, t, t->pending_sig))
			t->pending_sig = 0;
		if (diag_regs_read(t->tid, &r) < 0)
			return true; /* gone */
		uint64_t pc = diag_regs_pc(&r);
		if (pc < sl->page || pc >= sl->page + DIAG_TRAMP_SLOT) {
			unstep(t, &r, steps);
			return true;
		}
		uint64_t to = eng_fast_unslot(mem, pc);
		if (to > 1) {
			diag_regs_set_pc(&r, to);
			if (steps && diag_regs_stepping(&r))
				diag_regs_clear_step(&r);
			return diag_regs_write(t->tid, &r) == 0;
		}
		if (diag_thread_step(t) < 0)
			return false;
	}
	return false;
}

void eng_fast_reap(struct diag_engine *e, struct eproc *mem)
{
	(void)e;
	struct diag_thread *any = any_stopped(mem);
	uint64_t gone[64];
	size_t n = 0, pos = 0;
	uint64_t k;
	void *v;
	while (n < 64 && diag_u64map_next(&mem->slots, &pos, &k, &v)) {
		struct eng_slot *sl = v;
		if (!sl->retired)
			continue;
		bool inside = false;
		size_t tpos = 0;
		uint64_t tk;
		void *tv;
		while (diag_u64map_next(&mem->tp->threads, &tpos, &tk, &tv)) {
			struct diag_thread *t = tv;
			if (!t->stopped) /* running: it might be anywhere */
				inside = true;
			else if (!move_out(mem, t, sl))
				inside = true;
		}
		if (!inside && any)
			gone[n++] = k;
	}
	for (size_t i = 0; i < n; i++) {
		free(diag_u64map_del(&mem->slots, gone[i]));
		page_unmap(mem, any, gone[i]);
	}
}

bool eng_fast_fault(struct diag_engine *e, struct diag_thread *t, int sig)
{
	(void)e;
	if (sig != SIGSEGV && sig != SIGBUS)
		return false;
	struct eproc *mem = eproc_mem(eproc_of(t->proc));
	diag_regs r;
	siginfo_t si;
	if (!mem->slots.count || diag_regs_read(t->tid, &r) < 0)
		return false;
	uint64_t page = diag_regs_pc(&r) & ~(uint64_t)(DIAG_TRAMP_SLOT - 1);
	const struct eng_slot *sl = diag_u64map_get(&mem->slots, page);
	if (!sl || diag_thread_siginfo(t->tid, &si) < 0 || si.si_signo != sig ||
	    si.si_code <= 0) /* a kill(2) of SIGSEGV is the target's own */
		return false;
	/* the header as the daemon built it: the target's copy could say anything */
	if (!diag_tramp_fault_repair(&r, page, &sl->hdr, (uint64_t)(uintptr_t)si.si_addr))
		return false;
	return diag_regs_write(t->tid, &r) == 0;
}

/* ---- fork ---- */

void eng_fast_fork(struct diag_engine *e, struct eproc *child, struct eproc *parent,
		   struct diag_thread *t)
{
	if (!parent->ring_addr || child->tp->mem_owner)
		return;
	eng_ring_fork(e, child, parent, t);
	size_t pos = 0;
	uint64_t k;
	void *v;
	while (diag_u64map_next(&child->bps.by_addr, &pos, &k, &v)) {
		struct diag_bp *bp = v;
		if (bp->jump)
			diag_u64map_put(&child->jumps, bp->site_id, bp);
	}
	pos = 0;
	while (diag_u64map_next(&parent->slots, &pos, &k, &v)) {
		struct eng_slot *sl = malloc(sizeof(*sl));
		if (sl) {
			*sl = *(const struct eng_slot *)v;
			sl->adopt = 0;
			size_t bpos = 0;
			uint64_t bk;
			void *bv;
			while (diag_u64map_next(&parent->bps.by_addr, &bpos, &bk, &bv))
				if (((struct diag_bp *)bv)->slot_page == k)
					sl->adopt = ((struct diag_bp *)bv)->nusers;
			if (diag_u64map_put(&child->slots, k, sl) < 0)
				free(sl);
		}
	}
}
