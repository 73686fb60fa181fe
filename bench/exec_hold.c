/* exec_hold: what adopting new processes at their exec costs (issue 11; docs/performance.md,
 * "Processes started after the probe").
 *  1. hold: N processes of FIXTURE (tests/fixtures/first.c) started one after another; for
 *     each, the time from reading its gate event to diag_engine_release, with one entry probe
 *     (first_call, a jump) placed: the first process (the file indexed then) apart, the others
 *     (already indexed) as p50/p90/max. Every hit must arrive (checked).
 *  2. runner: a job-runner process starting short processes of FIXTURE back to back, and then
 *     paced at RATE per second, with nothing gated and then with every one adopted and probed:
 *     jobs per second each way and the loss.
 * usage: exec_hold FIXTURE [N=200] [RATE=200]   (root: fanotify, ptrace) */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"
#include "procwatch/execgate.h"
#include "util/clock.h"

extern char **environ;

struct daemon {
	struct diag_engine *e;
	struct diag_execgate *g;
	uint64_t hits, adopted, failed;
	uint64_t *hold_ns; /* per adopted process, when collected */
	size_t nhold, cap;
};

static void on_hit(void *ctx, const struct diag_engine_hit *h)
{
	(void)h;
	((struct daemon *)ctx)->hits++;
}

struct allow_ctx {
	struct diag_execgate *g;
	struct diag_execgate_event *ev;
};

static int allow(void *arg)
{
	struct allow_ctx *a = arg;
	return diag_execgate_allow(a->g, a->ev);
}

/* Every waiting exec adopted, probed, released. */
static void serve_gate(struct daemon *d)
{
	struct diag_execgate_event ev[16];
	int n = diag_execgate_read(d->g, ev, 16);
	for (int i = 0; i < n; i++) {
		uint64_t t0 = (uint64_t)diag_clock_mono_ns();
		struct allow_ctx a = {d->g, &ev[i]};
		struct diag_error err = {0};
		pid_t pid;
		struct diag_probe_def def = {.target = "first_call", .value = "$arg1",
					     .event = DIAG_EVENT_CALL, .cookie = (void *)1};
		if (diag_engine_adopt_exec(d->e, ev[i].tid, allow, &a, &pid, &err) < 0) {
			fprintf(stderr, "adopt: %s\n", err.msg);
			d->failed++;
			continue;
		}
		if (diag_engine_probe_add(d->e, pid, &def, &err) < 0) {
			fprintf(stderr, "probe: %s\n", err.msg);
			d->failed++;
		}
		diag_engine_release(d->e, pid);
		uint64_t t1 = (uint64_t)diag_clock_mono_ns();
		d->adopted++;
		if (d->nhold < d->cap)
			d->hold_ns[d->nhold++] = t1 - t0;
	}
}

static void serve(struct daemon *d, int ms)
{
	struct pollfd p[2] = {{diag_execgate_fd(d->g), POLLIN, 0}, {diag_engine_fd(d->e), POLLIN, 0}};
	poll(p, 2, ms);
	serve_gate(d);
	diag_engine_dispatch(d->e);
}

static pid_t spawn(const char *path)
{
	char *argv[] = {(char *)path, (char *)"quiet", NULL};
	pid_t pid;
	return posix_spawn(&pid, path, NULL, NULL, argv, environ) == 0 ? pid : -1;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The runner (a child): n jobs back to back (rate 0) or paced at rate per second; writes the
 * elapsed ns and the failures to fd. */
static void runner(const char *path, int n, int rate, int fd)
{
	uint64_t start = (uint64_t)diag_clock_mono_ns(), bad = 0;
	for (int i = 0; i < n; i++) {
		if (rate) {
			uint64_t due = start + (uint64_t)i * 1000000000ULL / (uint64_t)rate;
			while ((uint64_t)diag_clock_mono_ns() < due) {
				struct timespec ts = {0, 100000};
				nanosleep(&ts, NULL); /* pacing, not synchronisation */
			}
		}
		int st = 0;
		pid_t c = spawn(path);
		if (c < 0 || waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			bad++;
	}
	uint64_t out[2] = {(uint64_t)diag_clock_mono_ns() - start, bad};
	if (write(fd, out, sizeof(out)) != sizeof(out))
		_exit(1);
	_exit(0);
}

/* Run the runner while the daemon serves; returns jobs per second. */
static double run_jobs(struct daemon *d, const char *path, int n, int rate)
{
	int fds[2];
	if (pipe(fds) < 0)
		exit(2);
	pid_t r = fork();
	if (r == 0)
		runner(path, n, rate, fds[1]);
	close(fds[1]);
	uint64_t out[2] = {0, 0};
	for (;;) {
		struct pollfd p[3] = {{diag_execgate_fd(d->g), POLLIN, 0},
				      {diag_engine_fd(d->e), POLLIN, 0}, {fds[0], POLLIN, 0}};
		poll(p, 3, 100);
		serve_gate(d);
		diag_engine_dispatch(d->e);
		if (p[2].revents) {
			if (read(fds[0], out, sizeof(out)) != sizeof(out))
				fprintf(stderr, "runner died\n");
			break;
		}
	}
	waitpid(r, NULL, 0);
	close(fds[0]);
	if (out[1])
		fprintf(stderr, "runner: %llu jobs failed\n", (unsigned long long)out[1]);
	return out[0] ? (double)n * 1e9 / (double)out[0] : 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: exec_hold FIXTURE [N] [RATE]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	int n = argc > 2 ? atoi(argv[2]) : 200, rate = argc > 3 ? atoi(argv[3]) : 200;
	char dir[] = "/tmp/exec-hold-XXXXXX", copy[64], cmd[256];
	if (!mkdtemp(dir))
		return 2;
	snprintf(copy, sizeof(copy), "%s/first", dir);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", argv[1], copy);
	if (system(cmd) != 0)
		return 2;
	struct daemon d = {.cap = (size_t)n * 4};
	d.hold_ns = calloc(d.cap, sizeof(uint64_t));
	struct diag_engine_callbacks cb = {.on_hit = on_hit, .ctx = &d};
	struct diag_error err = {0};
	if (diag_engine_new(&cb, &d.e) < 0 || diag_execgate_open(&d.g, &err) < 0) {
		fprintf(stderr, "exec_hold: %s (root needed)\n", err.msg);
		return 1;
	}

	/* runner, nothing gated */
	double plain = run_jobs(&d, copy, n, 0);
	fprintf(stderr, "plain %.0f jobs/s\n", plain);
	double plain_paced = run_jobs(&d, copy, n, rate);
	if (diag_execgate_add(d.g, copy, &err) < 0) {
		fprintf(stderr, "exec_hold: %s\n", err.msg);
		return 1;
	}

	/* 1: hold time, one process at a time */
	for (int i = 0; i < n; i++) {
		/* fork, not posix_spawn: a vfork parent waits for its child's exec, which waits
		 * for us at the gate */
		pid_t c = fork();
		if (c == 0) {
			char *cargv[] = {copy, (char *)"quiet", NULL};
			execv(copy, cargv);
			_exit(127);
		}
		while (diag_engine_attached(d.e, c) || d.adopted + d.failed < (uint64_t)i + 1)
			serve(&d, 100);
		waitpid(c, NULL, 0);
	}
	uint64_t first = d.hold_ns[0], hits1 = d.hits;
	qsort(d.hold_ns + 1, d.nhold - 1, sizeof(uint64_t), cmp_u64);
	size_t m = d.nhold - 1;
	printf("hold (gate event -> release, 1 jump probe placed), %d processes of %s:\n", n,
	       argv[1]);
	printf("  first (file indexed then): %.3f ms\n", (double)first / 1e6);
	printf("  already indexed: p50 %.3f ms  p90 %.3f ms  max %.3f ms\n",
	       (double)d.hold_ns[1 + m / 2] / 1e6, (double)d.hold_ns[1 + m * 9 / 10] / 1e6,
	       (double)d.hold_ns[m] / 1e6);
	printf("  hits %llu of %d, failures %llu\n", (unsigned long long)hits1, n,
	       (unsigned long long)d.failed);

	/* 2: the runner, every job adopted and probed */
	d.nhold = d.cap; /* stop collecting */
	uint64_t h0 = d.hits;
	double probed = run_jobs(&d, copy, n, 0);
	double probed_paced = run_jobs(&d, copy, n, rate);
	printf("runner, %d short jobs (posix_spawn + wait):\n", n);
	printf("  back to back: %.0f jobs/s plain, %.0f probed: %.1f%% lost\n", plain, probed,
	       100.0 * (plain - probed) / plain);
	printf("  paced at %d/s: %.1f jobs/s plain, %.1f probed: %.1f%% lost\n", rate,
	       plain_paced, probed_paced, 100.0 * (plain_paced - probed_paced) / plain_paced);
	printf("  hits %llu of %d\n", (unsigned long long)(d.hits - h0), 2 * n);
	diag_execgate_close(d.g);
	diag_engine_free(d.e);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 && d.failed == 0 && hits1 == (uint64_t)n &&
			       d.hits - h0 == (uint64_t)(2 * n)
		       ? 0
		       : 1;
}
