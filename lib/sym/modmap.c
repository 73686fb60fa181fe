/* modmap: builds the list of ELF modules of a process from /proc/PID/maps, with each module's
 * load bias and build-id. Owns only /proc parsing and ELF program headers; never reads symbol
 * tables (symcache.c does, once per file) and never stops or touches the target. */
#include "sym/modmap.h"

#include "util/procfs.h"
#include "util/grow.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DELETED_SUFFIX " (deleted)"

/* One file's mappings gathered from maps, before its ELF headers are read. */
struct pending {
	char *path;
	uint64_t start, end;
	uint64_t low_start, low_off; /* mapping with the lowest file offset: anchors the bias */
	uint64_t low_end;
	uint64_t ino;
	bool deleted;
};

struct pending_list {
	struct pending *v;
	size_t n, cap;
};

static void pending_list_free(struct pending_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].path);
	free(l->v);
}

static struct pending *pending_find(struct pending_list *l, const char *path)
{
	for (size_t i = l->n; i-- > 0;)
		if (strcmp(l->v[i].path, path) == 0)
			return &l->v[i];
	return NULL;
}

static int pending_add(struct pending_list *l, const char *path, bool deleted, uint64_t start,
		       uint64_t end, uint64_t off, uint64_t ino, struct diag_error *err)
{
	struct pending *p = pending_find(l, path);
	if (p) {
		if (start < p->start)
			p->start = start;
		if (end > p->end)
			p->end = end;
		if (off < p->low_off) {
			p->low_off = off;
			p->low_start = start;
			p->low_end = end;
		}
		return 0;
	}
	if (l->n >= DIAG_MODMAP_MAX_MODULES)
		return diag_error_set(err, -DIAG_E_LIMIT, "modmap: more than %d mapped files",
				      DIAG_MODMAP_MAX_MODULES);
	if (diag_grow((void **)&l->v, &l->cap, l->n + 1, sizeof(*l->v), 32))
		return diag_error_set(err, -ENOMEM, "modmap: out of memory");
	char *dup = strdup(path);
	if (!dup)
		return diag_error_set(err, -ENOMEM, "modmap: out of memory");
	l->v[l->n++] = (struct pending){ .path = dup, .start = start, .end = end, .low_start = start,
					 .low_off = off, .low_end = end, .ino = ino, .deleted = deleted };
	return 0;
}

/* The file-backed mappings of pid, each file once (its lowest offset kept). */
static int read_maps(pid_t pid, struct pending_list *l, struct diag_error *err)
{
	struct diag_proc_maps m;
	int rc = diag_proc_maps_open(pid, &m);
	if (rc == -ENOENT)
		return diag_error_set(err, -DIAG_E_GONE, "modmap: process %d does not exist", (int)pid);
	if (rc < 0)
		return diag_error_set(err, rc, "modmap: cannot open /proc/%d/maps: %s", (int)pid,
				      strerror(-rc));
	struct diag_proc_map e;
	size_t sl = strlen(DELETED_SUFFIX);
	while (rc == 0 && diag_proc_maps_next(&m, &e)) {
		if (e.inode == 0 || e.path[0] != '/')
			continue;
		char *path = (char *)e.path; /* the reader's line: ours until the next call */
		size_t len = strlen(path);
		bool deleted = len > sl && strcmp(path + len - sl, DELETED_SUFFIX) == 0;
		if (deleted)
			path[len - sl] = '\0';
		rc = pending_add(l, path, deleted, e.start, e.end, e.offset, e.inode, err);
	}
	diag_proc_maps_close(&m);
	return rc;
}

static bool fd_is_elf(int fd)
{
	unsigned char magic[SELFMAG];
	return pread(fd, magic, sizeof(magic), 0) == (ssize_t)sizeof(magic) &&
	       memcmp(magic, ELFMAG, SELFMAG) == 0;
}

/* Opens the mapped file from the daemon's side. The path in the target's root may name a
 * different inode than the one mapped (replaced on disk, other namespace); map_files always
 * names the mapped one. */
static int open_mapped(pid_t pid, const struct pending *p, char *host, size_t cap)
{
	if (!p->deleted) {
		snprintf(host, cap, "/proc/%d/root%s", (int)pid, p->path);
		int fd = open(host, O_RDONLY | O_CLOEXEC);
		struct stat st;
		if (fd >= 0 && fstat(fd, &st) == 0 && (uint64_t)st.st_ino == p->ino)
			return fd;
		if (fd >= 0)
			close(fd);
	}
	snprintf(host, cap, "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, (int)pid, p->low_start, p->low_end);
	return open(host, O_RDONLY | O_CLOEXEC);
}

static void read_build_id(Elf *elf, const GElf_Phdr *ph, char out[41])
{
	Elf_Data *d = elf_getdata_rawchunk(elf, (int64_t)ph->p_offset, ph->p_filesz, ELF_T_NHDR);
	if (!d)
		return;
	size_t off = 0, name_off, desc_off;
	GElf_Nhdr nh;
	while ((off = gelf_getnote(d, off, &nh, &name_off, &desc_off)) > 0) {
		if (nh.n_type != NT_GNU_BUILD_ID || nh.n_namesz != 4 ||
		    memcmp((char *)d->d_buf + name_off, "GNU", 4) != 0)
			continue;
		const unsigned char *b = (const unsigned char *)d->d_buf + desc_off;
		size_t n = nh.n_descsz > 20 ? 20 : nh.n_descsz;
		for (size_t i = 0; i < n; i++)
			snprintf(out + 2 * i, 3, "%02x", b[i]);
		return;
	}
}

/* bias = runtime address of the anchor mapping minus the vaddr its file offset has in the
 * PT_LOAD covering it; for the usual offset-0 mapping that is start - first PT_LOAD vaddr. */
static int elf_module_info(int fd, const struct pending *p, uint64_t *bias, char build_id[41])
{
	Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!elf)
		return -DIAG_E_INVALID;
	size_t nph;
	int rc = -DIAG_E_INVALID;
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	build_id[0] = '\0';
	if (elf_kind(elf) == ELF_K_ELF && elf_getphdrnum(elf, &nph) == 0) {
		for (size_t i = 0; i < nph; i++) {
			GElf_Phdr ph;
			if (!gelf_getphdr(elf, (int)i, &ph))
				continue;
			if (ph.p_type == PT_NOTE && !build_id[0])
				read_build_id(elf, &ph, build_id);
			if (ph.p_type != PT_LOAD || rc == 0)
				continue;
			uint64_t seg_off = ph.p_offset & ~(page - 1);
			if (p->low_off >= seg_off && p->low_off < ph.p_offset + ph.p_filesz) {
				*bias = p->low_start - p->low_off - (ph.p_vaddr - ph.p_offset);
				rc = 0;
			}
		}
	}
	elf_end(elf);
	return rc;
}

static char *read_exe(pid_t pid)
{
	char fn[64], buf[PATH_MAX];
	snprintf(fn, sizeof(fn), "/proc/%d/exe", (int)pid);
	ssize_t n = readlink(fn, buf, sizeof(buf) - 1);
	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	size_t sl = strlen(DELETED_SUFFIX);
	if ((size_t)n > sl && strcmp(buf + n - sl, DELETED_SUFFIX) == 0)
		buf[n - sl] = '\0';
	return strdup(buf);
}

static void module_free(struct diag_module *mod)
{
	free(mod->name);
	free(mod->path);
	free(mod->host_path);
}

/* Returns 1 if p became a module, 0 if it is not a usable ELF file, <0 on allocation failure. */
static int module_from_pending(pid_t pid, const struct pending *p, const char *exe,
			       struct diag_module *mod)
{
	char host[PATH_MAX + 64];
	int fd = open_mapped(pid, p, host, sizeof(host));
	if (fd < 0)
		return 0;
	uint64_t bias = 0;
	char bid[41];
	int ok = fd_is_elf(fd) && elf_module_info(fd, p, &bias, bid) == 0;
	close(fd);
	if (!ok)
		return 0;
	const char *base = strrchr(p->path, '/');
	*mod = (struct diag_module){ .start = p->start, .end = p->end, .bias = bias,
				     .is_main = exe && strcmp(exe, p->path) == 0 };
	memcpy(mod->build_id, bid, sizeof(bid));
	mod->name = strdup(base ? base + 1 : p->path);
	mod->path = strdup(p->path);
	mod->host_path = strdup(host);
	if (!mod->name || !mod->path || !mod->host_path) {
		module_free(mod);
		return -ENOMEM;
	}
	return 1;
}

/* Up to cap - 1 bytes of /proc/PID/<what> into buf, NUL-terminated; the count or -1. */
static ssize_t read_proc_small(pid_t pid, const char *what, char *buf, size_t cap)
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

/* The base name of argv[0] and the comm of pid, for the main module's other names. */
static void main_aliases(pid_t pid, struct diag_module *mod)
{
	char buf[PATH_MAX];
	if (read_proc_small(pid, "cmdline", buf, sizeof(buf)) > 0) {
		const char *base = strrchr(buf, '/');
		base = base ? base + 1 : buf;
		if (strcmp(base, mod->name) != 0 && strlen(base) < sizeof(mod->invoked))
			memcpy(mod->invoked, base, strlen(base) + 1);
	}
	char comm[sizeof(mod->comm) + 1];
	if (read_proc_small(pid, "comm", comm, sizeof(comm)) > 0) {
		comm[strcspn(comm, "\n")] = '\0';
		if (comm[0] && strlen(comm) < sizeof(mod->comm) && strcmp(comm, mod->name) != 0 &&
		    strcmp(comm, mod->invoked) != 0)
			memcpy(mod->comm, comm, strlen(comm) + 1);
	}
}

int diag_modmap_read(pid_t pid, struct diag_modmap *out, struct diag_error *err)
{
	struct pending_list l = { 0 };
	struct diag_modmap m = { .pid = pid };
	elf_version(EV_CURRENT);
	int rc = read_maps(pid, &l, err);
	if (rc == 0 && l.n) {
		m.mods = calloc(l.n, sizeof(*m.mods));
		if (!m.mods)
			rc = diag_error_set(err, -ENOMEM, "modmap: out of memory");
	}
	char *exe = rc == 0 ? read_exe(pid) : NULL;
	for (size_t i = 0; rc == 0 && i < l.n; i++) {
		int r = module_from_pending(pid, &l.v[i], exe, &m.mods[m.n]);
		if (r < 0)
			rc = diag_error_set(err, r, "modmap: out of memory");
		else if (r && m.mods[m.n++].is_main)
			main_aliases(pid, &m.mods[m.n - 1]);
	}
	free(exe);
	pending_list_free(&l);
	if (rc < 0) {
		diag_modmap_release(&m);
		return rc;
	}
	*out = m;
	return 0;
}

void diag_modmap_release(struct diag_modmap *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++)
		module_free(&m->mods[i]);
	free(m->mods);
	m->mods = NULL;
	m->n = 0;
}

const struct diag_module *diag_modmap_find(const struct diag_modmap *m, uint64_t addr)
{
	for (size_t i = 0; m && i < m->n; i++)
		if (addr >= m->mods[i].start && addr < m->mods[i].end)
			return &m->mods[i];
	return NULL;
}

static bool name_is_prefix(const char *name, const char *base)
{
	size_t n = strlen(name);
	return n && strncmp(base, name, n) == 0 && (base[n] == '.' || base[n] == '-');
}

/* Exact matches win over prefix matches; *count says how many modules matched at that rank. */
static const struct diag_module *match_name(const struct diag_modmap *m, const char *name,
					    size_t *count)
{
	const struct diag_module *hit = NULL;
	*count = 0;
	for (size_t i = 0; m && name && i < m->n; i++)
		if (strcmp(m->mods[i].name, name) == 0 || strcmp(m->mods[i].path, name) == 0 ||
		    (m->mods[i].invoked[0] && strcmp(m->mods[i].invoked, name) == 0) ||
		    (m->mods[i].comm[0] && strcmp(m->mods[i].comm, name) == 0)) {
			hit = hit ? hit : &m->mods[i];
			(*count)++;
		}
	if (*count)
		return hit;
	for (size_t i = 0; m && name && i < m->n; i++)
		if (name_is_prefix(name, m->mods[i].name)) {
			hit = hit ? hit : &m->mods[i];
			(*count)++;
		}
	return hit;
}

const struct diag_module *diag_modmap_by_name(const struct diag_modmap *m, const char *name)
{
	size_t count;
	const struct diag_module *hit = match_name(m, name, &count);
	return count == 1 ? hit : NULL;
}

size_t diag_modmap_count_name(const struct diag_modmap *m, const char *name)
{
	size_t count;
	match_name(m, name, &count);
	return count;
}

void diag_modmap_names(const struct diag_modmap *m, char *out, size_t cap)
{
	size_t used = 0;
	out[0] = '\0';
	for (size_t i = 0; m && i < m->n && used + 1 < cap; i++) {
		const struct diag_module *d = &m->mods[i];
		const char *alias = d->invoked[0] ? d->invoked : d->comm;
		int w = snprintf(out + used, cap - used, "%s%s%s%s%s", i ? ", " : "", d->name,
				 alias[0] ? " (" : "", alias, alias[0] ? ")" : "");
		used += w > 0 ? (size_t)w : 0;
	}
	if (used + 1 >= cap && cap > 4)
		memcpy(out + cap - 4, "...", 4);
	if (!out[0] && cap > 6)
		snprintf(out, cap, "(none)");
}

const struct diag_module *diag_modmap_main(const struct diag_modmap *m)
{
	for (size_t i = 0; m && i < m->n; i++)
		if (m->mods[i].is_main)
			return &m->mods[i];
	return NULL;
}
