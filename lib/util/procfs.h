/* procfs: fields of /proc/ID/status and /proc/ID/stat (ID a pid or a tid) and the lines of
 * /proc/ID/maps, read in one place. Never caches and never touches a process in any other way. */
#ifndef DIAG_UTIL_PROCFS_H
#define DIAG_UTIL_PROCFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* KEY's value in /proc/ID/status (ID a pid or a tid: "TracerPid", "SigIgn", "Seccomp"), read
 * in base (10, or 16 for the signal masks). False when the file or the key is absent. */
bool diag_proc_status_field(pid_t id, const char *key, int base, unsigned long long *out);

/* True when process id has exited (no /proc entry) or is a zombie not reaped yet. */
bool diag_proc_gone(pid_t id);

/* Up to cap - 1 bytes of /proc/PID/<what> (cmdline, comm, cgroup...) into buf, always
 * NUL-terminated (empty when unreadable). Returns the bytes read or -1. */
ssize_t diag_proc_read_small(pid_t pid, const char *what, char *buf, size_t cap);

/* Field `field` (1-based as in proc(5): 3 state, 9 flags, 22 start time) of /proc/PID/stat
 * into out. Returns 0 or -1 (no such process, or no such field). */
int diag_proc_stat_field(pid_t pid, int field, char *out, size_t cap);

/* The same for thread tid of process pid, from /proc/PID/task/TID/stat. */
int diag_proc_task_stat_field(pid_t pid, pid_t tid, int field, char *out, size_t cap);

/* One line of /proc/ID/maps. */
struct diag_proc_map {
	uint64_t start, end;
	char perms[5];      /* "r-xp" */
	uint64_t offset;    /* in the file */
	uint64_t dev;       /* the file's device, as st_dev (makedev of maps' major:minor) */
	uint64_t inode;     /* 0: not backed by a file */
	const char *path;   /* "" when anonymous; "[heap]", "[vdso]" as maps names them; valid
	                     * until the next diag_proc_maps_next */
};

/* A reader of /proc/ID/maps, one mapping at a time, lowest address first:
 * diag_proc_maps_open, diag_proc_maps_next until it returns false, diag_proc_maps_close. Every
 * length is bounded (what maps says is hostile input); a line that does not parse is skipped. */
struct diag_proc_maps {
	FILE *f;
	char line[4400];    /* PATH_MAX and the fields before it */
};

/* Returns 0, or -errno (-ENOENT: no such process). */
int diag_proc_maps_open(pid_t id, struct diag_proc_maps *m);
/* The next mapping into *out; false at the end. */
bool diag_proc_maps_next(struct diag_proc_maps *m, struct diag_proc_map *out);
void diag_proc_maps_close(struct diag_proc_maps *m);

#endif
