/* tracee: one traced process and its threads, seen through ptrace. Owns attaching
 * (PTRACE_SEIZE of every thread, race-free against thread creation), target memory access,
 * registers and remote system calls run by a stopped thread. Knows nothing of probes or specs
 * and never waits for arbitrary children (the engine owns the wait loop). Never sets
 * PTRACE_O_EXITKILL: a target must outlive its tracer. */
#ifndef DIAG_PTRACE_TRACEE_H
#define DIAG_PTRACE_TRACEE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "arch/regs.h"
#include "ptrace/syscall_stub.h"
#include "util/error.h"
#include "util/procfs.h"
#include "util/u64map.h"

#define DIAG_PTRACE_OPTIONS                                                                  \
	(PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK |                   \
	 PTRACE_O_TRACEVFORK | PTRACE_O_TRACEEXEC | PTRACE_O_TRACEEXIT)

struct diag_proc;

struct diag_thread {
	pid_t tid;
	struct diag_proc *proc;
	bool stopped;      /* in a ptrace-stop we have not resumed yet */
	bool group_stop;   /* in a job-control stop (resume with PTRACE_LISTEN) */
	bool announced;    /* its initial stop (new thread/child) was seen */
	int pending_sig;   /* signal to deliver when resumed (detach included) */
	bool trap_behind;  /* a breakpoint's SIGTRAP was taken while we borrowed it (tracee.c) */
	void *ext;         /* the engine's per-thread data: plain memory, freed with the thread */
	bool zombie;       /* a leader that exited before its threads: can never stop again */
	int event;         /* stopped at this PTRACE_EVENT_* inside clone/fork/vfork/exec, or 0 */
	char comm[16];     /* /proc/PID/task/TID/comm, as last read (diag_thread_comm) */
	uint64_t comm_ns;  /* CLOCK_MONOTONIC of that read, 0: never */
};

/* The thread's name ($comm) as /proc/PID/task/TID/comm gives it, read again when the last
 * read is older than 10 ms (a hot probe must not cost an open per hit; a rename shows within
 * 10 ms); "" when it cannot be read. */
const char *diag_thread_comm(struct diag_thread *t);

/* True when the thread has exited but is not reaped (a thread-group leader that called
 * pthread_exit): interrupting or waiting for it would block until the whole process ends.
 * Caches the answer in t->zombie once true. */
bool diag_thread_is_zombie(struct diag_thread *t);

struct diag_proc {
	pid_t pid;
	int memfd;                   /* /proc/PID/mem opened O_RDWR */
	struct diag_proc *mem_owner; /* vfork child: the parent whose memory it shares */
	struct diag_u64map threads;  /* tid -> struct diag_thread */
	uint64_t syscall_insn;       /* address of a `syscall` instruction, 0 = not found yet */
	struct diag_syscall_stub stub; /* where remote calls run from (syscall_stub.h) */
	void *owner;                 /* the engine's state for this process */
};

/* Seize every thread of pid. Returns 0 and *out, or -errno with err "pid N: cannot attach:
 * CAUSE" naming the cause when it is known (this daemon itself, a kernel thread, an exited
 * process, already traced by pid T (COMM)), the usual suspects only when it is not. */
int diag_proc_seize(pid_t pid, struct diag_proc **out, struct diag_error *err);

/* Seize thread tid alone while it waits in execve at the exec gate (procwatch/execgate.h),
 * with DIAG_PTRACE_OPTIONS, and queue a PTRACE_INTERRUPT: an exec that goes on stops at
 * PTRACE_EVENT_EXEC (that stop clears the queued interrupt), one that fails returns to user
 * mode and stops there with PTRACE_EVENT_STOP instead, so waiting for either is bounded
 * without a timer. Returns 0, or -errno with err "tid N: cannot attach at its exec: CAUSE"
 * (already traced by pid T (COMM), the thread is gone, ...). */
int diag_thread_seize_exec(pid_t tid, struct diag_error *err);

/* A process known from a fork/vfork event: its first thread was auto-attached by the kernel. */
int diag_proc_adopt(pid_t pid, struct diag_proc *mem_owner, struct diag_proc **out);
/* Free the bookkeeping only (no ptrace calls). Accepts NULL. */
void diag_proc_free(struct diag_proc *p);

struct diag_thread *diag_proc_thread(struct diag_proc *p, pid_t tid);
/* Track a thread that the kernel auto-attached (clone event). */
struct diag_thread *diag_proc_add_thread(struct diag_proc *p, pid_t tid);
void diag_proc_del_thread(struct diag_proc *p, pid_t tid);

/* Memory: reads never fault the daemon; writes go through /proc/PID/mem so read-only code
 * pages can be patched (the kernel copies the page for this process). Return bytes or -errno. */
ssize_t diag_proc_read(struct diag_proc *p, uint64_t addr, void *buf, size_t len);
/* n (<= DIAG_PROC_READ_U64S_MAX) u64s at addrs into vals, in one system call when it can:
 * 0, or -EIO when one could not be read (vals then partly written). */
#define DIAG_PROC_READ_U64S_MAX 64
int diag_proc_read_u64s(struct diag_proc *p, const uint64_t *addrs, uint64_t *vals, size_t n);
ssize_t diag_proc_write(struct diag_proc *p, uint64_t addr, const void *buf, size_t len);
/* A copy in the daemon of the target's file descriptor fd (pidfd_getfd: the target must be
 * ours to ptrace), close-on-exec. Returns the new fd or -errno. */
int diag_proc_dup_fd(struct diag_proc *p, int fd);

/* Registers of stopped thread tid (PTRACE_GETREGSET / SETREGSET of NT_PRSTATUS, NT_PRFPREG):
 * the only register access of diagnose. Return 0 or -errno (-EIO: the thread's register set
 * is not diag_regs, a 32-bit tracee); *out is written only on success. */
int diag_regs_read(pid_t tid, diag_regs *out);
int diag_regs_write(pid_t tid, const diag_regs *r);
int diag_fpregs_read(pid_t tid, diag_fpregs *out);

/* Resume a stopped thread (PTRACE_LISTEN for a group-stop), delivering sig. A thread not
 * marked stopped is left alone: resuming it twice could cancel a stop not reaped yet. */
int diag_thread_resume(struct diag_thread *t, int sig);

/* Run one system call in the target on stopped thread t: registers and any interrupted
 * syscall's restart are preserved exactly. Returns 0 with *ret (the raw syscall result,
 * -errno on failure) or a negative code if the thread could not run it. */
int diag_thread_syscall(struct diag_thread *t, long nr, const long args[6], long *ret);

/* rt_sigaction(sig, act, oact, 8) run by stopped thread t, with the kernel's struct sigaction
 * (arch/safety.h's struct diag_ksigaction, passed as void: 32 bytes) in scratch memory below
 * its red zone. act or oact may be NULL. Returns 0 (*oact filled) or a negative code: -errno of
 * the call, -EIO when the scratch memory cannot be written or read. */
int diag_thread_sigaction(struct diag_thread *t, int sig, const void *act, void *oact);

/* Execute one instruction of stopped thread t (PTRACE_SINGLESTEP) and wait for its stop; a
 * signal that stopped it instead is kept in pending_sig. The step's SIGTRAP can never reset
 * the target's SIGTRAP action (see tracee.c). Returns 0 or -errno (-ESRCH: it died). */
int diag_thread_step(struct diag_thread *t);

#include <signal.h>

/* The small ptrace requests the engine makes of one thread, each returning 0 or -errno:
 * PTRACE_INTERRUPT (a ptrace-stop follows, reported by a wait), PTRACE_GETEVENTMSG (the new
 * tid or pid at a clone/fork/vfork event), PTRACE_GETSIGINFO (why it stopped) and
 * PTRACE_DETACH delivering sig. */
int diag_thread_interrupt(pid_t tid);
int diag_thread_eventmsg(pid_t tid, unsigned long *msg);
int diag_thread_siginfo(pid_t tid, siginfo_t *si);
int diag_thread_detach(pid_t tid, int sig);

#endif
