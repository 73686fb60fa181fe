/* export/metrics_http: the HTTP endpoint `diagnosed --metrics-listen ADDR:PORT` serves:
 * `GET /metrics` answers with the page a render callback makes (export/prometheus.c), every
 * other path 404 and every other method 405. Served by libmicrohttpd WITHOUT a thread of its
 * own: the daemon polls diag_metrics_http_fd() in its loop and calls diag_metrics_http_run(),
 * so the callback runs on the daemon's thread and may read its state without locks. Listens
 * only on the address given; bounded connections and timeouts, so a slow or hostile client
 * can neither stall the daemon nor grow its memory. */
#ifndef DIAG_EXPORT_METRICS_HTTP_H
#define DIAG_EXPORT_METRICS_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* Make the page: 0 with a malloc'd buffer (freed by the server), or a negative code (the
 * client then gets 500). */
typedef int (*diag_metrics_render_fn)(void *ctx, char **page, size_t *len);

struct diag_metrics_http;

/* Listen on listen ("127.0.0.1:9464", "[::1]:9464", "0.0.0.0:9464"; port 0 picks one). Errors
 * name --metrics-listen and the reason. */
int diag_metrics_http_start(const char *listen, diag_metrics_render_fn render, void *ctx,
			    struct diag_metrics_http **out, struct diag_error *err);
void diag_metrics_http_stop(struct diag_metrics_http *h);

/* The fd to poll for POLLIN, the port bound, and the longest the loop may wait before the
 * next diag_metrics_http_run (-1: no deadline). */
int diag_metrics_http_fd(const struct diag_metrics_http *h);
uint16_t diag_metrics_http_port(const struct diag_metrics_http *h);
int diag_metrics_http_timeout_ms(const struct diag_metrics_http *h);

/* Serve what is ready, without blocking. */
void diag_metrics_http_run(struct diag_metrics_http *h);

#endif
