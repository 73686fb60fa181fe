/* export/metrics_http: see metrics_http.h. */
#include "export/metrics_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METRICS_MAX_CONNECTIONS 16
#define METRICS_TIMEOUT_S 5
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct diag_metrics_http {
	struct MHD_Daemon *mhd;
	diag_metrics_render_fn render;
	void *ctx;
};

/* "ADDR:PORT" or "[ADDR6]:PORT" into a socket address. */
static int parse_listen(const char *s, struct sockaddr_storage *ss, struct diag_error *err)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon = strrchr(s, ':');
	char *end;
	long port = colon ? strtol(colon + 1, &end, 10) : -1;
	size_t hl = colon ? (size_t)(colon - s) : 0;
	if (!colon || !colon[1] || *end || port < 0 || port > 65535 || hl == 0 || hl >= sizeof(host))
		return diag_error_set(err, -EINVAL,
				      "--metrics-listen %s: must be ADDRESS:PORT (127.0.0.1:9464, [::1]:9464)", s);
	memcpy(host, s, hl);
	host[hl] = '\0';
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	if (host[0] == '[' && host[hl - 1] == ']') {
		host[hl - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &in6->sin6_addr) != 1)
			return diag_error_set(err, -EINVAL, "--metrics-listen %s: '%s' is not an IPv6 address",
					      s, host + 1);
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		return 0;
	}
	if (inet_pton(AF_INET, host, &in4->sin_addr) != 1)
		return diag_error_set(err, -EINVAL,
				      "--metrics-listen %s: '%s' is not an IPv4 address (IPv6 in brackets)",
				      s, host);
	in4->sin_family = AF_INET;
	in4->sin_port = htons((uint16_t)port);
	return 0;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, char *body, size_t len,
			     enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, METRICS_CONTENT_TYPE);
	enum MHD_Result ok = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_len, void **state)
{
	(void)version;
	(void)upload;
	struct diag_metrics_http *h = cls;
	if (!*state) { /* the headers; answer at the second call, once any body is read */
		*state = h;
		return MHD_YES;
	}
	if (*upload_len) { /* a body is never wanted: drop it */
		*upload_len = 0;
		return MHD_YES;
	}
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET /metrics\n", 18,
			     MHD_RESPMEM_PERSISTENT);
	if (strcmp(url, "/metrics") != 0)
		return reply(c, MHD_HTTP_NOT_FOUND, "not found: the page is /metrics\n", 32,
			     MHD_RESPMEM_PERSISTENT);
	char *page = NULL;
	size_t len = 0;
	if (h->render(h->ctx, &page, &len) < 0 || !page)
		return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "the page could not be made\n", 27,
			     MHD_RESPMEM_PERSISTENT);
	return reply(c, MHD_HTTP_OK, page, len, MHD_RESPMEM_MUST_FREE);
}

int diag_metrics_http_start(const char *listen, diag_metrics_render_fn render, void *ctx,
			    struct diag_metrics_http **out, struct diag_error *err)
{
	struct sockaddr_storage ss;
	int r = parse_listen(listen, &ss, err);
	if (r < 0)
		return r;
	struct diag_metrics_http *h = calloc(1, sizeof(*h));
	if (!h)
		return diag_error_set(err, -ENOMEM, "--metrics-listen: out of memory");
	h->render = render;
	h->ctx = ctx;
	unsigned flags = MHD_USE_EPOLL |
			 (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0);
	h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h,
				  MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned)METRICS_MAX_CONNECTIONS,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)METRICS_TIMEOUT_S,
				  MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536,
				  MHD_OPTION_END);
	if (!h->mhd) {
		int e = errno ? errno : EADDRINUSE;
		free(h);
		return diag_error_set(err, -e, "--metrics-listen %s: cannot listen: %s", listen,
				      strerror(e));
	}
	*out = h;
	return 0;
}

void diag_metrics_http_stop(struct diag_metrics_http *h)
{
	if (!h)
		return;
	MHD_stop_daemon(h->mhd);
	free(h);
}

int diag_metrics_http_fd(const struct diag_metrics_http *h)
{
	const union MHD_DaemonInfo *i = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	return i ? i->epoll_fd : -1;
}

uint16_t diag_metrics_http_port(const struct diag_metrics_http *h)
{
	const union MHD_DaemonInfo *i = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
	return i ? i->port : 0;
}

int diag_metrics_http_timeout_ms(const struct diag_metrics_http *h)
{
	MHD_UNSIGNED_LONG_LONG ms;
	if (MHD_get_timeout(h->mhd, &ms) != MHD_YES)
		return -1;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

void diag_metrics_http_run(struct diag_metrics_http *h)
{
	MHD_run(h->mhd);
}
