/* unwind: call stacks of ptrace-stopped threads through libunwind-ptrace (DWARF CFI from
 * .eh_frame, so code built without frame pointers unwinds too). Owns one libunwind address
 * space per process (its register-state cache makes repeated stacks cheap); never symbolizes
 * (see sym/symtab.h) and never leaves a thread's registers changed. */
#ifndef DIAG_UNWIND_H
#define DIAG_UNWIND_H

#include <stdint.h>
#include <sys/types.h>

#include "arch/regs.h"
#include "util/error.h"

#define DIAG_UNWIND_DEFAULT_DEPTH 32
#define DIAG_UNWIND_MAX_DEPTH 128
/* Processes whose address space is cached at once: a limit on what targets make us keep. */
#define DIAG_UNWIND_MAX_PROCS 1024

struct diag_unwinder;

/* Returns 0 and *out, or -ENOMEM. One per engine; not thread-safe. */
int diag_unwinder_new(struct diag_unwinder **out);
/* Accepts NULL. */
void diag_unwinder_free(struct diag_unwinder *u);

/* Drop what is cached for pid: call it when the process exec'd or exited, and when its
 * modules changed (dlopen/dlclose) so unwind info of unmapped code is not reused. */
void diag_unwinder_forget(struct diag_unwinder *u, pid_t pid);

/* The return addresses of thread tid of process pid, innermost first: pcs[0] = the pc of regs
 * (the walk starts from regs as given, e.g. the pc set back to a breakpoint's address), then one
 * return address per caller, at most max_depth (1..DIAG_UNWIND_MAX_DEPTH) entries in *n.
 * The thread must be in a ptrace-stop. libunwind-ptrace reads registers from the thread
 * itself, so when regs differ from the thread's registers they are set for the walk and the
 * thread's own are restored before returning.
 * Returns 0 when the walk reached the outermost frame, 1 when it stopped at max_depth with
 * callers left, or -DIAG_E_GONE (thread not stopped or gone), -DIAG_E_INVALID (max_depth),
 * -DIAG_E_LIMIT, -ENOMEM with err set. A walk that fails mid-way (no unwind info for a
 * frame) returns 0 with the frames found so far. */
int diag_unwind_stack(struct diag_unwinder *u, pid_t pid, pid_t tid,
		      const diag_regs *regs, int max_depth, uint64_t *pcs, int *n,
		      struct diag_error *err);

#endif
