/* exitjump: return and end events served from ring records, without a stop: the records of
 * exit trampolines (DIAG_REC_EXIT, at a ret or a tail call) and the entry records of return
 * probes placed as jumps, paired by thread pointer and stack pointer. On x86-64 and every ABI
 * the engine supports, sp at the function's ret (or tail-call jmp) equals sp at its entry, so
 * an exit record at sp S closes the innermost open frame entered at S. Frames deeper than a
 * record the thread makes (left by longjmp, an exception, an unwinding thread) are gone:
 * purged without an event. Nothing is ever written to the target's stack. A function that
 * leaves by a tail call returns where its callee does: its entry records carry the return
 * address, and a return site (retsite.c: a jump at that address) records the return there
 * as an exit at sp - 8; an address with no return site yet is queued for one (eproc.rs_want)
 * and its frame opened unwatched (a purge counts it lost). Called by fastpath.c's drain for
 * every such record. Never stops a thread or patches anything. */
#include "engine/engine_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arch/record.h"
#include "arch/ring.h"
#include "capture/capture.h"

/* Open frames of one thread, outermost first (sp decreasing). */
struct xstack {
	size_t n, cap;
	struct eng_xframe v[];
};

static struct xstack *xstack_of(struct diag_u64map *m, uint64_t thread, bool grow)
{
	struct xstack *s = diag_u64map_get(m, thread);
	if (!grow || (s && s->n < s->cap))
		return s;
	size_t cap = s ? s->cap * 2 : 8;
	if (cap > ENG_XFRAMES_MAX)
		return NULL;
	struct xstack *n = realloc(s, sizeof(*n) + cap * sizeof(n->v[0]));
	if (!n)
		return NULL;
	if (!s)
		n->n = 0;
	n->cap = cap;
	if (diag_u64map_put(m, thread, n) < 0) {
		if (!s)
			free(n);
		else
			diag_u64map_put(m, thread, n); /* same key: replaces in place, cannot fail */
		return NULL;
	}
	return n;
}

/* The thread runs at sp: every frame entered at or below it (a deeper or equal sp) that is
 * still open was left without its exit. keep_at: a frame entered exactly at sp stays (an
 * exit at sp may close it). */
static void purge_deeper(struct xstack *s, uint64_t sp, bool keep_at)
{
	while (s->n && (s->v[s->n - 1].sp < sp || (!keep_at && s->v[s->n - 1].sp == sp))) {
		const struct eng_xframe *f = &s->v[--s->n];
		if (f->unwatched) /* its return may have passed before its return site was there */
			f->entry->pr->lost_returns++;
	}
}

int eng_xf_enter(struct diag_u64map *m, uint64_t thread, uint64_t sp, uint64_t tsc,
		 struct site *const *entries, const bool *unwatched, size_t n)
{
	struct xstack *s = xstack_of(m, thread, false);
	if (s)
		purge_deeper(s, sp, false);
	for (size_t i = 0; i < n; i++) {
		if (!(s = xstack_of(m, thread, true)))
			return diag_u64map_get(m, thread) ? -ENOSPC : -ENOMEM;
		s->v[s->n++] = (struct eng_xframe){.sp = sp, .tsc = tsc, .entry = entries[i],
						   .unwatched = unwatched && unwatched[i]};
	}
	return 0;
}

static bool served_by(const struct diag_bp *bp, const struct probe *pr)
{
	for (size_t i = 0; i < bp->nusers; i++) {
		const struct site *u = bp->users[i];
		if (u->pr == pr && u->kind == SITE_RET_EXIT)
			return true;
	}
	return false;
}

size_t eng_xf_exit(struct diag_u64map *m, uint64_t thread, uint64_t sp, const struct diag_bp *only,
		   struct eng_xframe *out, size_t cap)
{
	struct xstack *s = xstack_of(m, thread, false);
	size_t n = 0;
	if (!s)
		return 0;
	purge_deeper(s, sp, true);
	/* the frames at sp are one entry record's (an entry purges those before it at sp): with
	 * `only`, those of its probes close here; the others stay for their own exit or return
	 * site (a tail call from one function into another at the same sp: each returns at its
	 * own), or a later purge (counting it lost when unwatched) */
	size_t lo = s->n;
	while (lo && s->v[lo - 1].sp == sp)
		lo--;
	for (size_t i = s->n; i-- > lo;) /* innermost first */
		if ((!only || served_by(only, s->v[i].entry->pr)) && n < cap)
			out[n++] = s->v[i];
	size_t w = lo;
	for (size_t i = lo; i < s->n; i++)
		if (only && !served_by(only, s->v[i].entry->pr))
			s->v[w++] = s->v[i];
	s->n = w;
	return n;
}

void eng_xf_drop_thread(struct diag_u64map *m, uint64_t thread)
{
	free(diag_u64map_del(m, thread));
}

void eng_xf_forget(struct diag_u64map *m, const struct probe *pr)
{
	size_t pos = 0;
	uint64_t k;
	void *v;
	while (diag_u64map_next(m, &pos, &k, &v)) {
		struct xstack *s = v;
		size_t w = 0;
		for (size_t i = 0; i < s->n; i++)
			if (s->v[i].entry->pr != pr)
				s->v[w++] = s->v[i];
		s->n = w;
	}
}

size_t eng_xf_open(const struct diag_u64map *m, const struct probe *pr)
{
	size_t pos = 0, n = 0;
	uint64_t k;
	void *v;
	while (diag_u64map_next(m, &pos, &k, &v)) {
		const struct xstack *s = v;
		for (size_t i = 0; i < s->n; i++)
			n += !pr || s->v[i].entry->pr == pr;
	}
	return n;
}

void eng_xf_release(struct diag_u64map *m)
{
	size_t pos = 0;
	uint64_t k;
	void *v;
	while (diag_u64map_next(m, &pos, &k, &v))
		free(v);
	diag_u64map_release(m);
	diag_u64map_init(m);
}

/* ---- records ---- */

/* Whether ra has a return site of s's probe; else it is queued for one (once). */
static bool ra_watched(struct eproc *mem, const struct site *s, uint64_t ra)
{
	const struct diag_bp *bp = diag_bp_at(&mem->bps, ra);
	for (size_t i = 0; bp && i < bp->nusers; i++) {
		const struct site *u = bp->users[i];
		if (u->pr == s->pr && u->kind == SITE_RET_EXIT && u->at == ra)
			return true;
	}
	for (size_t i = 0; i < mem->rs_nwant; i++)
		if (mem->rs_want[i].ra == ra && mem->rs_want[i].entry == s)
			return false;
	if (mem->rs_nwant < ENG_RS_WANT_MAX) /* full: asked again by a later entry */
		mem->rs_want[mem->rs_nwant++] = (struct eng_rs_want){.ra = ra, .entry = (struct site *)s};
	return false;
}

/* The return probe's frames a record opens: every entry site at its address (a call probe
 * there is served by hit.c). */
static void entry_record(struct eproc *mem, struct diag_bp *bp, const struct diag_ring_rec *rec,
			 const struct diag_cap_snapshot *snap, uint64_t sp)
{
	struct site *small[8], **v = small;
	bool usmall[8], *unw = usmall;
	size_t n = 0;
	if (bp->nusers > 8 && (!(v = malloc(bp->nusers * sizeof(*v))) ||
			       !(unw = malloc(bp->nusers * sizeof(*unw))))) {
		free(v);
		v = NULL;
	}
	uint64_t ra = 0;
	bool have_ra = false;
	for (size_t i = 0; i < bp->nusers; i++) {
		struct site *s = bp->users[i];
		if (s->kind != SITE_RET_ENTRY)
			continue;
		if (!v) {
			s->pr->lost_returns++;
			continue;
		}
		if (s->want_ra && !have_ra) {
			struct diag_cap_snapshot sn = *snap;
			have_ra = diag_cap_snapshot_read(&sn, sp, &ra, sizeof(ra)) == sizeof(ra);
		}
		unw[n] = s->want_ra && (!have_ra || !ra_watched(mem, s, ra));
		v[n++] = s;
	}
	if (n && eng_xf_enter(&mem->xframes, rec->thread, sp, rec->tsc, v, unw, n) < 0)
		for (size_t i = 0; i < n; i++)
			v[i]->pr->lost_returns++;
	if (v != small)
		free(v);
	if (unw != usmall)
		free(unw);
}

/* Nanoseconds of a TSC interval: the rate from the engine's first calibration point to now
 * (fastpath.c's second point may not exist yet when the first returns come back). */
static uint64_t ticks_ns(const struct diag_engine *e, uint64_t ticks)
{
	uint64_t ns = (uint64_t)diag_clock_wall_ns(), tsc = diag_record_ticks();
	if (!e->ns0 || ns <= e->ns0 || tsc <= e->tsc0)
		return 0;
	return (uint64_t)((double)ticks * (double)(ns - e->ns0) / (double)(tsc - e->tsc0));
}

static const struct eng_xframe *frame_of(const struct eng_xframe *f, size_t n,
					 const struct probe *pr)
{
	for (size_t i = 0; i < n; i++)
		if (f[i].entry->pr == pr)
			return &f[i];
	return NULL;
}

void eng_exit_record(struct diag_engine *e, struct eproc *ep, struct diag_bp *bp,
		     const struct diag_ring_rec *rec, const struct diag_cap_snapshot *snap,
		     pid_t tid, uint64_t ts)
{
	struct eproc *mem = eproc_mem(ep);
	diag_regs regs;
	diag_record_v2_regs(rec, &regs);
	uint64_t sp = diag_regs_sp(&regs);
	if (!(rec->flags & DIAG_REC_EXIT)) {
		entry_record(mem, bp, rec, snap, sp);
		return;
	}
	if (rec->flags & DIAG_REC_RETSITE)
		sp -= 8; /* the ret popped the return address: the frame exited at sp - 8 */
	size_t cap = bp->nusers ? bp->nusers : 1;
	struct eng_xframe fsmall[8], *frames = cap <= 8 ? fsmall : malloc(cap * sizeof(*frames));
	struct site *ssmall[8], **fired = cap <= 8 ? ssmall : malloc(cap * sizeof(*fired));
	size_t nf = 0, n = 0;
	if (frames && fired)
		/* only the frames of the probes served here: an end probe's jump at a tail
		 * call is not the return of a return probe's frame (its return site is), and
		 * a return site is not the return of a probe that has none there */
		nf = eng_xf_exit(&mem->xframes, rec->thread, sp, bp, frames, cap);
	struct diag_thread *t = tid > 0 ? diag_u64map_get(&e->threads, (uint64_t)tid) : NULL;
	if (t && eproc_mem(eproc_of(t->proc)) != mem)
		t = NULL;
	pid_t pid = t ? t->proc->pid : ep->tp->pid;
	struct diag_cap_snapshot sn = *snap;
	struct diag_expr_ctx ctx = {.pid = pid, .tid = tid > 0 ? tid : 0, .regs = &regs,
				    .read_mem = diag_cap_snapshot_read,
				    .read_fpregs = diag_cap_snapshot_fpregs, .arg = &sn,
				    .time_ns = ts, .comm_of = eng_comm_of, .comm_arg = t};
	/* an end probe's condition may have run in the target (its reads not captured then): the
	 * record says it was true; a return probe's exit never has one there */
	const struct eng_slot *sl = diag_u64map_get(&mem->slots, bp->slot_page);
	bool end_cond_done = sl && !sl->cond_in_daemon;
	for (size_t i = 0; frames && fired && i < bp->nusers; i++) {
		struct site *s = bp->users[i], *x = s;
		struct diag_expr_ctx c = ctx;
		bool cond_done = false;
		if (s->kind == SITE_END) {
			cond_done = end_cond_done;
		} else if (s->kind == SITE_RET_EXIT) {
			const struct eng_xframe *f = frame_of(frames, nf, s->pr);
			if (!f)
				continue; /* entered before the probe, or its entry was dropped */
			x = f->entry;
			c.elapsed_ns = ticks_ns(e, rec->tsc - f->tsc);
		} else {
			continue;
		}
		if (eng_capture_site(e, s, x, &c, cond_done, n))
			fired[n++] = x;
	}
	if (n)
		eng_fire(e, t, pid, ctx.tid, fired, n, ts);
	if (frames != fsmall)
		free(frames);
	if (fired != ssmall)
		free(fired);
}

size_t eng_exit_trap(struct diag_engine *e, struct diag_thread *t, struct diag_bp *bp,
		     const struct diag_expr_ctx *ctx, uint64_t tsc, struct site **fired, size_t slot)
{
	size_t cap = 0;
	for (size_t i = 0; i < bp->nusers; i++)
		cap += ((const struct site *)bp->users[i])->kind == SITE_RET_EXIT;
	if (!cap)
		return 0;
	struct eproc *mem = eproc_mem(eproc_of(t->proc));
	struct eng_xframe fsmall[8], *frames = cap <= 8 ? fsmall : malloc(cap * sizeof(*frames));
	if (!frames)
		return 0;
	/* the thread pointer the trampolines record is the one its registers hold */
	size_t nf = eng_xf_exit(&mem->xframes, diag_record_thread_pointer(ctx->regs),
				diag_regs_sp(ctx->regs) - 8, bp, frames, cap), n = 0;
	for (size_t i = 0; i < bp->nusers; i++) {
		struct site *s = bp->users[i];
		const struct eng_xframe *f =
			s->kind == SITE_RET_EXIT ? frame_of(frames, nf, s->pr) : NULL;
		if (!f)
			continue;
		struct diag_expr_ctx c = *ctx;
		c.elapsed_ns = ticks_ns(e, tsc - f->tsc);
		s->pr->trapped++;
		if (eng_capture_site(e, s, f->entry, &c, false, slot + n))
			fired[n++] = f->entry;
	}
	if (frames != fsmall)
		free(frames);
	return n;
}
