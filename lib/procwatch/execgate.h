/* procwatch/execgate: holds every execve of chosen executables at the door (fanotify
 * FAN_OPEN_EXEC_PERM on each file's inode) until the daemon says go, so a process started
 * after a probe can be attached before the first instruction of its new image runs: the
 * daemon seizes the exec'ing thread while the kernel waits for the answer, allows the exec,
 * and the thread stops at PTRACE_EVENT_EXEC (docs/architecture.md, "Processes started after
 * the probe"). Only the marked files are gated: no other exec on the machine waits.
 *
 * Owns one fanotify group. Never ptraces or stops anything itself, and never keeps an exec
 * waiting: every event read is answered by diag_execgate_allow, and if the daemon dies the
 * kernel allows whatever was pending when the group's file closes. Needs root
 * (CAP_SYS_ADMIN). */
#ifndef DIAG_PROCWATCH_EXECGATE_H
#define DIAG_PROCWATCH_EXECGATE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "procwatch/marks.h"
#include "util/error.h"

/* One exec waiting at the gate. */
struct diag_execgate_event {
	pid_t tid;      /* the thread in execve (FAN_REPORT_TID) */
	int fd;         /* the kernel's fd of the file being executed (owned by the event) */
	uint64_t dev;   /* identity of that file */
	uint64_t ino;
};

struct diag_execgate;

int diag_execgate_open(struct diag_execgate **out, struct diag_error *err);
/* Allows nothing pending (there can be none: every read event is answered at once). */
void diag_execgate_close(struct diag_execgate *g);
int diag_execgate_fd(const struct diag_execgate *g);

/* Gate (or stop gating) the executable at path. The identity is the inode: a path seen
 * through another mount or a container's root (/proc/PID/root/...) is the same file.
 * Errors name the path and the reason. */
int diag_execgate_add(struct diag_execgate *g, const char *path, struct diag_error *err);
int diag_execgate_remove(struct diag_execgate *g, const char *path, struct diag_error *err);

/* Gate exactly the executables paths name now (procwatch/marks.h: new ones marked, replaced
 * or deselected ones unmarked, the group kept, so no exec waiting meanwhile is let through).
 * Returns how many could not be marked; err names the first and why. */
int diag_execgate_sync(struct diag_execgate *g, const char *const *paths, size_t n,
		       struct diag_error *err);
const struct diag_marks *diag_execgate_marks(const struct diag_execgate *g);

/* Up to cap waiting execs into out, without blocking. Returns their count. The caller must
 * answer each one with diag_execgate_allow, promptly: the thread waits until then (killably). */
int diag_execgate_read(struct diag_execgate *g, struct diag_execgate_event *out, size_t cap);

/* Let the exec go on and close the event's fd. Returns 0 or -errno (the exec went on
 * anyway if the thread was killed meanwhile). */
int diag_execgate_allow(struct diag_execgate *g, struct diag_execgate_event *ev);

#endif
