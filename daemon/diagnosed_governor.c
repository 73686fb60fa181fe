/* diagnosed governor: bounds what probes cost their targets. Every 100 ms it samples each
 * applied probe's hit count and stopped time (diag_engine_probe_info) and, over a sliding
 * one-second window, disables a probe whose rate is over its budget (the spec's `limits`, else
 * the daemon's defaults: the share of wall time the process's threads spent stopped for its
 * int3 hits above all), the heaviest probe of a process whose probes together stop it over
 * that share, or the heaviest probe when all of them together are over the daemon's total
 * budget. Disabling goes through the manager (bytes restored, record `disabled` with the
 * reason). Runs on the engine's thread; never touches a target itself, and sees the
 * manager's records only through dmn_manager_each_live. */
#include "diagnosed_governor.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/grow.h"

#define GOV_PERIOD_NS 100000000LL  /* sampling period */
#define GOV_WINDOW_NS 1000000000LL /* rates are measured over this much history */
#define GOV_SAMPLES 12             /* > window / period, so a full window is always held */

struct sample {
	int64_t t_ns;
	uint64_t hits, stopped_ns;
};

/* One (spec, process) pair. The spec is known by address and lastmodified: a freed spec whose
 * address is reused by a new one has another lastmodified, or its counts go backwards. */
struct gov_entry {
	const struct dmn_mspec *ms;
	int64_t lm_ns;
	pid_t pid;
	bool seen;
	size_t n, head; /* samples held; index of the newest */
	struct sample s[GOV_SAMPLES];
	double hits_rate, stopped_ms_rate; /* over the window; < 0 until a window is full */
	double window_s;                   /* the window those rates span */
};

struct dmn_governor {
	struct dmn_governor_limits lim;
	struct gov_entry *v;
	size_t n, cap;
	int64_t next_ns;
};

void dmn_governor_default_limits(struct dmn_governor_limits *l)
{
	l->max_hits_per_sec = DMN_GOV_DEFAULT_HITS_PER_SEC;
	l->max_stopped_ms_per_sec = DMN_GOV_DEFAULT_STOPPED_MS_PER_SEC;
	l->max_stopped_percent = DMN_GOV_DEFAULT_STOPPED_PERCENT;
	l->max_total_hits_per_sec = DMN_GOV_DEFAULT_TOTAL_HITS_PER_SEC;
	l->max_total_stopped_ms_per_sec = DMN_GOV_DEFAULT_TOTAL_STOPPED_MS_PER_SEC;
}

int dmn_governor_new(const struct dmn_governor_limits *lim, struct dmn_governor **out)
{
	struct dmn_governor *g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	if (lim)
		g->lim = *lim;
	else
		dmn_governor_default_limits(&g->lim);
	*out = g;
	return 0;
}

void dmn_governor_free(struct dmn_governor *g)
{
	if (!g)
		return;
	free(g->v);
	free(g);
}

static struct gov_entry *entry_get(struct dmn_governor *g, const struct dmn_mspec *ms, pid_t pid)
{
	for (size_t i = 0; i < g->n; i++)
		if (g->v[i].ms == ms && g->v[i].pid == pid) {
			if (g->v[i].lm_ns == ms->spec->lastmodified_ns)
				return &g->v[i];
			memset(&g->v[i], 0, sizeof(g->v[i])); /* another spec at the same address */
			g->v[i].ms = ms;
			g->v[i].pid = pid;
			g->v[i].lm_ns = ms->spec->lastmodified_ns;
			return &g->v[i];
		}
	if (DIAG_GROW(&g->v, &g->cap, g->n + 1) < 0)
		return NULL;
	struct gov_entry *en = &g->v[g->n++];
	memset(en, 0, sizeof(*en));
	en->ms = ms;
	en->pid = pid;
	en->lm_ns = ms->spec->lastmodified_ns;
	return en;
}

/* Push a sample and measure the rates against the oldest sample at least a window old. */
static void entry_sample(struct gov_entry *en, const struct sample *now)
{
	const struct sample *last = en->n ? &en->s[en->head] : NULL;
	if (last && (now->hits < last->hits || now->stopped_ns < last->stopped_ns))
		en->n = 0; /* the probe was replaced: counts restarted */
	en->head = en->n ? (en->head + 1) % GOV_SAMPLES : 0;
	en->s[en->head] = *now;
	if (en->n < GOV_SAMPLES)
		en->n++;
	en->hits_rate = en->stopped_ms_rate = -1;
	for (size_t k = en->n - 1; k > 0; k--) {
		const struct sample *old = &en->s[(en->head + GOV_SAMPLES - k) % GOV_SAMPLES];
		double dt = (double)(now->t_ns - old->t_ns) / 1e9;
		if (now->t_ns - old->t_ns < GOV_WINDOW_NS - GOV_PERIOD_NS / 2)
			break;
		en->hits_rate = (double)(now->hits - old->hits) / dt;
		en->stopped_ms_rate = (double)(now->stopped_ns - old->stopped_ns) / 1e6 / dt;
		en->window_s = dt;
		break;
	}
}

static void disable(struct dmn_manager *m, struct gov_entry *en, const char *why)
{
	dmn_manager_disable(m, (struct dmn_mspec *)en->ms, en->pid, why);
	en->seen = false; /* forgotten at the end of the tick */
}

/* ms of thread time stopped per second of wall time, as a percentage of one CPU's time */
static double percent_of(double stopped_ms_rate)
{
	return stopped_ms_rate / 10.0;
}

/* A spec's own stopped budget (limits.max_stopped_ms_per_sec) replaces the percent one. */
static bool percent_applies(const struct dmn_governor *g, const struct gov_entry *en)
{
	return g->lim.max_stopped_percent > 0 && !(en->ms->spec->max_stopped_ms_per_sec > 0);
}

/* Per-probe budgets. */
static void check_entry(struct dmn_governor *g, struct dmn_manager *m, struct gov_entry *en)
{
	const struct diag_spec *s = en->ms->spec;
	double hl = s->max_hits_per_sec > 0 ? s->max_hits_per_sec : g->lim.max_hits_per_sec;
	double sl = s->max_stopped_ms_per_sec > 0 ? s->max_stopped_ms_per_sec
						  : g->lim.max_stopped_ms_per_sec;
	char why[DIAG_ERRMSG_MAX];
	if (en->hits_rate < 0)
		return;
	if (hl > 0 && en->hits_rate > hl) {
		snprintf(why, sizeof(why), "disabled by the governor: %.0f hits/s over the limit %.0f (%s)",
			 en->hits_rate, hl,
			 s->max_hits_per_sec > 0 ? "limits.max_hits_per_sec" : "--max-hits-per-sec");
		disable(m, en, why);
	} else if (sl > 0 && en->stopped_ms_rate > sl) {
		snprintf(why, sizeof(why),
			 "disabled by the governor: %.1f ms/s stopped over the limit %.1f (%s)",
			 en->stopped_ms_rate, sl,
			 s->max_stopped_ms_per_sec > 0 ? "limits.max_stopped_ms_per_sec"
						       : "--max-stopped-ms-per-sec");
		disable(m, en, why);
	} else if (percent_applies(g, en) &&
		   percent_of(en->stopped_ms_rate) > g->lim.max_stopped_percent) {
		snprintf(why, sizeof(why),
			 "disabled by the governor: threads of %d stopped %.0f%% of the last %.1f s by this probe (budget %g%%)",
			 (int)en->pid, percent_of(en->stopped_ms_rate), en->window_s,
			 g->lim.max_stopped_percent);
		disable(m, en, why);
	}
}

/* The percent budget per process: while the probes of pid together stop its threads over it,
 * the heaviest goes (each alone is within it, or check_entry took it). */
static void check_process(struct dmn_governor *g, struct dmn_manager *m, pid_t pid)
{
	for (;;) {
		double total = 0, worst_rate = 0;
		struct gov_entry *worst = NULL;
		for (size_t i = 0; i < g->n; i++) {
			struct gov_entry *en = &g->v[i];
			if (!en->seen || en->pid != pid || !percent_applies(g, en) ||
			    en->stopped_ms_rate <= 0)
				continue;
			total += en->stopped_ms_rate;
			if (en->stopped_ms_rate > worst_rate) {
				worst_rate = en->stopped_ms_rate;
				worst = en;
			}
		}
		if (!worst || percent_of(total) <= g->lim.max_stopped_percent)
			return;
		char why[DIAG_ERRMSG_MAX];
		snprintf(why, sizeof(why),
			 "disabled by the governor: threads of %d stopped %.0f%% of the last %.1f s by all probes (budget %g%%); this probe %.0f%%",
			 (int)pid, percent_of(total), worst->window_s, g->lim.max_stopped_percent,
			 percent_of(worst_rate));
		disable(m, worst, why);
	}
}

/* The daemon-wide budget: while all probes together are over it, the heaviest goes. */
static void check_total(struct dmn_governor *g, struct dmn_manager *m, bool stopped)
{
	double limit = stopped ? g->lim.max_total_stopped_ms_per_sec : g->lim.max_total_hits_per_sec;
	if (limit <= 0)
		return;
	for (;;) {
		double total = 0, worst_rate = 0;
		struct gov_entry *worst = NULL;
		for (size_t i = 0; i < g->n; i++) {
			struct gov_entry *en = &g->v[i];
			double r = stopped ? en->stopped_ms_rate : en->hits_rate;
			if (!en->seen || r <= 0)
				continue;
			total += r;
			if (r > worst_rate) {
				worst_rate = r;
				worst = en;
			}
		}
		if (total <= limit || !worst)
			return;
		char why[DIAG_ERRMSG_MAX];
		if (stopped)
			snprintf(why, sizeof(why),
				 "disabled by the governor: all probes %.1f ms/s stopped over the limit %.1f (--max-total-stopped-ms-per-sec); this probe had %.1f",
				 total, limit, worst_rate);
		else
			snprintf(why, sizeof(why),
				 "disabled by the governor: all probes %.0f hits/s over the limit %.0f (--max-total-hits-per-sec); this probe had %.0f",
				 total, limit, worst_rate);
		disable(m, worst, why);
	}
}

struct tick {
	struct dmn_governor *g;
	struct dmn_manager *m;
	int64_t now_ns;
	bool any; /* some probe was sampled */
};

static void sample_one(void *arg, struct dmn_mspec *ms, struct diag_applied *a,
		       const struct diag_probe_info *info)
{
	struct tick *t = arg;
	struct gov_entry *en = entry_get(t->g, ms, a->pid);
	if (!en)
		return;
	struct sample smp = { t->now_ns, info->hits, info->stopped_ns };
	entry_sample(en, &smp);
	en->seen = true;
	t->any = true;
	check_entry(t->g, t->m, en); /* changes applied states, never the array */
}

int64_t dmn_governor_tick(struct dmn_governor *g, struct dmn_manager *m, int64_t now_ns)
{
	if (g->next_ns && now_ns < g->next_ns)
		return g->next_ns;
	for (size_t i = 0; i < g->n; i++)
		g->v[i].seen = false;
	struct tick t = { .g = g, .m = m, .now_ns = now_ns };
	dmn_manager_each_live(m, sample_one, &t);
	bool any = t.any;
	for (size_t i = 0; i < g->n; i++)
		if (g->v[i].seen && (i == 0 || g->v[i].pid != g->v[i - 1].pid))
			check_process(g, m, g->v[i].pid); /* a repeat finds nothing more */
	check_total(g, m, false);
	check_total(g, m, true);
	size_t k = 0; /* forget what was not seen: removed, expired, disabled, exited */
	for (size_t i = 0; i < g->n; i++)
		if (g->v[i].seen)
			g->v[k++] = g->v[i];
	g->n = k;
	g->next_ns = any ? now_ns + GOV_PERIOD_NS : 0;
	return g->next_ns;
}
