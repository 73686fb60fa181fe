/* modmap: the ELF modules mapped into one process, read from /proc/PID/maps.
 * Owns the module list (names, paths, address ranges, load bias, build-id); never reads
 * symbols (see symtab.h) and never touches the target beyond /proc. */
#ifndef DIAG_SYM_MODMAP_H
#define DIAG_SYM_MODMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

/* Upper bound on modules per process: a limit on what a target can make us allocate. */
#define DIAG_MODMAP_MAX_MODULES 4096

struct diag_module {
	char *name;       /* basename of the file, e.g. "libc.so.6", "work-O2-pie" */
	char *path;       /* path as seen in /proc/PID/maps (target's mount namespace), without " (deleted)" */
	char *host_path;  /* "/proc/PID/root" + path (or /proc/PID/map_files/S-E): openable by the daemon */
	uint64_t start;   /* lowest mapped address of this file */
	uint64_t end;     /* highest mapped address (exclusive) */
	uint64_t bias;    /* load bias: runtime address = ELF vaddr + bias (0 for non-PIE exe) */
	char build_id[41];/* hex GNU build-id, "" if none */
	bool is_main;     /* the main executable (/proc/PID/exe) */
	/* the main executable only: the names users type for it besides its file's, the base
	 * name of argv[0] (a symlink such as redis-server -> redis-check-rdb) and the comm; "" if
	 * the same as name or unknown */
	char invoked[64];
	char comm[16];
};

struct diag_modmap {
	struct diag_module *mods;
	size_t n;
	pid_t pid;        /* the process read (for messages) */
};

/* Read the ELF modules of pid (file-backed mappings whose file starts with the ELF magic; [vdso]
 * and non-ELF files are skipped; deleted files are opened through /proc/PID/map_files).
 * Returns 0, -DIAG_E_GONE if the process does not exist, -DIAG_E_LIMIT, or -errno. */
int diag_modmap_read(pid_t pid, struct diag_modmap *out, struct diag_error *err);

/* Frees the modules; accepts NULL and a zeroed map. Leaves *m zeroed. */
void diag_modmap_release(struct diag_modmap *m);

/* The modules' names, comma-separated, into out (truncated with "..." at cap; "(none)"). */
void diag_modmap_names(const struct diag_modmap *m, char *out, size_t cap);

/* The module whose [start, end) holds addr, or NULL. */
const struct diag_module *diag_modmap_find(const struct diag_modmap *m, uint64_t addr);

/* The module named by basename or full path; else the unique module whose basename starts with
 * name followed by '.' or '-' ("libc" and "libc.so" -> "libc.so.6"). NULL if none or several. */
const struct diag_module *diag_modmap_by_name(const struct diag_modmap *m, const char *name);

/* Number of modules matching name under the rules of diag_modmap_by_name (0, 1 or more). */
size_t diag_modmap_count_name(const struct diag_modmap *m, const char *name);

/* The main executable, or NULL. */
const struct diag_module *diag_modmap_main(const struct diag_modmap *m);

#endif
