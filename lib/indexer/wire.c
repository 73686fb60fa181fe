/* indexer/wire: framing and bounded encoding of indexer messages (see wire.h). */
#include "indexer/wire.h"
#include "util/clock.h"
#include "util/grow.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void put(struct diag_ix_buf *b, const void *v, size_t n)
{
	if (b->oom)
		return;
	if (diag_grow((void **)&b->p, &b->cap, b->len + n, 1, 256)) {
		b->oom = true;
		return;
	}
	memcpy(b->p + b->len, v, n);
	b->len += n;
}

void diag_ix_put_u8(struct diag_ix_buf *b, uint8_t v)
{
	put(b, &v, 1);
}

void diag_ix_put_u32(struct diag_ix_buf *b, uint32_t v)
{
	put(b, &v, 4); /* x86_64 only: little-endian */
}

void diag_ix_put_u64(struct diag_ix_buf *b, uint64_t v)
{
	put(b, &v, 8);
}

void diag_ix_put_str(struct diag_ix_buf *b, const char *s)
{
	if (!s) {
		diag_ix_put_u32(b, UINT32_MAX);
		return;
	}
	size_t n = strnlen(s, DIAG_IX_MAX_STR);
	diag_ix_put_u32(b, (uint32_t)n);
	put(b, s, n);
}

void diag_ix_put_raw(struct diag_ix_buf *b, const void *p, size_t n)
{
	put(b, p, n);
}

void diag_ix_put_bytes(struct diag_ix_buf *b, const void *p, size_t n)
{
	diag_ix_put_u32(b, (uint32_t)n);
	put(b, p, n);
}

const uint8_t *diag_ix_get_bytes(struct diag_ix_rd *r, size_t max, size_t *n)
{
	uint32_t len = diag_ix_get_u32(r);
	if (r->bad || len > max || r->len - r->off < len) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *p = r->p + r->off;
	r->off += len;
	*n = len;
	return p;
}

void diag_ix_buf_release(struct diag_ix_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static bool take(struct diag_ix_rd *r, void *v, size_t n)
{
	if (r->bad || r->len - r->off < n) {
		r->bad = true;
		memset(v, 0, n);
		return false;
	}
	memcpy(v, r->p + r->off, n);
	r->off += n;
	return true;
}

uint8_t diag_ix_get_u8(struct diag_ix_rd *r)
{
	uint8_t v;
	take(r, &v, 1);
	return v;
}

uint32_t diag_ix_get_u32(struct diag_ix_rd *r)
{
	uint32_t v;
	take(r, &v, 4);
	return v;
}

uint64_t diag_ix_get_u64(struct diag_ix_rd *r)
{
	uint64_t v;
	take(r, &v, 8);
	return v;
}

/* The bytes of the next string: NULL with *n = SIZE_MAX for a NULL string. */
static const uint8_t *str_bytes(struct diag_ix_rd *r, size_t max, size_t *n)
{
	uint32_t len = diag_ix_get_u32(r);
	if (r->bad)
		return NULL;
	if (len == UINT32_MAX) {
		*n = SIZE_MAX;
		return NULL;
	}
	if (len > max || r->len - r->off < len || memchr(r->p + r->off, 0, len)) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *s = r->p + r->off;
	r->off += len;
	*n = len;
	return s;
}

bool diag_ix_get_str(struct diag_ix_rd *r, size_t max, bool nullable, char **out)
{
	size_t n = 0;
	const uint8_t *s = str_bytes(r, max, &n);
	*out = NULL;
	if (r->bad)
		return false;
	if (n == SIZE_MAX) {
		r->bad = !nullable;
		return nullable;
	}
	char *c = malloc(n + 1);
	if (!c) {
		r->bad = true;
		return false;
	}
	memcpy(c, s, n);
	c[n] = '\0';
	*out = c;
	return true;
}

bool diag_ix_get_strbuf(struct diag_ix_rd *r, char *buf, size_t cap)
{
	size_t n = 0;
	const uint8_t *s = str_bytes(r, cap ? cap - 1 : 0, &n);
	buf[0] = '\0';
	if (r->bad || n == SIZE_MAX) {
		r->bad = true;
		return false;
	}
	memcpy(buf, s, n);
	buf[n] = '\0';
	return true;
}

/* Waits until sock is ready for events or the deadline passes. */
static int wait_ready(int sock, short events, int64_t deadline_ms)
{
	for (;;) {
		int timeout = -1;
		if (deadline_ms) {
			int64_t left = deadline_ms - diag_clock_mono_ms();
			if (left <= 0)
				return -ETIMEDOUT;
			timeout = left > 60000 ? 60000 : (int)left;
		}
		struct pollfd p = { .fd = sock, .events = events };
		int r = poll(&p, 1, timeout);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r > 0)
			return 0;
	}
}

int diag_ix_send(int sock, const struct diag_ix_buf *b, const int *fds, size_t nfds,
		 int64_t deadline_ms)
{
	if (b->oom)
		return -ENOMEM;
	if (nfds > DIAG_IX_MAX_FDS || b->len > DIAG_IX_MAX_MSG)
		return -EMSGSIZE;
	uint32_t len = (uint32_t)b->len;
	size_t total = 4 + b->len, sent = 0;
	while (sent < total) {
		struct iovec iov[2];
		int niov = 0;
		if (sent < 4)
			iov[niov++] = (struct iovec){ (uint8_t *)&len + sent, 4 - sent };
		size_t boff = sent < 4 ? 0 : sent - 4;
		if (b->len > boff)
			iov[niov++] = (struct iovec){ b->p + boff, b->len - boff };
		union {
			struct cmsghdr h;
			char buf[CMSG_SPACE(sizeof(int) * DIAG_IX_MAX_FDS)];
		} cm;
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)niov };
		if (sent == 0 && nfds) {
			memset(&cm, 0, sizeof(cm));
			mh.msg_control = cm.buf;
			mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
			struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
			memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
		}
		ssize_t w = sendmsg(sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int r = wait_ready(sock, POLLOUT, deadline_ms);
			if (r)
				return r;
			continue;
		}
		if (w < 0)
			return errno == ECONNRESET ? -EPIPE : -errno;
		sent += (size_t)w;
	}
	return 0;
}

static void close_fds(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
}

/* Reads exactly n bytes (the first read also takes fds). */
static int read_full(int sock, void *buf, size_t n, int *fds, size_t *nfds, int64_t deadline_ms)
{
	size_t got = 0;
	while (got < n) {
		struct iovec iov = { (uint8_t *)buf + got, n - got };
		union {
			struct cmsghdr h;
			char buf[CMSG_SPACE(sizeof(int) * DIAG_IX_MAX_FDS)];
		} cm;
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		if (fds) {
			mh.msg_control = cm.buf;
			mh.msg_controllen = sizeof(cm.buf);
		}
		ssize_t r = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int w = wait_ready(sock, POLLIN, deadline_ms);
			if (w)
				return w;
			continue;
		}
		if (r < 0)
			return errno == ECONNRESET ? -EPIPE : -errno;
		if (r == 0)
			return -EPIPE;
		for (struct cmsghdr *c = fds ? CMSG_FIRSTHDR(&mh) : NULL; c; c = CMSG_NXTHDR(&mh, c)) {
			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			int *in = (int *)CMSG_DATA(c);
			for (size_t i = 0; i < k; i++) {
				if (*nfds < DIAG_IX_MAX_FDS)
					fds[(*nfds)++] = in[i];
				else
					close(in[i]);
			}
		}
		if (fds && (mh.msg_flags & MSG_CTRUNC))
			return -EPROTO;
		fds = NULL; /* fds ride on the first byte only */
		got += (size_t)r;
	}
	return 0;
}

int diag_ix_recv(int sock, size_t max, uint8_t **out, size_t *len, int *fds, size_t *nfds,
		 int64_t deadline_ms)
{
	uint32_t n = 0;
	size_t nf = 0;
	int r = read_full(sock, &n, 4, fds, &nf, deadline_ms);
	uint8_t *p = NULL;
	if (r == 0 && n > max)
		r = -EMSGSIZE;
	if (r == 0 && !(p = malloc(n ? n : 1)))
		r = -ENOMEM;
	if (r == 0)
		r = read_full(sock, p, n, NULL, NULL, deadline_ms);
	if (r) {
		free(p);
		close_fds(fds, nf);
		return r;
	}
	*out = p;
	*len = n;
	if (nfds)
		*nfds = nf;
	else
		close_fds(fds, nf);
	return 0;
}
