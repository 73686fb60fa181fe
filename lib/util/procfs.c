/* procfs: the one reader of /proc/ID/status and /proc/ID/stat fields. Reads only; never
 * caches (callers that need a cache keep their own) and never fails loudly: an absent process
 * or field is an answer, not an error. */
#include "util/procfs.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

bool diag_proc_status_field(pid_t id, const char *key, int base, unsigned long long *out)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)id);
	FILE *f = fopen(path, "re");
	size_t klen = strlen(key);
	bool found = false;
	while (f && !found && fgets(line, sizeof(line), f))
		if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
			*out = strtoull(line + klen + 1, NULL, base);
			found = true;
		}
	if (f)
		fclose(f);
	return found;
}

static int stat_field(const char *path, int field, char *out, size_t cap)
{
	char buf[1024];
	FILE *f = fopen(path, "re");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = '\0';
	const char *p = strrchr(buf, ')'); /* the comm before may hold spaces and ')' */
	for (int at = 2; p && *p; p++)
		if (*p == ' ' && ++at == field) {
			size_t len = strcspn(p + 1, " ");
			snprintf(out, cap, "%.*s", (int)len, p + 1);
			return 0;
		}
	return -1;
}

ssize_t diag_proc_read_small(pid_t pid, const char *what, char *buf, size_t cap)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, what);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, cap - 1) : -1;
	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return n;
}

int diag_proc_stat_field(pid_t pid, int field, char *out, size_t cap)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	return stat_field(path, field, out, cap);
}

int diag_proc_task_stat_field(pid_t pid, pid_t tid, int field, char *out, size_t cap)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, (int)tid);
	return stat_field(path, field, out, cap);
}

int diag_proc_maps_open(pid_t id, struct diag_proc_maps *m)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)id);
	m->f = fopen(path, "re");
	return m->f ? 0 : -errno;
}

bool diag_proc_maps_next(struct diag_proc_maps *m, struct diag_proc_map *out)
{
	while (m->f && fgets(m->line, sizeof(m->line), m->f)) {
		uint64_t lo, hi, off, ino;
		unsigned maj, min;
		char perms[8];
		int name = 0;
		if (sscanf(m->line, "%" SCNx64 "-%" SCNx64 " %7s %" SCNx64 " %x:%x %" SCNu64 " %n", &lo,
			   &hi, perms, &off, &maj, &min, &ino, &name) < 7)
			continue;
		char *p = name ? m->line + name : m->line + strlen(m->line);
		p[strcspn(p, "\n")] = '\0';
		*out = (struct diag_proc_map){.start = lo, .end = hi, .offset = off,
					      .dev = makedev(maj, min), .inode = ino, .path = p};
		snprintf(out->perms, sizeof(out->perms), "%.4s", perms);
		return true;
	}
	return false;
}

void diag_proc_maps_close(struct diag_proc_maps *m)
{
	if (m->f)
		fclose(m->f);
	m->f = NULL;
}

bool diag_proc_gone(pid_t id)
{
	char st[8];
	return diag_proc_stat_field(id, 3, st, sizeof(st)) < 0 || st[0] == 'Z' || st[0] == 'X';
}
