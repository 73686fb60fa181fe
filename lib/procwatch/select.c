/* procwatch/select: see select.h. */
#include "procwatch/select.h"

#include "util/procfs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#ifdef DIAG_HAVE_SYSTEMD
#include <systemd/sd-login.h>
#endif

int diag_selector_set_exe(struct diag_selector *s, const char *path, bool lib,
			  struct diag_error *err)
{
	struct stat st;
	if (!path[0])
		return diag_error_set_field(err, "select.exe", -EINVAL, "select.exe: empty path");
	if (stat(path, &st) < 0)
		return diag_error_set_field(err, "select.exe", -errno, "select.exe: %s: %s", path,
					    strerror(errno));
	if (!S_ISREG(st.st_mode))
		return diag_error_set_field(err, "select.exe", -EINVAL,
					    "select.exe: %s: not a regular file", path);
	if (snprintf(s->exe, sizeof(s->exe), "%s", path) >= (int)sizeof(s->exe))
		return diag_error_set_field(err, "select.exe", -ENAMETOOLONG,
					    "select.exe: path too long");
	s->has_exe = true;
	s->exe_is_library = lib;
	s->exe_dev = st.st_dev;
	s->exe_ino = st.st_ino;
	return 0;
}

int diag_selector_set_comm(struct diag_selector *s, const char *name, struct diag_error *err)
{
	size_t n = strlen(name);
	if (n == 0 || strchr(name, '/'))
		return diag_error_set_field(err, "select.comm", -EINVAL,
					    "select.comm: '%s': must be a process name (no '/'), "
					    "as pgrep -x matches it", name);
	if (n > DIAG_SELECT_COMM_MAX)
		return diag_error_set_field(err, "select.comm", -EINVAL,
					    "select.comm: '%s' is %zu bytes; the kernel keeps %d of a "
					    "process name, so it can never match (use '%.*s' or select.exe)",
					    name, n, DIAG_SELECT_COMM_MAX, DIAG_SELECT_COMM_MAX, name);
	memcpy(s->comm, name, n + 1);
	return 0;
}

int diag_selector_set_unit(struct diag_selector *s, const char *unit, struct diag_error *err)
{
	size_t n = strlen(unit);
	if (n == 0 || n >= sizeof(s->unit) || strchr(unit, '/') || !strchr(unit, '.'))
		return diag_error_set_field(err, "select.unit", -EINVAL,
					    "select.unit: '%s': must be a unit name (NAME.service)", unit);
	memcpy(s->unit, unit, n + 1);
	return 0;
}

int diag_selector_set_cgroup(struct diag_selector *s, const char *path, struct diag_error *err)
{
	size_t n = strlen(path);
	if (n == 0 || path[0] != '/' || n >= sizeof(s->cgroup))
		return diag_error_set_field(err, "select.cgroup", -EINVAL,
					    "select.cgroup: '%s': must be a cgroup path from the root of "
					    "the cgroup v2 hierarchy (/system.slice/x.service)", path);
	memcpy(s->cgroup, path, n + 1);
	while (n > 1 && s->cgroup[n - 1] == '/')
		s->cgroup[--n] = '\0';
	return 0;
}

/* One line of /proc/PID/FILE starting with prefix, without the prefix and the newline. */
static int proc_line(pid_t pid, const char *file, const char *prefix, char *out, size_t cap)
{
	char path[64], line[PATH_MAX + 64];
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	int r = -ENOENT;
	size_t plen = strlen(prefix);
	while (r < 0 && fgets(line, sizeof(line), f))
		if (strncmp(line, prefix, plen) == 0) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(out, cap, "%s", line + plen);
			r = 0;
		}
	fclose(f);
	return r;
}

static bool maps_file(pid_t pid, uint64_t dev, uint64_t ino, int *rc)
{
	struct diag_proc_maps m;
	struct diag_proc_map e;
	*rc = diag_proc_maps_open(pid, &m);
	bool found = false;
	while (*rc == 0 && !found && diag_proc_maps_next(&m, &e))
		found = e.inode == ino && e.dev == dev;
	diag_proc_maps_close(&m);
	return found;
}

static int match_exe(const struct diag_selector *s, pid_t pid, struct diag_error *err)
{
	int rc = 0;
	if (s->exe_is_library) {
		if (maps_file(pid, s->exe_dev, s->exe_ino, &rc))
			return 1;
		if (rc < 0)
			return diag_error_set(err, rc == -ENOENT ? -ESRCH : rc,
					      "pid %d: cannot read its maps: %s", (int)pid, strerror(-rc));
		diag_error_set_field(err, "select.exe", 0, "pid %d does not map %s", (int)pid, s->exe);
		return 0;
	}
	char path[64];
	struct stat st;
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	if (stat(path, &st) < 0)
		return diag_error_set(err, errno == ENOENT ? -ESRCH : -errno,
				      "pid %d: no executable (%s)", (int)pid,
				      errno == ENOENT ? "gone, or a kernel thread" : strerror(errno));
	if (st.st_dev == s->exe_dev && st.st_ino == s->exe_ino)
		return 1;
	diag_error_set_field(err, "select.exe", 0, "pid %d does not run %s", (int)pid, s->exe);
	return 0;
}

static int match_text(pid_t pid, const char *file, const char *prefix, const char *want,
		      bool subtree, const char *field, struct diag_error *err)
{
	char got[PATH_MAX];
	int r = proc_line(pid, file, prefix, got, sizeof(got));
	if (r < 0)
		return diag_error_set(err, r == -ENOENT ? -ESRCH : r, "pid %d: cannot read its %s: %s",
				      (int)pid, file, strerror(-r));
	size_t n = strlen(want);
	if (strcmp(got, want) == 0 ||
	    (subtree && strncmp(got, want, n) == 0 && (got[n] == '/' || n == 1)))
		return 1;
	diag_error_set_field(err, field, 0, "pid %d: %s is '%s', not '%s'", (int)pid, field, got,
			     want);
	return 0;
}

static int match_unit(const struct diag_selector *s, pid_t pid, struct diag_error *err)
{
#ifdef DIAG_HAVE_SYSTEMD
	char *unit = NULL;
	int r = sd_pid_get_unit(pid, &unit);
	if (r < 0) {
		diag_error_set_field(err, "select.unit", 0, "pid %d is in no systemd unit (%s)",
				     (int)pid, strerror(-r));
		return r == -ESRCH ? r : 0;
	}
	bool ok = strcmp(unit, s->unit) == 0;
	if (!ok)
		diag_error_set_field(err, "select.unit", 0, "pid %d is in unit %s, not %s", (int)pid,
				     unit, s->unit);
	free(unit);
	return ok;
#else
	(void)pid;
	return diag_error_set_field(err, "select.unit", -ENOTSUP,
				    "select.unit %s: this diagnosed was built without libsystemd",
				    s->unit);
#endif
}

int diag_selector_match(const struct diag_selector *s, pid_t pid, struct diag_error *err)
{
	int r = 1;
	if (r == 1 && s->has_exe)
		r = match_exe(s, pid, err);
	if (r == 1 && s->comm[0])
		r = match_text(pid, "comm", "", s->comm, false, "select.comm", err);
	if (r == 1 && s->cgroup[0])
		r = match_text(pid, "cgroup", "0::", s->cgroup, true, "select.cgroup", err);
	if (r == 1 && s->unit[0])
		r = match_unit(s, pid, err);
	return r;
}
