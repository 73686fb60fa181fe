/* symtab: per-file index of ELF function symbols (.symtab + .dynsym, deduplicated) sorted by
 * address and by name, cached by build-id (else dev+inode+size+mtime) and shared by every
 * process; target-string resolution, address symbolization and enumeration on top of it.
 * Never reads target memory, never re-reads an indexed file, keeps no global state. */
#include "sym/symtab.h"

#include "dwarf/dwarf.h"
#include "indexer/indexer.h"
#include "sym/cxx.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <gelf.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_MAX 128
#define MAX_AMBIGUOUS 8
#define MAX_SUGGEST 5

struct sym {
	uint64_t addr; /* ELF vaddr */
	uint64_t size;
	const char *name; /* points into one of the file's string blobs */
	unsigned char bind;
	bool hidden_ver; /* a non-default version: foo@VER, while foo@@VER is the one to use */
	bool ifunc;      /* STT_GNU_IFUNC: addr is the resolver, not the code that runs */
};

struct symfile {
	char key[KEY_MAX];
	struct sym *syms;  /* by address; at one address the preferred alias first */
	size_t n;
	uint32_t *by_name; /* indices into syms, by name then address */
	char *blobs[2];    /* copies of the string tables the names point into */
	size_t nblobs;
	char **demangled;  /* per sym: C++ demangled name or NULL; built on the first C++ query */
	int dwarf_state;   /* 0 not tried, 1 dwarf set, -1 no DWARF */
	struct diag_dwarf_file *dwarf;
};

struct diag_symcache {
	struct symfile **files;
	size_t n, cap;
	struct diag_dwarf_cache *dwarf;
	bool own_dwarf;
	struct diag_indexer *ix; /* non-NULL: files are read by the worker */
};

/* ---- index building ---- */

struct symvec {
	struct sym *v;
	size_t n, cap;
};

static int symvec_push(struct symvec *sv, const struct sym *s)
{
	if (sv->n >= DIAG_SYMFILE_MAX_SYMS)
		return -DIAG_E_LIMIT;
	if (sv->n == sv->cap) {
		size_t cap = sv->cap ? sv->cap * 2 : 256;
		struct sym *v = realloc(sv->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		sv->v = v;
		sv->cap = cap;
	}
	sv->v[sv->n++] = *s;
	return 0;
}

static int bind_rank(unsigned char bind)
{
	return bind == STB_GLOBAL ? 0 : bind == STB_WEAK ? 1 : 2;
}

/* The alias to show for an address: fewest leading underscores ("write" over "__write"), then
 * the strongest binding. */
static int alias_rank(const struct sym *s)
{
	int u = 0;
	while (s->name[u] == '_')
		u++;
	return u * 4 + bind_rank(s->bind);
}

static int cmp_addr_name(const void *a, const void *b)
{
	const struct sym *x = a, *y = b;
	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int cmp_addr_pref(const void *a, const void *b)
{
	const struct sym *x = a, *y = b;
	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	int rx = alias_rank(x), ry = alias_rank(y);
	if (rx != ry)
		return rx - ry;
	return strcmp(x->name, y->name);
}

static int cmp_name_idx(const void *a, const void *b, void *arg)
{
	const struct sym *syms = arg;
	const struct sym *x = &syms[*(const uint32_t *)a], *y = &syms[*(const uint32_t *)b];
	int c = strcmp(x->name, y->name);
	if (c)
		return c;
	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

/* The same function often sits in both .symtab and .dynsym: keep one entry per (addr, name). */
static void dedupe(struct symvec *sv)
{
	if (sv->n < 2)
		return;
	qsort(sv->v, sv->n, sizeof(*sv->v), cmp_addr_name);
	size_t w = 0;
	for (size_t i = 0; i < sv->n; i++) {
		struct sym *prev = w ? &sv->v[w - 1] : NULL;
		if (prev && prev->addr == sv->v[i].addr && strcmp(prev->name, sv->v[i].name) == 0) {
			prev->hidden_ver = prev->hidden_ver && sv->v[i].hidden_ver;
			if (bind_rank(sv->v[i].bind) < bind_rank(prev->bind))
				prev->bind = sv->v[i].bind;
			continue;
		}
		sv->v[w++] = sv->v[i];
	}
	sv->n = w;
}

static Elf_Data *versym_for(Elf *elf, size_t dynsym_idx)
{
	Elf_Scn *scn = NULL;
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		if (gelf_getshdr(scn, &sh) && sh.sh_type == SHT_GNU_versym && sh.sh_link == dynsym_idx)
			return elf_getdata(scn, NULL);
	}
	return NULL;
}

static bool is_function(const GElf_Sym *s)
{
	int t = GELF_ST_TYPE(s->st_info);
	return (t == STT_FUNC || t == STT_GNU_IFUNC) && s->st_shndx != SHN_UNDEF && s->st_size > 0;
}

/* Adds the functions of one symbol section; its string table is copied into sf->blobs. */
static int add_symtab(Elf *elf, Elf_Scn *scn, const GElf_Shdr *sh, struct symfile *sf,
		      struct symvec *sv)
{
	Elf_Data *d = elf_getdata(scn, NULL);
	Elf_Data *sd = elf_getdata(elf_getscn(elf, sh->sh_link), NULL);
	if (!d || !sd || !sd->d_buf || sd->d_size == 0 || sf->nblobs >= 2)
		return 0;
	char *blob = malloc(sd->d_size + 1);
	if (!blob)
		return -ENOMEM;
	memcpy(blob, sd->d_buf, sd->d_size);
	blob[sd->d_size] = '\0'; /* a corrupt table must not run names past its end */
	sf->blobs[sf->nblobs++] = blob;
	Elf_Data *vd = sh->sh_type == SHT_DYNSYM ? versym_for(elf, elf_ndxscn(scn)) : NULL;
	size_t count = sh->sh_entsize ? sh->sh_size / sh->sh_entsize : 0;
	for (size_t i = 0; i < count; i++) {
		GElf_Sym s;
		if (!gelf_getsym(d, (int)i, &s) || !is_function(&s) || s.st_name == 0 ||
		    s.st_name >= sd->d_size)
			continue;
		GElf_Versym ver = 0;
		if (vd)
			gelf_getversym(vd, (int)i, &ver);
		struct sym e = { .addr = s.st_value, .size = s.st_size, .name = blob + s.st_name,
				 .bind = (unsigned char)GELF_ST_BIND(s.st_info),
				 .hidden_ver = (ver & 0x8000) != 0,
				 .ifunc = GELF_ST_TYPE(s.st_info) == STT_GNU_IFUNC };
		int rc = symvec_push(sv, &e);
		if (rc)
			return rc;
	}
	return 0;
}

static int index_elf(Elf *elf, struct symfile *sf)
{
	struct symvec sv = { 0 };
	Elf_Scn *scn = NULL;
	int rc = 0;
	while (rc == 0 && (scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		if (gelf_getshdr(scn, &sh) && (sh.sh_type == SHT_SYMTAB || sh.sh_type == SHT_DYNSYM))
			rc = add_symtab(elf, scn, &sh, sf, &sv);
	}
	if (rc == 0)
		dedupe(&sv);
	if (rc == 0 && sv.n && !(sf->by_name = malloc(sv.n * sizeof(*sf->by_name))))
		rc = -ENOMEM;
	if (rc) {
		free(sv.v);
		return rc;
	}
	if (sv.n) { /* a file without symbols still gets an (empty) index */
		qsort(sv.v, sv.n, sizeof(*sv.v), cmp_addr_pref);
		for (size_t i = 0; i < sv.n; i++)
			sf->by_name[i] = (uint32_t)i;
		qsort_r(sf->by_name, sv.n, sizeof(*sf->by_name), cmp_name_idx, sv.v);
	}
	sf->syms = sv.v;
	sf->n = sv.n;
	return 0;
}

static void symfile_free(struct symfile *sf)
{
	if (!sf)
		return;
	for (size_t i = 0; sf->demangled && i < sf->n; i++)
		free(sf->demangled[i]);
	free(sf->demangled);
	free(sf->syms);
	free(sf->by_name);
	for (size_t i = 0; i < sf->nblobs; i++)
		free(sf->blobs[i]);
	free(sf);
}

/* Indexes the ELF open at fd (not taken); name is for messages. */
static int symfile_index_fd(int fd, const char *name, struct symfile *sf, struct diag_error *err)
{
	Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	int rc;
	if (!elf || elf_kind(elf) != ELF_K_ELF)
		rc = diag_error_set(err, -DIAG_E_INVALID, "symbols: %s is not a readable ELF file: %s",
				    name, elf_errmsg(-1));
	else if ((rc = index_elf(elf, sf)) < 0)
		diag_error_set(err, rc, "symbols: cannot index %s: %s", name,
			       rc == -DIAG_E_LIMIT ? "more than DIAG_SYMFILE_MAX_SYMS functions"
						   : diag_strerror(rc));
	if (elf)
		elf_end(elf);
	return rc;
}

int diag_symfile_encode(int fd, struct diag_ix_buf *out, struct diag_error *err)
{
	struct symfile *sf = calloc(1, sizeof(*sf));
	if (!sf)
		return diag_error_set(err, -ENOMEM, "symbols: out of memory");
	elf_version(EV_CURRENT);
	int rc = symfile_index_fd(fd, "the file", sf, err);
	size_t blob = 0;
	for (size_t i = 0; rc == 0 && i < sf->n; i++)
		blob += strlen(sf->syms[i].name) + 1;
	if (rc == 0) {
		diag_ix_put_u32(out, (uint32_t)sf->n);
		for (size_t i = 0, off = 0; i < sf->n; i++) {
			const struct sym *s = &sf->syms[i];
			diag_ix_put_u64(out, s->addr);
			diag_ix_put_u64(out, s->size);
			diag_ix_put_u8(out, s->bind);
			diag_ix_put_u8(out, (uint8_t)(s->hidden_ver | s->ifunc << 1)); /* flags */
			diag_ix_put_u32(out, (uint32_t)off);
			off += strlen(s->name) + 1;
		}
		for (size_t i = 0; i < sf->n; i++)
			diag_ix_put_u32(out, sf->by_name[i]);
		diag_ix_put_u32(out, (uint32_t)blob); /* the names, each NUL-terminated */
		for (size_t i = 0; i < sf->n; i++)
			diag_ix_put_raw(out, sf->syms[i].name, strlen(sf->syms[i].name) + 1);
	}
	symfile_free(sf);
	return rc;
}

#define SYM_WIRE_BYTES 22 /* addr, size, bind, flags (hidden version, ifunc), name offset */

/* The worker's flat table into sf, validated: counts bounded by what the message holds,
 * by_name indices in range, names inside a NUL-terminated blob. */
static int symfile_decode(struct diag_ix_rd *rd, struct symfile *sf)
{
	uint32_t n = diag_ix_get_u32(rd);
	if (rd->bad || n > DIAG_SYMFILE_MAX_SYMS || (rd->len - rd->off) / (SYM_WIRE_BYTES + 4) < n)
		return -1;
	uint32_t *offs = malloc((n ? n : 1) * sizeof(*offs));
	sf->syms = calloc(n ? n : 1, sizeof(*sf->syms));
	sf->by_name = malloc((n ? n : 1) * sizeof(*sf->by_name));
	if (!offs || !sf->syms || !sf->by_name) {
		free(offs);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < n; i++) {
		sf->syms[i].addr = diag_ix_get_u64(rd);
		sf->syms[i].size = diag_ix_get_u64(rd);
		sf->syms[i].bind = diag_ix_get_u8(rd);
		uint8_t flags = diag_ix_get_u8(rd);
		sf->syms[i].hidden_ver = flags & 1;
		sf->syms[i].ifunc = (flags & 2) != 0;
		offs[i] = diag_ix_get_u32(rd);
	}
	for (uint32_t i = 0; i < n; i++)
		if ((sf->by_name[i] = diag_ix_get_u32(rd)) >= n)
			rd->bad = true;
	size_t blen = 0;
	const uint8_t *b = diag_ix_get_bytes(rd, DIAG_IX_MAX_MSG, &blen);
	char *blob = b && (blen == 0 || b[blen - 1] == 0) ? malloc(blen + 1) : NULL;
	if (blob) {
		memcpy(blob, b, blen);
		blob[blen] = '\0';
		sf->blobs[sf->nblobs++] = blob;
	}
	for (uint32_t i = 0; i < n; i++)
		if (blob && offs[i] < blen)
			sf->syms[i].name = blob + offs[i];
		else
			rd->bad = true;
	free(offs);
	sf->n = n;
	return rd->bad || !blob ? -1 : 0;
}

static int symfile_remote(struct diag_symcache *c, const struct diag_module *mod, const char *key,
			  int fd, struct symfile *sf, struct diag_error *err)
{
	char what[600], pkey[KEY_MAX + 8];
	snprintf(what, sizeof(what), "reading the symbols of %s", mod->path);
	snprintf(pkey, sizeof(pkey), "sym:%s", key);
	struct diag_ix_buf req = { 0 };
	diag_ix_put_u8(&req, DIAG_IX_SYMS);
	struct diag_ix_reply rep;
	int rc = diag_indexer_call(c->ix, pkey, what, &req, &fd, 1, &rep, err);
	diag_ix_buf_release(&req);
	if (rc < 0)
		return rc;
	rc = symfile_decode(&rep.rd, sf);
	diag_ix_reply_release(&rep);
	if (rc == -ENOMEM)
		return diag_error_set(err, rc, "symbols: out of memory");
	if (rc)
		return diag_indexer_bad_reply(c->ix, pkey, what, "invalid symbol table", err);
	return 0;
}

static int symfile_load(struct diag_symcache *c, const struct diag_module *mod, const char *key,
			struct symfile **out, struct diag_error *err)
{
	int fd = open(mod->host_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return diag_error_set(err, -errno, "symbols: cannot open %s: %s", mod->host_path,
				      strerror(errno));
	struct symfile *sf = calloc(1, sizeof(*sf));
	int rc;
	if (!sf)
		rc = diag_error_set(err, -ENOMEM, "symbols: out of memory");
	else if (c->ix)
		rc = symfile_remote(c, mod, key, fd, sf, err);
	else
		rc = symfile_index_fd(fd, mod->path, sf, err);
	close(fd);
	if (rc < 0) {
		symfile_free(sf);
		return rc;
	}
	snprintf(sf->key, sizeof(sf->key), "%s", key);
	*out = sf;
	return 0;
}

static int module_key(const struct diag_module *mod, char key[KEY_MAX], struct diag_error *err)
{
	if (mod->build_id[0]) {
		snprintf(key, KEY_MAX, "b:%s", mod->build_id);
		return 0;
	}
	struct stat st;
	if (stat(mod->host_path, &st) < 0)
		return diag_error_set(err, -errno, "symbols: cannot stat %s: %s", mod->host_path,
				      strerror(errno));
	snprintf(key, KEY_MAX, "f:%llx:%llu:%lld:%lld.%09ld", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino, (long long)st.st_size, (long long)st.st_mtim.tv_sec,
		 st.st_mtim.tv_nsec);
	return 0;
}

/* The index of mod's file: from the cache, or read once and added to it. */
static int symfile_get(struct diag_symcache *c, const struct diag_module *mod,
		       const struct symfile **out, struct diag_error *err)
{
	char key[KEY_MAX];
	int rc = module_key(mod, key, err);
	if (rc)
		return rc;
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->files[i]->key, key) == 0) {
			*out = c->files[i];
			return 0;
		}
	if (c->n >= DIAG_SYMCACHE_MAX_FILES)
		return diag_error_set(err, -DIAG_E_LIMIT, "symbols: cache holds %d files already",
				      DIAG_SYMCACHE_MAX_FILES);
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		struct symfile **v = realloc(c->files, cap * sizeof(*v));
		if (!v)
			return diag_error_set(err, -ENOMEM, "symbols: out of memory");
		c->files = v;
		c->cap = cap;
	}
	struct symfile *sf = NULL;
	rc = symfile_load(c, mod, key, &sf, err);
	if (rc)
		return rc;
	c->files[c->n++] = sf;
	*out = sf;
	return 0;
}

int diag_symcache_new(struct diag_symcache **out)
{
	struct diag_symcache *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	elf_version(EV_CURRENT);
	*out = c;
	return 0;
}

void diag_symcache_free(struct diag_symcache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++)
		symfile_free(c->files[i]);
	free(c->files);
	if (c->own_dwarf)
		diag_dwarf_cache_free(c->dwarf);
	free(c);
}

size_t diag_symcache_count(const struct diag_symcache *c)
{
	return c ? c->n : 0;
}

/* ---- queries on one file ---- */

/* First index in by_name whose name is >= name. */
static size_t name_lower_bound(const struct symfile *sf, const char *name)
{
	size_t lo = 0, hi = sf->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(sf->syms[sf->by_name[mid]].name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The function containing ELF address a, preferring the innermost start and, at one start,
 * the preferred alias. */
static const struct sym *sym_containing(const struct symfile *sf, uint64_t a)
{
	size_t lo = 0, hi = sf->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (sf->syms[mid].addr <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* Nested symbols are rare: a short backward walk finds an enclosing one if any. */
	for (size_t j = lo, steps = 0; j-- > 0 && steps < 64; steps++) {
		const struct sym *s = &sf->syms[j];
		if (a >= s->addr + s->size)
			continue;
		while (j > 0 && sf->syms[j - 1].addr == s->addr && a < s->addr + sf->syms[j - 1].size)
			s = &sf->syms[--j];
		return s;
	}
	return NULL;
}

/* ---- target parsing ---- */

enum qkind {
	Q_EXACT, /* one ELF symbol by its exact name (a clone's own name, FUNC+OFF) */
	Q_PLAIN, /* FUNC: the function, its clones and inlined copies */
	Q_CXX,   /* ns::Class::method, optionally with (params) */
	Q_GLOB,  /* handle_*, ns::* */
};

struct target {
	char module[256];
	char func[256];   /* the name, qualified name or pattern; FILE for a line target */
	char params[256]; /* C++ parameter list, "" if not given */
	uint64_t off;
	bool has_off;
	bool is_addr;
	uint64_t addr;
	bool is_line;
	unsigned line;
	enum qkind q;
};

static bool parse_u64(const char *s, uint64_t *v)
{
	bool hex = s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
	const char *digits = hex ? s + 2 : s;
	if (!*digits)
		return false;
	for (const char *p = digits; *p; p++)
		if (hex ? !isxdigit((unsigned char)*p) : !isdigit((unsigned char)*p))
			return false;
	errno = 0;
	*v = strtoull(digits, NULL, hex ? 16 : 10);
	return errno == 0;
}

static bool valid_func_name(const char *s)
{
	if (!*s || isdigit((unsigned char)*s))
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("_.$@", *s))
			return false;
	return true;
}

/* C++ names and globs may hold more: "ns::Widget::~Widget", "ns::f<int>", "ns::*". */
static bool valid_pattern(const char *s)
{
	if (!*s || isdigit((unsigned char)*s))
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("_.$@:~<>,*?[]! &", *s))
			return false;
	return true;
}

/* The MODULE separator is a lone ':' (a "::" belongs to a C++ name). */
static const char *module_colon(const char *s)
{
	for (const char *p = s; *p; p++) {
		if (*p != ':')
			continue;
		if (p[1] == ':') {
			p++;
			continue;
		}
		return p;
	}
	return NULL;
}

/* "[MODULE:]FILE:LINE": the last lone ':' followed by decimal digits only. */
static bool parse_line_target(const char *text, struct target *t)
{
	const char *colon = strrchr(text, ':');
	if (!colon || colon == text || colon[-1] == ':' || !colon[1] ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1))
		return false;
	char head[256];
	snprintf(head, sizeof(head), "%.*s", (int)(colon - text), text);
	const char *mc = module_colon(head);
	if (mc) {
		snprintf(t->module, sizeof(t->module), "%.*s", (int)(mc - head), head);
		snprintf(t->func, sizeof(t->func), "%s", mc + 1);
	} else {
		snprintf(t->func, sizeof(t->func), "%s", head);
	}
	unsigned long line = strtoul(colon + 1, NULL, 10);
	t->line = line > 0 && line < (1ul << 30) ? (unsigned)line : 0;
	t->is_line = true;
	return true;
}

static int parse_name(const char *text, struct target *t, struct diag_error *err)
{
	char *paren = strchr(t->func, '(');
	if (paren) {
		snprintf(t->params, sizeof(t->params), "%s", paren);
		*paren = '\0';
		t->q = Q_CXX;
	} else {
		char *plus = strrchr(t->func, '+');
		if (plus) {
			*plus = '\0';
			if (!parse_u64(plus + 1, &t->off))
				return diag_error_set(err, -DIAG_E_PARSE,
						      "target '%s': offset '%s' is not a decimal or 0x hex number",
						      text, plus + 1);
			t->has_off = true;
		}
	}
	if (strpbrk(t->func, "*?["))
		t->q = Q_GLOB;
	else if (t->q != Q_CXX && (strstr(t->func, "::") || strpbrk(t->func, "~<")))
		t->q = Q_CXX;
	bool ok = t->q == Q_PLAIN ? valid_func_name(t->func) : valid_pattern(t->func);
	if (!ok || (t->has_off && t->q != Q_PLAIN))
		return diag_error_set(err, -DIAG_E_PARSE,
				      "target '%s': '%s' is not a function name (expected FUNC, MODULE:FUNC, "
				      "FUNC+OFF, ns::Class::method(params), a glob, FILE:LINE or 0xADDR)",
				      text, t->func);
	if (t->q == Q_PLAIN) {
		struct diag_fname fn;
		diag_fname_parse_demangled(t->func, false, &fn);
		/* a clone's own name, or FUNC+OFF: that one symbol */
		if (t->has_off || fn.clone || fn.cold)
			t->q = Q_EXACT;
	}
	return 0;
}

static int parse_target(const char *text, struct target *t, struct diag_error *err)
{
	memset(t, 0, sizeof(*t));
	t->q = Q_PLAIN;
	if (!text || !*text)
		return diag_error_set(err, -DIAG_E_PARSE, "target: empty");
	if (strlen(text) >= sizeof(t->func))
		return diag_error_set(err, -DIAG_E_PARSE, "target '%.64s...': longer than %zu bytes",
				      text, sizeof(t->func) - 1);
	const char *colon = module_colon(text);
	if (!colon && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
		if (!parse_u64(text, &t->addr))
			return diag_error_set(err, -DIAG_E_PARSE, "target '%s': bad hex address", text);
		t->is_addr = true;
		return 0;
	}
	if (parse_line_target(text, t)) {
		if (!t->func[0] || !t->line || (colon == text))
			return diag_error_set(err, -DIAG_E_PARSE,
					      "target '%s': expected FILE:LINE with a line number >= 1", text);
		return 0;
	}
	const char *rest = text;
	if (colon) {
		if (colon == text)
			return diag_error_set(err, -DIAG_E_PARSE, "target '%s': empty module before ':'", text);
		memcpy(t->module, text, (size_t)(colon - text));
		rest = colon + 1;
	}
	snprintf(t->func, sizeof(t->func), "%s", rest);
	return parse_name(text, t, err);
}

/* ---- suggestions ("did you mean") ---- */

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

/* Appends "; did you mean: a, b" to buf when close names exist in scope (mod, or all). */
static void suggest_text(struct diag_symcache *c, const struct diag_modmap *m,
			 const struct diag_module *mod, const char *query, char *buf, size_t cap)
{
	struct suggest sg = { .query = query, .qlen = strlen(query) };
	sg.max_dist = sg.qlen <= 2 ? 1 : sg.qlen <= 5 ? 2 : (int)sg.qlen / 3;
	for (size_t i = 0; i < m->n; i++) {
		const struct symfile *sf;
		if ((!mod || mod == &m->mods[i]) && symfile_get(c, &m->mods[i], &sf, NULL) == 0)
			suggest_in(&sg, sf, &m->mods[i]);
	}
	size_t len = strlen(buf);
	for (size_t i = 0; i < sg.n && len < cap; i++) {
		snprintf(buf + len, cap - len, "%s%s", i ? ", " : "; did you mean: ", sg.v[i].name);
		len += strlen(buf + len);
	}
}

/* ---- resolution ---- */

static void location_fill(struct diag_location *loc, const struct diag_module *mod,
			  const struct sym *s, uint64_t addr)
{
	memset(loc, 0, sizeof(*loc));
	loc->addr = addr;
	loc->mod = mod;
	if (!s)
		return;
	snprintf(loc->symbol, sizeof(loc->symbol), "%s", s->name);
	loc->func_start = s->addr + mod->bias;
	loc->func_end = loc->func_start + s->size;
	loc->offset = addr - loc->func_start;
	loc->ifunc = s->ifunc;
}

struct result {
	struct diag_location *locs;
	size_t n, cap;
	struct diag_skip *skips;
	size_t nskips, capskips;
};

static int grow(void **v, size_t *cap, size_t n, size_t elem)
{
	if (n < *cap)
		return 0;
	size_t c = *cap ? *cap * 2 : 8;
	void *nv = realloc(*v, c * elem);
	if (!nv)
		return -ENOMEM;
	*v = nv;
	*cap = c;
	return 0;
}

/* Adds loc unless its address is already there (aliases, C1/C2 constructors). */
static int result_add(struct result *r, const struct diag_location *loc)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->locs[i].addr == loc->addr)
			return 0;
	if (grow((void **)&r->locs, &r->cap, r->n, sizeof(*r->locs)))
		return -ENOMEM;
	r->locs[r->n++] = *loc;
	return 0;
}

static int result_skip(struct result *r, const struct diag_module *mod, const char *what,
		       const char *reason)
{
	if (grow((void **)&r->skips, &r->capskips, r->nskips, sizeof(*r->skips)))
		return -ENOMEM;
	struct diag_skip *k = &r->skips[r->nskips++];
	memset(k, 0, sizeof(*k));
	k->mod = mod;
	snprintf(k->what, sizeof(k->what), "%s", what);
	snprintf(k->reason, sizeof(k->reason), "%s", reason);
	return 0;
}

static void result_free(struct result *r)
{
	free(r->locs);
	free(r->skips);
	memset(r, 0, sizeof(*r));
}

static int result_give(struct result *r, struct diag_location **out, size_t *n,
		       struct diag_skip **skips, size_t *nskips)
{
	*out = r->locs;
	*n = r->n;
	if (skips) {
		*skips = r->skips;
		*nskips = r->nskips;
	} else {
		free(r->skips);
	}
	memset(r, 0, sizeof(*r));
	return 0;
}

static int resolve_addr(struct diag_symcache *c, const struct diag_modmap *m, uint64_t addr,
			struct result *r, struct diag_error *err)
{
	const struct diag_module *mod = diag_modmap_find(m, addr);
	if (!mod)
		return diag_error_set(err, -DIAG_E_NOSYM,
				      "address 0x%" PRIx64 " is not inside any module of process %d", addr,
				      (int)m->pid);
	const struct symfile *sf;
	const struct sym *s = NULL;
	if (symfile_get(c, mod, &sf, NULL) == 0)
		s = sym_containing(sf, addr - mod->bias);
	struct diag_location loc;
	location_fill(&loc, mod, s, addr);
	loc.kind = DIAG_LOC_ADDRESS;
	return result_add(r, &loc) ? diag_error_set(err, -ENOMEM, "symbols: out of memory") : 0;
}

static int pick_module(const struct diag_modmap *m, const char *name,
		       const struct diag_module **mod, struct diag_error *err)
{
	size_t count = diag_modmap_count_name(m, name);
	if (count == 1) {
		*mod = diag_modmap_by_name(m, name);
		return 0;
	}
	if (count == 0)
		return diag_error_set(err, -DIAG_E_NOSYM, "no module '%s' in process %d", name, (int)m->pid);
	return diag_error_set(err, -DIAG_E_AMBIGUOUS,
			      "module '%s' matches %zu modules of process %d; give the full file name",
			      name, count, (int)m->pid);
}

static int not_found(struct diag_symcache *c, const struct diag_modmap *m,
		     const struct diag_module *mod, const struct target *t, struct diag_error *err)
{
	char msg[DIAG_ERRMSG_MAX];
	if (mod)
		snprintf(msg, sizeof(msg), "no function '%s' in %s of process %d", t->func, mod->name,
			 (int)m->pid);
	else
		snprintf(msg, sizeof(msg), "no function '%s' in process %d", t->func, (int)m->pid);
	if (t->q != Q_GLOB)
		suggest_text(c, m, mod, t->func, msg, sizeof(msg));
	return diag_error_set(err, -DIAG_E_NOSYM, "%s", msg);
}

/* The DWARF of mod's file, opened once per file (NULL when it has none). */
static struct diag_dwarf_file *module_dwarf(struct diag_symcache *c, const struct diag_module *mod,
					    struct diag_error *err)
{
	const struct symfile *csf;
	if (symfile_get(c, mod, &csf, NULL) < 0)
		return NULL;
	struct symfile *sf = (struct symfile *)csf; /* the cache owns it; the DWARF link is memo */
	if (sf->dwarf_state)
		return sf->dwarf;
	if (!c->dwarf) {
		if (diag_dwarf_cache_new(&c->dwarf) < 0)
			return NULL;
		c->own_dwarf = true;
	}
	struct diag_error e = { 0 };
	int rc = diag_dwarf_cache_get(c->dwarf, mod->host_path, mod->build_id, &sf->dwarf, &e);
	sf->dwarf_state = rc == 0 ? 1 : -1;
	if (rc < 0) {
		sf->dwarf = NULL;
		if (err)
			*err = e;
	}
	return sf->dwarf;
}

/* ---- name matching ---- */

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
	if (grow((void **)&fc->v, &fc->cap, fc->n, sizeof(*fc->v)))
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

static bool fname_matches(const struct target *t, const struct diag_fname *fn)
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
	for (size_t i = name_lower_bound(sf, s->name);
	     i < sf->n && !strcmp(sf->syms[sf->by_name[i]].name, s->name); i++)
		if (!sf->syms[sf->by_name[i]].hidden_ver)
			return true;
	return false;
}

/* ELF functions of one module that t names. */
static int scan_elf(struct symfile *sf, const struct diag_module *mod, const struct target *t,
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
	const struct target *t;
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
		       const struct target *t, bool with_inline, struct fcands *fc,
		       struct diag_error *err)
{
	const struct symfile *csf;
	int rc = symfile_get(c, mod, &csf, err);
	if (rc)
		return rc;
	if ((rc = scan_elf((struct symfile *)csf, mod, t, fc)))
		return diag_error_set(err, rc, "symbols: out of memory");
	if (!with_inline || t->q == Q_EXACT)
		return 0;
	struct diag_dwarf_file *df = module_dwarf(c, mod, NULL);
	if (!df)
		return 0;
	struct inl_scan is = { t, mod, fc };
	return diag_dwarf_inlined_foreach(df, inl_cb, &is, err);
}

/* Candidates in the named module; else in the main executable; else in every module (inlined
 * copies there only in modules that also define the function out of line). */
static int gather(struct diag_symcache *c, const struct diag_modmap *m,
		  const struct diag_module *mod, const struct target *t, struct fcands *fc,
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
			struct diag_dwarf_file *df = module_dwarf(c, mi, NULL);
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
static int check_unique_definition(const struct diag_modmap *m, const struct target *t,
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
		if (count++ < MAX_AMBIGUOUS && len < sizeof(list)) {
			snprintf(list + len, sizeof(list) - len, "%s%s:%s", len ? ", " : "", x->mod->name,
				 t->func);
			len += strlen(list + len);
		}
	}
	if (count <= 1)
		return 0;
	return diag_error_set(err, -DIAG_E_AMBIGUOUS,
			      "function '%s' is defined at %zu addresses in process %d: %s%s", t->func,
			      count, (int)m->pid, list, count > MAX_AMBIGUOUS ? ", ..." : "");
}

static int check_candidates(const struct diag_modmap *m, const struct target *t,
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
	size_t count = identities(fc, list, sizeof(list), MAX_AMBIGUOUS);
	if (count > 1)
		return diag_error_set(err, -DIAG_E_AMBIGUOUS,
				      "'%s%s' matches %zu functions: %s%s; give the parameter list", t->func,
				      t->params, count, list, count > MAX_AMBIGUOUS ? ", ..." : "");
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
static int emit(struct diag_symcache *c, const struct target *t, const struct fcand *x,
		struct result *r)
{
	struct diag_location loc;
	if (x->s) {
		location_fill(&loc, x->mod, x->s, x->s->addr + x->mod->bias + t->off);
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
		return result_add(r, &loc);
	}
	char where[128];
	inline_text(x, where, sizeof(where));
	if (!x->in->entry) {
		char what[160];
		snprintf(what, sizeof(what), "%s %s", x->ident, where);
		return result_skip(r, x->mod, what, "inlined instance without an entry address");
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
	(void)c;
	return result_add(r, &loc);
}

static int all_skipped(const struct target *t, const struct result *r, struct diag_error *err)
{
	return diag_error_set(err, -DIAG_E_NOSYM, "'%s': all %zu instances skipped: %s (%s)%s", t->func,
			      r->nskips, r->skips[0].reason, r->skips[0].what,
			      r->nskips > 1 ? ", ..." : "");
}

static int resolve_name(struct diag_symcache *c, const struct diag_modmap *m,
			const struct diag_module *mod, const struct target *t,
			const struct diag_sym_opts *opts, struct result *r, struct diag_error *err)
{
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
		if (emit(c, t, &fc.v[i], r))
			rc = diag_error_set(err, -ENOMEM, "symbols: out of memory");
	if (rc == 0 && r->n == 0)
		rc = all_skipped(t, r, err);
	fcands_free(&fc);
	return rc;
}

/* ---- FILE:LINE ---- */

static int resolve_line(struct diag_symcache *c, const struct diag_modmap *m,
			const struct diag_module *mod, const struct target *t, struct result *r,
			struct diag_error *err)
{
	if (!mod && !(mod = diag_modmap_main(m)))
		return diag_error_set(err, -DIAG_E_NOSYM, "process %d has no main executable", (int)m->pid);
	struct diag_error derr = { 0 };
	struct diag_dwarf_file *df = module_dwarf(c, mod, &derr);
	if (!df)
		return diag_error_set(err, -DIAG_E_NODEBUG, "target '%s:%u': %s", t->func, t->line,
				      derr.msg[0] ? derr.msg : "no DWARF line table");
	uint64_t *addrs = NULL;
	int n = diag_dwarf_line_addrs(df, t->func, t->line, &addrs, err);
	if (n < 0)
		return n;
	const struct symfile *sf = NULL;
	symfile_get(c, mod, &sf, NULL);
	int rc = 0;
	for (int i = 0; rc == 0 && i < n; i++) {
		struct diag_location loc;
		const struct sym *s = sf ? sym_containing(sf, addrs[i]) : NULL;
		location_fill(&loc, mod, s, addrs[i] + mod->bias);
		loc.kind = DIAG_LOC_LINE;
		snprintf(loc.note, sizeof(loc.note), "%s:%u", t->func, t->line);
		if (result_add(r, &loc))
			rc = diag_error_set(err, -ENOMEM, "symbols: out of memory");
	}
	free(addrs);
	return rc;
}

void diag_symcache_set_indexer(struct diag_symcache *c, struct diag_indexer *ix)
{
	c->ix = ix;
}

void diag_symcache_set_dwarf(struct diag_symcache *c, struct diag_dwarf_cache *dc)
{
	if (c->own_dwarf)
		diag_dwarf_cache_free(c->dwarf);
	for (size_t i = 0; i < c->n; i++) {
		c->files[i]->dwarf = NULL;
		c->files[i]->dwarf_state = 0;
	}
	c->dwarf = dc;
	c->own_dwarf = false;
}

int diag_sym_resolve2(struct diag_symcache *c, const struct diag_modmap *m, const char *target,
		      const struct diag_sym_opts *opts, struct diag_location **out, size_t *n,
		      struct diag_skip **skips, size_t *nskips, struct diag_error *err)
{
	struct target t;
	struct result r = { 0 };
	int rc = parse_target(target, &t, err);
	if (rc)
		return rc;
	const struct diag_module *mod = NULL;
	if (t.is_addr)
		rc = resolve_addr(c, m, t.addr, &r, err);
	else if (!(t.module[0] && (rc = pick_module(m, t.module, &mod, err))))
		rc = t.is_line ? resolve_line(c, m, mod, &t, &r, err)
			       : resolve_name(c, m, mod, &t, opts, &r, err);
	if (rc) {
		result_free(&r);
		return rc;
	}
	return result_give(&r, out, n, skips, nskips);
}

int diag_sym_resolve(struct diag_symcache *c, const struct diag_modmap *m, const char *target,
		     struct diag_location **out, size_t *n, struct diag_error *err)
{
	return diag_sym_resolve2(c, m, target, NULL, out, n, NULL, NULL, err);
}

int diag_sym_lookup_func(struct diag_symcache *c, const struct diag_modmap *m, uint64_t addr,
			 char *name, size_t cap, uint64_t *start, uint64_t *size)
{
	const struct diag_module *mod = diag_modmap_find(m, addr);
	const struct symfile *sf;
	if (!mod || symfile_get(c, mod, &sf, NULL) < 0)
		return -DIAG_E_NOSYM;
	const struct sym *s = sym_containing(sf, addr - mod->bias);
	if (!s)
		return -DIAG_E_NOSYM;
	snprintf(name, cap, "%s", s->name);
	*start = s->addr + mod->bias;
	*size = s->size;
	return 0;
}

int diag_sym_lookup_addr(struct diag_symcache *c, const struct diag_modmap *m, uint64_t addr,
			 char *name, size_t cap, uint64_t *offset)
{
	char scratch[1];
	uint64_t start, size;
	int r = name && cap ? diag_sym_lookup_func(c, m, addr, name, cap, &start, &size)
			    : diag_sym_lookup_func(c, m, addr, scratch, sizeof(scratch), &start, &size);
	if (r == 0 && offset)
		*offset = addr - start;
	return r;
}

int diag_sym_foreach(struct diag_symcache *c, const struct diag_modmap *m, const char *glob,
		     int (*cb)(void *arg, const struct diag_module *mod, const char *name,
			       uint64_t addr, uint64_t size),
		     void *arg)
{
	for (size_t i = 0; i < m->n; i++) {
		const struct diag_module *mod = &m->mods[i];
		const struct symfile *sf;
		if (symfile_get(c, mod, &sf, NULL) < 0)
			continue;
		for (size_t j = 0; j < sf->n; j++) {
			const struct sym *s = &sf->syms[j];
			if (glob && fnmatch(glob, s->name, 0) != 0)
				continue;
			int rc = cb(arg, mod, s->name, s->addr + mod->bias, s->size);
			if (rc)
				return rc;
		}
	}
	return 0;
}
