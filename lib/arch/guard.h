/* arch/guard: the fault guard, a SIGSEGV and SIGBUS handler blob that keeps a target alive when
 * a capture program's load faults (a NULL, freed or unmapped pointer the target handed it) and
 * no tracer repairs the fault: the daemon was killed (-9, OOM, a crash) or is stopped
 * (docs/reliability.md, "The fault guard"). While the daemon lives it repairs every such fault
 * at the signal-delivery stop and the guard never runs. The arch-neutral interface, implemented
 * by lib/arch/<arch>/guard.c from its reviewed template (x86-64: guard_template.S). Owns building
 * the blob (code + data: the two previous actions), its layout and the actions to install.
 * Never reads or writes a process, never chooses where the blob lives, never installs anything:
 * the engine does that with remote syscalls (lib/engine/guard_install.c).
 *
 * The handler repairs a fault exactly as diag_tramp_fault_repair does (arch/trampoline.h), from
 * the slot header of the capture trampoline the faulting pc lies in, and chains every other
 * SIGSEGV and SIGBUS to the target's previous action for that signal. Blob: [code | data:
 * SIGSEGV's previous action, SIGBUS's previous action, a SIG_DFL action]. */
#ifndef DIAG_ARCH_GUARD_H
#define DIAG_ARCH_GUARD_H

#include <stddef.h>
#include <stdint.h>

#include "arch/safety.h"  /* struct diag_ksigaction */
#include "util/error.h"

#define DIAG_GUARD_NSIGS 2  /* the signals guarded: diag_guard_signal(0..1) */

/* Runtime addresses inside one built blob. */
struct diag_guard_layout {
	uint64_t addr;             /* where the blob lives */
	size_t len;                /* blob bytes */
	uint64_t handler;          /* sa_handler (SA_SIGINFO) for both signals */
	uint64_t restorer;         /* rt_sigreturn stub, for SA_RESTORER */
	uint64_t old_action[DIAG_GUARD_NSIGS]; /* struct diag_ksigaction: the previous ones */
};

/* The i-th guarded signal (SIGSEGV, SIGBUS), 0 for i out of range. */
int diag_guard_signal(size_t i);

/* Bytes of the blob. */
size_t diag_guard_size(void);

/* Build the blob to live at runtime address addr (8-byte aligned): code, previous actions
 * SIG_DFL (overwrite them with the real ones, see diag_guard_action). Writes *len =
 * diag_guard_size() bytes to out and the layout. Returns 0, -EINVAL naming the bad argument,
 * -ENOSPC when cap < diag_guard_size(). Outputs are written only on success. */
int diag_guard_build(uint64_t addr, uint8_t *out, size_t cap, size_t *len,
		     struct diag_guard_layout *layout, struct diag_error *err);

/* The action to install for a guarded signal over the target's previous one: our handler with
 * SA_SIGINFO | SA_RESTORER, the previous mask, SA_ONSTACK and SA_NODEFER (the rule of
 * diag_safety_action: a chained handler runs as it was set up, and returns through its own
 * restorer). Never SA_RESETHAND: the guard emulates the previous one's, and stays. */
void diag_guard_action(const struct diag_guard_layout *l, const struct diag_ksigaction *old,
		       struct diag_ksigaction *ours);

/* The handler code, for review and tests: the source it is assembled from, bytes and offsets
 * (the template's symbols). */
struct diag_guard_template {
	const char *source;        /* the reviewed template, relative to the source tree */
	const uint8_t *bytes;
	size_t len;                /* code bytes */
	size_t restorer;
	size_t data, d_segv, d_bus, d_dfl, size;
};
const struct diag_guard_template *diag_guard_template(void);

#endif
