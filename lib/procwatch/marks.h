/* procwatch/marks: the files one fanotify group marks, by identity (device and inode), each
 * held by an O_PATH descriptor so its mark can be taken off after the file was replaced or
 * deleted (its name then names another file, or none). Shared by the exec gate and the
 * library gate. An O_PATH open is not an open of the file's content: it raises no
 * permission event, so syncing never waits on the gate itself.
 *
 * Owns the descriptors; never opens the files' contents. */
#ifndef DIAG_PROCWATCH_MARKS_H
#define DIAG_PROCWATCH_MARKS_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define DIAG_MARKS_MAX 128

struct diag_mark {
	int fd;            /* O_PATH */
	uint64_t dev, ino;
	char path[256];    /* the name it was marked by (for status and messages; cut) */
};

struct diag_marks {
	struct diag_mark v[DIAG_MARKS_MAX];
	size_t n;
};

/* Make group fan mark (with mask) exactly the regular files paths name now: new ones marked,
 * ones no path names any more (deselected, or replaced: the name is another inode now)
 * unmarked. Returns the number of paths that could not be marked; err says why for the
 * first. */
int diag_marks_sync(struct diag_marks *ms, int fan, uint64_t mask, const char *const *paths,
		    size_t n, struct diag_error *err);
/* Closes the descriptors (the marks go with the group). */
void diag_marks_clear(struct diag_marks *ms);

#endif
