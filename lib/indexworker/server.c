/* indexworker/server: the worker's side of the protocol. Decodes one request, runs the in-process
 * implementation (lib/dwarf, lib/sym) on the descriptors the daemon passed, encodes the answer.
 * Types cross as a graph: each type gets a per-file id the first time it is sent, and later
 * replies refer to it by id. Runs inside the sandbox: never opens a file itself. */
#include "indexer/indexer.h"
#include "indexworker/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dwarf/dwarf.h"
#include "sym/symtab.h"
#include "util/grow.h"
#include "util/u64map.h"

#define MAX_TYPES_PER_REPLY (1u << 20)

struct wfile {
	struct diag_dwarf_file *f;
	struct diag_u64map ids; /* const struct diag_type * -> id (as a pointer-sized integer) */
	uint32_t next_id;
};

struct diag_ix_state {
	struct diag_u64map files; /* daemon's file id -> struct wfile */
};

int diag_ix_state_new(struct diag_ix_state **out)
{
	struct diag_ix_state *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	diag_u64map_init(&st->files);
	*out = st;
	return 0;
}

static void wfile_free(struct wfile *w)
{
	if (!w)
		return;
	diag_dwarf_file_free(w->f);
	diag_u64map_release(&w->ids);
	free(w);
}

void diag_ix_state_free(struct diag_ix_state *st)
{
	if (!st)
		return;
	size_t pos = 0;
	uint64_t k;
	void *v;
	while (diag_u64map_next(&st->files, &pos, &k, &v))
		wfile_free(v);
	diag_u64map_release(&st->files);
	free(st);
}

static void put_error(struct diag_ix_buf *out, int code, const char *msg)
{
	out->len = 0;
	out->oom = false;
	diag_ix_put_u32(out, (uint32_t)(code < 0 ? code : -EIO));
	diag_ix_put_str(out, msg);
}

static void put_err(struct diag_ix_buf *out, const struct diag_error *e, int rc)
{
	put_error(out, rc, e->code && e->msg[0] ? e->msg : diag_strerror(rc));
}

/* ---- types ---- */

struct tlist {
	const struct diag_type **v;
	size_t n, cap;
	bool full;
};

static uint32_t type_id(struct wfile *w, const struct diag_type *t)
{
	return t ? (uint32_t)(uintptr_t)diag_u64map_get(&w->ids, (uint64_t)(uintptr_t)t) : 0;
}

static void want(struct wfile *w, struct tlist *l, const struct diag_type *t)
{
	if (!t || type_id(w, t) || l->full)
		return;
	if (l->n >= MAX_TYPES_PER_REPLY || diag_grow((void **)&l->v, &l->cap, l->n + 1, sizeof(*l->v), 64)) {
		l->full = true;
		return;
	}
	if (diag_u64map_put(&w->ids, (uint64_t)(uintptr_t)t, (void *)(uintptr_t)(w->next_id + 1))) {
		l->full = true;
		return;
	}
	w->next_id++;
	l->v[l->n++] = t;
}

static void put_type(struct wfile *w, struct diag_ix_buf *b, const struct diag_type *t)
{
	diag_ix_put_u32(b, type_id(w, t));
	diag_ix_put_u8(b, (uint8_t)t->kind);
	diag_ix_put_str(b, t->name);
	diag_ix_put_u64(b, t->size);
	diag_ix_put_u8(b, (uint8_t)(t->is_signed | t->is_char << 1 | t->declaration << 2));
	diag_ix_put_u32(b, type_id(w, t->target));
	diag_ix_put_u64(b, t->count);
	diag_ix_put_u32(b, (uint32_t)t->nmembers);
	for (size_t i = 0; i < t->nmembers; i++) {
		const struct diag_member *m = &t->members[i];
		diag_ix_put_str(b, m->name);
		diag_ix_put_u64(b, m->offset);
		diag_ix_put_u32(b, m->bit_size);
		diag_ix_put_u32(b, m->bit_offset);
		diag_ix_put_u32(b, type_id(w, m->type));
	}
	diag_ix_put_u32(b, (uint32_t)t->nenums);
	for (size_t i = 0; i < t->nenums; i++) {
		diag_ix_put_str(b, t->enums[i].name);
		diag_ix_put_u64(b, (uint64_t)t->enums[i].value);
	}
}

/* Emits every type reachable from roots that the daemon has not been sent yet (ids ascending,
 * consecutive). false when there are too many. */
static bool put_types(struct wfile *w, struct diag_ix_buf *b, const struct diag_type *const *roots,
		      size_t nroots)
{
	struct tlist l = { 0 };
	uint32_t first = w->next_id + 1;
	for (size_t i = 0; i < nroots; i++)
		want(w, &l, roots[i]);
	for (size_t i = 0; i < l.n && !l.full; i++) {
		const struct diag_type *t = l.v[i];
		want(w, &l, t->target);
		for (size_t j = 0; j < t->nmembers; j++)
			want(w, &l, t->members[j].type);
	}
	if (l.full) { /* never sent: forget their ids */
		for (size_t i = 0; i < l.n; i++)
			diag_u64map_del(&w->ids, (uint64_t)(uintptr_t)l.v[i]);
		w->next_id = first - 1;
	} else {
		diag_ix_put_u32(b, first);
		diag_ix_put_u32(b, (uint32_t)l.n);
		for (size_t i = 0; i < l.n; i++)
			put_type(w, b, l.v[i]);
	}
	free(l.v);
	return !l.full;
}

static void put_loc(struct diag_ix_buf *b, const struct diag_loc *l)
{
	diag_ix_put_u32(b, (uint32_t)l->nops);
	for (size_t i = 0; i < l->nops && i < DIAG_LOC_MAX_OPS; i++) {
		diag_ix_put_u8(b, l->ops[i].atom);
		diag_ix_put_u64(b, l->ops[i].op1);
		diag_ix_put_u64(b, l->ops[i].op2);
	}
	diag_ix_put_u8(b, l->has_const);
	diag_ix_put_u64(b, (uint64_t)l->const_val);
}

static void put_var(struct wfile *w, struct diag_ix_buf *b, const struct diag_dwarf_var *v)
{
	diag_ix_put_str(b, v->name);
	diag_ix_put_u32(b, type_id(w, v->type));
	diag_ix_put_u8(b, v->is_param);
	put_loc(b, &v->loc);
	diag_ix_put_str(b, v->loc_text);
}

/* ---- requests ---- */

static struct wfile *file_of(struct diag_ix_state *st, uint32_t id, struct diag_ix_buf *out)
{
	struct wfile *w = diag_u64map_get(&st->files, id);
	if (!w)
		put_error(out, -DIAG_E_STATE, "indexer: no open file with that id");
	return w;
}

static void do_open(struct diag_ix_state *st, struct diag_ix_rd *rd, int *fds, size_t nfds,
		    struct diag_ix_buf *out)
{
	uint32_t id = diag_ix_get_u32(rd);
	char name[256];
	diag_ix_get_strbuf(rd, name, sizeof(name));
	if (rd->bad || nfds < 1)
		return put_error(out, -DIAG_E_PARSE, "indexer: malformed open request");
	wfile_free(diag_u64map_del(&st->files, id));
	struct wfile *w = calloc(1, sizeof(*w));
	int refs_fd = nfds == 1 ? dup(fds[0]) : -1; /* the debug refs are read only if needed */
	struct diag_error e = { 0 };
	int used = -1;
	int rc = w ? diag_dwarf_open_fds(name, fds[0], fds + 1, nfds - 1, &used, &w->f, &e) : -ENOMEM;
	for (size_t i = 0; !w && i < nfds; i++)
		close(fds[i]);
	if (rc == -DIAG_E_NODEBUG && refs_fd >= 0) {
		char bid[128], link[256];
		diag_dwarf_debug_refs(refs_fd, bid, sizeof(bid), link, sizeof(link));
		diag_ix_put_u32(out, DIAG_IX_NEED_DEBUG);
		diag_ix_put_str(out, bid);
		diag_ix_put_str(out, link);
	} else if (rc) {
		put_err(out, &e, rc);
	} else {
		diag_u64map_init(&w->ids);
		if (diag_u64map_put(&st->files, id, w)) {
			wfile_free(w);
			w = NULL;
			put_error(out, -ENOMEM, "indexer: out of memory");
		} else {
			diag_ix_put_u32(out, 0);
			diag_ix_put_u32(out, (uint32_t)used);
		}
	}
	if (rc)
		free(w);
	if (refs_fd >= 0)
		close(refs_fd);
}

static void do_scope(struct wfile *w, struct diag_ix_rd *rd, struct diag_ix_buf *out)
{
	uint64_t pc = diag_ix_get_u64(rd);
	struct diag_dwarf_scope *s = NULL;
	struct diag_error e = { 0 };
	int rc = diag_dwarf_scope_at(w->f, pc, &s, &e);
	if (rc)
		return put_err(out, &e, rc);
	const struct diag_type **roots = calloc(s->nvars + 1, sizeof(*roots));
	if (!roots) {
		diag_dwarf_scope_free(s);
		return put_error(out, -ENOMEM, "indexer: out of memory");
	}
	roots[0] = s->ret_type;
	for (size_t i = 0; i < s->nvars; i++)
		roots[i + 1] = s->vars[i].type;
	diag_ix_put_u32(out, 0);
	bool ok = put_types(w, out, roots, s->nvars + 1);
	free(roots);
	if (ok) {
		diag_ix_put_str(out, s->func);
		diag_ix_put_u64(out, s->low_pc);
		diag_ix_put_u8(out, s->at_entry);
		diag_ix_put_u32(out, type_id(w, s->ret_type));
		put_loc(out, &s->frame.fb);
		diag_ix_put_u8(out, s->frame.cfa_known);
		diag_ix_put_u32(out, (uint32_t)s->frame.cfa_reg);
		diag_ix_put_u64(out, (uint64_t)s->frame.cfa_off);
		diag_ix_put_u32(out, (uint32_t)s->nvars);
		for (size_t i = 0; i < s->nvars; i++)
			put_var(w, out, &s->vars[i]);
	} else {
		put_error(out, -DIAG_E_LIMIT, "indexer: too many types in one scope");
	}
	diag_dwarf_scope_free(s);
}

static void do_global(struct wfile *w, struct diag_ix_rd *rd, struct diag_ix_buf *out)
{
	char name[DIAG_IX_MAX_STR];
	struct diag_dwarf_var v;
	if (!diag_ix_get_strbuf(rd, name, sizeof(name)))
		return put_error(out, -DIAG_E_PARSE, "indexer: malformed request");
	int rc = diag_dwarf_global(w->f, name, &v);
	if (rc)
		return put_error(out, rc, "no such global");
	diag_ix_put_u32(out, 0);
	if (put_types(w, out, &v.type, 1))
		put_var(w, out, &v);
	else
		put_error(out, -DIAG_E_LIMIT, "indexer: too many types");
	free(v.name);
}

static void do_enum(struct wfile *w, struct diag_ix_rd *rd, struct diag_ix_buf *out)
{
	char name[DIAG_IX_MAX_STR];
	const struct diag_type *t = NULL;
	int64_t value = 0;
	if (!diag_ix_get_strbuf(rd, name, sizeof(name)))
		return put_error(out, -DIAG_E_PARSE, "indexer: malformed request");
	int rc = diag_dwarf_enumerator(w->f, name, &t, &value);
	if (rc)
		return put_error(out, rc, "no such enumerator");
	diag_ix_put_u32(out, 0);
	if (!put_types(w, out, &t, 1))
		return put_error(out, -DIAG_E_LIMIT, "indexer: too many types");
	diag_ix_put_u32(out, type_id(w, t));
	diag_ix_put_u64(out, (uint64_t)value);
}

static void do_type(struct wfile *w, struct diag_ix_rd *rd, struct diag_ix_buf *out)
{
	char name[DIAG_IX_MAX_STR];
	if (!diag_ix_get_strbuf(rd, name, sizeof(name)))
		return put_error(out, -DIAG_E_PARSE, "indexer: malformed request");
	const struct diag_type *t = diag_dwarf_find_type(w->f, name);
	diag_ix_put_u32(out, 0);
	if (!put_types(w, out, &t, 1))
		return put_error(out, -DIAG_E_LIMIT, "indexer: too many types");
	diag_ix_put_u32(out, type_id(w, t));
}

static int count_inl(void *arg, const struct diag_dwarf_inline *in)
{
	(void)in;
	++*(uint32_t *)arg;
	return 0;
}

static int put_inl(void *arg, const struct diag_dwarf_inline *in)
{
	struct diag_ix_buf *b = arg;
	diag_ix_put_str(b, in->name);
	diag_ix_put_str(b, in->linkage);
	diag_ix_put_u64(b, in->entry);
	diag_ix_put_u64(b, in->lo);
	diag_ix_put_u64(b, in->hi);
	diag_ix_put_str(b, in->caller);
	diag_ix_put_str(b, in->call_file);
	diag_ix_put_u32(b, in->call_line);
	return 0;
}

static void do_inlines(struct wfile *w, struct diag_ix_buf *out)
{
	uint32_t n = 0;
	struct diag_error e = { 0 };
	int rc = diag_dwarf_inlined_foreach(w->f, count_inl, &n, &e);
	if (rc)
		return put_err(out, &e, rc);
	diag_ix_put_u32(out, 0);
	diag_ix_put_u32(out, n);
	diag_dwarf_inlined_foreach(w->f, put_inl, out, &e);
}

static void do_lines(struct wfile *w, struct diag_ix_rd *rd, struct diag_ix_buf *out)
{
	char file[DIAG_IX_MAX_STR];
	diag_ix_get_strbuf(rd, file, sizeof(file));
	unsigned line = diag_ix_get_u32(rd);
	if (rd->bad)
		return put_error(out, -DIAG_E_PARSE, "indexer: malformed request");
	uint64_t *addrs = NULL;
	struct diag_error e = { 0 };
	int n = diag_dwarf_line_addrs(w->f, file, line, &addrs, &e);
	if (n < 0)
		return put_err(out, &e, n);
	diag_ix_put_u32(out, 0);
	diag_ix_put_u32(out, (uint32_t)n);
	for (int i = 0; i < n; i++)
		diag_ix_put_u64(out, addrs[i]);
	free(addrs);
}

static void do_syms(int *fds, size_t nfds, struct diag_ix_buf *out)
{
	if (nfds != 1)
		return put_error(out, -DIAG_E_PARSE, "indexer: malformed symbols request");
	struct diag_error e = { 0 };
	diag_ix_put_u32(out, 0);
	int rc = diag_symfile_encode(fds[0], out, &e);
	close(fds[0]);
	if (rc)
		put_err(out, &e, rc);
}

void diag_ix_handle(struct diag_ix_state *st, const uint8_t *req, size_t len, int *fds,
		    size_t nfds, struct diag_ix_buf *out)
{
	struct diag_ix_rd rd = { .p = req, .len = len };
	uint8_t op = diag_ix_get_u8(&rd);
	size_t taken = 0; /* fds the handler owns from here */
	struct wfile *w = NULL;
	out->len = 0;
	out->oom = false;
	switch (op) {
	case DIAG_IX_OPEN:
		do_open(st, &rd, fds, nfds, out);
		taken = nfds;
		break;
	case DIAG_IX_SYMS:
		do_syms(fds, nfds, out);
		taken = nfds;
		break;
	case DIAG_IX_CLOSE:
		wfile_free(diag_u64map_del(&st->files, diag_ix_get_u32(&rd)));
		diag_ix_put_u32(out, 0);
		break;
	case DIAG_IX_TEST_OPEN: {
		char path[256];
		diag_ix_get_strbuf(&rd, path, sizeof(path));
		int fd = open(path, O_RDONLY | O_CLOEXEC); /* the sandbox kills us here */
		diag_ix_put_u32(out, fd < 0 ? (uint32_t)-errno : (uint32_t)fd);
		if (fd < 0)
			diag_ix_put_str(out, "open failed");
		else
			close(fd);
		break;
	}
	case DIAG_IX_SCOPE:
	case DIAG_IX_GLOBAL:
	case DIAG_IX_ENUM:
	case DIAG_IX_TYPE:
	case DIAG_IX_INLINES:
	case DIAG_IX_LINES:
		if (!(w = file_of(st, diag_ix_get_u32(&rd), out)))
			break;
		if (op == DIAG_IX_SCOPE)
			do_scope(w, &rd, out);
		else if (op == DIAG_IX_GLOBAL)
			do_global(w, &rd, out);
		else if (op == DIAG_IX_ENUM)
			do_enum(w, &rd, out);
		else if (op == DIAG_IX_TYPE)
			do_type(w, &rd, out);
		else if (op == DIAG_IX_INLINES)
			do_inlines(w, out);
		else
			do_lines(w, &rd, out);
		break;
	default:
		put_error(out, -DIAG_E_PARSE, "indexer: unknown request");
	}
	for (size_t i = taken; i < nfds; i++)
		close(fds[i]);
	if (out->oom)
		put_error(out, -ENOMEM, "indexer: out of memory");
}

int diag_indexer_serve(int sock)
{
	struct diag_ix_state *st = NULL;
	if (diag_ix_state_new(&st))
		return 1;
	struct diag_ix_buf out = { 0 };
	diag_ix_put_u32(&out, DIAG_IX_HELLO);
	int rc = diag_ix_send(sock, &out, NULL, 0, 0);
	while (rc == 0) {
		uint8_t *req = NULL;
		size_t len = 0, nfds = 0;
		int fds[DIAG_IX_MAX_FDS];
		rc = diag_ix_recv(sock, DIAG_IX_MAX_REQ, &req, &len, fds, &nfds, 0);
		if (rc)
			break;
		diag_ix_handle(st, req, len, fds, nfds, &out);
		free(req);
		if (out.oom) { /* not even the error fits: give up, the daemon restarts us */
			rc = -ENOMEM;
			break;
		}
		rc = diag_ix_send(sock, &out, NULL, 0, 0);
	}
	diag_ix_buf_release(&out);
	diag_ix_state_free(st);
	return rc == -EPIPE ? 0 : 1;
}
