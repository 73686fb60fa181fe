/* safe_read: what a fault-safe read of target memory costs here, for the in-target capture
 * programs (issue 10): the choices side by side in one run, on this machine.
 *   load        a plain 8-byte load (the floor)
 *   vm_readv    process_vm_readv on our own pid: returns EFAULT, never faults
 *   sig_fault   a load that faults, recovered by our own SIGSEGV handler (the handler moves
 *               the pc to a recovery label): the cost of one bad pointer when nobody traces us
 *   ptrace_fault the same fault repaired by a ptrace tracer on its signal-delivery stop
 *               (GETREGS, pc moved, SETREGS, CONT without the signal): one bad pointer while the
 *               daemon is alive
 * A good pointer costs nothing extra with either fault scheme: only the bad ones pay.
 * x86-64 only (it moves rip in a ucontext); a benchmark, not part of diagnose.
 * usage: safe_read [ITERATIONS]   prints "NAME ns_per_read" lines */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A load from rdi whose fault resumes at faulting_load_end with rax = -1. */
uint64_t faulting_load(const uint64_t *p);
__asm__(".text\n.globl faulting_load\n.type faulting_load,@function\nfaulting_load:\n"
	".globl faulting_load_insn\nfaulting_load_insn:\n\tmovq (%rdi), %rax\n"
	".globl faulting_load_end\nfaulting_load_end:\n\tret\n");
extern char faulting_load_insn[], faulting_load_end[];

static void on_segv(int sig, siginfo_t *si, void *uc_)
{
	(void)sig;
	(void)si;
	ucontext_t *uc = uc_;
	if ((char *)uc->uc_mcontext.gregs[REG_RIP] != faulting_load_insn)
		abort();
	uc->uc_mcontext.gregs[REG_RAX] = -1;
	uc->uc_mcontext.gregs[REG_RIP] = (greg_t)faulting_load_end;
}

static double bench_load(long n)
{
	volatile uint64_t v = 42, sink = 0;
	int64_t t0 = now_ns();
	for (long i = 0; i < n; i++)
		sink += faulting_load((const uint64_t *)&v);
	(void)sink;
	return (double)(now_ns() - t0) / (double)n;
}

static double bench_vm_readv(long n, int *err)
{
	uint64_t v = 42, out = 0;
	pid_t me = getpid();
	int64_t t0 = now_ns();
	for (long i = 0; i < n; i++) {
		struct iovec l = {&out, sizeof(out)}, r = {&v, sizeof(v)};
		if (process_vm_readv(me, &l, 1, &r, 1, 0) != sizeof(out))
			*err = errno;
	}
	return (double)(now_ns() - t0) / (double)n;
}

static double bench_sig_fault(long n)
{
	struct sigaction sa = {.sa_sigaction = on_segv, .sa_flags = SA_SIGINFO};
	sigaction(SIGSEGV, &sa, NULL);
	uint64_t sink = 0;
	int64_t t0 = now_ns();
	for (long i = 0; i < n; i++)
		sink += faulting_load((const uint64_t *)16);
	double r = (double)(now_ns() - t0) / (double)n;
	signal(SIGSEGV, SIG_DFL);
	return sink == (uint64_t)-n ? r : -1;
}

/* The child faults n times; we repair each fault at its signal-delivery stop. */
static double bench_ptrace_fault(long n)
{
	int go[2];
	if (pipe(go) < 0)
		return -1;
	pid_t c = fork();
	if (c == 0) {
		char b;
		if (read(go[0], &b, 1) != 1)
			_exit(2);
		uint64_t sink = 0;
		for (long i = 0; i < n; i++)
			sink += faulting_load((const uint64_t *)16);
		_exit(sink == (uint64_t)-n ? 0 : 1);
	}
	if (ptrace(PTRACE_SEIZE, c, 0, 0) < 0)
		return -1;
	int64_t t0 = now_ns();
	if (write(go[1], "g", 1) != 1)
		return -1;
	int st;
	long repaired = 0;
	while (waitpid(c, &st, 0) == c && WIFSTOPPED(st)) {
		struct user_regs_struct r;
		if (WSTOPSIG(st) == SIGSEGV && ptrace(PTRACE_GETREGS, c, 0, &r) == 0 &&
		    r.rip == (uint64_t)faulting_load_insn) {
			r.rax = (uint64_t)-1;
			r.rip = (uint64_t)faulting_load_end;
			ptrace(PTRACE_SETREGS, c, 0, &r);
			ptrace(PTRACE_CONT, c, 0, 0);
			repaired++;
		} else {
			ptrace(PTRACE_CONT, c, 0, (void *)(long)WSTOPSIG(st));
		}
	}
	double dt = (double)(now_ns() - t0) / (double)n;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 && repaired == n ? dt : -1;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000000;
	int err = 0;
	printf("load %.1f\n", bench_load(n * 10));
	double v = bench_vm_readv(n, &err);
	if (err)
		printf("vm_readv failed: %s\n", strerror(err));
	else
		printf("vm_readv %.1f\n", v);
	printf("sig_fault %.1f\n", bench_sig_fault(n / 10));
	printf("ptrace_fault %.1f\n", bench_ptrace_fault(n / 100));
	return 0;
}
