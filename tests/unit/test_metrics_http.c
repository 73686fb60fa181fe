/* test_metrics_http: the metrics endpoint served from the caller's loop (no thread of its
 * own): a real HTTP client (curl) gets the rendered page from GET /metrics with the Prometheus
 * content type, 404 elsewhere, 405 for POST, 500 when the page cannot be made; bad
 * --metrics-listen values are refused with the reason; a port in use is an error. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "export/metrics_http.h"

struct page {
	int calls;
	int fail;
};

static int render(void *ctx, char **page, size_t *len)
{
	struct page *p = ctx;
	p->calls++;
	if (p->fail)
		return -EIO;
	*page = strdup("# TYPE x_total counter\nx_total 1\n");
	*len = strlen(*page);
	return 0;
}

/* Runs curl ARGS in a child while serving; returns curl's output (status line + body). */
static char *fetch(struct diag_metrics_http *h, const char *args)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "curl -s -i -m 5 %s", args);
	int out[2];
	if (pipe(out) < 0)
		return NULL;
	pid_t c = fork();
	if (c == 0) {
		dup2(out[1], 1);
		close(out[0]);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	static char buf[8192];
	size_t n = 0;
	for (;;) {
		struct pollfd p[2] = {{.fd = diag_metrics_http_fd(h), .events = POLLIN},
				      {.fd = out[0], .events = POLLIN}};
		int t = diag_metrics_http_timeout_ms(h);
		poll(p, 2, t < 0 || t > 100 ? 100 : t);
		diag_metrics_http_run(h);
		if (p[1].revents) {
			ssize_t got = read(out[0], buf + n, sizeof(buf) - 1 - n);
			if (got <= 0)
				break;
			n += (size_t)got;
		}
	}
	buf[n] = '\0';
	close(out[0]);
	waitpid(c, NULL, 0);
	return buf;
}

int main(void)
{
	struct page pg = {0};
	struct diag_metrics_http *h;
	struct diag_error err = {0};
	CHECK_EQ_INT(diag_metrics_http_start("127.0.0.1:0", render, &pg, &h, &err), 0);
	uint16_t port = diag_metrics_http_port(h);
	CHECK(port != 0);
	char url[128], args[256];
	snprintf(url, sizeof(url), "http://127.0.0.1:%u", port);

	snprintf(args, sizeof(args), "%s/metrics", url);
	char *r = fetch(h, args);
	CHECK_CONTAINS(r, "HTTP/1.1 200");
	CHECK_CONTAINS(r, "Content-Type: text/plain; version=0.0.4; charset=utf-8");
	CHECK_CONTAINS(r, "\r\n\r\n# TYPE x_total counter\nx_total 1\n");
	CHECK_EQ_INT(pg.calls, 1);

	snprintf(args, sizeof(args), "%s/other", url);
	CHECK_CONTAINS(fetch(h, args), "HTTP/1.1 404");
	snprintf(args, sizeof(args), "-X POST -d x=1 %s/metrics", url);
	CHECK_CONTAINS(fetch(h, args), "HTTP/1.1 405");
	pg.fail = 1;
	snprintf(args, sizeof(args), "%s/metrics", url);
	CHECK_CONTAINS(fetch(h, args), "HTTP/1.1 500");

	/* the port is taken now */
	char taken[64];
	snprintf(taken, sizeof(taken), "127.0.0.1:%u", port);
	struct diag_metrics_http *h2;
	CHECK(diag_metrics_http_start(taken, render, &pg, &h2, &err) < 0);
	CHECK_CONTAINS(err.msg, "cannot listen");
	diag_metrics_http_stop(h);

	const char *bad[] = {"9464", "localhost:9464", "127.0.0.1:", "127.0.0.1:70000", "[::1:9464",
			     ":9464"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(diag_metrics_http_start(bad[i], render, &pg, &h2, &err) < 0);
		CHECK_CONTAINS(err.msg, "--metrics-listen");
	}
	CHECK_EQ_INT(diag_metrics_http_start("[::1]:0", render, &pg, &h2, &err), 0);
	diag_metrics_http_stop(h2);
	return CHECK_DONE();
}
