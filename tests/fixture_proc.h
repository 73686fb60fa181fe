/* fixture_proc: start a fixture program with pipes, read its lines, let it go, reap it.
 * Fixtures print "ready <pid>" and wait for a line on stdin (see tests/fixtures/work.c). */
#ifndef DIAG_TESTS_FIXTURE_PROC_H
#define DIAG_TESTS_FIXTURE_PROC_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct fixture {
	pid_t pid;
	int in_fd;   /* its stdin */
	int out_fd;  /* its stdout (non-blocking) */
	char buf[8192];
	size_t len;
};

/* Path of a fixture build, e.g. fixture_path("work", "O2", "pie"). */
static inline const char *fixture_path(const char *name, const char *opt, const char *pie)
{
	static char path[4096];
	const char *dir = getenv("DIAG_FIXTURE_DIR");
	if (!dir) {
		fprintf(stderr, "DIAG_FIXTURE_DIR is not set (run through ctest)\n");
		exit(2);
	}
	snprintf(path, sizeof(path), "%s/%s-%s-%s", dir, name, opt, pie);
	return path;
}

static inline int fixture_start(struct fixture *f, const char *path, char *const argv[])
{
	int in[2], out[2];
	if (pipe(in) < 0 || pipe(out) < 0)
		return -errno;
	f->pid = fork();
	if (f->pid < 0)
		return -errno;
	if (f->pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[1]);
		close(out[0]);
		execv(path, argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	f->in_fd = in[1];
	f->out_fd = out[0];
	f->len = 0;
	fcntl(f->out_fd, F_SETFL, O_NONBLOCK);
	return 0;
}

/* Take one complete line if buffered (without '\n'); returns 1, 0 if none, -1 at EOF. */
static inline int fixture_line(struct fixture *f, char *line, size_t cap)
{
	for (;;) {
		char *nl = memchr(f->buf, '\n', f->len);
		if (nl) {
			size_t n = (size_t)(nl - f->buf);
			snprintf(line, cap, "%.*s", (int)n, f->buf);
			memmove(f->buf, nl + 1, f->len - n - 1);
			f->len -= n + 1;
			return 1;
		}
		ssize_t r = read(f->out_fd, f->buf + f->len, sizeof(f->buf) - 1 - f->len);
		if (r > 0) {
			f->len += (size_t)r;
			continue;
		}
		if (r == 0)
			return -1;
		return 0;
	}
}

/* Block until a line is available (used before any probe exists: nothing to dispatch). */
static inline int fixture_line_wait(struct fixture *f, char *line, size_t cap)
{
	for (;;) {
		int r = fixture_line(f, line, cap);
		if (r != 0)
			return r;
		fd_set fds;
		FD_ZERO(&fds);
		FD_SET(f->out_fd, &fds);
		select(f->out_fd + 1, &fds, NULL, NULL, NULL);
	}
}

static inline void fixture_go(struct fixture *f)
{
	if (write(f->in_fd, "go\n", 3) != 3)
		perror("fixture_go");
}

static inline int fixture_reap(struct fixture *f)
{
	int st = 0;
	close(f->in_fd);
	close(f->out_fd);
	if (waitpid(f->pid, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* fixture_start, then wait for its "ready <pid>" line; 0, or -1 with the reason printed (the
 * process, if any, killed and reaped). */
static inline int fixture_start_ready(struct fixture *f, const char *path, char *const argv[])
{
	char line[128];
	int ready = 0;

	if (fixture_start(f, path, argv) < 0) {
		fprintf(stderr, "%s: cannot start: %s\n", path, strerror(errno));
		return -1;
	}
	if (fixture_line_wait(f, line, sizeof(line)) == 1 && sscanf(line, "ready %d", &ready) == 1 &&
	    ready == f->pid)
		return 0;
	fprintf(stderr, "%s did not print 'ready %d'\n", path, (int)f->pid);
	kill(f->pid, SIGKILL);
	fixture_reap(f);
	return -1;
}

/* Let it go, read its output to EOF (its last lines must not hit a closed pipe), reap it: its
 * exit status as fixture_reap. */
static inline int fixture_finish(struct fixture *f)
{
	char line[256];

	fixture_go(f);
	while (fixture_line_wait(f, line, sizeof(line)) > 0)
		;
	return fixture_reap(f);
}

static inline void fixture_kill(struct fixture *f)
{
	kill(f->pid, SIGKILL);
	fixture_reap(f);
}

#endif
