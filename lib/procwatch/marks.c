/* procwatch/marks: see marks.h. */
#include "procwatch/marks.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <unistd.h>

/* fanotify_mark takes no O_PATH descriptor as its object (fdget skips them: EBADF), but a
 * lookup of its /proc/self/fd link lands on the very inode it holds. */
static int mark_fd(int fan, unsigned flags, uint64_t mask, int fd)
{
	char link[40];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	return fanotify_mark(fan, flags, mask, AT_FDCWD, link);
}

static int mark_index(const struct diag_marks *ms, uint64_t dev, uint64_t ino)
{
	for (size_t i = 0; i < ms->n; i++)
		if (ms->v[i].dev == dev && ms->v[i].ino == ino)
			return (int)i;
	return -1;
}

/* The file path names now, as an O_PATH descriptor (checked: a regular file). */
static int open_path(const char *path, struct stat *st, struct diag_error *err)
{
	int fd = open(path, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return diag_error_set(err, -errno, "%s: %s", path, strerror(errno));
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
		int r = S_ISREG(st->st_mode) ? -errno : -EINVAL;
		close(fd);
		return diag_error_set(err, r, "%s: not a regular file", path);
	}
	return fd;
}

int diag_marks_sync(struct diag_marks *ms, int fan, uint64_t mask, const char *const *paths,
		    size_t n, struct diag_error *err)
{
	bool keep[DIAG_MARKS_MAX] = { false };
	int failed = 0;
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		struct diag_error e = { 0 };
		int fd = open_path(paths[i], &st, &e);
		int at = fd < 0 ? -1 : mark_index(ms, st.st_dev, st.st_ino);
		if (at >= 0) {
			keep[at] = true;
			close(fd);
			continue;
		}
		if (fd >= 0 && ms->n == DIAG_MARKS_MAX) {
			diag_error_set(&e, -ENOSPC, "%s: more than %d files gated", paths[i],
				       DIAG_MARKS_MAX);
			close(fd);
			fd = -1;
		}
		if (fd >= 0 && mark_fd(fan, FAN_MARK_ADD, mask, fd) < 0) {
			diag_error_set(&e, -errno, "%s: cannot mark it: %s", paths[i], strerror(errno));
			close(fd);
			fd = -1;
		}
		if (fd < 0) {
			if (!failed++ && err)
				*err = e;
			continue;
		}
		struct diag_mark *m = &ms->v[ms->n];
		m->fd = fd;
		m->dev = st.st_dev;
		m->ino = st.st_ino;
		snprintf(m->path, sizeof(m->path), "%s", paths[i]);
		keep[ms->n++] = true;
	}
	for (size_t i = ms->n; i-- > 0;) {
		if (keep[i])
			continue;
		mark_fd(fan, FAN_MARK_REMOVE, mask, ms->v[i].fd);
		close(ms->v[i].fd);
		ms->v[i] = ms->v[--ms->n];
		keep[i] = keep[ms->n];
	}
	return failed;
}

void diag_marks_clear(struct diag_marks *ms)
{
	for (size_t i = 0; i < ms->n; i++)
		close(ms->v[i].fd);
	ms->n = 0;
}
