/* diagnosed_crash: what happens when the daemon itself takes a fatal signal (the contract is in
 * diagnosed_crash.h). Owns the precomputed recovery command, the fatal-signal handlers and the
 * `--recover-after` mode. The handler must never touch a target, take a lock, allocate or call
 * anything that is not async-signal-safe: it runs in a process whose memory may be corrupt.
 * The recovery itself is the engine's journal recovery, never a copy of it. */
#include "diagnosed_crash.h"
#include "util/clock.h"
#include "util/grow.h"
#include "util/procfs.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"
#include "log.h"

extern char **environ;

#define NFATAL 5
static const int fatal_sigs[NFATAL] = { SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE };
static const char *const fatal_names[NFATAL] = { "SIGSEGV", "SIGBUS", "SIGABRT", "SIGILL", "SIGFPE" };
#define ALTSTACK_SIZE (64 * 1024)
/* After the dead daemon's pidfd fired, how long its ptrace links may take to go. */
#define RECOVER_EPERM_NS (5LL * 1000000000)
#define RECOVER_RETRY_NS (10 * 1000000)

struct crash_state {
	char exe[PATH_MAX];  /* readlink /proc/self/exe, argv[0] and the fallback image */
	char pid_arg[24];
	char *argv[4];       /* exe --recover-after PID */
	char **envp;         /* a copy: setenv after arming must not move it under the handler */
	uint64_t child_mask; /* kernel sigset for the recovery: SIGTERM, SIGINT, SIGHUP blocked */
	struct sigaction prev[NFATAL];
	atomic_int fired;    /* two threads faulting at once start one recovery */
	void *altstack;      /* the handlers' stack, ours for the process's life */
};

/* The one piece of global mutable state (diagnosed_crash.h says why): set once, before the
 * handlers exist. */
static struct crash_state *crash;

/* ---- the handler: async-signal-safe only ---- */

static size_t put_str(char *buf, size_t at, size_t cap, const char *s)
{
	while (*s && at < cap)
		buf[at++] = *s++;
	return at;
}

static size_t put_num(char *buf, size_t at, size_t cap, long v)
{
	char tmp[24];
	size_t n = 0;
	unsigned long u = v < 0 ? 0UL - (unsigned long)v : (unsigned long)v;
	do
		tmp[n++] = (char)('0' + u % 10);
	while ((u /= 10) && n < sizeof(tmp));
	if (v < 0 && at < cap)
		buf[at++] = '-';
	while (n && at < cap)
		buf[at++] = tmp[--n];
	return at;
}

static int fatal_index(int sig)
{
	for (int i = 0; i < NFATAL; i++)
		if (fatal_sigs[i] == sig)
			return i;
	return -1;
}

static void say_spawned(int sig, long child)
{
	char buf[200];
	size_t n = 0, cap = sizeof(buf) - 1;
	int i = fatal_index(sig);
	n = put_str(buf, n, cap, "diagnosed: fatal signal ");
	n = put_num(buf, n, cap, sig);
	n = put_str(buf, n, cap, i >= 0 ? " (" : "");
	n = put_str(buf, n, cap, i >= 0 ? fatal_names[i] : "");
	n = put_str(buf, n, cap, i >= 0 ? ")" : "");
	if (child > 0) {
		n = put_str(buf, n, cap, "; recovery process ");
		n = put_num(buf, n, cap, child);
		n = put_str(buf, n, cap, " restores the targets");
	} else {
		n = put_str(buf, n, cap, "; no recovery process (clone: errno ");
		n = put_num(buf, n, cap, -child);
		n = put_str(buf, n, cap, "): the next daemon restores the targets");
	}
	buf[n++] = '\n';
	if (write(STDERR_FILENO, buf, n) < 0)
		return; /* nowhere else to say it */
}

static void spawn_recovery(const struct crash_state *c, int sig)
{
	/* A raw clone: glibc's fork() runs atfork handlers and takes locks that the crashed
	 * process may hold. The child only sets its mask and execs. */
	long child = syscall(SYS_clone, (long)SIGCHLD, 0L, 0L, 0L, 0L);
	if (child == 0) {
		syscall(SYS_rt_sigprocmask, SIG_SETMASK, &c->child_mask, NULL, sizeof(c->child_mask));
		/* our own image first: it wrote the journal, even if the file was replaced since */
		syscall(SYS_execve, "/proc/self/exe", c->argv, c->envp);
		syscall(SYS_execve, c->exe, c->argv, c->envp);
		syscall(SYS_exit_group, 127L);
	}
	say_spawned(sig, child < 0 ? -errno : child);
}

static bool is_handler(const struct sigaction *sa)
{
	return (sa->sa_flags & SA_SIGINFO) || (sa->sa_handler != SIG_DFL && sa->sa_handler != SIG_IGN);
}

static void on_fatal(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	int saved = errno;
	struct crash_state *c = crash;
	int expect = 0;
	if (c && atomic_compare_exchange_strong(&c->fired, &expect, 1))
		spawn_recovery(c, sig);
	/* SA_RESETHAND left SIG_DFL; a handler that was there before (a sanitizer's) gets the
	 * fault instead, so its report is not lost. */
	int i = fatal_index(sig);
	if (c && i >= 0 && is_handler(&c->prev[i]))
		sigaction(sig, &c->prev[i], NULL);
	/* A fault (si_code > 0) happens again when the instruction re-runs; a sent signal (kill,
	 * abort) must be sent again. Either way we die of the original signal. */
	if (si->si_code <= 0)
		syscall(SYS_tgkill, (long)getpid(), syscall(SYS_gettid), (long)sig);
	errno = saved;
}

/* ---- arming ---- */

static char **copy_environ(void)
{
	size_t n = 0;
	while (environ && environ[n])
		n++;
	char **env = calloc(n + 1, sizeof(*env));
	for (size_t i = 0; env && i < n; i++)
		if (!(env[i] = strdup(environ[i]))) {
			while (i--)
				free(env[i]);
			free(env);
			return NULL;
		}
	return env;
}

static int install_handlers(struct crash_state *c, struct diag_error *err)
{
	stack_t ss = { .ss_sp = malloc(ALTSTACK_SIZE), .ss_size = ALTSTACK_SIZE };
	c->altstack = ss.ss_sp; /* reachable from `crash`: not a leak at exit */
	if (!ss.ss_sp)
		return diag_error_set(err, -ENOMEM, "fatal-signal handler: out of memory");
	if (sigaltstack(&ss, NULL) < 0) { /* stays ours for the process's life */
		int r = -errno;
		free(ss.ss_sp);
		c->altstack = NULL;
		return diag_error_set(err, r, "fatal-signal handler: sigaltstack: %s", strerror(-r));
	}
	struct sigaction sa = { .sa_sigaction = on_fatal,
				.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND };
	sigemptyset(&sa.sa_mask);
	for (int i = 0; i < NFATAL; i++)
		if (sigaction(fatal_sigs[i], &sa, &c->prev[i]) < 0)
			return diag_error_set(err, -errno, "fatal-signal handler: sigaction %s: %s",
					      fatal_names[i], strerror(errno));
	return 0;
}

int dmn_crash_arm(struct diag_error *err)
{
	if (crash)
		return diag_error_set(err, -EALREADY, "fatal-signal handler: armed twice");
	struct crash_state *c = calloc(1, sizeof(*c));
	if (!c)
		return diag_error_set(err, -ENOMEM, "fatal-signal handler: out of memory");
	ssize_t n = readlink("/proc/self/exe", c->exe, sizeof(c->exe) - 1);
	if (n <= 0) {
		int r = n < 0 ? -errno : -ENOENT;
		free(c);
		return diag_error_set(err, r, "fatal-signal handler: readlink /proc/self/exe: %s",
				      strerror(-r));
	}
	c->exe[n] = '\0';
	snprintf(c->pid_arg, sizeof(c->pid_arg), "%d", (int)getpid());
	c->argv[0] = c->exe;
	c->argv[1] = "--recover-after";
	c->argv[2] = c->pid_arg;
	c->envp = copy_environ();
	if (!c->envp) {
		free(c);
		return diag_error_set(err, -ENOMEM, "fatal-signal handler: out of memory");
	}
	/* the recovery must run to its end: systemd's SIGTERM to the unit's cgroup waits for it */
	c->child_mask = 1ULL << (SIGTERM - 1) | 1ULL << (SIGINT - 1) | 1ULL << (SIGHUP - 1);
	crash = c;
	return install_handlers(c, err);
}

/* ---- --recover-after ---- */

static pid_t tracer_of(pid_t pid)
{
	unsigned long long tracer = 0;
	return diag_proc_status_field(pid, "TracerPid", 10, &tracer) ? (pid_t)tracer : 0;
}

static bool same_image(pid_t pid)
{
	char path[64], a[PATH_MAX], b[PATH_MAX];
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	ssize_t na = readlink(path, a, sizeof(a) - 1), nb = readlink("/proc/self/exe", b, sizeof(b) - 1);
	return na > 0 && na == nb && memcmp(a, b, (size_t)na) == 0;
}

/* Until the daemon has exited. Our parent (it forked us) or a diagnosed named by an operator
 * is waited for through its pidfd; anything else at that pid is a reused number: it is gone. */
static void wait_gone(pid_t pid)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd >= 0) {
		if (getppid() == pid || same_image(pid)) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			while (poll(&p, 1, -1) < 0 && errno == EINTR)
				;
		}
		close(fd);
		return;
	}
	if (errno != ENOSYS)
		return; /* ESRCH: gone already */
	/* no pidfd_open (Linux < 5.3): poll, bounded by the daemon's own death */
	struct timespec tick = { 0, RECOVER_RETRY_NS };
	while (!diag_proc_gone(pid))
		nanosleep(&tick, NULL);
}

struct jentry {
	pid_t pid;
	char start[24];
};

/* The journal files (DIR/PID-STARTTIME, lib/engine/journal.c), listed before any attach: the
 * engine writes new files into the same directory while it recovers. */
static int list_journals(const char *dir, struct jentry **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	size_t cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		struct jentry j = { 0 };
		int pid, used = 0;
		if (sscanf(de->d_name, "%d-%23[0-9]%n", &pid, j.start, &used) != 2 ||
		    de->d_name[used] || pid <= 0)
			continue;
		j.pid = pid;
		if (DIAG_GROW(out, &cap, *n + 1) < 0) {
			closedir(d);
			return -ENOMEM;
		}
		(*out)[(*n)++] = j;
	}
	closedir(d);
	return 0;
}

enum outcome { RESTORED, SKIPPED, FAILED };

/* Attach (the engine takes the journal's patches out), then detach (the engine's own pages
 * and journal go too). EPERM while the dead daemon still holds the ptrace link: retry. */
static enum outcome recover_one(struct diag_engine *e, pid_t dead, const struct jentry *j)
{
	char start[24];
	if (diag_proc_stat_field(j->pid, 22, start, sizeof(start)) < 0 || strcmp(start, j->start) != 0)
		return SKIPPED; /* that process is gone (the number may be reused): nothing to do */
	int64_t deadline = diag_clock_mono_ns() + RECOVER_EPERM_NS;
	struct diag_engine_stats before, after;
	diag_engine_get_stats(e, &before);
	for (;;) {
		struct diag_error err = { 0 };
		int r = diag_engine_attach(e, j->pid, &err);
		if (r == 0)
			break;
		if (r == -ESRCH)
			return SKIPPED;
		pid_t tracer = tracer_of(j->pid);
		if (r == -EPERM && tracer > 0 && tracer != dead && !diag_proc_gone(tracer)) {
			dmn_log("recover: pid %d: traced by the live process %d: its patches are its "
				 "tracer's, left alone", (int)j->pid, (int)tracer);
			return SKIPPED;
		}
		if (r != -EPERM || diag_clock_mono_ns() > deadline) {
			dmn_log("recover: pid %d: NOT restored: %s%s", (int)j->pid,
				 err.msg[0] ? err.msg : diag_strerror(r),
				 r == -EPERM ? " (still traced 5 s after the daemon exited)" : "");
			return FAILED;
		}
		/* the kernel drops a dead tracer's links as its threads exit, which may trail its
		 * pidfd; no event tells us when: short bounded retries */
		struct timespec tick = { 0, RECOVER_RETRY_NS };
		nanosleep(&tick, NULL);
	}
	diag_engine_get_stats(e, &after);
	struct diag_error err = { 0 };
	if (diag_engine_detach(e, j->pid, &err) < 0 && !diag_proc_gone(j->pid)) {
		dmn_log("recover: pid %d: restored %zu patch(es) but detach failed: %s", (int)j->pid,
			 after.recovered - before.recovered, err.msg);
		return FAILED;
	}
	dmn_log("recover: pid %d: %zu patch(es) restored, diagnose pages unmapped, detached",
		 (int)j->pid, after.recovered - before.recovered);
	return RESTORED;
}

void dmn_crash_block_stop_signals(sigset_t *mask)
{
	sigemptyset(mask);
	sigaddset(mask, SIGTERM);
	sigaddset(mask, SIGINT);
	sigaddset(mask, SIGHUP);
	sigprocmask(SIG_BLOCK, mask, NULL);
}

int dmn_crash_recover(pid_t dead)
{
	/* finish what we started: a half-done recovery helps nobody (systemd waits for us) */
	sigset_t mask;
	dmn_crash_block_stop_signals(&mask);
	wait_gone(dead);
	const char *dir = getenv("DIAG_JOURNAL_DIR");
	if (!dir || !*dir)
		dir = DMN_CRASH_JOURNAL_DEFAULT;
	struct jentry *js;
	size_t n;
	int r = list_journals(dir, &js, &n);
	if (r < 0) {
		dmn_log("recover after pid %d: journal directory %s: %s", (int)dead, dir, strerror(-r));
		return 1;
	}
	struct diag_engine *e = NULL;
	if (n && (r = diag_engine_new(NULL, &e)) < 0) {
		dmn_log("recover after pid %d: engine: %s", (int)dead, diag_strerror(r));
		free(js);
		return 1;
	}
	size_t count[3] = { 0 };
	for (size_t i = 0; i < n; i++)
		count[recover_one(e, dead, &js[i])]++;
	diag_engine_free(e);
	free(js);
	dmn_log("recover after pid %d: %zu process(es) restored, %zu failed, %zu journal(s) "
		 "skipped (process gone or traced by another)", (int)dead, count[RESTORED],
		 count[FAILED], count[SKIPPED]);
	return count[FAILED] ? 1 : 0;
}

/* ---- test hook ---- */

int dmn_crash_test_signal(void)
{
	const char *v = getenv("DIAG_TEST_CRASH");
	if (!v)
		return 0;
	return !strcmp(v, "segv") ? SIGSEGV : !strcmp(v, "bus") ? SIGBUS : !strcmp(v, "abort") ? SIGABRT : 0;
}

void dmn_crash_test_fire(int sig)
{
	if (sig == SIGABRT)
		abort();
	if (sig == SIGBUS) { /* a page of an empty file: the kernel has nothing to map there */
		int fd = memfd_create("diag-test-crash", MFD_CLOEXEC);
		volatile char *p = fd >= 0 ? mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
		if (p != MAP_FAILED)
			(void)p[0];
	}
	/* the unmapped first page, not NULL itself (UBSan would stop at a NULL store); both
	 * volatile: gcc turns a known bad store into ud2, or drops it as dead */
	volatile int *volatile low = (volatile int *)(uintptr_t)16;
	*low = 1;
}
