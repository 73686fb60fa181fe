/* ctl_conn: the client end of the control socket (see ctl_conn.h). Owns one socket and a
 * line buffer; never prints and never interprets a reply. */
#include "ctl_conn.h"
#include "util/clock.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct ctl_conn {
	int fd;
	char *buf;
	size_t len;  /* bytes held in buf */
	size_t head; /* start of the next unread line */
	size_t cap;
};

int diag_ctl_conn_open(const char *path, struct ctl_conn **out, struct diag_error *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return diag_error_set(err, -ENAMETOOLONG,
				      "cannot connect to %s: socket path too long (max %zu bytes)",
				      path, sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return diag_error_set(err, -errno, "cannot create a socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		return diag_error_set(err, -e, "cannot connect to %s: %s (is diagnosed running?)",
				      path, strerror(e));
	}
	struct ctl_conn *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return diag_error_set(err, -ENOMEM, "out of memory");
	}
	c->fd = fd;
	*out = c;
	return 0;
}

int diag_ctl_conn_send(struct ctl_conn *c, const cJSON *req, struct diag_error *err)
{
	char *text = cJSON_PrintUnformatted(req);
	if (!text)
		return diag_error_set(err, -ENOMEM, "out of memory");
	size_t n = strlen(text), off = 0;
	text[n] = '\n'; /* replaces the NUL: the line is sent with its length, not as a string */
	int rc = 0;
	while (off < n + 1) {
		/* MSG_NOSIGNAL: a daemon that went away is an error to report, not a SIGPIPE. */
		ssize_t w = send(c->fd, text + off, n + 1 - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			rc = diag_error_set(err, -errno, "cannot send to the daemon: %s", strerror(errno));
			break;
		}
		off += (size_t)w;
	}
	free(text);
	return rc;
}

/* Make room for more bytes, dropping already consumed lines first. */
static int ctl_conn_grow(struct ctl_conn *c, struct diag_error *err)
{
	if (c->head) {
		memmove(c->buf, c->buf + c->head, c->len - c->head);
		c->len -= c->head;
		c->head = 0;
	}
	if (c->cap - c->len >= 4096)
		return 0;
	if (c->cap >= CTL_REPLY_MAX)
		return diag_error_set(err, -EPROTO, "reply from the daemon too long (max %u bytes)",
				      CTL_REPLY_MAX);
	size_t cap = c->cap ? c->cap * 2 : 65536;
	char *b = realloc(c->buf, cap);
	if (!b)
		return diag_error_set(err, -ENOMEM, "out of memory");
	c->buf = b;
	c->cap = cap;
	return 0;
}

int diag_ctl_conn_recv(struct ctl_conn *c, const char **line, int timeout_ms, struct diag_error *err)
{
	int64_t deadline = timeout_ms < 0 ? -1 : diag_clock_mono_ms() + timeout_ms;
	size_t scanned = c->head;
	for (;;) {
		char *nl = c->len > scanned ? memchr(c->buf + scanned, '\n', c->len - scanned) : NULL;
		if (nl) {
			*nl = '\0';
			*line = c->buf + c->head;
			c->head = (size_t)(nl - c->buf) + 1;
			return 1;
		}
		int rc = ctl_conn_grow(c, err); /* moves the partial line to the front */
		if (rc < 0)
			return rc;
		scanned = c->len; /* everything held has been searched for a newline */
		int wait = -1;
		if (deadline >= 0) {
			int64_t left = deadline - diag_clock_mono_ms();
			if (left <= 0)
				return diag_error_set(err, -ETIMEDOUT, "no reply from the daemon within %d s",
						      timeout_ms / 1000);
			wait = left > 1000000 ? 1000000 : (int)left;
		}
		struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
		int pr = poll(&pfd, 1, wait);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0)
			return diag_error_set(err, -errno, "poll: %s", strerror(errno));
		if (pr == 0)
			continue;
		ssize_t r = read(c->fd, c->buf + c->len, c->cap - c->len - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return diag_error_set(err, -errno, "cannot read from the daemon: %s", strerror(errno));
		if (r == 0)
			return 0;
		c->len += (size_t)r;
	}
}

void diag_ctl_conn_close(struct ctl_conn *c)
{
	if (!c)
		return;
	close(c->fd);
	free(c->buf);
	free(c);
}
