/* hit: what every hit runs once its registers are known, whether an int3 stopped the thread
 * (trap.c) or a trampoline recorded them into the ring (fastpath.c): the conditions and values
 * of the sites at the breakpoint (capture, while the thread is still stopped or from the
 * record), then the events rendered and delivered to the owner (fire, after the thread runs
 * again), or delivered with the value unrendered for the owner to render on another thread
 * (diag_engine_defer_render). Owns the scratch results and the packed deferred value. Never
 * stops, resumes or patches anything. */
#include "engine/engine_internal.h"
#include "util/grow.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* diag_expr_ctx.comm_of for a struct diag_thread (NULL: a thread already gone has none):
 * the name is looked up only for expressions that read $comm (diag_thread_comm caches it per
 * thread; exec clears the cache) */
const char *eng_comm_of(void *thread)
{
	return thread ? diag_thread_comm(thread) : "";
}

static int ensure_scratch(struct diag_engine *e, size_t n)
{
	return DIAG_GROW(&e->scratch, &e->nscratch, n);
}

/* A site that joined a jump sees no record reserved before: the ring is drained, every
 * thread stopped, before the trampoline is rebuilt for it (fastpath.c). */
size_t eng_capture(struct diag_engine *e, struct diag_thread *t, struct diag_bp *bp,
		   const struct diag_expr_ctx *ctx, bool cond_done, struct site **fired)
{
	if (ensure_scratch(e, bp->nusers + 1) < 0)
		return 0;
	size_t n = 0;
	for (size_t i = 0; i < bp->nusers; i++) {
		struct site *s = bp->users[i], *x = s;
		struct diag_expr_ctx c = *ctx;
		if (s->kind == SITE_RET_EXIT)
			continue; /* served by exit records alone (exitjump.c) */
		if (s->kind == SITE_DL) {
			if (t)
				eproc_mem(eproc_of(t->proc))->dl_dirty = true;
			continue;
		}
		if (s->kind == SITE_RET_ENTRY) {
			if (t)
				eng_ret_enter(e, t, s, ctx->regs, ctx->time_ns);
			continue;
		}
		if (s->kind == SITE_RET) {
			uint64_t t0 = 0;
			if (!t || !(x = eng_ret_match(t, s, diag_regs_sp(ctx->regs), &t0)))
				continue; /* not a frame of this probe returning */
			c.elapsed_ns = ctx->time_ns - t0;
		}
		if (t) /* jump sites count in the target instead */
			s->pr->trapped++;
		if (eng_capture_site(e, s, x, &c, cond_done, n))
			fired[n++] = x; /* the site holding the expressions (the entry, for returns) */
	}
	return n;
}

bool eng_capture_site(struct diag_engine *e, struct site *s, struct site *x,
		      const struct diag_expr_ctx *c, bool cond_done, size_t slot)
{
	if (ensure_scratch(e, slot + 1) < 0)
		return false;
	if (x->condition && !cond_done) {
		diag_expr_eval(x->condition, c, &e->scratch[slot]);
		if (!diag_expr_truthy(&e->scratch[slot])) {
			s->pr->filtered++;
			return false;
		}
	}
	if (x->value)
		diag_expr_eval(x->value, c, &e->scratch[slot]);
	s->pr->hits++;
	return true;
}

/* A deferred value (diag_engine_defer_render): the result's used part and the expression
 * that renders it, self-contained but for the reference it holds on the expression. */
struct raw_value {
	const struct diag_expr *x;
	enum diag_value_kind kind;
	uint64_t u;
	size_t len;
	uint8_t data[];
};

static size_t pack(struct diag_engine *e, const struct diag_expr *x,
		   const struct diag_expr_result *r)
{
	size_t len = r->len < DIAG_EXPR_MAX_BYTES ? r->len : DIAG_EXPR_MAX_BYTES;
	if (!e->raw_buf && !(e->raw_buf = malloc(sizeof(struct raw_value) + DIAG_EXPR_MAX_BYTES)))
		return 0;
	struct raw_value *v = e->raw_buf;
	*v = (struct raw_value){ .x = x, .kind = r->kind, .u = r->u, .len = len };
	memcpy(v->data, r->data, len);
	return sizeof(*v) + len;
}

void diag_engine_defer_render(struct diag_engine *e, bool on)
{
	e->defer_render = on;
}

void diag_engine_value_hold(const void *raw, size_t n)
{
	diag_expr_ref_n(((const struct raw_value *)raw)->x, n);
}

void diag_engine_value_release(const void *raw, size_t n)
{
	diag_expr_free_n((struct diag_expr *)((const struct raw_value *)raw)->x, n);
}

bool diag_engine_value_same(const void *a, const void *b)
{
	return ((const struct raw_value *)a)->x == ((const struct raw_value *)b)->x;
}

void diag_engine_value_render(const void *raw, char *text, size_t cap, struct diag_value *out)
{
	const struct raw_value *v = raw;
	struct diag_expr_result r; /* data beyond len is never read: render stays within len */
	r.kind = v->kind;
	r.u = v->u;
	r.len = v->len;
	memcpy(r.data, v->data, v->len);
	diag_expr_render(v->x, &r, text, cap, out);
}

void eng_fire(struct diag_engine *e, struct diag_thread *t, pid_t pid, pid_t tid,
		struct site **fired, size_t n, uint64_t ts)
{
	(void)t;
	char text[DIAG_EXPR_MAX_BYTES + 64];
	e->hits += n;
	for (size_t i = 0; i < n; i++) {
		struct diag_engine_hit hit = {
			.cookie = fired[i]->pr->cookie, .pid = pid, .tid = tid,
			.time_ns = ts, .kind = fired[i]->pr->event,
			.value = {.kind = DIAG_VALUE_NONE, .text = ""}, .count = 1,
		};
		if (fired[i]->value && e->defer_render &&
		    (hit.raw_len = pack(e, fired[i]->value, &e->scratch[i]))) {
			hit.raw = e->raw_buf;
			hit.value = (struct diag_value){ .kind = e->scratch[i].kind };
		} else if (fired[i]->value) {
			diag_expr_render(fired[i]->value, &e->scratch[i], text, sizeof(text),
					 &hit.value);
		}
		if (e->cb.on_hit)
			e->cb.on_hit(e->cb.ctx, &hit);
	}
}

void eng_fire_counted(struct diag_engine *e, pid_t pid, struct site *s, uint64_t n, uint64_t ts)
{
	e->hits += n;
	s->pr->hits += n;
	struct diag_engine_hit hit = {
		.cookie = s->pr->cookie, .pid = pid, .time_ns = ts, .kind = s->pr->event,
		.value = {.kind = DIAG_VALUE_NONE, .text = ""}, .count = n,
	};
	if (e->cb.on_hit)
		e->cb.on_hit(e->cb.ctx, &hit);
}
