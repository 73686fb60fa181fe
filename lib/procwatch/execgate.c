/* procwatch/execgate: see execgate.h. */
#include "procwatch/execgate.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <unistd.h>

struct diag_execgate {
	int fd;
	struct diag_marks marks; /* what diag_execgate_sync marked */
};

int diag_execgate_open(struct diag_execgate **out, struct diag_error *err)
{
	struct diag_execgate *g = calloc(1, sizeof(*g));
	if (!g)
		return diag_error_set(err, -ENOMEM, "exec gate: out of memory");
	/* FAN_CLASS_CONTENT: permission events; FAN_REPORT_TID: the exact thread in execve
	 * (any thread may exec; it becomes the leader). */
	g->fd = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK | FAN_REPORT_TID,
			      O_RDONLY | O_LARGEFILE | O_CLOEXEC);
	if (g->fd < 0) {
		int r = -errno;
		free(g);
		return diag_error_set(err, r, "exec gate (fanotify): %s%s", strerror(-r),
				      r == -EPERM ? " (needs root: CAP_SYS_ADMIN)" : "");
	}
	*out = g;
	return 0;
}

void diag_execgate_close(struct diag_execgate *g)
{
	if (!g)
		return;
	close(g->fd);
	diag_marks_clear(&g->marks);
	free(g);
}

int diag_execgate_fd(const struct diag_execgate *g)
{
	return g->fd;
}

static int mark(struct diag_execgate *g, unsigned flags, const char *path, const char *what,
		struct diag_error *err)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return diag_error_set(err, -errno, "%s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return diag_error_set(err, -EINVAL, "%s: not a regular file", path);
	if (fanotify_mark(g->fd, flags, FAN_OPEN_EXEC_PERM, AT_FDCWD, path) < 0)
		return diag_error_set(err, -errno, "%s: cannot %s the exec gate: %s", path, what,
				      strerror(errno));
	return 0;
}

int diag_execgate_add(struct diag_execgate *g, const char *path, struct diag_error *err)
{
	return mark(g, FAN_MARK_ADD, path, "add it to", err);
}

int diag_execgate_remove(struct diag_execgate *g, const char *path, struct diag_error *err)
{
	return mark(g, FAN_MARK_REMOVE, path, "remove it from", err);
}

int diag_execgate_sync(struct diag_execgate *g, const char *const *paths, size_t n,
		       struct diag_error *err)
{
	return diag_marks_sync(&g->marks, g->fd, FAN_OPEN_EXEC_PERM, paths, n, err);
}

const struct diag_marks *diag_execgate_marks(const struct diag_execgate *g)
{
	return &g->marks;
}

/* Answer an event we will not hand out (malformed, or no room), so no exec ever waits. */
static void allow_fd(int gate, int fd)
{
	struct fanotify_response r = {.fd = fd, .response = FAN_ALLOW};
	if (write(gate, &r, sizeof(r)) < 0) {
		/* the thread was killed meanwhile: nothing waits any more */
	}
	close(fd);
}

int diag_execgate_read(struct diag_execgate *g, struct diag_execgate_event *out, size_t cap)
{
	/* Read one event at a time (the buffer holds exactly one metadata record), so an event
	 * the caller has no room for stays queued in the kernel instead of being dropped. */
	size_t n = 0;
	while (n < cap) {
		struct fanotify_event_metadata m;
		ssize_t got = read(g->fd, &m, sizeof(m));
		if (got < (ssize_t)FAN_EVENT_METADATA_LEN)
			break;
		if (m.vers != FANOTIFY_METADATA_VERSION || m.event_len < FAN_EVENT_METADATA_LEN ||
		    m.fd < 0) {
			if (m.fd >= 0)
				allow_fd(g->fd, m.fd);
			continue;
		}
		struct stat st;
		if (!(m.mask & FAN_OPEN_EXEC_PERM) || fstat(m.fd, &st) < 0) {
			allow_fd(g->fd, m.fd);
			continue;
		}
		out[n++] = (struct diag_execgate_event){.tid = m.pid, .fd = m.fd,
							 .dev = st.st_dev, .ino = st.st_ino};
	}
	return (int)n;
}

int diag_execgate_allow(struct diag_execgate *g, struct diag_execgate_event *ev)
{
	struct fanotify_response r = {.fd = ev->fd, .response = FAN_ALLOW};
	int rc = write(g->fd, &r, sizeof(r)) == (ssize_t)sizeof(r) ? 0 : -errno;
	close(ev->fd);
	ev->fd = -1;
	return rc;
}
