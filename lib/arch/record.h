/* arch/record: what a trampoline's ring record (arch/ring.h) means in arch-neutral terms: the
 * registers it saved, as the registers of a stopped thread (diag_regs) at the probed address,
 * and the clock it stamped the record with. The engine's fast path drains records through
 * these and never names a register slot of the record itself. Pure; never touches a process. */
#ifndef DIAG_ARCH_RECORD_H
#define DIAG_ARCH_RECORD_H

#include <stdint.h>

#include "arch/regs.h"
#include "arch/ring.h"

/* The registers the record saved, as if read from a thread stopped at the probed address (pc
 * the probed address, sp as the function saw it, no system call to restart); the others 0. */
void diag_record_regs(const struct diag_ring_record *rec, diag_regs *out);

/* The same for a capture trampoline's v2 record (ring.h, "Ring v2"): at the probed address
 * for an entry record, at the terminating instruction for an exit record (DIAG_REC_EXIT). The
 * thread pointer is not a register of diag_regs the record restores (0). A slim record
 * (DIAG_REC_SLIM) restores the registers it holds, the others 0; rec must hold its whole
 * header (diag_ring_rec_hdr_bytes). */
void diag_record_v2_regs(const struct diag_ring_rec *rec, diag_regs *out);

/* The thread pointer a capture trampoline records for a thread whose registers are r (x86-64:
 * the fs base, which is also the TCB's self pointer at %fs:0): how the daemon maps a record to
 * its thread without a system call in the target. */
uint64_t diag_record_thread_pointer(const diag_regs *r);

/* The clock the trampoline stamps into rec->tsc, read now in the daemon (rdtsc on x86-64):
 * the engine calibrates it against the wall clock. */
uint64_t diag_record_ticks(void);

#endif
