/* test_tracee: remote syscalls borrowed from a thread stopped inside a syscall (a clone or fork
 * event stop). Its registers there are the syscall's: a remote call that did not first run it
 * to the syscall's exit had its number overwritten by the kernel (ENOSYS) and gave the target
 * back a wrong clone/fork result. And a tracer killed (-9) in the middle of a remote call: the
 * thread must go on with its own registers, in the middle of its loop or of its own blocked
 * read, and the vDSO bytes the call ran from must be put back by the next tracer. Real
 * children, real ptrace. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <time.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "ptrace/tracee.h"

static void *noop(void *arg)
{
	return arg;
}

/* The target: on a byte from the pipe, clone a thread (or fork); exit 0 only when that
 * worked as if nobody had borrowed it. */
static int child_main(int rfd, int use_fork)
{
	char b;
	if (read(rfd, &b, 1) != 1)
		return 10;
	if (use_fork) {
		pid_t c = fork();
		if (c == 0)
			_exit(7);
		int st;
		if (c < 0 || waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 7)
			return 11;
		return 0;
	}
	pthread_t t;
	void *r = NULL;
	if (pthread_create(&t, NULL, noop, (void *)42) != 0 || pthread_join(t, &r) != 0)
		return 12;
	return r == (void *)42 ? 0 : 13;
}

static void test_event_stop(int use_fork)
{
	int p[2];
	CHECK_EQ_INT(pipe(p), 0);
	pid_t pid = fork();
	if (pid == 0)
		_exit(child_main(p[0], use_fork));
	struct diag_proc *proc = NULL;
	struct diag_error err = {0};
	CHECK_EQ_INT(diag_proc_seize(pid, &proc, &err), 0);
	if (!proc) {
		fprintf(stderr, "seize: %s\n", err.msg);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return;
	}
	struct diag_thread *t = diag_proc_thread(proc, pid);
	if (t->stopped)
		diag_thread_resume(t, 0);
	CHECK_EQ_INT(write(p[1], "x", 1), 1);
	int want = use_fork ? PTRACE_EVENT_FORK : PTRACE_EVENT_CLONE, borrowed = 0, status = -1;
	for (;;) {
		int st;
		pid_t w = waitpid(-1, &st, __WALL);
		if (w < 0)
			break;
		if (w == pid && (WIFEXITED(st) || WIFSIGNALED(st))) {
			status = st;
			break;
		}
		if (!WIFSTOPPED(st))
			continue; /* the new thread or child exiting */
		if (w == pid && (st >> 16) == want && !borrowed) {
			t->stopped = true;
			t->event = want;
			long args[6] = {0}, ret = 0;
			CHECK_EQ_INT(diag_thread_syscall(t, SYS_getpid, args, &ret), 0);
			CHECK_EQ_INT(ret, pid);
			CHECK_EQ_INT(t->event, 0);
			borrowed = 1;
		}
		int sig = WSTOPSIG(st);
		/* new threads and children start in an event stop; pass real signals on */
		ptrace(PTRACE_CONT, w, 0,
		       (void *)(long)((st >> 16) || sig == SIGTRAP || sig == (SIGTRAP | 0x80) ? 0 : sig));
	}
	CHECK(borrowed);
	CHECK(WIFEXITED(status));
	CHECK_EQ_INT(WEXITSTATUS(status), 0);
	diag_proc_free(proc);
	close(p[0]);
	close(p[1]);
}

static void test_vfork_refused(void)
{
	struct diag_thread t = {.tid = getpid(), .stopped = true, .event = PTRACE_EVENT_VFORK};
	struct diag_proc proc = {.pid = getpid(), .syscall_insn = 1};
	t.proc = &proc;
	long args[6] = {0}, ret;
	/* resuming a vfork parent would block it until the stopped child lets it go */
	CHECK_EQ_INT(diag_thread_syscall(&t, SYS_getpid, args, &ret), -EBUSY);
}

static volatile sig_atomic_t spin_stop;

static void on_usr1(int sig)
{
	(void)sig;
	spin_stop = 1;
}

/* Enough live values that a register the tracer left wrong shows in the result. */
static uint64_t spin_round(uint64_t h[6], uint64_t i)
{
	h[0] = (h[0] ^ i) * 0x9e3779b97f4a7c15ull;
	h[1] += h[0] >> 7;
	h[2] ^= h[1] * 31 + i;
	h[3] = (h[3] << 3 | h[3] >> 61) + h[2];
	h[4] -= h[3] ^ 0x5bd1e995;
	h[5] += h[4] + h[0];
	return h[5];
}

static uint64_t spin_expected(uint64_t rounds)
{
	uint64_t h[6] = {1, 2, 3, 4, 5, 6}, r = 0;
	for (uint64_t i = 0; i < rounds; i++)
		r = spin_round(h, i);
	return r;
}

/* The target: "spin" loops in user code until SIGUSR1 (saying on wfd when it is in the loop),
 * "read" blocks in read(2) on rfd; then it writes what it computed (or read) to wfd. Exit 0
 * unless something went wrong. */
static int dead_tracer_target(const char *mode, int rfd, int wfd)
{
	uint64_t out[2] = {0, 0};
	signal(SIGUSR1, on_usr1);
	if (strcmp(mode, "spin") == 0) {
		uint64_t h[6] = {1, 2, 3, 4, 5, 6}, i = 0, r = 0;
		while (!spin_stop) {
			r = spin_round(h, i++);
			if (i == 1000 && write(wfd, "s", 1) != 1) /* spinning: the tracer may come */
				return 21;
		}
		out[0] = i;
		out[1] = r;
	} else {
		char b = 0;
		ssize_t n;
		while ((n = read(rfd, &b, 1)) < 0 && errno == EINTR)
			;
		out[0] = (uint64_t)n;
		out[1] = (uint64_t)b;
	}
	return write(wfd, out, sizeof(out)) == (ssize_t)sizeof(out) ? 0 : 20;
}

/* Thread pid of proc in a ptrace-stop (the engine's way: an interrupt, then its stop). */
static struct diag_thread *stop_thread(struct diag_proc *proc, pid_t pid)
{
	struct diag_thread *t = diag_proc_thread(proc, pid);
	int st;
	if (!t->stopped && (diag_thread_interrupt(pid) < 0 || waitpid(pid, &st, __WALL) != pid ||
			    !WIFSTOPPED(st)))
		return NULL;
	t->stopped = true;
	return t;
}

/* The tracer: seize pid and run ppoll(NULL, 0, NULL, NULL) in it, which waits for a signal;
 * it is killed before that returns. */
static int dead_tracer_tracer(pid_t pid)
{
	struct diag_proc *proc = NULL;
	struct diag_error err = {0};
	if (diag_proc_seize(pid, &proc, &err) < 0) {
		fprintf(stderr, "tracer: %s\n", err.msg);
		return 30;
	}
	struct diag_thread *t = stop_thread(proc, pid);
	long args[6] = {0}, ret = 0;
	int rc = t ? diag_thread_syscall(t, SYS_ppoll, args, &ret) : -1;
	fprintf(stderr, "tracer: the remote call returned (%d, %ld) before the kill\n", rc, ret);
	return 31;
}

/* Nr of the system call thread pid sleeps in, -1 when it does not sleep, -2 when unreadable.
 * /proc/PID/syscall alone names the call a thread is about to restart too (a thread just
 * let go, its registers put back), so the state must say asleep (S). */
static long blocked_in(pid_t pid)
{
	char path[64], buf[256];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -2;
	const char *close_paren = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
	fclose(f);
	if (!close_paren)
		return -2;
	if (close_paren[1] != ' ' || close_paren[2] != 'S')
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/syscall", (int)pid);
	if (!(f = fopen(path, "r")))
		return -2;
	long nr = -2;
	if (fgets(buf, sizeof(buf), f))
		nr = strncmp(buf, "running", 7) == 0 ? -1 : strtol(buf, NULL, 10);
	fclose(f);
	return nr;
}

/* Wait (at most 10 s) until pid is blocked in nr. */
static bool wait_blocked(pid_t pid, long nr)
{
	struct timespec tick = {0, 1000000};
	for (int i = 0; i < 10000; i++) {
		if (blocked_in(pid) == nr)
			return true;
		nanosleep(&tick, NULL);
	}
	return false;
}

/* Up to cap bytes of pid's vDSO (at our own vDSO's address: a fork shares it) into buf. */
static size_t vdso_bytes(struct diag_proc *proc, uint8_t *buf, size_t cap)
{
	uint64_t at = (uint64_t)getauxval(AT_SYSINFO_EHDR);
	size_t len = 0;
	while (len + 4096 <= cap && diag_proc_read(proc, at + len, buf + len, 4096) == 4096)
		len += 4096;
	return len;
}

/* A second tracer, while the thread still waits in the first one's call: its own calls must
 * leave the vDSO exactly as it found it (the dead tracer's stub, with the thread inside,
 * included). */
static void second_tracer(pid_t pid)
{
	struct diag_proc *proc = NULL;
	struct diag_error err = {0};
	CHECK_EQ_INT(diag_proc_seize(pid, &proc, &err), 0);
	if (!proc)
		return;
	static uint8_t before[16384], after[16384];
	size_t n = vdso_bytes(proc, before, sizeof(before));
	CHECK(n >= 4096);
	CHECK(memcmp(before, (const void *)getauxval(AT_SYSINFO_EHDR), n) != 0); /* the stub */
	struct diag_thread *t = stop_thread(proc, pid);
	CHECK(t != NULL);
	if (!t)
		return;
	long args[6] = {0}, ret = 0;
	CHECK_EQ_INT(diag_thread_syscall(t, SYS_getpid, args, &ret), 0);
	CHECK_EQ_INT(ret, pid);
	CHECK_EQ_INT(diag_thread_syscall(t, SYS_getppid, args, &ret), 0);
	CHECK_EQ_INT(ret, getpid());
	CHECK_EQ_INT(vdso_bytes(proc, after, sizeof(after)), n);
	CHECK(memcmp(before, after, n) == 0);
	CHECK_EQ_INT(diag_thread_detach(pid, 0), 0);
	diag_proc_free(proc);
}

static void test_dead_tracer(const char *mode, bool then_second)
{
	int in[2], out[2];
	CHECK_EQ_INT(pipe(in), 0);
	CHECK_EQ_INT(pipe(out), 0);
	pid_t pid = fork();
	if (pid == 0)
		_exit(dead_tracer_target(mode, in[0], out[1]));
	close(out[1]); /* a target that dies ends the read of its result */
	bool reading = strcmp(mode, "read") == 0;
	char spinning = 0;
	if (reading)
		CHECK(wait_blocked(pid, SYS_read));
	else
		CHECK(read(out[0], &spinning, 1) == 1 && spinning == 's');
	pid_t tracer = fork();
	if (tracer == 0)
		_exit(dead_tracer_tracer(pid));
	bool in_call = wait_blocked(pid, SYS_ppoll);
	CHECK(in_call);
	kill(tracer, SIGKILL);
	int st = 0;
	CHECK_EQ_INT(waitpid(tracer, &st, 0), tracer);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	if (!in_call) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return;
	}
	if (then_second) {
		second_tracer(pid);
		CHECK(wait_blocked(pid, SYS_ppoll)); /* back in the dead tracer's call */
	}
	/* detached in the call: the signal ends the ppoll, the stub puts the registers back */
	kill(pid, SIGUSR1);
	if (reading) {
		CHECK(wait_blocked(pid, SYS_read)); /* its own read, restarted */
		CHECK_EQ_INT(write(in[1], "k", 1), 1);
	}
	uint64_t got[2] = {0, 0};
	ssize_t n = read(out[0], got, sizeof(got));
	CHECK_EQ_INT(waitpid(pid, &st, 0), pid);
	CHECK(WIFEXITED(st));
	CHECK_EQ_INT(WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st), 0);
	CHECK_EQ_INT(n, (ssize_t)sizeof(got));
	if (reading) {
		CHECK_EQ_INT(got[0], 1);
		CHECK_EQ_INT(got[1], 'k');
	} else {
		CHECK(got[0] >= 1000);
		CHECK(got[1] == spin_expected(got[0]));
	}
	close(in[0]);
	close(in[1]);
	close(out[0]);
}

int main(void)
{
	test_event_stop(0);
	test_event_stop(1);
	test_vfork_refused();
	test_dead_tracer("spin", false);
	test_dead_tracer("read", false);
	test_dead_tracer("read", true);
	return CHECK_DONE();
}
