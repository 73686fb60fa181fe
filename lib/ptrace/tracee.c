/* tracee: ptrace attach, memory, registers, single steps and remote syscalls (see tracee.h).
 * Arch-neutral: the machine is seen only through lib/arch/ (registers by role, the system
 * call instruction and convention). Never names a register of one architecture. */
#include "ptrace/tracee.h"

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "arch/insn.h"
#include "arch/safety.h"
#include "arch/syscall.h"
#include "util/clock.h"

static struct diag_proc *proc_alloc(pid_t pid)
{
	struct diag_proc *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->pid = pid;
	p->memfd = -1;
	diag_u64map_init(&p->threads);
	return p;
}

void diag_proc_free(struct diag_proc *p)
{
	if (!p)
		return;
	size_t pos = 0;
	uint64_t k;
	void *v;
	while (diag_u64map_next(&p->threads, &pos, &k, &v)) {
		free(((struct diag_thread *)v)->ext);
		free(v);
	}
	diag_u64map_release(&p->threads);
	if (p->memfd >= 0)
		close(p->memfd);
	free(p);
}

struct diag_thread *diag_proc_thread(struct diag_proc *p, pid_t tid)
{
	return diag_u64map_get(&p->threads, (uint64_t)tid);
}

struct diag_thread *diag_proc_add_thread(struct diag_proc *p, pid_t tid)
{
	struct diag_thread *t = diag_proc_thread(p, tid);
	if (t)
		return t;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->tid = tid;
	t->proc = p;
	if (diag_u64map_put(&p->threads, (uint64_t)tid, t) < 0) {
		free(t);
		return NULL;
	}
	return t;
}

void diag_proc_del_thread(struct diag_proc *p, pid_t tid)
{
	struct diag_thread *t = diag_u64map_del(&p->threads, (uint64_t)tid);
	if (t)
		free(t->ext);
	free(t);
}

static int open_mem(struct diag_proc *p)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)p->pid);
	p->memfd = open(path, O_RDWR | O_CLOEXEC);
	return p->memfd < 0 ? -errno : 0;
}



/* A thread listed in /proc but already traced by us was auto-attached through a clone event
 * racing with our scan; any other tracer means we cannot have it. */
static bool traced_by_us(pid_t tid)
{
	unsigned long long tracer;
	return diag_proc_status_field(tid, "TracerPid", 10, &tracer) &&
	       tracer == (unsigned long long)getpid();
}

#define PF_KTHREAD_ 0x00200000 /* include/linux/sched.h */


/* Why pid cannot be traced when that is known before trying: it is us, or a kernel thread
 * (no user space: ptrace refuses it), or gone. 0 when none applies. */
static int known_refusal(pid_t pid, struct diag_error *err)
{
	char state[8], flags[24];
	unsigned long long tgid;
	if (pid == getpid() || (diag_proc_status_field(pid, "Tgid", 10, &tgid) &&
				tgid == (unsigned long long)getpid()))
		return diag_error_set(err, -EPERM,
				      "pid %d: cannot attach: it is this daemon (pid %d) itself",
				      (int)pid, (int)getpid());
	if (diag_proc_stat_field(pid, 3, state, sizeof(state)) < 0 ||
	    diag_proc_stat_field(pid, 9, flags, sizeof(flags)) < 0)
		return 0; /* ptrace's own answer will do */
	if (strtoul(flags, NULL, 10) & PF_KTHREAD_)
		return diag_error_set(err, -EPERM,
				      "pid %d: cannot attach: it is a kernel thread (PF_KTHREAD in "
				      "/proc/%d/stat, no /proc/%d/exe): nothing in user space to probe",
				      (int)pid, (int)pid, (int)pid);
	if (state[0] == 'Z' || state[0] == 'X')
		return diag_error_set(err, -ESRCH,
				      "pid %d: cannot attach: the process has exited (a zombie its "
				      "parent has not reaped)",
				      (int)pid);
	return 0;
}

/* ptrace said EPERM: another tracer is the cause we can name; else the usual suspects. */
static void eperm_cause(pid_t pid, char *why, size_t len)
{
	unsigned long long tracer = 0;
	if (diag_proc_status_field(pid, "TracerPid", 10, &tracer) && tracer > 0) {
		char path[64], comm[64] = "?";
		snprintf(path, sizeof(path), "/proc/%llu/comm", tracer);
		FILE *f = fopen(path, "re");
		if (f && fgets(comm, sizeof(comm), f))
			comm[strcspn(comm, "\n")] = '\0';
		if (f)
			fclose(f);
		snprintf(why, len, "already traced by pid %llu (%s)", tracer, comm);
		return;
	}
	snprintf(why, len, "permission denied (the daemon is not root, kernel.yama.ptrace_scope, "
			   "or a security module refused it)");
}

/* One pass over /proc/PID/task; returns how many threads were newly seized, or -errno. */
static int seize_pass(struct diag_proc *p)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", (int)p->pid);
	DIR *d = opendir(path);
	if (!d)
		return -errno;
	int added = 0, rc = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		pid_t tid = (pid_t)atoi(de->d_name);
		if (tid <= 0 || diag_proc_thread(p, tid))
			continue;
		if (ptrace(PTRACE_SEIZE, tid, 0, DIAG_PTRACE_OPTIONS) < 0) {
			if (errno == ESRCH)
				continue; /* exited meanwhile */
			if (errno == EPERM && diag_proc_thread(p, p->pid) && traced_by_us(tid)) {
				if (!diag_proc_add_thread(p, tid)) {
					rc = -ENOMEM;
					break;
				}
				added++;
				continue;
			}
			rc = -errno;
			break;
		}
		struct diag_thread *t = diag_proc_add_thread(p, tid);
		if (!t) {
			rc = -ENOMEM;
			break;
		}
		t->announced = true;
		added++;
	}
	closedir(d);
	return rc < 0 ? rc : added;
}

int diag_proc_seize(pid_t pid, struct diag_proc **out, struct diag_error *err)
{
	if (pid <= 0)
		return diag_error_set(err, -EINVAL, "pid %d: not a process id", (int)pid);
	if (kill(pid, 0) < 0 && errno == ESRCH)
		return diag_error_set(err, -ESRCH, "pid %d: no such process", (int)pid);
	int r = known_refusal(pid, err);
	if (r < 0)
		return r;
	struct diag_proc *p = proc_alloc(pid);
	if (!p)
		return diag_error_set(err, -ENOMEM, "pid %d: out of memory", (int)pid);
	/* Threads created by threads not yet seized escape the clone events: rescan until a
	 * pass finds nothing new. */
	do
		r = seize_pass(p);
	while (r > 0);
	if (r == 0 && !diag_proc_thread(p, pid))
		r = -ESRCH;
	if (r == 0)
		r = open_mem(p);
	if (r < 0) {
		char why[160];
		if (r == -EPERM)
			eperm_cause(pid, why, sizeof(why));
		else
			snprintf(why, sizeof(why), "%s", r == -ESRCH ? "no such process" : strerror(-r));
		diag_error_set(err, r, "pid %d: cannot attach: %s", (int)pid, why);
		size_t pos = 0;
		uint64_t k;
		void *v;
		while (diag_u64map_next(&p->threads, &pos, &k, &v))
			ptrace(PTRACE_DETACH, (pid_t)k, 0, 0);
		diag_proc_free(p);
		return r;
	}
	*out = p;
	return 0;
}

int diag_thread_seize_exec(pid_t tid, struct diag_error *err)
{
	if (ptrace(PTRACE_SEIZE, tid, 0, DIAG_PTRACE_OPTIONS) == 0) {
		/* a failure here means it died: the wait for its stop reports the death */
		ptrace(PTRACE_INTERRUPT, tid, 0, 0);
		return 0;
	}
	int r = -errno;
	char why[160], state[8] = "";
	if (r == -ESRCH || (diag_proc_stat_field(tid, 3, state, sizeof(state)) == 0 &&
			    (state[0] == 'Z' || state[0] == 'X'))) {
		r = -ESRCH; /* ptrace says EPERM for a zombie */
		snprintf(why, sizeof(why), "the thread is gone (killed while its exec waited)");
	}
	else if (r == -EPERM)
		eperm_cause(tid, why, sizeof(why));
	else
		snprintf(why, sizeof(why), "%s", strerror(-r));
	return diag_error_set(err, r, "tid %d: cannot attach at its exec: %s", (int)tid, why);
}

int diag_proc_adopt(pid_t pid, struct diag_proc *mem_owner, struct diag_proc **out)
{
	struct diag_proc *p = proc_alloc(pid);
	if (!p)
		return -ENOMEM;
	p->mem_owner = mem_owner;
	int r = mem_owner ? 0 : open_mem(p);
	if (r == 0 && !diag_proc_add_thread(p, pid))
		r = -ENOMEM;
	if (r < 0) {
		diag_proc_free(p);
		return r;
	}
	*out = p;
	return 0;
}

static struct diag_proc *mem_of(struct diag_proc *p)
{
	return p->mem_owner ? p->mem_owner : p;
}

ssize_t diag_proc_read(struct diag_proc *p, uint64_t addr, void *buf, size_t len)
{
	struct iovec local = {buf, len}, remote = {(void *)(uintptr_t)addr, len};
	ssize_t n = process_vm_readv(mem_of(p)->pid, &local, 1, &remote, 1, 0);
	if (n == (ssize_t)len)
		return n;
	/* Pages without read permission (or a partial read) still read through /proc/PID/mem. */
	n = pread(mem_of(p)->memfd, buf, len, (off_t)addr);
	return n < 0 ? -errno : n;
}

int diag_proc_dup_fd(struct diag_proc *p, int fd)
{
	int pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0);
	if (pidfd < 0)
		return -errno;
	int r = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
	int err = errno;
	close(pidfd);
	return r < 0 ? -err : r;
}

int diag_proc_read_u64s(struct diag_proc *p, const uint64_t *addrs, uint64_t *vals, size_t n)
{
	struct iovec local[DIAG_PROC_READ_U64S_MAX], remote[DIAG_PROC_READ_U64S_MAX];
	if (n > DIAG_PROC_READ_U64S_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		local[i] = (struct iovec){&vals[i], sizeof(vals[i])};
		remote[i] = (struct iovec){(void *)(uintptr_t)addrs[i], sizeof(vals[i])};
	}
	ssize_t got = n ? process_vm_readv(mem_of(p)->pid, local, n, remote, n, 0) : 0;
	if (got == (ssize_t)(n * sizeof(uint64_t)))
		return 0;
	for (size_t i = 0; i < n; i++) /* one at a time, through /proc/PID/mem if need be */
		if (diag_proc_read(p, addrs[i], &vals[i], sizeof(vals[i])) != (ssize_t)sizeof(vals[i]))
			return -EIO;
	return 0;
}

ssize_t diag_proc_write(struct diag_proc *p, uint64_t addr, const void *buf, size_t len)
{
	ssize_t n = pwrite(mem_of(p)->memfd, buf, len, (off_t)addr);
	if (n < 0)
		return -errno;
	return n == (ssize_t)len ? n : -EIO;
}

int diag_thread_resume(struct diag_thread *t, int sig)
{
	/* Resumed already (by whoever used it meanwhile): it may since have stopped at an int3
	 * whose stop is not reaped yet, and a PTRACE_CONT now would cancel that SIGTRAP and run
	 * on past the displaced instruction (issue 15, item 6). */
	if (!t->stopped)
		return 0;
	long r = t->group_stop ? ptrace(PTRACE_LISTEN, t->tid, 0, 0)
			       : ptrace(PTRACE_CONT, t->tid, 0, (void *)(long)sig);
	/* A job-stopped thread we borrowed (remote syscall) is no longer in its group-stop, and
	 * LISTEN refuses it: send it back into the job stop with the stop signal. */
	if (r < 0 && t->group_stop && errno == EIO)
		r = ptrace(PTRACE_CONT, t->tid, 0, (void *)(long)SIGSTOP);
	if (r < 0)
		return -errno;
	t->stopped = false;
	t->event = 0;
	return 0;
}

/* Any system call instruction (x86-64: the byte pair 0f 05) in executable memory serves: the
 * thread executes exactly that instruction and we regain control at syscall-exit before
 * anything after runs. The vDSO is searched first as it is small and always present. */
static int find_syscall_insn(struct diag_proc *p)
{
	struct diag_proc_maps maps;
	struct diag_proc_map m;
	int r = diag_proc_maps_open(p->pid, &maps);
	if (r < 0)
		return r;
	uint64_t cand[2][2] = {{0, 0}, {0, 0}}; /* [0] vdso, [1] first other r-x mapping */
	while (diag_proc_maps_next(&maps, &m)) {
		if (m.perms[2] != 'x')
			continue;
		int k = strcmp(m.path, "[vdso]") == 0 ? 0 : 1;
		if (!cand[k][0]) {
			cand[k][0] = m.start;
			cand[k][1] = m.end;
		}
	}
	diag_proc_maps_close(&maps);
	uint8_t buf[4096];
	for (int k = 0; k < 2; k++) {
		for (uint64_t a = cand[k][0]; a && a < cand[k][1];
		     a += sizeof(buf) - (DIAG_ARCH_SYSCALL_LEN - 1)) {
			size_t want = cand[k][1] - a < sizeof(buf) ? cand[k][1] - a : sizeof(buf);
			ssize_t n = diag_proc_read(p, a, buf, want);
			if (n < DIAG_ARCH_SYSCALL_LEN)
				break;
			for (ssize_t i = 0; i + DIAG_ARCH_SYSCALL_LEN <= n; i++)
				if (diag_arch_is_syscall(buf + i)) {
					p->syscall_insn = a + (uint64_t)i;
					return 0;
				}
		}
	}
	return -ENOENT;
}

/* A thread held at the signal-delivery stop of its own fault (a SIGSEGV or SIGBUS the
 * instruction at its pc raised) is about to be moved through syscall stops: resumed from one
 * of those with the signal, the kernel would send it again as its own (si_code SI_KERNEL, no
 * address), and a handler that looks at the siginfo would misjudge it (found with a target
 * whose handler recovers its own faults by their address, test_guard_install). Drop it
 * instead: resumed, the instruction runs again and faults again, with its own siginfo. */
static void drop_refaulting_signal(struct diag_thread *t)
{
	siginfo_t si;
	if ((t->pending_sig != SIGSEGV && t->pending_sig != SIGBUS) ||
	    diag_thread_siginfo(t->tid, &si) < 0 || si.si_signo != t->pending_sig ||
	    si.si_code <= 0 || (si.si_signo == SIGBUS && si.si_code == BUS_MCEERR_AO))
		return;
	t->pending_sig = 0;
}

/* Wait for t's next syscall stop; other stops of t (signals) are remembered for later. */
static int wait_syscall_stop(struct diag_thread *t)
{
	for (;;) {
		int st;
		pid_t w = waitpid(t->tid, &st, __WALL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (!WIFSTOPPED(st))
			return -ESRCH; /* killed under us */
		if (WSTOPSIG(st) == (SIGTRAP | 0x80))
			return 0;
		if ((st >> 16) == 0 && WSTOPSIG(st) == SIGTRAP) {
			/* a breakpoint the thread ran into just as it was stopped for us (a
			 * job-control stop, or an interrupt, reported before the SIGTRAP is
			 * dequeued): cancelled here, so the pc put back must re-run it */
			siginfo_t si;
			if (diag_thread_siginfo(t->tid, &si) == 0 && si.si_code == SI_KERNEL)
				t->trap_behind = true;
		} else if ((st >> 16) == 0) {
			/* a fault queued behind the stop we borrowed the thread in: the registers
			 * we put back re-run its instruction, which faults again */
			int before = t->pending_sig;
			t->pending_sig = WSTOPSIG(st);
			drop_refaulting_signal(t);
			if (!t->pending_sig)
				t->pending_sig = before;
		}
		if (ptrace(PTRACE_SYSCALL, t->tid, 0, 0) < 0)
			return -errno;
	}
}

/* The SIGTRAP of a breakpoint was cancelled while we borrowed t: its saved pc is past the
 * breakpoint instruction, and resumed there it would skip the instruction the breakpoint
 * displaced (a target died in _dl_debug_update, past the `ret` of _dl_debug_state). Put it
 * back on the breakpoint: it traps again and is served as any hit, or, the breakpoint
 * removed since, runs the restored instruction. The two-byte `int 3` of a target's own code
 * is left alone: its trap goes to it as a signal, as it would have without us. */
static void rewind_trap(struct diag_thread *t, diag_regs *saved)
{
	if (!t->trap_behind)
		return;
	t->trap_behind = false;
	uint64_t at = diag_regs_trap_addr(saved);
	uint8_t before[DIAG_INSN_MAX_LEN];
	size_t n = diag_insn_trap_context_len();
	if (diag_proc_read(t->proc, at + DIAG_ARCH_BREAK_LEN - n, before, n) == (ssize_t)n &&
	    diag_insn_is_long_trap(before)) {
		t->pending_sig = SIGTRAP;
		return;
	}
	diag_regs_set_pc(saved, at);
}

/* A breakpoint's trap cancelled before the call was entered moved the pc the thread must
 * resume at; the stub's code after its `syscall` has not run yet (the thread is in the kernel,
 * at the enter-stop), so it is written again with that pc: a tracer that dies now leaves the
 * thread on the breakpoint, not past the instruction it displaced. */
static void stub_rewound(struct diag_thread *t, const struct diag_mem_io *io, diag_regs *saved)
{
	if (!t->trap_behind)
		return;
	rewind_trap(t, saved);
	(void)diag_syscall_stub_resume_at(&t->proc->stub, io, saved); /* failed: the old pc stays */
}

static ssize_t io_read(void *p, uint64_t addr, void *buf, size_t len)
{
	return diag_proc_read(p, addr, buf, len);
}

static ssize_t io_write(void *p, uint64_t addr, const void *buf, size_t len)
{
	return diag_proc_write(p, addr, buf, len);
}

int diag_thread_syscall(struct diag_thread *t, long nr, const long args[6], long *ret)
{
	struct diag_proc *p = t->proc;
	if (!t->stopped)
		return -EBUSY;
	if (diag_thread_is_zombie(t)) /* exiting: waiting for its syscall would never end */
		return -ESRCH;
	/* Stopped inside clone/fork/exec (an event stop): its registers are the syscall's, not a
	 * user state; run it to the syscall's exit first or the kernel writes the result over our
	 * call number. A vfork parent would block there until the (stopped) child lets it go. */
	if (t->event == PTRACE_EVENT_VFORK)
		return -EBUSY;
	drop_refaulting_signal(t);
	if (t->event) {
		int rc = ptrace(PTRACE_SYSCALL, t->tid, 0, 0) < 0 ? -errno : wait_syscall_stop(t);
		if (rc < 0)
			return rc;
		t->event = 0;
	}
	t->trap_behind = false; /* only a trap cancelled inside our call moves the pc back */
	diag_regs saved, r;
	int rc = diag_regs_read(t->tid, &saved);
	if (rc < 0)
		return rc;
	/* the restart the kernel would have applied had we not borrowed the thread */
	diag_regs_syscall_restart(&saved);
	uint64_t insn;
	const struct diag_mem_io io = {p, io_read, io_write};
	bool stub = diag_syscall_stub_put(&p->stub, p->pid, &io, &saved, &insn) == 0;
	if (!stub) { /* no stub place: a dead tracer here would leave the call's registers */
		if (!p->syscall_insn && (rc = find_syscall_insn(p)) < 0)
			return rc;
		insn = p->syscall_insn;
	}
	r = saved;
	diag_regs_syscall_enter(&r, insn, nr, args);
	if ((rc = diag_regs_write(t->tid, &r)) < 0) {
		diag_syscall_stub_clear(&p->stub, &io);
		return rc;
	}
	/* enter-stop, then exit-stop */
	rc = ptrace(PTRACE_SYSCALL, t->tid, 0, 0) < 0 ? -errno : wait_syscall_stop(t);
	if (rc == 0) {
		stub_rewound(t, &io, &saved);
		rc = ptrace(PTRACE_SYSCALL, t->tid, 0, 0) < 0 ? -errno : wait_syscall_stop(t);
	}
	if (rc == 0)
		rc = diag_regs_read(t->tid, &r);
	rewind_trap(t, &saved);
	int wr = diag_regs_write(t->tid, &saved);
	diag_syscall_stub_clear(&p->stub, &io);
	if (wr < 0 && !rc)
		rc = wr;
	if (rc == 0)
		*ret = diag_regs_syscall_result(&r);
	return rc;
}

/* SIGTRAP's bit in SigIgn of /proc/PID/status. */
static bool sigtrap_ignored(pid_t pid)
{
	unsigned long long ign = 0;
	return diag_proc_status_field(pid, "SigIgn", 16, &ign) && (ign & (1ULL << (SIGTRAP - 1)));
}

int diag_thread_sigaction(struct diag_thread *t, int sig, const void *act, void *oact)
{
	diag_regs r;
	int rc = diag_regs_read(t->tid, &r);
	if (rc < 0)
		return rc;
	const size_t n = sizeof(struct diag_ksigaction);
	uint64_t scratch = (diag_regs_sp(&r) - 1024) & ~15ULL, in = scratch, out = scratch + 64;
	if (act && diag_proc_write(t->proc, in, act, n) != (ssize_t)n)
		return -EIO;
	long args[6] = {sig, act ? (long)in : 0, oact ? (long)out : 0, 8, 0, 0}, ret;
	if ((rc = diag_thread_syscall(t, SYS_rt_sigaction, args, &ret)) < 0)
		return rc;
	if (ret < 0)
		return (int)ret;
	if (oact && diag_proc_read(t->proc, out, oact, n) != (ssize_t)n)
		return -EIO;
	return 0;
}

/* Put SIG_IGN back as the SIGTRAP action (a forced trap replaced it with SIG_DFL). */
static void sigtrap_reignore(struct diag_thread *t)
{
	struct diag_ksigaction act = {.handler = (uint64_t)(uintptr_t)SIG_IGN};
	diag_thread_sigaction(t, SIGTRAP, &act, NULL);
}

/* A single-step trap is a forced SIGTRAP: were SIGTRAP blocked in t (a target thread that
 * blocks it, or one inside a SIGTRAP handler such as the safety handler), the kernel would set
 * the whole process's SIGTRAP action to SIG_DFL and unblock it in t before we ever see the
 * stop. So SIGTRAP is unblocked for the step and t's mask put back after it. An ignored
 * SIGTRAP is reset the same way: SIG_IGN is put back. */
int diag_thread_step(struct diag_thread *t)
{
	const uint64_t trap = 1ULL << (SIGTRAP - 1);
	uint64_t mask = 0, unblocked;
	bool masked = ptrace(PTRACE_GETSIGMASK, t->tid, sizeof(mask), &mask) == 0 && (mask & trap);
	unblocked = mask & ~trap;
	if (masked && ptrace(PTRACE_SETSIGMASK, t->tid, sizeof(unblocked), &unblocked) < 0)
		return -errno;
	/* rt_sigreturn leaving a handler sets the mask itself: that one stands */
	diag_regs regs;
	bool sigreturn = false;
	if (masked && diag_regs_read(t->tid, &regs) == 0) {
		errno = 0;
		long insn = ptrace(PTRACE_PEEKTEXT, t->tid, diag_regs_pc(&regs), 0);
		uint8_t code[sizeof(insn)];
		memcpy(code, &insn, sizeof(code));
		sigreturn = errno == 0 && diag_arch_is_syscall(code) &&
			    diag_regs_syscall_nr(&regs) == SYS_rt_sigreturn;
	}
	bool ignored = sigtrap_ignored(t->proc->pid);
	int r = 0, st = 0;
	if (ptrace(PTRACE_SINGLESTEP, t->tid, 0, 0) < 0)
		r = -errno;
	else if (waitpid(t->tid, &st, __WALL) != t->tid)
		r = -errno;
	else if (!WIFSTOPPED(st))
		r = -ESRCH;
	else if ((st >> 16) == 0 && WSTOPSIG(st) != SIGTRAP)
		t->pending_sig = WSTOPSIG(st);
	uint64_t now;
	if (masked && !sigreturn && r != -ESRCH &&
	    ptrace(PTRACE_GETSIGMASK, t->tid, sizeof(now), &now) == 0) {
		now |= trap; /* only the bit we took away: any other change the step made stands */
		ptrace(PTRACE_SETSIGMASK, t->tid, sizeof(now), &now);
	}
	if (ignored && r != -ESRCH && !sigtrap_ignored(t->proc->pid))
		sigtrap_reignore(t);
	return r;
}

const char *diag_thread_comm(struct diag_thread *t)
{
	uint64_t now = diag_clock_mono_ns();
	if (t->comm_ns && now - t->comm_ns < 10000000ULL)
		return t->comm;
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", (int)t->proc->pid, (int)t->tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, t->comm, sizeof(t->comm) - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (n < 0)
		n = 0;
	if (n > 0 && t->comm[n - 1] == '\n')
		n--;
	t->comm[n] = '\0';
	t->comm_ns = now;
	return t->comm;
}

bool diag_thread_is_zombie(struct diag_thread *t)
{
	if (t->zombie)
		return true;
	char state[8];
	if (diag_proc_task_stat_field(t->proc->pid, t->tid, 3, state, sizeof(state)) < 0)
		return false;
	t->zombie = state[0] == 'Z' || state[0] == 'X';
	return t->zombie;
}

/* One register set of tid (NT_PRSTATUS, NT_PRFPREG: the same on every Linux architecture).
 * A set of another size than ours (a 32-bit compat tracee) is refused, never half-read. */
static int regset(pid_t tid, int req, int type, void *buf, size_t len)
{
	struct iovec iov = {buf, len};
	if (ptrace(req, tid, (void *)(long)type, &iov) < 0)
		return -errno;
	return iov.iov_len == len ? 0 : -EIO;
}

int diag_regs_read(pid_t tid, diag_regs *out)
{
	diag_regs r;
	int rc = regset(tid, PTRACE_GETREGSET, NT_PRSTATUS, &r, sizeof(r));
	if (rc == 0)
		*out = r;
	return rc;
}

int diag_regs_write(pid_t tid, const diag_regs *r)
{
	diag_regs copy = *r;
	return regset(tid, PTRACE_SETREGSET, NT_PRSTATUS, &copy, sizeof(copy));
}

int diag_fpregs_read(pid_t tid, diag_fpregs *out)
{
	diag_fpregs f;
	int rc = regset(tid, PTRACE_GETREGSET, NT_PRFPREG, &f, sizeof(f));
	if (rc == 0)
		*out = f;
	return rc;
}

int diag_thread_interrupt(pid_t tid)
{
	return ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0 ? -errno : 0;
}

int diag_thread_eventmsg(pid_t tid, unsigned long *msg)
{
	return ptrace(PTRACE_GETEVENTMSG, tid, 0, msg) < 0 ? -errno : 0;
}

int diag_thread_siginfo(pid_t tid, siginfo_t *si)
{
	return ptrace(PTRACE_GETSIGINFO, tid, 0, si) < 0 ? -errno : 0;
}

int diag_thread_detach(pid_t tid, int sig)
{
	return ptrace(PTRACE_DETACH, tid, 0, (void *)(long)sig) < 0 ? -errno : 0;
}
