/* dwarf/lines: FILE:LINE to code addresses through the line tables of every compilation unit,
 * grouped like gdb's breakpoints (lowest address per innermost scope), with the errors a user
 * needs (unknown file: some known files; line without code: the nearest lines with code).
 * Reads DWARF only; never touches a process. */
#include "dwarf/internal.h"
#include "util/grow.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FILES_LISTED 8
#define FILENO_CACHE 512


struct hit {
	uint64_t addr;
	const struct dw_scope *scope;
};

struct query {
	struct diag_dwarf_file *f;
	const char *file;
	unsigned line;
	struct hit *hits;
	size_t n, cap;
	unsigned below, above;  /* nearest lines with code around line (0: none) */
	bool file_seen;
	char files[FILES_LISTED][64];
	size_t nfiles;
	int rc;
};

/* path equals file, or ends with "/" + file (so "work.c" and "tests/fixtures/work.c" match) */
static bool path_matches(const char *path, const char *file)
{
	size_t lp = strlen(path), lf = strlen(file);
	if (lf > lp)
		return false;
	if (lf == lp)
		return strcmp(path, file) == 0;
	return path[lp - lf - 1] == '/' && strcmp(path + lp - lf, file) == 0;
}

static void remember_file(struct query *q, const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	for (size_t i = 0; i < q->nfiles; i++)
		if (!strcmp(q->files[i], base))
			return;
	if (q->nfiles < FILES_LISTED)
		snprintf(q->files[q->nfiles++], sizeof(q->files[0]), "%s", base);
}

static void add_hit(struct query *q, uint64_t addr)
{
	if (DIAG_GROW(&q->hits, &q->cap, q->n + 1)) {
		q->rc = -ENOMEM;
		return;
	}
	q->hits[q->n++] = (struct hit){ addr, NULL };
}

static void consider_row(struct query *q, unsigned lineno, uint64_t addr)
{
	if (lineno == q->line) {
		add_hit(q, addr);
	} else if (lineno < q->line) {
		if (lineno > q->below)
			q->below = lineno;
	} else if (!q->above || lineno < q->above) {
		q->above = lineno;
	}
}

/* Whether a row's source file is the one asked for, cached per file number within a CU. */
static int row_file_matches(struct query *q, Dwarf_Line ln, signed char *cache)
{
	Dwarf_Error e = NULL;
	Dwarf_Unsigned fno = 0;
	if (dwarf_line_srcfileno(ln, &fno, &e) == DW_DLV_OK && fno < FILENO_CACHE && cache[fno] >= 0)
		return cache[fno];
	char *src = NULL;
	int yes = 0;
	if (dwarf_linesrc(ln, &src, &e) == DW_DLV_OK) {
		yes = path_matches(src, q->file);
		if (!yes && !strchr(q->file, '/'))
			remember_file(q, src);
		dwarf_dealloc(q->f->dbg, src, DW_DLA_STRING);
	}
	if (fno < FILENO_CACHE)
		cache[fno] = (signed char)yes;
	return yes;
}

static int scan_cu(struct diag_dwarf_file *f, Dwarf_Die cu, const struct dw_cu_hdr *hdr,
		   void *arg)
{
	(void)f;
	(void)hdr;
	struct query *q = arg;
	Dwarf_Error e = NULL;
	Dwarf_Unsigned version = 0;
	Dwarf_Small count = 0;
	Dwarf_Line_Context ctx = NULL;
	Dwarf_Line *rows = NULL;
	Dwarf_Signed nrows = 0;
	if (dwarf_srclines_b(cu, &version, &count, &ctx, &e) != DW_DLV_OK)
		return 0;
	signed char cache[FILENO_CACHE];
	memset(cache, -1, sizeof(cache));
	if (dwarf_srclines_from_linecontext(ctx, &rows, &nrows, &e) == DW_DLV_OK) {
		for (Dwarf_Signed i = 0; i < nrows && !q->rc; i++) {
			Dwarf_Bool stmt = 0, end = 0;
			Dwarf_Unsigned lineno = 0;
			Dwarf_Addr addr = 0;
			if (dwarf_lineendsequence(rows[i], &end, &e) != DW_DLV_OK || end ||
			    dwarf_linebeginstatement(rows[i], &stmt, &e) != DW_DLV_OK || !stmt ||
			    dwarf_lineno(rows[i], &lineno, &e) != DW_DLV_OK || lineno == 0 ||
			    dwarf_lineaddr(rows[i], &addr, &e) != DW_DLV_OK)
				continue;
			/* a sequence at address 0 is code the linker discarded (e.g. an unused COMDAT) */
			if (addr == 0 || !row_file_matches(q, rows[i], cache))
				continue;
			q->file_seen = true;
			consider_row(q, (unsigned)lineno, addr);
		}
	}
	dwarf_srclines_dealloc_b(ctx);
	return q->rc;
}

static void scan(struct query *q)
{
	/* q->rc stops the walk; a unit header that cannot be read ends it (index.c refused such
	 * files) */
	dw_each_cu(q->f, scan_cu, q);
}

static int cmp_hit(const void *a, const void *b)
{
	const struct hit *x = a, *y = b;
	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

/* Sort, then keep the lowest address of each scope (and drop exact duplicates). */
static size_t group_by_scope(struct diag_dwarf_file *f, struct hit *h, size_t n)
{
	qsort(h, n, sizeof(*h), cmp_hit);
	size_t w = 0;
	for (size_t i = 0; i < n; i++) {
		h[i].scope = dw_scope_at(f, h[i].addr);
		bool dup = false;
		for (size_t j = 0; j < w && !dup; j++)
			dup = h[j].addr == h[i].addr ||
			      (h[i].scope && h[j].scope && h[j].scope->die == h[i].scope->die);
		if (!dup)
			h[w++] = h[i];
	}
	return w;
}

static int no_code(const struct query *q, struct diag_error *err)
{
	char near[64] = "";
	if (q->below && q->above)
		snprintf(near, sizeof(near), "%u, %u", q->below, q->above);
	else if (q->below || q->above)
		snprintf(near, sizeof(near), "%u", q->below ? q->below : q->above);
	if (!near[0])
		return diag_error_set(err, -DIAG_E_NOSYM, "%s:%u has no code in %s", q->file, q->line,
				      q->f->name);
	return diag_error_set(err, -DIAG_E_NOSYM, "%s:%u has no code; nearest lines with code: %s",
			      q->file, q->line, near);
}

static int unknown_file(const struct query *q, struct diag_error *err)
{
	char list[FILES_LISTED * 66] = "";
	size_t len = 0;
	for (size_t i = 0; i < q->nfiles && len < sizeof(list); i++) {
		snprintf(list + len, sizeof(list) - len, "%s%s", i ? ", " : "", q->files[i]);
		len += strlen(list + len);
	}
	return diag_error_set(err, -DIAG_E_NOSYM, "no source file '%s' in the line table of %s%s%s%s",
			      q->file, q->f->name, q->nfiles ? "; files: " : "", list,
			      q->nfiles == FILES_LISTED ? ", ..." : "");
}

int diag_dwarf_line_addrs(struct diag_dwarf_file *f, const char *file, unsigned line,
			  uint64_t **out, struct diag_error *err)
{
	if (f->remote)
		return dw_remote_line_addrs(f, file, line, out, err);
	int rc = dw_scopes_build(f);
	if (rc)
		return diag_error_set(err, rc, "dwarf: cannot index scopes of %s: %s", f->name,
				      diag_strerror(rc));
	struct query q = { .f = f, .file = file, .line = line };
	scan(&q);
	if (q.rc) {
		free(q.hits);
		return diag_error_set(err, q.rc, "dwarf: out of memory reading line tables");
	}
	if (!q.file_seen)
		return unknown_file(&q, err);
	if (!q.n)
		return no_code(&q, err);
	size_t n = group_by_scope(f, q.hits, q.n);
	if (n > DIAG_DWARF_LINE_MAX_ADDRS) {
		free(q.hits);
		return diag_error_set(err, -DIAG_E_LIMIT, "%s:%u has code at %zu places (max %d)", file,
				      line, n, DIAG_DWARF_LINE_MAX_ADDRS);
	}
	uint64_t *v = malloc(n * sizeof(*v));
	if (!v) {
		free(q.hits);
		return diag_error_set(err, -ENOMEM, "dwarf: out of memory");
	}
	for (size_t i = 0; i < n; i++)
		v[i] = q.hits[i].addr;
	free(q.hits);
	*out = v;
	return (int)n;
}
