/* diagnosed_metrics: see diagnosed_metrics.h. */
#include "diagnosed_metrics.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>

#include "export/metrics_http.h"
#include "export/prometheus.h"
#include "log.h"

struct dmn_metrics {
	struct dmn_manager *m;
	struct diag_metrics_http *http;
};

static int render(void *ctx, char **page, size_t *len)
{
	struct dmn_manager *m = ctx;
	dmn_manager_refresh_counts(m);
	cJSON *status = dmn_manager_status_json(m), *specs = dmn_manager_list_json(m);
	cJSON *stats = dmn_manager_stats_json(m, NULL, false, NULL);
	int r = diag_prom_render(status, specs, stats, m->host, page, len, NULL);
	cJSON_Delete(status);
	cJSON_Delete(specs);
	cJSON_Delete(stats);
	return r;
}

int dmn_metrics_new(struct dmn_manager *m, const char *listen, int epfd, struct dmn_metrics **out,
		    struct diag_error *err)
{
	struct dmn_metrics *mt = calloc(1, sizeof(*mt));
	if (!mt)
		return diag_error_set(err, -ENOMEM, "--metrics-listen: out of memory");
	mt->m = m;
	int r = diag_metrics_http_start(listen, render, m, &mt->http, err);
	struct epoll_event ev = {.events = EPOLLIN};
	if (r == 0) {
		ev.data.fd = diag_metrics_http_fd(mt->http);
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, ev.data.fd, &ev) < 0)
			r = diag_error_set(err, -errno, "--metrics-listen %s: %s", listen,
					   "cannot watch the server");
	}
	if (r < 0) {
		dmn_metrics_free(mt);
		return r;
	}
	/* the port a test or a user who asked for port 0 needs to know */
	dmn_info("metrics: serving GET /metrics on %s (port %u)", listen,
		(unsigned)diag_metrics_http_port(mt->http));
	*out = mt;
	return 0;
}

void dmn_metrics_free(struct dmn_metrics *mt)
{
	if (!mt)
		return;
	diag_metrics_http_stop(mt->http);
	free(mt);
}

bool dmn_metrics_owns(const struct dmn_metrics *mt, int fd)
{
	return mt && mt->http && fd == diag_metrics_http_fd(mt->http);
}

void dmn_metrics_run(struct dmn_metrics *mt)
{
	diag_metrics_http_run(mt->http);
}

int64_t dmn_metrics_tick(struct dmn_metrics *mt, int64_t now_ns)
{
	if (!mt)
		return 0;
	diag_metrics_http_run(mt->http);
	int ms = diag_metrics_http_timeout_ms(mt->http);
	return ms < 0 ? 0 : now_ns + (int64_t)ms * 1000000 + 1;
}
