/* syscall_stub: where in a target a remote system call runs from, so that a tracer that dies
 * in the middle of one (kill -9 of the daemon) leaves nothing half done. The place is the
 * spare bytes past the end of the vDSO's ELF image, inside its last page: they belong to no
 * segment and no section, so no code of the target runs there and nothing reads them, and
 * the vDSO is the one executable mapping every process has before anything of ours is in it
 * (the first page of ours comes from a remote mmap). The stub (arch/syscall.h) runs the call,
 * then puts the thread's own registers back and jumps to its pc.
 * Owns finding that place, writing a stub there and putting the bytes back; never runs the
 * target and never trusts it: the place is computed from the daemon's own vDSO (the kernel's,
 * the same image) and used only when the target's matches it byte for byte. */
#ifndef DIAG_PTRACE_SYSCALL_STUB_H
#define DIAG_PTRACE_SYSCALL_STUB_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "arch/regs.h"

/* The target's memory, as the caller reaches it (tracee.c: /proc/PID/mem); each returns the
 * bytes moved or -1. */
struct diag_mem_io {
	void *ctx;
	ssize_t (*read)(void *ctx, uint64_t addr, void *buf, size_t len);
	ssize_t (*write)(void *ctx, uint64_t addr, const void *buf, size_t len);
};

struct diag_syscall_stub {
	int state;            /* 0: not looked for yet, 1: found, -1: there is none */
	uint64_t at;          /* the slot of the spare bytes used, in the target */
	size_t written;       /* bytes of the last stub, put back by diag_syscall_stub_clear */
	const uint8_t *clean; /* what the slot holds: the daemon's own vDSO at the same offset */
};

/* Write into process pid's vDSO a stub that runs a system call and then resumes the thread
 * with the registers resume (looking for the place the first time). Returns 0 and *at, the
 * address to run the call from, or -errno (-ENOENT: no usable place; the caller runs the call
 * the old way). */
int diag_syscall_stub_put(struct diag_syscall_stub *s, pid_t pid, const struct diag_mem_io *io,
			  const diag_regs *resume, uint64_t *at);

/* Write the stub in place again with other registers to resume with, while the thread is in
 * its call (past the `syscall`, before the code after it). -ENOENT when no stub is in place.
 * A failed write leaves the stub before, or a mix of the two: both resume the same registers
 * and differ only in the pc their final jump goes to, so either is whole code. */
int diag_syscall_stub_resume_at(struct diag_syscall_stub *s, const struct diag_mem_io *io,
				const diag_regs *resume);

/* Put the bytes under the last stub back as they were (they are never run again). */
void diag_syscall_stub_clear(struct diag_syscall_stub *s, const struct diag_mem_io *io);

#endif
