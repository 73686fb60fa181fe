/* event queue: bounded ring + one worker thread (see queue.h). push never waits for the
 * worker: it only takes the ring mutex, which the worker holds for a pointer swap. */
#include "instrument/queue.h"
#include "util/clock.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define IDLE_POLLS 100 /* 100 ms without events before the worker sleeps untimed */

struct qitem {
	struct diag_instrument *in;
	struct diag_event ev; /* its strings live in the same allocation, after the struct */
};

struct diag_event_queue {
	pthread_mutex_t lock;
	pthread_cond_t nonempty, drained;
	struct qitem **ring;
	size_t cap, head, len;
	uint64_t pushed, fired, dropped;
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
	struct diag_event_queue *q = calloc(1, sizeof(*q));
	if (!q || !capacity || !(q->ring = calloc(capacity, sizeof(*q->ring)))) {
		free(q);
		return capacity ? -ENOMEM : -EINVAL;
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

static size_t capped(size_t n)
{
	return n > DIAG_EVENT_TEXT_MAX ? DIAG_EVENT_TEXT_MAX : n;
}

/* One allocation per event: the item, then probe id, name, text and buf. */
static struct qitem *item_copy(struct diag_instrument *in, const struct diag_event *ev)
{
	const char *id = ev->probe_id ? ev->probe_id : "", *name = ev->name ? ev->name : "";
	const char *text = ev->value.text ? ev->value.text : "";
	size_t lid = strlen(id), lname = strlen(name), ltext = capped(strlen(text));
	size_t lbuf = ev->value.buf ? capped(ev->value.len) : 0;
	struct qitem *it = malloc(sizeof(*it) + lid + lname + ltext + lbuf + 3);
	if (!it)
		return NULL;
	char *p = (char *)(it + 1);
	it->in = in;
	it->ev = *ev;
	it->ev.probe_id = memcpy(p, id, lid + 1);
	p += lid + 1;
	it->ev.name = memcpy(p, name, lname + 1);
	p += lname + 1;
	memcpy(p, text, ltext);
	p[ltext] = '\0';
	it->ev.value.text = p;
	p += ltext + 1;
	if (lbuf) {
		it->ev.value.buf = memcpy(p, ev->value.buf, lbuf);
		it->ev.value.len = lbuf;
	} else {
		it->ev.value.buf = NULL;
		it->ev.value.len = 0;
	}
	return it;
}

int diag_event_queue_push(struct diag_event_queue *q, struct diag_instrument *in,
			  const struct diag_event *ev)
{
	struct qitem *it = item_copy(in, ev);
	pthread_mutex_lock(&q->lock);
	int r = 0;
	if (!it || q->len == q->cap) {
		q->dropped++;
		r = it ? -EAGAIN : -ENOMEM;
	} else {
		diag_instrument_ref(in);
		q->ring[(q->head + q->len) % q->cap] = it;
		q->len++;
		q->pushed++;
		it = NULL;
		/* Waking the worker per event costs a cross-CPU wake-up (~27 us here) on the thread
		 * that serves targets: while busy, the worker polls every millisecond instead. */
		if (q->sleeping || q->len >= q->cap / 4)
			pthread_cond_signal(&q->nonempty);
	}
	pthread_mutex_unlock(&q->lock);
	free(it);
	return r;
}

static struct qitem *pop_locked(struct diag_event_queue *q)
{
	struct qitem *it = q->ring[q->head];
	q->head = (q->head + 1) % q->cap;
	q->len--;
	return it;
}

static void fire_item(struct qitem *it)
{
	diag_instrument_fire(it->in, &it->ev);
	diag_instrument_unref(it->in);
	free(it);
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
			if (q->idle && !idled) {
				idled = true;
				pthread_mutex_unlock(&q->lock);
				q->idle(q->ctx);
				pthread_mutex_lock(&q->lock);
			} else if (q->idle_ticks < IDLE_POLLS) {
				int64_t at = diag_clock_mono_ns() + 1000000; /* the cond's clock */
				struct timespec ts = { .tv_sec = at / 1000000000,
						       .tv_nsec = at % 1000000000 };
				pthread_cond_timedwait(&q->nonempty, &q->lock, &ts);
				if (q->len == 0)
					q->idle_ticks++;
			} else {
				q->sleeping = true; /* quiet for a while: sleep until a push */
				pthread_cond_wait(&q->nonempty, &q->lock);
				q->sleeping = false;
			}
			continue;
		}
		idled = false;
		q->idle_ticks = 0;
		q->busy = true;
		struct qitem *it = pop_locked(q);
		pthread_mutex_unlock(&q->lock);
		fire_item(it);
		pthread_mutex_lock(&q->lock);
		q->fired++;
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
					  .pushed = q->pushed, .fired = q->fired,
					  .dropped = q->dropped };
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
	while (q->len) /* never started: release, do not fire on the caller's thread */
	{
		struct qitem *it = pop_locked(q);
		diag_instrument_unref(it->in);
		free(it);
	}
	pthread_cond_destroy(&q->nonempty);
	pthread_cond_destroy(&q->drained);
	pthread_mutex_destroy(&q->lock);
	free(q->ring);
	free(q);
}
