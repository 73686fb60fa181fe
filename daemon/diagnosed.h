/* diagnosed internals shared by its three files: the main loop (diagnosed.c), the manager
 * that applies specs through the engine and keeps `applied` records (diagnosed_manager.c) and
 * the control server (diagnosed_server.c). Everything here runs on the main thread (the
 * engine's thread) except the emit sink and the queue's worker. No ELF, DWARF or ptrace code. */
#ifndef DIAGNOSED_H
#define DIAGNOSED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "engine/engine.h"
#include "instrument/host.h"
#include "instrument/queue.h"
#include "spec/spec.h"
#include "store/store.h"
#include "util/error.h"

struct diag_server;
struct diag_governor;

/* The overhead governor's budgets (docs/reliability.md). 0 means no limit. Per probe means per
 * (spec, process); the totals are over every probe of the daemon. */
#define DIAG_GOV_DEFAULT_HITS_PER_SEC 0.0
#define DIAG_GOV_DEFAULT_STOPPED_MS_PER_SEC 0.0 /* the percent budget below covers it */
#define DIAG_GOV_DEFAULT_STOPPED_PERCENT 10.0   /* of one CPU's time, per process */
#define DIAG_GOV_DEFAULT_TOTAL_HITS_PER_SEC 0.0
#define DIAG_GOV_DEFAULT_TOTAL_STOPPED_MS_PER_SEC 900.0
struct diag_governor_limits {
	double max_hits_per_sec, max_stopped_ms_per_sec;             /* per probe, by default */
	double max_stopped_percent; /* threads of one process stopped by our hits, % of wall time */
	double max_total_hits_per_sec, max_total_stopped_ms_per_sec; /* all probes together */
};

/* One spec as the daemon runs it. The engine cookie of its probes is this struct's address. */
struct diag_mspec {
	struct diag_spec *spec;       /* owns the applied records */
	struct diag_instrument *inst; /* NULL when the plugin failed (error in inst_error) */
	char inst_error[DIAG_ERRMSG_MAX];
	uint64_t hits;                /* all processes, since the spec was (re)applied */
	uint64_t dropped;
	bool expired;
};

#define DIAG_MANAGER_TARGETS_MAX 256 /* processes attached by attach/--pid/spec pid lists */

struct diag_manager {
	struct diag_engine *engine;
	struct diag_plugin_host *plugins;
	struct diag_event_queue *queue;
	struct diag_store *store;
	struct diag_server *server;   /* tail and wait notifications; may be NULL */
	struct diag_governor *governor;
	struct diag_indexer *indexer; /* parses target files for the engine (sandboxed worker) */
	char host[256];
	struct diag_mspec **specs;
	size_t nspecs;
	unsigned next_id;
	uint64_t hits;
	bool allow_pid1; /* --allow-pid1: init may be traced */
	bool fold_due;                /* a process exited: fold old records at the next tick */
};

/* Per spec, the records of processes that are gone beyond the last this many are folded into
 * one summary record "HOST:exited" (its `processes`, `hits` and `dropped` are their sums). */
#define DIAG_MANAGER_EXITED_KEEP 16

/* The manager. ---------------------------------------------------------------------- */
int diag_manager_init(struct diag_manager *m, const char *plugin_dir, const char *store_path,
		      struct diag_error *err);
/* The engine reads ELF and DWARF through a sandboxed diagnose-indexer (lib/indexer). */
struct diag_indexer_opts;
int diag_manager_use_indexer(struct diag_manager *m, const struct diag_indexer_opts *o,
			     struct diag_error *err);
/* Removes every probe and detaches (diag_engine_free), saves the store, frees everything. */
void diag_manager_fini(struct diag_manager *m);
/* Load the store and apply its unexpired specs. Problems go to stderr; never fatal. */
void diag_manager_load(struct diag_manager *m);
/* Add or replace (same id) a spec; takes ownership of s. Apply errors are not failures (they
 * are in applied); failures are limits and store errors. *out: the running spec. */
int diag_manager_add(struct diag_manager *m, struct diag_spec *s, struct diag_mspec **out,
		     struct diag_error *err);
int diag_manager_remove(struct diag_manager *m, const char *id, struct diag_error *err);
int diag_manager_attach(struct diag_manager *m, pid_t pid, struct diag_error *err);
/* Trace pid (policy: pid 1 only with allow_pid1; the targets limit), nothing applied or
 * saved. Errors read "pid N: ..." (the field of attach requests and specs). */
int diag_manager_attach_process(struct diag_manager *m, pid_t pid, struct diag_error *err);
int diag_manager_detach(struct diag_manager *m, pid_t pid, struct diag_error *err);
struct diag_mspec *diag_manager_find(struct diag_manager *m, const char *id);
/* Expire what is due; returns the earliest future expiry in ns (0: none). */
int64_t diag_manager_tick(struct diag_manager *m, int64_t now_ns);
/* Number of (spec, process) pairs currently applied or pending. */
size_t diag_manager_count_live(const struct diag_manager *m);
int diag_manager_save(struct diag_manager *m, struct diag_error *err);
void diag_manager_set_limits(struct diag_manager *m, const struct diag_governor_limits *lim);
/* Remove ms's probe from pid (bytes restored); its record becomes `disabled` with why. */
void diag_manager_disable(struct diag_manager *m, struct diag_mspec *ms, pid_t pid,
			  const char *why);

cJSON *diag_manager_spec_json(const struct diag_manager *m, const struct diag_mspec *ms);
void diag_manager_refresh_counts(struct diag_manager *m);
cJSON *diag_manager_list_json(const struct diag_manager *m);
/* NULL with err when id names no spec. */
cJSON *diag_manager_stats_json(struct diag_manager *m, const char *id, struct diag_error *err);
cJSON *diag_manager_status_json(struct diag_manager *m);

/* The overhead governor (diagnosed_governor.c). --------------------------------------- */
void diag_governor_default_limits(struct diag_governor_limits *l);
/* lim NULL: the defaults. Returns 0 or -ENOMEM. */
int diag_governor_new(const struct diag_governor_limits *lim, struct diag_governor **out);
void diag_governor_free(struct diag_governor *g);
void diag_governor_set_limits(struct diag_governor *g, const struct diag_governor_limits *lim);
/* Sample every applied probe when a period is due and disable those over budget. Returns the
 * next sampling time in ns (0: nothing to watch). */
int64_t diag_governor_tick(struct diag_governor *g, struct diag_manager *m, int64_t now_ns);

/* One control request (diagnosed_request.c). -------------------------------------------- */
enum diag_cmd {
	DIAG_CMD_ADD, DIAG_CMD_REMOVE, DIAG_CMD_LIST, DIAG_CMD_STATS, DIAG_CMD_TAIL,
	DIAG_CMD_ATTACH, DIAG_CMD_DETACH, DIAG_CMD_STATUS, DIAG_CMD_WAIT, DIAG_CMD_SYMBOLS,
	DIAG_CMD_VARS,
};
struct diag_request {
	enum diag_cmd cmd;
	bool has_id;
	char id[DIAG_SPEC_ID_MAX + 1];
	pid_t pid;               /* attach, detach, symbols, vars */
	char text[DIAG_SPEC_EXPR_MAX + 1]; /* symbols: glob ("" = all); vars: target */
	uint64_t hits;           /* wait */
	double timeout_s;        /* wait (default 60) */
	struct diag_spec *spec;  /* add; owned until taken (set to NULL) */
};
/* Parse one request line. Returns 0, or -1 with why holding the exact error reply. Pure: the
 * daemon's state is not consulted. Release with diag_request_fini. */
int diag_request_parse(const char *line, size_t len, struct diag_request *out, char *why,
		       size_t whylen);
void diag_request_fini(struct diag_request *r);

/* The control server. ----------------------------------------------------------------- */
/* Listen on path (parent created 0700 when missing, socket 0600). */
int diag_server_new(struct diag_manager *m, const char *path, int epfd, struct diag_server **out,
		    struct diag_error *err);
void diag_server_free(struct diag_server *s);
/* True when fd is one of the server's (and the event was handled). */
bool diag_server_handle(struct diag_server *s, int fd, uint32_t events);
/* A hit, for tail clients and waits. Never blocks. */
void diag_server_on_hit(struct diag_server *s, const struct diag_mspec *ms,
			const struct diag_engine_hit *hit);
/* Time out waits; returns the earliest pending wait deadline in ns (0: none). */
int64_t diag_server_tick(struct diag_server *s, int64_t now_ns);

/* Print one line "diagnosed: ..." on stderr. */
void diag_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
