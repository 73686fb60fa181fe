/* suggest: "did you mean" for a function name that is not there: up to MAX_SUGGEST names of
 * the modules in scope, closest first (edit distance with transpositions, then prefix, then
 * substring; the main executable before libraries). Reads the symbol indexes only; never
 * resolves, never fails (no suggestion is an empty text). */
#include "sym/sym_internal.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_SUGGEST 5

struct suggestion {
	const char *name;
	int cls, metric; /* lower is better: 0 edit distance, 1 prefix, 2 substring */
	bool in_main;
};

struct suggest {
	const char *query;
	size_t qlen;
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

static void suggest_consider(struct suggest *sg, const char *name, bool in_main)
{
	size_t ln = strlen(name);
	struct suggestion s = { .name = name, .in_main = in_main };
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
	struct suggest sg = { .query = query, .qlen = strlen(query) };
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
