/* dwarf/index: the cache of per-file DWARF indexes (placeholder until the libdwarf index
 * lands: every file reports "no DWARF"). */
#include "dwarf/dwarf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct diag_dwarf_cache {
	int unused;
};

int diag_dwarf_cache_new(struct diag_dwarf_cache **out)
{
	struct diag_dwarf_cache *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	*out = c;
	return 0;
}

void diag_dwarf_cache_free(struct diag_dwarf_cache *c)
{
	free(c);
}

int diag_dwarf_cache_get(struct diag_dwarf_cache *c, const char *path, const char *build_id,
			 struct diag_dwarf_file **out, struct diag_error *err)
{
	(void)c;
	(void)build_id;
	(void)out;
	const char *base = strrchr(path, '/');
	return diag_error_set(err, -DIAG_E_NODEBUG, "no DWARF for %s", base ? base + 1 : path);
}

const char *diag_dwarf_file_name(const struct diag_dwarf_file *f)
{
	(void)f;
	return "";
}

int diag_dwarf_scope_at(struct diag_dwarf_file *f, uint64_t vaddr, struct diag_dwarf_scope **out,
			struct diag_error *err)
{
	(void)f;
	(void)vaddr;
	(void)out;
	return diag_error_set(err, -DIAG_E_NOSYM, "no function with DWARF here");
}

void diag_dwarf_scope_free(struct diag_dwarf_scope *s)
{
	free(s);
}

int diag_dwarf_global(struct diag_dwarf_file *f, const char *name, struct diag_dwarf_var *out)
{
	(void)f;
	(void)name;
	(void)out;
	return -DIAG_E_NOSYM;
}

const struct diag_type *diag_dwarf_find_type(struct diag_dwarf_file *f, const char *spelling)
{
	(void)f;
	(void)spelling;
	return NULL;
}
