/* procwatch/libgate: holds the dynamic linker's open of chosen shared libraries (fanotify
 * FAN_OPEN_PERM on each file's inode) until the daemon says go, so a process that loads the
 * library (at its start, or by a later dlopen) can be attached before the library is mapped
 * (docs/architecture.md, "Processes started after the probe": the library gate).
 *
 * Every open of a marked file waits in the kernel for an answer, so the group is answered by
 * a thread of its own, which never waits on the daemon's main loop: opens by this process (the
 * daemon reads the library's symbols itself) and by its children (the indexer worker), and
 * opens made by anything but the opener's dynamic linker (`cat`, ldconfig, a test harness:
 * the open's user pc, from /proc/TID/syscall, is not inside the mapping of its ld.so) are
 * allowed at once. Only an open by ld.so in another process is handed to the daemon (a pipe
 * on its epoll set), which must answer it with diag_libgate_allow; when the pipe is full the
 * thread allows the open itself. If the daemon dies, the kernel allows whatever was pending
 * when the group's file closes.
 *
 * Owns one fanotify group, its thread and the pipe. Never ptraces or stops anything itself.
 * Needs root (CAP_SYS_ADMIN). */
#ifndef DIAG_PROCWATCH_LIBGATE_H
#define DIAG_PROCWATCH_LIBGATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "procwatch/marks.h"
#include "util/error.h"

/* One library open waiting at the gate, made by a process's dynamic linker. */
struct diag_libgate_event {
	pid_t tid;      /* the thread in open (FAN_REPORT_TID) */
	pid_t tgid;     /* its process */
	int fd;         /* the kernel's fd of the file being opened (owned by the event) */
	uint64_t dev;   /* identity of that file */
	uint64_t ino;
	uint64_t t_ns;  /* CLOCK_MONOTONIC when the gate's thread read it (for the hold's time) */
};

/* What the gate's thread did, since it was opened. */
struct diag_libgate_stats {
	uint64_t self;      /* opens by this process or its children: allowed at once */
	uint64_t other;     /* opens not by a dynamic linker: allowed at once */
	uint64_t handed;    /* opens by a dynamic linker: handed to the daemon */
	uint64_t overflow;  /* handed, but the pipe was full: allowed at once */
};

struct diag_libgate;

int diag_libgate_open(struct diag_libgate **out, struct diag_error *err);
/* Stops the thread and allows every open still waiting (handed and not read, or not read
 * from the kernel yet). Accepts NULL. */
void diag_libgate_close(struct diag_libgate *g);
/* The fd the daemon polls (readable when an open was handed over). */
int diag_libgate_fd(const struct diag_libgate *g);

/* Gate exactly the shared libraries paths name now (by inode: a path through another mount or
 * a container's root is the same file; procwatch/marks.h: new ones marked, replaced or
 * deselected ones unmarked, the group kept). Returns how many could not be marked; err names
 * the first and why. Called by the daemon's thread only. */
int diag_libgate_sync(struct diag_libgate *g, const char *const *paths, size_t n,
		      struct diag_error *err);
const struct diag_marks *diag_libgate_marks(const struct diag_libgate *g);

/* Up to cap handed opens into out, without blocking. Returns their count. Each must be
 * answered with diag_libgate_allow, promptly: the thread in open waits until then
 * (killably). */
int diag_libgate_read(struct diag_libgate *g, struct diag_libgate_event *out, size_t cap);

/* Let the open go on and close the event's fd. Returns 0 or -errno (the open went on anyway
 * if the thread was killed meanwhile). Safe to call twice (the second does nothing). */
int diag_libgate_allow(struct diag_libgate *g, struct diag_libgate_event *ev);

void diag_libgate_stats(const struct diag_libgate *g, struct diag_libgate_stats *out);

/* Whether thread tid of process tgid, blocked in a system call, made it from its dynamic
 * linker's code (the user pc of /proc/TID/syscall inside the mapping of the file mapped at
 * AT_BASE). False when anything cannot be read. For the gate's thread; exposed for tests. */
bool diag_libgate_from_ldso(pid_t tgid, pid_t tid);

#endif
