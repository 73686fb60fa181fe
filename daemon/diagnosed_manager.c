/* diagnosed_manager: makes the traced processes match the specs (the contract is in
 * diagnosed_manager.h). Owns the running specs, their instrument instances and `applied`
 * records; never calls up into the server, the governor or the main loop. */
#include "diagnosed_manager.h"

#include "indexer/indexer.h"
#include "log.h"
#include "spec/target.h"
#include "util/clock.h"
#include "util/grow.h"
#include "util/procfs.h"
#include "util/text.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The spec of a hit's cookie, NULL when it is gone. Every event asks, and runs of events are
 * one probe's: the last answer first (forgotten when its spec is freed), then the list (up to
 * DIAG_SPEC_MAX). */
static struct dmn_mspec *mspec_of_cookie(struct dmn_manager *m, void *cookie)
{
	if (cookie && cookie == m->hit_ms)
		return m->hit_ms;
	for (size_t i = 0; i < m->nspecs; i++)
		if (m->specs[i] == cookie)
			return m->hit_ms = m->specs[i];
	return NULL;
}

static struct diag_applied *record(struct dmn_manager *m, struct dmn_mspec *ms, pid_t pid)
{
	char key[sizeof(((struct diag_applied *)0)->key)];
	snprintf(key, sizeof(key), "%s:%d", m->host, (int)pid);
	return diag_spec_applied_get(ms->spec, key, pid);
}

static struct diag_applied *record_find(struct dmn_mspec *ms, pid_t pid)
{
	for (size_t i = 0; i < ms->spec->napplied; i++)
		if (ms->spec->applied[i].pid == pid)
			return &ms->spec->applied[i];
	return NULL;
}

/* Sets of pids (the processes a selector took and their forks; those detached by hand):
 * small, unordered. */
static bool pidset_has(const struct dmn_pidset *v, pid_t pid)
{
	for (size_t i = 0; i < v->n; i++)
		if (v->pids[i] == pid)
			return true;
	return false;
}

static void pidset_add(struct dmn_pidset *v, pid_t pid)
{
	if (!pidset_has(v, pid) && DIAG_GROW(&v->pids, &v->cap, v->n + 1) == 0)
		v->pids[v->n++] = pid;
}

static void pidset_del(struct dmn_pidset *v, pid_t pid)
{
	for (size_t i = 0; i < v->n; i++)
		if (v->pids[i] == pid) {
			v->pids[i] = v->pids[--v->n];
			return;
		}
}

bool dmn_manager_selected(const struct dmn_manager *m, pid_t pid)
{
	return pidset_has(&m->selected, pid);
}

static void selected_add(struct dmn_manager *m, pid_t pid)
{
	pidset_add(&m->selected, pid);
}

static void selected_del(struct dmn_manager *m, pid_t pid)
{
	pidset_del(&m->selected, pid);
}

/* An exec under the engine: the new image may match other selectors, or none. Checked at the
 * next tick, outside the engine's dispatch. */
static void recheck_later(struct dmn_manager *m, pid_t pid)
{
	for (size_t i = 0; i < m->nrecheck; i++)
		if (m->recheck[i] == pid)
			return;
	if (m->nrecheck < DMN_MANAGER_RECHECK_MAX)
		m->recheck[m->nrecheck++] = pid;
	else
		m->rescan_due = true;
}

static bool live_state(enum diag_applied_state st)
{
	return st == DIAG_APPLIED_APPLIED || st == DIAG_APPLIED_PENDING;
}
/* Values are rendered by the queue's worker, not on the thread serving targets. */
static const struct diag_event_render render_ops = {
	.hold = diag_engine_value_hold, .render = diag_engine_value_render,
	.release = diag_engine_value_release, .same = diag_engine_value_same,
};

static void on_hit(void *ctx, const struct diag_engine_hit *hit)
{
	struct dmn_manager *m = ctx;
	struct dmn_mspec *ms = mspec_of_cookie(m, hit->cookie);
	if (!ms)
		return;
	struct diag_applied *a = record_find(ms, hit->pid);
	if (!a && !(a = record(m, ms, hit->pid)))
		return;
	uint64_t n = hit->count ? hit->count : 1; /* a counting probe's hits since the last drain */
	a->hits += n;
	a->last_hit_ns = (int64_t)hit->time_ns;
	ms->hits += n;
	m->hits += n;
	if (ms->inst && m->queue) {
		struct diag_event ev = {
			.probe_id = ms->spec->id, .name = ms->spec->name, .pid = hit->pid,
			.tid = hit->tid, .time_ns = hit->time_ns, .kind = hit->kind,
			.value = hit->value, .count = n,
		};
		int r = hit->raw ? diag_event_queue_push_deferred(m->queue, ms->inst, &ev, &render_ops,
								  hit->raw, hit->raw_len)
				 : diag_event_queue_push(m->queue, ms->inst, &ev);
		if (r < 0) {
			a->dropped += n;
			ms->dropped += n;
		}
	}
	if (m->on_hit)
		m->on_hit(m->on_hit_ctx, ms, hit);
}

static enum diag_applied_state state_of(enum diag_probe_state st)
{
	switch (st) {
	case DIAG_PROBE_PENDING: return DIAG_APPLIED_PENDING;
	case DIAG_PROBE_APPLIED: return DIAG_APPLIED_APPLIED;
	case DIAG_PROBE_REMOVED: return DIAG_APPLIED_REMOVED;
	default: return DIAG_APPLIED_ERROR;
	}
}

/* Each instance of the probe in this process: installed (and how) or skipped (and why). */
static void instances_json(const struct diag_probe_info *info, char *out, size_t cap)
{
	cJSON *arr = cJSON_CreateArray();
	char t[32];
	for (size_t i = 0; arr && i < info->naddrs; i++) {
		cJSON *o = cJSON_CreateObject();
		snprintf(t, sizeof(t), "0x%llx", (unsigned long long)info->addrs[i]);
		cJSON_AddStringToObject(o, "address", t);
		cJSON_AddStringToObject(o, "what", info->inst[i].what);
		cJSON_AddStringToObject(o, "path", info->inst[i].fast ? "jump" : "int3");
		if (info->inst[i].record_bytes) /* what one hit takes of the ring */
			cJSON_AddNumberToObject(o, "record_bytes", info->inst[i].record_bytes);
		if (!info->inst[i].fast && info->inst[i].why[0]) /* why it takes a stop per hit */
			cJSON_AddStringToObject(o, "reason", info->inst[i].why);
		cJSON_AddItemToArray(arr, o);
	}
	for (size_t i = 0; arr && i < info->nskips && i < DIAG_PROBE_MAX_SKIPS; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "what", info->skips[i].what);
		cJSON_AddStringToObject(o, "skipped", info->skips[i].reason);
		cJSON_AddItemToArray(arr, o);
	}
	char *txt = arr ? cJSON_PrintUnformatted(arr) : NULL;
	out[0] = '\0';
	if (txt && strlen(txt) < cap)
		memcpy(out, txt, strlen(txt) + 1);
	free(txt);
	cJSON_Delete(arr);
}

/* Fast-path hits are counted in the target, exactly, even when a full ring dropped their
 * events. The gap between that count and the hits delivered so far is mostly hits still in
 * the ring, which on_hit counts when they arrive: only as many as the process's ring really
 * refused (a per-process count, the only one the target keeps) are added as dropped, so a
 * ring that refused nothing shows dropped 0 and no hit is counted twice. The ring's refusals
 * are compared with the ones counted before (ring_dropped), not with `dropped`, which holds
 * the queue's refusals too: each of those would hide one of the ring's for good. */
static void count_hits(struct dmn_mspec *ms, struct diag_applied *a,
		       const struct diag_probe_info *info)
{
	uint64_t reached = info->hits > info->filtered ? info->hits - info->filtered : 0;
	if (reached <= a->hits || info->dropped <= a->ring_dropped)
		return;
	uint64_t gap = reached - a->hits, refused = info->dropped - a->ring_dropped;
	uint64_t lost = gap < refused ? gap : refused;
	a->ring_dropped += lost;
	a->dropped += lost;
	a->hits += lost;
	ms->dropped += lost; /* `stats` shows the spec's drops wherever they happened */
	ms->hits += lost;
}

static void refresh_record(struct dmn_manager *m, struct dmn_mspec *ms, struct diag_applied *a)
{
	struct diag_probe_info info;
	if (diag_engine_probe_info(m->engine, a->pid, ms, &info) < 0)
		return;
	a->state = state_of(info.state);
	/* a pending probe says what it waits for (a typo in a module name shows here) */
	snprintf(a->error, sizeof(a->error), "%s",
		 info.state == DIAG_PROBE_ERROR || info.state == DIAG_PROBE_PENDING ? info.error : "");
	a->naddrs = info.naddrs < DIAG_SPEC_ADDRS_MAX ? info.naddrs : DIAG_SPEC_ADDRS_MAX;
	memcpy(a->addrs, info.addrs, a->naddrs * sizeof(a->addrs[0]));
	instances_json(&info, a->instances, sizeof(a->instances));
	count_hits(ms, a, &info);
}

static void on_probe_state(void *ctx, pid_t pid, void *cookie, enum diag_probe_state st,
			   const char *error)
{
	struct dmn_manager *m = ctx;
	struct dmn_mspec *ms = mspec_of_cookie(m, cookie);
	struct diag_applied *a = ms ? record(m, ms, pid) : NULL;
	if (!a)
		return;
	a->lm_ns = ms->spec->lastmodified_ns;
	refresh_record(m, ms, a);
	struct diag_probe_info info;
	if (st == DIAG_PROBE_REMOVED && diag_engine_probe_info(m->engine, pid, cookie, &info) == 0 &&
	    info.state == DIAG_PROBE_PENDING) {
		/* its library was unloaded (dlclose): the probe waits for it to come back */
		a->state = DIAG_APPLIED_PENDING;
		snprintf(a->error, sizeof(a->error), "%s; waiting for it to be loaded again",
			 error ? error : "its module was unloaded");
		return;
	}
	a->state = state_of(st);
	snprintf(a->error, sizeof(a->error), "%s", error ? error : "");
	/* a removal that left the target's own rewrite of its code in place says so */
	if (a->state == DIAG_APPLIED_ERROR || (st == DIAG_PROBE_REMOVED && a->error[0]))
		dmn_log("spec '%s': pid %d: %s", ms->spec->id, (int)pid, a->error);
}

/* A record whose process is gone: not live, not traced, not running (a detached process keeps
 * its record), and not one the spec names (a pid the user asked for keeps its record,
 * whatever became of it). */
static bool record_gone(const struct dmn_manager *m, const struct diag_spec *s,
			const struct diag_applied *a)
{
	if (a->pid <= 0 || a->state == DIAG_APPLIED_APPLIED || a->state == DIAG_APPLIED_PENDING ||
	    diag_engine_attached(m->engine, a->pid))
		return false;
	for (size_t i = 0; i < s->npids; i++)
		if (s->pids[i] == a->pid)
			return false;
	return diag_proc_gone(a->pid); /* a zombie, not reaped yet, is gone already */
}

/* A fork storm must not grow `applied` (memory, `list`, the store) without bound: the oldest
 * records of gone processes beyond the last DMN_MANAGER_EXITED_KEEP are summed into the
 * summary record and dropped. Runs between engine dispatches only, never while a caller
 * holds a record (the governor walks the array). */
static void fold_exited(struct dmn_manager *m, struct diag_spec *s)
{
	size_t gone = 0;
	for (size_t i = 0; i < s->napplied; i++)
		gone += record_gone(m, s, &s->applied[i]);
	if (gone <= DMN_MANAGER_EXITED_KEEP)
		return;
	char key[sizeof(((struct diag_applied *)0)->key)];
	snprintf(key, sizeof(key), "%s:exited", m->host);
	if (!diag_spec_applied_get(s, key, 0))
		return; /* out of memory: keep every record */
	struct diag_applied sum = {0};
	size_t fold = gone - DMN_MANAGER_EXITED_KEEP, w = 0;
	for (size_t i = 0; i < s->napplied; i++) {
		const struct diag_applied *a = &s->applied[i];
		if (fold && record_gone(m, s, a)) {
			fold--;
			sum.processes++;
			sum.hits += a->hits;
			sum.dropped += a->dropped;
			if (a->last_hit_ns > sum.last_hit_ns)
				sum.last_hit_ns = a->last_hit_ns;
			continue;
		}
		if (w != i)
			s->applied[w] = *a;
		w++;
	}
	s->napplied = w;
	struct diag_applied *t = diag_spec_applied_get(s, key, 0);
	t->state = DIAG_APPLIED_REMOVED;
	t->lm_ns = s->lastmodified_ns;
	t->processes += sum.processes;
	t->hits += sum.hits;
	t->dropped += sum.dropped;
	if (sum.last_hit_ns > t->last_hit_ns)
		t->last_hit_ns = sum.last_hit_ns;
	snprintf(t->error, sizeof(t->error),
		 "%llu processes exited: their records are summed here (the last %d keep their own)",
		 (unsigned long long)t->processes, DMN_MANAGER_EXITED_KEEP);
}

static void on_process(void *ctx, pid_t pid, enum diag_proc_event what, pid_t other)
{
	struct dmn_manager *m = ctx;
	if (what == DIAG_PROC_EXIT) {
		m->fold_due = true;
		selected_del(m, pid);
		pidset_del(&m->by_hand, pid); /* its pid may be reused */
	} else if (what == DIAG_PROC_FORK) {
		if (dmn_manager_selected(m, pid))
			selected_add(m, other);
		/* the engine tells the fork before it copies the probes: their state is read then */
		recheck_later(m, other);
	} else if (what == DIAG_PROC_EXEC) {
		recheck_later(m, pid);
	}
	for (size_t i = 0; i < m->nspecs; i++) {
		struct dmn_mspec *ms = m->specs[i];
		struct diag_applied *a = record_find(ms, pid);
		if (!a)
			continue;
		if (what == DIAG_PROC_EXIT && a->state != DIAG_APPLIED_EXPIRED &&
		    a->state != DIAG_APPLIED_DISABLED) {
			a->state = DIAG_APPLIED_EXITED;
			a->naddrs = 0;
			snprintf(a->error, sizeof(a->error), "process %d exited", (int)pid);
		} else if (what == DIAG_PROC_FORK && !ms->expired &&
			   a->state != DIAG_APPLIED_DISABLED) {
			struct diag_applied *c = record(m, ms, other);
			if (c) {
				c->lm_ns = ms->spec->lastmodified_ns;
				refresh_record(m, ms, c);
			}
		}
	}
}

/* The worker thread is the only writer of stdout, so lines never interleave; they are
 * flushed whenever the queue runs dry, i.e. at once unless events are arriving faster. A
 * plugin's line quotes names and formats from clients and values from targets: escaped, one
 * event is one line and no terminal is driven. */
static void emit_sink(void *ctx, const char *probe_id, const char *line)
{
	const struct dmn_manager *m = ctx;
	(void)probe_id;
	if (!m->print_events)
		return; /* a daemon of the service writes events to its clients only: bounded */
	size_t len = 0;
	while (line[len] >= 0x20 && line[len] < 0x7f) /* printable ASCII needs no escaping */
		len++;
	if (!line[len]) { /* one lock of stdout, not one per call: this runs for every event */
		flockfile(stdout);
		fwrite_unlocked(line, 1, len, stdout);
		putc_unlocked('\n', stdout);
		funlockfile(stdout);
		return;
	}
	char buf[1024];
	len += strlen(line + len);
	size_t need = diag_text_escape(buf, sizeof(buf), line, len, 0);
	char *big = need < sizeof(buf) ? NULL : diag_text_escape_dup(line, 0);
	/* stdout is fully buffered (diagnosed.c) and flushed by emit_idle: a batch of lines is
	 * one write(2) (the locked calls: a one-shot run prints its reports from the main thread) */
	if (need < sizeof(buf))
		fwrite(buf, 1, need, stdout);
	else if (big)
		fputs(big, stdout);
	free(big);
	putc('\n', stdout);
}

static void emit_idle(void *ctx)
{
	struct dmn_manager *m = ctx;
	fflush(stdout);
	diag_plugin_host_idle(m->plugins);
}

int dmn_manager_init(struct dmn_manager *m, const char *plugin_dir, const char *store_path,
		      struct diag_error *err)
{
	memset(m, 0, sizeof(*m));
	m->targets_max = DMN_MANAGER_TARGETS_MAX;
	m->spec_procs_max = DMN_MANAGER_SPEC_PROCS_DEFAULT;
	if (gethostname(m->host, sizeof(m->host) - 1) < 0)
		snprintf(m->host, sizeof(m->host), "localhost");
	struct diag_engine_callbacks cb = { .on_hit = on_hit, .on_probe_state = on_probe_state,
					    .on_process = on_process, .ctx = m };
	int r = diag_engine_new(&cb, &m->engine);
	if (r < 0)
		return diag_error_set(err, r, "engine: %s", diag_strerror(r));
	if ((r = diag_store_open(store_path, &m->store)) < 0)
		return diag_error_set(err, r, "store: %s", diag_strerror(r));
	if ((r = diag_plugin_host_new(plugin_dir, emit_sink, m, &m->plugins)) < 0)
		return diag_error_set(err, r, "plugins: %s", diag_strerror(r));
	if ((r = diag_event_queue_new(DIAG_QUEUE_DEFAULT_BYTES, emit_idle, m, &m->queue)) < 0 ||
	    (r = diag_event_queue_start(m->queue)) < 0)
		return diag_error_set(err, r, "event queue: %s", diag_strerror(r));
	diag_engine_defer_render(m->engine, true);
	return 0;
}

int dmn_manager_use_indexer(struct dmn_manager *m, const struct diag_indexer_opts *o,
			     struct diag_error *err)
{
	int r = diag_indexer_new(o, &m->indexer);
	if (r == 0)
		r = diag_engine_use_indexer(m->engine, m->indexer);
	if (r < 0)
		return diag_error_set(err, r, "indexer: %s", diag_strerror(r));
	/* started now, off the first probe's path; a failure here is the first request's */
	struct diag_error e = { 0 };
	if (diag_indexer_start(m->indexer, &e) < 0)
		dmn_log("%s (retried at the first file to read)", e.msg);
	return 0;
}

static void mspec_free(struct dmn_manager *m, struct dmn_mspec *ms)
{
	if (!ms)
		return;
	if (m->hit_ms == ms)
		m->hit_ms = NULL;
	diag_instrument_unref(ms->inst);
	diag_spec_free(ms->spec);
	free(ms->sel);
	free(ms->target);
	free(ms);
}

/* Undo a spec in every process it touched: bytes restored by the engine. */
static void release_unwanted(struct dmn_manager *m, pid_t pid);

static void select_changed(struct dmn_manager *m)
{
	m->select_gen++;
	if (m->on_select)
		m->on_select(m->on_select_ctx);
}

/* Undo a spec in every process it touched: bytes restored by the engine. The processes only
 * its selector held are detached. */
static void unapply(struct dmn_manager *m, struct dmn_mspec *ms, enum diag_applied_state st)
{
	for (size_t i = 0; i < ms->spec->napplied; i++) {
		struct diag_applied *a = &ms->spec->applied[i];
		if (a->state != DIAG_APPLIED_APPLIED && a->state != DIAG_APPLIED_PENDING)
			continue;
		if (a->pid > 0) /* HOST:select names no process */
			diag_engine_probe_remove(m->engine, a->pid, ms);
		a->state = st;
		a->naddrs = 0;
	}
	if (!ms->sel)
		return;
	select_changed(m);
	for (size_t i = 0; i < ms->spec->napplied; i++)
		if (ms->spec->applied[i].pid > 0 && ms->spec->applied[i].state == st)
			release_unwanted(m, ms->spec->applied[i].pid);
}

void dmn_manager_fini(struct dmn_manager *m)
{
	/* the engine first: detaching drains the fast-path rings, whose hits still go through
	 * the queue; but the values queued unrendered need the engine's types: rendered first,
	 * and the last hits rendered at once */
	if (m->engine && m->queue) {
		diag_engine_defer_render(m->engine, false);
		diag_event_queue_drain(m->queue);
	}
	diag_engine_free(m->engine);
	m->engine = NULL;
	diag_indexer_free(m->indexer);
	m->indexer = NULL;
	if (m->queue)
		diag_event_queue_free(m->queue); /* fires what is queued, joins the worker */
	m->queue = NULL;
	struct diag_error err = { 0 };
	if (dmn_manager_save(m, &err) < 0)
		dmn_log("%s", err.msg);
	for (size_t i = 0; i < m->nspecs; i++)
		mspec_free(m, m->specs[i]);
	free(m->specs);
	free(m->selected.pids);
	free(m->by_hand.pids);
	diag_plugin_host_free(m->plugins);
	diag_store_free(m->store);
	free(m->shared.problems);
	memset(m, 0, sizeof(*m));
}

int dmn_manager_save(struct dmn_manager *m, struct diag_error *err)
{
	if (!m->store)
		return 0;
	struct diag_spec **v = calloc(m->nspecs + 1, sizeof(*v));
	if (!v)
		return diag_error_set(err, -ENOMEM, "store: out of memory");
	for (size_t i = 0; i < m->nspecs; i++)
		v[i] = m->specs[i]->spec;
	int r = diag_store_save(m->store, v, m->nspecs, err);
	free(v);
	return r;
}

/* The engine's error, recorded in the record: an error that names no field of its own
 * (err->field) is about where the probe goes, the target. */
static void apply_error(struct diag_applied *a, struct diag_error *e, int r)
{
	if (!e->msg[0])
		diag_error_set(e, r, "%s", diag_strerror(r));
	e->msg[480] = '\0'; /* the record's room, with a field named in front */
	diag_error_lead_field(e, "target");
	snprintf(a->error, sizeof(a->error), "%s", e->msg);
	a->state = DIAG_APPLIED_ERROR;
	a->naddrs = 0;
}

/* Every traced process costs ptrace stops, rings and breakpoint tables: bounded. */
static int targets_full(struct dmn_manager *m, pid_t pid, struct diag_error *err)
{
	pid_t pids[DMN_MANAGER_TARGETS_MAX];
	size_t max = m->targets_max && m->targets_max < DMN_MANAGER_TARGETS_MAX ? m->targets_max
									: DMN_MANAGER_TARGETS_MAX;
	if (diag_engine_pids(m->engine, pids, max) < max)
		return 0;
	return diag_error_set(err, -DIAG_E_LIMIT,
			      "pid %d: not attached: the limit of %zu traced processes is reached "
			      "(diagnosed --max-traced)", (int)pid, max);
}

bool dmn_manager_has_room(struct dmn_manager *m)
{
	struct diag_error e = { 0 };
	return targets_full(m, 0, &e) == 0;
}

int dmn_manager_attach_process(struct dmn_manager *m, pid_t pid, struct diag_error *err)
{
	/* A stopped init stops the machine; only an operator who asked for it gets it. */
	if (pid == 1 && !m->allow_pid1)
		return diag_error_set(err, -EPERM,
				      "pid 1: refused: tracing init can stall the whole system (start "
				      "diagnosed with --allow-pid1 to allow it)");
	int r = targets_full(m, pid, err);
	return r < 0 ? r : diag_engine_attach(m->engine, pid, err);
}

static void apply_pid(struct dmn_manager *m, struct dmn_mspec *ms, pid_t pid)
{
	struct diag_applied *a = record(m, ms, pid);
	if (!a)
		return;
	struct diag_spec *s = ms->spec;
	/* What the governor disabled stays so (restarts, re-attach) until the spec is re-added. */
	if (a->state == DIAG_APPLIED_DISABLED && a->lm_ns == s->lastmodified_ns)
		return;
	a->lm_ns = s->lastmodified_ns;
	a->hits = a->dropped = a->ring_dropped = 0;
	a->last_hit_ns = 0;
	a->error[0] = '\0';
	struct diag_error e = { 0 };
	int r = 0;
	if (!ms->inst) {
		snprintf(a->error, sizeof(a->error), "%s", ms->inst_error);
		a->state = DIAG_APPLIED_ERROR;
	} else if (!diag_engine_attached(m->engine, pid) &&
		   (r = dmn_manager_attach_process(m, pid, &e)) < 0) {
		if (e.msg[0])
			snprintf(a->error, sizeof(a->error), "%s", e.msg);
		else
			snprintf(a->error, sizeof(a->error), "pid %d: %s", (int)pid, diag_strerror(r));
		a->state = DIAG_APPLIED_ERROR;
	} else {
		/* NULL, not "", for "none": engine.h allows both, but the engine's copy treats ""
		 * as an allocation failure (reported to the engine's owner). */
		struct diag_probe_def def = { .target = ms->target ? ms->target : s->target,
					      .value = *s->value ? s->value : NULL,
					      .condition = *s->condition ? s->condition : NULL,
					      .event = s->event, .cookie = ms,
					      .counts = diag_instrument_takes_counts(ms->inst) };
		r = diag_engine_probe_add(m->engine, pid, &def, &e);
		if (r < 0)
			apply_error(a, &e, r);
		else
			refresh_record(m, ms, a);
	}
	if (a->state == DIAG_APPLIED_ERROR)
		dmn_log("spec '%s': %s", s->id, a->error);
}

/* ---- selectors (issue 11; docs/targets.md "Selectors") ---- */

/* The selector for this machine, built again at each scan: a package upgrade replaces an
 * executable by a new file (another inode), which the next scan takes. A selector that was
 * built once and fails now (the file deleted) keeps its last identity: processes still run
 * that file. Returns false when there is none, with ms->sel_error. */
static bool sel_refresh(struct dmn_mspec *ms)
{
	const struct diag_spec_select *q = &ms->spec->select;
	struct diag_selector *s = calloc(1, sizeof(*s));
	struct diag_error e = { 0 };
	int r = s ? 0 : diag_error_set(&e, -ENOMEM, "select: out of memory");
	if (r == 0 && q->exe)
		r = diag_selector_set_exe(s, q->exe, diag_spec_path_is_library(q->exe), &e);
	if (r == 0 && q->comm)
		r = diag_selector_set_comm(s, q->comm, &e);
	if (r == 0 && q->unit)
		r = diag_selector_set_unit(s, q->unit, &e);
	if (r == 0 && q->cgroup)
		r = diag_selector_set_cgroup(s, q->cgroup, &e);
	if (r < 0) {
		free(s);
		snprintf(ms->sel_error, sizeof(ms->sel_error), "%s", e.msg);
		return ms->sel != NULL;
	}
	free(ms->sel);
	ms->sel = s;
	ms->sel_error[0] = '\0';
	return true;
}

/* Whether the engine holds ms's probe in pid, waiting for its library (loaded later, or
 * unloaded by a dlclose and waiting to come back). */
static bool probe_pending(const struct dmn_manager *m, const struct dmn_mspec *ms, pid_t pid)
{
	struct diag_probe_info info;
	return diag_engine_probe_info(m->engine, pid, (void *)ms, &info) == 0 &&
	       info.state == DIAG_PROBE_PENDING;
}

/* Whether ms's select.exe is the library pid's dynamic linker is opening now (library gate). */
static bool opening_lib(const struct dmn_manager *m, const struct dmn_mspec *ms, pid_t pid)
{
	const struct diag_selector *s = ms->sel;
	return m->opening.pid == pid && s->exe_is_library && s->exe_dev == m->opening.dev &&
	       s->exe_ino == m->opening.ino;
}

/* A library selector with other members: those members pick the processes, and the probe
 * waits (pending) in each until it maps the library, dlopen included; so the library is not
 * required at the match. A library alone takes the processes that map it, the one opening it
 * at the library gate, and the ones whose probe waits for it (a dlclose, then maybe another
 * dlopen: the probe stays). */
static int sel_match(const struct dmn_manager *m, const struct dmn_mspec *ms, pid_t pid,
		     struct diag_error *err)
{
	const struct diag_selector *s = ms->sel;
	bool others = s->comm[0] || s->unit[0] || s->cgroup[0];
	if (s->has_exe && s->exe_is_library &&
	    (others || opening_lib(m, ms, pid) || probe_pending(m, ms, pid))) {
		struct diag_selector t = *s;
		t.has_exe = false;
		return diag_selector_match(&t, pid, err);
	}
	return diag_selector_match(s, pid, err);
}

/* A select.exe library: a target without a MODULE is looked up in that library. */
static void sel_target(struct dmn_mspec *ms)
{
	const char *exe = ms->spec->select.exe;
	struct diag_target t;
	if (ms->target || !exe || !diag_spec_path_is_library(exe) || diag_target_parse(ms->spec->target, &t, NULL) < 0 ||
	    t.module[0] || t.kind == DIAG_TARGET_ADDR)
		return;
	const char *base = strrchr(exe, '/') ? strrchr(exe, '/') + 1 : exe;
	if (asprintf(&ms->target, "%s:%s", base, ms->spec->target) < 0)
		ms->target = NULL;
}

/* Why pid cannot be traced, before trying: a kernel thread, another tracer (ptrace allows
 * one: gdb, strace), ourselves. 0 when none is known. */
static int untraceable(pid_t pid, struct diag_error *err)
{
	char flags[32];
	if (pid == getpid())
		return diag_error_set(err, -EPERM, "pid %d: not traced: it is diagnosed itself", (int)pid);
	if (diag_proc_stat_field(pid, 9, flags, sizeof(flags)) == 0 &&
	    (strtoul(flags, NULL, 10) & 0x00200000u)) /* PF_KTHREAD */
		return diag_error_set(err, -EPERM,
				      "pid %d: not traced: a kernel thread (no user code to probe)", (int)pid);
	unsigned long long tracer = 0;
	if (diag_proc_status_field(pid, "TracerPid", 10, &tracer) && tracer &&
	    (pid_t)tracer != getpid()) {
		char comm[32];
		diag_proc_read_small((pid_t)tracer, "comm", comm, sizeof(comm));
		comm[strcspn(comm, "\n")] = '\0';
		return diag_error_set(err, -EBUSY,
				      "pid %d: not traced: already traced by pid %llu (%s); a process "
				      "has one tracer at a time", (int)pid, tracer, comm[0] ? comm : "?");
	}
	return 0;
}

/* Records of ms that hold a process now (applied or pending), or that tried (error): what the
 * per-spec limit counts. */
static size_t sel_holding(const struct dmn_mspec *ms, bool with_errors)
{
	size_t n = 0;
	for (size_t i = 0; i < ms->spec->napplied; i++) {
		const struct diag_applied *a = &ms->spec->applied[i];
		n += a->pid > 0 && (live_state(a->state) ||
				    (with_errors && a->state == DIAG_APPLIED_ERROR && !diag_proc_gone(a->pid)));
	}
	return n;
}

/* The spec's own record "HOST:select" says what the selector is waiting for (no process yet:
 * pending), or what it could not do (its file is missing, the limit turned processes away:
 * error); it is dropped while the selector covers processes with nothing to say. */
static void sel_summary(struct dmn_manager *m, struct dmn_mspec *ms)
{
	char key[sizeof(((struct diag_applied *)0)->key)], what[200];
	snprintf(key, sizeof(key), "%s:select", m->host);
	diag_spec_select_text(ms->spec, what, sizeof(what));
	size_t held = sel_holding(ms, false);
	struct diag_spec *s = ms->spec;
	if (held && !ms->refused && !ms->sel_error[0]) {
		for (size_t i = 0; i < s->napplied; i++)
			if (strcmp(s->applied[i].key, key) == 0) {
				memmove(&s->applied[i], &s->applied[i + 1],
					(s->napplied - i - 1) * sizeof(s->applied[0]));
				s->napplied--;
				break;
			}
		return;
	}
	struct diag_applied *a = diag_spec_applied_get(s, key, 0);
	if (!a)
		return;
	a->lm_ns = s->lastmodified_ns;
	a->processes = held;
	a->state = ms->expired ? DIAG_APPLIED_EXPIRED : ms->sel_error[0] || ms->refused
		   ? DIAG_APPLIED_ERROR : DIAG_APPLIED_PENDING;
	if (ms->sel_error[0])
		snprintf(a->error, sizeof(a->error), "%s", ms->sel_error);
	else if (ms->refused)
		snprintf(a->error, sizeof(a->error),
			 "select %s: %zu more matching process%s not taken: the limit is %zu processes "
			 "per spec (diagnosed --max-processes-per-spec); narrow the selector", what,
			 ms->refused, ms->refused == 1 ? "" : "es", m->spec_procs_max);
	else
		snprintf(a->error, sizeof(a->error),
			 "select %s: no process matches yet; each one is probed as it starts", what);
}

/* Trace pid for a selector: the checks of an explicit attach, and the reasons a process cannot
 * be traced named first. */
static int attach_selected(struct dmn_manager *m, pid_t pid, struct diag_error *err)
{
	int r = untraceable(pid, err);
	if (r < 0)
		return r;
	if (diag_engine_attached(m->engine, pid)) /* attached already: explicitly, or a fork */
		return 0;
	if ((r = dmn_manager_attach_process(m, pid, err)) < 0)
		return r;
	selected_add(m, pid);
	/* as an attach: specs with neither pid nor select follow every traced process */
	for (size_t i = 0; i < m->nspecs; i++) {
		struct dmn_mspec *o = m->specs[i];
		if (!o->spec->npids && !o->sel && !diag_spec_has_select(o->spec) && !o->expired)
			apply_pid(m, o, pid);
	}
	return 0;
}

/* ms takes pid (it matched): traced and probed, or its record says why not. */
static void sel_take(struct dmn_manager *m, struct dmn_mspec *ms, pid_t pid)
{
	struct diag_applied *a = record_find(ms, pid);
	if ((a && live_state(a->state) && diag_engine_attached(m->engine, pid)) ||
	    pidset_has(&m->by_hand, pid))
		return;
	if (!a && sel_holding(ms, true) >= m->spec_procs_max) {
		ms->refused++;
		return;
	}
	struct diag_error e = { 0 };
	int r = attach_selected(m, pid, &e);
	if (r < 0) {
		if (!(a = record(m, ms, pid)))
			return;
		a->lm_ns = ms->spec->lastmodified_ns;
		a->state = DIAG_APPLIED_ERROR;
		a->naddrs = 0;
		snprintf(a->error, sizeof(a->error), "%s", e.msg[0] ? e.msg : diag_strerror(r));
		return;
	}
	apply_pid(m, ms, pid);
}

/* Whether some spec wants pid traced: a pid list naming it, or a selector holding it. */
static bool wanted(const struct dmn_manager *m, pid_t pid)
{
	for (size_t i = 0; i < m->nspecs; i++) {
		const struct dmn_mspec *ms = m->specs[i];
		if (ms->expired)
			continue;
		for (size_t k = 0; k < ms->spec->npids && !ms->sel; k++)
			if (ms->spec->pids[k] == pid)
				return true;
		const struct diag_applied *a = record_find((struct dmn_mspec *)ms, pid);
		if (ms->sel && a && live_state(a->state))
			return true;
	}
	return false;
}

/* A process a selector took that no spec holds any more is let go, bytes restored. */
static void release_unwanted(struct dmn_manager *m, pid_t pid)
{
	if (!dmn_manager_selected(m, pid) || wanted(m, pid))
		return;
	struct diag_error e = { 0 };
	selected_del(m, pid);
	if (diag_engine_attached(m->engine, pid) && diag_engine_detach(m->engine, pid, &e) < 0)
		dmn_log("pid %d: detach: %s", (int)pid, e.msg);
	for (size_t i = 0; i < m->nspecs; i++) {
		struct diag_applied *a = record_find(m->specs[i], pid);
		if (a && live_state(a->state)) {
			a->state = DIAG_APPLIED_REMOVED;
			a->naddrs = 0;
			snprintf(a->error, sizeof(a->error),
				 "pid %d detached: no selector takes it any more", (int)pid);
		}
	}
}

/* ms no longer takes pid (an exec into another program, a new name): its probe goes. */
static void sel_drop(struct dmn_manager *m, struct dmn_mspec *ms, pid_t pid, const char *why)
{
	struct diag_applied *a = record_find(ms, pid);
	if (!a || !live_state(a->state))
		return;
	diag_engine_probe_remove(m->engine, pid, ms);
	a->state = DIAG_APPLIED_REMOVED;
	a->naddrs = 0;
	snprintf(a->error, sizeof(a->error), "no longer selected: %.480s", why);
}

/* pid against one selector spec: taken, dropped, or left. */
static void sel_check(struct dmn_manager *m, struct dmn_mspec *ms, pid_t pid)
{
	if (ms->expired || !ms->sel)
		return;
	bool listed = !ms->spec->npids;
	for (size_t k = 0; k < ms->spec->npids && !listed; k++)
		listed = ms->spec->pids[k] == pid;
	struct diag_error e = { 0 };
	int r = listed ? sel_match(m, ms, pid, &e) : 0;
	if (r == 1)
		sel_take(m, ms, pid);
	else if (r == 0 && listed)
		sel_drop(m, ms, pid, e.msg);
}

void dmn_manager_select_pid(struct dmn_manager *m, pid_t pid, bool adopted)
{
	if (adopted)
		selected_add(m, pid);
	for (size_t i = 0; i < m->nspecs; i++) {
		struct dmn_mspec *ms = m->specs[i];
		size_t refused = ms->refused;
		if (!ms->sel)
			continue;
		sel_check(m, ms, pid);
		if (record_find(ms, pid) || ms->refused != refused)
			sel_summary(m, ms);
	}
	if (adopted)
		recheck_later(m, pid); /* detached then if nothing took it: it is held now */
	else
		release_unwanted(m, pid);
}

/* A selector spec this daemon runs: live, and its `hosts` (issue 12) take this host. */
static bool sel_runs_here(const struct dmn_manager *m, const struct dmn_mspec *ms)
{
	return !ms->expired && diag_spec_has_select(ms->spec) &&
	       diag_spec_selects_host(ms->spec, m->host);
}

/* Every process of /proc (or of the spec's pid list) against ms. */
static void sel_scan(struct dmn_manager *m, struct dmn_mspec *ms)
{
	ms->refused = 0;
	if (!sel_refresh(ms)) {
		sel_summary(m, ms);
		return;
	}
	if (ms->spec->npids) {
		for (size_t i = 0; i < ms->spec->npids; i++)
			sel_check(m, ms, ms->spec->pids[i]);
	} else {
		DIR *d = opendir("/proc");
		for (struct dirent *e; d && (e = readdir(d));) {
			if (!isdigit((unsigned char)e->d_name[0]))
				continue;
			pid_t pid = (pid_t)strtol(e->d_name, NULL, 10);
			if (pid > 0)
				sel_check(m, ms, pid);
		}
		if (d)
			closedir(d);
	}
	/* a record the store kept for a process that is gone */
	for (size_t i = 0; i < ms->spec->napplied; i++) {
		struct diag_applied *a = &ms->spec->applied[i];
		if (a->pid > 0 && live_state(a->state) && !diag_engine_attached(m->engine, a->pid)) {
			a->state = diag_proc_gone(a->pid) ? DIAG_APPLIED_EXITED : DIAG_APPLIED_REMOVED;
			a->naddrs = 0;
			snprintf(a->error, sizeof(a->error), "process %d %s", (int)a->pid,
				 a->state == DIAG_APPLIED_EXITED ? "exited" : "is not traced any more");
		}
	}
	sel_summary(m, ms);
}

void dmn_manager_rescan(struct dmn_manager *m)
{
	for (size_t i = 0; i < m->nspecs; i++)
		if (sel_runs_here(m, m->specs[i]))
			sel_scan(m, m->specs[i]);
}

bool dmn_manager_has_selectors(const struct dmn_manager *m)
{
	for (size_t i = 0; i < m->nspecs; i++)
		if (sel_runs_here(m, m->specs[i]))
			return true;
	return false;
}

static size_t exe_paths(const struct dmn_manager *m, bool libs, const char **out, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < m->nspecs && n < cap; i++) {
		const char *exe = m->specs[i]->spec->select.exe;
		if (sel_runs_here(m, m->specs[i]) && exe && diag_spec_path_is_library(exe) == libs)
			out[n++] = exe;
	}
	return n;
}

size_t dmn_manager_gate_paths(const struct dmn_manager *m, const char **out, size_t cap)
{
	return exe_paths(m, false, out, cap);
}

size_t dmn_manager_lib_paths(const struct dmn_manager *m, const char **out, size_t cap)
{
	return exe_paths(m, true, out, cap);
}

void dmn_manager_select_opening(struct dmn_manager *m, pid_t pid, uint64_t dev, uint64_t ino,
				bool adopted)
{
	m->opening.pid = pid;
	m->opening.dev = dev;
	m->opening.ino = ino;
	dmn_manager_select_pid(m, pid, adopted);
	m->opening.pid = 0;
}

bool dmn_manager_lib_wants(struct dmn_manager *m, pid_t pid, uint64_t dev, uint64_t ino)
{
	bool want = false;
	m->opening.pid = pid;
	m->opening.dev = dev;
	m->opening.ino = ino;
	for (size_t i = 0; i < m->nspecs && !want && !pidset_has(&m->by_hand, pid); i++) {
		struct dmn_mspec *ms = m->specs[i];
		if (!sel_runs_here(m, ms) || !ms->sel || !opening_lib(m, ms, pid))
			continue;
		struct diag_probe_info info;
		if (diag_engine_probe_info(m->engine, pid, ms, &info) == 0)
			continue; /* its probe is there: the dynamic linker's watch places it */
		bool listed = !ms->spec->npids;
		for (size_t k = 0; k < ms->spec->npids && !listed; k++)
			listed = ms->spec->pids[k] == pid;
		struct diag_error e = { 0 };
		want = listed && (record_find(ms, pid) || sel_holding(ms, true) < m->spec_procs_max) &&
		       sel_match(m, ms, pid, &e) == 1;
	}
	m->opening.pid = 0;
	return want;
}

/* The ticks' share: processes the engine saw exec, then the rescan an overflow asked for. */
static void sel_tick(struct dmn_manager *m)
{
	size_t n = m->nrecheck;
	pid_t pids[DMN_MANAGER_RECHECK_MAX];
	memcpy(pids, m->recheck, n * sizeof(pids[0]));
	m->nrecheck = 0;
	for (size_t i = 0; i < n; i++) {
		if (diag_proc_gone(pids[i]))
			continue;
		for (size_t k = 0; k < m->nspecs; k++) {
			struct diag_applied *a = record_find(m->specs[k], pids[i]);
			if (a && live_state(a->state))
				refresh_record(m, m->specs[k], a);
		}
		dmn_manager_select_pid(m, pids[i], false);
	}
	if (m->rescan_due) {
		m->rescan_due = false;
		dmn_manager_rescan(m);
	}
}

static void apply(struct dmn_manager *m, struct dmn_mspec *ms)
{
	if (!diag_spec_selects_host(ms->spec, m->host))
		return; /* held (list shows it), applied by the hosts it names */
	if (diag_spec_has_select(ms->spec)) {
		sel_target(ms);
		/* the gates first (the identity is the file's now): what starts from here on
		 * waits at them, and the scan takes what runs already */
		if (sel_refresh(ms))
			select_changed(m);
		sel_scan(m, ms);
		if (!ms->sel)
			select_changed(m);
		return;
	}
	if (ms->spec->npids) {
		for (size_t i = 0; i < ms->spec->npids; i++)
			apply_pid(m, ms, ms->spec->pids[i]);
		return;
	}
	pid_t pids[DMN_MANAGER_TARGETS_MAX];
	size_t n = diag_engine_pids(m->engine, pids, DMN_MANAGER_TARGETS_MAX);
	for (size_t i = 0; i < n && i < DMN_MANAGER_TARGETS_MAX; i++)
		apply_pid(m, ms, pids[i]);
}

static void make_instrument(struct dmn_manager *m, struct dmn_mspec *ms)
{
	struct diag_error e = { 0 };
	struct diag_spec *s = ms->spec;
	if (diag_instrument_new(m->plugins, s->type, s->id, s->name, s->custom, &ms->inst, &e) < 0)
		snprintf(ms->inst_error, sizeof(ms->inst_error), "%s", e.msg);
}

static void gen_id(struct dmn_manager *m, struct diag_spec *s)
{
	do
		snprintf(s->id, sizeof(s->id), "p%u", ++m->next_id);
	while (dmn_manager_find(m, s->id));
}

struct dmn_mspec *dmn_manager_find(struct dmn_manager *m, const char *id)
{
	for (size_t i = 0; i < m->nspecs; i++)
		if (strcmp(m->specs[i]->spec->id, id) == 0)
			return m->specs[i];
	return NULL;
}

static size_t index_of(const struct dmn_manager *m, const struct dmn_mspec *ms)
{
	size_t i = 0;
	while (i < m->nspecs && m->specs[i] != ms)
		i++;
	return i;
}

/* Install ms in the list (replacing old, whose probes are removed first). */
static int install(struct dmn_manager *m, struct dmn_mspec *ms, struct dmn_mspec *old)
{
	if (old) {
		unapply(m, old, DIAG_APPLIED_REMOVED);
		m->specs[index_of(m, old)] = ms;
		mspec_free(m, old);
		return 0;
	}
	if (DIAG_GROW(&m->specs, &m->cap, m->nspecs + 1) < 0)
		return -ENOMEM;
	m->specs[m->nspecs++] = ms;
	return 0;
}

static int add_internal(struct dmn_manager *m, struct diag_spec *s, bool fresh,
			struct dmn_mspec **out, struct diag_error *err)
{
	if (!s->id[0])
		gen_id(m, s);
	struct dmn_mspec *old = dmn_manager_find(m, s->id);
	if (!old && m->nspecs >= DIAG_SPEC_MAX) {
		int r = diag_error_set(err, -DIAG_E_LIMIT, "spec '%s': limit of %d specs reached",
				       s->id, DIAG_SPEC_MAX);
		diag_spec_free(s);
		return r;
	}
	struct dmn_mspec *ms = calloc(1, sizeof(*ms));
	if (!ms || install(m, ms, old) < 0) {
		free(ms);
		diag_spec_free(s);
		return diag_error_set(err, -ENOMEM, "out of memory");
	}
	ms->spec = s;
	if (fresh) {
		s->lastmodified_ns = diag_clock_wall_ns();
		free(s->applied); /* input `applied` is output only */
		s->applied = NULL;
		s->napplied = s->applied_cap = 0;
	}
	int64_t exp = diag_spec_expiry_ns(s);
	if (exp && exp <= diag_clock_wall_ns()) {
		ms->expired = true;
		for (size_t i = 0; i < s->napplied; i++)
			if (s->applied[i].state == DIAG_APPLIED_APPLIED ||
			    s->applied[i].state == DIAG_APPLIED_PENDING)
				s->applied[i].state = DIAG_APPLIED_EXPIRED;
	} else {
		make_instrument(m, ms);
		apply(m, ms);
	}
	if (out)
		*out = ms;
	return 0;
}

/* Take a spec that could not be stored back out: an add that failed must not run. */
static void drop(struct dmn_manager *m, struct dmn_mspec *ms)
{
	unapply(m, ms, DIAG_APPLIED_REMOVED);
	size_t i = index_of(m, ms);
	memmove(&m->specs[i], &m->specs[i + 1], (m->nspecs - i - 1) * sizeof(m->specs[0]));
	m->nspecs--;
	mspec_free(m, ms);
}

int dmn_manager_add(struct dmn_manager *m, struct diag_spec *s, struct dmn_mspec **out,
		     struct diag_error *err)
{
	bool fresh = !s->id[0] || !dmn_manager_find(m, s->id);
	struct dmn_mspec *ms = NULL;
	int r = add_internal(m, s, true, &ms, err);
	if (r < 0)
		return r;
	if ((r = dmn_manager_save(m, err)) < 0) {
		/* A replaced spec's old version is gone already: the new one stays (and the
		 * next successful save stores it); a new one is taken back out. */
		if (fresh)
			drop(m, ms);
		return r;
	}
	if (out)
		*out = ms;
	return 0;
}

void dmn_manager_load(struct dmn_manager *m)
{
	struct diag_spec **v = NULL;
	struct diag_error err = { 0 };
	int n = diag_store_load(m->store, &v, &err);
	if (n < 0) { /* also in status, until the operator has looked */
		dmn_log("WARNING: %s", err.msg);
		return;
	}
	for (int i = 0; i < n; i++) {
		if (dmn_manager_find(m, v[i]->id)) {
			dmn_log("store: spec '%s' appears twice; keeping the first", v[i]->id);
			diag_spec_free(v[i]);
		} else if (add_internal(m, v[i], false, NULL, &err) < 0) {
			dmn_log("%s", err.msg);
		}
	}
	free(v);
	m->fold_due = true; /* a store written before the bound may hold thousands */
	if (n > 0 && dmn_manager_save(m, &err) < 0)
		dmn_log("%s", err.msg);
}

int dmn_manager_remove(struct dmn_manager *m, const char *id, struct diag_error *err)
{
	struct dmn_mspec *ms = dmn_manager_find(m, id);
	if (!ms)
		return diag_error_set(err, -ENOENT, "id: no probe '%s'", id);
	drop(m, ms);
	return dmn_manager_save(m, err);
}

int dmn_manager_adopt(struct dmn_manager *m, struct diag_spec *s, uint64_t version,
		      struct diag_error *err)
{
	free(s->applied); /* the store's records are every host's; this host starts its own */
	s->applied = NULL;
	s->napplied = s->applied_cap = 0;
	struct dmn_mspec *ms = NULL;
	int r = add_internal(m, s, false, &ms, err);
	if (r == 0)
		ms->store_version = version;
	return r;
}

int dmn_manager_attach(struct dmn_manager *m, pid_t pid, struct diag_error *err)
{
	pidset_del(&m->by_hand, pid);
	if (diag_engine_attached(m->engine, pid)) {
		selected_del(m, pid); /* asked for by name now: kept whatever the selectors say */
		return 0;
	}
	int r = dmn_manager_attach_process(m, pid, err);
	if (r < 0)
		return r;
	/* Specs without a pid list follow every attached process; selectors take it if they
	 * match (it is explicit now: never detached by them). */
	for (size_t i = 0; i < m->nspecs; i++)
		if (!m->specs[i]->spec->npids && !m->specs[i]->expired &&
		    !diag_spec_has_select(m->specs[i]->spec) &&
		    diag_spec_selects_host(m->specs[i]->spec, m->host))
			apply_pid(m, m->specs[i], pid);
	dmn_manager_select_pid(m, pid, false);
	return dmn_manager_save(m, err);
}

int dmn_manager_detach(struct dmn_manager *m, pid_t pid, struct diag_error *err)
{
	if (!diag_engine_attached(m->engine, pid))
		return diag_error_set(err, -ENOENT, "pid: process %d is not attached", (int)pid);
	int r = diag_engine_detach(m->engine, pid, err);
	if (r < 0)
		return r;
	selected_del(m, pid);
	for (size_t i = 0; i < m->nspecs; i++) {
		struct diag_applied *a = record_find(m->specs[i], pid);
		if (a && (a->state == DIAG_APPLIED_APPLIED || a->state == DIAG_APPLIED_PENDING)) {
			a->state = DIAG_APPLIED_REMOVED;
			a->naddrs = 0;
			/* a selector would take it again at the next scan: not until an attach */
			if (m->specs[i]->sel) {
				pidset_add(&m->by_hand, pid);
				snprintf(a->error, sizeof(a->error),
					 "detached by hand: selectors leave pid %d alone until it is "
					 "attached again", (int)pid);
			}
		}
	}
	return dmn_manager_save(m, err);
}

void dmn_manager_on_hit(struct dmn_manager *m, dmn_hit_fn fn, void *ctx)
{
	m->on_hit = fn;
	m->on_hit_ctx = ctx;
}

void dmn_manager_disable(struct dmn_manager *m, struct dmn_mspec *ms, pid_t pid,
			  const char *why)
{
	struct diag_applied *a = record_find(ms, pid);
	if (!a || a->state != DIAG_APPLIED_APPLIED)
		return;
	m->disables++;
	diag_engine_probe_remove(m->engine, pid, ms);
	a->state = DIAG_APPLIED_DISABLED;
	a->naddrs = 0;
	snprintf(a->error, sizeof(a->error), "%s", why);
	dmn_log("spec '%s': pid %d: %s", ms->spec->id, (int)pid, why);
	struct diag_error err = { 0 };
	if (dmn_manager_save(m, &err) < 0)
		dmn_log("%s", err.msg);
}

void dmn_manager_flush(struct dmn_manager *m)
{
	if (m->queue)
		diag_event_queue_flush(m->queue);
}

int64_t dmn_manager_tick(struct dmn_manager *m, int64_t now_ns)
{
	int64_t next = 0;
	bool changed = false;
	sel_tick(m);
	if (m->fold_due) {
		m->fold_due = false;
		for (size_t i = 0; i < m->nspecs; i++) {
			fold_exited(m, m->specs[i]->spec);
			if (m->specs[i]->sel) /* its last process gone: pending again */
				sel_summary(m, m->specs[i]);
		}
	}
	for (size_t i = 0; i < m->nspecs; i++) {
		struct dmn_mspec *ms = m->specs[i];
		int64_t exp = diag_spec_expiry_ns(ms->spec);
		if (!exp || ms->expired)
			continue;
		if (exp <= now_ns) {
			unapply(m, ms, DIAG_APPLIED_EXPIRED);
			ms->expired = true;
			changed = true;
		} else if (!next || exp < next) {
			next = exp;
		}
	}
	struct diag_error err = { 0 };
	if (changed && dmn_manager_save(m, &err) < 0)
		dmn_log("%s", err.msg);
	return next;
}

size_t dmn_manager_count_live(const struct dmn_manager *m)
{
	size_t n = 0;
	for (size_t i = 0; i < m->nspecs; i++)
		for (size_t j = 0; j < m->specs[i]->spec->napplied; j++) {
			enum diag_applied_state st = m->specs[i]->spec->applied[j].state;
			n += st == DIAG_APPLIED_APPLIED || st == DIAG_APPLIED_PENDING;
		}
	return n;
}

cJSON *dmn_manager_spec_json(const struct dmn_manager *m, const struct dmn_mspec *ms)
{
	(void)m;
	cJSON *o = diag_spec_to_json(ms->spec, DIAG_SPEC_JSON_APPLIED, diag_clock_wall_ns());
	/* how many processes the spec covers now (applied or pending in them) */
	if (o)
		cJSON_AddNumberToObject(o, "processes", (double)sel_holding(ms, false));
	return o;
}

/* Why pid is traced: the specs whose selector took it, else an explicit attach (attach, --pid,
 * a pid list) or a fork of a traced process. */
static cJSON *why_traced(const struct dmn_manager *m, pid_t pid)
{
	cJSON *arr = cJSON_CreateArray();
	for (size_t i = 0; arr && i < m->nspecs; i++) {
		const struct dmn_mspec *ms = m->specs[i];
		const struct diag_applied *a = record_find((struct dmn_mspec *)ms, pid);
		if (!ms->sel || !a || !live_state(a->state))
			continue;
		char what[600], line[700];
		diag_spec_select_text(ms->spec, what, sizeof(what));
		snprintf(line, sizeof(line), "spec %s: select %s", ms->spec->id, what);
		cJSON_AddItemToArray(arr, cJSON_CreateString(line));
	}
	if (arr && !cJSON_GetArraySize(arr))
		cJSON_AddItemToArray(arr, cJSON_CreateString(
			dmn_manager_selected(m, pid) ? "selected earlier; held by no spec now"
						     : "attach, --pid, a spec's pid list, or a fork of a traced process"));
	return arr;
}

/* pid's sub-rings that have a thread or a drop: where a full ring lost hits, and whether two
 * busy threads shared one. */
static cJSON *ring_subs_json(const struct dmn_manager *m, pid_t pid)
{
	struct diag_engine_ring_sub subs[DIAG_ENGINE_RING_SUBS_MAX];
	size_t n = diag_engine_ring_subs(m->engine, pid, subs, DIAG_ENGINE_RING_SUBS_MAX);
	cJSON *arr = cJSON_CreateArray();
	for (size_t i = 0; arr && i < n; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "sub", subs[i].sub);
		cJSON_AddNumberToObject(o, "threads", subs[i].threads);
		cJSON_AddNumberToObject(o, "dropped", (double)subs[i].dropped);
		cJSON_AddItemToArray(arr, o);
	}
	return arr;
}

void dmn_manager_each_live(struct dmn_manager *m, dmn_live_fn fn, void *arg)
{
	for (size_t i = 0; i < m->nspecs; i++) {
		struct dmn_mspec *ms = m->specs[i];
		for (size_t j = 0; j < ms->spec->napplied; j++) {
			struct diag_applied *a = &ms->spec->applied[j];
			struct diag_probe_info info;
			if (a->state != DIAG_APPLIED_APPLIED ||
			    diag_engine_probe_info(m->engine, a->pid, ms, &info) < 0)
				continue;
			fn(arg, ms, a, &info);
		}
	}
}

static void refresh_one(void *arg, struct dmn_mspec *ms, struct diag_applied *a,
			const struct diag_probe_info *info)
{
	(void)arg;
	/* a return probe gains instances (and skips) after it is applied: its return sites,
	 * placed as its entries name their return addresses */
	a->naddrs = info->naddrs < DIAG_SPEC_ADDRS_MAX ? info->naddrs : DIAG_SPEC_ADDRS_MAX;
	memcpy(a->addrs, info->addrs, a->naddrs * sizeof(a->addrs[0]));
	instances_json(info, a->instances, sizeof(a->instances));
	count_hits(ms, a, info);
}

/* Fast-path hits are counted in the target (exact even when a full ring dropped their
 * events): bring each live record's hits and dropped up to date before they are shown. */
void dmn_manager_refresh_counts(struct dmn_manager *m)
{
	dmn_manager_each_live(m, refresh_one, NULL);
}

cJSON *dmn_manager_list_json(const struct dmn_manager *m)
{
	cJSON *arr = cJSON_CreateArray();
	for (size_t i = 0; arr && i < m->nspecs; i++)
		cJSON_AddItemToArray(arr, dmn_manager_spec_json(m, m->specs[i]));
	return arr;
}

static cJSON *stats_one(struct dmn_mspec *ms)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "id", ms->spec->id);
	cJSON_AddStringToObject(o, "type", ms->spec->type);
	cJSON_AddStringToObject(o, "name", ms->spec->name);
	cJSON_AddNumberToObject(o, "hits", (double)ms->hits);
	cJSON_AddNumberToObject(o, "dropped", (double)ms->dropped);
	char *rep = ms->inst ? diag_instrument_report(ms->inst) : NULL;
	cJSON *r = rep ? cJSON_Parse(rep) : NULL;
	free(rep);
	cJSON_AddItemToObject(o, "report", r ? r : cJSON_CreateNull());
	if (!ms->inst)
		cJSON_AddStringToObject(o, "error", ms->inst_error[0] ? ms->inst_error : "expired");
	return o;
}

cJSON *dmn_manager_stats_json(struct dmn_manager *m, const char *id, bool drain,
			      struct diag_error *err)
{
	if (id && !dmn_manager_find(m, id)) {
		diag_error_set(err, -ENOENT, "id: no probe '%s'", id);
		return NULL;
	}
	if (drain)
		diag_event_queue_drain(m->queue);
	cJSON *arr = cJSON_CreateArray();
	for (size_t i = 0; arr && i < m->nspecs; i++)
		if (!id || strcmp(id, m->specs[i]->spec->id) == 0)
			cJSON_AddItemToArray(arr, stats_one(m->specs[i]));
	return arr;
}

static int count_threads(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	int n = 0;
	for (struct dirent *e; d && (e = readdir(d));)
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

cJSON *dmn_manager_status_json(struct dmn_manager *m)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddBoolToObject(o, "ok", 1);
	cJSON_AddNumberToObject(o, "pid", getpid());
	if (m->gates_json)
		cJSON_AddItemToObject(o, "gates", m->gates_json(m->on_select_ctx));
	cJSON *t = cJSON_AddArrayToObject(o, "targets");
	pid_t pids[1024];
	size_t n = diag_engine_pids(m->engine, pids, 1024);
	for (size_t i = 0; i < n && i < 1024; i++) {
		cJSON *e = cJSON_CreateObject();
		cJSON_AddNumberToObject(e, "pid", pids[i]);
		cJSON_AddNumberToObject(e, "threads", count_threads(pids[i]));
		cJSON_AddItemToObject(e, "why", why_traced(m, pids[i]));
		cJSON_AddStringToObject(e, "ring", diag_engine_ring_kind(m->engine, pids[i]));
		cJSON_AddItemToObject(e, "ring_subs", ring_subs_json(m, pids[i]));
		cJSON_AddItemToArray(t, e);
	}
	struct diag_engine_stats es;
	diag_engine_get_stats(m->engine, &es);
	cJSON_AddNumberToObject(o, "specs", (double)m->nspecs);
	cJSON_AddNumberToObject(o, "probes", (double)es.probes);
	cJSON_AddNumberToObject(o, "hits", (double)m->hits);
	cJSON *gov = cJSON_AddObjectToObject(o, "governor");
	cJSON_AddNumberToObject(gov, "disables", (double)m->disables);
	cJSON_AddNumberToObject(gov, "stopped_seconds", (double)es.stopped_ns / 1e9);
	struct diag_queue_stats qs;
	diag_event_queue_get_stats(m->queue, &qs);
	cJSON *q = cJSON_AddObjectToObject(o, "queue");
	cJSON_AddNumberToObject(q, "length", (double)qs.length);
	cJSON_AddNumberToObject(q, "bytes", (double)qs.bytes);
	cJSON_AddNumberToObject(q, "capacity", (double)qs.capacity);
	cJSON_AddNumberToObject(q, "pushed", (double)qs.pushed);
	cJSON_AddNumberToObject(q, "fired", (double)qs.fired);
	cJSON_AddNumberToObject(q, "batches", (double)qs.batches);
	cJSON_AddNumberToObject(q, "dropped", (double)qs.dropped);
	/* every place an event can be lost, since the daemon started: full rings in the targets,
	 * the full queue; the server adds its tail clients' */
	cJSON *d = cJSON_AddObjectToObject(o, "dropped");
	cJSON_AddNumberToObject(d, "ring", (double)es.dropped);
	cJSON_AddNumberToObject(d, "queue", (double)qs.dropped);
	cJSON *dr = cJSON_AddObjectToObject(o, "drain");
	cJSON_AddNumberToObject(dr, "period_us", (double)es.drain_period_ns / 1000);
	cJSON_AddNumberToObject(dr, "changes", (double)es.drain_changes);
	cJSON *st = cJSON_AddObjectToObject(o, "store");
	const char *path = m->store ? diag_store_path(m->store) : NULL;
	const char *problem = m->store ? diag_store_problem(m->store) : NULL;
	if (path)
		cJSON_AddStringToObject(st, "path", path);
	else
		cJSON_AddNullToObject(st, "path");
	if (m->shared.url[0]) { /* the shared store: where, whether it answers, what it holds that we could not read */
		problem = m->shared.connected ? NULL : m->shared.error[0] ? m->shared.error : "not connected yet";
		cJSON_AddStringToObject(st, "url", m->shared.url);
		cJSON_AddStringToObject(st, "host", m->host);
		cJSON_AddBoolToObject(st, "connected", m->shared.connected);
		if (m->shared.problems)
			cJSON_AddStringToObject(st, "problems", m->shared.problems);
	}
	if (problem)
		cJSON_AddStringToObject(st, "error", problem);
	else
		cJSON_AddNullToObject(st, "error");
	return o;
}
