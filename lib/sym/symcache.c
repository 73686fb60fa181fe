/* symcache: the ELF index and its cache. Per file: the function symbols of .symtab + .dynsym,
 * deduplicated, sorted by address and by name (read here, or by the indexer worker and decoded
 * from its flat table); files cached by build-id (else dev+inode+size+mtime) and shared by every
 * process; each file's DWARF opened once. Address symbolization and enumeration on top of it.
 * Never parses a target string (spec/target.c does), never resolves names (resolve*.c), never
 * reads target memory, never re-reads an indexed file, keeps no global state. */
#include "sym/sym_internal.h"

#include "sym/cxx.h"
#include "dwarf/dwarf.h"
#include "indexer/indexer.h"
#include "util/search.h"
#include "util/grow.h"

#include <stddef.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <gelf.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- index building ---- */

struct symvec {
	struct sym *v;
	size_t n, cap;
};

static int symvec_push(struct symvec *sv, const struct sym *s)
{
	if (sv->n >= DIAG_SYMFILE_MAX_SYMS)
		return -DIAG_E_LIMIT;
	if (diag_grow((void **)&sv->v, &sv->cap, sv->n + 1, sizeof(*sv->v), 256))
		return -ENOMEM;
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
	diag_sort(sv->v, sv->n, sizeof(*sv->v), cmp_addr_name);
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

/* Sorted by (addr, name), the table wants (addr, preferred alias first): only runs of one
 * address need reordering, and they are short (a few aliases), so each is sorted on its own. */
static void prefer_aliases(struct symvec *sv)
{
	for (size_t i = 0, j; i < sv->n; i = j) {
		for (j = i + 1; j < sv->n && sv->v[j].addr == sv->v[i].addr; j++)
			;
		if (j - i > 1)
			qsort(sv->v + i, j - i, sizeof(*sv->v), cmp_addr_pref);
	}
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
		prefer_aliases(&sv);
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
	char what[600], pkey[SYM_KEY_MAX + 8];
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

static int module_key(const struct diag_module *mod, char key[SYM_KEY_MAX], struct diag_error *err)
{
	if (mod->build_id[0]) {
		snprintf(key, SYM_KEY_MAX, "b:%s", mod->build_id);
		return 0;
	}
	struct stat st;
	if (stat(mod->host_path, &st) < 0)
		return diag_error_set(err, -errno, "symbols: cannot stat %s: %s", mod->host_path,
				      strerror(errno));
	snprintf(key, SYM_KEY_MAX, "f:%llx:%llu:%lld:%lld.%09ld", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino, (long long)st.st_size, (long long)st.st_mtim.tv_sec,
		 st.st_mtim.tv_nsec);
	return 0;
}

int sym_file_get(struct diag_symcache *c, const struct diag_module *mod,
		 const struct symfile **out, struct diag_error *err)
{
	char key[SYM_KEY_MAX];
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
	if (diag_grow((void **)&c->files, &c->cap, c->n + 1, sizeof(*c->files), 16))
		return diag_error_set(err, -ENOMEM, "symbols: out of memory");
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

size_t sym_name_lower_bound(const struct symfile *sf, const char *name)
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

const struct sym *sym_containing(const struct symfile *sf, uint64_t a)
{
	size_t lo = diag_upper_bound_u64(sf->syms, sf->n, sizeof(*sf->syms),
					 offsetof(struct sym, addr), a);
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

struct diag_dwarf_file *sym_module_dwarf(struct diag_symcache *c, const struct diag_module *mod,
					 struct diag_error *err)
{
	const struct symfile *csf;
	if (sym_file_get(c, mod, &csf, NULL) < 0)
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

int diag_sym_lookup_func(struct diag_symcache *c, const struct diag_modmap *m, uint64_t addr,
			 char *name, size_t cap, uint64_t *start, uint64_t *size)
{
	const struct diag_module *mod = diag_modmap_find(m, addr);
	const struct symfile *sf;
	if (!mod || sym_file_get(c, mod, &sf, NULL) < 0)
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

/* "MODULE:GLOB" -> the module part into mod (cap bytes) and the glob after it; a glob without
 * a module separator (C++'s "::" is not one) is returned whole with mod "". */
static const char *split_module(const char *glob, char *mod, size_t cap)
{
	mod[0] = '\0';
	for (const char *p = glob; p && *p; p++) {
		if (p[0] == ':' && p[1] == ':') {
			p++;
			continue;
		}
		if (*p == ':' && p > glob && (size_t)(p - glob) < cap) {
			memcpy(mod, glob, (size_t)(p - glob));
			mod[p - glob] = '\0';
			return p + 1;
		}
	}
	return glob;
}

/* A symbol matches a glob by its ELF name, its demangled qualified name ("ns::C::get") or
 * that name with its parameters; it is shown demangled. */
static bool sym_matches(const char *glob, const char *name, const struct diag_fname *fn)
{
	if (!glob || fnmatch(glob, name, 0) == 0)
		return true;
	if (!fn->cxx)
		return false;
	char full[2 * DIAG_CXX_NAME_MAX];
	snprintf(full, sizeof(full), "%s%s", fn->qual, fn->params);
	return fnmatch(glob, fn->qual, 0) == 0 || fnmatch(glob, full, 0) == 0;
}

int diag_sym_foreach(struct diag_symcache *c, const struct diag_modmap *m, const char *glob,
		     int (*cb)(void *arg, const struct diag_module *mod, const char *name,
			       uint64_t addr, uint64_t size),
		     void *arg)
{
	char modname[256] = "";
	glob = glob ? split_module(glob, modname, sizeof(modname)) : NULL;
	if (glob && !*glob)
		glob = NULL;
	const struct diag_module *only = modname[0] ? diag_modmap_by_name(m, modname) : NULL;
	if (modname[0] && !only)
		return -DIAG_E_NOSYM;
	for (size_t i = 0; i < m->n; i++) {
		const struct diag_module *mod = &m->mods[i];
		const struct symfile *sf;
		if ((only && mod != only) || sym_file_get(c, mod, &sf, NULL) < 0)
			continue;
		for (size_t j = 0; j < sf->n; j++) {
			const struct sym *s = &sf->syms[j];
			struct diag_fname fn;
			bool mangled = s->name[0] == '_' && s->name[1] == 'Z';
			if (mangled)
				diag_fname_parse(s->name, &fn);
			else
				fn.cxx = false;
			if (!sym_matches(glob, s->name, &fn))
				continue;
			char shown[2 * DIAG_CXX_NAME_MAX];
			snprintf(shown, sizeof(shown), "%s%s", fn.cxx ? fn.qual : s->name,
				 fn.cxx ? fn.params : "");
			int rc = cb(arg, mod, shown, s->addr + mod->bias, s->size);
			if (rc)
				return rc;
		}
	}
	return 0;
}
