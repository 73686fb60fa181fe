/* engine: the engine's API (engine.h): creating and freeing an engine, attaching (after taking
 * out the patches a dead predecessor left), adding, removing and describing probes, the
 * statistics, detaching. diag_engine_dispatch, the wait loop, is wait.c's; the `symbols` and
 * `vars` introspection is introspect.c's. A hit stops its thread only while registers and the
 * capture plan's memory are read; the thread is resumed (at the out-of-line slot) before the
 * value is rendered and reported. Holds no logic of a layer below: every call goes down
 * (engine_internal.h lists the files in order). */
#include "engine/engine_internal.h"
#include "dwarf/dwarf.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

/* ---- the engine ---- */

int diag_engine_new(const struct diag_engine_callbacks *cb, struct diag_engine **out)
{
	struct diag_engine *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->sigfd = e->timerfd = e->epfd = e->morefd = -1;
	if (cb)
		e->cb = *cb;
	diag_u64map_init(&e->procs);
	diag_u64map_init(&e->threads);
	diag_u64map_init(&e->orphans);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	/* Tracee stops arrive as SIGCHLD: read through a signalfd so the caller can poll. */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	e->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	e->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	e->epfd = epoll_create1(EPOLL_CLOEXEC);
	e->morefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	e->serve_status = eng_wait_serve; /* how stop.c serves the stops it sees on the way */
	e->no_fast = getenv("DIAG_NO_FASTPATH") != NULL;
	e->full_records = getenv("DIAG_FULL_RECORDS") != NULL;
	/* rings are shared with the daemon unless asked (--private-ring; DIAG_RING_SHARED=0 is
	 * the tests' and benches' switch) */
	const char *sh = getenv("DIAG_RING_SHARED");
	e->ring_shared = !(sh && *sh == '0');
	e->ring_bytes = DIAG_ENGINE_RING_DEFAULT;
	const char *jd = getenv("DIAG_JOURNAL_DIR");
	snprintf(e->journal_dir, sizeof(e->journal_dir), "%s", jd ? jd : "/run/diagnose/journal");
	int r = e->sigfd < 0 || e->timerfd < 0 || e->epfd < 0 || e->morefd < 0 ? -errno : 0;
	struct epoll_event ev = {.events = EPOLLIN};
	if (r == 0 && (epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->sigfd, &ev) < 0 ||
		       epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->timerfd, &ev) < 0 ||
		       epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->morefd, &ev) < 0))
		r = -errno;
	if (r == 0)
		r = diag_symcache_new(&e->syms);
	if (r == 0)
		r = diag_dwarf_cache_new(&e->dwarf);
	if (r == 0) /* one DWARF index per file, for symbols (inlined copies, lines) and values */
		diag_symcache_set_dwarf(e->syms, e->dwarf);
	if (r < 0) {
		diag_engine_free(e);
		return r;
	}
	eng_journal_sweep(e);
	*out = e;
	return 0;
}

void diag_engine_set_ring_shared(struct diag_engine *e, bool on)
{
	e->ring_shared = on;
}

int diag_engine_set_ring_size(struct diag_engine *e, size_t bytes, struct diag_error *err)
{
	if (bytes && (bytes < DIAG_ENGINE_RING_MIN || bytes > DIAG_ENGINE_RING_MAX))
		return diag_error_set(err, -DIAG_E_INVALID,
				      "ring size: %zu bytes: must be in [%u, %u]", bytes,
				      DIAG_ENGINE_RING_MIN, DIAG_ENGINE_RING_MAX);
	e->ring_bytes = bytes ? bytes : DIAG_ENGINE_RING_DEFAULT;
	return 0;
}

int diag_engine_use_indexer(struct diag_engine *e, struct diag_indexer *ix)
{
	struct diag_dwarf_cache *dc = NULL;
	int r = diag_dwarf_cache_new_remote(ix, &dc);
	if (r < 0)
		return r;
	diag_dwarf_cache_free(e->dwarf);
	e->dwarf = dc;
	diag_symcache_set_dwarf(e->syms, dc);
	diag_symcache_set_indexer(e->syms, ix);
	return 0;
}

int diag_engine_fd(const struct diag_engine *e)
{
	return e->epfd;
}

bool diag_engine_attached(const struct diag_engine *e, pid_t pid)
{
	return diag_u64map_get(&e->procs, (uint64_t)pid) != NULL;
}

const char *diag_engine_ring_kind(const struct diag_engine *e, pid_t pid)
{
	struct eproc *ep = diag_u64map_get(&e->procs, (uint64_t)pid);
	ep = ep ? eproc_mem(ep) : NULL;
	if (!ep || !ep->ring_addr)
		return "none";
	return eng_ring_shared(ep) ? "shared" : "private";
}

size_t diag_engine_ring_subs(const struct diag_engine *e, pid_t pid,
			     struct diag_engine_ring_sub *out, size_t cap)
{
	struct eproc *ep = diag_u64map_get(&e->procs, (uint64_t)pid);
	ep = ep ? eproc_mem(ep) : NULL;
	return ep && ep->ring_addr ? eng_ring_subs(ep, out, cap) : 0;
}

size_t diag_engine_pids(const struct diag_engine *e, pid_t *pids, size_t cap)
{
	size_t pos = 0, n = 0;
	uint64_t k;
	void *v;
	while (diag_u64map_next(&e->procs, &pos, &k, &v))
		if (n < cap)
			pids[n++] = (pid_t)k;
	return n;
}

int diag_engine_attach(struct diag_engine *e, pid_t pid, struct diag_error *err)
{
	if (diag_engine_attached(e, pid))
		return 0;
	struct eproc *ep;
	int r = eng_adopt_seize(e, pid, &ep, err);
	return r < 0 ? r : eng_adopt_journal(e, ep, err);
}

static struct probe *find_probe(const struct eproc *ep, void *cookie, struct probe ***link)
{
	struct probe **pp = (struct probe **)&ep->probes;
	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->cookie == cookie) {
			if (link)
				*link = pp;
			return *pp;
		}
	return NULL;
}

int diag_engine_probe_remove(struct diag_engine *e, pid_t pid, void *cookie)
{
	struct eproc *ep = diag_u64map_get(&e->procs, (uint64_t)pid);
	struct probe **link;
	struct probe *pr = ep ? find_probe(ep, cookie, &link) : NULL;
	if (!pr)
		return -ENOENT;
	*link = pr->next;
	eng_probe_uninstall(e, ep, pr);
	eng_probe_free(pr);
	return 0;
}

int diag_engine_probe_add(struct diag_engine *e, pid_t pid, const struct diag_probe_def *def,
			  struct diag_error *err)
{
	struct eproc *ep = diag_u64map_get(&e->procs, (uint64_t)pid);
	if (!ep)
		return diag_error_set(err, -ESRCH, "process %d is not attached", (int)pid);
	if (!def->target || !*def->target)
		return diag_error_set_field(err, "target", -DIAG_E_INVALID, "target: empty");
	struct probe tmpl = {
		.cookie = def->cookie, .event = def->event, .counts = def->counts,
		.target = (char *)def->target,
		.value = (char *)def->value, .condition = (char *)def->condition,
	};
	struct probe *pr = eng_probe_copy(&tmpl);
	if (!pr)
		return diag_error_set(err, -ENOMEM, "out of memory");
	diag_engine_probe_remove(e, pid, def->cookie);
	int r = eng_probe_install(e, ep, pr, err);
	if (r < 0) {
		eng_probe_free(pr);
		return r;
	}
	pr->next = ep->probes;
	ep->probes = pr;
	return 0;
}

/* The next instance of out: site s (placed), how it was placed and, for a jump, the ring
 * bytes of its records. */
static void inst_fill(struct eproc *ep, const struct site *s, struct diag_probe_info *out)
{
	const struct diag_bp *bp = s->bp;
	const struct eng_slot *sl = bp->jump && bp->slot_page ?
		diag_u64map_get(&eproc_mem(ep)->slots, bp->slot_page) : NULL;
	snprintf(out->inst[out->naddrs].what, sizeof(out->inst[0].what), "%s", s->what);
	out->inst[out->naddrs].fast = bp->jump;
	snprintf(out->inst[out->naddrs].why, sizeof(out->inst[0].why), "%s", bp->jump ? "" : s->why);
	out->inst[out->naddrs].record_bytes = sl && !sl->count_only ? sl->layout.record_bytes : 0;
	out->addrs[out->naddrs++] = bp->addr;
}

int diag_engine_probe_info(const struct diag_engine *e, pid_t pid, void *cookie,
			   struct diag_probe_info *out)
{
	struct eproc *ep = diag_u64map_get(&e->procs, (uint64_t)pid);
	struct probe *pr = ep ? find_probe(ep, cookie, NULL) : NULL;
	if (!pr)
		return -ENOENT;
	memset(out, 0, sizeof(*out));
	out->state = pr->state;
	out->events = pr->hits;
	uint64_t counted = 0;
	for (size_t i = 0; i < pr->nsites; i++)
		counted += eng_fast_site_count(eproc_mem(ep), &pr->sites[i]);
	/* the counters die with the process: the snapshot taken at its exit stands in */
	out->hits = pr->trapped + pr->fast_done +
		    (counted > pr->fast_counted ? counted : pr->fast_counted);
	out->filtered = pr->filtered;
	out->dropped = eproc_mem(ep)->ring_drops_done + eproc_mem(ep)->ring_drops;
	out->stopped_ns = pr->stopped_ns;
	out->lost_returns = pr->lost_returns;
	size_t tpos = 0;
	uint64_t tk;
	void *tv;
	while (diag_u64map_next(&ep->tp->threads, &tpos, &tk, &tv)) {
		const struct tpending *tp = ((struct diag_thread *)tv)->ext;
		for (size_t i = 0; tp && i < tp->n; i++)
			out->pending += tp->v[i].entry->pr == pr;
	}
	out->pending += eng_xf_open(&eproc_mem(ep)->xframes, pr);
	out->fast = pr->nsites > 0;
	for (size_t i = 0; i < pr->nsites; i++)
		if (!pr->sites[i].bp || !pr->sites[i].bp->jump)
			out->fast = false;
	for (size_t i = 0; i < pr->nsites && out->naddrs < DIAG_PROBE_MAX_ADDRS; i++)
		if (pr->sites[i].bp)
			inst_fill(ep, &pr->sites[i], out);
	/* a return probe on jumps: its exits are instances too (every one a jump, or none) */
	for (size_t i = 0; i < pr->nrsites && out->naddrs < DIAG_PROBE_MAX_ADDRS; i++)
		if (pr->rsites[i]->bp && pr->rsites[i]->kind == SITE_RET_EXIT)
			inst_fill(ep, pr->rsites[i], out);
	out->nskips = pr->nskips;
	for (size_t i = 0; i < pr->nskips && i < DIAG_PROBE_MAX_SKIPS; i++) {
		snprintf(out->skips[i].what, sizeof(out->skips[i].what), "%s", pr->skips[i].what);
		snprintf(out->skips[i].reason, sizeof(out->skips[i].reason), "%s",
			 pr->skips[i].reason);
	}
	snprintf(out->error, sizeof(out->error), "%s", pr->error);
	return 0;
}

void diag_engine_get_stats(const struct diag_engine *e, struct diag_engine_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->targets = e->procs.count;
	out->threads = e->threads.count;
	out->hits = e->hits;
	out->dropped = e->dropped;
	out->stopped_ns = e->stopped_ns;
	out->drain_period_ns = e->wake.period_ns;
	out->drain_changes = e->wake.changes;
	out->recovered = e->recovered;
	size_t pos = 0;
	uint64_t k;
	void *v;
	while (diag_u64map_next(&e->procs, &pos, &k, &v)) {
		struct eproc *ep = v;
		out->breakpoints += ep->bps.by_addr.count;
		for (struct probe *pr = ep->probes; pr; pr = pr->next)
			out->probes++;
	}
}

/* ---- detach ---- */

int diag_engine_detach(struct diag_engine *e, pid_t pid, struct diag_error *err)
{
	struct eproc *ep = diag_u64map_get(&e->procs, (uint64_t)pid);
	if (!ep)
		return diag_error_set(err, -ESRCH, "process %d is not attached", (int)pid);
	/* vfork children first: they run on this memory */
	size_t pos = 0;
	uint64_t k;
	void *v;
	while (diag_u64map_next(&e->procs, &pos, &k, &v)) {
		struct eproc *c = v;
		if (c->tp->mem_owner == ep->tp) {
			eng_proc_detach(e, c);
			pos = 0;
		}
	}
	eng_proc_detach(e, ep);
	return 0;
}

void diag_engine_free(struct diag_engine *e)
{
	if (!e)
		return;
	for (;;) {
		size_t pos = 0;
		uint64_t k;
		void *v;
		if (!diag_u64map_next(&e->procs, &pos, &k, &v))
			break;
		struct eproc *ep = v;
		if (ep->tp->mem_owner)
			ep = eproc_of(ep->tp->mem_owner);
		diag_engine_detach(e, ep->tp->pid, NULL);
	}
	diag_u64map_release(&e->procs);
	diag_u64map_release(&e->threads);
	diag_u64map_release(&e->orphans);
	diag_symcache_free(e->syms);
	eng_stack_free(e);
	diag_dwarf_cache_free(e->dwarf);
	free(e->scratch);
	free(e->drain_buf);
	free(e->raw_buf);
	if (e->sigfd >= 0)
		close(e->sigfd);
	if (e->timerfd >= 0)
		close(e->timerfd);
	if (e->morefd >= 0)
		close(e->morefd);
	if (e->epfd >= 0)
		close(e->epfd);
	free(e);
}

