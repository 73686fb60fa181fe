/* diagnosed_watch: see diagnosed_watch.h. Owns the gate and the connector and nothing else;
 * asks the engine to adopt a gated exec and the manager what to probe. Never ptraces itself,
 * never leaves a gate event unanswered. */
#include "diagnosed_watch.h"

#include "log.h"
#include "procwatch/connector.h"
#include "procwatch/execgate.h"
#include "util/procfs.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#define WATCH_GATE_PATHS 64 /* executables gated at most (more: found by events, early) */
#define WATCH_BATCH 64

struct dmn_watch {
	struct dmn_manager *m;
	int epfd;
	struct diag_execgate *gate;
	struct diag_procev *events;
	unsigned gen;  /* the manager's select_gen the marks were made for */
	bool synced;
	bool test_kill; /* DIAG_TEST_KILL_AT_ADOPT (the fault suite): SIGKILL ourselves while a
			 * process is held at its exec, probed and not released */
};

int dmn_watch_new(struct dmn_manager *m, int epfd, struct dmn_watch **out)
{
	struct dmn_watch *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->m = m;
	w->epfd = epfd;
	const char *t = getenv("DIAG_TEST_KILL_AT_ADOPT");
	w->test_kill = t && *t == '1';
	*out = w;
	return 0;
}

static void close_gate(struct dmn_watch *w)
{
	diag_execgate_close(w->gate); /* the kernel allows what was pending */
	w->gate = NULL;
}

static void close_events(struct dmn_watch *w)
{
	diag_procev_close(w->events);
	w->events = NULL;
}

void dmn_watch_free(struct dmn_watch *w)
{
	if (!w)
		return;
	close_gate(w);
	close_events(w);
	free(w);
}

static int watch_fd(struct dmn_watch *w, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
	return epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

/* A new gate group for the executables named now (a group is cheap; marks of files that were
 * replaced or deselected go with the old one). */
static void open_gate(struct dmn_watch *w)
{
	const char *paths[WATCH_GATE_PATHS];
	size_t n = dmn_manager_gate_paths(w->m, paths, WATCH_GATE_PATHS);
	close_gate(w);
	if (!n)
		return;
	struct diag_error err = { 0 };
	if (diag_execgate_open(&w->gate, &err) < 0 || watch_fd(w, diag_execgate_fd(w->gate)) < 0) {
		dmn_log("exec gate: %s; new processes of select.exe are taken at their exec event "
			"(early, not before their first instruction)", err.msg[0] ? err.msg : strerror(errno));
		close_gate(w);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		diag_error_clear(&err);
		if (diag_execgate_add(w->gate, paths[i], &err) < 0)
			dmn_log("exec gate: %s", err.msg);
	}
}

static void open_events(struct dmn_watch *w)
{
	struct diag_error err = { 0 };
	if (w->events)
		return;
	if (diag_procev_open(&w->events, &err) < 0 || watch_fd(w, diag_procev_fd(w->events)) < 0) {
		dmn_log("process events: %s; selectors take processes at add, at load and at "
			"exec gates only", err.msg[0] ? err.msg : strerror(errno));
		close_events(w);
	}
}

void dmn_watch_tick(struct dmn_watch *w)
{
	if (!w || (w->synced && w->gen == w->m->select_gen))
		return;
	w->synced = true;
	w->gen = w->m->select_gen;
	if (!dmn_manager_has_selectors(w->m)) {
		close_gate(w);
		close_events(w);
		return;
	}
	open_events(w);
	open_gate(w);
	/* execs between the specs' scan and the marks: found by this scan */
	dmn_manager_rescan(w->m);
}

struct allow_ctx {
	struct diag_execgate *gate;
	struct diag_execgate_event *ev;
	bool answered;
};

static int allow_exec(void *arg)
{
	struct allow_ctx *c = arg;
	if (c->answered)
		return 0;
	c->answered = true;
	return diag_execgate_allow(c->gate, c->ev);
}

/* One exec at the gate: a process not traced yet is adopted (held before its new image
 * runs), probed by the manager, and let go. */
static void gate_one(struct dmn_watch *w, struct diag_execgate_event *ev)
{
	struct allow_ctx c = { .gate = w->gate, .ev = ev };
	unsigned long long tgid = 0;
	bool known = diag_proc_status_field(ev->tid, "Tgid", 10, &tgid) && tgid > 0;
	struct diag_engine *e = w->m->engine;
	/* traced already: the engine sees the exec itself; no room: the connector's exec event
	 * records the limit in the process's entry */
	if (!known || diag_engine_attached(e, (pid_t)tgid) || dmn_manager_selected(w->m, (pid_t)tgid) ||
	    !dmn_manager_has_room(w->m)) {
		allow_exec(&c);
		return;
	}
	pid_t pid = 0;
	struct diag_error err = { 0 };
	int r = diag_engine_adopt_exec(e, ev->tid, allow_exec, &c, &pid, &err);
	allow_exec(&c); /* the contract answers it; this is the belt to its braces */
	if (r < 0) {
		dmn_info("exec gate: %s", err.msg);
		/* the connector's exec event tries again, and records the reason */
		return;
	}
	dmn_manager_select_pid(w->m, pid, true);
	if (w->test_kill)
		raise(SIGKILL);
	diag_engine_release(e, pid);
}

static void run_gate(struct dmn_watch *w)
{
	struct diag_execgate_event ev[WATCH_BATCH];
	int n = diag_execgate_read(w->gate, ev, WATCH_BATCH);
	for (int i = 0; i < n; i++)
		gate_one(w, &ev[i]);
}

static void run_events(struct dmn_watch *w)
{
	struct diag_procev_event ev[WATCH_BATCH];
	int n;
	bool lost = false;
	while ((n = diag_procev_read(w->events, ev, WATCH_BATCH)) > 0) {
		for (int i = 0; i < n; i++) {
			if (ev[i].kind == DIAG_PROCEV_LOST)
				lost = true;
			else if ((ev[i].kind == DIAG_PROCEV_EXEC &&
				  !diag_engine_attached(w->m->engine, ev[i].pid)) ||
				 ev[i].kind == DIAG_PROCEV_COMM) /* a traced one's exec: the engine's */
				dmn_manager_select_pid(w->m, ev[i].pid, false);
		}
		if (n < WATCH_BATCH)
			break;
	}
	if (lost)
		dmn_manager_rescan(w->m);
}

bool dmn_watch_owns(const struct dmn_watch *w, int fd)
{
	return w && ((w->gate && fd == diag_execgate_fd(w->gate)) ||
		     (w->events && fd == diag_procev_fd(w->events)));
}

void dmn_watch_run(struct dmn_watch *w, int fd)
{
	if (w->gate && fd == diag_execgate_fd(w->gate))
		run_gate(w);
	else if (w->events && fd == diag_procev_fd(w->events))
		run_events(w);
}
