/* introspect: what a process offers to be probed, for `diagnosectl symbols` and `vars`: its
 * functions (ELF symbols, through the engine's symbol cache) and the variables in scope at an
 * address (DWARF, through the engine's DWARF cache). Reads /proc and ELF files only: it never
 * attaches, stops or reads the memory of the process, so any pid the daemon may read works,
 * traced or not. */
#include "engine/engine_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sym_walk {
	int (*cb)(void *arg, const char *module, const char *name, uint64_t addr, uint64_t size);
	void *arg;
	int seen;
};

static int sym_walk_one(void *arg, const struct diag_module *mod, const char *name, uint64_t addr,
			uint64_t size)
{
	struct sym_walk *w = arg;
	if (++w->seen > DIAG_ENGINE_SYMBOLS_MAX)
		return 1; /* one past the limit: enough to tell the caller the list was cut */
	return w->cb(w->arg, mod->name, name, addr, size);
}

int diag_engine_symbols(struct diag_engine *e, pid_t pid, const char *glob,
			int (*cb)(void *arg, const char *module, const char *name, uint64_t addr,
				  uint64_t size),
			void *arg, struct diag_error *err)
{
	struct diag_modmap mods = {0};
	int r = diag_modmap_read(pid, &mods, err);
	if (r < 0)
		return r;
	struct sym_walk w = {.cb = cb, .arg = arg};
	r = diag_sym_foreach(e->syms, &mods, glob && *glob ? glob : NULL, sym_walk_one, &w);
	if (r == -DIAG_E_NOSYM) {
		char names[400];
		diag_modmap_names(&mods, names, sizeof(names));
		diag_error_set(err, r, "symbols: '%s' names no module of process %d; mapped: %s", glob,
			       (int)pid, names);
	} else if (r < 0) {
		diag_error_set(err, r, "symbols: %s", diag_strerror(r));
	}
	diag_modmap_release(&mods);
	if (r < 0)
		return r;
	return w.seen;
}

/* A missing DWARF is the common case (stripped binaries): say what still works. */
static int vars_explain(struct diag_error *err, int rc)
{
	if (!err)
		return rc;
	if (rc == -DIAG_E_NODEBUG) {
		char msg[DIAG_ERRMSG_MAX];
		snprintf(msg, sizeof(msg), "%s", err->msg);
		return diag_error_set(err, rc,
				      "vars: %s (build with -g or install its debug file); "
				      "probes can still use $arg1..$arg6 and registers",
				      msg);
	}
	return diag_error_prefix(err, "vars: ");
}

int diag_engine_vars(struct diag_engine *e, pid_t pid, const char *target,
		     void (*cb)(void *arg, const struct diag_expr_var_info *v), void *arg,
		     struct diag_error *err)
{
	if (!target || !*target)
		return diag_error_set_field(err, "target", -DIAG_E_INVALID, "target: required");
	struct diag_modmap mods = {0};
	struct diag_location *locs = NULL;
	size_t n = 0;
	int r = diag_modmap_read(pid, &mods, err);
	if (r == 0 && (r = diag_sym_resolve(e->syms, &mods, target, NULL, &locs, &n, NULL, NULL, err)) < 0)
		diag_error_lead_field(err, "target");
	if (r == 0 && n == 0)
		r = diag_error_set_field(err, "target", -DIAG_E_NOSYM, "target: '%s' has no address",
					 target);
	if (r == 0) {
		/* the scope a call probe at this address would compile against (probe.c) */
		struct diag_expr_scope scope = {
			.pid = pid,
			.elf_path = locs[0].mod->host_path,
			.build_id = locs[0].mod->build_id,
			.bias = locs[0].mod->bias,
			.pc = locs[0].addr,
			.event = DIAG_EVENT_CALL,
			.dwarf = e->dwarf,
		};
		r = diag_expr_list_scope(&scope, cb, arg, err);
		if (r < 0)
			vars_explain(err, r);
	}
	free(locs);
	diag_modmap_release(&mods);
	return r;
}
