/* fuzz_dwarf: libFuzzer target for the ELF and DWARF indexing the indexer worker does on a
 * target-supplied file (the in-process implementation of lib/sym and lib/dwarf). Each input is a
 * whole ELF file (seeds: small -g fixtures at -O0 and -O2 in corpus_dwarf/), written to a memfd
 * and indexed through the worker's own request handler (diag_ix_handle, what diagnose-indexer
 * runs, encoders included): the symbol table, the DWARF function index, the scope at every
 * function's entry and a few bytes in, globals, enumerators and types by name, inlined
 * instances and the line table. Any crash, leak or sanitizer report is a bug: the indexer must
 * refuse or survive every file. Never writes anywhere but its memfd. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dwarf/dwarf.h"
#include "indexer/indexer.h"
#include "indexworker/worker.h"
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

/* One request through the worker's handler, as diagnose-indexer runs it. */
static void call(struct diag_ix_state *st, struct diag_ix_buf *req, int fd, struct diag_ix_buf *out)
{
	int fds[1] = { fd >= 0 ? dup(fd) : -1 };
	diag_ix_handle(st, req->p, req->len, fds, fd >= 0 && fds[0] >= 0 ? 1 : 0, out);
	diag_ix_buf_release(req);
}

static void req_named(struct diag_ix_state *st, uint8_t op, const char *name, struct diag_ix_buf *out)
{
	struct diag_ix_buf b = { 0 };
	diag_ix_put_u8(&b, op);
	diag_ix_put_u32(&b, 1);
	diag_ix_put_str(&b, name);
	call(st, &b, -1, out);
}

/* The worker's whole session on one file: symbols, open (DWARF index), scopes, names,
 * inlined instances, line tables. */
static void index_via_worker(int fd, const struct funcs *fns)
{
	struct diag_ix_state *st = NULL;
	struct diag_ix_buf b = { 0 }, out = { 0 };
	if (diag_ix_state_new(&st))
		return;
	diag_ix_put_u8(&b, DIAG_IX_SYMS);
	call(st, &b, fd, &out);
	diag_ix_put_u8(&b, DIAG_IX_OPEN);
	diag_ix_put_u32(&b, 1);
	diag_ix_put_str(&b, "fuzz.so");
	call(st, &b, fd, &out);
	for (size_t i = 0; i < fns->n; i++) {
		diag_ix_put_u8(&b, DIAG_IX_SCOPE);
		diag_ix_put_u32(&b, 1);
		diag_ix_put_u64(&b, fns->addr[i]);
		call(st, &b, -1, &out);
	}
	static const char *const names[] = { "int", "struct req", "union u", "enum color", "size_t",
					     "counter", "RED", "main", "work" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		req_named(st, DIAG_IX_TYPE, names[i], &out);
		req_named(st, DIAG_IX_GLOBAL, names[i], &out);
		req_named(st, DIAG_IX_ENUM, names[i], &out);
	}
	diag_ix_put_u8(&b, DIAG_IX_INLINES);
	diag_ix_put_u32(&b, 1);
	call(st, &b, -1, &out);
	const char *const files[] = { "work.c", "rng.c", "rich.c", "x.c" };
	for (size_t i = 0; i < 4; i++)
		for (unsigned line = 1; line < 60; line += 7) {
			diag_ix_put_u8(&b, DIAG_IX_LINES);
			diag_ix_put_u32(&b, 1);
			diag_ix_put_str(&b, files[i]);
			diag_ix_put_u32(&b, line);
			call(st, &b, -1, &out);
		}
	diag_ix_buf_release(&out);
	diag_ix_state_free(st);
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
	index_via_worker(fd, &fns);
	close(fd);
	return 0;
}
