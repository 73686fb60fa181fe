/* resolve_line: FILE:LINE targets. Every address the DWARF line table marks is_stmt for that
 * line (lowest address per scope, as gdb; lib/dwarf finds them), in the named module or else
 * the main executable, each with the function that contains it. Never reads target memory;
 * line-table errors (nearest lines with code, known files) are lib/dwarf's messages. */
#include "sym/sym_internal.h"

#include "dwarf/dwarf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sym_resolve_line(struct diag_symcache *c, const struct diag_modmap *m,
		     const struct diag_module *mod, const struct diag_target *t,
		     struct sym_result *r, struct diag_error *err)
{
	if (!mod && !(mod = diag_modmap_main(m)))
		return diag_error_set(err, -DIAG_E_NOSYM, "process %d has no main executable", (int)m->pid);
	struct diag_error derr = { 0 };
	struct diag_dwarf_file *df = sym_module_dwarf(c, mod, &derr);
	if (!df)
		return diag_error_set(err, -DIAG_E_NODEBUG, "target '%s:%u': %s", t->func, t->line,
				      derr.msg[0] ? derr.msg : "no DWARF line table");
	uint64_t *addrs = NULL;
	int n = diag_dwarf_line_addrs(df, t->func, t->line, &addrs, err);
	if (n < 0)
		return n;
	const struct symfile *sf = NULL;
	sym_file_get(c, mod, &sf, NULL);
	char note[sizeof(t->func) + 16] = "";
	snprintf(note, sizeof(note), "%s:%u", t->func, t->line);
	int rc = 0;
	for (int i = 0; rc == 0 && i < n; i++) {
		struct diag_location loc;
		const struct sym *s = sf ? sym_containing(sf, addrs[i]) : NULL;
		sym_location_fill(&loc, mod, s, addrs[i] + mod->bias);
		loc.kind = DIAG_LOC_LINE;
		memcpy(loc.note, note, sizeof(loc.note) - 1); /* cut as snprintf would */
		if (sym_result_add(r, &loc))
			rc = diag_error_set(err, -ENOMEM, "symbols: out of memory");
	}
	free(addrs);
	return rc;
}
