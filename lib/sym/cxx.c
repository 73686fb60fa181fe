/* sym/cxx: demangling and the name rules of targets (see cxx.h). Pure string work on the
 * caller's buffers; never reads files or processes, keeps no state. */
#include "sym/cxx.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* libstdc++'s demangler (abi::__cxa_demangle), callable from C by its unmangled name. */
char *__cxa_demangle(const char *mangled, char *buf, size_t *n, int *status);

char *diag_cxx_demangle(const char *name)
{
	if (strncmp(name, "_Z", 2) != 0)
		return NULL;
	int status = 0;
	char *d = __cxa_demangle(name, NULL, NULL, &status);
	if (status != 0) {
		free(d);
		return NULL;
	}
	return d;
}

static const char *const clone_kinds[] = { "isra", "part", "constprop", "cold", "lto_priv",
					   "localalias" };

/* Length of name without its trailing ".KIND[.N]" clone suffixes; sets clone/cold. */
static size_t strip_clone_suffixes(const char *name, size_t len, bool *clone, bool *cold)
{
	for (;;) {
		size_t end = len;
		while (end > 0 && isdigit((unsigned char)name[end - 1]))
			end--;
		if (end < len && end > 0 && name[end - 1] == '.')
			end--; /* ".N" */
		bool found = false;
		for (size_t k = 0; k < sizeof(clone_kinds) / sizeof(clone_kinds[0]) && !found; k++) {
			size_t kl = strlen(clone_kinds[k]);
			if (end > kl + 1 && name[end - kl - 1] == '.' &&
			    strncmp(name + end - kl, clone_kinds[k], kl) == 0) {
				found = true;
				len = end - kl - 1;
				if (!strcmp(clone_kinds[k], "cold"))
					*cold = true;
				else
					*clone = true;
			}
		}
		if (!found)
			return len;
	}
}

/* Removes trailing " [clone .KIND.N]" parts of a demangled name; sets clone/cold. */
static size_t strip_demangled_clones(const char *dem, size_t len, bool *clone, bool *cold)
{
	static const char tag[] = " [clone .";
	for (;;) {
		if (len == 0 || dem[len - 1] != ']')
			return len;
		const char *open = NULL;
		for (const char *p = dem; p + sizeof(tag) - 1 <= dem + len; p++)
			if (!strncmp(p, tag, sizeof(tag) - 1))
				open = p;
		if (!open)
			return len;
		const char *kind = open + sizeof(tag) - 1;
		if (!strncmp(kind, "cold", 4))
			*cold = true;
		else
			*clone = true;
		len = (size_t)(open - dem);
	}
}

/* Index of the '(' opening the parameter list: the one matching the last ')' of dem[0..len). */
static long params_open(const char *dem, size_t len)
{
	long close = -1;
	for (size_t i = len; i-- > 0;)
		if (dem[i] == ')') {
			close = (long)i;
			break;
		}
	if (close < 0)
		return -1;
	int depth = 0;
	for (long i = close; i >= 0; i--) {
		if (dem[i] == ')')
			depth++;
		else if (dem[i] == '(' && --depth == 0)
			return i;
	}
	return -1;
}

/* Start of the qualified name in dem[0..len): after a return type ("int ns::f<int>"), which
 * ends at the last space outside <> and () that is not part of an operator name. */
static size_t qual_start(const char *dem, size_t len)
{
	int depth = 0;
	size_t start = 0;
	const char *op = strstr(dem, "operator");
	size_t stop = op && (size_t)(op - dem) < len ? (size_t)(op - dem) : len;
	for (size_t i = 0; i < stop; i++) {
		char ch = dem[i];
		if (ch == '<' || ch == '(')
			depth++;
		else if ((ch == '>' || ch == ')') && depth > 0)
			depth--;
		else if (ch == ' ' && depth == 0)
			start = i + 1;
	}
	return start;
}

static void copy_range(char *dst, size_t cap, const char *src, size_t len)
{
	if (len >= cap)
		len = cap - 1;
	memcpy(dst, src, len);
	dst[len] = '\0';
}

void diag_fname_parse_demangled(const char *dem, bool cxx, struct diag_fname *out)
{
	memset(out, 0, sizeof(*out));
	out->cxx = cxx;
	size_t len = strlen(dem);
	if (!cxx) {
		len = strip_clone_suffixes(dem, len, &out->clone, &out->cold);
		copy_range(out->qual, sizeof(out->qual), dem, len);
		return;
	}
	len = strip_demangled_clones(dem, len, &out->clone, &out->cold);
	long open = params_open(dem, len);
	size_t qend = open >= 0 ? (size_t)open : len;
	size_t qs = qual_start(dem, qend);
	copy_range(out->qual, sizeof(out->qual), dem + qs, qend - qs);
	if (open >= 0)
		copy_range(out->params, sizeof(out->params), dem + open, len - (size_t)open);
}

void diag_fname_parse(const char *symbol, struct diag_fname *out)
{
	char *dem = diag_cxx_demangle(symbol);
	diag_fname_parse_demangled(dem ? dem : symbol, dem != NULL, out);
	free(dem);
}

static void squeeze(const char *s, char *out, size_t cap)
{
	size_t n = 0;
	for (; *s && n + 1 < cap; s++)
		if (!isspace((unsigned char)*s))
			out[n++] = *s;
	out[n] = '\0';
}

bool diag_cxx_params_match(const char *query, const char *params)
{
	char q[DIAG_CXX_NAME_MAX], p[DIAG_CXX_NAME_MAX];
	squeeze(query, q, sizeof(q));
	squeeze(params, p, sizeof(p));
	if (!strcmp(q, p))
		return true;
	/* "(int)" also names "(int) const" */
	size_t ql = strlen(q);
	return ql && q[ql - 1] == ')' && !strncmp(q, p, ql) && params_open(p, strlen(p)) == 0 &&
	       strrchr(p, ')') == p + ql - 1;
}

static bool suffix_match(const char *qual, size_t ql, const char *query)
{
	size_t n = strlen(query);
	if (n > ql)
		return false;
	if (strncmp(qual + ql - n, query, n) != 0)
		return false;
	return n == ql || (ql - n >= 2 && qual[ql - n - 1] == ':' && qual[ql - n - 2] == ':');
}

bool diag_cxx_qual_match(const char *qual, const char *query)
{
	size_t ql = strlen(qual);
	if (suffix_match(qual, ql, query))
		return true;
	/* "ns::f" names the instances "ns::f<int>" too */
	if (ql && qual[ql - 1] == '>' && !strchr(query, '<')) {
		int depth = 0;
		for (size_t i = ql; i-- > 0;) {
			if (qual[i] == '>')
				depth++;
			else if (qual[i] == '<' && --depth == 0)
				return suffix_match(qual, i, query);
		}
	}
	return false;
}
