/* fleet: the shared spec store in Redis (issue 12, docs/fleet.md): one place to add a probe,
 * every daemon applies it, and each daemon writes `applied` only for its own host:pid records.
 * Keys (PREFIX "diagnose:"):
 *   diagnose:specs              SET of spec ids
 *   diagnose:spec:ID            HASH json (the spec, without applied), version (INCR per
 *                               change), lastmodified (ns)
 *   diagnose:applied:ID         HASH "HOST:PID" -> the applied record (JSON); one writer per host
 *   diagnose:hosts              HASH HOST -> {"version","last_seen","processes","pid"} (JSON)
 *   channel diagnose:changes    "ID VERSION" on a put, "ID removed" on a removal
 * Each spec is stored on its own (never a read-modify-write of the whole set). A synchronous
 * client with a deadline on every call: the daemon runs it off its event loop. Never logs,
 * never retries on its own (the caller decides when to reconnect). */
#ifndef DIAG_STORE_FLEET_H
#define DIAG_STORE_FLEET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "spec/spec.h"
#include "util/error.h"

#define DIAG_FLEET_MAX_SPECS 10000
#define DIAG_FLEET_MAX_SPEC_BYTES (1u << 20)
#define DIAG_FLEET_CHANNEL "diagnose:changes"

/* redis://[USER@]HOST:PORT[/DB] */
struct diag_fleet_url {
	char user[128];
	char host[256];
	int port;
	int db;
};

/* Parse url; errors name what is wrong ("store: 'redis://h' needs a port"). The password is
 * never part of it (a file or the environment: the command line is visible to every user). */
int diag_fleet_url_parse(const char *url, struct diag_fleet_url *out, struct diag_error *err);

/* The store's password: the first line of file (when named), else $DIAGNOSE_REDIS_PASSWORD,
 * else none (*buf ""). */
int diag_fleet_password(const char *file, char *buf, size_t cap, struct diag_error *err);

struct diag_fleet;

/* Connect with a deadline of timeout_ms for the connection and each later call, AUTH (with the
 * user for ACLs) when password is non-NULL, SELECT the database. Errors are precise: the store
 * is unreachable, refuses the password, ... */
int diag_fleet_connect(const char *url, const char *password, int timeout_ms,
		       struct diag_fleet **out, struct diag_error *err);
void diag_fleet_free(struct diag_fleet *f);

/* Store one spec (its id set; its applied records are not written here): version + 1,
 * lastmodified = s->lastmodified_ns, then a notification. Returns 0 and *version, or a code.
 * -DIAG_E_LIMIT when the store holds DIAG_FLEET_MAX_SPECS others or the spec is too large. */
int diag_fleet_put(struct diag_fleet *f, const struct diag_spec *s, uint64_t *version,
		   struct diag_error *err);
/* Remove a spec and its applied records, then notify. -ENOENT when there is none. */
int diag_fleet_remove(struct diag_fleet *f, const char *id, struct diag_error *err);

/* Every spec, with the applied records of every host. A record that does not parse is kept in
 * the store, reported in *bad (one line per record, may be NULL) and left out. Returns the
 * count (specs in *out, free each with diag_spec_free and the array with free). */
struct diag_fleet_spec {
	struct diag_spec *spec;
	uint64_t version;
};
int diag_fleet_list(struct diag_fleet *f, struct diag_fleet_spec **out, char **bad,
		    struct diag_error *err);

/* Write this host's record for spec id (key "HOST:PID"), or delete it (json NULL). */
int diag_fleet_put_applied(struct diag_fleet *f, const char *id, const char *key,
			   const char *json, struct diag_error *err);

/* ---- the daemon's side (a store thread of diagnosed: every call may wait up to the timeout) */

/* One stored spec as a daemon reads it: spec NULL when its record does not parse (error says
 * why; the record stays in the store). lastmodified_ns is the hash's own field (ns). */
struct diag_fleet_entry {
	char id[DIAG_SPEC_ID_MAX + 1];
	struct diag_spec *spec; /* without applied; NULL also when unchanged */
	uint64_t version;
	int64_t lastmodified_ns;
	bool unchanged;         /* read_all: the caller did not want its json (same version) */
	char error[DIAG_ERRMSG_MAX];
};
void diag_fleet_entries_free(struct diag_fleet_entry *v, size_t n);

/* The whole set, pipelined: SMEMBERS, HMGET version lastmodified of every id, then the json
 * (HMGET json version lastmodified) only of the ids for which want(ctx, id, version,
 * lastmodified_ns) is true (want NULL: every id); the others come back unchanged, spec NULL.
 * Every id is there, also those whose record does not parse. At most DIAG_FLEET_MAX_SPECS
 * (more: -DIAG_E_LIMIT). Returns the count. */
typedef bool (*diag_fleet_want_fn)(void *ctx, const char *id, uint64_t version,
				   int64_t lastmodified_ns);
int diag_fleet_read_all(struct diag_fleet *f, diag_fleet_want_fn want, void *ctx,
			struct diag_fleet_entry **out, struct diag_error *err);
/* One spec: 1 and *out filled, 0 when it is gone. */
int diag_fleet_read_one(struct diag_fleet *f, const char *id, struct diag_fleet_entry *out,
			struct diag_error *err);

/* Turn this connection into a subscriber of DIAG_FLEET_CHANNEL (nothing else may be sent on
 * it afterwards). diag_fleet_fd: its socket, to poll for messages. */
int diag_fleet_subscribe(struct diag_fleet *f, struct diag_error *err);
/* CLIENT SETNAME name (no spaces): who this connection is, in CLIENT LIST and MONITOR. */
int diag_fleet_set_name(struct diag_fleet *f, const char *name, struct diag_error *err);
int diag_fleet_fd(const struct diag_fleet *f);
/* The next change already received or readable now without waiting (call after poll said
 * readable, then until it returns 0): 1 with id (the spec to read again), 0 when none is
 * buffered, a code when the connection failed. A message that is not ours is skipped. */
int diag_fleet_next_change(struct diag_fleet *f, bool read_socket, char *id, size_t cap,
			   struct diag_error *err);

/* Applied records of this host, pipelined: json NULL deletes the field. A record is written
 * only while its spec exists (a script checks diagnose:spec:ID in the same step), so a record
 * of a spec removed meanwhile never leaves an orphan hash. Returns 0 or a code (the
 * connection is then unusable). */
struct diag_fleet_record {
	const char *id, *key, *json;
};
int diag_fleet_write_records(struct diag_fleet *f, const struct diag_fleet_record *v, size_t n,
			     struct diag_error *err);

/* This daemon's heartbeat into diagnose:hosts (problem: what this daemon could not apply or
 * read, NULL for none, shown by `hosts`); and every host's entry (an object HOST ->
 * record, with "stale": true for a host not heard from in stale_s seconds). */
int diag_fleet_heartbeat(struct diag_fleet *f, const char *host, const char *version,
			 int processes, const char *problem, struct diag_error *err);
int diag_fleet_hosts(struct diag_fleet *f, double stale_s, cJSON **out, struct diag_error *err);

#endif
