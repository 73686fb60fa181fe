/* diagnosed_manager: makes the traced processes match the specs. Applies specs through
 * engine.h, owns one instrument instance per spec, keeps the `applied` records, enforces
 * lifespans and persists through the store before any change is acknowledged. Runs on the
 * engine's thread only (the emit sink and the queue's worker aside); never blocks it on a
 * plugin (events go through the queue). It calls down only (engine, instrument, spec, store,
 * indexer, log): whoever listens to hits (the control server) registers a callback, whoever
 * watches probes (the governor) asks through dmn_manager_each_live. No ELF, DWARF or ptrace
 * code of its own. */
#ifndef DMN_MANAGER_H
#define DMN_MANAGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "engine/engine.h"
#include "instrument/host.h"
#include "instrument/queue.h"
#include "procwatch/select.h"
#include "spec/spec.h"
#include "store/store.h"
#include "util/error.h"

/* One spec as the daemon runs it. The engine cookie of its probes is this struct's address. */
struct dmn_mspec {
	struct diag_spec *spec;       /* owns the applied records */
	struct diag_instrument *inst; /* NULL when the plugin failed (error in inst_error) */
	char inst_error[DIAG_ERRMSG_MAX];
	uint64_t hits;                /* all processes, since the spec was (re)applied */
	uint64_t dropped;
	bool expired;
	/* `select` as this machine resolves it (the executable's identity taken at each scan, so
	 * a replaced binary is found again); NULL without select */
	struct diag_selector *sel;
	char sel_error[DIAG_ERRMSG_MAX]; /* why the selector names nothing here, "" when fine */
	size_t refused;                  /* matching processes the per-spec limit turned away */
	char *target; /* the target as applied: a select.exe library's MODULE put in front of a
		       * target without one ("libfoo.so:f"); NULL: spec->target */
	uint64_t store_version; /* from the shared store at this version (0: added here) */
};

/* A hit the manager has counted, for whoever listens (the control server's tail and wait
 * clients). Called on the engine's thread; must never block. */
typedef void (*dmn_hit_fn)(void *ctx, const struct dmn_mspec *ms,
			   const struct diag_engine_hit *hit);

struct dmn_pidset {
	pid_t *pids;
	size_t n, cap;
};

#define DMN_MANAGER_TARGETS_MAX 256 /* processes traced at most (attach, --pid, pid lists,
				     * selectors): the cap of --max-traced */
#define DMN_MANAGER_SPEC_PROCS_DEFAULT 64 /* processes one selector spec takes (and tries) at
					   * most, by default (--max-processes-per-spec) */
#define DMN_MANAGER_RECHECK_MAX 64 /* processes whose exec the engine reported, checked again
				    * against the selectors at the next tick */

struct dmn_manager {
	struct diag_engine *engine;
	struct diag_plugin_host *plugins;
	struct diag_event_queue *queue;
	struct diag_store *store;
	dmn_hit_fn on_hit;            /* may be NULL (dmn_manager_on_hit) */
	void *on_hit_ctx;
	struct diag_indexer *indexer; /* parses target files for the engine (sandboxed worker) */
	char host[256];
	struct dmn_mspec **specs;
	size_t nspecs, cap;
	struct dmn_mspec *hit_ms;     /* the spec of the last hit (mspec_of_cookie) */
	unsigned next_id;
	uint64_t hits;
	uint64_t disables; /* probes the governor disabled in a process, since the start */
	bool allow_pid1; /* --allow-pid1: init may be traced */
	bool print_events; /* events to stdout (one-shot runs, --foreground); else only to clients */
	bool fold_due;                /* a process exited: fold old records at the next tick */
	size_t targets_max;           /* processes traced at most (<= DMN_MANAGER_TARGETS_MAX) */
	size_t spec_procs_max;        /* processes one selector spec takes at most */
	struct dmn_pidset selected;   /* traced because a selector took them (or forks of those):
				       * detached once no spec holds them */
	struct dmn_pidset by_hand;    /* detached by hand from a selector: left alone until an
				       * attach (or until they exit) */
	pid_t recheck[DMN_MANAGER_RECHECK_MAX]; /* exec'd under the engine: match them again */
	size_t nrecheck;
	bool rescan_due;              /* recheck overflowed: scan /proc at the next tick */
	unsigned select_gen;          /* changes when the set of selector specs changes */
	/* called at once when select_gen changes (set by the watch: the gates are marked before
	 * a new spec's scan and before its add is answered, so a process started right after
	 * add-probe waits at the gate); NULL: the watch's next tick */
	void (*on_select)(void *ctx);
	void *on_select_ctx;
	/* what the watch gates now, for status ("gates"); NULL: nothing */
	cJSON *(*gates_json)(void *ctx);
	struct {                      /* the library a process is opening at the library gate
				       * (dmn_manager_select_opening): its selector takes it as if
				       * it mapped it; pid 0 otherwise */
		pid_t pid;
		uint64_t dev, ino;
	} opening;
	/* The shared store as the fleet sync last saw it (set by diagnosed_fleet, shown by
	 * status); url "" when the store is the JSON file. */
	struct {
		char url[300];
		bool connected;
		char error[DIAG_ERRMSG_MAX];
		char *problems; /* specs not run: records that do not parse, limits (a line each) */
	} shared;
};

/* Per spec, the records of processes that are gone beyond the last this many are folded into
 * one summary record "HOST:exited" (its `processes`, `hits` and `dropped` are their sums). */
#define DMN_MANAGER_EXITED_KEEP 16

int dmn_manager_init(struct dmn_manager *m, const char *plugin_dir, const char *store_path,
		     struct diag_error *err);
/* The engine reads ELF and DWARF through a sandboxed diagnose-indexer (lib/indexer). */
struct diag_indexer_opts;
int dmn_manager_use_indexer(struct dmn_manager *m, const struct diag_indexer_opts *o,
			    struct diag_error *err);
/* Removes every probe and detaches (diag_engine_free), saves the store, frees everything. */
void dmn_manager_fini(struct dmn_manager *m);
/* Every hit, after it is counted, goes to fn(ctx, ...) too (NULL: to nobody). */
void dmn_manager_on_hit(struct dmn_manager *m, dmn_hit_fn fn, void *ctx);
/* Load the store and apply its unexpired specs. Problems go to stderr; never fatal. */
void dmn_manager_load(struct dmn_manager *m);
/* Add or replace (same id) a spec; takes ownership of s. Apply errors are not failures (they
 * are in applied); failures are limits and store errors. *out: the running spec. */
int dmn_manager_add(struct dmn_manager *m, struct diag_spec *s, struct dmn_mspec **out,
		    struct diag_error *err);
int dmn_manager_remove(struct dmn_manager *m, const char *id, struct diag_error *err);
/* Run a spec read from the shared store at version (takes s; its lastmodified is the
 * store's, so its lifespan runs from the client's add on every host). Replaces a spec of the
 * same id. Failures are limits. */
int dmn_manager_adopt(struct dmn_manager *m, struct diag_spec *s, uint64_t version,
		      struct diag_error *err);
int dmn_manager_attach(struct dmn_manager *m, pid_t pid, struct diag_error *err);
/* Trace pid (policy: pid 1 only with allow_pid1; the targets limit), nothing applied or
 * saved. Errors read "pid N: ..." (the field of attach requests and specs). */
int dmn_manager_attach_process(struct dmn_manager *m, pid_t pid, struct diag_error *err);
int dmn_manager_detach(struct dmn_manager *m, pid_t pid, struct diag_error *err);
struct dmn_mspec *dmn_manager_find(struct dmn_manager *m, const char *id);
/* Fold old records and expire what is due; returns the earliest future expiry in ns (0:
 * none). */
int64_t dmn_manager_tick(struct dmn_manager *m, int64_t now_ns);
/* The events pushed since the last call, to the worker (the queue publishes in batches):
 * call before the loop waits. */
void dmn_manager_flush(struct dmn_manager *m);
/* Number of (spec, process) pairs currently applied or pending. */
size_t dmn_manager_count_live(const struct dmn_manager *m);
int dmn_manager_save(struct dmn_manager *m, struct diag_error *err);
/* Remove ms's probe from pid (bytes restored); its record becomes `disabled` with why. */
void dmn_manager_disable(struct dmn_manager *m, struct dmn_mspec *ms, pid_t pid,
			 const char *why);

/* The one walk over live records: fn(arg, ms, a, info) for every record whose probe is applied,
 * with the engine's figures for it (diag_engine_probe_info). fn may change records (disable
 * one through dmn_manager_disable), never the list of specs or records. */
typedef void (*dmn_live_fn)(void *arg, struct dmn_mspec *ms, struct diag_applied *a,
			    const struct diag_probe_info *info);
void dmn_manager_each_live(struct dmn_manager *m, dmn_live_fn fn, void *arg);

/* Processes started after the probe (issue 11). The watch (diagnosed_watch.h) reports what it
 * learns; the manager decides. */
/* pid was seen starting or renamed (exec, comm change; adopted: attached and held by
 * diag_engine_adopt_exec, to be released by the caller): every selector spec that takes it
 * is applied, specs that no longer take it are removed from it, and a process no spec holds
 * any more is detached (later, at the next tick, when adopted). */
void dmn_manager_select_pid(struct dmn_manager *m, pid_t pid, bool adopted);
/* The same for pid, whose dynamic linker is opening the library (dev, ino) at the library gate
 * (adopted: attached by diag_engine_adopt_open and held, to be released by the caller): a
 * select.exe naming that library takes it as if it mapped it (the probe is pending until
 * the library is mapped). */
void dmn_manager_select_opening(struct dmn_manager *m, pid_t pid, uint64_t dev, uint64_t ino,
				bool adopted);
/* True when some live spec whose select.exe is the library (dev, ino) would take pid as it
 * opens it and has no probe in it yet (and has room for it: --max-processes-per-spec). */
bool dmn_manager_lib_wants(struct dmn_manager *m, pid_t pid, uint64_t dev, uint64_t ino);
/* The shared libraries named by live selector specs' select.exe, to gate at their open: up to
 * cap paths (valid until select_gen changes). Returns the count. */
size_t dmn_manager_lib_paths(const struct dmn_manager *m, const char **out, size_t cap);
/* Scan /proc for every selector spec (events were lost, or at start). */
void dmn_manager_rescan(struct dmn_manager *m);
/* True when some live spec has a selector (the watch then listens to process events). */
bool dmn_manager_has_selectors(const struct dmn_manager *m);
/* The executables (not libraries) named by live selector specs, to gate at exec: up to cap
 * paths (valid until the specs change: select_gen). Returns the count. */
size_t dmn_manager_gate_paths(const struct dmn_manager *m, const char **out, size_t cap);
/* True while one more process may be traced (--max-traced). */
bool dmn_manager_has_room(struct dmn_manager *m);
/* True when pid is traced because a selector took it. */
bool dmn_manager_selected(const struct dmn_manager *m, pid_t pid);

cJSON *dmn_manager_spec_json(const struct dmn_manager *m, const struct dmn_mspec *ms);
void dmn_manager_refresh_counts(struct dmn_manager *m);
cJSON *dmn_manager_list_json(const struct dmn_manager *m);
/* NULL with err when id names no spec. With drain, the reports include every event accepted
 * so far (it waits for the event worker: for `stats`); without, what the instruments hold now
 * (a Prometheus scrape must never wait for a plugin). */
cJSON *dmn_manager_stats_json(struct dmn_manager *m, const char *id, bool drain,
			      struct diag_error *err);
cJSON *dmn_manager_status_json(struct dmn_manager *m);

#endif
