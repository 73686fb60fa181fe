/* test_tracee: remote syscalls borrowed from a thread stopped inside a syscall (a clone or fork
 * event stop). Its registers there are the syscall's: a remote call that did not first run it
 * to the syscall's exit had its number overwritten by the kernel (ENOSYS) and gave the target
 * back a wrong clone/fork result. Real child, real ptrace. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
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

int main(void)
{
	test_event_stop(0);
	test_event_stop(1);
	test_vfork_refused();
	return CHECK_DONE();
}
