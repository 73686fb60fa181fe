/* instrument host: loads instrument plugins (.so, by type, from one plugin directory), checks
 * their ABI, and owns instances. An instance is reference counted (queued events hold a
 * reference) and every call into it is serialised by its own mutex. Lines a plugin emits go to
 * one sink given by the daemon. Never touches targets; never unloads a plugin while the host
 * lives (instances and queued events may still point into it). */
#ifndef DIAG_INSTRUMENT_HOST_H
#define DIAG_INSTRUMENT_HOST_H

#include <diagnose/event.h>
#include <diagnose/instrument.h>

#include <stdbool.h>

#include "util/error.h"

/* Receives every line emitted by any instance, with the instance's probe id. May be called
 * from any thread that calls diag_instrument_fire(). */
typedef void (*diag_emit_sink_fn)(void *ctx, const char *probe_id, const char *line);

struct diag_plugin_host;
struct diag_instrument;

/* Returns 0 or -errno. dir is copied. */
int diag_plugin_host_new(const char *dir, diag_emit_sink_fn sink, void *sink_ctx,
			 struct diag_plugin_host **out);
/* Unloads every plugin. Every instance must be gone. Accepts NULL. */
void diag_plugin_host_free(struct diag_plugin_host *h);
const char *diag_plugin_host_dir(const struct diag_plugin_host *h);

/* Load plugin `type` if needed and create an instance. Errors (-DIAG_E_PLUGIN), in err:
 *   instrument.type: no plugin 'foo' in DIR (looked for DIR/foo.so)
 *   instrument.type: plugin 'foo' (PATH) cannot be loaded: <dlerror>
 *   instrument.type: plugin 'foo' (PATH) has no symbol 'diag_instrument'
 *   instrument.type: plugin 'foo' has ABI 4, daemon supports 1 to 3
 *   instrument: <the plugin's create error> */
int diag_instrument_new(struct diag_plugin_host *h, const char *type, const char *probe_id,
			const char *name, const char *custom_json, struct diag_instrument **out,
			struct diag_error *err);
/* n more references (the queue's producer takes them ahead, queue.c). */
void diag_instrument_ref_n(struct diag_instrument *in, size_t n);
/* Drops a reference; the last one destroys the instance. Accepts NULL. */
void diag_instrument_unref(struct diag_instrument *in);
/* Drops n references at once (the queue, after firing a run of events). */
void diag_instrument_unref_n(struct diag_instrument *in, size_t n);

void diag_instrument_fire(struct diag_instrument *in, const struct diag_event *ev);
/* Fire n events in order under one lock of the instance (the queue's batches). */
void diag_instrument_fire_many(struct diag_instrument *in, const struct diag_event *const *evs,
			       size_t n);
/* The plugin's report (malloc'd JSON object text) or NULL. */
char *diag_instrument_report(struct diag_instrument *in);

/* Call idle of every live instance whose plugin has one (ABI 2), each under its own lock.
 * From the event queue's worker, when the queue has run dry. */
void diag_plugin_host_idle(struct diag_plugin_host *h);

/* The instance's fire() honours diag_event.count (ABI 3 DIAG_INSTRUMENT_COUNTS): its probes
 * that ask for no value and no condition may be counted in the target. */
bool diag_instrument_takes_counts(const struct diag_instrument *in);
const char *diag_instrument_type(const struct diag_instrument *in);
const char *diag_instrument_name(const struct diag_instrument *in);
const char *diag_instrument_probe_id(const struct diag_instrument *in);

#endif
