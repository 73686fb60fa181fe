/* suggest: "did you mean" for a function name that is not there: up to MAX_SUGGEST names of
 * the modules in scope, closest first (edit distance with transpositions, then prefix, then
 * substring; the main executable before libraries). A C++ function is compared by the last
 * parts of its demangled name, as many as the query has, and suggested by its qualified
 * name. Reads the symbol indexes only; never
 * resolves, never fails (no suggestion is an empty text). */
#include "sym/sym_internal.h"
#include "sym/cxx.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_SUGGEST 5

struct suggestion {
	char name[160];    /* as shown: a C++ function by its demangled qualified name */
	int cls, metric; /* lower is better: 0 edit distance, 1 prefix, 2 substring */
	bool in_main;
};

struct suggest {
	const char *query;
	size_t qlen;
	int qparts;        /* "::"-separated parts of the query: a C++ name is compared by as many
	                    * of its last parts ("Get" against leveldb::DBImpl::Get's "Get") */
	int max_dist;
	struct suggestion v[MAX_SUGGEST];
	size_t n;
};

/* Optimal string alignment distance (Levenshtein plus transpositions), capped at limit + 1. */
static int osa_distance(const char *a, size_t la, const char *b, size_t lb, int limit)
{
	if (la > 64 || lb > 64)
		return limit + 1;
	int d[65][65];
	for (size_t i = 0; i <= la; i++)
		d[i][0] = (int)i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = (int)j;
	for (size_t i = 1; i <= la; i++) {
		int row_min = limit + 1;
		for (size_t j = 1; j <= lb; j++) {
			int cost = a[i - 1] != b[j - 1];
			int v = d[i - 1][j - 1] + cost;
			if (d[i - 1][j] + 1 < v)
				v = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < v)
				v = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
				v = d[i - 2][j - 2] + 1;
			d[i][j] = v;
			if (v < row_min)
				row_min = v;
		}
		if (row_min > limit)
			return limit + 1;
	}
	return d[la][lb];
}

static bool suggestion_better(const struct suggestion *x, const struct suggestion *y)
{
	if (x->cls != y->cls)
		return x->cls < y->cls;
	if (x->metric != y->metric)
		return x->metric < y->metric;
	if (x->in_main != y->in_main)
		return x->in_main;
	return strcmp(x->name, y->name) < 0;
}

static void suggest_insert(struct suggest *sg, const struct suggestion *s)
{
	for (size_t i = 0; i < sg->n; i++)
		if (strcmp(sg->v[i].name, s->name) == 0) {
			if (!suggestion_better(s, &sg->v[i]))
				return;
			memmove(&sg->v[i], &sg->v[i + 1], (sg->n - i - 1) * sizeof(sg->v[0]));
			sg->n--;
			break;
		}
	size_t pos = sg->n;
	while (pos > 0 && suggestion_better(s, &sg->v[pos - 1]))
		pos--;
	if (pos >= MAX_SUGGEST)
		return;
	if (sg->n == MAX_SUGGEST)
		sg->n--;
	memmove(&sg->v[pos + 1], &sg->v[pos], (sg->n - pos) * sizeof(sg->v[0]));
	sg->v[pos] = *s;
	sg->n++;
}

/* The last `parts` "::"-separated parts of a qualified name (template arguments skipped). */
static const char *last_parts(const char *qual, int parts)
{
	int depth = 0;
	for (const char *p = qual + strlen(qual); p > qual; p--) {
		if (p[-1] == '>')
			depth++;
		else if (p[-1] == '<' && depth)
			depth--;
		else if (!depth && p - qual >= 2 && p[-1] == ':' && p[-2] == ':' && --parts == 0)
			return p;
	}
	return qual;
}

static int count_parts(const char *q)
{
	int n = 1;
	for (const char *p = strstr(q, "::"); p; p = strstr(p + 2, "::"))
		n++;
	return n;
}

static void suggest_consider(struct suggest *sg, const char *sym, bool in_main)
{
	struct suggestion s = { .in_main = in_main };
	const char *name = sym;
	struct diag_fname fn;
	if (sym[0] == '_' && sym[1] == 'Z') {
		diag_fname_parse(sym, &fn);
		if (fn.cxx && !fn.cold)
			name = last_parts(fn.qual, sg->qparts);
		snprintf(s.name, sizeof(s.name), "%.*s", (int)sizeof(s.name) - 1, fn.cxx ? fn.qual : sym);
	} else {
		snprintf(s.name, sizeof(s.name), "%s", sym);
	}
	size_t ln = strlen(name);
	int d = (size_t)abs((int)ln - (int)sg->qlen) > (size_t)sg->max_dist
			? sg->max_dist + 1
			: osa_distance(sg->query, sg->qlen, name, ln, sg->max_dist);
	if (d <= sg->max_dist) {
		s.cls = 0;
		s.metric = d;
	} else if (sg->qlen >= 3 && strncasecmp(name, sg->query, sg->qlen) == 0) {
		s.cls = 1;
		s.metric = (int)(ln - sg->qlen);
	} else if (sg->qlen >= 3 && strcasestr(name, sg->query)) {
		s.cls = 2;
		s.metric = (int)(ln - sg->qlen);
	} else {
		return;
	}
	suggest_insert(sg, &s);
}

static void suggest_in(struct suggest *sg, const struct symfile *sf, const struct diag_module *mod)
{
	for (size_t i = 0; i < sf->n; i++)
		if (i == 0 || strcmp(sf->syms[sf->by_name[i]].name, sf->syms[sf->by_name[i - 1]].name))
			suggest_consider(sg, sf->syms[sf->by_name[i]].name, mod->is_main);
}

void sym_suggest_text(struct diag_symcache *c, const struct diag_modmap *m,
		      const struct diag_module *mod, const char *query, char *buf, size_t cap)
{
	struct suggest sg = { .query = query, .qlen = strlen(query), .qparts = count_parts(query) };
	sg.max_dist = sg.qlen <= 2 ? 1 : sg.qlen <= 5 ? 2 : (int)sg.qlen / 3;
	for (size_t i = 0; i < m->n; i++) {
		const struct symfile *sf;
		if ((!mod || mod == &m->mods[i]) && sym_file_get(c, &m->mods[i], &sf, NULL) == 0)
			suggest_in(&sg, sf, &m->mods[i]);
	}
	size_t len = strlen(buf);
	for (size_t i = 0; i < sg.n && len < cap; i++) {
		snprintf(buf + len, cap - len, "%s%s", i ? ", " : "; did you mean: ", sg.v[i].name);
		len += strlen(buf + len);
	}
}
