/* test_procwatch: the kernel's process events and the exec gate, with real processes.
 * - connector: the fork, exec and exit of a child we start are reported with its pid;
 * - exec gate: an exec of a gated file waits until allowed; a thread seized while it waits
 *   stops at PTRACE_EVENT_EXEC before its new image has run (its first write is not out yet);
 *   a file not gated, or no longer gated, is not held; when the gate's owner dies (kill -9)
 *   the exec it held goes on.
 * Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN); fails loudly without it. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "fixture_proc.h"
#include "gate.h"
#include "procwatch/connector.h"
#include "procwatch/execgate.h"
#include "util/clock.h"

#define WAIT_MS 5000

/* Waits (bounded) for an event of kind on pid (and thread tid, 0: any) from the connector. */
static bool procev_wait(struct diag_procev *w, enum diag_procev_kind kind, pid_t pid, pid_t tid,
			struct diag_procev_event *found)
{
	int64_t end = diag_clock_mono_ms() + WAIT_MS;
	while (diag_clock_mono_ms() < end) {
		struct pollfd p = {.fd = diag_procev_fd(w), .events = POLLIN};
		poll(&p, 1, 100);
		struct diag_procev_event ev[64];
		int n = diag_procev_read(w, ev, 64);
		for (int i = 0; i < n; i++)
			if (ev[i].kind == kind && ev[i].pid == pid && (!tid || ev[i].tid == tid)) {
				*found = ev[i];
				return true;
			}
	}
	return false;
}

static void test_connector(const char *fixture)
{
	struct diag_procev *w;
	struct diag_error err = {0};
	int r = diag_procev_open(&w, &err);
	if (r < 0) {
		fprintf(stderr, "FAIL: %s\n", err.msg);
		exit(1);
	}
	struct fixture f;
	char *argv[] = {(char *)fixture, NULL};
	CHECK_EQ_INT(fixture_start_ready(&f, fixture, argv), 0);
	struct diag_procev_event ev;
	CHECK(procev_wait(w, DIAG_PROCEV_EXEC, f.pid, 0, &ev));
	CHECK_EQ_INT(ev.tid, f.pid);
	fixture_go(&f);
	/* its threads' exits first, then the leader's: the process's */
	CHECK(procev_wait(w, DIAG_PROCEV_EXIT, f.pid, f.pid, &ev));
	fixture_reap(&f);

	/* A fork is reported with the child and its parent. */
	pid_t c = fork();
	if (c == 0)
		_exit(0);
	CHECK(procev_wait(w, DIAG_PROCEV_FORK, c, c, &ev));
	CHECK_EQ_INT(ev.parent, getpid());
	waitpid(c, NULL, 0);
	diag_procev_close(w);
}

static bool has_output(const struct fixture *f)
{
	struct pollfd p = {.fd = f->out_fd, .events = POLLIN};
	return poll(&p, 1, 0) > 0;
}

static void test_gate_holds_and_seize_is_early(struct diag_execgate *g, const char *copy)
{
	struct stat st;
	stat(copy, &st);
	struct fixture f;
	char *argv[] = {(char *)copy, NULL};
	CHECK_EQ_INT(fixture_start(&f, copy, argv), 0);
	struct diag_execgate_event ev;
	bool held = gate_wait(g, f.pid, &ev, WAIT_MS);
	CHECK(held);
	if (!held) {
		fixture_kill(&f);
		return;
	}
	CHECK_EQ_INT(ev.dev, st.st_dev);
	CHECK_EQ_INT(ev.ino, st.st_ino);
	CHECK(!has_output(&f)); /* still waiting at the gate */
	CHECK_EQ_INT(ptrace(PTRACE_SEIZE, f.pid, 0, PTRACE_O_TRACEEXEC), 0);
	CHECK_EQ_INT(diag_execgate_allow(g, &ev), 0);
	int status = 0;
	CHECK_EQ_INT(waitpid(f.pid, &status, __WALL), f.pid);
	CHECK(WIFSTOPPED(status));
	CHECK_EQ_INT(status >> 8, SIGTRAP | (PTRACE_EVENT_EXEC << 8));
	CHECK(!has_output(&f)); /* the new image has not run: its "ready" line is not out */
	ptrace(PTRACE_DETACH, f.pid, 0, 0);
	char line[256];
	CHECK(fixture_line_wait(&f, line, sizeof(line)) >= 0);
	CHECK(strncmp(line, "ready", 5) == 0);
	fixture_go(&f);
	fixture_reap(&f);
}

/* An exec that must not be held: the child prints ready, and no event for it arrives. */
static void check_not_held(struct diag_execgate *g, const char *path)
{
	struct fixture f;
	char *argv[] = {(char *)path, NULL};
	CHECK_EQ_INT(fixture_start(&f, path, argv), 0);
	char line[256];
	CHECK(fixture_line_wait(&f, line, sizeof(line)) >= 0);
	struct diag_execgate_event ev;
	CHECK(!gate_wait(g, f.pid, &ev, 0));
	fixture_go(&f);
	fixture_reap(&f);
}

/* The gate's owner dies with an exec held: the kernel lets it go. */
static void test_owner_death(const char *copy)
{
	int ready[2];
	CHECK_EQ_INT(pipe(ready), 0);
	pid_t owner = fork();
	if (owner == 0) {
		struct diag_execgate *g;
		if (diag_execgate_open(&g, NULL) < 0 || diag_execgate_add(g, copy, NULL) < 0)
			_exit(1);
		if (write(ready[1], "r", 1) != 1)
			_exit(1);
		for (;;)
			pause(); /* never answers */
	}
	char b;
	CHECK_EQ_INT(read(ready[0], &b, 1), 1);
	struct fixture f;
	char *argv[] = {(char *)copy, NULL};
	CHECK_EQ_INT(fixture_start(&f, copy, argv), 0);
	/* Held: no line for a while (bounded: this is the gate working, not a synchronisation). */
	struct pollfd p = {.fd = f.out_fd, .events = POLLIN};
	CHECK_EQ_INT(poll(&p, 1, 300), 0);
	kill(owner, SIGKILL);
	waitpid(owner, NULL, 0);
	char line[256];
	CHECK(fixture_line_wait(&f, line, sizeof(line)) >= 0);
	CHECK(strncmp(line, "ready", 5) == 0);
	fixture_go(&f);
	fixture_reap(&f);
	close(ready[0]);
	close(ready[1]);
}

int main(void)
{
	const char *fixture = fixture_path("work", "O0", "pie");
	char dir[] = "/tmp/test_procwatch.XXXXXX";
	if (!mkdtemp(dir))
		return 2;
	char gated[4200], other[4200];
	snprintf(gated, sizeof(gated), "%s/gated", dir);
	snprintf(other, sizeof(other), "%s/other", dir);
	copy_file(fixture, gated);
	copy_file(fixture, other);

	test_connector(fixture);

	struct diag_execgate *g;
	struct diag_error err = {0};
	if (diag_execgate_open(&g, &err) < 0) {
		fprintf(stderr, "FAIL: %s\n", err.msg);
		return 1;
	}
	CHECK(diag_execgate_add(g, "/nonexistent/x", &err) < 0);
	CHECK_CONTAINS(err.msg, "/nonexistent/x: No such file");
	CHECK_EQ_INT(diag_execgate_add(g, gated, &err), 0);
	test_gate_holds_and_seize_is_early(g, gated);
	check_not_held(g, other);
	CHECK_EQ_INT(diag_execgate_remove(g, gated, &err), 0);
	check_not_held(g, gated);
	diag_execgate_close(g);

	test_owner_death(gated);

	unlink(gated);
	unlink(other);
	rmdir(dir);
	return CHECK_DONE();
}
