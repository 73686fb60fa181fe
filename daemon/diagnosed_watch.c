/* diagnosed_watch: see diagnosed_watch.h. Owns the gate and the connector and nothing else;
 * asks the engine to adopt a gated exec and the manager what to probe. Never ptraces itself,
 * never leaves a gate event unanswered. */
#include "diagnosed_watch.h"

#include "log.h"
#include "procwatch/connector.h"
#include "procwatch/dirwatch.h"
#include "procwatch/execgate.h"
#include "procwatch/libgate.h"
#include "util/procfs.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

#define WATCH_GATE_PATHS 64 /* executables gated at most (more: found by events, early) */
#define WATCH_BATCH 64

struct dmn_watch {
	struct dmn_manager *m;
	int epfd;
	struct diag_execgate *gate;
	struct diag_libgate *libgate;
	struct diag_dirwatch *dirs; /* the directories of the gated paths */
	struct {              /* the library gate's opens, summed over its groups (logged at
			       * the end: the hold's figures) */
		uint64_t held, hold_ns, hold_max_ns;
		struct diag_libgate_stats at_once; /* of the groups closed already */
	} lib;
	struct diag_procev *events;
	unsigned gen;  /* the manager's select_gen the marks were made for */
	bool synced;
	bool test_kill; /* DIAG_TEST_KILL_AT_ADOPT (the fault suite): SIGKILL ourselves while a
			 * process is held at its exec, probed and not released */
	bool test_kill_open; /* DIAG_TEST_KILL_AT_LIBOPEN (e2e): SIGKILL ourselves while a
			      * library's open is held at the gate, unanswered */
};

static void on_select(void *arg);
static cJSON *gates_json(void *arg);

int dmn_watch_new(struct dmn_manager *m, int epfd, struct dmn_watch **out)
{
	struct dmn_watch *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->m = m;
	w->epfd = epfd;
	const char *t = getenv("DIAG_TEST_KILL_AT_ADOPT");
	w->test_kill = t && *t == '1';
	t = getenv("DIAG_TEST_KILL_AT_LIBOPEN");
	w->test_kill_open = t && *t == '1';
	m->on_select = on_select;
	m->gates_json = gates_json;
	m->on_select_ctx = w;
	*out = w;
	return 0;
}

static void close_gate(struct dmn_watch *w)
{
	diag_execgate_close(w->gate); /* the kernel allows what was pending */
	w->gate = NULL;
}

static void close_libgate(struct dmn_watch *w)
{
	if (!w->libgate)
		return;
	struct diag_libgate_stats st;
	diag_libgate_stats(w->libgate, &st);
	w->lib.at_once.self += st.self;
	w->lib.at_once.other += st.other;
	w->lib.at_once.handed += st.handed;
	w->lib.at_once.overflow += st.overflow;
	diag_libgate_close(w->libgate); /* allows what was handed and not read */
	w->libgate = NULL;
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
	if (w->m->on_select_ctx == w) {
		w->m->on_select = NULL;
		w->m->gates_json = NULL;
	}
	close_gate(w);
	close_libgate(w);
	close_events(w);
	diag_dirwatch_close(w->dirs);
	const struct diag_libgate_stats *a = &w->lib.at_once;
	if (a->handed || a->self || a->other)
		dmn_info("library gate: %llu opens held (mean %.1f us, max %.1f us); allowed at once: "
			 "%llu by this daemon or its children, %llu not by a dynamic linker, %llu "
			 "over the hand-over's room",
			 (unsigned long long)w->lib.held,
			 w->lib.held ? (double)w->lib.hold_ns / (double)w->lib.held / 1e3 : 0.0,
			 (double)w->lib.hold_max_ns / 1e3, (unsigned long long)a->self,
			 (unsigned long long)a->other, (unsigned long long)a->overflow);
	free(w);
}

static int watch_fd(struct dmn_watch *w, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
	return epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

/* Mark exactly the executables named now, the group kept (closing it would let an exec
 * waiting at it through, unheld); the group is opened at the first and closed with the last. */
static void sync_gate(struct dmn_watch *w)
{
	const char *paths[WATCH_GATE_PATHS];
	size_t n = dmn_manager_gate_paths(w->m, paths, WATCH_GATE_PATHS);
	struct diag_error err = { 0 };
	if (!n) {
		close_gate(w);
		return;
	}
	if (!w->gate && (diag_execgate_open(&w->gate, &err) < 0 ||
			 watch_fd(w, diag_execgate_fd(w->gate)) < 0)) {
		dmn_log("exec gate: %s; new processes of select.exe are taken at their exec event "
			"(early, not before their first instruction)", err.msg[0] ? err.msg : strerror(errno));
		close_gate(w);
		return;
	}
	int failed = diag_execgate_sync(w->gate, paths, n, &err);
	if (failed)
		dmn_log("exec gate: %s%s", err.msg, failed > 1 ? " (and others)" : "");
}

/* The same for the shared libraries named now. */
static void sync_libgate(struct dmn_watch *w)
{
	const char *paths[WATCH_GATE_PATHS];
	size_t n = dmn_manager_lib_paths(w->m, paths, WATCH_GATE_PATHS);
	struct diag_error err = { 0 };
	if (!n) {
		close_libgate(w);
		return;
	}
	if (!w->libgate && (diag_libgate_open(&w->libgate, &err) < 0 ||
			    watch_fd(w, diag_libgate_fd(w->libgate)) < 0)) {
		dmn_log("library gate: %s; processes that load a select.exe library later are "
			"taken at scans only", err.msg[0] ? err.msg : strerror(errno));
		close_libgate(w);
		return;
	}
	int failed = diag_libgate_sync(w->libgate, paths, n, &err);
	if (failed)
		dmn_log("library gate: %s%s", err.msg, failed > 1 ? " (and others)" : "");
}

/* The directories of every select.exe path, so a file replaced under its name is gated at
 * once (procwatch/dirwatch.h). */
static void sync_dirs(struct dmn_watch *w)
{
	const char *paths[2 * WATCH_GATE_PATHS];
	size_t n = dmn_manager_gate_paths(w->m, paths, WATCH_GATE_PATHS);
	n += dmn_manager_lib_paths(w->m, paths + n, WATCH_GATE_PATHS);
	struct diag_error err = { 0 };
	if (!n) {
		diag_dirwatch_close(w->dirs);
		w->dirs = NULL;
		return;
	}
	if (!w->dirs && (diag_dirwatch_open(&w->dirs, &err) < 0 ||
			 watch_fd(w, diag_dirwatch_fd(w->dirs)) < 0)) {
		dmn_log("%s; a select.exe file replaced on disk is gated again at the next change of "
			"the specs or rescan", err.msg[0] ? err.msg : strerror(errno));
		diag_dirwatch_close(w->dirs);
		w->dirs = NULL;
		return;
	}
	int failed = diag_dirwatch_sync(w->dirs, paths, n, &err);
	if (failed)
		dmn_log("directory watch: %s%s", err.msg, failed > 1 ? " (and others)" : "");
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

/* Open, mark or close what the specs need now; false when no spec has a selector. */
static bool sync_all(struct dmn_watch *w)
{
	w->synced = true;
	w->gen = w->m->select_gen;
	if (!dmn_manager_has_selectors(w->m)) {
		close_gate(w);
		close_libgate(w);
		close_events(w);
		sync_dirs(w);
		return false;
	}
	open_events(w);
	sync_gate(w);
	sync_libgate(w);
	sync_dirs(w);
	return true;
}

/* The manager's select_gen changed inside a request (a spec added or removed): the gates are
 * marked before the spec's scan and before the answer. */
static void on_select(void *arg)
{
	sync_all(arg);
}

static cJSON *marks_json(const struct diag_marks *ms)
{
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; ms && i < ms->n; i++) {
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "path", ms->v[i].path);
		cJSON_AddNumberToObject(e, "dev", (double)ms->v[i].dev);
		cJSON_AddNumberToObject(e, "ino", (double)ms->v[i].ino);
		cJSON_AddItemToArray(a, e);
	}
	return a;
}

/* status "gates": the files each gate marks now, by identity ({"exec": [...], "library":
 * [...]}, each {"path", "dev", "ino"}). */
static cJSON *gates_json(void *arg)
{
	struct dmn_watch *w = arg;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "exec", marks_json(w->gate ? diag_execgate_marks(w->gate) : NULL));
	cJSON_AddItemToObject(o, "library",
			      marks_json(w->libgate ? diag_libgate_marks(w->libgate) : NULL));
	return o;
}

void dmn_watch_tick(struct dmn_watch *w)
{
	if (!w || (w->synced && w->gen == w->m->select_gen))
		return;
	/* execs between the specs' scan and the marks: found by this scan */
	if (sync_all(w))
		dmn_manager_rescan(w->m);
}

struct allow_ctx {
	struct diag_execgate *gate;
	struct diag_libgate *libgate;
	struct diag_dirwatch *dirs; /* the directories of the gated paths */
	struct {              /* the library gate's opens, summed over its groups (logged at
			       * the end: the hold's figures) */
		uint64_t held, hold_ns, hold_max_ns;
		struct diag_libgate_stats at_once; /* of the groups closed already */
	} lib;
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

struct allow_open_ctx {
	struct dmn_watch *w;
	struct diag_libgate_event *ev;
	bool answered;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int allow_open(void *arg)
{
	struct allow_open_ctx *c = arg;
	if (c->answered)
		return 0;
	c->answered = true;
	uint64_t held = mono_ns() - c->ev->t_ns;
	c->w->lib.held++;
	c->w->lib.hold_ns += held;
	if (held > c->w->lib.hold_max_ns)
		c->w->lib.hold_max_ns = held;
	return diag_libgate_allow(c->w->libgate, c->ev);
}

/* One library open by a dynamic linker at the gate: a process a library selector wants and
 * that has no probe of it yet is adopted (held as the open returns, before the library is
 * mapped), probed (pending: placed when the library is mapped) and let go; any other open is
 * allowed at once. Limits and refusals are recorded by the manager, after the open went on. */
static void lib_one(struct dmn_watch *w, struct diag_libgate_event *ev)
{
	struct allow_open_ctx c = { .w = w, .ev = ev };
	struct dmn_manager *m = w->m;
	struct diag_engine *e = m->engine;
	if (w->test_kill_open)
		raise(SIGKILL);
	bool traced = diag_engine_attached(e, ev->tgid);
	if (!dmn_manager_lib_wants(m, ev->tgid, ev->dev, ev->ino) ||
	    (!traced && !dmn_manager_has_room(m))) {
		allow_open(&c);
		dmn_manager_select_opening(m, ev->tgid, ev->dev, ev->ino, false);
		return;
	}
	pid_t pid = 0;
	struct diag_error err = { 0 };
	int r = diag_engine_adopt_open(e, ev->tid, allow_open, &c, &pid, &err);
	allow_open(&c); /* the contract answers it; this is the belt to its braces */
	if (r < 0) {
		dmn_info("library gate: %s", err.msg);
		return;
	}
	dmn_manager_select_opening(m, pid, ev->dev, ev->ino, !traced);
	diag_engine_release(e, pid);
}

static void run_libgate(struct dmn_watch *w)
{
	struct diag_libgate_event ev[WATCH_BATCH];
	int n = diag_libgate_read(w->libgate, ev, WATCH_BATCH);
	for (int i = 0; i < n; i++)
		lib_one(w, &ev[i]);
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

/* A gated name changed (a file replaced under it): mark what it names now, then the scan
 * takes what started from it before the mark. */
static void run_dirs(struct dmn_watch *w)
{
	if (!diag_dirwatch_read(w->dirs))
		return;
	sync_gate(w);
	sync_libgate(w);
	dmn_manager_rescan(w->m);
}

bool dmn_watch_owns(const struct dmn_watch *w, int fd)
{
	return w && ((w->dirs && fd == diag_dirwatch_fd(w->dirs)) || (w->gate && fd == diag_execgate_fd(w->gate)) ||
		     (w->libgate && fd == diag_libgate_fd(w->libgate)) ||
		     (w->events && fd == diag_procev_fd(w->events)));
}

void dmn_watch_run(struct dmn_watch *w, int fd)
{
	if (w->gate && fd == diag_execgate_fd(w->gate))
		run_gate(w);
	else if (w->libgate && fd == diag_libgate_fd(w->libgate))
		run_libgate(w);
	else if (w->dirs && fd == diag_dirwatch_fd(w->dirs))
		run_dirs(w);
	else if (w->events && fd == diag_procev_fd(w->events))
		run_events(w);
}
