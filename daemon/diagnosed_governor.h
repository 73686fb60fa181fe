/* diagnosed_governor: bounds what probes cost their targets (docs/reliability.md). Samples
 * every live record through the manager's one iterator (dmn_manager_each_live) and disables
 * what is over budget through dmn_manager_disable. Owns its samples only; never walks the
 * manager's specs itself and never touches a target or the engine. Ticked by the main loop. */
#ifndef DMN_GOVERNOR_H
#define DMN_GOVERNOR_H

#include <stdint.h>

#include "diagnosed_manager.h"

struct dmn_governor;

/* The overhead governor's budgets. 0 means no limit. Per probe means per (spec, process);
 * the totals are over every probe of the daemon. */
#define DMN_GOV_DEFAULT_HITS_PER_SEC 0.0
#define DMN_GOV_DEFAULT_STOPPED_MS_PER_SEC 0.0 /* the percent budget below covers it */
#define DMN_GOV_DEFAULT_STOPPED_PERCENT 10.0   /* of one CPU's time, per process */
#define DMN_GOV_DEFAULT_TOTAL_HITS_PER_SEC 0.0
#define DMN_GOV_DEFAULT_TOTAL_STOPPED_MS_PER_SEC 900.0
struct dmn_governor_limits {
	double max_hits_per_sec, max_stopped_ms_per_sec;             /* per probe, by default */
	double max_stopped_percent; /* threads of one process stopped by our hits, % of wall time */
	double max_total_hits_per_sec, max_total_stopped_ms_per_sec; /* all probes together */
};

void dmn_governor_default_limits(struct dmn_governor_limits *l);
/* lim NULL: the defaults. Returns 0 or -ENOMEM. */
int dmn_governor_new(const struct dmn_governor_limits *lim, struct dmn_governor **out);
void dmn_governor_free(struct dmn_governor *g);
/* Sample every applied probe of m when a period is due and disable those over budget.
 * Returns the next sampling time in ns (0: nothing to watch). */
int64_t dmn_governor_tick(struct dmn_governor *g, struct dmn_manager *m, int64_t now_ns);

#endif
