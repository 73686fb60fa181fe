/* fuzz_dwarf: libFuzzer target for the ELF and DWARF indexing the indexer worker does on a
 * target-supplied file (the in-process implementation of lib/sym and lib/dwarf). Each input is a
 * whole ELF file (seeds: small -g fixtures at -O0 and -O2 in corpus_dwarf/), written to a memfd
 * and indexed as the worker would: the symbol table, the DWARF function index, the scope at
 * every function's entry and a few bytes in, globals, enumerators and types by name, inlined
 * instances and the line table. Any crash, leak or sanitizer report is a bug: the indexer must
 * refuse or survive every file. Never writes anywhere but its memfd. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dwarf/dwarf.h"
#include "sym/modmap.h"
#include "sym/symtab.h"

#define MAX_FUNCS 64

struct funcs {
	uint64_t addr[MAX_FUNCS];
	size_t n;
};

static int fn_cb(void *arg, const struct diag_module *mod, const char *name, uint64_t addr,
		 uint64_t size)
{
	struct funcs *f = arg;
	(void)mod;
	(void)name;
	if (f->n < MAX_FUNCS) {
		f->addr[f->n++] = addr;
		if (size > 4 && f->n < MAX_FUNCS)
			f->addr[f->n++] = addr + size / 2;
	}
	return 0;
}

static int inl_cb(void *arg, const struct diag_dwarf_inline *in)
{
	size_t *n = arg;
	*n += strlen(in->name) + strlen(in->caller) + strlen(in->call_file) + (in->linkage != NULL);
	return 0;
}

static void scope_at(struct diag_dwarf_file *f, uint64_t pc)
{
	struct diag_dwarf_scope *s = NULL;
	struct diag_error err = { 0 };
	if (diag_dwarf_scope_at(f, pc, &s, &err))
		return;
	char buf[256];
	for (size_t i = 0; i < s->nvars; i++)
		diag_type_spell(s->vars[i].type, buf, sizeof(buf));
	diag_dwarf_scope_free(s);
}

static void index_dwarf(const char *path, const struct funcs *fns)
{
	struct diag_dwarf_cache *dc = NULL;
	struct diag_dwarf_file *f = NULL;
	struct diag_error err = { 0 };
	if (diag_dwarf_cache_new(&dc))
		return;
	if (diag_dwarf_cache_get(dc, path, NULL, &f, &err) == 0) {
		for (size_t i = 0; i < fns->n; i++)
			scope_at(f, fns->addr[i]);
		size_t n = 0;
		diag_dwarf_inlined_foreach(f, inl_cb, &n, &err);
		static const char *const names[] = { "int", "struct req", "union u", "enum color",
						     "size_t", "counter", "RED", "main", "work" };
		struct diag_dwarf_var g;
		const struct diag_type *t;
		int64_t v;
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			diag_dwarf_find_type(f, names[i]);
			if (diag_dwarf_global(f, names[i], &g) == 0)
				free(g.name);
			diag_dwarf_enumerator(f, names[i], &t, &v);
		}
		uint64_t *addrs = NULL;
		const char *const files[] = { "work.c", "rng.c", "rich.c", "x.c" };
		for (size_t i = 0; i < 4; i++)
			for (unsigned line = 1; line < 60; line += 7)
				if (diag_dwarf_line_addrs(f, files[i], line, &addrs, &err) > 0)
					free(addrs);
	}
	diag_dwarf_cache_free(dc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = memfd_create("fuzz_dwarf", MFD_CLOEXEC);
	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	struct diag_module mod = { .name = "fuzz.so", .path = path, .host_path = path,
				   .end = UINT64_MAX };
	struct diag_modmap m = { .mods = &mod, .n = 1, .pid = 1 };
	struct diag_symcache *sc = NULL;
	struct funcs fns = { .n = 0 };
	if (diag_symcache_new(&sc) == 0) {
		diag_sym_foreach(sc, &m, NULL, fn_cb, &fns);
		diag_symcache_free(sc);
	}
	index_dwarf(path, &fns);
	close(fd);
	return 0;
}
