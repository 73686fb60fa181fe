/* test_procwatch: the kernel's process events and the exec gate, with real processes.
 * - connector: the fork, exec and exit of a child we start are reported with its pid;
 * - exec gate: an exec of a gated file waits until allowed; a thread seized while it waits
 *   stops at PTRACE_EVENT_EXEC before its new image has run (its first write is not out yet);
 *   a file not gated, or no longer gated, is not held; when the gate's owner dies (kill -9)
 *   the exec it held goes on.
 * - marks: a file replaced under its name (a new inode renamed over it) is unmarked and the
 *   new one marked by a sync, without a new group; a sync of nothing unmarks everything;
 * - directory watch: a rename onto a watched name is reported, another name is not;
 * - library gate: an open by this process and one by `cat` are allowed at once (counted, not
 *   handed); a dlopen by another process's dynamic linker is handed over, held until allowed,
 *   with the process and the file's identity; the held open goes on when allowed.
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
#include "procwatch/dirwatch.h"
#include "procwatch/execgate.h"
#include "procwatch/libgate.h"
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

static uint64_t ino_of(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (uint64_t)st.st_ino : 0;
}

static void replace_file(const char *from, const char *path)
{
	char tmp[4300];
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	copy_file(from, tmp);
	CHECK_EQ_INT(rename(tmp, path), 0);
}

/* A sync after the file was replaced: the new inode held at its exec, the old one unmarked. */
static void test_marks_replaced(const char *fixture, const char *gated)
{
	struct diag_execgate *g;
	struct diag_error err = {0};
	const char *paths[] = {gated};
	CHECK_EQ_INT(diag_execgate_open(&g, &err), 0);
	CHECK_EQ_INT(diag_execgate_sync(g, paths, 1, &err), 0);
	uint64_t old = ino_of(gated);
	CHECK_EQ_INT((int)diag_execgate_marks(g)->n, 1);
	CHECK(diag_execgate_marks(g)->v[0].ino == old);
	replace_file(fixture, gated);
	CHECK(ino_of(gated) != old);
	CHECK_EQ_INT(diag_execgate_sync(g, paths, 1, &err), 0);
	CHECK_EQ_INT((int)diag_execgate_marks(g)->n, 1);
	CHECK(diag_execgate_marks(g)->v[0].ino == ino_of(gated));
	struct fixture f;
	char *argv[] = {(char *)gated, NULL};
	CHECK_EQ_INT(fixture_start(&f, gated, argv), 0);
	struct diag_execgate_event ev;
	CHECK(gate_wait(g, f.pid, &ev, WAIT_MS)); /* the new file is held */
	CHECK(ev.ino == ino_of(gated));
	CHECK_EQ_INT(diag_execgate_allow(g, &ev), 0);
	fixture_finish(&f);
	CHECK_EQ_INT(diag_execgate_sync(g, paths, 0, &err), 0);
	CHECK_EQ_INT((int)diag_execgate_marks(g)->n, 0);
	check_not_held(g, gated);
	const char *none[] = {"/nonexistent/y"};
	CHECK_EQ_INT(diag_execgate_sync(g, none, 1, &err), 1);
	CHECK_CONTAINS(err.msg, "/nonexistent/y: No such file");
	diag_execgate_close(g);
}

static bool dirwatch_changed(struct diag_dirwatch *w, int ms)
{
	struct pollfd p = {.fd = diag_dirwatch_fd(w), .events = POLLIN};
	return poll(&p, 1, ms) == 1 && diag_dirwatch_read(w);
}

static void test_dirwatch(const char *fixture, const char *dir, const char *gated)
{
	struct diag_dirwatch *w;
	struct diag_error err = {0};
	const char *paths[] = {gated};
	CHECK_EQ_INT(diag_dirwatch_open(&w, &err), 0);
	CHECK_EQ_INT(diag_dirwatch_sync(w, paths, 1, &err), 0);
	char unrelated[4300];
	snprintf(unrelated, sizeof(unrelated), "%s/unrelated", dir);
	copy_file(fixture, unrelated);
	/* bounded: the events for the other name arrive at once; none of them is ours */
	CHECK(!dirwatch_changed(w, 200));
	replace_file(fixture, gated);
	CHECK(dirwatch_changed(w, WAIT_MS));
	unlink(unrelated);
	diag_dirwatch_close(w);
}

/* Reads handed opens until one of process tgid arrives (others allowed at once). */
static bool libgate_wait(struct diag_libgate *g, pid_t tgid, struct diag_libgate_event *found)
{
	int64_t end = diag_clock_mono_ms() + WAIT_MS;
	while (diag_clock_mono_ms() < end) {
		struct pollfd p = {.fd = diag_libgate_fd(g), .events = POLLIN};
		poll(&p, 1, 50);
		struct diag_libgate_event ev[8];
		int n = diag_libgate_read(g, ev, 8);
		bool got = false;
		for (int i = 0; i < n; i++) {
			if (!got && ev[i].tgid == tgid) {
				*found = ev[i];
				got = true;
			} else {
				diag_libgate_allow(g, &ev[i]);
			}
		}
		if (got)
			return true;
	}
	return false;
}

static void test_libgate(const char *dir)
{
	char lib[4300];
	snprintf(lib, sizeof(lib), "%s/libdlfxgate.so", dir);
	const char *fxdir = getenv("DIAG_FIXTURE_DIR");
	char src[4300];
	snprintf(src, sizeof(src), "%s/libdlfx.so", fxdir);
	copy_file(src, lib);
	struct diag_libgate *g;
	struct diag_error err = {0};
	const char *paths[] = {lib};
	CHECK_EQ_INT(diag_libgate_open(&g, &err), 0);
	CHECK_EQ_INT(diag_libgate_sync(g, paths, 1, &err), 0);
	/* this process: the gate's own thread allows it (the main thread would deadlock) */
	int fd = open(lib, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	close(fd);
	/* cat, a grandchild (a child of ours counts as the daemon's own): not by ld.so */
	char cmd[4400];
	snprintf(cmd, sizeof(cmd), "sh -c 'cat %s > /dev/null; exit $?'", lib);
	CHECK_EQ_INT(system(cmd), 0);
	struct diag_libgate_stats st;
	diag_libgate_stats(g, &st);
	CHECK(st.self >= 1);
	CHECK(st.other >= 1);
	CHECK_EQ_INT((int)st.handed, 0);
	/* a dlopen by another process (a grandchild: sh runs dl, then true) is handed over */
	char script[4600];
	snprintf(script, sizeof(script), "%s %s; true", fixture_path("dl", "O0", "pie"), lib);
	struct fixture f;
	char *argv[] = {"sh", "-c", script, NULL};
	CHECK_EQ_INT(fixture_start(&f, "/bin/sh", argv), 0);
	char line[256];
	int dl_pid = 0;
	CHECK(fixture_line_wait(&f, line, sizeof(line)) == 1 && sscanf(line, "ready %d", &dl_pid) == 1);
	fixture_go(&f); /* its dlopen */
	struct diag_libgate_event ev;
	CHECK(libgate_wait(g, dl_pid, &ev));
	CHECK_EQ_INT(ev.tid, dl_pid);
	CHECK(ev.ino == ino_of(lib));
	CHECK(!has_output(&f)); /* held: its dlopen has not returned */
	CHECK_EQ_INT(diag_libgate_allow(g, &ev), 0);
	CHECK_EQ_INT(diag_libgate_allow(g, &ev), 0); /* twice: nothing */
	CHECK(fixture_line_wait(&f, line, sizeof(line)) == 1);
	CHECK_CONTAINS(line, "round1 ");
	kill(dl_pid, SIGKILL);
	fixture_reap(&f);
	diag_libgate_stats(g, &st);
	CHECK(st.handed >= 1);
	diag_libgate_close(g);
	unlink(lib);
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
	test_marks_replaced(fixture, gated);
	test_dirwatch(fixture, dir, gated);
	test_libgate(dir);

	unlink(gated);
	unlink(other);
	rmdir(dir);
	return CHECK_DONE();
}
