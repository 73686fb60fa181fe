/* procwatch/connector: see connector.h. */
#include "procwatch/connector.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A batch of messages in one read; the kernel sends one proc_event per netlink message. */
#define PROCEV_BUF 16384

struct diag_procev {
	int fd;
	/* A batch read from the socket and not yet handed out, so no event is lost when the
	 * caller's array is smaller than what one recv returned. */
	char buf[PROCEV_BUF] __attribute__((aligned(NLMSG_ALIGNTO)));
	size_t len, off;
	int lost; /* an ENOBUFS seen and not reported yet */
};

static int subscribe(int fd, enum proc_cn_mcast_op op)
{
	/* netlink header, connector header, then the operation: laid out by hand, since struct
	 * cn_msg ends in a flexible array and cannot sit inside another struct. */
	char buf[NLMSG_SPACE(sizeof(struct cn_msg) + sizeof(op))] __attribute__((aligned(NLMSG_ALIGNTO)));
	memset(buf, 0, sizeof(buf));
	struct nlmsghdr *nl = (struct nlmsghdr *)buf;
	struct cn_msg *cn = NLMSG_DATA(nl);
	nl->nlmsg_len = NLMSG_LENGTH(sizeof(*cn) + sizeof(op));
	nl->nlmsg_type = NLMSG_DONE;
	nl->nlmsg_pid = 0; /* the kernel assigns our port id at bind */
	cn->id.idx = CN_IDX_PROC;
	cn->id.val = CN_VAL_PROC;
	cn->len = sizeof(op);
	memcpy(cn->data, &op, sizeof(op));
	ssize_t n = send(fd, buf, nl->nlmsg_len, 0);
	return n == (ssize_t)nl->nlmsg_len ? 0 : -errno;
}

int diag_procev_open(struct diag_procev **out, struct diag_error *err)
{
	struct diag_procev *w = calloc(1, sizeof(*w));
	if (!w)
		return diag_error_set(err, -ENOMEM, "process events: out of memory");
	w->fd = socket(PF_NETLINK, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_CONNECTOR);
	int r = w->fd < 0 ? -errno : 0;
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK, .nl_groups = CN_IDX_PROC};
	if (r == 0 && bind(w->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		r = -errno;
	if (r == 0)
		r = subscribe(w->fd, PROC_CN_MCAST_LISTEN);
	if (r < 0) {
		if (w->fd >= 0)
			close(w->fd);
		free(w);
		return diag_error_set(err, r, "process events (netlink proc connector): %s%s",
				      strerror(-r), r == -EPERM ? " (needs root: CAP_NET_ADMIN)" : "");
	}
	*out = w;
	return 0;
}

void diag_procev_close(struct diag_procev *w)
{
	if (!w)
		return;
	subscribe(w->fd, PROC_CN_MCAST_IGNORE);
	close(w->fd);
	free(w);
}

int diag_procev_fd(const struct diag_procev *w)
{
	return w->fd;
}

/* One proc_event into *ev; false for kinds we do not report or a message too short. */
static bool decode(const struct proc_event *pe, size_t len, struct diag_procev_event *ev)
{
	size_t head = offsetof(struct proc_event, event_data);
	memset(ev, 0, sizeof(*ev));
	switch (pe->what) {
	case PROC_EVENT_FORK:
		if (len < head + sizeof(pe->event_data.fork))
			return false;
		*ev = (struct diag_procev_event){.kind = DIAG_PROCEV_FORK,
						 .pid = pe->event_data.fork.child_tgid,
						 .tid = pe->event_data.fork.child_pid,
						 .parent = pe->event_data.fork.parent_tgid};
		return true;
	case PROC_EVENT_EXEC:
		if (len < head + sizeof(pe->event_data.exec))
			return false;
		*ev = (struct diag_procev_event){.kind = DIAG_PROCEV_EXEC,
						 .pid = pe->event_data.exec.process_tgid,
						 .tid = pe->event_data.exec.process_pid};
		return true;
	case PROC_EVENT_COMM:
		if (len < head + sizeof(pe->event_data.comm))
			return false;
		ev->kind = DIAG_PROCEV_COMM;
		ev->pid = pe->event_data.comm.process_tgid;
		ev->tid = pe->event_data.comm.process_pid;
		memcpy(ev->comm, pe->event_data.comm.comm, sizeof(ev->comm) - 1);
		return true;
	case PROC_EVENT_EXIT:
		if (len < head + sizeof(pe->event_data.exit))
			return false;
		*ev = (struct diag_procev_event){.kind = DIAG_PROCEV_EXIT,
						 .pid = pe->event_data.exit.process_tgid,
						 .tid = pe->event_data.exit.process_pid};
		return true;
	default:
		return false;
	}
}

/* The next event of the current batch, or false when the batch is used up. */
static bool next_in_batch(struct diag_procev *w, struct diag_procev_event *ev)
{
	while (w->off < w->len) {
		const struct nlmsghdr *nl = (const struct nlmsghdr *)(w->buf + w->off);
		size_t left = w->len - w->off;
		if (left < sizeof(*nl) || nl->nlmsg_len < sizeof(*nl) || nl->nlmsg_len > left) {
			w->off = w->len; /* a truncated or lying header: drop the rest */
			return false;
		}
		w->off += NLMSG_ALIGN(nl->nlmsg_len);
		size_t plen = nl->nlmsg_len - NLMSG_HDRLEN;
		const struct cn_msg *cn = NLMSG_DATA(nl);
		if (nl->nlmsg_type != NLMSG_DONE || plen < sizeof(*cn) || cn->len > plen - sizeof(*cn) ||
		    cn->id.idx != CN_IDX_PROC || cn->id.val != CN_VAL_PROC)
			continue;
		if (decode((const struct proc_event *)cn->data, cn->len, ev))
			return true;
	}
	return false;
}

int diag_procev_read(struct diag_procev *w, struct diag_procev_event *out, size_t cap)
{
	size_t n = 0;
	while (n < cap) {
		if (w->lost) {
			out[n++] = (struct diag_procev_event){.kind = DIAG_PROCEV_LOST};
			w->lost = 0;
			continue;
		}
		if (next_in_batch(w, &out[n])) {
			n++;
			continue;
		}
		struct sockaddr_nl from;
		socklen_t fl = sizeof(from);
		ssize_t got = recvfrom(w->fd, w->buf, sizeof(w->buf), 0, (struct sockaddr *)&from, &fl);
		if (got < 0 && errno == ENOBUFS) {
			w->lost = 1;
			continue;
		}
		if (got <= 0)
			break;
		/* Only the kernel (port 0) speaks on this socket. */
		w->len = from.nl_pid == 0 ? (size_t)got : 0;
		w->off = 0;
	}
	return (int)n;
}
