/* procwatch/dirwatch: see dirwatch.h. */
#include "procwatch/dirwatch.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#define DIRWATCH_MAX 128
#define DIRWATCH_MASK (IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_ATTRIB)

struct name {
	int wd;
	char path[PATH_MAX]; /* as given */
	const char *base;    /* into path */
};

struct diag_dirwatch {
	int fd;
	struct name v[DIRWATCH_MAX];
	size_t n;
};

int diag_dirwatch_open(struct diag_dirwatch **out, struct diag_error *err)
{
	struct diag_dirwatch *w = calloc(1, sizeof(*w));
	if (!w)
		return diag_error_set(err, -ENOMEM, "directory watch: out of memory");
	w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->fd < 0) {
		int r = -errno;
		free(w);
		return diag_error_set(err, r, "directory watch (inotify): %s", strerror(-r));
	}
	*out = w;
	return 0;
}

void diag_dirwatch_close(struct diag_dirwatch *w)
{
	if (!w)
		return;
	close(w->fd);
	free(w);
}

int diag_dirwatch_fd(const struct diag_dirwatch *w)
{
	return w->fd;
}

static bool same_set(const struct diag_dirwatch *w, const char *const *paths, size_t n)
{
	if (n != w->n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (strcmp(paths[i], w->v[i].path) != 0)
			return false;
	return true;
}

int diag_dirwatch_sync(struct diag_dirwatch *w, const char *const *paths, size_t n,
		       struct diag_error *err)
{
	if (same_set(w, paths, n))
		return 0;
	for (size_t i = 0; i < w->n; i++) /* a directory's watch is one wd: removed once */
		inotify_rm_watch(w->fd, w->v[i].wd);
	w->n = 0;
	int failed = 0;
	for (size_t i = 0; i < n && w->n < DIRWATCH_MAX; i++) {
		struct name *e = &w->v[w->n];
		const char *slash = strrchr(paths[i], '/');
		size_t len = strlen(paths[i]);
		if (!slash || len >= sizeof(e->path)) {
			if (!failed++)
				diag_error_set(err, -EINVAL, "%s: not an absolute path", paths[i]);
			continue;
		}
		memcpy(e->path, paths[i], len + 1);
		char dir[PATH_MAX];
		size_t dl = slash == paths[i] ? 1 : (size_t)(slash - paths[i]);
		memcpy(dir, paths[i], dl);
		dir[dl] = '\0';
		e->wd = inotify_add_watch(w->fd, dir, DIRWATCH_MASK);
		if (e->wd < 0) {
			if (!failed++)
				diag_error_set(err, -errno, "%s: cannot watch it: %s", dir, strerror(errno));
			continue;
		}
		e->base = e->path + (slash - paths[i]) + 1;
		w->n++;
	}
	return failed;
}

static bool watched(const struct diag_dirwatch *w, int wd, const char *name)
{
	for (size_t i = 0; i < w->n; i++)
		if (w->v[i].wd == wd && strcmp(w->v[i].base, name) == 0)
			return true;
	return false;
}

bool diag_dirwatch_read(struct diag_dirwatch *w)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool changed = false;
	ssize_t got;
	while ((got = read(w->fd, buf, sizeof(buf))) > 0) {
		for (ssize_t off = 0; off + (ssize_t)sizeof(struct inotify_event) <= got;) {
			const struct inotify_event *ev = (const void *)(buf + off);
			size_t step = sizeof(*ev) + ev->len;
			if (off + (ssize_t)step > got)
				break;
			if ((ev->mask & IN_Q_OVERFLOW) ||
			    (ev->len && memchr(ev->name, '\0', ev->len) && watched(w, ev->wd, ev->name)))
				changed = true;
			off += (ssize_t)step;
		}
	}
	return changed;
}
