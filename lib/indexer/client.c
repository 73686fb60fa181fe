/* indexer/client: starts diagnose-indexer (posix_spawn: the daemon is multi-threaded),
 * sends requests with their file descriptors, enforces each request's deadline, reaps and
 * names a worker that died, and remembers the files that killed one. Never parses a target's
 * file; decodes only the reply's status and error message (the callers decode the rest). */
#include "indexer/indexer.h"
#include "util/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define MAX_POISONED 1024

struct poisoned {
	char *key;
	int code;
	char msg[DIAG_ERRMSG_MAX];
};

struct diag_indexer {
	char exe[PATH_MAX];
	uid_t uid;
	gid_t gid;
	unsigned timeout_ms;
	pid_t pid;
	int pidfd;
	int sock;
	unsigned gen;
	uint32_t next_file_id;
	struct poisoned *poison;
	size_t npoison, next_poison;
};

static void find_exe(const struct diag_indexer_opts *o, char *out, size_t cap)
{
	const char *env = getenv("DIAG_INDEXER");
	if (o && o->exe) {
		snprintf(out, cap, "%s", o->exe);
		return;
	}
	if (env && *env) {
		snprintf(out, cap, "%s", env);
		return;
	}
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	self[n > 0 ? n : 0] = '\0';
	char *slash = strrchr(self, '/');
	if (slash)
		*slash = '\0';
	if (snprintf(out, cap, "%s/diagnose-indexer", n > 0 ? self : ".") >= (int)cap)
		snprintf(out, cap, "diagnose-indexer");
}

int diag_indexer_new(const struct diag_indexer_opts *o, struct diag_indexer **out)
{
	struct diag_indexer *ix = calloc(1, sizeof(*ix));
	if (!ix)
		return -ENOMEM;
	find_exe(o, ix->exe, sizeof(ix->exe));
	ix->uid = o && o->uid ? o->uid : DIAG_INDEXER_UID;
	ix->gid = o && o->gid ? o->gid : DIAG_INDEXER_UID;
	ix->timeout_ms = o && o->timeout_ms ? o->timeout_ms : DIAG_INDEXER_TIMEOUT_MS;
	ix->sock = ix->pidfd = -1;
	*out = ix;
	return 0;
}

pid_t diag_indexer_pid(const struct diag_indexer *ix)
{
	return ix ? ix->pid : 0;
}

unsigned diag_indexer_generation(const struct diag_indexer *ix)
{
	return ix->gen;
}

uint32_t diag_indexer_file_id(struct diag_indexer *ix)
{
	return ++ix->next_file_id;
}

/* Waits up to ms for the worker to exit (its pidfd turns readable). */
static bool exited_within(struct diag_indexer *ix, int ms)
{
	struct pollfd p = { .fd = ix->pidfd, .events = POLLIN };
	int64_t end = diag_clock_mono_ms() + ms;
	for (;;) {
		int64_t left = end - diag_clock_mono_ms();
		int r = poll(&p, 1, left > 0 ? (int)left : 0);
		if (r > 0)
			return true;
		if (r == 0 || errno != EINTR)
			return false;
	}
}

/* Ends the worker: waits briefly for it to die on its own (so a crash is named by its
 * signal), else kills it. Returns its wait status (>= 0), or -ECHILD when none runs or someone
 * else reaped it. */
static int stop_worker(struct diag_indexer *ix, bool kill_now)
{
	if (!ix->pid)
		return -ECHILD;
	if (kill_now || !exited_within(ix, 1000))
		kill(ix->pid, SIGKILL);
	int st = 0;
	pid_t w;
	while ((w = waitpid(ix->pid, &st, __WALL)) < 0 && errno == EINTR)
		;
	close(ix->sock);
	if (ix->pidfd >= 0)
		close(ix->pidfd);
	ix->sock = ix->pidfd = -1;
	ix->pid = 0;
	return w > 0 ? st : -ECHILD;
}

void diag_indexer_free(struct diag_indexer *ix)
{
	if (!ix)
		return;
	stop_worker(ix, true);
	for (size_t i = 0; i < ix->npoison; i++)
		free(ix->poison[i].key);
	free(ix->poison);
	free(ix);
}

void diag_ix_reply_release(struct diag_ix_reply *r)
{
	free(r->buf);
	memset(r, 0, sizeof(*r));
}

static int spawn(struct diag_indexer *ix, int child_sock)
{
	char uid[16], gid[16];
	snprintf(uid, sizeof(uid), "%u", (unsigned)ix->uid);
	snprintf(gid, sizeof(gid), "%u", (unsigned)ix->gid);
	char *argv[] = { ix->exe, "--uid", uid, "--gid", gid, NULL };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, all;
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, child_sock, 3);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &all);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	pid_t pid;
	int r = posix_spawn(&pid, ix->exe, &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (r)
		return -r;
	ix->pid = pid;
	ix->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	return 0;
}

/* "crashed (SIGSEGV)", "was killed (SIGKILL)", "exited (status 1)". */
static void describe_death(int st, char *buf, size_t cap)
{
	if (st < 0)
		snprintf(buf, cap, "exited");
	else if (WIFSIGNALED(st))
		snprintf(buf, cap, "%s (SIG%s)", WTERMSIG(st) == SIGKILL ? "was killed" : "crashed",
			 sigabbrev_np(WTERMSIG(st)) ? sigabbrev_np(WTERMSIG(st)) : "?");
	else
		snprintf(buf, cap, "exited (status %d)", WEXITSTATUS(st));
}

/* The worker's error message, printable ASCII only. */
static bool read_error(struct diag_ix_rd *rd, int code, struct diag_error *err)
{
	char msg[DIAG_ERRMSG_MAX];
	bool known = (code <= -1 && code > -DIAG_E_BASE) || (code < -DIAG_E_BASE && code > -DIAG_E_MAX);
	if (!known || !diag_ix_get_strbuf(rd, msg, sizeof(msg)))
		return false;
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			*p = '?';
	diag_error_set(err, code, "%s", msg);
	return true;
}

int diag_indexer_start(struct diag_indexer *ix, struct diag_error *err)
{
	struct pollfd hup = { .fd = ix->sock, .events = POLLIN };
	if (ix->pid && (exited_within(ix, 0) || (poll(&hup, 1, 0) == 1 && (hup.revents & (POLLHUP | POLLERR)))))
		stop_worker(ix, true); /* died while idle (killed): a new one, nothing failed */
	if (ix->pid)
		return 0;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return diag_error_set(err, -errno, "indexer: socketpair: %s", strerror(errno));
	if (sv[1] == 3) { /* dup2 onto itself would keep close-on-exec */
		int f = fcntl(sv[1], F_DUPFD_CLOEXEC, 10);
		close(sv[1]);
		sv[1] = f;
	}
	int r = sv[1] < 0 ? -errno : spawn(ix, sv[1]);
	close(sv[1]);
	if (r) {
		close(sv[0]);
		return diag_error_set(err, r, "indexer: cannot start %s: %s", ix->exe, strerror(-r));
	}
	ix->sock = sv[0];
	ix->gen++;
	uint8_t *msg = NULL;
	size_t len = 0;
	/* starting (exec, sanitizer runtimes on a loaded machine) gets at least the default */
	unsigned start_ms = ix->timeout_ms > DIAG_INDEXER_TIMEOUT_MS ? ix->timeout_ms : DIAG_INDEXER_TIMEOUT_MS;
	r = diag_ix_recv(ix->sock, 4096, &msg, &len, NULL, NULL, diag_clock_mono_ms() + start_ms);
	struct diag_ix_rd rd = { .p = msg, .len = len };
	int op = r ? 0 : (int)(int32_t)diag_ix_get_u32(&rd);
	struct diag_error why = { 0 };
	if (r == 0 && op < 0 && read_error(&rd, op, &why)) {
		free(msg);
		stop_worker(ix, true);
		return diag_error_set(err, why.code, "indexer: %s", why.msg);
	}
	free(msg);
	if (r || op != DIAG_IX_HELLO) {
		char d[64];
		describe_death(stop_worker(ix, r == -ETIMEDOUT), d, sizeof(d));
		return diag_error_set(err, -EIO, "indexer: %s %s before it was ready", ix->exe, d);
	}
	return 0;
}

static const struct poisoned *poisoned(const struct diag_indexer *ix, const char *key)
{
	for (size_t i = 0; key && i < ix->npoison; i++)
		if (!strcmp(ix->poison[i].key, key))
			return &ix->poison[i];
	return NULL;
}

static void poison(struct diag_indexer *ix, const char *key, const struct diag_error *e)
{
	if (!key || poisoned(ix, key))
		return;
	char *k = strdup(key);
	if (!k)
		return;
	if (!ix->poison && !(ix->poison = calloc(MAX_POISONED, sizeof(*ix->poison)))) {
		free(k);
		return;
	}
	struct poisoned *p = &ix->poison[ix->npoison < MAX_POISONED ? ix->npoison++ : ix->next_poison++ % MAX_POISONED];
	free(p->key);
	p->key = k;
	p->code = e->code;
	snprintf(p->msg, sizeof(p->msg), "%s", e->msg);
}

int diag_indexer_bad_reply(struct diag_indexer *ix, const char *key, const char *what,
			   const char *why, struct diag_error *err)
{
	stop_worker(ix, true);
	struct diag_error e = { 0 };
	diag_error_set(&e, -EPROTO, "the indexer sent a malformed reply %s: %s", what, why);
	poison(ix, key, &e);
	if (err)
		*err = e;
	return e.code;
}

int diag_indexer_call(struct diag_indexer *ix, const char *key, const char *what,
		      const struct diag_ix_buf *req, const int *fds, size_t nfds,
		      struct diag_ix_reply *rep, struct diag_error *err)
{
	memset(rep, 0, sizeof(*rep));
	const struct poisoned *p = poisoned(ix, key);
	if (p)
		return diag_error_set(err, p->code, "%s", p->msg);
	int r = diag_indexer_start(ix, err);
	if (r)
		return r;
	int64_t deadline = diag_clock_mono_ms() + ix->timeout_ms;
	r = diag_ix_send(ix->sock, req, fds, nfds, deadline);
	uint8_t *msg = NULL;
	size_t len = 0;
	if (r == 0)
		r = diag_ix_recv(ix->sock, DIAG_IX_MAX_MSG, &msg, &len, NULL, NULL, deadline);
	if (r == -ENOMEM)
		return diag_error_set(err, r, "indexer: out of memory");
	struct diag_error e = { 0 };
	if (r == -ETIMEDOUT) {
		stop_worker(ix, true);
		diag_error_set(&e, -ETIMEDOUT, "the indexer timed out after %u s %s",
			       (ix->timeout_ms + 999) / 1000, what);
	} else if (r == -EMSGSIZE) {
		stop_worker(ix, true);
		diag_error_set(&e, -EMSGSIZE, "the indexer's reply %s is larger than %u bytes", what,
			       DIAG_IX_MAX_MSG);
	} else if (r) {
		char d[64];
		describe_death(stop_worker(ix, false), d, sizeof(d));
		diag_error_set(&e, -EIO, "the indexer %s %s", d, what);
	}
	if (r) {
		poison(ix, key, &e);
		if (err)
			*err = e;
		return e.code;
	}
	rep->buf = msg;
	rep->rd = (struct diag_ix_rd){ .p = msg, .len = len };
	int status = (int)(int32_t)diag_ix_get_u32(&rep->rd);
	if (!rep->rd.bad && status >= 0) {
		rep->status = status;
		return status;
	}
	struct diag_error we = { 0 };
	bool ok = !rep->rd.bad && read_error(&rep->rd, status, &we);
	diag_ix_reply_release(rep);
	if (!ok)
		return diag_indexer_bad_reply(ix, key, what, "bad status or error message", err);
	if (err)
		*err = we;
	return we.code;
}
