/* diagnose/instrument.h: the plugin ABI for instruments (versioned, public).
 *
 * An instrument plugin is a shared object exporting one symbol, `diag_instrument`, of type
 * `const struct diag_instrument_ops`. The daemon checks `abi_version` against
 * DIAG_INSTRUMENT_ABI before calling anything else and refuses a mismatch.
 *
 * Threading: the daemon calls create/fire/report/destroy of one instance from one thread at a
 * time (it serialises them), never from the thread that controls targets. A plugin must never
 * block for long in fire(): events behind it are dropped (and counted) once the queue is full.
 * A plugin never touches the target: it only sees events. */
#ifndef DIAGNOSE_INSTRUMENT_H
#define DIAGNOSE_INSTRUMENT_H

#include <stddef.h>
#include <diagnose/event.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ABI 2 added `idle`, ABI 3 `flags` and diag_event.count; the daemon still loads ABI 1 and 2
 * plugins (it reads no member after `destroy` from ABI 1, none after `idle` from ABI 2). */
#define DIAG_INSTRUMENT_ABI 3
#define DIAG_INSTRUMENT_ABI_MIN 1
#define DIAG_INSTRUMENT_SYMBOL "diag_instrument"

/* What the daemon offers a plugin instance. */
struct diag_host {
	/* Emit one line of output (no trailing newline needed): the daemon prints it on its
	 * stdout and sends it to `diagnosectl tail` clients. Safe to call from fire(). */
	void (*emit)(void *ctx, const char *line);
	void *ctx;
};

struct diag_instrument_ops {
	unsigned abi_version; /* DIAG_INSTRUMENT_ABI */
	const char *type;     /* the spec's instrument.type this plugin implements */

	/* Create an instance named `name` with settings `custom_json` (a JSON object as text,
	 * "{}" when none). Returns the instance, or NULL with a one-line reason in err (which
	 * should name the offending custom field). */
	void *(*create)(const char *name, const char *custom_json, const struct diag_host *host,
			char *err, size_t errlen);

	/* One event. Must not keep pointers from ev after returning. */
	void (*fire)(void *self, const struct diag_event *ev);

	/* State as a JSON object text, malloc'd (the daemon frees it with free()); NULL if none.
	 * Conventional members: "count", and for display a "text" member (e.g. histogram bars). */
	char *(*report)(void *self);

	/* Free the instance. Accepts NULL. */
	void (*destroy)(void *self);
	/* ABI 2, optional (NULL): the event stream paused. Called when the daemon's queue has run
	 * dry and then about every 100 ms while it stays dry, serialised like fire. Send what the
	 * instance holds back for batching (a partial datagram, buffered lines), so that the last
	 * events before a pause reach their receiver without waiting for the next one. */
	void (*idle)(void *self);
	/* ABI 3: DIAG_INSTRUMENT_* bits. */
	unsigned flags;
};

/* fire() honours diag_event.count (an event may stand for many hits). A probe whose instrument
 * has it and that asks for no value and no condition is counted in the target, where it takes
 * a jump: no record per hit, exact at any rate. */
#define DIAG_INSTRUMENT_COUNTS 1u

#ifdef __cplusplus
}
#endif
#endif
