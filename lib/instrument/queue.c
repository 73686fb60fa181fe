/* event queue: a byte ring of event records + one worker thread (see queue.h). push never
 * waits for the worker and never allocates: it takes the ring mutex to copy one record in; the
 * worker holds the mutex only to see how far the ring is filled and to give the fired bytes
 * back, never while it fires. */
#include "instrument/queue.h"
#include "util/clock.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define IDLE_POLLS 100 /* 100 ms without events before the worker sleeps untimed */
#define FIRE_RUN 64    /* events of one instrument fired under one lock of it */

/* A record at an 8-aligned offset of the ring: this header, then the probe id, name, text and
 * buf its event points to. in == NULL: padding up to the end of the ring. Fewer than
 * sizeof(struct qrec) bytes left at the end are padding without a header. */
struct qrec {
	size_t bytes; /* the whole record, a multiple of 8 */
	struct diag_instrument *in;
	struct diag_event ev;
};

struct diag_event_queue {
	pthread_mutex_t lock;
	pthread_cond_t nonempty, drained;
	char *ring;
	size_t cap;            /* bytes, a multiple of 8 */
	uint64_t head, tail;   /* bytes ever written / given back: offsets modulo cap */
	size_t len;            /* events between tail and head */
	uint64_t pushed, fired, dropped, batches;
	bool stop, started, busy;
	bool sleeping;        /* worker in an untimed wait: the next push must wake it */
	unsigned idle_ticks;  /* consecutive empty 1 ms polls */
	pthread_t worker;
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
	if (!q || !(q->ring = malloc(capacity))) {
		free(q);
		return -ENOMEM;
	}
	q->cap = capacity;
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

static size_t measure(const struct diag_event *ev, struct lens *l)
{
	l->id = ev->probe_id ? ev->probe_id : "";
	l->name = ev->name ? ev->name : "";
	l->text = ev->value.text ? ev->value.text : "";
	l->lid = strlen(l->id);
	l->lname = strlen(l->name);
	l->ltext = capped(strlen(l->text));
	l->lbuf = ev->value.buf ? capped(ev->value.len) : 0;
	size_t n = sizeof(struct qrec) + l->lid + l->lname + l->ltext + l->lbuf + 3;
	return (n + 7) & ~(size_t)7;
}

size_t diag_event_queue_item_bytes(const struct diag_event *ev)
{
	struct lens l;
	return measure(ev, &l);
}

static void record_fill(struct qrec *r, size_t bytes, struct diag_instrument *in,
			const struct diag_event *ev, const struct lens *l)
{
	char *p = (char *)(r + 1);
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

int diag_event_queue_push(struct diag_event_queue *q, struct diag_instrument *in,
			  const struct diag_event *ev)
{
	struct lens l;
	size_t need = measure(ev, &l);
	pthread_mutex_lock(&q->lock);
	size_t pos = (size_t)(q->head % q->cap), end = q->cap - pos;
	size_t pad = end < need ? end : 0; /* a record never wraps */
	if (need > q->cap || (size_t)(q->head - q->tail) + pad + need > q->cap) {
		q->dropped++;
		pthread_mutex_unlock(&q->lock);
		return -EAGAIN;
	}
	if (pad >= sizeof(struct qrec)) {
		struct qrec *p = (struct qrec *)(q->ring + pos);
		p->bytes = pad;
		p->in = NULL;
	}
	q->head += pad;
	diag_instrument_ref(in);
	record_fill((struct qrec *)(q->ring + (size_t)(q->head % q->cap)), need, in, ev, &l);
	q->head += need;
	q->len++;
	q->pushed++;
	/* Waking the worker per event costs a cross-CPU wake-up (~27 us here) on the thread
	 * that serves targets: while busy, the worker polls every millisecond instead. */
	if (q->sleeping || q->head - q->tail >= q->cap / 4)
		pthread_cond_signal(&q->nonempty);
	pthread_mutex_unlock(&q->lock);
	return 0;
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

static size_t fire_run(struct diag_instrument *in, const struct diag_event **run, size_t n)
{
	diag_instrument_fire_many(in, run, n);
	for (size_t i = 0; i < n; i++)
		diag_instrument_unref(in);
	return n;
}

/* Fire the events in [from, to): runs of one instrument under one lock of it. */
static size_t fire_range(struct diag_event_queue *q, uint64_t from, uint64_t to)
{
	const struct diag_event *run[FIRE_RUN];
	struct diag_instrument *in = NULL;
	size_t n = 0, fired = 0, bytes;
	for (uint64_t off = from; off < to; off += bytes) {
		struct qrec *r = record_at(q, off, &bytes);
		if (!r)
			continue;
		if (n && (r->in != in || n == FIRE_RUN)) {
			fired += fire_run(in, run, n);
			n = 0;
		}
		in = r->in;
		run[n++] = &r->ev;
	}
	return n ? fired + fire_run(in, run, n) : fired;
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
		if (q->len == 0)
			q->idle_ticks++;
	} else {
		q->sleeping = true;
		pthread_cond_wait(&q->nonempty, &q->lock);
		q->sleeping = false;
	}
}

static void *worker_main(void *arg)
{
	struct diag_event_queue *q = arg;
	bool idled = true;
	pthread_mutex_lock(&q->lock);
	for (;;) {
		if (q->len == 0) {
			q->busy = false;
			pthread_cond_broadcast(&q->drained);
			if (q->stop)
				break;
			worker_wait(q, &idled);
			continue;
		}
		idled = false;
		q->idle_ticks = 0;
		q->busy = true;
		uint64_t from = q->tail, to = q->head;
		pthread_mutex_unlock(&q->lock);
		size_t n = fire_range(q, from, to);
		pthread_mutex_lock(&q->lock);
		q->tail = to;
		q->len -= n;
		q->fired += n;
		q->batches++;
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
	pthread_mutex_lock(&q->lock);
	if (q->len)
		pthread_cond_signal(&q->nonempty);
	while (q->started && (q->len || q->busy))
		pthread_cond_wait(&q->drained, &q->lock);
	pthread_mutex_unlock(&q->lock);
}

void diag_event_queue_get_stats(struct diag_event_queue *q, struct diag_queue_stats *out)
{
	pthread_mutex_lock(&q->lock);
	*out = (struct diag_queue_stats){ .length = q->len, .capacity = q->cap,
					  .bytes = (size_t)(q->head - q->tail),
					  .pushed = q->pushed, .fired = q->fired,
					  .dropped = q->dropped, .batches = q->batches };
	pthread_mutex_unlock(&q->lock);
}

void diag_event_queue_free(struct diag_event_queue *q)
{
	if (!q)
		return;
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
		if (r)
			diag_instrument_unref(r->in);
	}
	pthread_cond_destroy(&q->nonempty);
	pthread_cond_destroy(&q->drained);
	pthread_mutex_destroy(&q->lock);
	free(q->ring);
	free(q);
}
