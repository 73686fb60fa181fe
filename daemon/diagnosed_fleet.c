/* diagnosed_fleet: the shared store's sync (the contract is in diagnosed_fleet.h). The thread
 * half (session, thread_main) owns the Redis connections and nothing of the manager; the main
 * half (dmn_fleet_run, dmn_fleet_tick) owns the manager's side and no connection. They meet in
 * struct shared, under one mutex held only to move a list or a map. */
#include "diagnosed_fleet.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "store/fleet.h"
#include "util/clock.h"

#define FLEET_TIMEOUT_MS 2000       /* each Redis call; also how long a stop may wait */
#define FLEET_BACKOFF_MIN_MS 100    /* reconnect: 100 ms doubling to 5 s, each wait jittered
                                     * within its upper half */
#define FLEET_BACKOFF_MAX_MS 5000
#define FLEET_PASS_NS 250000000LL   /* how often changed records are handed to the thread */
#define FLEET_WRITE_BATCH 512       /* records per pipelined round trip */
#define FLEET_PROBLEM_MAX 4000      /* bytes of problem lines kept and shown (status, hosts) */

/* A string-keyed map (separate chaining), for both halves' record tables. */
struct kv {
	char *key;      /* "ID\tHOST:PID" */
	char *json;     /* pending: the record, NULL to delete the field */
	uint64_t ident; /* sent: hash of everything but the counts */
	uint64_t hits, dropped;
	int64_t sent_ns;
	unsigned gen;
	struct kv *next;
};
struct map {
	struct kv **b;
	size_t nb, n;
};

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ c[i]) * 1099511628211ULL;
	return h;
}

static uint64_t hash_str(const char *s)
{
	return fnv(1469598103934665603ULL, s, strlen(s));
}

static struct kv *map_find(const struct map *m, const char *key)
{
	if (!m->nb)
		return NULL;
	for (struct kv *e = m->b[hash_str(key) % m->nb]; e; e = e->next)
		if (!strcmp(e->key, key))
			return e;
	return NULL;
}

static void kv_free(struct kv *e)
{
	free(e->key);
	free(e->json);
	free(e);
}

static int map_grow(struct map *m)
{
	size_t nb = m->nb ? m->nb * 2 : 64;
	struct kv **b = calloc(nb, sizeof(*b));
	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < m->nb; i++)
		for (struct kv *e = m->b[i], *nx; e; e = nx) {
			nx = e->next;
			size_t h = hash_str(e->key) % nb;
			e->next = b[h];
			b[h] = e;
		}
	free(m->b);
	m->b = b;
	m->nb = nb;
	return 0;
}

/* The entry for key, created (zeroed) when absent; NULL when out of memory. */
static struct kv *map_get(struct map *m, const char *key)
{
	struct kv *e = map_find(m, key);
	if (e)
		return e;
	if (m->n >= m->nb && map_grow(m) < 0)
		return NULL;
	if (!(e = calloc(1, sizeof(*e))) || !(e->key = strdup(key))) {
		free(e);
		return NULL;
	}
	size_t h = hash_str(key) % m->nb;
	e->next = m->b[h];
	m->b[h] = e;
	m->n++;
	return e;
}

static void map_clear(struct map *m)
{
	for (size_t i = 0; i < m->nb; i++)
		for (struct kv *e = m->b[i], *nx; e; e = nx) {
			nx = e->next;
			kv_free(e);
		}
	free(m->b);
	memset(m, 0, sizeof(*m));
}

/* What the thread posts to the main loop. */
enum post_kind { POST_ALL, POST_ONE, POST_GONE, POST_STATE };
struct post {
	enum post_kind kind;
	struct diag_fleet_entry *v; /* ALL: the whole set; ONE: one entry */
	size_t n;
	char id[DIAG_SPEC_ID_MAX + 1];
	bool connected;
	char error[DIAG_ERRMSG_MAX];
	struct post *next;
};

struct shared {
	pthread_mutex_t mu;
	struct post *head, **tail; /* thread -> main */
	struct map pending;        /* main -> thread: records to write, the latest per key */
	int processes;             /* for the heartbeat */
	char problem[FLEET_PROBLEM_MAX];
	bool stop;
};

struct dmn_fleet {
	struct dmn_manager *m;
	char *url, *password, host[DIAG_SPEC_HOST_MAX + 1];
	int64_t beat_ns;
	int to_main, to_thread; /* eventfds */
	pthread_t thread;
	bool started;
	struct shared sh;
	/* thread half: the (version, lastmodified) of every spec as last posted (kv hits and
	 * sent_ns), so a reconnect reads the json only of what changed meanwhile */
	struct map known;
	/* main half */
	struct map sent;     /* what the thread was last handed, per record */
	unsigned gen;
	int64_t next_pass;
	struct map problems; /* id -> why its record does not parse (json) */
};

static void wake(int fd)
{
	uint64_t one = 1;
	ssize_t r = write(fd, &one, sizeof(one));
	(void)r; /* a full counter is a wake-up already pending */
}

static void drain_fd(int fd)
{
	uint64_t v;
	ssize_t r = read(fd, &v, sizeof(v));
	(void)r;
}

/* ---- the thread half ---- */

static bool stopping(struct dmn_fleet *f)
{
	pthread_mutex_lock(&f->sh.mu);
	bool s = f->sh.stop;
	pthread_mutex_unlock(&f->sh.mu);
	return s;
}

static void post(struct dmn_fleet *f, struct post *p)
{
	pthread_mutex_lock(&f->sh.mu);
	*f->sh.tail = p;
	f->sh.tail = &p->next;
	pthread_mutex_unlock(&f->sh.mu);
	wake(f->to_main);
}

static void post_state(struct dmn_fleet *f, bool connected, const char *error)
{
	struct post *p = calloc(1, sizeof(*p));
	if (!p)
		return;
	p->kind = POST_STATE;
	p->connected = connected;
	snprintf(p->error, sizeof(p->error), "%s", error);
	post(f, p);
}

static void known_set(struct dmn_fleet *f, const char *id, uint64_t version, int64_t lm)
{
	struct kv *e = map_get(&f->known, id);
	if (e) {
		e->hits = version;
		e->sent_ns = lm;
	}
}

static bool want_json(void *ctx, const char *id, uint64_t version, int64_t lm)
{
	const struct kv *e = map_find(&((struct dmn_fleet *)ctx)->known, id);
	return !e || e->hits != version || e->sent_ns != lm;
}

/* Read spec id again (a notification said it changed) and post what it is now. */
static int reread(struct dmn_fleet *f, struct diag_fleet *c, const char *id, struct diag_error *err)
{
	struct post *p = calloc(1, sizeof(*p));
	struct diag_fleet_entry *e = calloc(1, sizeof(*e));
	if (!p || !e) {
		free(p);
		free(e);
		return diag_error_set(err, -ENOMEM, "out of memory");
	}
	int r = diag_fleet_read_one(c, id, e, err);
	if (r < 0) {
		free(p);
		free(e);
		return r;
	}
	snprintf(p->id, sizeof(p->id), "%s", id);
	if (r == 0) {
		p->kind = POST_GONE;
		known_set(f, id, 0, -1); /* versions start at 1: never equal */
		free(e);
	} else {
		known_set(f, id, e->version, e->lastmodified_ns);
		p->kind = POST_ONE;
		p->v = e;
		p->n = 1;
	}
	post(f, p);
	return 0;
}

/* Records that could not be written go back to the pending map, unless a newer one for the
 * same key came meanwhile: the last known per key is written once the store answers again. */
static void put_back(struct dmn_fleet *f, struct map *m)
{
	pthread_mutex_lock(&f->sh.mu);
	for (size_t i = 0; i < m->nb; i++)
		for (struct kv *e = m->b[i]; e; e = e->next) {
			if (map_find(&f->sh.pending, e->key))
				continue;
			struct kv *n = map_get(&f->sh.pending, e->key);
			if (n) {
				n->json = e->json;
				e->json = NULL;
			}
		}
	pthread_mutex_unlock(&f->sh.mu);
}

/* One pipelined round trip; the keys ("ID\tHOST:PID") are split for it and restored. */
static int write_batch(struct diag_fleet *c, struct kv **v, size_t n, struct diag_error *err)
{
	struct diag_fleet_record rec[FLEET_WRITE_BATCH] = { { 0 } };
	for (size_t i = 0; i < n; i++) {
		char *tab = strchr(v[i]->key, '\t');
		*tab = '\0';
		rec[i] = (struct diag_fleet_record){ v[i]->key, tab + 1, v[i]->json };
	}
	int r = diag_fleet_write_records(c, rec, n, err);
	for (size_t i = 0; i < n; i++)
		v[i]->key[strlen(v[i]->key)] = '\t';
	return r;
}

/* Write what the main loop handed over; on a failure all of it goes back (writes are
 * idempotent: the latest record wins). */
static int flush_records(struct dmn_fleet *f, struct diag_fleet *c, struct diag_error *err)
{
	pthread_mutex_lock(&f->sh.mu);
	struct map m = f->sh.pending;
	memset(&f->sh.pending, 0, sizeof(f->sh.pending));
	pthread_mutex_unlock(&f->sh.mu);
	struct kv *batch[FLEET_WRITE_BATCH];
	size_t n = 0;
	int r = 0;
	for (size_t i = 0; i < m.nb && r == 0; i++)
		for (struct kv *e = m.b[i]; e && r == 0; e = e->next) {
			if (!strchr(e->key, '\t'))
				continue;
			batch[n++] = e;
			if (n == FLEET_WRITE_BATCH) {
				r = write_batch(c, batch, n, err);
				n = 0;
			}
		}
	if (r == 0 && n)
		r = write_batch(c, batch, n, err);
	if (r < 0)
		put_back(f, &m);
	map_clear(&m);
	return r;
}

static int heartbeat(struct dmn_fleet *f, struct diag_fleet *c, struct diag_error *err)
{
	char problem[FLEET_PROBLEM_MAX];
	pthread_mutex_lock(&f->sh.mu);
	int procs = f->sh.processes;
	memcpy(problem, f->sh.problem, sizeof(problem));
	pthread_mutex_unlock(&f->sh.mu);
	return diag_fleet_heartbeat(c, f->host, DIAG_VERSION, procs, problem, err);
}

/* Changes already buffered or readable now: each spec read again. */
static int take_changes(struct dmn_fleet *f, struct diag_fleet *sub, struct diag_fleet *c,
			bool readable, struct diag_error *err)
{
	char id[DIAG_SPEC_ID_MAX + 1];
	int r;
	while ((r = diag_fleet_next_change(sub, readable, id, sizeof(id), err)) > 0) {
		readable = false;
		if ((r = reread(f, c, id, err)) < 0)
			return r;
	}
	return r;
}

/* Serve one connection until it fails or the daemon stops. */
static int serve(struct dmn_fleet *f, struct diag_fleet *c, struct diag_fleet *sub,
		 struct diag_error *err)
{
	int64_t next_beat = 0;
	for (;;) {
		if (stopping(f)) /* the last records (this host stopped): written, bounded by the deadline */
			return flush_records(f, c, err);
		int r = flush_records(f, c, err);
		int64_t now = diag_clock_mono_ns();
		if (r == 0 && now >= next_beat) {
			r = heartbeat(f, c, err);
			next_beat = now + f->beat_ns;
		}
		if (r == 0)
			r = take_changes(f, sub, c, false, err);
		if (r < 0)
			return r;
		struct pollfd p[2] = { { .fd = diag_fleet_fd(sub), .events = POLLIN },
				       { .fd = f->to_thread, .events = POLLIN } };
		int wait_ms = (int)((next_beat - now) / 1000000) + 1;
		if (poll(p, 2, wait_ms) < 0 && errno != EINTR)
			return diag_error_set(err, -errno, "store thread: poll: %s", strerror(errno));
		if (p[1].revents)
			drain_fd(f->to_thread);
		if (p[0].revents && (r = take_changes(f, sub, c, true, err)) < 0)
			return r;
	}
}

/* One session: connect both connections, subscribe before reading the set (a change made in
 * between is then both in the set and notified: never lost), post the set, serve. Returns 1
 * when it got as far as the set (the backoff starts again), else 0. */
static int session(struct dmn_fleet *f, struct diag_error *err)
{
	struct diag_fleet *c = NULL, *sub = NULL;
	struct diag_fleet_entry *v = NULL;
	int n = diag_fleet_connect(f->url, f->password, FLEET_TIMEOUT_MS, &c, err);
	if (n == 0)
		n = diag_fleet_connect(f->url, f->password, FLEET_TIMEOUT_MS, &sub, err);
	char name[DIAG_SPEC_HOST_MAX + 32];
	snprintf(name, sizeof(name), "diagnosed:%s", f->host);
	if (n == 0)
		n = diag_fleet_set_name(c, name, err);
	snprintf(name, sizeof(name), "diagnosed:%s:sub", f->host);
	if (n == 0)
		n = diag_fleet_set_name(sub, name, err);
	if (n == 0)
		n = diag_fleet_subscribe(sub, err);
	if (n == 0)
		n = diag_fleet_read_all(c, want_json, f, &v, err);
	if (n >= 0) {
		map_clear(&f->known);
		for (int i = 0; i < n; i++)
			known_set(f, v[i].id, v[i].version, v[i].lastmodified_ns);
	}
	int got = 0;
	if (n >= 0) {
		struct post *p = calloc(1, sizeof(*p));
		if (p) {
			p->kind = POST_ALL;
			p->v = v;
			p->n = (size_t)n;
			post(f, p);
			post_state(f, true, "");
			got = 1;
			if (serve(f, c, sub, err) == 0)
				err->msg[0] = '\0';
		} else {
			diag_fleet_entries_free(v, (size_t)n);
			diag_error_set(err, -ENOMEM, "out of memory");
		}
	}
	diag_fleet_free(sub);
	diag_fleet_free(c);
	return got;
}

static void *thread_main(void *arg)
{
	struct dmn_fleet *f = arg;
	int backoff = FLEET_BACKOFF_MIN_MS;
	char last[DIAG_ERRMSG_MAX] = "";
	/* jitter: after a restart of Redis every host must not come back in the same instant */
	unsigned seed = (unsigned)diag_clock_mono_ns() ^ (unsigned)getpid() ^ (unsigned)hash_str(f->host);
	while (!stopping(f)) {
		struct diag_error err = { 0 };
		if (session(f, &err))
			backoff = FLEET_BACKOFF_MIN_MS;
		if (stopping(f))
			break;
		char why[DIAG_ERRMSG_MAX];
		snprintf(why, sizeof(why), "%.440s (retrying every %.1f s at most)",
			 err.msg[0] ? err.msg : "connection lost", FLEET_BACKOFF_MAX_MS / 1000.0);
		post_state(f, false, why);
		if (strcmp(last, err.msg)) /* one line per new reason, not one per retry */
			dmn_log("%s", why);
		snprintf(last, sizeof(last), "%s", err.msg);
		/* records handed over meanwhile wake the thread: they wait for the connection, and
		 * the backoff is not cut short (only a stop is) */
		int wait_ms = backoff / 2 + rand_r(&seed) % (backoff / 2 + 1); /* in [b/2, b] */
		int64_t until = diag_clock_mono_ns() + (int64_t)wait_ms * 1000000;
		for (int64_t now; !stopping(f) && (now = diag_clock_mono_ns()) < until;) {
			struct pollfd p = { .fd = f->to_thread, .events = POLLIN };
			if (poll(&p, 1, (int)((until - now) / 1000000) + 1) > 0)
				drain_fd(f->to_thread);
		}
		backoff = backoff * 2 > FLEET_BACKOFF_MAX_MS ? FLEET_BACKOFF_MAX_MS : backoff * 2;
	}
	return NULL;
}

/* ---- the main half ---- */

static void problems_publish(struct dmn_fleet *f)
{
	char buf[FLEET_PROBLEM_MAX];
	size_t at = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < f->problems.nb; i++)
		for (struct kv *e = f->problems.b[i]; e; e = e->next) {
			if (!e->json || !e->json[0])
				continue;
			int w = snprintf(buf + at, sizeof(buf) - at, "%s%s", at ? "\n" : "", e->json);
			if (w < 0 || (size_t)w >= sizeof(buf) - at)
				break;
			at += (size_t)w;
		}
	free(f->m->shared.problems);
	f->m->shared.problems = at ? strdup(buf) : NULL;
	pthread_mutex_lock(&f->sh.mu);
	memcpy(f->sh.problem, buf, sizeof(buf));
	pthread_mutex_unlock(&f->sh.mu);
}

static void problem_set(struct dmn_fleet *f, const char *id, const char *why)
{
	struct kv *e = map_find(&f->problems, id);
	if (!why) {
		if (e) {
			free(e->json);
			e->json = strdup(""); /* emptied: cleared when the map is rebuilt */
		}
		return;
	}
	if (!e && !(e = map_get(&f->problems, id)))
		return;
	if (!e->json || strcmp(e->json, why))
		dmn_log("store: %s (kept in the store, not applied)", why);
	free(e->json);
	e->json = strdup(why);
}

static void remove_spec(struct dmn_fleet *f, const char *id)
{
	struct dmn_mspec *ms = dmn_manager_find(f->m, id);
	struct diag_error err = { 0 };
	if (ms && ms->store_version && dmn_manager_remove(f->m, id, &err) < 0)
		dmn_log("%s", err.msg);
}

/* One stored spec: run it (new or changed), drop it (no longer selects this host), or keep
 * what runs (its record does not parse: reported, the held version goes on). */
static void take_entry(struct dmn_fleet *f, struct diag_fleet_entry *e)
{
	if (!e->spec) {
		problem_set(f, e->id, e->error);
		return;
	}
	problem_set(f, e->id, NULL);
	struct dmn_mspec *ms = dmn_manager_find(f->m, e->id);
	if (!diag_spec_selects_host(e->spec, f->host)) {
		remove_spec(f, e->id);
		return;
	}
	if (ms && ms->store_version == e->version &&
	    ms->spec->lastmodified_ns == e->spec->lastmodified_ns)
		return;
	struct diag_error err = { 0 };
	struct diag_spec *s = e->spec;
	e->spec = NULL;
	if (dmn_manager_adopt(f->m, s, e->version, &err) < 0) {
		char why[DIAG_ERRMSG_MAX];
		snprintf(why, sizeof(why), "%s", err.msg);
		problem_set(f, e->id, why);
	}
}

static bool in_set(const struct diag_fleet_entry *v, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].id, id))
			return true;
	return false;
}

/* The whole set: run what is new or changed, remove what came from the store and is gone.
 * Specs added through this daemon's socket are this host's own and stay. A spec the thread
 * did not read again (same version as last posted) is as this loop left it, also one it
 * could not run (a limit): retried when its version changes. */
static void converge(struct dmn_fleet *f, struct diag_fleet_entry *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!v[i].unchanged) /* unchanged: what runs (and what it reported) stands */
			take_entry(f, &v[i]);
	for (size_t i = 0; i < f->problems.nb; i++)
		for (struct kv *e = f->problems.b[i]; e; e = e->next)
			if (!in_set(v, n, e->key))
				problem_set(f, e->key, NULL);
	for (size_t i = f->m->nspecs; i-- > 0;) {
		if (i >= f->m->nspecs)
			continue;
		struct dmn_mspec *ms = f->m->specs[i];
		if (ms->store_version && !in_set(v, n, ms->spec->id)) {
			char id[DIAG_SPEC_ID_MAX + 1];
			snprintf(id, sizeof(id), "%s", ms->spec->id);
			remove_spec(f, id);
		}
	}
	/* every record again at the next pass: those written while away land now */
	map_clear(&f->sent);
	f->next_pass = 0;
}

void dmn_fleet_run(struct dmn_fleet *f)
{
	drain_fd(f->to_main);
	pthread_mutex_lock(&f->sh.mu);
	struct post *p = f->sh.head;
	f->sh.head = NULL;
	f->sh.tail = &f->sh.head;
	pthread_mutex_unlock(&f->sh.mu);
	while (p) {
		struct post *nx = p->next;
		switch (p->kind) {
		case POST_ALL: converge(f, p->v, p->n); break;
		case POST_ONE: take_entry(f, &p->v[0]); break;
		case POST_GONE:
			problem_set(f, p->id, NULL);
			remove_spec(f, p->id);
			break;
		case POST_STATE:
			f->m->shared.connected = p->connected;
			snprintf(f->m->shared.error, sizeof(f->m->shared.error), "%s", p->error);
			break;
		}
		diag_fleet_entries_free(p->v, p->n);
		free(p);
		p = nx;
	}
	problems_publish(f);
}

static uint64_t ident_of(const struct diag_applied *a)
{
	uint64_t h = hash_str(a->error);
	h = fnv(h, a->instances, strlen(a->instances));
	h = fnv(h, &a->state, sizeof(a->state));
	h = fnv(h, &a->lm_ns, sizeof(a->lm_ns));
	h = fnv(h, &a->naddrs, sizeof(a->naddrs));
	return fnv(h, a->addrs, a->naddrs * sizeof(a->addrs[0]));
}

/* Hand record (key) to the thread: json NULL deletes the field. */
static void hand_over(struct dmn_fleet *f, const char *key, char *json)
{
	pthread_mutex_lock(&f->sh.mu);
	struct kv *e = map_get(&f->sh.pending, key);
	if (e) {
		free(e->json);
		e->json = json;
		json = NULL;
	}
	pthread_mutex_unlock(&f->sh.mu);
	free(json);
}

/* One record of a store spec: handed over when its state, error or instances changed, or its
 * counts moved and the last write is a heartbeat old. */
static bool pass_record(struct dmn_fleet *f, const struct dmn_mspec *ms,
			const struct diag_applied *a, int64_t now)
{
	char key[DIAG_SPEC_ID_MAX + 2 + sizeof(a->key)];
	snprintf(key, sizeof(key), "%s\t%s", ms->spec->id, a->key);
	struct kv *e = map_get(&f->sent, key);
	if (!e)
		return false;
	e->gen = f->gen;
	uint64_t ident = ident_of(a);
	bool moved = e->hits != a->hits || e->dropped != a->dropped;
	if (e->sent_ns && e->ident == ident && (!moved || now - e->sent_ns < f->beat_ns))
		return false;
	cJSON *j = diag_applied_to_json(a);
	char *txt = j ? cJSON_PrintUnformatted(j) : NULL;
	cJSON_Delete(j);
	if (!txt)
		return false;
	e->ident = ident;
	e->hits = a->hits;
	e->dropped = a->dropped;
	e->sent_ns = now;
	hand_over(f, key, txt);
	return true;
}

int64_t dmn_fleet_tick(struct dmn_fleet *f, int64_t now_ns)
{
	if (!f)
		return 0;
	if (now_ns < f->next_pass)
		return f->next_pass;
	f->next_pass = now_ns + FLEET_PASS_NS;
	struct dmn_manager *m = f->m;
	dmn_manager_refresh_counts(m);
	f->gen++;
	bool any = false;
	for (size_t i = 0; i < m->nspecs; i++) {
		const struct dmn_mspec *ms = m->specs[i];
		for (size_t j = 0; ms->store_version && j < ms->spec->napplied; j++)
			any |= pass_record(f, ms, &ms->spec->applied[j], now_ns);
	}
	/* records gone here (folded, their spec removed or replaced): their fields go too */
	for (size_t i = 0; i < f->sent.nb; i++)
		for (struct kv **pe = &f->sent.b[i]; *pe;) {
			struct kv *e = *pe;
			if (e->gen == f->gen) {
				pe = &e->next;
				continue;
			}
			hand_over(f, e->key, NULL);
			any = true;
			*pe = e->next;
			f->sent.n--;
			kv_free(e);
		}
	pid_t pids[DMN_MANAGER_TARGETS_MAX];
	size_t np = diag_engine_pids(m->engine, pids, DMN_MANAGER_TARGETS_MAX);
	pthread_mutex_lock(&f->sh.mu);
	f->sh.processes = (int)np;
	pthread_mutex_unlock(&f->sh.mu);
	if (any)
		wake(f->to_thread);
	return f->next_pass;
}

int dmn_fleet_fd(const struct dmn_fleet *f)
{
	return f->to_main;
}

int dmn_fleet_new(struct dmn_manager *m, const struct dmn_fleet_opts *o, struct dmn_fleet **out,
		  struct diag_error *err)
{
	struct diag_fleet_url u;
	int r = diag_fleet_url_parse(o->url, &u, err);
	if (r < 0)
		return r;
	if (!diag_spec_host_valid(m->host))
		return diag_error_set(err, -DIAG_E_INVALID,
				      "host name '%.80s': must be 1-%d characters of A-Z a-z 0-9 . _ - (give --host-name NAME)",
				      m->host, DIAG_SPEC_HOST_MAX);
	struct dmn_fleet *f = calloc(1, sizeof(*f));
	if (!f)
		return diag_error_set(err, -ENOMEM, "out of memory");
	f->m = m;
	f->to_main = f->to_thread = -1;
	pthread_mutex_init(&f->sh.mu, NULL);
	f->sh.tail = &f->sh.head;
	snprintf(f->host, sizeof(f->host), "%s", m->host);
	f->beat_ns = (int64_t)((o->heartbeat_s > 0 ? o->heartbeat_s : 5.0) * 1e9);
	f->url = strdup(o->url);
	f->password = o->password ? strdup(o->password) : NULL;
	f->to_main = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	f->to_thread = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!f->url || (o->password && !f->password) || f->to_main < 0 || f->to_thread < 0) {
		r = diag_error_set(err, -ENOMEM, "store: %s", strerror(errno ? errno : ENOMEM));
		dmn_fleet_free(f);
		return r;
	}
	snprintf(m->shared.url, sizeof(m->shared.url), "%s", o->url);
	if ((r = pthread_create(&f->thread, NULL, thread_main, f)) != 0) {
		r = diag_error_set(err, -r, "store thread: %s", strerror(r));
		dmn_fleet_free(f);
		return r;
	}
	f->started = true;
	*out = f;
	return 0;
}

/* A clean stop removes every probe: the store's records say so (a daemon killed says nothing,
 * and its host goes stale instead). */
static void hand_over_stop(struct dmn_fleet *f)
{
	const struct dmn_manager *m = f->m;
	for (size_t i = 0; i < m->nspecs; i++) {
		const struct dmn_mspec *ms = m->specs[i];
		for (size_t j = 0; ms->store_version && j < ms->spec->napplied; j++) {
			const struct diag_applied *a = &ms->spec->applied[j];
			if (a->state != DIAG_APPLIED_APPLIED && a->state != DIAG_APPLIED_PENDING)
				continue;
			struct diag_applied *last = malloc(sizeof(*last));
			if (!last)
				return;
			*last = *a;
			last->state = DIAG_APPLIED_REMOVED;
			last->naddrs = 0;
			snprintf(last->error, sizeof(last->error),
				 "diagnosed on %s stopped: the probe is removed", f->host);
			cJSON *js = diag_applied_to_json(last);
			char *txt = js ? cJSON_PrintUnformatted(js) : NULL;
			cJSON_Delete(js);
			char key[DIAG_SPEC_ID_MAX + 2 + sizeof(a->key)];
			snprintf(key, sizeof(key), "%s\t%s", ms->spec->id, a->key);
			if (txt)
				hand_over(f, key, txt);
			free(last);
		}
	}
}

void dmn_fleet_free(struct dmn_fleet *f)
{
	if (!f)
		return;
	if (f->started) {
		hand_over_stop(f);
		pthread_mutex_lock(&f->sh.mu);
		f->sh.stop = true;
		pthread_mutex_unlock(&f->sh.mu);
		wake(f->to_thread);
		pthread_join(f->thread, NULL);
	}
	for (struct post *p = f->sh.head, *nx; p; p = nx) {
		nx = p->next;
		diag_fleet_entries_free(p->v, p->n);
		free(p);
	}
	map_clear(&f->sh.pending);
	map_clear(&f->sent);
	map_clear(&f->problems);
	map_clear(&f->known);
	pthread_mutex_destroy(&f->sh.mu);
	if (f->to_main >= 0)
		close(f->to_main);
	if (f->to_thread >= 0)
		close(f->to_thread);
	if (f->password) /* not left in freed memory */
		memset(f->password, 0, strlen(f->password));
	free(f->password);
	free(f->url);
	free(f);
}
