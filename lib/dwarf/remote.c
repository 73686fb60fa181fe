/* dwarf/remote: the daemon's side of a file whose DWARF the indexer worker reads. Opens the
 * file (and its separate debug file, at paths built here from validated names) and passes the
 * descriptors; decodes every reply as hostile input: counts and lengths bounded, type ids in
 * range, no cycle through non-pointer edges. Types are interned per file by id in the file's
 * arena, so pointers stay valid for the file's life (a restarted worker numbers them anew;
 * the old ones stay). Never parses the target's file itself. */
#include "dwarf/internal.h"
#include "indexer/indexer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_TYPES (1u << 20)
#define MAX_MEMBERS 1024
#define MAX_ENUMS 4096
#define MAX_VARS 512
#define MAX_INLINES (1u << 20)

struct dw_remote {
	struct diag_indexer *ix;
	uint32_t id;
	int fd, dbg_fd;              /* kept to open the file again in a restarted worker */
	unsigned gen;                /* the worker generation it is open in; 0: not open */
	char key[256], what[600];
	const struct diag_type **types; /* id - 1 -> type, this generation */
	size_t ntypes, cap;
	struct diag_dwarf_inline *inls;
	size_t ninls;
	bool inls_loaded;
};

/* The path as the target sees it: /proc/PID/root/x -> /x. */
static const char *shown_path(const char *path)
{
	if (strncmp(path, "/proc/", 6))
		return path;
	const char *p = path + 6;
	while (*p >= '0' && *p <= '9')
		p++;
	return strncmp(p, "/root/", 6) ? path : p + 5;
}

void dw_remote_free(struct diag_dwarf_file *f)
{
	struct dw_remote *r = f->remote;
	if (r->fd >= 0)
		close(r->fd);
	if (r->dbg_fd >= 0)
		close(r->dbg_fd);
	free(r->types);
	free(r->inls);
	free(r);
	f->remote = NULL;
}

static int bad(struct dw_remote *r, const char *why, struct diag_error *err)
{
	r->gen = 0;
	return diag_indexer_bad_reply(r->ix, r->key, r->what, why, err);
}

/* ---- opening ---- */

static int send_open(struct dw_remote *r, const char *name, const int *fds, size_t nfds,
		     struct diag_ix_reply *rep, struct diag_error *err)
{
	struct diag_ix_buf b = { 0 };
	diag_ix_put_u8(&b, DIAG_IX_OPEN);
	diag_ix_put_u32(&b, r->id);
	diag_ix_put_str(&b, name);
	int rc = diag_indexer_call(r->ix, r->key, r->what, &b, fds, nfds, rep, err);
	diag_ix_buf_release(&b);
	return rc;
}

/* Opens the separate debug files the worker named (paths built and validated here). */
static size_t open_candidates(const char *path, const char *build_id, struct diag_ix_rd *rd,
			      int *fds, size_t cap)
{
	char bid[128], link[256], cand[4][DIAG_DWARF_PATH_MAX];
	if (!diag_ix_get_strbuf(rd, bid, sizeof(bid)) || !diag_ix_get_strbuf(rd, link, sizeof(link)))
		return SIZE_MAX;
	size_t n = diag_dwarf_debug_paths(path, build_id && *build_id ? build_id : bid, link, cand, 4);
	size_t k = 0;
	for (size_t i = 0; i < n && k < cap; i++) {
		int fd = open(cand[i], O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0)
			fds[k++] = fd;
	}
	return k;
}

/* The file open in the running worker (again, after a restart). */
static int ensure_open(struct diag_dwarf_file *f, struct diag_error *err)
{
	struct dw_remote *r = f->remote;
	int rc = diag_indexer_start(r->ix, err);
	if (rc)
		return rc;
	if (r->gen == diag_indexer_generation(r->ix))
		return 0;
	int fds[2] = { r->fd, r->dbg_fd };
	struct diag_ix_reply rep;
	rc = send_open(r, f->name, fds, r->dbg_fd >= 0 ? 2 : 1, &rep, err);
	if (rc < 0)
		return rc;
	diag_ix_reply_release(&rep);
	if (rc != 0)
		return bad(r, "the file no longer opens", err);
	r->gen = diag_indexer_generation(r->ix);
	r->ntypes = 0;
	return 0;
}

int dw_remote_open(struct diag_indexer *ix, const char *path, const char *build_id,
		   struct diag_dwarf_file **out, struct diag_error *err)
{
	struct diag_dwarf_file *f = dw_file_new(build_id && *build_id ? build_id : path, path);
	struct dw_remote *r = f ? calloc(1, sizeof(*r)) : NULL;
	if (!r) {
		if (f)
			diag_dwarf_file_free(f);
		return diag_error_set(err, -ENOMEM, "dwarf: out of memory");
	}
	f->remote = r;
	r->ix = ix;
	r->id = diag_indexer_file_id(ix);
	r->dbg_fd = -1;
	snprintf(r->key, sizeof(r->key), "dwarf:%s", f->key);
	snprintf(r->what, sizeof(r->what), "reading the DWARF of %s", shown_path(path));
	r->fd = open(path, O_RDONLY | O_CLOEXEC);
	int rc = r->fd < 0 ? diag_error_set(err, -errno, "dwarf: cannot open %s: %s", path,
					    strerror(errno))
			   : diag_indexer_start(ix, err);
	struct diag_ix_reply rep = { 0 };
	if (rc == 0)
		rc = send_open(r, f->name, &r->fd, 1, &rep, err);
	if (rc == DIAG_IX_NEED_DEBUG) {
		int fds[5] = { r->fd };
		size_t n = open_candidates(path, build_id, &rep.rd, fds + 1, 4);
		diag_ix_reply_release(&rep);
		if (n == SIZE_MAX)
			rc = bad(r, "malformed debug file names", err);
		else if (n == 0)
			rc = dw_file_error(f, -DIAG_E_NODEBUG, err);
		else
			rc = send_open(r, f->name, fds, n + 1, &rep, err);
		if (rc == 0) {
			int used = (int)diag_ix_get_u32(&rep.rd);
			if (rep.rd.bad || used < 0 || (size_t)used >= n)
				rc = bad(r, "no such debug file", err);
			else
				r->dbg_fd = fds[1 + used];
		}
		for (size_t i = 0; n != SIZE_MAX && i < n; i++)
			if (fds[1 + i] != r->dbg_fd)
				close(fds[1 + i]);
	} else if (rc > 0) {
		rc = bad(r, "unknown open status", err);
	}
	diag_ix_reply_release(&rep);
	if (rc) {
		diag_dwarf_file_free(f);
		return rc;
	}
	r->gen = diag_indexer_generation(ix);
	*out = f;
	return 0;
}

/* ---- types ---- */

static const struct diag_type *type_ref(const struct dw_remote *r, uint32_t id, size_t limit,
					bool *ok)
{
	if (id == 0)
		return NULL;
	if (id > limit) {
		*ok = false;
		return NULL;
	}
	return r->types[id - 1];
}

/* Edges a value's layout follows (not a pointer's target): a cycle through them would make
 * stripping, sizing or printing loop for ever. */
static size_t strong_edges(const struct diag_type *t, const struct diag_type **out, size_t cap)
{
	size_t n = 0;
	if (t->kind != DIAG_TYPE_PTR && t->target && n < cap)
		out[n++] = t->target;
	for (size_t i = 0; i < t->nmembers && n < cap; i++)
		if (t->members[i].type)
			out[n++] = t->members[i].type;
	return n;
}

/* No cycle among the new types [first, first + n) through strong edges (old types never point
 * at new ones). Iterative DFS with colours. */
static bool acyclic(struct dw_remote *r, size_t first, size_t n)
{
	uint8_t *colour = calloc(n ? n : 1, 1);
	size_t *stack = malloc((n ? n : 1) * sizeof(*stack)), *next = calloc(n ? n : 1, sizeof(*next));
	bool ok = colour && stack && next;
	for (size_t s = 0; ok && s < n; s++) {
		if (colour[s])
			continue;
		size_t sp = 0;
		stack[sp++] = s;
		colour[s] = 1;
		while (ok && sp) {
			size_t v = stack[sp - 1];
			const struct diag_type *t = r->types[first + v];
			const struct diag_type *e[MAX_MEMBERS + 1];
			size_t ne = strong_edges(t, e, MAX_MEMBERS + 1);
			if (next[v] == ne) {
				colour[v] = 2;
				sp--;
				continue;
			}
			const struct diag_type *c = e[next[v]++];
			const struct diag_type *base = n ? r->types[first] : NULL; /* one array */
			size_t w = c >= base && c < base + n ? (size_t)(c - base) : SIZE_MAX;
			if (w == SIZE_MAX || colour[w] == 2)
				continue;
			if (colour[w] == 1)
				ok = false;
			else {
				colour[w] = 1;
				stack[sp++] = w;
			}
		}
	}
	bool alloc_ok = colour && stack && next;
	free(colour);
	free(stack);
	free(next);
	return ok && alloc_ok;
}

static char *get_name(struct diag_dwarf_file *f, struct diag_ix_rd *rd, bool nullable)
{
	char *s = NULL;
	if (!diag_ix_get_str(rd, DIAG_IX_MAX_STR, nullable, &s) || !s)
		return NULL;
	char *c = dw_strdup(f, s);
	free(s);
	if (!c)
		rd->bad = true;
	return c;
}

static void get_type(struct diag_dwarf_file *f, struct diag_ix_rd *rd, struct diag_type *t,
		     size_t limit, bool *ok)
{
	struct dw_remote *r = f->remote;
	uint8_t kind = diag_ix_get_u8(rd);
	if (kind > DIAG_TYPE_FUNC)
		*ok = false;
	t->kind = (enum diag_type_kind)kind;
	t->name = get_name(f, rd, true);
	t->size = diag_ix_get_u64(rd);
	uint8_t fl = diag_ix_get_u8(rd);
	t->is_signed = fl & 1;
	t->is_char = (fl >> 1) & 1;
	t->declaration = (fl >> 2) & 1;
	t->target = type_ref(r, diag_ix_get_u32(rd), limit, ok);
	t->count = diag_ix_get_u64(rd);
	uint32_t nm = diag_ix_get_u32(rd);
	if (nm > MAX_MEMBERS) {
		*ok = false;
		return;
	}
	struct diag_member *m = nm ? dw_alloc(f, nm * sizeof(*m)) : NULL;
	if (nm && !m)
		rd->bad = true;
	for (uint32_t i = 0; m && i < nm && !rd->bad; i++) {
		m[i].name = get_name(f, rd, true);
		m[i].offset = diag_ix_get_u64(rd);
		m[i].bit_size = diag_ix_get_u32(rd);
		m[i].bit_offset = diag_ix_get_u32(rd);
		m[i].type = type_ref(r, diag_ix_get_u32(rd), limit, ok);
		if (m[i].bit_size > 64 || m[i].bit_offset > 64)
			*ok = false;
	}
	t->members = m;
	t->nmembers = nm;
	uint32_t ne = diag_ix_get_u32(rd);
	if (ne > MAX_ENUMS) {
		*ok = false;
		return;
	}
	struct diag_enumerator *e = ne ? dw_alloc(f, ne * sizeof(*e)) : NULL;
	if (ne && !e)
		rd->bad = true;
	for (uint32_t i = 0; e && i < ne && !rd->bad; i++) {
		e[i].name = get_name(f, rd, false);
		e[i].value = (int64_t)diag_ix_get_u64(rd);
		if (!e[i].name)
			*ok = false;
	}
	t->enums = e;
	t->nenums = ne;
}

#define MIN_TYPE_BYTES 42 /* the fixed fields of one type node */

/* The new types of a reply, interned. false when malformed. */
static bool get_types(struct diag_dwarf_file *f, struct diag_ix_rd *rd)
{
	struct dw_remote *r = f->remote;
	uint32_t first = diag_ix_get_u32(rd), n = diag_ix_get_u32(rd);
	if (rd->bad || first != r->ntypes + 1 || n > MAX_TYPES || r->ntypes + n > MAX_TYPES ||
	    (rd->len - rd->off) / MIN_TYPE_BYTES < n)
		return false;
	if (r->ntypes + n > r->cap) {
		size_t cap = r->ntypes + n + 64;
		const struct diag_type **v = realloc(r->types, cap * sizeof(*v));
		if (!v)
			return false;
		r->types = v;
		r->cap = cap;
	}
	struct diag_type *nodes = n ? dw_alloc(f, n * sizeof(*nodes)) : NULL;
	if (n && !nodes)
		return false;
	for (uint32_t i = 0; i < n; i++)
		r->types[r->ntypes + i] = &nodes[i];
	bool ok = true;
	for (uint32_t i = 0; i < n && ok && !rd->bad; i++) {
		if (diag_ix_get_u32(rd) != first + i)
			ok = false;
		get_type(f, rd, &nodes[i], r->ntypes + n, &ok);
	}
	if (!ok || rd->bad || !acyclic(r, r->ntypes, n))
		return false;
	r->ntypes += n;
	return true;
}

static bool get_loc(struct diag_ix_rd *rd, struct diag_loc *l)
{
	uint32_t n = diag_ix_get_u32(rd);
	if (n > DIAG_LOC_MAX_OPS)
		return false;
	l->nops = n;
	for (uint32_t i = 0; i < n; i++) {
		l->ops[i].atom = diag_ix_get_u8(rd);
		l->ops[i].op1 = diag_ix_get_u64(rd);
		l->ops[i].op2 = diag_ix_get_u64(rd);
	}
	l->has_const = diag_ix_get_u8(rd) != 0;
	l->const_val = (int64_t)diag_ix_get_u64(rd);
	return !rd->bad;
}

static bool get_var(struct diag_dwarf_file *f, struct diag_ix_rd *rd, struct diag_dwarf_var *v)
{
	bool ok = true;
	if (!diag_ix_get_str(rd, DIAG_IX_MAX_STR, false, &v->name))
		return false;
	v->type = type_ref(f->remote, diag_ix_get_u32(rd), f->remote->ntypes, &ok);
	v->is_param = diag_ix_get_u8(rd) != 0;
	return ok && get_loc(rd, &v->loc) && diag_ix_get_strbuf(rd, v->loc_text, sizeof(v->loc_text));
}

/* ---- queries ---- */

/* Sends op(file, ...) with the arguments already in b (after the op and file id are put by
 * this function's caller through start_req). Returns the status or a negative code. */
static int query(struct diag_dwarf_file *f, struct diag_ix_buf *b, struct diag_ix_reply *rep,
		 struct diag_error *err)
{
	int rc = ensure_open(f, err);
	if (rc == 0)
		rc = diag_indexer_call(f->remote->ix, f->remote->key, f->remote->what, b, NULL, 0, rep, err);
	diag_ix_buf_release(b);
	if (rc > 0) {
		diag_ix_reply_release(rep);
		return bad(f->remote, "unknown status", err);
	}
	return rc;
}

static void start_req(struct diag_ix_buf *b, uint8_t op, const struct diag_dwarf_file *f)
{
	memset(b, 0, sizeof(*b));
	diag_ix_put_u8(b, op);
	diag_ix_put_u32(b, f->remote->id);
}

int dw_remote_scope_at(struct diag_dwarf_file *f, uint64_t vaddr, struct diag_dwarf_scope **out,
		       struct diag_error *err)
{
	struct diag_ix_buf b;
	struct diag_ix_reply rep;
	start_req(&b, DIAG_IX_SCOPE, f);
	diag_ix_put_u64(&b, vaddr);
	int rc = query(f, &b, &rep, err);
	if (rc)
		return rc;
	struct diag_ix_rd *rd = &rep.rd;
	struct diag_dwarf_scope *s = calloc(1, sizeof(*s));
	bool ok = s && get_types(f, rd) && diag_ix_get_str(rd, DIAG_IX_MAX_STR, false, &s->func);
	if (ok) {
		s->file = f;
		s->low_pc = diag_ix_get_u64(rd);
		s->at_entry = diag_ix_get_u8(rd) != 0;
		s->ret_type = type_ref(f->remote, diag_ix_get_u32(rd), f->remote->ntypes, &ok);
		ok = ok && get_loc(rd, &s->frame.fb);
		s->frame.cfa_known = diag_ix_get_u8(rd) != 0;
		s->frame.cfa_reg = (int)diag_ix_get_u32(rd);
		s->frame.cfa_off = (int64_t)diag_ix_get_u64(rd);
		uint32_t n = diag_ix_get_u32(rd);
		ok = ok && !rd->bad && n <= MAX_VARS && (s->vars = calloc(n ? n : 1, sizeof(*s->vars)));
		for (uint32_t i = 0; ok && i < n; i++, s->nvars++)
			ok = get_var(f, rd, &s->vars[i]);
		if (ok && s->nvars < n)
			ok = false;
	}
	diag_ix_reply_release(&rep);
	if (!ok) {
		diag_dwarf_scope_free(s);
		return s ? bad(f->remote, "invalid scope", err) : diag_error_set(err, -ENOMEM, "dwarf: out of memory");
	}
	*out = s;
	return 0;
}

int dw_remote_global(struct diag_dwarf_file *f, const char *name, struct diag_dwarf_var *out)
{
	struct diag_ix_buf b;
	struct diag_ix_reply rep;
	start_req(&b, DIAG_IX_GLOBAL, f);
	diag_ix_put_str(&b, name);
	int rc = query(f, &b, &rep, NULL);
	if (rc)
		return rc;
	struct diag_dwarf_var v = { 0 };
	bool ok = get_types(f, &rep.rd) && get_var(f, &rep.rd, &v);
	diag_ix_reply_release(&rep);
	if (!ok) {
		free(v.name);
		return bad(f->remote, "invalid variable", NULL);
	}
	*out = v;
	return 0;
}

int dw_remote_enumerator(struct diag_dwarf_file *f, const char *name, const struct diag_type **type,
			 int64_t *value)
{
	struct diag_ix_buf b;
	struct diag_ix_reply rep;
	start_req(&b, DIAG_IX_ENUM, f);
	diag_ix_put_str(&b, name);
	int rc = query(f, &b, &rep, NULL);
	if (rc)
		return rc;
	bool ok = get_types(f, &rep.rd);
	const struct diag_type *t = ok ? type_ref(f->remote, diag_ix_get_u32(&rep.rd), f->remote->ntypes, &ok) : NULL;
	int64_t v = (int64_t)diag_ix_get_u64(&rep.rd);
	ok = ok && !rep.rd.bad && t;
	diag_ix_reply_release(&rep);
	if (!ok)
		return bad(f->remote, "invalid enumerator", NULL);
	*type = t;
	*value = v;
	return 0;
}

const struct diag_type *dw_remote_find_type(struct diag_dwarf_file *f, const char *spelling)
{
	struct diag_ix_buf b;
	struct diag_ix_reply rep;
	start_req(&b, DIAG_IX_TYPE, f);
	diag_ix_put_str(&b, spelling);
	if (query(f, &b, &rep, NULL))
		return NULL;
	bool ok = get_types(f, &rep.rd);
	const struct diag_type *t = ok ? type_ref(f->remote, diag_ix_get_u32(&rep.rd), f->remote->ntypes, &ok) : NULL;
	ok = ok && !rep.rd.bad;
	diag_ix_reply_release(&rep);
	if (!ok)
		bad(f->remote, "invalid type", NULL);
	return ok ? t : NULL;
}

static bool get_inline(struct diag_dwarf_file *f, struct diag_ix_rd *rd, struct diag_dwarf_inline *in)
{
	in->name = get_name(f, rd, false);
	in->linkage = get_name(f, rd, true);
	in->entry = diag_ix_get_u64(rd);
	in->lo = diag_ix_get_u64(rd);
	in->hi = diag_ix_get_u64(rd);
	in->caller = get_name(f, rd, false);
	in->call_file = get_name(f, rd, false);
	in->call_line = diag_ix_get_u32(rd);
	return !rd->bad && in->name && in->caller && in->call_file;
}

#define MIN_INLINE_BYTES 44

static int load_inlines(struct diag_dwarf_file *f, struct diag_error *err)
{
	struct dw_remote *r = f->remote;
	struct diag_ix_buf b;
	struct diag_ix_reply rep;
	start_req(&b, DIAG_IX_INLINES, f);
	int rc = query(f, &b, &rep, err);
	if (rc)
		return rc;
	uint32_t n = diag_ix_get_u32(&rep.rd);
	bool ok = !rep.rd.bad && n <= MAX_INLINES && (rep.rd.len - rep.rd.off) / MIN_INLINE_BYTES >= n;
	struct diag_dwarf_inline *v = ok ? calloc(n ? n : 1, sizeof(*v)) : NULL;
	for (uint32_t i = 0; v && ok && i < n; i++)
		ok = get_inline(f, &rep.rd, &v[i]);
	diag_ix_reply_release(&rep);
	if (!ok || !v) {
		free(v);
		return ok ? diag_error_set(err, -ENOMEM, "dwarf: out of memory")
			  : bad(r, "invalid inlined instances", err);
	}
	r->inls = v;
	r->ninls = n;
	r->inls_loaded = true;
	return 0;
}

int dw_remote_inlined_foreach(struct diag_dwarf_file *f,
			      int (*cb)(void *arg, const struct diag_dwarf_inline *in), void *arg,
			      struct diag_error *err)
{
	struct dw_remote *r = f->remote;
	int rc = r->inls_loaded ? 0 : load_inlines(f, err);
	for (size_t i = 0; rc == 0 && i < r->ninls; i++)
		rc = cb(arg, &r->inls[i]);
	return rc;
}

int dw_remote_line_addrs(struct diag_dwarf_file *f, const char *file, unsigned line,
			 uint64_t **out, struct diag_error *err)
{
	struct diag_ix_buf b;
	struct diag_ix_reply rep;
	start_req(&b, DIAG_IX_LINES, f);
	diag_ix_put_str(&b, file);
	diag_ix_put_u32(&b, line);
	int rc = query(f, &b, &rep, err);
	if (rc)
		return rc;
	uint32_t n = diag_ix_get_u32(&rep.rd);
	bool ok = !rep.rd.bad && n >= 1 && n <= DIAG_DWARF_LINE_MAX_ADDRS;
	uint64_t *v = ok ? malloc(n * sizeof(*v)) : NULL;
	for (uint32_t i = 0; v && i < n; i++)
		v[i] = diag_ix_get_u64(&rep.rd);
	ok = ok && v && !rep.rd.bad;
	diag_ix_reply_release(&rep);
	if (!ok) {
		free(v);
		return bad(f->remote, "invalid line addresses", err);
	}
	*out = v;
	return (int)n;
}
