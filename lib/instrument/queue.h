/* event queue: the bounded hand-off between the thread that controls targets (push, never
 * blocks: when full the event is dropped and counted) and one worker thread that calls each
 * event's instrument fire(). Events are deep-copied on push (text and bytes capped at
 * DIAG_EVENT_TEXT_MAX) into one byte ring allocated at creation: no allocation per event and
 * memory bounded by the capacity. The worker takes every queued event under one lock and fires
 * them in a batch. Each queued event holds a reference on its instrument until fired. A
 * deferred event's value is rendered by the worker, from a blob the producer copied. */
#ifndef DIAG_INSTRUMENT_QUEUE_H
#define DIAG_INSTRUMENT_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <diagnose/event.h>
#include "instrument/host.h"

#define DIAG_EVENT_TEXT_MAX 4096
/* 32 MiB: about 200,000 log events of a number, 0.1 s at 2 million events/s */
#define DIAG_QUEUE_DEFAULT_BYTES (32u << 20)

struct diag_event_queue;

struct diag_queue_stats {
	size_t length;          /* events queued */
	size_t bytes, capacity; /* bytes queued, bytes of the ring */
	uint64_t pushed, fired, dropped;
	uint64_t batches;       /* worker wake-ups that fired at least one event */
};

/* idle(ctx) runs on the worker each time it has drained the queue (e.g. to flush output), and
 * about every 100 ms while the queue stays empty.
 * capacity: bytes of the ring (> 0); diag_event_queue_item_bytes() says what one event takes. */
int diag_event_queue_new(size_t capacity, void (*idle)(void *ctx), void *ctx,
			 struct diag_event_queue **out);
/* Bytes event ev takes in the ring. */
size_t diag_event_queue_item_bytes(const struct diag_event *ev);
/* Start the worker thread. Block the signals the caller handles before calling. */
int diag_event_queue_start(struct diag_event_queue *q);
/* Returns 0, or -EAGAIN when full (dropped, counted). One producer: call it from one thread
 * at a time (the daemon pushes from the engine thread only). What is pushed reaches the
 * worker in batches (every DIAG_QUEUE_PUBLISH_EVERY pushes, at a quarter full) and at
 * diag_event_queue_flush. */
int diag_event_queue_push(struct diag_event_queue *q, struct diag_instrument *in,
			  const struct diag_event *ev);
/* A value the worker renders, not the producer (the daemon's engine thread serves targets
 * and should only copy): the event's value is made by render(blob, ...) just before it fires
 * (text cut to DIAG_EVENT_TEXT_MAX; its buf may point into the blob). Each queued blob holds
 * once: hold(blob, n) takes n holds at once, on a blob alike (same) the producer's copies
 * before the worker can see them (the producer takes holds ahead, for the events to come,
 * and gives back what it did not use at flush); release(blob, 1) once the event has fired or
 * is thrown away; release(blob, n) releases n holds at once that same (may be NULL: never,
 * and then every blob is held alone) says are alike blob. */
struct diag_event_render {
	void (*hold)(const void *blob, size_t n);
	void (*render)(const void *blob, char *text, size_t cap, struct diag_value *out);
	void (*release)(const void *blob, size_t n);
	bool (*same)(const void *a, const void *b);
};
/* The producer's side, when it has pushed what it had (the daemon: once per turn of its
 * loop): publishes every event pushed to the worker and gives back the references and holds
 * taken ahead. Until then an instrument the producer pushed for lives on (drain and free flush
 * first). */
void diag_event_queue_flush(struct diag_event_queue *q);
#define DIAG_QUEUE_PUBLISH_EVERY 64
/* As push, with ev->value made later from a copy of the len bytes at blob (8-aligned in the
 * ring; ev->value is ignored). r must outlive the queue. */
int diag_event_queue_push_deferred(struct diag_event_queue *q, struct diag_instrument *in,
				   const struct diag_event *ev, const struct diag_event_render *r,
				   const void *blob, size_t len);
/* Returns once every event pushed before the call was fired (or the worker was never
 * started). Used by tests and before reports that must include every event. */
void diag_event_queue_drain(struct diag_event_queue *q);
void diag_event_queue_get_stats(struct diag_event_queue *q, struct diag_queue_stats *out);
/* Fire what is queued, stop and join the worker, release everything. Accepts NULL. */
void diag_event_queue_free(struct diag_event_queue *q);

#endif
