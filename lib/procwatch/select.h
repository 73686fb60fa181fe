/* procwatch/select: whether a process is one a selector takes (issue 11): its executable (by
 * file identity, so a path seen through a container's root or another mount matches), its
 * name as `pgrep -x` compares it, its cgroup (v2), its systemd unit, or a library it maps.
 * Reads /proc and libsystemd only; never touches the process. A process that is gone or
 * cannot be read is not taken, with the reason. */
#ifndef DIAG_PROCWATCH_SELECT_H
#define DIAG_PROCWATCH_SELECT_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

#define DIAG_SELECT_COMM_MAX 15 /* TASK_COMM_LEN - 1: what the kernel keeps of a name */

/* Every member set is required (AND); an empty selector takes every process. */
struct diag_selector {
	bool has_exe;          /* the executable or a library the process maps */
	bool exe_is_library;   /* match a mapping of the file, not the executable */
	uint64_t exe_dev, exe_ino;
	char exe[PATH_MAX];    /* as given, for messages */
	char comm[DIAG_SELECT_COMM_MAX + 1];
	char unit[256];        /* NAME.service, "" when none */
	char cgroup[PATH_MAX]; /* a cgroup v2 path ("/system.slice/x.service"), "" when none */
};

/* Set the executable (or library, when lib) by path: its identity is taken now. Errors name
 * the field "select.exe" and the reason. */
int diag_selector_set_exe(struct diag_selector *s, const char *path, bool lib,
			  struct diag_error *err);
/* Set the name: more than 15 bytes can never match (the kernel keeps 15), so that is an error
 * naming "select.comm", as is an empty name or one with '/'. */
int diag_selector_set_comm(struct diag_selector *s, const char *name, struct diag_error *err);
int diag_selector_set_unit(struct diag_selector *s, const char *unit, struct diag_error *err);
int diag_selector_set_cgroup(struct diag_selector *s, const char *path, struct diag_error *err);

/* 1 when pid is taken, 0 when not (err says which member refused it), or a negative code
 * (-ESRCH: gone; -EACCES) with err naming pid and the reason. */
int diag_selector_match(const struct diag_selector *s, pid_t pid, struct diag_error *err);

#endif
