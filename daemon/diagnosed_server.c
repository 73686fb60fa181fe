/* diagnosed_server: the control socket (the contract is in diagnosed_server.h). Owns the
 * listening socket and its clients (buffers, tail and wait state); calls the manager and the
 * request parser, never the main loop or the governor. */
#include "diagnosed_server.h"
#include "diagnosed_policy.h"
#include "log.h"

#include "diagnosed_request.h"
#include "expr/expr.h"
#include "spec/json.h"
#include "util/clock.h"
#include "util/grow.h"
#include "util/text.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_CLIENTS 64
#define MAX_LINE (1u << 20)
#define TAIL_OUT_MAX (4u << 20)  /* beyond this a tail client drops events */
#define TAIL_FLUSH (64u << 10)   /* tail events are sent in writes of this much, or when the
				  * loop next polls (after the dispatch that made them) */
#define REPLY_OUT_MAX (64u << 20)

struct client {
	int fd;
	char *in;
	size_t inlen, incap;
	char *out;
	size_t outoff, outlen, outcap; /* pending bytes: out[outoff, outoff + outlen) */
	size_t tail_mark;              /* outlen after the last send attempt for tail events */
	bool tail, closing;
	uint32_t events; /* current epoll interest */
	char tail_id[DIAG_SPEC_ID_MAX + 1];
	uint64_t tail_dropped;
	bool waiting;
	char wait_id[DIAG_SPEC_ID_MAX + 1];
	uint64_t wait_hits;
	int64_t wait_deadline_ns;
	struct dmn_peer peer;  /* who it is: root may do all, others what the policy allows */
};

struct dmn_server {
	struct dmn_manager *m;
	int epfd, lfd;
	char *path;
	dev_t dev; /* the socket file we bound: the only thing we ever unlink at exit */
	ino_t ino;
	struct client *clients[MAX_CLIENTS];
	size_t ntail;
	uint64_t tail_dropped; /* events no tail client could take, all clients ever */
	char *tb;              /* the tail event being sent (reused) */
	size_t tblen, tbcap;
	bool tb_failed;
	char rendered[DIAG_EXPR_MAX_BYTES + 64]; /* a deferred value's text, for tail clients */
	int64_t tb_sec;        /* the second tb_secstr spells */
	char tb_secstr[40];
	size_t nwaiting;       /* clients in a `wait` */
	struct dmn_policy *policy; /* NULL: root only */
};

static int mkdir_parents(const char *path)
{
	char buf[sizeof(((struct sockaddr_un *)0)->sun_path)];
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; (p = strchr(p, '/')); p++) {
		*p = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return 0;
}

static const char *file_kind(mode_t mode)
{
	return S_ISREG(mode) ? "a regular file" : S_ISDIR(mode) ? "a directory"
	     : S_ISLNK(mode) ? "a symbolic link" : S_ISFIFO(mode) ? "a FIFO"
	     : S_ISSOCK(mode) ? "a socket" : "a device file";
}

/* Whoever else may write to the socket's directory could swap the socket for their own, or
 * plant a file for us to remove: it must be ours alone (the sticky bit does not help: it
 * still lets anyone create a socket of the same name first). */
static int check_dir(const char *path, struct diag_error *err)
{
	char buf[sizeof(((struct sockaddr_un *)0)->sun_path)];
	snprintf(buf, sizeof(buf), "%s", path);
	const char *dir = dirname(buf);
	struct stat sb;
	if (stat(dir, &sb) < 0)
		return diag_error_set(err, -errno, "socket %s: directory %s: %s", path, dir,
				      strerror(errno));
	if (!S_ISDIR(sb.st_mode))
		return diag_error_set(err, -ENOTDIR, "socket %s: %s is not a directory", path, dir);
	if (sb.st_uid != 0 && sb.st_uid != geteuid())
		return diag_error_set(err, -EPERM,
				      "socket %s: directory %s is owned by uid %u, not root: refused",
				      path, dir, (unsigned)sb.st_uid);
	if (sb.st_mode & (S_IWGRP | S_IWOTH))
		return diag_error_set(err, -EPERM,
				      "socket %s: directory %s is writable by %s (mode %04o): refused",
				      path, dir, sb.st_mode & S_IWOTH ? "every user" : "its group",
				      (unsigned)(sb.st_mode & 07777));
	return 0;
}

/* A socket file nobody answers on is a leftover of a crash; one that answers is another
 * daemon, which we must not steal from. Anything else at the path is not ours to remove. */
static int clear_stale(const char *path, struct diag_error *err)
{
	struct stat sb;
	if (lstat(path, &sb) < 0)
		return errno == ENOENT ? 0
				       : diag_error_set(err, -errno, "socket %s: %s", path, strerror(errno));
	if (!S_ISSOCK(sb.st_mode))
		return diag_error_set(err, -EEXIST,
				      "socket %s: %s is there; not removed (only a stale socket is)",
				      path, file_kind(sb.st_mode));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	int e = errno;
	close(fd);
	if (r == 0)
		return diag_error_set(err, -EADDRINUSE, "socket %s: another diagnosed is serving it",
				      path);
	if (e != ECONNREFUSED)
		return diag_error_set(err, -e,
				      "socket %s: cannot tell whether the socket there is in use (%s); not removed",
				      path, strerror(e));
	if (unlink(path) < 0)
		return diag_error_set(err, -errno, "socket %s: cannot remove the stale socket: %s",
				      path, strerror(errno));
	return 0;
}

/* Unlink path only while it is still the socket we bound (someone may have replaced it). */
static void remove_own(const char *path, dev_t dev, ino_t ino)
{
	struct stat sb;
	if (lstat(path, &sb) == 0 && S_ISSOCK(sb.st_mode) && sb.st_dev == dev && sb.st_ino == ino)
		unlink(path);
}

int dmn_server_new(struct dmn_manager *m, const char *path, int epfd, struct dmn_server **out,
		    struct diag_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return diag_error_set(err, -ENAMETOOLONG, "socket %s: path too long (max %zu bytes)",
				      path, sizeof(sa.sun_path) - 1);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int r = mkdir_parents(path);
	if (r < 0)
		return diag_error_set(err, r, "socket %s: cannot create its directory: %s", path,
				      strerror(-r));
	if ((r = check_dir(path, err)) < 0 || (r = clear_stale(path, err)) < 0)
		return r;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return diag_error_set(err, -errno, "socket %s: %s", path, strerror(errno));
	mode_t old = umask(0077); /* the socket is born 0600: no window for other users */
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0) {
		r = diag_error_set(err, -errno, "socket %s: %s", path, strerror(errno));
		close(fd);
		return r;
	}
	struct stat own;
	if (lstat(path, &own) < 0) {
		r = diag_error_set(err, -errno, "socket %s: %s", path, strerror(errno));
		close(fd);
		return r;
	}
	if (listen(fd, 16) < 0) {
		r = diag_error_set(err, -errno, "socket %s: %s", path, strerror(errno));
		close(fd);
		remove_own(path, own.st_dev, own.st_ino);
		return r;
	}
	chmod(path, 0600); /* our own directory: nobody can swap the file meanwhile */
	struct dmn_server *s = calloc(1, sizeof(*s));
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
	if (!s || !(s->path = strdup(path)) || epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		if (s)
			free(s->path);
		free(s);
		close(fd);
		remove_own(path, own.st_dev, own.st_ino);
		return diag_error_set(err, -ENOMEM, "socket %s: out of memory", path);
	}
	s->dev = own.st_dev;
	s->ino = own.st_ino;
	s->m = m;
	s->epfd = epfd;
	s->lfd = fd;
	*out = s;
	return 0;
}

static void client_close(struct dmn_server *s, size_t i)
{
	struct client *c = s->clients[i];
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	if (c->tail)
		s->ntail--;
	if (c->waiting)
		s->nwaiting--;
	free(c->in);
	free(c->out);
	free(c);
	s->clients[i] = NULL;
}

void dmn_server_set_policy(struct dmn_server *s, struct dmn_policy *p)
{
	dmn_policy_free(s->policy);
	s->policy = p;
	/* users the policy names must reach the socket; without rules it stays root's */
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	snprintf(dir, sizeof(dir), "%s", s->path);
	chmod(dirname(dir), dmn_policy_rules(p) ? 0755 : 0700);
	chmod(s->path, dmn_policy_rules(p) ? 0666 : 0600);
}

void dmn_server_free(struct dmn_server *s)
{
	if (!s)
		return;
	dmn_policy_free(s->policy);
	for (size_t i = 0; i < MAX_CLIENTS; i++)
		if (s->clients[i])
			client_close(s, i);
	close(s->lfd);
	remove_own(s->path, s->dev, s->ino);
	free(s->path);
	free(s->tb);
	free(s);
}

/* A waiting client is not read: its next requests wait in the socket, and a full input
 * buffer cannot make a level-triggered epoll spin. */
static void update_interest(struct dmn_server *s, struct client *c)
{
	uint32_t want = (c->waiting ? 0 : EPOLLIN) | (c->outlen ? EPOLLOUT : 0);
	if (want == c->events)
		return;
	c->events = want;
	struct epoll_event ev = { .events = want, .data.fd = c->fd };
	epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* A non-blocking send or recv that moved nothing (n <= 0): 1 to try again at once (EINTR), 0
 * to wait for epoll (EAGAIN), -1 when the client is gone (an error, or the end of its input). */
static int io_stalled(ssize_t n)
{
	if (n < 0 && errno == EINTR)
		return 1;
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	return -1;
}

/* Send what is buffered; returns -1 when the client is gone. The unsent bytes stay where
 * they are (outoff moves): a slow tail client must not cost a copy of its buffer per send. */
static int flush_out(struct client *c)
{
	while (c->outlen) {
		ssize_t n = send(c->fd, c->out + c->outoff, c->outlen, MSG_NOSIGNAL | MSG_DONTWAIT);
		int st = n > 0 ? 0 : io_stalled(n);
		if (st > 0)
			continue;
		if (n <= 0)
			return st;
		c->outoff += (size_t)n;
		c->outlen -= (size_t)n;
	}
	c->outoff = 0;
	return 0;
}

static bool append_out(struct client *c, const char *data, size_t len, size_t limit)
{
	if (c->outlen + len > limit)
		return false;
	if (c->outoff && c->outoff + c->outlen + len > c->outcap) { /* room at the front */
		memmove(c->out, c->out + c->outoff, c->outlen);
		c->outoff = 0;
	}
	if (diag_grow((void **)&c->out, &c->outcap, c->outoff + c->outlen + len, 1, 4096) < 0)
		return false;
	memcpy(c->out + c->outoff + c->outlen, data, len);
	c->outlen += len;
	return true;
}

/* Queue one JSON line (consumes j). Its strings quote targets (symbols, paths, comm): made
 * valid UTF-8 without controls, so strict readers can read every reply (a histogram's bars
 * keep their line breaks, which JSON escapes). */
static void send_json(struct dmn_server *s, struct client *c, cJSON *j, size_t limit)
{
	diag_json_escape_strings(j, DIAG_TEXT_KEEP_NL);
	char *text = j ? cJSON_PrintUnformatted(j) : NULL;
	cJSON_Delete(j);
	if (!text) {
		text = strdup("{\"ok\":false,\"error\":\"out of memory\"}");
		if (!text)
			return;
	}
	size_t n = strlen(text);
	text[n] = '\n'; /* replaces the NUL: the line is sent by length */
	if (!append_out(c, text, n + 1, limit) && !c->tail)
		c->closing = true; /* a reply that cannot be buffered: give up on this client */
	free(text);
	if (flush_out(c) < 0)
		c->closing = true;
	update_interest(s, c);
}

static void reply_error(struct dmn_server *s, struct client *c, const char *msg)
{
	cJSON *j = cJSON_CreateObject();
	cJSON_AddBoolToObject(j, "ok", 0);
	cJSON_AddStringToObject(j, "error", msg);
	send_json(s, c, j, REPLY_OUT_MAX);
}

static cJSON *ok_reply(void)
{
	cJSON *j = cJSON_CreateObject();
	cJSON_AddBoolToObject(j, "ok", 1);
	return j;
}

static void accept_clients(struct dmn_server *s)
{
	for (;;) {
		int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		struct dmn_peer peer;
		size_t slot = 0;
		while (slot < MAX_CLIENTS && s->clients[slot])
			slot++;
		const char *why = NULL;
		char buf[DIAG_ERRMSG_MAX + 64];
		struct diag_error perr = { 0 };
		if (dmn_peer_identify(fd, &peer) < 0)
			why = "{\"ok\":false,\"error\":\"cannot identify peer (SO_PEERCRED)\"}\n";
		else if (dmn_policy_connect(s->policy, &peer, &perr) < 0) {
			cJSON *j = cJSON_CreateObject();
			cJSON_AddBoolToObject(j, "ok", 0);
			cJSON_AddStringToObject(j, "error", perr.msg);
			char *t = cJSON_PrintUnformatted(j);
			snprintf(buf, sizeof(buf), "%s\n", t ? t : "{\"ok\":false}");
			free(t);
			cJSON_Delete(j);
			why = buf;
			dmn_audit("audit: uid %u (%s) pid %d (%s): connect refused: %s", (unsigned)peer.uid,
				peer.user, (int)peer.pid, peer.comm, perr.msg);
		} else if (slot == MAX_CLIENTS)
			why = "{\"ok\":false,\"error\":\"too many clients (max 64)\"}\n";
		struct client *c = why ? NULL : calloc(1, sizeof(*c));
		struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
		if (!c || epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			if (why)
				send(fd, why, strlen(why), MSG_NOSIGNAL | MSG_DONTWAIT);
			free(c);
			close(fd);
			continue;
		}
		c->fd = fd;
		c->events = EPOLLIN;
		c->peer = peer;
		s->clients[slot] = c;
	}
}

static void cmd_add(struct dmn_server *s, struct client *c, struct dmn_request *rq)
{
	struct diag_error err = { 0 };
	struct dmn_mspec *ms = NULL;
	struct diag_spec *spec = rq->spec;
	rq->spec = NULL; /* the manager owns it now, even on failure */
	if (dmn_manager_add(s->m, spec, &ms, &err) < 0) {
		reply_error(s, c, err.msg);
		return;
	}
	cJSON *j = ok_reply();
	cJSON_AddStringToObject(j, "id", ms->spec->id);
	cJSON_AddItemToObject(j, "spec", dmn_manager_spec_json(s->m, ms));
	send_json(s, c, j, REPLY_OUT_MAX);
}

static void reply_result(struct dmn_server *s, struct client *c, int r,
			 const struct diag_error *err)
{
	if (r < 0)
		reply_error(s, c, err->msg[0] ? err->msg : diag_strerror(r));
	else
		send_json(s, c, ok_reply(), REPLY_OUT_MAX);
}

static void cmd_pid(struct dmn_server *s, struct client *c, const struct dmn_request *rq)
{
	struct diag_error err = { 0 };
	int r = rq->cmd == DMN_CMD_ATTACH ? dmn_manager_attach(s->m, rq->pid, &err)
					   : dmn_manager_detach(s->m, rq->pid, &err);
	reply_result(s, c, r, &err);
}

/* A spec is a user's own when that user added it; root's are root's. */
static bool owns(const struct client *c, const char *id, struct dmn_server *s)
{
	const struct dmn_mspec *ms = id ? dmn_manager_find(s->m, id) : NULL;
	return c->peer.uid == 0 || (ms && ms->spec->owner == c->peer.uid);
}

/* A user who is not root sees only the specs they added (list, stats). */
static void hide_others(struct dmn_server *s, struct client *c, cJSON *arr)
{
	if (c->peer.uid == 0 || !arr)
		return;
	for (cJSON *e = arr->child, *next; e; e = next) {
		next = e->next;
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
		if (!cJSON_IsString(id) || !owns(c, id->valuestring, s))
			cJSON_Delete(cJSON_DetachItemViaPointer(arr, e));
	}
}

static void cmd_list(struct dmn_server *s, struct client *c)
{
	cJSON *j = ok_reply();
	dmn_manager_refresh_counts(s->m);
	cJSON *specs = dmn_manager_list_json(s->m);
	hide_others(s, c, specs);
	cJSON_AddItemToObject(j, "specs", specs);
	send_json(s, c, j, REPLY_OUT_MAX);
}

static void cmd_stats(struct dmn_server *s, struct client *c, const struct dmn_request *rq)
{
	struct diag_error err = { 0 };
	cJSON *st = dmn_manager_stats_json(s->m, rq->has_id ? rq->id : NULL, true, &err);
	if (!st) {
		reply_error(s, c, err.msg);
		return;
	}
	hide_others(s, c, st);
	cJSON *j = ok_reply();
	cJSON_AddItemToObject(j, "stats", st);
	send_json(s, c, j, REPLY_OUT_MAX);
}

/* The manager's status, with the events lost on the way to tail clients. */
static cJSON *status_json(struct dmn_server *s)
{
	cJSON *j = dmn_manager_status_json(s->m);
	cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "dropped");
	if (d)
		cJSON_AddNumberToObject(d, "tail", (double)s->tail_dropped);
	return j;
}

static void cmd_tail(struct dmn_server *s, struct client *c, const struct dmn_request *rq)
{
	const char *id = rq->has_id ? rq->id : NULL;
	if (id && !dmn_manager_find(s->m, id)) {
		char msg[128];
		snprintf(msg, sizeof(msg), "id: no probe '%.64s'", id);
		reply_error(s, c, msg);
		return;
	}
	send_json(s, c, ok_reply(), REPLY_OUT_MAX);
	snprintf(c->tail_id, sizeof(c->tail_id), "%s", id ? id : "");
	if (!c->tail)
		s->ntail++;
	c->tail = true;
}

static void wait_reply(struct dmn_server *s, struct client *c, bool ok, uint64_t hits)
{
	if (c->waiting)
		s->nwaiting--;
	c->waiting = false;
	if (ok) {
		cJSON *j = ok_reply();
		cJSON_AddNumberToObject(j, "hits", (double)hits);
		send_json(s, c, j, REPLY_OUT_MAX);
		return;
	}
	char msg[256];
	snprintf(msg, sizeof(msg), "timeout: probe '%s' has %llu hits, wanted %llu", c->wait_id,
		 (unsigned long long)hits, (unsigned long long)c->wait_hits);
	reply_error(s, c, msg);
}

static void cmd_wait(struct dmn_server *s, struct client *c, const struct dmn_request *rq)
{
	struct dmn_mspec *ms = dmn_manager_find(s->m, rq->id);
	if (!ms) {
		char msg[128];
		snprintf(msg, sizeof(msg), "id: no probe '%.64s'", rq->id);
		reply_error(s, c, msg);
		return;
	}
	snprintf(c->wait_id, sizeof(c->wait_id), "%s", rq->id);
	c->wait_hits = rq->hits;
	c->wait_deadline_ns = diag_clock_wall_ns() + (int64_t)(rq->timeout_s * 1e9);
	if (!c->waiting)
		s->nwaiting++;
	c->waiting = true;
	if (ms->hits >= c->wait_hits)
		wait_reply(s, c, true, ms->hits);
	update_interest(s, c);
}

static int symbol_row(void *arg, const char *module, const char *name, uint64_t addr,
		      uint64_t size)
{
	char a[32];
	cJSON *o = cJSON_CreateObject();
	snprintf(a, sizeof(a), "0x%llx", (unsigned long long)addr);
	cJSON_AddStringToObject(o, "module", module);
	cJSON_AddStringToObject(o, "name", name);
	cJSON_AddStringToObject(o, "addr", a);
	cJSON_AddNumberToObject(o, "size", (double)size);
	diag_json_escape_strings(o, 0); /* names from the target's files: one line each */
	cJSON_AddItemToArray(arg, o);
	return 0;
}

static void var_row(void *arg, const struct diag_expr_var_info *v)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", v->name);
	cJSON_AddStringToObject(o, "type", v->type);
	cJSON_AddStringToObject(o, "location", v->location);
	cJSON_AddBoolToObject(o, "param", v->is_param);
	diag_json_escape_strings(o, 0);
	cJSON_AddItemToArray(arg, o);
}

/* symbols and vars read /proc and ELF/DWARF only: the pid need not be attached. */
static void cmd_introspect(struct dmn_server *s, struct client *c, const struct dmn_request *rq)
{
	struct diag_error err = { 0 };
	cJSON *rows = cJSON_CreateArray();
	bool sym = rq->cmd == DMN_CMD_SYMBOLS;
	int r = sym ? diag_engine_symbols(s->m->engine, rq->pid, rq->text, symbol_row, rows, &err)
		    : diag_engine_vars(s->m->engine, rq->pid, rq->text, var_row, rows, &err);
	if (r < 0) {
		cJSON_Delete(rows);
		reply_error(s, c, err.msg[0] ? err.msg : diag_strerror(r));
		return;
	}
	cJSON *j = ok_reply();
	cJSON_AddItemToObject(j, sym ? "symbols" : "vars", rows);
	if (sym)
		cJSON_AddBoolToObject(j, "truncated", r > DIAG_ENGINE_SYMBOLS_MAX);
	send_json(s, c, j, REPLY_OUT_MAX);
}

/* What the policy says of this request; 0 or a refusal in err. Ids of other users' specs are
 * answered as if absent. */
static int permitted(struct dmn_server *s, struct client *c, struct dmn_request *rq,
		     struct diag_error *err)
{
	if (rq->cmd == DMN_CMD_ADD && rq->spec)
		rq->spec->owner = (uint32_t)c->peer.uid; /* never the client's own claim */
	if (c->peer.uid == 0)
		return 0;
	switch (rq->cmd) {
	case DMN_CMD_ADD:
		if (rq->spec->id[0] && dmn_manager_find(s->m, rq->spec->id) && !owns(c, rq->spec->id, s))
			return diag_error_set(err, -EACCES,
					      "policy: spec '%s' belongs to another user", rq->spec->id);
		return dmn_policy_check_spec(s->policy, &c->peer, rq->spec, err);
	case DMN_CMD_REMOVE:
	case DMN_CMD_WAIT:
		return owns(c, rq->id, s) ? 0
					  : diag_error_set(err, -ENOENT, "id: no probe '%.64s'", rq->id);
	case DMN_CMD_STATS:
	case DMN_CMD_TAIL:
		return !rq->has_id || owns(c, rq->id, s)
			       ? 0 : diag_error_set(err, -ENOENT, "id: no probe '%.64s'", rq->id);
	case DMN_CMD_ATTACH:
	case DMN_CMD_DETACH:
	case DMN_CMD_SYMBOLS:
	case DMN_CMD_VARS:
		return dmn_policy_check_process(s->policy, &c->peer, rq->pid, err);
	case DMN_CMD_LIST:
	case DMN_CMD_STATUS:
		return 0;
	}
	return 0;
}

static bool audited(enum dmn_cmd cmd)
{
	return cmd == DMN_CMD_ADD || cmd == DMN_CMD_REMOVE || cmd == DMN_CMD_ATTACH ||
	       cmd == DMN_CMD_DETACH;
}

/* Every add, remove, attach and detach, whoever asks: who, what, and how it ended. */
static void audit(const struct client *c, const struct dmn_request *rq, const char *id,
		  const char *outcome)
{
	static const char *const verbs[] = {[DMN_CMD_ADD] = "add", [DMN_CMD_REMOVE] = "remove",
					    [DMN_CMD_ATTACH] = "attach", [DMN_CMD_DETACH] = "detach"};
	if (rq->cmd == DMN_CMD_ATTACH || rq->cmd == DMN_CMD_DETACH)
		dmn_audit("audit: uid %u (%s) pid %d (%s): %s %d: %s", (unsigned)c->peer.uid,
			c->peer.user, (int)c->peer.pid, c->peer.comm, verbs[rq->cmd], (int)rq->pid,
			outcome);
	else
		dmn_audit("audit: uid %u (%s) pid %d (%s): %s spec '%s': %s", (unsigned)c->peer.uid,
			c->peer.user, (int)c->peer.pid, c->peer.comm, verbs[rq->cmd], id, outcome);
}

static void dispatch(struct dmn_server *s, struct client *c, struct dmn_request *rq)
{
	struct diag_error err = { 0 };
	char id[DIAG_SPEC_ID_MAX + 1];
	snprintf(id, sizeof(id), "%s", rq->cmd == DMN_CMD_ADD && rq->spec ? rq->spec->id : rq->id);
	if (permitted(s, c, rq, &err) < 0) {
		if (audited(rq->cmd))
			audit(c, rq, id, err.msg);
		reply_error(s, c, err.msg);
		return;
	}
	if (audited(rq->cmd))
		audit(c, rq, id[0] || rq->cmd != DMN_CMD_ADD ? id : "(new)", "allowed");
	switch (rq->cmd) {
	case DMN_CMD_ADD: cmd_add(s, c, rq); break;
	case DMN_CMD_REMOVE: reply_result(s, c, dmn_manager_remove(s->m, rq->id, &err), &err); break;
	case DMN_CMD_LIST: cmd_list(s, c); break;
	case DMN_CMD_STATS: cmd_stats(s, c, rq); break;
	case DMN_CMD_TAIL: cmd_tail(s, c, rq); break;
	case DMN_CMD_ATTACH:
	case DMN_CMD_DETACH: cmd_pid(s, c, rq); break;
	case DMN_CMD_STATUS: send_json(s, c, status_json(s), REPLY_OUT_MAX); break;
	case DMN_CMD_WAIT: cmd_wait(s, c, rq); break;
	case DMN_CMD_SYMBOLS:
	case DMN_CMD_VARS: cmd_introspect(s, c, rq); break;
	}
}

static void handle_line(struct dmn_server *s, struct client *c, const char *line, size_t len)
{
	struct dmn_request rq;
	struct diag_error err = { 0 };
	if (dmn_request_parse(line, len, &rq, &err) < 0) {
		reply_error(s, c, err.msg);
		return;
	}
	dispatch(s, c, &rq);
	dmn_request_fini(&rq);
}
/* Handle complete lines; a waiting client's further requests stay buffered until its wait
 * is answered, so replies keep request order. */
static void process_lines(struct dmn_server *s, struct client *c)
{
	size_t start = 0;
	while (!c->waiting && !c->closing && start < c->inlen) {
		char *nl = memchr(c->in + start, '\n', c->inlen - start);
		if (!nl)
			break;
		size_t len = (size_t)(nl - (c->in + start));
		if (len && c->in[start + len - 1] == '\r')
			len--;
		if (len > MAX_LINE) {
			reply_error(s, c, "request too long (max 1048576 bytes)");
			c->closing = true;
		} else if (len) {
			handle_line(s, c, c->in + start, len);
		}
		start = (size_t)(nl - c->in) + 1;
	}
	memmove(c->in, c->in + start, c->inlen - start);
	c->inlen -= start;
	if (c->inlen > MAX_LINE && !memchr(c->in, '\n', c->inlen)) {
		reply_error(s, c, "request too long (max 1048576 bytes)");
		c->closing = true;
	}
}

static int read_in(struct client *c)
{
	for (;;) {
		if (c->incap - c->inlen < 65536) {
			if (c->incap * 2 > 2 * MAX_LINE + 65536)
				return 0; /* full: process_lines decides */
			if (diag_grow((void **)&c->in, &c->incap, c->inlen + 65536, 1, 65536) < 0)
				return -1;
		}
		ssize_t n = recv(c->fd, c->in + c->inlen, c->incap - c->inlen, MSG_DONTWAIT);
		int st = n > 0 ? 0 : io_stalled(n);
		if (st > 0)
			continue;
		if (n <= 0)
			return st;
		c->inlen += (size_t)n;
	}
}

bool dmn_server_handle(struct dmn_server *s, int fd, uint32_t events)
{
	if (fd == s->lfd) {
		accept_clients(s);
		return true;
	}
	size_t i = 0;
	while (i < MAX_CLIENTS && !(s->clients[i] && s->clients[i]->fd == fd))
		i++;
	if (i == MAX_CLIENTS)
		return false;
	struct client *c = s->clients[i];
	bool gone = false;
	if (events & EPOLLOUT)
		gone = flush_out(c) < 0;
	if (!gone && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
		gone = read_in(c) < 0;
		process_lines(s, c);
	}
	if (gone || (c->closing && (c->outlen == 0 || flush_out(c) < 0 || c->outlen == 0)))
		client_close(s, i);
	else
		update_interest(s, c);
	return true;
}

/* ---- tail events: formatted into one reused buffer, no allocation per event ---- */

static void tb_add(struct dmn_server *s, const char *p, size_t n)
{
	if (s->tblen + n + 1 > s->tbcap &&
	    (s->tb_failed || diag_grow((void **)&s->tb, &s->tbcap, s->tblen + n + 1, 1, 4096) < 0)) {
		s->tb_failed = true;
		return;
	}
	memcpy(s->tb + s->tblen, p, n);
	s->tblen += n;
}

/* v in decimal, at least `width` digits (zero-padded) */
static void tb_add_dec(struct dmn_server *s, uint64_t v, int width)
{
	char t[24];
	int i = sizeof(t);
	do {
		t[--i] = (char)('0' + v % 10);
		v /= 10;
	} while ((v || sizeof(t) - (size_t)i < (size_t)width) && i > 0);
	tb_add(s, t + i, sizeof(t) - (size_t)i);
}

/* diag_time_format(ns, true) without a strftime per event: the seconds' text is kept */
static void tb_add_time(struct dmn_server *s, int64_t ns)
{
	int64_t sec = ns / 1000000000;
	if (sec != s->tb_sec || !s->tb_secstr[0]) {
		diag_time_format(sec * 1000000000, false, s->tb_secstr, sizeof(s->tb_secstr));
		s->tb_secstr[strcspn(s->tb_secstr, "Z")] = '\0';
		s->tb_sec = sec;
	}
	tb_add(s, "\"", 1);
	tb_add(s, s->tb_secstr, strlen(s->tb_secstr));
	tb_add(s, ".", 1);
	tb_add_dec(s, (uint64_t)(ns % 1000000000), 9);
	tb_add(s, "Z\"", 2);
}

/* A JSON string as send_json makes it: unsafe characters escaped as diag_json_escape_strings
 * does (diag_text_escape), then quoted ('"' and '\\' escaped; no control is left). */
static void tb_add_str(struct dmn_server *s, const char *str)
{
	char small[512], *t = small;
	size_t len = strlen(str), need = diag_text_escape(small, sizeof(small), str, len, 0);
	if (need >= sizeof(small) && !(t = diag_text_escape_dup(str, 0))) {
		s->tb_failed = true;
		return;
	}
	tb_add(s, "\"", 1);
	for (const char *p = t; *p;) {
		size_t run = strcspn(p, "\"\\");
		tb_add(s, p, run);
		p += run;
		if (*p) {
			char esc[2] = {'\\', *p++};
			tb_add(s, esc, 2);
		}
	}
	tb_add(s, "\"", 1);
	if (t != small)
		free(t);
}

/* A number as cJSON prints one (exact int, else 15 significant digits unless they do not read
 * back, then 17), so a tail line reads as it did when cJSON built it. */
static void tb_add_num(struct dmn_server *s, double d)
{
	char t[40];
	int vi = d >= INT_MAX ? INT_MAX : d <= (double)INT_MIN ? INT_MIN : (int)d;
	if (isnan(d) || isinf(d)) {
		snprintf(t, sizeof(t), "null");
	} else if (d == (double)vi) {
		if (vi < 0)
			tb_add(s, "-", 1);
		tb_add_dec(s, vi < 0 ? (uint64_t)-(int64_t)vi : (uint64_t)vi, 1);
		return;
	} else {
		snprintf(t, sizeof(t), "%1.15g", d);
		double back = strtod(t, NULL), big = fabs(back) > fabs(d) ? fabs(back) : fabs(d);
		if (!(fabs(back - d) <= big * DBL_EPSILON))
			snprintf(t, sizeof(t), "%1.17g", d);
	}
	tb_add(s, t, strlen(t));
}

static void tb_key(struct dmn_server *s, const char *key)
{
	bool first = s->tblen && s->tb[s->tblen - 1] == '{';
	tb_add(s, first ? "\"" : ",\"", first ? 1 : 2);
	tb_add(s, key, strlen(key));
	tb_add(s, "\":", 2);
}

/* {"event":{"id","name","type","pid","tid","time","kind","value","text"}} and a newline, in
 * s->tb; false when it could not be built. */
static bool tail_event(struct dmn_server *s, const struct dmn_mspec *ms,
		       const struct diag_engine_hit *hit)
{
	const struct diag_value *v = &hit->value;
	const char *text = v->text ? v->text : "";
	s->tblen = 0;
	s->tb_failed = false;
	tb_add(s, "{\"event\":{", 10);
	tb_key(s, "id");
	tb_add_str(s, ms->spec->id);
	tb_key(s, "name");
	tb_add_str(s, ms->spec->name);
	tb_key(s, "type");
	tb_add_str(s, ms->spec->type);
	tb_key(s, "pid");
	tb_add_num(s, hit->pid);
	tb_key(s, "tid");
	tb_add_num(s, hit->tid);
	tb_key(s, "time");
	tb_add_time(s, (int64_t)hit->time_ns);
	tb_key(s, "kind");
	tb_add_str(s, diag_event_kind_name(hit->kind));
	tb_key(s, "value");
	switch (v->kind) {
	case DIAG_VALUE_SIGNED: tb_add_num(s, (double)v->i); break;
	case DIAG_VALUE_UNSIGNED: tb_add_num(s, (double)v->u); break;
	case DIAG_VALUE_FLOAT: tb_add_num(s, v->f); break;
	case DIAG_VALUE_STRING: tb_add_str(s, text); break;
	default: tb_add(s, "null", 4); break;
	}
	tb_key(s, "text");
	tb_add_str(s, text);
	if (hit->count > 1) { /* a probe counted in the target: its hits since the last drain */
		tb_key(s, "count");
		tb_add_num(s, (double)hit->count);
	}
	tb_add(s, "}}\n", 3);
	return !s->tb_failed;
}

static void tail_send(struct dmn_server *s, const struct dmn_mspec *ms,
		      const struct diag_engine_hit *hit)
{
	bool built = false;
	for (size_t i = 0; i < MAX_CLIENTS; i++) {
		struct client *c = s->clients[i];
		if (!c || !c->tail || c->closing || (c->tail_id[0] && strcmp(c->tail_id, ms->spec->id)))
			continue;
		if (!built && !(built = tail_event(s, ms, hit))) /* once, only when someone listens */
			return;
		if (c->tail_mark > c->outlen) /* the loop sent some since */
			c->tail_mark = c->outlen;
		if (!append_out(c, s->tb, s->tblen, TAIL_OUT_MAX)) {
			c->tail_dropped++;
			s->tail_dropped++;
		} else if (c->outlen >= c->tail_mark + TAIL_FLUSH) {
			/* once per 64 KiB appended, not per event while the socket is full: then
			 * EPOLLOUT sends the rest */
			if (flush_out(c) < 0)
				c->closing = true;
			c->tail_mark = c->outlen;
		}
		update_interest(s, c);
	}
}

void dmn_server_on_hit(struct dmn_server *s, const struct dmn_mspec *ms,
			const struct diag_engine_hit *hit)
{
	if (s->ntail && hit->raw) { /* a tail client needs the text now */
		struct diag_engine_hit h = *hit;
		h.raw = NULL;
		diag_engine_value_render(hit->raw, s->rendered, sizeof(s->rendered), &h.value);
		tail_send(s, ms, &h);
	} else if (s->ntail) {
		tail_send(s, ms, hit);
	}
	for (size_t i = 0; s->nwaiting && i < MAX_CLIENTS; i++) { /* none: nothing per hit */
		struct client *c = s->clients[i];
		if (c && c->waiting && strcmp(c->wait_id, ms->spec->id) == 0 &&
		    ms->hits >= c->wait_hits)
			wait_reply(s, c, true, ms->hits); /* its buffered requests run in tick */
	}
}

int64_t dmn_server_tick(struct dmn_server *s, int64_t now_ns)
{
	int64_t next = 0;
	for (size_t i = 0; i < MAX_CLIENTS; i++) {
		struct client *c = s->clients[i];
		if (c && c->closing && c->outlen == 0) {
			client_close(s, i);
			continue;
		}
		if (c && !c->waiting && c->inlen)
			process_lines(s, c);
		if (!c || !c->waiting)
			continue;
		struct dmn_mspec *ms = dmn_manager_find(s->m, c->wait_id);
		uint64_t hits = ms ? ms->hits : 0;
		if (hits >= c->wait_hits || c->wait_deadline_ns <= now_ns) {
			wait_reply(s, c, hits >= c->wait_hits, hits);
			process_lines(s, c);
		} else if (!next || c->wait_deadline_ns < next) {
			next = c->wait_deadline_ns;
		}
	}
	return next;
}
