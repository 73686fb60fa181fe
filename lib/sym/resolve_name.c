/* resolve_name: targets that name functions. FUNC gives the function, its compiler clones
 * (.isra/.part/.constprop, never .cold) and, where the module has DWARF, the entry of each
 * inlined copy; a clone's own name or FUNC+OFF gives that one symbol; C++ qualified names
 * (overloads by parameter list) and globs match demangled names. Candidates are looked for in
 * the named module, else the main executable, else every module; ambiguities and globs too
 * wide are errors listing the candidates, a missing name suggests close ones (suggest.c).
 * Never parses target syntax (the parsed target comes from spec/target.h), never reads target
 * memory. */
#include "sym/sym_internal.h"

#include "dwarf/dwarf.h"
#include "sym/cxx.h"
#include "util/grow.h"

#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What a name target asks for. */
enum qkind {
	Q_EXACT, /* one ELF symbol by its exact name (a clone's own name, FUNC+OFF) */
	Q_PLAIN, /* FUNC: the function, its clones and inlined copies */
	Q_CXX,   /* ns::Class::method, optionally with (params) */
	Q_GLOB,  /* handle_*, ns::* */
};

struct query {
	enum qkind q;
	const char *func;   /* the name, qualified name or pattern (the target's) */
	const char *params; /* C++ parameter list, "" if not given */
	uint64_t off;
	bool has_off;
};

/* The grammar says what was written; a clone's own name ("work.constprop.0") is a name of one
 * symbol, which only the clone naming rules (cxx.h) know. */
static void query_of(const struct diag_target *t, struct query *q)
{
	q->func = t->func;
	q->params = t->params;
	q->off = t->off;
	q->has_off = t->has_off;
	q->q = t->kind == DIAG_TARGET_GLOB ? Q_GLOB : t->kind == DIAG_TARGET_CXX ? Q_CXX : Q_PLAIN;
	if (q->q == Q_PLAIN) {
		struct diag_fname fn;
		diag_fname_parse_demangled(t->func, false, &fn);
		if (t->has_off || fn.clone || fn.cold)
			q->q = Q_EXACT;
	}
}

static int not_found(struct diag_symcache *c, const struct diag_modmap *m,
		     const struct diag_module *mod, const struct query *t, struct diag_error *err)
{
	char msg[DIAG_ERRMSG_MAX];
	if (mod)
		snprintf(msg, sizeof(msg), "no function '%s' in %s of process %d", t->func, mod->name,
			 (int)m->pid);
	else
		snprintf(msg, sizeof(msg), "no function '%s' in process %d", t->func, (int)m->pid);
	if (t->q != Q_GLOB)
		sym_suggest_text(c, m, mod, t->func, msg, sizeof(msg));
	return diag_error_set(err, -DIAG_E_NOSYM, "%s", msg);
}

/* The DWARF of mod's file, opened once per file (NULL when it has none). */

struct fcand {
	const struct diag_module *mod;
	const struct sym *s;                /* an ELF function, or NULL */
	const struct diag_dwarf_inline *in; /* an inlined copy, or NULL */
	char *ident;                        /* "name" or "ns::C::m(int)": one per source function */
	bool clone;
};

struct fcands {
	struct fcand *v;
	size_t n, cap;
};

static void fcands_free(struct fcands *fc)
{
	for (size_t i = 0; i < fc->n; i++)
		free(fc->v[i].ident);
	free(fc->v);
	memset(fc, 0, sizeof(*fc));
}

static int fcands_add(struct fcands *fc, const struct fcand *x, const struct diag_fname *fn)
{
	if (DIAG_GROW(&fc->v, &fc->cap, fc->n + 1))
		return -ENOMEM;
	char *ident = malloc(strlen(fn->qual) + strlen(fn->params) + 1);
	if (!ident)
		return -ENOMEM;
	strcpy(ident, fn->qual);
	strcat(ident, fn->params);
	fc->v[fc->n] = *x;
	fc->v[fc->n].ident = ident;
	fc->v[fc->n++].clone = fn->clone;
	return 0;
}

static bool fname_matches(const struct query *t, const struct diag_fname *fn)
{
	if (fn->cold)
		return false;
	switch (t->q) {
	case Q_PLAIN:
		return strcmp(fn->qual, t->func) == 0;
	case Q_CXX:
		return fn->cxx && diag_cxx_qual_match(fn->qual, t->func) &&
		       (!t->params[0] || diag_cxx_params_match(t->params, fn->params));
	case Q_GLOB:
		if (t->params[0]) {
			char full[2 * DIAG_CXX_NAME_MAX];
			snprintf(full, sizeof(full), "%s%s", fn->qual, fn->params);
			char pat[512];
			snprintf(pat, sizeof(pat), "%s%s", t->func, t->params);
			return fnmatch(pat, full, 0) == 0;
		}
		return fnmatch(t->func, fn->qual, 0) == 0;
	default:
		return false;
	}
}

static int demangle_all(struct symfile *sf)
{
	if (sf->demangled || !sf->n)
		return 0;
	char **d = calloc(sf->n, sizeof(*d));
	if (!d)
		return -ENOMEM;
	for (size_t i = 0; i < sf->n; i++)
		d[i] = diag_cxx_demangle(sf->syms[i].name);
	sf->demangled = d;
	return 0;
}

/* A non-default version (foo@VER) counts only when foo has no default version. */
static bool version_hidden(const struct symfile *sf, const struct sym *s)
{
	if (!s->hidden_ver)
		return false;
	for (size_t i = sym_name_lower_bound(sf, s->name);
	     i < sf->n && !strcmp(sf->syms[sf->by_name[i]].name, s->name); i++)
		if (!sf->syms[sf->by_name[i]].hidden_ver)
			return true;
	return false;
}

/* ELF functions of one module that t names. */
static int scan_elf(struct symfile *sf, const struct diag_module *mod, const struct query *t,
		    struct fcands *fc)
{
	int rc = t->q == Q_EXACT ? 0 : demangle_all(sf);
	for (size_t i = 0; rc == 0 && i < sf->n; i++) {
		const struct sym *s = &sf->syms[i];
		struct diag_fname fn;
		if (t->q == Q_EXACT) {
			if (strcmp(s->name, t->func))
				continue;
			diag_fname_parse_demangled(s->name, false, &fn);
			fn.clone = fn.clone || fn.cold;
			snprintf(fn.qual, sizeof(fn.qual), "%s", s->name);
		} else {
			const char *dem = sf->demangled ? sf->demangled[i] : NULL;
			/* cheap reject before parsing a C name */
			if (!dem && t->q == Q_PLAIN && strncmp(s->name, t->func, strlen(t->func)))
				continue;
			diag_fname_parse_demangled(dem ? dem : s->name, dem != NULL, &fn);
			if (!fname_matches(t, &fn))
				continue;
		}
		if (version_hidden(sf, s))
			continue;
		struct fcand x = { .mod = mod, .s = s };
		rc = fcands_add(fc, &x, &fn);
	}
	return rc;
}

struct inl_scan {
	const struct query *t;
	const struct diag_module *mod;
	struct fcands *fc;
};

static int inl_cb(void *arg, const struct diag_dwarf_inline *in)
{
	struct inl_scan *is = arg;
	struct diag_fname fn;
	if (in->linkage)
		diag_fname_parse(in->linkage, &fn);
	else
		diag_fname_parse_demangled(in->name, false, &fn);
	if (!fname_matches(is->t, &fn))
		return 0;
	struct fcand x = { .mod = is->mod, .in = in };
	return fcands_add(is->fc, &x, &fn);
}

/* Candidates of t in one module: ELF functions, then inlined copies (when with_inline). */
static int scan_module(struct diag_symcache *c, const struct diag_module *mod,
		       const struct query *t, bool with_inline, struct fcands *fc,
		       struct diag_error *err)
{
	const struct symfile *csf;
	int rc = sym_file_get(c, mod, &csf, err);
	if (rc)
		return rc;
	if ((rc = scan_elf((struct symfile *)csf, mod, t, fc)))
		return diag_error_set(err, rc, "symbols: out of memory");
	if (!with_inline || t->q == Q_EXACT)
		return 0;
	struct diag_dwarf_file *df = sym_module_dwarf(c, mod, NULL);
	if (!df)
		return 0;
	struct inl_scan is = { t, mod, fc };
	return diag_dwarf_inlined_foreach(df, inl_cb, &is, err);
}

/* Candidates in the named module; else in the main executable; else in every module (inlined
 * copies there only in modules that also define the function out of line). */
static int gather(struct diag_symcache *c, const struct diag_modmap *m,
		  const struct diag_module *mod, const struct query *t, struct fcands *fc,
		  struct diag_error *err)
{
	if (mod)
		return scan_module(c, mod, t, true, fc, err);
	const struct diag_module *main_mod = diag_modmap_main(m);
	if (main_mod) {
		int rc = scan_module(c, main_mod, t, true, fc, err);
		if (rc || fc->n)
			return rc;
	}
	for (size_t i = 0; i < m->n; i++) {
		const struct diag_module *mi = &m->mods[i];
		if (mi == main_mod)
			continue;
		size_t before = fc->n;
		if (scan_module(c, mi, t, false, fc, NULL) == -ENOMEM)
			return diag_error_set(err, -ENOMEM, "symbols: out of memory");
		if (fc->n > before && t->q != Q_EXACT) {
			struct diag_dwarf_file *df = sym_module_dwarf(c, mi, NULL);
			struct inl_scan is = { t, mi, fc };
			int rc = df ? diag_dwarf_inlined_foreach(df, inl_cb, &is, err) : 0;
			if (rc)
				return rc;
		}
	}
	return 0;
}

/* Number of distinct identities; the first few are listed into buf. */
static size_t identities(const struct fcands *fc, char *buf, size_t cap, size_t max_listed)
{
	size_t count = 0, len = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < fc->n; i++) {
		bool seen = false;
		for (size_t j = 0; j < i && !seen; j++)
			seen = !strcmp(fc->v[j].ident, fc->v[i].ident);
		if (seen)
			continue;
		if (count++ < max_listed && len < cap) {
			snprintf(buf + len, cap - len, "%s%s", len ? ", " : "", fc->v[i].ident);
			len += strlen(buf + len);
		}
	}
	return count;
}

static uint64_t fcand_addr(const struct fcand *x)
{
	return x->s ? x->s->addr + x->mod->bias : x->in->entry ? x->in->entry + x->mod->bias : 0;
}

/* Out-of-line definitions (not clones, not inlined copies) at distinct addresses. */
static int check_unique_definition(const struct diag_modmap *m, const struct query *t,
				   const struct fcands *fc, struct diag_error *err)
{
	char list[DIAG_ERRMSG_MAX] = "";
	size_t len = 0, count = 0;
	for (size_t i = 0; i < fc->n; i++) {
		const struct fcand *x = &fc->v[i];
		if (!x->s || (x->clone && t->q != Q_EXACT))
			continue;
		bool seen = false;
		for (size_t j = 0; j < i && !seen; j++)
			seen = fc->v[j].s && !(fc->v[j].clone && t->q != Q_EXACT) &&
			       fcand_addr(&fc->v[j]) == fcand_addr(x);
		if (seen)
			continue;
		if (count++ < SYM_MAX_AMBIGUOUS && len < sizeof(list)) {
			snprintf(list + len, sizeof(list) - len, "%s%s:%s", len ? ", " : "", x->mod->name,
				 t->func);
			len += strlen(list + len);
		}
	}
	if (count <= 1)
		return 0;
	return diag_error_set(err, -DIAG_E_AMBIGUOUS,
			      "function '%s' is defined at %zu addresses in process %d: %s%s", t->func,
			      count, (int)m->pid, list, count > SYM_MAX_AMBIGUOUS ? ", ..." : "");
}

static int check_candidates(const struct diag_modmap *m, const struct query *t,
			    const struct diag_sym_opts *opts, const struct fcands *fc,
			    struct diag_error *err)
{
	char list[DIAG_ERRMSG_MAX - 128];
	if (t->q == Q_GLOB) {
		unsigned max = opts && opts->glob_max ? opts->glob_max : DIAG_SYM_GLOB_MAX;
		size_t count = identities(fc, list, sizeof(list), 0);
		if (count > max)
			return diag_error_set(err, -DIAG_E_LIMIT,
					      "target '%s' matches %zu functions (max %u); narrow the pattern",
					      t->func, count, max);
		return 0;
	}
	size_t count = identities(fc, list, sizeof(list), SYM_MAX_AMBIGUOUS);
	if (count > 1)
		return diag_error_set(err, -DIAG_E_AMBIGUOUS,
				      "'%s%s' matches %zu functions: %s%s; give the parameter list", t->func,
				      t->params, count, list, count > SYM_MAX_AMBIGUOUS ? ", ..." : "");
	return check_unique_definition(m, t, fc, err);
}

static void inline_text(const struct fcand *x, char *buf, size_t cap)
{
	const struct diag_dwarf_inline *in = x->in;
	if (in->call_file[0])
		snprintf(buf, cap, "inlined into %s at %s:%u", in->caller[0] ? in->caller : "?",
			 in->call_file, in->call_line);
	else
		snprintf(buf, cap, "inlined into %s", in->caller[0] ? in->caller : "?");
}

/* The location of one candidate, or a skip with the reason. */
static int emit(const struct query *t, const struct fcand *x, struct sym_result *r)
{
	struct diag_location loc;
	if (x->s) {
		sym_location_fill(&loc, x->mod, x->s, x->s->addr + x->mod->bias + t->off);
		if (t->has_off)
			loc.kind = DIAG_LOC_ADDRESS;
		else if (x->clone)
			loc.kind = DIAG_LOC_CLONE;
		if (loc.kind == DIAG_LOC_CLONE)
			snprintf(loc.note, sizeof(loc.note), "clone %s", x->s->name);
		if (!x->clone && (t->q == Q_PLAIN || t->q == Q_EXACT))
			snprintf(loc.symbol, sizeof(loc.symbol), "%s", t->func); /* not an alias */
		else
			snprintf(loc.symbol, sizeof(loc.symbol), "%s", x->ident);
		return sym_result_add(r, &loc);
	}
	char where[128];
	inline_text(x, where, sizeof(where));
	if (!x->in->entry) {
		char what[160];
		snprintf(what, sizeof(what), "%s %s", x->ident, where);
		return sym_result_skip(r, x->mod, what, "inlined instance without an entry address");
	}
	memset(&loc, 0, sizeof(loc));
	loc.addr = x->in->entry + x->mod->bias;
	loc.mod = x->mod;
	loc.kind = DIAG_LOC_INLINED;
	snprintf(loc.symbol, sizeof(loc.symbol), "%s", x->ident);
	snprintf(loc.note, sizeof(loc.note), "%s", where);
	if (x->in->hi > x->in->lo) {
		loc.func_start = x->in->lo + x->mod->bias;
		loc.func_end = x->in->hi + x->mod->bias;
		loc.offset = loc.addr - loc.func_start;
	}
	return sym_result_add(r, &loc);
}

static int all_skipped(const struct query *t, const struct sym_result *r, struct diag_error *err)
{
	return diag_error_set(err, -DIAG_E_NOSYM, "'%s': all %zu instances skipped: %s (%s)%s", t->func,
			      r->nskips, r->skips[0].reason, r->skips[0].what,
			      r->nskips > 1 ? ", ..." : "");
}

int sym_resolve_name(struct diag_symcache *c, const struct diag_modmap *m,
		     const struct diag_module *mod, const struct diag_target *target,
		     const struct diag_sym_opts *opts, struct sym_result *r, struct diag_error *err)
{
	struct query q;
	query_of(target, &q);
	const struct query *t = &q;
	struct fcands fc = { 0 };
	int rc = gather(c, m, mod, t, &fc, err);
	if (rc == 0 && fc.n == 0)
		rc = not_found(c, m, mod, t, err);
	if (rc == 0)
		rc = check_candidates(m, t, opts, &fc, err);
	if (rc == 0 && t->has_off && t->off >= fc.v[0].s->size)
		rc = diag_error_set(err, -DIAG_E_INVALID,
				    "target '%s+0x%" PRIx64 "': offset 0x%" PRIx64
				    " is past the end of %s (size 0x%" PRIx64 ")",
				    t->func, t->off, t->off, fc.v[0].s->name, fc.v[0].s->size);
	for (size_t i = 0; rc == 0 && i < fc.n; i++)
		if (emit(t, &fc.v[i], r))
			rc = diag_error_set(err, -ENOMEM, "symbols: out of memory");
	if (rc == 0 && r->n == 0)
		rc = all_skipped(t, r, err);
	fcands_free(&fc);
	return rc;
}
