/* engine/stack: the `stack` value at an int3 hit. Walks the stopped thread with lib/unwind
 * (from the breakpoint's address, not the pc the int3 advanced) and names each frame from the
 * ELF symbols of a module map cached per process, then writes the frames folded, root first
 * ("main;worker;handle_request"). Owns that per-process cache and the engine's unwinder; never
 * resumes or changes the thread (lib/unwind restores what it sets). */
#include "engine/engine_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unwind/unwind.h"

#define STACK_NAME_MAX 256
/* pcs outside every module remembered per process, so they do not re-read the map each hit */
#define STACK_UNKNOWN_MAX 4096

_Static_assert(DIAG_EXPR_STACK_MAX <= DIAG_UNWIND_MAX_DEPTH, "stack(N) bound beyond the unwinder's");

/* What the engine remembers per process to name frames. */
struct eng_stack_proc {
	struct diag_modmap mods;
	bool have_mods;
	struct diag_u64map unknown; /* pc -> (void *)1: not in any module at the last read */
};

void eng_stack_forget(struct diag_engine *e, struct eproc *ep)
{
	struct eng_stack_proc *sp = ep->stack;
	diag_unwinder_forget(e->unwinder, ep->tp->pid);
	if (!sp)
		return;
	diag_modmap_release(&sp->mods);
	diag_u64map_release(&sp->unknown);
	free(sp);
	ep->stack = NULL;
}

void eng_stack_free(struct diag_engine *e)
{
	diag_unwinder_free(e->unwinder);
	e->unwinder = NULL;
}

static struct eng_stack_proc *stack_proc(struct eproc *ep)
{
	if (!ep->stack && (ep->stack = calloc(1, sizeof(*ep->stack))))
		diag_u64map_init(&ep->stack->unknown);
	return ep->stack;
}

/* Re-read the module map (a library came or went); drops unwind state of unmapped code. */
static int refresh_mods(struct diag_engine *e, struct eproc *ep, struct eng_stack_proc *sp)
{
	struct diag_modmap m = {0};
	struct diag_error err = {0};
	int r = diag_modmap_read(ep->tp->pid, &m, &err);
	if (r < 0)
		return r;
	if (sp->have_mods)
		diag_unwinder_forget(e->unwinder, ep->tp->pid);
	diag_modmap_release(&sp->mods);
	sp->mods = m;
	sp->have_mods = true;
	return 0;
}

/* The module map holding pc, reading it again once per hit when pc is in no module. */
static const struct diag_modmap *mods_for(struct diag_engine *e, struct eproc *ep,
					  struct eng_stack_proc *sp, uint64_t pc, bool *refreshed)
{
	if (sp->have_mods && diag_modmap_find(&sp->mods, pc))
		return &sp->mods;
	if (*refreshed || diag_u64map_get(&sp->unknown, pc))
		return sp->have_mods ? &sp->mods : NULL;
	*refreshed = true;
	if (refresh_mods(e, ep, sp) < 0)
		return sp->have_mods ? &sp->mods : NULL;
	if (!diag_modmap_find(&sp->mods, pc)) {
		if (sp->unknown.count >= STACK_UNKNOWN_MAX)
			diag_u64map_release(&sp->unknown);
		diag_u64map_put(&sp->unknown, pc, (void *)1);
	}
	return &sp->mods;
}

/* Frame name: the function symbol; else MODULE+0xOFFSET (file address); else 0xADDR. A
 * caller's pc is a return address: look up pc - 1, which is still inside the call. */
static void name_frame(struct diag_engine *e, const struct diag_modmap *m, uint64_t pc,
		       bool caller, char *name)
{
	uint64_t at = caller ? pc - 1 : pc, off;
	if (m && diag_sym_lookup_addr(e->syms, m, at, name, STACK_NAME_MAX, &off) == 0)
		return;
	const struct diag_module *mod = m ? diag_modmap_find(m, at) : NULL;
	if (mod)
		snprintf(name, STACK_NAME_MAX, "%s+0x%llx", mod->name,
			 (unsigned long long)(pc - mod->bias));
	else
		snprintf(name, STACK_NAME_MAX, "0x%llx", (unsigned long long)pc);
}

/* Root first, ';' between frames; keeps the innermost frames when out is too small and then
 * starts with "..." (as when the walk stopped at the depth bound). */
static int fold(char (*names)[STACK_NAME_MAX], int n, bool truncated, char *out, size_t cap)
{
	static const char more[] = "...;";
	size_t need = 0;
	int first = 0; /* outermost frame kept */
	for (int i = 0; i < n; i++) {
		size_t len = strlen(names[i]) + 1;
		if (need + len + sizeof(more) > cap) {
			truncated = true;
			break;
		}
		need += len;
		first = i;
	}
	size_t used = 0;
	if (truncated)
		used += (size_t)snprintf(out, cap, "%s", more);
	for (int i = first; i >= 0; i--)
		used += (size_t)snprintf(out + used, cap - used, "%s%s", names[i], i ? ";" : "");
	return (int)used;
}

int eng_stack_text(void *arg, int max, char *out, size_t cap)
{
	const struct eng_stack_req *rq = arg;
	struct diag_engine *e = rq->e;
	struct diag_error err = {0};
	if (cap < 2 * STACK_NAME_MAX)
		return -DIAG_E_LIMIT;
	if (!e->unwinder && diag_unwinder_new(&e->unwinder) < 0) {
		snprintf(out, cap, "out of memory");
		return -ENOMEM;
	}
	struct eng_stack_proc *sp = stack_proc(rq->ep);
	if (!sp) {
		snprintf(out, cap, "out of memory");
		return -ENOMEM;
	}
	diag_regs regs = *rq->regs;
	diag_regs_set_pc(&regs, rq->pc); /* the int3 advanced the pc past the probed address */
	uint64_t pcs[DIAG_UNWIND_MAX_DEPTH];
	int n = 0;
	int r = diag_unwind_stack(e->unwinder, rq->ep->tp->pid, rq->tid, &regs, max, pcs, &n, &err);
	if (r < 0) {
		snprintf(out, cap, "%s", err.msg);
		return r;
	}
	char (*names)[STACK_NAME_MAX] = malloc((size_t)(n ? n : 1) * STACK_NAME_MAX);
	if (!names) {
		snprintf(out, cap, "out of memory");
		return -ENOMEM;
	}
	bool refreshed = false, truncated = r == 1;
	int kept = 0;
	for (int i = 0; i < n; i++) {
		const struct diag_modmap *m = mods_for(e, rq->ep, sp, pcs[i], &refreshed);
		name_frame(e, m, pcs[i], i > 0, names[kept++]);
		/* like gdb's backtrace: nothing past main (libc's start-up frames) */
		if (!strcmp(names[kept - 1], "main")) {
			truncated = false;
			break;
		}
	}
	int len = fold(names, kept, truncated, out, cap);
	free(names);
	return len;
}
