/* spec: the probe spec model (the seed's shape plus pid/condition) and its JSON codec, with
 * validation that names the spec id, the field and the reason. Owns the per-process `applied`
 * records as plain data. Never touches processes, files or plugins. */
#ifndef DIAG_SPEC_H
#define DIAG_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <diagnose/event.h>
#include "util/error.h"
#include "util/clock.h"

#define DIAG_SPEC_ID_MAX 64
#define DIAG_SPEC_EXPR_MAX 1024
#define DIAG_SPEC_MAX 1024
#define DIAG_SPEC_PIDS_MAX 256
#define DIAG_SPEC_ADDRS_MAX 16
#define DIAG_SPEC_HOSTS_MAX 64             /* `hosts`: names or globs per spec */
#define DIAG_SPEC_HOST_MAX 255             /* one host name or glob, bytes */
#define DIAG_SPEC_CUSTOM_MAX 65536          /* instrument.custom, bytes as stored (compact) */
#define DIAG_SPEC_LIFESPAN_MAX 1e8          /* minutes */
#define DIAG_SPEC_HITS_PER_SEC_MAX 1e9      /* limits.max_hits_per_sec upper bound */
#define DIAG_SPEC_STOPPED_MS_PER_SEC_MAX 1e6 /* limits.max_stopped_ms_per_sec (summed over threads) */
#define DIAG_SPEC_PATH_MAX 4095             /* select.exe, select.cgroup: bytes */
#define DIAG_SPEC_COMM_MAX 15               /* select.comm: what the kernel keeps of a name */
#define DIAG_SPEC_UNIT_MAX 255              /* select.unit */

enum diag_applied_state {
	DIAG_APPLIED_PENDING = 0,
	DIAG_APPLIED_APPLIED,
	DIAG_APPLIED_EXPIRED,
	DIAG_APPLIED_REMOVED,
	DIAG_APPLIED_ERROR,
	DIAG_APPLIED_DISABLED, /* removed by the overhead governor; `error` says why */
	DIAG_APPLIED_EXITED,   /* the process exited (its record kept, bounded: the manager
				* folds the oldest) */
};

/* One process's view of a spec, keyed "HOST:PID". */
struct diag_applied {
	char key[300];
	pid_t pid;
	enum diag_applied_state state;
	char error[DIAG_ERRMSG_MAX];
	int64_t lm_ns;        /* the lastmodified this record applied; 0 = none */
	uint64_t hits, dropped; /* dropped: the ring's refusals and the queue's */
	uint64_t ring_dropped; /* of dropped, the ring's refusals counted so far (the daemon's
				* own figure, not serialized: count_hits adds only the new ones) */
	int64_t last_hit_ns;  /* 0 = never */
	uint64_t processes;   /* the summary record ("HOST:exited"): exited processes folded in */
	size_t naddrs;
	uint64_t addrs[DIAG_SPEC_ADDRS_MAX];
	/* JSON array text: each instance installed ({"address","what","path":"jump"|"int3"}) or
	 * skipped ({"what","skipped":reason}); "" when unknown */
	char instances[4096];
};

/* `select` (issue 11, docs/targets.md "Selectors"): which processes a spec takes, now and
 * later; every member given is required (AND, with `pid` too). Each is NULL when absent. Only
 * their form is checked here (a path from /, a name as the kernel keeps it, NAME.service);
 * what they name on this machine is the daemon's business. */
struct diag_spec_select {
	char *exe;    /* an executable, or a shared library (a basename with ".so"): every
		       * process that maps it */
	char *comm;   /* the process name, as `pgrep -x` compares it */
	char *unit;   /* a systemd unit (NAME.service, NAME.scope, ...) */
	char *cgroup; /* a cgroup v2 path from the root of the hierarchy */
};

struct diag_spec {
	char id[DIAG_SPEC_ID_MAX + 1]; /* "" when the input had none */
	char *target;
	char *type, *name, *value, *condition; /* value/condition "" when absent */
	char *custom;                          /* JSON object text, "{}" when absent */
	enum diag_event_kind event;
	double lifespan_min;                   /* <= 0: none (null) */
	pid_t *pids;                           /* NULL/0: every attached process */
	size_t npids;
	struct diag_spec_select select;        /* members NULL when absent */
	char **hosts;                          /* `hosts`: names or fnmatch globs; NULL/0: every
	                                        * host (issue 12) */
	size_t nhosts;
	int64_t lastmodified_ns;               /* 0 = never set */
	uint32_t owner;                        /* uid of the client that added it (0: root, or
	                                        * added before owners were kept); `owner` in JSON */
	/* `limits`: the overhead governor's budget for each process; 0 = the daemon's default */
	double max_hits_per_sec;
	double max_stopped_ms_per_sec;
	struct diag_applied *applied;
	size_t napplied, applied_cap;          /* applied_cap: room (util/grow) */
};

enum {
	DIAG_SPEC_KEEP_APPLIED = 1, /* decode: keep `applied` (store); else it is ignored */
	DIAG_SPEC_CHECK_TARGET = 2, /* decode: `target` must follow the target grammar
				     * (spec/target.h); a spec being added */
};

/* Decode and validate one spec object. `label` names the spec in errors when it has no id
 * (e.g. "spec #2"). Errors read "spec 'w1': instrument.event: must be one of ...". */
int diag_spec_from_json(const void *cjson, unsigned flags, const char *label,
			struct diag_spec **out, struct diag_error *err);
/* Same from text: one object, or (if allow_array) an array of objects. Returns the count. */
int diag_spec_parse(const char *text, size_t len, bool allow_array, unsigned flags,
		    struct diag_spec ***out, struct diag_error *err);

enum {
	DIAG_SPEC_JSON_APPLIED = 1, /* include `applied` */
};
/* A cJSON object (caller deletes) or NULL on allocation failure. */
void *diag_spec_to_json(const struct diag_spec *s, unsigned flags, int64_t now_ns);

/* One applied record as `applied` holds it (strings escaped as diag_spec_to_json writes
 * them): a cJSON object (caller deletes) or NULL on allocation failure. */
void *diag_applied_to_json(const struct diag_applied *a);

struct diag_spec *diag_spec_dup(const struct diag_spec *s);
void diag_spec_free(struct diag_spec *s);
void diag_spec_free_array(struct diag_spec **a, size_t n);

/* The record for key (created, state pending, when absent). NULL on allocation failure. */
struct diag_applied *diag_spec_applied_get(struct diag_spec *s, const char *key, pid_t pid);

/* 0 when the spec never expires, else lastmodified + lifespan in ns. */
int64_t diag_spec_expiry_ns(const struct diag_spec *s);

bool diag_spec_id_valid(const char *id);
/* True when the spec has a `select` member. */
bool diag_spec_has_select(const struct diag_spec *s);
/* True when path names a shared library by its basename ("libfoo.so", "libc.so.6"): a
 * select.exe of a library takes the processes that map it. */
bool diag_spec_path_is_library(const char *path);
/* "exe=/usr/sbin/nginx comm=nginx" (members in that order), cut to cap. Returns buf. */
char *diag_spec_select_text(const struct diag_spec *s, char *buf, size_t cap);
/* A host name as daemons call themselves (--host-name): 1..DIAG_SPEC_HOST_MAX characters of
 * A-Z a-z 0-9 . _ - (no ':', which separates HOST:PID in applied keys). */
bool diag_spec_host_valid(const char *host);
/* Whether the spec's `hosts` select host (no `hosts`: every host; else any name or glob
 * matches, fnmatch without flags). */
bool diag_spec_selects_host(const struct diag_spec *s, const char *host);
const char *diag_applied_state_name(enum diag_applied_state st);
/* UTC ISO-8601 "2026-11-25T16:47:22Z" (with_ns: ".123456789" before Z). Returns buf. */
char *diag_time_format(int64_t ns, bool with_ns, char *buf, size_t len);
/* Parses what diag_time_format writes (fraction optional). Returns 0 or -DIAG_E_PARSE. */
int diag_time_parse(const char *s, int64_t *ns);

#endif
