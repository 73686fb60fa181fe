/* event queue: a byte ring of event records + one worker thread (see queue.h). One producer
 * and one consumer, without a lock between them: push copies a record in and publishes a
 * batch of them by a store of head, the worker fires everything up to the head it saw and
 * gives the bytes back by a release store of tail. The mutex only parks and wakes the worker
 * and serves drain(). push never waits, never allocates, and makes no system call unless the
 * worker sleeps, or once when the ring passes a quarter full until the worker moves on.
 * Nor does it make a locked instruction per event: at 2 M events/s the three it made (the
 * instrument's reference, the value's hold, head's seq_cst store) were a tenth of the
 * producer's time, each one waiting for the record's stores to leave the store buffer. So the
 * producer takes references and holds CREDITS at a time, for the events to come of one
 * instrument and one value, and gives back the rest at flush or when the next event is
 * another's; head is published every DIAG_QUEUE_PUBLISH_EVERY events and at flush. */
#include "instrument/queue.h"
#include "util/clock.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define IDLE_POLLS 100 /* 100 ms of 1 ms polls without events before the worker sleeps */
/* Asleep, the worker still wakes this often to run idle again: what plugins hold back for
 * batching (a partial StatsD datagram) must not wait for the next event. */
#define IDLE_PERIOD_NS 100000000
#define FIRE_RUN 64    /* events of one instrument fired under one lock of it */
#define CREDITS 256    /* references and holds the producer takes at a time */
#define KEY_BYTES 8192 /* the producer's copy of the blob its holds are on; longer: no credit */

/* A record at an 8-aligned offset of the ring: this header, then (deferred) the blob its
 * value is rendered from, then the probe id, name, text and buf its event points to.
 * in == NULL: padding up to the end of the ring. Fewer than sizeof(struct qrec) bytes left at
 * the end are padding without a header. */
struct qrec {
	size_t bytes; /* the whole record, a multiple of 8 */
	struct diag_instrument *in;
	const struct diag_event_render *render; /* NULL: ev.value is as pushed */
	size_t blob;  /* bytes of the blob after the header, a multiple of 8 */
	struct diag_event ev;
};

struct diag_event_queue {
	pthread_mutex_t lock;  /* parks the worker; drain() waits on it */
	pthread_cond_t nonempty, drained;
	char *ring;
	size_t cap;            /* bytes, a multiple of 8 */
	/* bytes ever written (producer) / given back (worker): offsets modulo cap. Each on its
	 * own cache line with what its writer also writes. */
	_Alignas(64) _Atomic uint64_t head;
	_Atomic uint64_t pushed, dropped;
	uint64_t kicked_at;    /* the tail when the producer last woke the worker for fill */
	/* the producer's alone (a line of their own: the worker's reads of head do not take it
	 * away at every push): what it pushed and has not published yet, what it holds ahead */
	_Alignas(64) uint64_t phead, ppushed;
	unsigned unpublished;
	struct diag_instrument *cin; /* cin_n references on it taken ahead */
	size_t cin_n;
	const struct diag_event_render *crender; /* crender_n holds on the blob key is like */
	size_t crender_n;
	void *key;             /* KEY_BYTES */
	_Alignas(64) _Atomic uint64_t tail;
	_Atomic uint64_t fired, batches;
	_Alignas(64) atomic_bool sleeping; /* worker in an untimed wait: the next push wakes it */
	bool stop, started;
	unsigned idle_ticks;  /* consecutive empty 1 ms polls */
	pthread_t worker;
	char *texts;           /* the worker's: FIRE_RUN rendered texts of deferred values */
	void (*idle)(void *ctx);
	void *ctx;
};

int diag_event_queue_new(size_t capacity, void (*idle)(void *ctx), void *ctx,
			 struct diag_event_queue **out)
{
	capacity &= ~(size_t)7;
	if (capacity < sizeof(struct qrec))
		return -EINVAL;
	struct diag_event_queue *q = calloc(1, sizeof(*q));
	if (!q || !(q->ring = malloc(capacity)) || !(q->key = malloc(KEY_BYTES))) {
		if (q)
			free(q->ring);
		free(q);
		return -ENOMEM;
	}
	q->cap = capacity;
	q->kicked_at = UINT64_MAX;
	q->idle = idle;
	q->ctx = ctx;
	pthread_mutex_init(&q->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->nonempty, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&q->drained, NULL);
	*out = q;
	return 0;
}

struct lens {
	const char *id, *name, *text;
	size_t lid, lname, ltext, lbuf;
};

static size_t capped(size_t n)
{
	return n > DIAG_EVENT_TEXT_MAX ? DIAG_EVENT_TEXT_MAX : n;
}

static size_t measure(const struct diag_event *ev, size_t blob, struct lens *l)
{
	l->id = ev->probe_id ? ev->probe_id : "";
	l->name = ev->name ? ev->name : "";
	l->text = ev->value.text ? ev->value.text : "";
	l->lid = strlen(l->id);
	l->lname = strlen(l->name);
	l->ltext = capped(strlen(l->text));
	l->lbuf = ev->value.buf ? capped(ev->value.len) : 0;
	size_t n = sizeof(struct qrec) + blob + l->lid + l->lname + l->ltext + l->lbuf + 3;
	return (n + 7) & ~(size_t)7;
}

size_t diag_event_queue_item_bytes(const struct diag_event *ev)
{
	struct lens l;
	return measure(ev, 0, &l);
}

static void record_fill(struct qrec *r, size_t bytes, struct diag_instrument *in,
			const struct diag_event *ev, const struct lens *l)
{
	char *p = (char *)(r + 1) + r->blob;
	r->bytes = bytes;
	r->in = in;
	r->ev = *ev;
	r->ev.probe_id = memcpy(p, l->id, l->lid + 1);
	p += l->lid + 1;
	r->ev.name = memcpy(p, l->name, l->lname + 1);
	p += l->lname + 1;
	memcpy(p, l->text, l->ltext);
	p[l->ltext] = '\0';
	r->ev.value.text = p;
	p += l->ltext + 1;
	r->ev.value.buf = l->lbuf ? memcpy(p, ev->value.buf, l->lbuf) : NULL;
	r->ev.value.len = l->lbuf;
}

static void wake_worker(struct diag_event_queue *q)
{
	pthread_mutex_lock(&q->lock);
	pthread_cond_signal(&q->nonempty);
	pthread_mutex_unlock(&q->lock);
}

/* One reference on in for the record being pushed, from those taken ahead. */
static void credit_instrument(struct diag_event_queue *q, struct diag_instrument *in)
{
	if (in != q->cin) {
		diag_instrument_unref_n(q->cin, q->cin_n);
		q->cin = in;
		q->cin_n = 0;
	}
	if (!q->cin_n) {
		diag_instrument_ref_n(in, CREDITS);
		q->cin_n = CREDITS;
	}
	q->cin_n--;
}

static void return_holds(struct diag_event_queue *q)
{
	if (q->crender_n)
		q->crender->release(q->key, q->crender_n);
	q->crender = NULL;
	q->crender_n = 0;
}

/* One hold on the blob just copied into the ring (len bytes), from those taken ahead when it
 * is alike the last; a blob too long to keep a copy of is held alone. */
static void credit_hold(struct diag_event_queue *q, const struct diag_event_render *r,
			const void *blob, size_t len)
{
	/* credits are only ever taken for a render with same (below) */
	if (r->same && q->crender == r && q->crender_n && r->same(q->key, blob)) {
		q->crender_n--;
		return;
	}
	return_holds(q);
	if (!r->same || len > KEY_BYTES) {
		r->hold(blob, 1);
		return;
	}
	memcpy(q->key, blob, len);
	r->hold(q->key, CREDITS);
	q->crender = r;
	q->crender_n = CREDITS - 1;
}

/* What was pushed, to the worker: pushed before head, head seq_cst with the worker's store of
 * sleeping (one of the two sees the other). */
static void publish(struct diag_event_queue *q)
{
	q->unpublished = 0;
	uint64_t head = q->phead;
	if (head == atomic_load_explicit(&q->head, memory_order_relaxed))
		return;
	atomic_store_explicit(&q->pushed, q->ppushed, memory_order_relaxed);
	atomic_store(&q->head, head);
	uint64_t tail = atomic_load_explicit(&q->tail, memory_order_acquire);
	/* Waking the worker per event costs a cross-CPU wake-up (~27 us here) on the thread
	 * that serves targets: while busy, the worker polls every millisecond instead. */
	if (atomic_load(&q->sleeping) || (head - tail >= q->cap / 4 && tail != q->kicked_at)) {
		q->kicked_at = tail; /* a quarter full: one kick until the worker moves on */
		wake_worker(q);
	}
}

void diag_event_queue_flush(struct diag_event_queue *q)
{
	publish(q);
	diag_instrument_unref_n(q->cin, q->cin_n);
	q->cin = NULL;
	q->cin_n = 0;
	return_holds(q);
}

static int push(struct diag_event_queue *q, struct diag_instrument *in,
		const struct diag_event *ev, const struct diag_event_render *render,
		const void *blob, size_t blen)
{
	struct lens l;
	size_t bround = render ? (blen + 7) & ~(size_t)7 : 0;
	size_t need = measure(ev, bround, &l);
	uint64_t head = q->phead;
	uint64_t tail = atomic_load_explicit(&q->tail, memory_order_acquire);
	size_t pos = (size_t)(head % q->cap), end = q->cap - pos;
	size_t pad = end < need ? end : 0; /* a record never wraps */
	if (need > q->cap || (size_t)(head - tail) + pad + need > q->cap) {
		/* only this thread writes the counters: no locked instruction */
		atomic_store_explicit(&q->dropped, atomic_load_explicit(&q->dropped, memory_order_relaxed) + 1,
				      memory_order_relaxed);
		return -EAGAIN;
	}
	if (pad >= sizeof(struct qrec)) {
		struct qrec *p = (struct qrec *)(q->ring + pos);
		p->bytes = pad;
		p->in = NULL;
	}
	head += pad;
	credit_instrument(q, in);
	struct qrec *r = (struct qrec *)(q->ring + (size_t)(head % q->cap));
	r->render = render;
	r->blob = bround;
	if (render) {
		memcpy(r + 1, blob, blen);
		credit_hold(q, render, r + 1, blen);
	}
	record_fill(r, need, in, ev, &l);
	q->phead = head + need;
	q->ppushed++;
	if (++q->unpublished >= DIAG_QUEUE_PUBLISH_EVERY || q->phead - tail >= q->cap / 4)
		publish(q);
	return 0;
}

int diag_event_queue_push(struct diag_event_queue *q, struct diag_instrument *in,
			  const struct diag_event *ev)
{
	return push(q, in, ev, NULL, NULL, 0);
}

int diag_event_queue_push_deferred(struct diag_event_queue *q, struct diag_instrument *in,
				   const struct diag_event *ev, const struct diag_event_render *r,
				   const void *blob, size_t len)
{
	struct diag_event e = *ev;
	e.value = (struct diag_value){ .kind = ev->value.kind };
	return push(q, in, &e, r, blob, len);
}

/* The record at offset off (modulo cap), NULL for padding; *bytes its size. */
static struct qrec *record_at(struct diag_event_queue *q, uint64_t off, size_t *bytes)
{
	size_t pos = (size_t)(off % q->cap), end = q->cap - pos;
	if (end < sizeof(struct qrec)) {
		*bytes = end;
		return NULL;
	}
	struct qrec *r = (struct qrec *)(q->ring + pos);
	*bytes = r->bytes;
	return r->in ? r : NULL;
}

#define TEXT_BYTES (DIAG_EVENT_TEXT_MAX + 1)

static size_t fire_run(struct diag_instrument *in, struct qrec **recs,
		       const struct diag_event **run, size_t n)
{
	diag_instrument_fire_many(in, run, n);
	diag_instrument_unref_n(in, n);
	/* alike values of consecutive events released together */
	for (size_t i = 0, j; i < n; i = j) {
		const struct diag_event_render *r = recs[i]->render;
		for (j = i + 1; r && r->same && j < n && recs[j]->render == r &&
				r->same(recs[i] + 1, recs[j] + 1);)
			j++;
		if (r)
			r->release(recs[i] + 1, j - i);
	}
	return n;
}

/* A deferred value rendered into the i-th text of the run (no text memory: an error value) */
static void render_value(struct diag_event_queue *q, struct qrec *r, size_t i)
{
	static const char nomem[] = "<out of memory>";
	if (!q->texts && !(q->texts = malloc((size_t)FIRE_RUN * TEXT_BYTES))) {
		r->ev.value = (struct diag_value){ .kind = DIAG_VALUE_ERROR, .text = nomem };
		return;
	}
	char *text = q->texts + i * TEXT_BYTES;
	r->render->render(r + 1, text, TEXT_BYTES, &r->ev.value);
	if (r->ev.value.buf && r->ev.value.len > DIAG_EVENT_TEXT_MAX)
		r->ev.value.len = DIAG_EVENT_TEXT_MAX;
}

/* Fire the events in [from, to): runs of one instrument under one lock of it. */
static size_t fire_range(struct diag_event_queue *q, uint64_t from, uint64_t to)
{
	const struct diag_event *run[FIRE_RUN];
	struct qrec *recs[FIRE_RUN];
	struct diag_instrument *in = NULL;
	size_t n = 0, fired = 0, bytes;
	for (uint64_t off = from; off < to; off += bytes) {
		struct qrec *r = record_at(q, off, &bytes);
		if (!r)
			continue;
		if (n && (r->in != in || n == FIRE_RUN)) {
			fired += fire_run(in, recs, run, n);
			n = 0;
		}
		in = r->in;
		if (r->render)
			render_value(q, r, n);
		recs[n] = r;
		run[n++] = &r->ev;
	}
	return n ? fired + fire_run(in, recs, run, n) : fired;
}

static bool queue_empty(struct diag_event_queue *q)
{
	return atomic_load(&q->head) == atomic_load_explicit(&q->tail, memory_order_relaxed);
}

/* Nothing queued: flush once, poll every millisecond for a while, then sleep until a push.
 * Called and returns with the lock held. */
static void worker_wait(struct diag_event_queue *q, bool *idled)
{
	if (q->idle && !*idled) {
		*idled = true;
		pthread_mutex_unlock(&q->lock);
		q->idle(q->ctx);
		pthread_mutex_lock(&q->lock);
	} else if (q->idle_ticks < IDLE_POLLS) {
		int64_t at = diag_clock_mono_ns() + 1000000; /* the cond's clock */
		struct timespec ts = { .tv_sec = at / 1000000000, .tv_nsec = at % 1000000000 };
		pthread_cond_timedwait(&q->nonempty, &q->lock, &ts);
		if (queue_empty(q))
			q->idle_ticks++;
	} else {
		atomic_store(&q->sleeping, true);
		if (queue_empty(q) && !q->stop) { /* a push after this sees sleeping and signals */
			int64_t at = diag_clock_mono_ns() + IDLE_PERIOD_NS;
			struct timespec ts = { .tv_sec = at / 1000000000, .tv_nsec = at % 1000000000 };
			if (pthread_cond_timedwait(&q->nonempty, &q->lock, &ts) == ETIMEDOUT)
				*idled = false; /* still dry: idle runs again */
		}
		atomic_store(&q->sleeping, false);
	}
}

static void *worker_main(void *arg)
{
	struct diag_event_queue *q = arg;
	bool idled = true;
	pthread_mutex_lock(&q->lock);
	for (;;) {
		if (queue_empty(q)) {
			pthread_cond_broadcast(&q->drained);
			if (q->stop)
				break;
			worker_wait(q, &idled);
			continue;
		}
		idled = false;
		q->idle_ticks = 0;
		pthread_mutex_unlock(&q->lock);
		uint64_t from = atomic_load_explicit(&q->tail, memory_order_relaxed);
		uint64_t to = atomic_load_explicit(&q->head, memory_order_acquire);
		size_t n = fire_range(q, from, to);
		atomic_fetch_add_explicit(&q->fired, n, memory_order_relaxed);
		atomic_fetch_add_explicit(&q->batches, 1, memory_order_relaxed);
		atomic_store_explicit(&q->tail, to, memory_order_release);
		pthread_mutex_lock(&q->lock);
		pthread_cond_broadcast(&q->drained);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

int diag_event_queue_start(struct diag_event_queue *q)
{
	int r = pthread_create(&q->worker, NULL, worker_main, q);
	if (r)
		return -r;
	q->started = true;
	return 0;
}

void diag_event_queue_drain(struct diag_event_queue *q)
{
	diag_event_queue_flush(q);
	uint64_t want = atomic_load(&q->pushed);
	pthread_mutex_lock(&q->lock);
	if (atomic_load(&q->fired) < want)
		pthread_cond_signal(&q->nonempty);
	while (q->started && atomic_load(&q->fired) < want)
		pthread_cond_wait(&q->drained, &q->lock);
	pthread_mutex_unlock(&q->lock);
}

void diag_event_queue_get_stats(struct diag_event_queue *q, struct diag_queue_stats *out)
{
	uint64_t tail = atomic_load(&q->tail), fired = atomic_load(&q->fired);
	uint64_t head = atomic_load(&q->head), pushed = atomic_load(&q->pushed);
	*out = (struct diag_queue_stats){ .length = (size_t)(pushed - fired), .capacity = q->cap,
					  .bytes = (size_t)(head - tail), .pushed = pushed,
					  .fired = fired, .dropped = atomic_load(&q->dropped),
					  .batches = atomic_load(&q->batches) };
}

void diag_event_queue_free(struct diag_event_queue *q)
{
	if (!q)
		return;
	diag_event_queue_flush(q);
	if (q->started) {
		pthread_mutex_lock(&q->lock);
		q->stop = true;
		pthread_cond_signal(&q->nonempty);
		pthread_mutex_unlock(&q->lock);
		pthread_join(q->worker, NULL);
	}
	size_t bytes;
	for (uint64_t off = q->tail; off < q->head; off += bytes) {
		/* never started: release, do not fire on the caller's thread */
		struct qrec *r = record_at(q, off, &bytes);
		if (r && r->render)
			r->render->release(r + 1, 1);
		if (r)
			diag_instrument_unref(r->in);
	}
	free(q->texts);
	free(q->key);
	pthread_cond_destroy(&q->nonempty);
	pthread_cond_destroy(&q->drained);
	pthread_mutex_destroy(&q->lock);
	free(q->ring);
	free(q);
}
