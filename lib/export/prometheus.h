/* export/prometheus: the Prometheus text exposition format (version 0.0.4) of what the daemon
 * knows: every `incr` as a counter, every `hist` as a histogram, hits and drops per process,
 * and the daemon's own figures. Renders from the same JSON documents `diagnosectl status`,
 * `list` and `stats` show, so the page and the commands never disagree. Pure formatting: owns
 * no state, never blocks, never touches a process. Names and labels follow Prometheus
 * conventions; label values are escaped (they hold target and spec text). */
#ifndef DIAG_EXPORT_PROMETHEUS_H
#define DIAG_EXPORT_PROMETHEUS_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "util/error.h"

/* At most this many `by_value` keys of one incr become series (the rest are summed into one
 * series with key="__other__"): a scrape must stay bounded whatever the target sends. */
#define DIAG_PROM_MAX_KEYS 100

/* Render the page from status (diagnosectl status's reply), specs (list's "specs" array) and
 * stats (stats's "stats" array); any may be NULL. host labels every series. Returns 0 with a
 * malloc'd NUL-terminated page in *out (*len bytes), or -ENOMEM. */
int diag_prom_render(const cJSON *status, const cJSON *specs, const cJSON *stats,
		     const char *host, char **out, size_t *len, struct diag_error *err);

#endif
