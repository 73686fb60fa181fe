/* instrument host: plugin loading and instance lifetime (see host.h). Never touches targets
 * and never dlclose()s a plugin before the host is freed. */
#include "instrument/host.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct plugin {
	char *type;
	void *handle;
	const struct diag_instrument_ops *ops;
	struct plugin *next;
};

struct diag_plugin_host {
	char *dir;
	diag_emit_sink_fn sink;
	void *sink_ctx;
	pthread_mutex_t lock; /* the plugin list */
	struct plugin *plugins;
	pthread_mutex_t ilock; /* the live instances (idle); taken before an instance's lock */
	struct diag_instrument *live; /* the instances with an idle call */
	size_t nlive;
};

struct diag_instrument {
	/* its own cache line: the thread that queues events takes references while the worker
	 * fires under the lock and gives them back */
	_Alignas(64) atomic_long refs;
	_Alignas(64) char after_refs;
	pthread_mutex_t lock; /* serialises every call into the plugin instance */
	const struct diag_instrument_ops *ops;
	void *self;
	struct diag_plugin_host *host;
	void (*idle)(void *self);              /* NULL: none, or an ABI 1 plugin */
	bool counts;                           /* ABI 3 DIAG_INSTRUMENT_COUNTS */
	struct diag_instrument *prev, *next;   /* host->live, under host->ilock */
	bool linked;
	char *type, *name, *probe_id;
};

int diag_plugin_host_new(const char *dir, diag_emit_sink_fn sink, void *sink_ctx,
			 struct diag_plugin_host **out)
{
	struct diag_plugin_host *h = calloc(1, sizeof(*h));
	if (!h || !(h->dir = strdup(dir))) {
		free(h);
		return -ENOMEM;
	}
	h->sink = sink;
	h->sink_ctx = sink_ctx;
	pthread_mutex_init(&h->lock, NULL);
	pthread_mutex_init(&h->ilock, NULL);
	*out = h;
	return 0;
}

void diag_plugin_host_free(struct diag_plugin_host *h)
{
	if (!h)
		return;
	for (struct plugin *p = h->plugins, *next; p; p = next) {
		next = p->next;
		dlclose(p->handle);
		free(p->type);
		free(p);
	}
	pthread_mutex_destroy(&h->lock);
	pthread_mutex_destroy(&h->ilock);
	free(h->dir);
	free(h);
}

const char *diag_plugin_host_dir(const struct diag_plugin_host *h)
{
	return h->dir;
}

static int plugin_open(struct diag_plugin_host *h, const char *type, struct plugin **out,
		       struct diag_error *err)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s.so", h->dir, type);
	if (access(path, F_OK) < 0)
		return diag_error_set(err, -DIAG_E_PLUGIN,
				      "instrument.type: no plugin '%s' in %s (looked for %s)", type,
				      h->dir, path);
	void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!handle)
		return diag_error_set(err, -DIAG_E_PLUGIN,
				      "instrument.type: plugin '%s' (%s) cannot be loaded: %s", type,
				      path, dlerror());
	const struct diag_instrument_ops *ops = dlsym(handle, DIAG_INSTRUMENT_SYMBOL);
	int r = 0;
	if (!ops)
		r = diag_error_set(err, -DIAG_E_PLUGIN,
				   "instrument.type: plugin '%s' (%s) has no symbol '%s'", type, path,
				   DIAG_INSTRUMENT_SYMBOL);
	else if (ops->abi_version < DIAG_INSTRUMENT_ABI_MIN || ops->abi_version > DIAG_INSTRUMENT_ABI)
		r = diag_error_set(err, -DIAG_E_PLUGIN,
				   "instrument.type: plugin '%s' has ABI %u, daemon supports %d to %d",
				   type, ops->abi_version, DIAG_INSTRUMENT_ABI_MIN, DIAG_INSTRUMENT_ABI);
	else if (!ops->create || !ops->fire || !ops->destroy)
		r = diag_error_set(err, -DIAG_E_PLUGIN,
				   "instrument.type: plugin '%s' (%s) lacks create, fire or destroy",
				   type, path);
	else if (!ops->type || strcmp(ops->type, type) != 0)
		r = diag_error_set(err, -DIAG_E_PLUGIN,
				   "instrument.type: plugin file %s implements type '%s', not '%s'",
				   path, ops->type ? ops->type : "(null)", type);
	struct plugin *p = r ? NULL : calloc(1, sizeof(*p));
	if (!r && (!p || !(p->type = strdup(type)))) {
		free(p);
		r = diag_error_set(err, -ENOMEM, "instrument.type: out of memory");
	}
	if (r) {
		dlclose(handle);
		return r;
	}
	p->handle = handle;
	p->ops = ops;
	*out = p;
	return 0;
}

/* Failures are not cached: the operator may install the plugin and add the spec again. */
static int plugin_get(struct diag_plugin_host *h, const char *type,
		      const struct diag_instrument_ops **ops, struct diag_error *err)
{
	pthread_mutex_lock(&h->lock);
	struct plugin *p = h->plugins;
	while (p && strcmp(p->type, type) != 0)
		p = p->next;
	int r = 0;
	if (!p && (r = plugin_open(h, type, &p, err)) == 0) {
		p->next = h->plugins;
		h->plugins = p;
	}
	if (!r)
		*ops = p->ops;
	pthread_mutex_unlock(&h->lock);
	return r;
}

static void instrument_emit(void *ctx, const char *line)
{
	struct diag_instrument *in = ctx;
	if (in->host->sink && line)
		in->host->sink(in->host->sink_ctx, in->probe_id, line);
}

static void live_link(struct diag_instrument *in)
{
	struct diag_plugin_host *h = in->host;
	pthread_mutex_lock(&h->ilock);
	in->next = h->live;
	if (h->live)
		h->live->prev = in;
	h->live = in;
	h->nlive++;
	in->linked = true;
	pthread_mutex_unlock(&h->ilock);
}

static void live_unlink(struct diag_instrument *in)
{
	struct diag_plugin_host *h = in->host;
	if (!in->linked)
		return;
	pthread_mutex_lock(&h->ilock);
	if (in->prev)
		in->prev->next = in->next;
	else
		h->live = in->next;
	if (in->next)
		in->next->prev = in->prev;
	h->nlive--;
	in->linked = false;
	pthread_mutex_unlock(&h->ilock);
}

/* A reference on an instance that still has one (the last may be dropping meanwhile: its
 * free waits for the list lock the caller holds, so it is skipped, not revived). */
static bool ref_if_live(struct diag_instrument *in)
{
	long n = atomic_load(&in->refs);
	while (n > 0)
		if (atomic_compare_exchange_weak(&in->refs, &n, n + 1))
			return true;
	return false;
}

/* The list lock is held only to take references: a plugin slow in idle holds up no spec being
 * added or removed (their instances link and unlink under that lock on the engine thread). */
void diag_plugin_host_idle(struct diag_plugin_host *h)
{
	pthread_mutex_lock(&h->ilock);
	size_t n = 0;
	struct diag_instrument **batch = h->nlive ? malloc(h->nlive * sizeof(*batch)) : NULL;
	for (struct diag_instrument *in = h->live; batch && in; in = in->next)
		if (ref_if_live(in))
			batch[n++] = in;
	pthread_mutex_unlock(&h->ilock);
	for (size_t i = 0; i < n; i++) {
		pthread_mutex_lock(&batch[i]->lock);
		batch[i]->idle(batch[i]->self);
		pthread_mutex_unlock(&batch[i]->lock);
		diag_instrument_unref(batch[i]);
	}
	free(batch); /* none (out of memory): the next pass, 100 ms on, tries again */
}

static void instrument_free(struct diag_instrument *in)
{
	live_unlink(in);
	if (in->self)
		in->ops->destroy(in->self);
	pthread_mutex_destroy(&in->lock);
	free(in->type);
	free(in->name);
	free(in->probe_id);
	free(in);
}

int diag_instrument_new(struct diag_plugin_host *h, const char *type, const char *probe_id,
			const char *name, const char *custom_json, struct diag_instrument **out,
			struct diag_error *err)
{
	const struct diag_instrument_ops *ops = NULL;
	int r = plugin_get(h, type, &ops, err);
	if (r < 0)
		return r;
	struct diag_instrument *in = calloc(1, sizeof(*in));
	if (!in)
		return diag_error_set(err, -ENOMEM, "instrument: out of memory");
	atomic_init(&in->refs, 1);
	pthread_mutex_init(&in->lock, NULL);
	in->ops = ops;
	in->host = h;
	in->type = strdup(type);
	in->name = strdup(name);
	in->probe_id = strdup(probe_id);
	if (!in->type || !in->name || !in->probe_id) {
		instrument_free(in);
		return diag_error_set(err, -ENOMEM, "instrument: out of memory");
	}
	struct diag_host host = { .emit = instrument_emit, .ctx = in };
	char why[DIAG_ERRMSG_MAX] = "";
	in->self = ops->create(name, custom_json && *custom_json ? custom_json : "{}", &host, why,
			       sizeof(why));
	if (!in->self) {
		instrument_free(in);
		why[sizeof(why) - 1] = '\0';
		return diag_error_set(err, -DIAG_E_PLUGIN, "instrument: %s",
				      why[0] ? why : "plugin create failed without a reason");
	}
	in->counts = ops->abi_version >= 3 && (ops->flags & DIAG_INSTRUMENT_COUNTS);
	if (ops->abi_version >= 2 && ops->idle) {
		in->idle = ops->idle;
		live_link(in); /* only instances with an idle call are listed */
	}
	*out = in;
	return 0;
}

void diag_instrument_ref_n(struct diag_instrument *in, size_t n)
{
	atomic_fetch_add(&in->refs, (long)n);
}

void diag_instrument_unref(struct diag_instrument *in)
{
	diag_instrument_unref_n(in, 1);
}

void diag_instrument_unref_n(struct diag_instrument *in, size_t n)
{
	if (in && n && atomic_fetch_sub(&in->refs, (long)n) == (long)n) {
		pthread_mutex_lock(&in->lock);
		pthread_mutex_unlock(&in->lock);
		instrument_free(in);
	}
}

void diag_instrument_fire(struct diag_instrument *in, const struct diag_event *ev)
{
	pthread_mutex_lock(&in->lock);
	in->ops->fire(in->self, ev);
	pthread_mutex_unlock(&in->lock);
}

void diag_instrument_fire_many(struct diag_instrument *in, const struct diag_event *const *evs,
			       size_t n)
{
	pthread_mutex_lock(&in->lock);
	for (size_t i = 0; i < n; i++)
		in->ops->fire(in->self, evs[i]);
	pthread_mutex_unlock(&in->lock);
}

char *diag_instrument_report(struct diag_instrument *in)
{
	if (!in->ops->report)
		return NULL;
	pthread_mutex_lock(&in->lock);
	char *r = in->ops->report(in->self);
	pthread_mutex_unlock(&in->lock);
	return r;
}

bool diag_instrument_takes_counts(const struct diag_instrument *in)
{
	return in && in->counts;
}

const char *diag_instrument_type(const struct diag_instrument *in)
{
	return in->type;
}

const char *diag_instrument_name(const struct diag_instrument *in)
{
	return in->name;
}

const char *diag_instrument_probe_id(const struct diag_instrument *in)
{
	return in->probe_id;
}
