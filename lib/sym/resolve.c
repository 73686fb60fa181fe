/* resolve: diag_sym_resolve, the one resolution of a target. The target string is parsed by the
 * one grammar (spec/target.h) and each form goes to its resolver: 0xADDR here, MODULE picked
 * here, names in resolve_name.c, FILE:LINE in resolve_line.c, all filling one result set
 * (result.c). Never parses target syntax itself, never reads target memory. */
#include "sym/sym_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int resolve_addr(struct diag_symcache *c, const struct diag_modmap *m, uint64_t addr,
			struct sym_result *r, struct diag_error *err)
{
	const struct diag_module *mod = diag_modmap_find(m, addr);
	if (!mod)
		return diag_error_set(err, -DIAG_E_NOSYM,
				      "address 0x%" PRIx64 " is not inside any module of process %d", addr,
				      (int)m->pid);
	const struct symfile *sf;
	const struct sym *s = NULL;
	if (sym_file_get(c, mod, &sf, NULL) == 0)
		s = sym_containing(sf, addr - mod->bias);
	struct diag_location loc;
	sym_location_fill(&loc, mod, s, addr);
	loc.kind = DIAG_LOC_ADDRESS;
	return sym_result_add(r, &loc) ? diag_error_set(err, -ENOMEM, "symbols: out of memory") : 0;
}

static int pick_module(const struct diag_modmap *m, const char *name,
		       const struct diag_module **mod, struct diag_error *err)
{
	size_t count = diag_modmap_count_name(m, name);
	if (count == 1) {
		*mod = diag_modmap_by_name(m, name);
		return 0;
	}
	if (count == 0) {
		char list[400];
		diag_modmap_names(m, list, sizeof(list));
		return diag_error_set(err, -DIAG_E_NOSYM, "no module '%s' in process %d; mapped: %s",
				      name, (int)m->pid, list);
	}
	return diag_error_set(err, -DIAG_E_AMBIGUOUS,
			      "module '%s' matches %zu modules of process %d; give the full file name",
			      name, count, (int)m->pid);
}

int diag_sym_resolve(struct diag_symcache *c, const struct diag_modmap *m, const char *target,
		     const struct diag_sym_opts *opts, struct diag_location **out, size_t *n,
		     struct diag_skip **skips, size_t *nskips, struct diag_error *err)
{
	struct diag_target t;
	struct sym_result r = { 0 };
	int rc = diag_target_parse(target, &t, err);
	if (rc)
		return rc;
	const struct diag_module *mod = NULL;
	if (t.kind == DIAG_TARGET_ADDR)
		rc = resolve_addr(c, m, t.addr, &r, err);
	else if (!(t.module[0] && (rc = pick_module(m, t.module, &mod, err))))
		rc = t.kind == DIAG_TARGET_LINE ? sym_resolve_line(c, m, mod, &t, &r, err)
						: sym_resolve_name(c, m, mod, &t, opts, &r, err);
	if (rc) {
		sym_result_free(&r);
		return rc;
	}
	return sym_result_give(&r, out, n, skips, nskips);
}
