/* test_adopt: processes taken at their exec (diag_engine_adopt_exec, diag_engine_release) with
 * the real exec gate and real fixture processes (first.c: main's first line calls first_call
 * once), at -O0/-O2, PIE and non-PIE:
 * - held at the exec stop (the new image has not run), an entry probe on first_call (a jump,
 *   then an int3 with DIAG_NO_FASTPATH) and a pending library probe (libc's printf, loaded
 *   later) placed, released: exactly one hit each, the program's own result right;
 * - the kernel's side of the bound: the interrupt queued at the seize is cleared by the exec
 *   stop (no stop follows it) and stops a failed exec in user mode;
 * - failures, each with its error and nothing left traced, the exec'ing process going on: an
 *   exec that fails (not an executable; a script whose interpreter is missing), a thread
 *   killed while its exec waits (before and after the seize), a thread already traced by
 *   another tracer;
 * - a process this engine traces already that execs the gated file: held as well, probed;
 * - detach and free of a held process restore and let it go;
 * - kill -9 of the daemon while a process is held (int3 and jump probes in it): the process
 *   runs on and its result is right.
 * Needs root (fanotify, ptrace); fails loudly without it. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "fixture_proc.h"
#include "gate.h"
#include "engine/engine.h"

#define WAIT_MS 10000

static char dir[4096];

struct tally {
	pid_t pid;
	uint64_t hits[4]; /* by cookie */
	long long first_value;
};

static void on_hit(void *ctx, const struct diag_engine_hit *h)
{
	struct tally *t = ctx;
	uintptr_t c = (uintptr_t)h->cookie;
	if (h->pid != t->pid || c >= 4)
		return;
	t->hits[c]++;
	if (c == 1)
		t->first_value = (long long)h->value.u;
}

struct allow_ctx {
	struct diag_execgate *g;
	struct diag_execgate_event ev;
	int calls;
	int kill_first; /* SIGKILL the thread before allowing */
};

static int allow(void *arg)
{
	struct allow_ctx *a = arg;
	a->calls++;
	if (a->kill_first)
		kill(a->ev.tid, SIGKILL);
	return diag_execgate_allow(a->g, &a->ev);
}

static struct diag_engine *engine(struct tally *t, bool no_fast)
{
	struct diag_engine_callbacks cb = {.on_hit = on_hit, .ctx = t};
	struct diag_engine *e = NULL;
	if (no_fast)
		setenv("DIAG_NO_FASTPATH", "1", 1);
	int r = diag_engine_new(&cb, &e);
	unsetenv("DIAG_NO_FASTPATH");
	if (r < 0) {
		fprintf(stderr, "FAIL: diag_engine_new: %s\n", strerror(-r));
		exit(1);
	}
	return e;
}

static bool has_output(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	return poll(&p, 1, 0) > 0;
}

/* Serve until pid is gone (bounded). */
static void serve_exit(struct diag_engine *e, pid_t pid)
{
	int64_t end = diag_clock_mono_ms() + 60000;
	while (diag_engine_attached(e, pid) && diag_clock_mono_ms() < end) {
		struct pollfd p = {diag_engine_fd(e), POLLIN, 0};
		poll(&p, 1, 100);
		diag_engine_dispatch(e);
	}
	if (diag_engine_attached(e, pid)) {
		char cmd[256];
		fprintf(stderr, "FAIL: pid %d still traced after 60 s:\n", (int)pid);
		snprintf(cmd, sizeof(cmd), "grep -E 'State|TracerPid' /proc/%d/status; cat /proc/%d/wchan; echo", (int)pid, (int)pid);
		if (system(cmd) != 0)
			fprintf(stderr, "(no /proc/%d)\n", (int)pid);
		check_failures++;
	}
}

/* Start path (argv[0] = path, argv[1] = arg1 or none) and take it at its exec: 0 with *pid held,
 * or the adopt's code with err. */
static int start_adopt(struct diag_engine *e, struct diag_execgate *g, struct fixture *f,
		       const char *path, const char *arg1, pid_t *pid, struct diag_error *err)
{
	char *argv[] = {(char *)path, (char *)arg1, NULL};
	CHECK_EQ_INT(fixture_start(f, path, argv), 0);
	struct allow_ctx a = {.g = g};
	if (!gate_wait(g, f->pid, &a.ev, WAIT_MS)) {
		fprintf(stderr, "FAIL: no gate event for %d (%s)\n", (int)f->pid, path);
		check_failures++;
		return -ETIMEDOUT;
	}
	int r = diag_engine_adopt_exec(e, a.ev.tid, allow, &a, pid, err);
	CHECK_EQ_INT(a.calls, 1);
	return r;
}

/* The line a fixture printed, to EOF (the engine reaped it: it was traced at its exit). */
static void expect_line(struct fixture *f, const char *want)
{
	char line[256] = "";
	int64_t end = diag_clock_mono_ms() + WAIT_MS;
	int r = 0;
	while ((r = fixture_line(f, line, sizeof(line))) == 0 && diag_clock_mono_ms() < end) {
		struct pollfd p = {.fd = f->out_fd, .events = POLLIN};
		poll(&p, 1, 100);
	}
	CHECK_EQ_INT(r, 1);
	CHECK_EQ_STR(line, want);
	close(f->in_fd);
	close(f->out_fd);
}

/* Held, probed, released: exactly one hit of each probe. */
static void test_probe_at_exec(struct diag_execgate *g, const char *copy, bool no_fast)
{
	struct tally t = {0};
	struct diag_engine *e = engine(&t, no_fast);
	struct fixture f;
	struct diag_error err = {0};
	pid_t pid = 0;
	int r = start_adopt(e, g, &f, copy, NULL, &pid, &err);
	CHECK_EQ_INT(r, 0);
	if (r < 0) {
		fprintf(stderr, "adopt: %s\n", err.msg);
		diag_engine_free(e);
		return;
	}
	t.pid = pid;
	CHECK_EQ_INT(pid, f.pid);
	CHECK(diag_engine_attached(e, pid));
	CHECK(!has_output(f.out_fd)); /* held: the new image has not run */
	struct diag_probe_def first = {.target = "first_call", .value = "$arg1",
				       .event = DIAG_EVENT_CALL, .cookie = (void *)1};
	r = diag_engine_probe_add(e, pid, &first, &err);
	CHECK_EQ_INT(r, 0);
	if (r < 0)
		fprintf(stderr, "probe_add first_call: %s\n", err.msg);
	/* libc is not mapped yet at the exec stop: pending until the dynamic linker loads it */
	struct diag_probe_def lib = {.target = "libc.so.6:printf", .event = DIAG_EVENT_CALL,
				     .cookie = (void *)2};
	r = diag_engine_probe_add(e, pid, &lib, &err);
	CHECK_EQ_INT(r, 0);
	if (r < 0)
		fprintf(stderr, "probe_add printf: %s\n", err.msg);
	struct diag_probe_info info;
	CHECK_EQ_INT(diag_engine_probe_info(e, pid, (void *)1, &info), 0);
	CHECK_EQ_INT(info.state, DIAG_PROBE_APPLIED);
	CHECK_EQ_INT(info.naddrs, 1);
	CHECK_EQ_INT(info.fast, !no_fast);
	CHECK(!has_output(f.out_fd)); /* still held after placing */
	CHECK_EQ_INT(diag_engine_release(e, pid), 0);
	CHECK_EQ_INT(diag_engine_release(e, pid), 0); /* not held any more: left alone */
	serve_exit(e, pid);
	CHECK_EQ_INT(t.hits[1], 1);
	CHECK_EQ_INT(t.first_value, 1); /* first_call(argc) */
	CHECK_EQ_INT(t.hits[2], 1); /* "ran 1 2" is printed with printf */
	expect_line(&f, "ran 1 2");
	diag_engine_free(e);
}

/* Seized with an interrupt queued, at the gate: what the kernel does (raw ptrace, no engine). */
static void test_kernel_bound(struct diag_execgate *g, const char *copy, const char *bad)
{
	struct fixture f;
	char *argv[] = {(char *)copy, NULL};
	CHECK_EQ_INT(fixture_start(&f, copy, argv), 0);
	struct diag_execgate_event ev;
	CHECK(gate_wait(g, f.pid, &ev, WAIT_MS));
	CHECK_EQ_INT(ptrace(PTRACE_SEIZE, f.pid, 0, PTRACE_O_TRACEEXEC), 0);
	CHECK_EQ_INT(ptrace(PTRACE_INTERRUPT, f.pid, 0, 0), 0);
	diag_execgate_allow(g, &ev);
	int st = 0;
	CHECK_EQ_INT(waitpid(f.pid, &st, __WALL), f.pid);
	CHECK_EQ_INT(st >> 8, SIGTRAP | (PTRACE_EVENT_EXEC << 8)); /* the exec stop comes first */
	ptrace(PTRACE_CONT, f.pid, 0, 0);
	CHECK_EQ_INT(waitpid(f.pid, &st, __WALL), f.pid);
	CHECK(WIFEXITED(st)); /* no interrupt stop after it: the exec stop cleared it */
	CHECK_EQ_INT(WEXITSTATUS(st), 0);
	close(f.in_fd);
	close(f.out_fd);

	char *bargv[] = {(char *)bad, NULL};
	CHECK_EQ_INT(fixture_start(&f, bad, bargv), 0);
	CHECK(gate_wait(g, f.pid, &ev, WAIT_MS));
	CHECK_EQ_INT(ptrace(PTRACE_SEIZE, f.pid, 0, PTRACE_O_TRACEEXEC), 0);
	CHECK_EQ_INT(ptrace(PTRACE_INTERRUPT, f.pid, 0, 0), 0);
	diag_execgate_allow(g, &ev);
	CHECK_EQ_INT(waitpid(f.pid, &st, __WALL), f.pid);
	CHECK_EQ_INT(st >> 8, SIGTRAP | (PTRACE_EVENT_STOP << 8)); /* back in user mode */
	ptrace(PTRACE_DETACH, f.pid, 0, 0);
	CHECK_EQ_INT(fixture_reap(&f), 127); /* fixture_start's child: execv failed */
}

/* A child that execs path and exits 100 + errno when the exec fails. */
static pid_t start_exec(const char *path)
{
	pid_t c = fork();
	if (c == 0) {
		char *argv[] = {(char *)path, NULL};
		execv(path, argv);
		_exit(100 + errno);
	}
	return c;
}

static int reap(pid_t c)
{
	int st = 0;
	if (waitpid(c, &st, 0) != c)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 1000 + WTERMSIG(st);
}

static void expect_nothing_traced(struct diag_engine *e)
{
	pid_t pids[4];
	CHECK_EQ_INT(diag_engine_pids(e, pids, 4), 0);
	struct diag_engine_stats st;
	diag_engine_get_stats(e, &st);
	CHECK_EQ_INT(st.threads, 0);
}

/* An exec of path that fails with errno want after the gate. */
static void test_exec_fails(struct diag_engine *e, struct diag_execgate *g, const char *path,
			    int want)
{
	pid_t c = start_exec(path);
	struct allow_ctx a = {.g = g};
	CHECK(gate_wait(g, c, &a.ev, WAIT_MS));
	struct diag_error err = {0};
	pid_t pid = 0;
	int r = diag_engine_adopt_exec(e, a.ev.tid, allow, &a, &pid, &err);
	CHECK_EQ_INT(r, -want);
	CHECK_EQ_INT(a.calls, 1);
	CHECK_CONTAINS(err.msg, "its exec failed");
	CHECK_CONTAINS(err.msg, strerror(want));
	char tid[32];
	snprintf(tid, sizeof(tid), "tid %d", (int)c);
	CHECK_CONTAINS(err.msg, tid);
	expect_nothing_traced(e);
	CHECK_EQ_INT(reap(c), 100 + want); /* it got its execve error */
}

static void test_killed(struct diag_engine *e, struct diag_execgate *g, const char *copy)
{
	/* after the seize, while its exec still waits (allow kills it first) */
	pid_t c = start_exec(copy);
	struct allow_ctx a = {.g = g, .kill_first = 1};
	CHECK(gate_wait(g, c, &a.ev, WAIT_MS));
	struct diag_error err = {0};
	pid_t pid = 0;
	CHECK_EQ_INT(diag_engine_adopt_exec(e, a.ev.tid, allow, &a, &pid, &err), -DIAG_E_GONE);
	CHECK_CONTAINS(err.msg, "killed (signal 9) before its exec completed");
	expect_nothing_traced(e);
	int st;
	CHECK_EQ_INT(waitpid(c, &st, WNOHANG), -1); /* reaped by the adopt: we traced it */

	/* before the seize: a zombie at the time of the adopt */
	c = start_exec(copy);
	a = (struct allow_ctx){.g = g};
	CHECK(gate_wait(g, c, &a.ev, WAIT_MS));
	kill(c, SIGKILL);
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	CHECK_EQ_INT(waitid(P_PID, (id_t)c, &si, WEXITED | WNOWAIT), 0); /* dead, not reaped */
	CHECK_EQ_INT(diag_engine_adopt_exec(e, a.ev.tid, allow, &a, &pid, &err), -ESRCH);
	CHECK_EQ_INT(a.calls, 1);
	CHECK_CONTAINS(err.msg, "the thread is gone");
	expect_nothing_traced(e);
	CHECK_EQ_INT(reap(c), 1000 + SIGKILL);
}

/* A child that execs path quietly once a byte arrives on fd (exit 100 + errno if it fails). */
static pid_t start_on_go(const char *path, int fd)
{
	pid_t c = fork();
	if (c == 0) {
		char b;
		if (read(fd, &b, 1) != 1)
			_exit(90);
		char *argv[] = {(char *)path, (char *)"quiet", NULL};
		execv(path, argv);
		_exit(100 + errno);
	}
	return c;
}

/* Traced by another tracer (a helper process) when it execs. */
static void test_traced_elsewhere(struct diag_engine *e, struct diag_execgate *g,
				  const char *copy)
{
	int go[2], ready[2];
	CHECK_EQ_INT(pipe(go), 0);
	CHECK_EQ_INT(pipe(ready), 0);
	pid_t c = start_on_go(copy, go[0]);
	pid_t tracer = fork();
	if (tracer == 0) {
		if (ptrace(PTRACE_SEIZE, c, 0, 0) < 0 || write(ready[1], "s", 1) != 1)
			_exit(91);
		for (;;) { /* pass every stop on until it exits */
			int st;
			if (waitpid(c, &st, __WALL) != c || WIFEXITED(st) || WIFSIGNALED(st))
				_exit(0);
			ptrace(PTRACE_CONT, c, 0, (void *)(long)((st >> 16) ? 0 : WSTOPSIG(st)));
		}
	}
	char b;
	CHECK_EQ_INT(read(ready[0], &b, 1), 1);
	CHECK_EQ_INT(write(go[1], "g", 1), 1);
	struct allow_ctx a = {.g = g};
	CHECK(gate_wait(g, c, &a.ev, WAIT_MS));
	struct diag_error err = {0};
	pid_t pid = 0;
	CHECK_EQ_INT(diag_engine_adopt_exec(e, a.ev.tid, allow, &a, &pid, &err), -EPERM);
	char want[128];
	snprintf(want, sizeof(want), "tid %d: cannot attach at its exec: already traced by pid %d",
		 (int)c, (int)tracer);
	CHECK_CONTAINS(err.msg, want);
	expect_nothing_traced(e);
	CHECK_EQ_INT(reap(c), 0); /* it ran, first_call once */
	CHECK_EQ_INT(reap(tracer), 0);
	close(go[0]);
	close(go[1]);
	close(ready[0]);
	close(ready[1]);
}

/* A process this engine traces already (attached, then it execs the gated file). */
static void test_traced_here(struct diag_execgate *g, const char *copy)
{
	struct tally t = {0};
	struct diag_engine *e = engine(&t, false);
	int go[2];
	CHECK_EQ_INT(pipe(go), 0);
	pid_t c = start_on_go(copy, go[0]);
	struct diag_error err = {0};
	CHECK_EQ_INT(diag_engine_attach(e, c, &err), 0);
	CHECK_EQ_INT(write(go[1], "g", 1), 1);
	struct allow_ctx a = {.g = g};
	int64_t end = diag_clock_mono_ms() + WAIT_MS;
	bool got = false;
	while (!got && diag_clock_mono_ms() < end) { /* serve it until it reaches the gate */
		diag_engine_dispatch(e);
		got = gate_wait(g, c, &a.ev, 20);
	}
	CHECK(got);
	pid_t pid = 0;
	t.pid = c;
	int r = diag_engine_adopt_exec(e, a.ev.tid, allow, &a, &pid, &err);
	CHECK_EQ_INT(r, 0);
	if (r < 0)
		fprintf(stderr, "adopt of a traced process: %s\n", err.msg);
	CHECK_EQ_INT(pid, c);
	CHECK_EQ_INT(a.calls, 1);
	struct diag_probe_def first = {.target = "first_call", .value = "$arg1",
				       .event = DIAG_EVENT_CALL, .cookie = (void *)1};
	CHECK_EQ_INT(diag_engine_probe_add(e, c, &first, &err), 0); /* held: before it runs */
	CHECK_EQ_INT(diag_engine_release(e, c), 0);
	serve_exit(e, c);
	CHECK_EQ_INT(t.hits[1], 1);
	CHECK_EQ_INT(t.first_value, 2); /* first_call(argc), argv {path, "quiet"} */
	diag_engine_free(e);
	close(go[0]);
	close(go[1]);
}

static void *exec_thread(void *path)
{
	char *argv[] = {path, NULL};
	execv(path, argv);
	_exit(100 + errno);
}

/* A thread that is not the leader execs: the exec stop comes under the leader's id, the
 * process is adopted under it, and is probed like any other. */
static void test_thread_exec(struct diag_execgate *g, const char *copy)
{
	struct tally t = {0};
	struct diag_engine *e = engine(&t, false);
	int out[2];
	CHECK_EQ_INT(pipe(out), 0);
	pid_t c = fork();
	if (c == 0) {
		dup2(out[1], 1);
		pthread_t th;
		if (pthread_create(&th, NULL, exec_thread, (void *)copy) != 0)
			_exit(91);
		pthread_join(th, NULL); /* never returns: the exec ends this thread */
		_exit(92);
	}
	close(out[1]);
	struct allow_ctx a = {.g = g};
	CHECK(gate_wait(g, 0, &a.ev, WAIT_MS));
	CHECK(a.ev.tid != c); /* the second thread's exec */
	struct diag_error err = {0};
	pid_t pid = 0;
	int r = diag_engine_adopt_exec(e, a.ev.tid, allow, &a, &pid, &err);
	CHECK_EQ_INT(r, 0);
	if (r < 0)
		fprintf(stderr, "adopt of thread %d: %s\n", (int)a.ev.tid, err.msg);
	CHECK_EQ_INT(pid, c);
	t.pid = c;
	struct diag_probe_def first = {.target = "first_call", .value = "$arg1",
				       .event = DIAG_EVENT_CALL, .cookie = (void *)1};
	CHECK_EQ_INT(diag_engine_probe_add(e, c, &first, &err), 0);
	CHECK_EQ_INT(diag_engine_release(e, c), 0);
	serve_exit(e, c);
	CHECK_EQ_INT(t.hits[1], 1);
	char buf[64] = "";
	CHECK(read(out[0], buf, sizeof(buf) - 1) > 0);
	CHECK_EQ_STR(buf, "ran 1 2\n");
	close(out[0]);
	diag_engine_free(e);
}

/* Started, adopted and held with an entry probe on first_call (no value): its pid. */
static pid_t adopt_probed(struct diag_engine *e, struct diag_execgate *g, struct fixture *f,
			  const char *copy)
{
	struct diag_error err = {0};
	pid_t pid = 0;
	CHECK_EQ_INT(start_adopt(e, g, f, copy, NULL, &pid, &err), 0);
	struct diag_probe_def first = {.target = "first_call", .event = DIAG_EVENT_CALL,
				       .cookie = (void *)1};
	CHECK_EQ_INT(diag_engine_probe_add(e, pid, &first, &err), 0);
	return pid;
}

/* Detach, and free, of a held process: it runs on unprobed, its result right. */
static void test_detach_held(struct diag_execgate *g, const char *copy)
{
	for (int how = 0; how < 2; how++) {
		struct tally t = {0};
		struct diag_engine *e = engine(&t, how == 1);
		struct fixture f;
		struct diag_error err = {0};
		pid_t pid = adopt_probed(e, g, &f, copy);
		if (how == 0)
			CHECK_EQ_INT(diag_engine_detach(e, pid, &err), 0);
		diag_engine_free(e); /* how 1: free detaches it */
		CHECK_EQ_INT(t.hits[1], 0);
		char line[64];
		CHECK_EQ_INT(fixture_line_wait(&f, line, sizeof(line)), 1);
		CHECK_EQ_STR(line, "ran 1 2");
		CHECK_EQ_INT(fixture_reap(&f), 0);
	}
}

/* A held process killed (SIGKILL): the dispatch drops it; release then leaves it alone. */
static void test_held_killed(struct diag_execgate *g, const char *copy)
{
	struct tally t = {0};
	struct diag_engine *e = engine(&t, false);
	struct fixture f;
	pid_t pid = adopt_probed(e, g, &f, copy);
	kill(pid, SIGKILL);
	serve_exit(e, pid);
	CHECK_EQ_INT(diag_engine_release(e, pid), 0);
	CHECK_EQ_INT(t.hits[1], 0);
	expect_nothing_traced(e);
	close(f.in_fd);
	close(f.out_fd);
	diag_engine_free(e);
}

/* kill -9 of the daemon (a child process here) while the process is held, probed. */
static void test_daemon_killed(const char *copy, bool no_fast)
{
	int ready[2], held[2];
	CHECK_EQ_INT(pipe(ready), 0);
	CHECK_EQ_INT(pipe(held), 0);
	pid_t d = fork();
	if (d == 0) {
		struct tally t = {0};
		struct diag_engine *e = engine(&t, no_fast);
		struct diag_execgate *g;
		struct allow_ctx a;
		if (diag_execgate_open(&g, NULL) < 0 || diag_execgate_add(g, copy, NULL) < 0 ||
		    write(ready[1], "r", 1) != 1)
			_exit(1);
		a = (struct allow_ctx){.g = g};
		if (!gate_wait(g, 0, &a.ev, WAIT_MS))
			_exit(2);
		struct diag_error err = {0};
		pid_t pid;
		struct diag_probe_def first = {.target = "first_call", .value = "$arg1",
					       .event = DIAG_EVENT_CALL, .cookie = (void *)1};
		if (diag_engine_adopt_exec(e, a.ev.tid, allow, &a, &pid, &err) < 0 ||
		    diag_engine_probe_add(e, pid, &first, &err) < 0) {
			fprintf(stderr, "daemon: %s\n", err.msg);
			_exit(3);
		}
		if (write(held[1], "h", 1) != 1)
			_exit(4);
		for (;;)
			pause(); /* held until killed */
	}
	char b;
	CHECK_EQ_INT(read(ready[0], &b, 1), 1);
	struct fixture f;
	char *argv[] = {(char *)copy, NULL};
	CHECK_EQ_INT(fixture_start(&f, copy, argv), 0);
	CHECK_EQ_INT(read(held[0], &b, 1), 1);
	CHECK(!has_output(f.out_fd)); /* held */
	kill(d, SIGKILL);
	CHECK_EQ_INT(reap(d), 1000 + SIGKILL);
	char line[64] = "";
	struct pollfd p = {.fd = f.out_fd, .events = POLLIN};
	CHECK_EQ_INT(poll(&p, 1, WAIT_MS), 1); /* it runs on: never stuck */
	CHECK_EQ_INT(fixture_line_wait(&f, line, sizeof(line)), 1);
	CHECK_EQ_STR(line, "ran 1 2");
	CHECK_EQ_INT(fixture_reap(&f), 0);
	close(ready[0]);
	close(ready[1]);
	close(held[0]);
	close(held[1]);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0 || chmod(path, 0755) < 0) {
		fprintf(stderr, "cannot write %s\n", path);
		exit(2);
	}
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/diag-adopt-XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 2;
	}
	char journal[4200];
	snprintf(journal, sizeof(journal), "%s/journal", dir); /* the killed daemon's stays */
	setenv("DIAG_JOURNAL_DIR", journal, 1);
	struct diag_execgate *g;
	struct diag_error err = {0};
	if (diag_execgate_open(&g, &err) < 0) {
		fprintf(stderr, "FAIL: the exec gate needs root (CAP_SYS_ADMIN): %s\n", err.msg);
		return 1;
	}
	static const char *const builds[][2] = {
		{"O0", "pie"}, {"O0", "nopie"}, {"O2", "pie"}, {"O2", "nopie"}};
	char copy[4200], notelf[4200], script[4200];
	int loops = getenv("ADOPT_LOOPS") ? atoi(getenv("ADOPT_LOOPS")) : 1;
	for (size_t i = 0; i < 4 * (size_t)loops; i++) {
		snprintf(copy, sizeof(copy), "%s/first-%s-%s", dir, builds[i % 4][0], builds[i % 4][1]);
		copy_file(fixture_path("first", builds[i % 4][0], builds[i % 4][1]), copy);
		CHECK_EQ_INT(diag_execgate_add(g, copy, &err), 0);
		for (int no_fast = 0; no_fast < 2; no_fast++) {
			fprintf(stderr, "probe at exec: %s %s\n", copy, no_fast ? "int3" : "jump");
			test_probe_at_exec(g, copy, no_fast);
		}
	}
	snprintf(notelf, sizeof(notelf), "%s/notelf", dir);
	write_file(notelf, "\x7f" "ELF truncated\n");
	snprintf(script, sizeof(script), "%s/script", dir);
	write_file(script, "#!/nonexistent/interpreter\necho never\n");
	CHECK_EQ_INT(diag_execgate_add(g, notelf, &err), 0);
	CHECK_EQ_INT(diag_execgate_add(g, script, &err), 0);
	test_kernel_bound(g, copy, notelf);

	struct tally t = {0};
	struct diag_engine *e = engine(&t, false);
	fprintf(stderr, "%s\n", "test_exec_fails");
	test_exec_fails(e, g, notelf, ENOEXEC);
	test_exec_fails(e, g, script, ENOENT);
	fprintf(stderr, "%s\n", "test_killed");
	test_killed(e, g, copy);
	fprintf(stderr, "%s\n", "test_traced_elsewhere");
	test_traced_elsewhere(e, g, copy);
	diag_engine_free(e);
	fprintf(stderr, "%s\n", "test_traced_here");
	test_traced_here(g, copy);
	fprintf(stderr, "%s\n", "test_thread_exec");
	test_thread_exec(g, copy);
	fprintf(stderr, "%s\n", "test_detach_held");
	test_detach_held(g, copy);
	fprintf(stderr, "%s\n", "test_held_killed");
	test_held_killed(g, copy);
	diag_execgate_close(g);
	fprintf(stderr, "%s\n", "test_daemon_killed");
	test_daemon_killed(copy, true);
	test_daemon_killed(copy, false);

	char cmd[4200 + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	return CHECK_DONE();
}
