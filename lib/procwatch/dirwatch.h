/* procwatch/dirwatch: says when the file a selected path names may have changed (issue 11:
 * a package upgrade writes a new file and renames it over the path: another inode, which the
 * gates must mark at once). inotify on the directory of each path, for that name only:
 * created, renamed onto (IN_MOVED_TO), written and closed, attributes changed; a queue
 * overflow counts as a change. The caller then looks at the paths again (stat, marks).
 *
 * inotify, not fanotify: only names are needed (no permission, no fid to decode), it needs
 * no privilege and it does not gate anything. A symlink's target replaced in another
 * directory, or a directory replaced, is not seen (the next spec change or rescan takes it).
 *
 * Owns one inotify descriptor. Never reads or opens the files. */
#ifndef DIAG_PROCWATCH_DIRWATCH_H
#define DIAG_PROCWATCH_DIRWATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "util/error.h"

struct diag_dirwatch;

int diag_dirwatch_open(struct diag_dirwatch **out, struct diag_error *err);
void diag_dirwatch_close(struct diag_dirwatch *w); /* accepts NULL */
int diag_dirwatch_fd(const struct diag_dirwatch *w);

/* Watch the names paths give (absolute), exactly these. Returns how many directories could
 * not be watched; err names the first and why. */
int diag_dirwatch_sync(struct diag_dirwatch *w, const char *const *paths, size_t n,
		       struct diag_error *err);

/* Read what is ready, without blocking. True when one of the watched names changed (or
 * events were lost). */
bool diag_dirwatch_read(struct diag_dirwatch *w);

#endif
