/* diagnosed_metrics: `--metrics-listen ADDR:PORT`, the Prometheus endpoint of the daemon. Owns
 * the HTTP server (lib/export/metrics_http) on the main loop's epoll set and makes each page
 * from the manager's status, list and stats (lib/export/prometheus), on the main thread. Only
 * reads the manager; never changes a probe. */
#ifndef DMN_METRICS_H
#define DMN_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "diagnosed_manager.h"
#include "util/error.h"

struct dmn_metrics;

/* Listen on listen and add the server's fd to epfd. Errors name --metrics-listen. */
int dmn_metrics_new(struct dmn_manager *m, const char *listen, int epfd, struct dmn_metrics **out,
		    struct diag_error *err);
void dmn_metrics_free(struct dmn_metrics *mt);

/* Whether fd (from epoll) is the server's; serve what is ready (also its timeouts). */
bool dmn_metrics_owns(const struct dmn_metrics *mt, int fd);
void dmn_metrics_run(struct dmn_metrics *mt);

/* The wall-clock time by which dmn_metrics_run must be called again (connection timeouts),
 * or 0 for none. */
int64_t dmn_metrics_tick(struct dmn_metrics *mt, int64_t now_ns);

#endif
