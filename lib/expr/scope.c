/* expr/scope: listing of the variables visible at a probe's PC (for `diagnosectl vars`).
 * Reads DWARF through lib/dwarf only; never touches a process. */
#include "expr/expr.h"

#include <errno.h>
#include <string.h>

#include "dwarf/dwarf.h"

int diag_expr_list_scope(const struct diag_expr_scope *scope,
			 void (*cb)(void *arg, const struct diag_expr_var_info *v), void *arg,
			 struct diag_error *err)
{
	if (!scope || !scope->dwarf || !scope->elf_path)
		return diag_error_set(err, -DIAG_E_NODEBUG, "vars: no DWARF available");
	struct diag_dwarf_file *f;
	struct diag_dwarf_scope *s;
	int rc = diag_dwarf_cache_get(scope->dwarf, scope->elf_path, scope->build_id, &f, err);
	if (rc)
		return rc;
	if ((rc = diag_dwarf_scope_at(f, scope->pc - scope->bias, &s, err)))
		return rc;
	for (size_t i = 0; i < s->nvars; i++) {
		char type[160];
		diag_type_spell(s->vars[i].type, type, sizeof(type));
		struct diag_expr_var_info v = { .name = s->vars[i].name, .type = type,
						.location = s->vars[i].loc_text, .is_param = s->vars[i].is_param };
		cb(arg, &v);
	}
	int n = (int)s->nvars;
	diag_dwarf_scope_free(s);
	return n;
}
