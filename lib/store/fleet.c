/* fleet: the Redis spec store (see fleet.h), a thin synchronous client over hiredis. Every
 * reply is checked for its type before use: a store another program wrote to is hostile
 * input too. */
#include "store/fleet.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "spec/json.h"
#include "util/clock.h"

#define KEY_SPECS "diagnose:specs"
#define KEY_SPEC "diagnose:spec:"
#define KEY_APPLIED "diagnose:applied:"
#define KEY_HOSTS "diagnose:hosts"

struct diag_fleet {
	redisContext *c;
	int timeout_ms;
	char sha[48]; /* the record script, loaded on this connection ("" not yet) */
	char where[300]; /* "HOST:PORT" for messages */
};

int diag_fleet_url_parse(const char *url, struct diag_fleet_url *out, struct diag_error *err)
{
	struct diag_fleet_url u = {.port = 0, .db = 0};
	const char *p = url;
	if (strncmp(p, "redis://", 8))
		return diag_error_set(err, -DIAG_E_INVALID,
				      "store: '%.200s' is not redis://[USER@]HOST:PORT[/DB]", url);
	p += 8;
	const char *at = strchr(p, '@'), *slash = strchr(p, '/');
	if (at && (!slash || at < slash)) {
		if ((size_t)(at - p) >= sizeof(u.user) || at == p)
			return diag_error_set(err, -DIAG_E_INVALID, "store: '%.200s': bad user", url);
		if (memchr(p, ':', (size_t)(at - p)))
			return diag_error_set(err, -DIAG_E_INVALID,
					      "store: '%.200s': no password in the URL (the command line is visible to every user): use a password file or DIAGNOSE_REDIS_PASSWORD",
					      url);
		memcpy(u.user, p, (size_t)(at - p));
		p = at + 1;
	}
	const char *colon = strrchr(p, ':');
	const char *end = slash ? slash : p + strlen(p);
	if (!colon || colon > end || colon == p)
		return diag_error_set(err, -DIAG_E_INVALID, "store: '%.200s' needs HOST:PORT", url);
	if ((size_t)(colon - p) >= sizeof(u.host))
		return diag_error_set(err, -DIAG_E_INVALID, "store: '%.200s': host too long", url);
	memcpy(u.host, p, (size_t)(colon - p));
	char *e = NULL;
	long port = strtol(colon + 1, &e, 10);
	if (e != end || port < 1 || port > 65535)
		return diag_error_set(err, -DIAG_E_INVALID,
				      "store: '%.200s': the port must be 1..65535", url);
	u.port = (int)port;
	if (slash) {
		long db = strtol(slash + 1, &e, 10);
		if (!slash[1] || *e || db < 0 || db > 1000000)
			return diag_error_set(err, -DIAG_E_INVALID,
					      "store: '%.200s': the database must be a number", url);
		u.db = (int)db;
	}
	*out = u;
	return 0;
}

int diag_fleet_password(const char *file, char *buf, size_t cap, struct diag_error *err)
{
	buf[0] = '\0';
	if (!file) {
		const char *env = getenv("DIAGNOSE_REDIS_PASSWORD");
		snprintf(buf, cap, "%s", env ? env : "");
		return 0;
	}
	FILE *in = fopen(file, "re");
	if (!in)
		return diag_error_set(err, -errno, "--store-password-file %s: %s", file, strerror(errno));
	if (!fgets(buf, (int)cap, in))
		buf[0] = '\0';
	fclose(in);
	buf[strcspn(buf, "\r\n")] = '\0';
	return 0;
}

/* A reply of one of the wanted types, else an error naming what came back. Frees r then. */
static int check_reply(struct diag_fleet *f, redisReply *r, int want, const char *what,
		       struct diag_error *err)
{
	if (!r && f->c->err == REDIS_ERR_IO && (errno == EAGAIN || strstr(f->c->errstr, "temporarily")))
		return diag_error_set(err, -ETIMEDOUT, "store %s: %s: no answer within %d ms", f->where,
				      what, f->timeout_ms);
	if (!r)
		return diag_error_set(err, -EIO, "store %s: %s: %s", f->where, what,
				      f->c->errstr[0] ? f->c->errstr : "connection lost");
	if (r->type == REDIS_REPLY_ERROR) {
		int rc = diag_error_set(err, -EIO, "store %s: %s: %.200s", f->where, what, r->str);
		freeReplyObject(r);
		return rc;
	}
	if (want >= 0 && r->type != want) {
		freeReplyObject(r);
		return diag_error_set(err, -DIAG_E_PARSE, "store %s: %s: unexpected reply type %d",
				      f->where, what, r->type);
	}
	return 0;
}

int diag_fleet_connect(const char *url, const char *password, int timeout_ms,
		       struct diag_fleet **out, struct diag_error *err)
{
	struct diag_fleet_url u;
	int rc = diag_fleet_url_parse(url, &u, err);
	if (rc < 0)
		return rc;
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
	struct diag_fleet *f = calloc(1, sizeof(*f));
	if (!f)
		return diag_error_set(err, -ENOMEM, "out of memory");
	snprintf(f->where, sizeof(f->where), "%s:%d", u.host, u.port);
	f->timeout_ms = timeout_ms;
	f->c = redisConnectWithTimeout(u.host, u.port, tv);
	if (!f->c || f->c->err) {
		rc = diag_error_set(err, -EHOSTUNREACH, "store %s: unreachable: %s", f->where,
				    f->c ? f->c->errstr : "out of memory");
		diag_fleet_free(f);
		return rc;
	}
	redisSetTimeout(f->c, tv);
	redisReply *r;
	if (password) {
		r = u.user[0] ? redisCommand(f->c, "AUTH %s %s", u.user, password)
			      : redisCommand(f->c, "AUTH %s", password);
		if (r && r->type == REDIS_REPLY_ERROR) {
			rc = diag_error_set(err, -EACCES, "store %s: the password was refused (%.120s)",
					    f->where, r->str);
			freeReplyObject(r);
			diag_fleet_free(f);
			return rc;
		}
		if ((rc = check_reply(f, r, -1, "AUTH", err)) < 0) {
			diag_fleet_free(f);
			return rc;
		}
		freeReplyObject(r);
	}
	r = u.db ? redisCommand(f->c, "SELECT %d", u.db) : redisCommand(f->c, "PING");
	if (r && r->type == REDIS_REPLY_ERROR && strstr(r->str, "NOAUTH")) {
		freeReplyObject(r);
		diag_fleet_free(f);
		return diag_error_set(err, -EACCES,
				      "store %s: a password is required (a password file, or DIAGNOSE_REDIS_PASSWORD)",
				      url + 8);
	}
	if ((rc = check_reply(f, r, -1, u.db ? "SELECT" : "PING", err)) < 0) {
		diag_fleet_free(f);
		return rc;
	}
	freeReplyObject(r);
	*out = f;
	return 0;
}

void diag_fleet_free(struct diag_fleet *f)
{
	if (!f)
		return;
	if (f->c)
		redisFree(f->c);
	free(f);
}

/* Run the commands appended so far inside MULTI/EXEC; the EXEC reply must be an array. */
static int exec_all(struct diag_fleet *f, int n, const char *what, struct diag_error *err)
{
	int rc = 0;
	for (int i = 0; i < n + 2; i++) { /* MULTI, the n QUEUED, EXEC */
		redisReply *r = NULL;
		if (redisGetReply(f->c, (void **)&r) != REDIS_OK)
			r = NULL;
		int want = i == n + 1 ? REDIS_REPLY_ARRAY : -1;
		int c = check_reply(f, r, want, what, err);
		if (c < 0 && !rc)
			rc = c;
		if (c == 0)
			freeReplyObject(r);
		if (!r && rc)
			break;
	}
	return rc;
}

int diag_fleet_put(struct diag_fleet *f, const struct diag_spec *s, uint64_t *version,
		   struct diag_error *err)
{
	cJSON *j = diag_spec_to_json(s, 0, 0);
	char *text = j ? cJSON_PrintUnformatted(j) : NULL;
	cJSON_Delete(j);
	if (!text)
		return diag_error_set(err, -ENOMEM, "out of memory");
	int rc = 0;
	if (strlen(text) > DIAG_FLEET_MAX_SPEC_BYTES)
		rc = diag_error_set(err, -DIAG_E_LIMIT, "store: spec '%s' is %zu bytes (limit %u)", s->id,
				    strlen(text), DIAG_FLEET_MAX_SPEC_BYTES);
	redisReply *r = rc ? NULL : redisCommand(f->c, "SCARD " KEY_SPECS);
	if (!rc && (rc = check_reply(f, r, REDIS_REPLY_INTEGER, "SCARD", err)) == 0) {
		long long n = r->integer;
		freeReplyObject(r);
		r = redisCommand(f->c, "SISMEMBER " KEY_SPECS " %s", s->id);
		if ((rc = check_reply(f, r, REDIS_REPLY_INTEGER, "SISMEMBER", err)) == 0) {
			if (!r->integer && n >= DIAG_FLEET_MAX_SPECS)
				rc = diag_error_set(err, -DIAG_E_LIMIT,
						    "store: it holds %lld specs already (limit %d)", n,
						    DIAG_FLEET_MAX_SPECS);
			freeReplyObject(r);
		}
	}
	if (rc == 0) {
		char lm[32];
		snprintf(lm, sizeof(lm), "%lld", (long long)s->lastmodified_ns);
		redisAppendCommand(f->c, "MULTI");
		redisAppendCommand(f->c, "HSET " KEY_SPEC "%s json %s lastmodified %s", s->id, text, lm);
		redisAppendCommand(f->c, "HINCRBY " KEY_SPEC "%s version 1", s->id);
		redisAppendCommand(f->c, "SADD " KEY_SPECS " %s", s->id);
		redisAppendCommand(f->c, "EXEC");
		rc = exec_all(f, 3, "put", err);
	}
	free(text);
	if (rc == 0) {
		r = redisCommand(f->c, "HGET " KEY_SPEC "%s version", s->id);
		if ((rc = check_reply(f, r, REDIS_REPLY_STRING, "HGET version", err)) == 0) {
			*version = strtoull(r->str, NULL, 10);
			freeReplyObject(r);
			char msg[DIAG_SPEC_ID_MAX + 32];
			snprintf(msg, sizeof(msg), "%s %llu", s->id, (unsigned long long)*version);
			r = redisCommand(f->c, "PUBLISH " DIAG_FLEET_CHANNEL " %s", msg);
			if ((rc = check_reply(f, r, -1, "PUBLISH", err)) == 0)
				freeReplyObject(r);
		}
	}
	return rc;
}

/* 1 when id is in the set of specs, 0 when not, or a code. */
static int is_member(struct diag_fleet *f, const char *id, struct diag_error *err)
{
	redisReply *r = redisCommand(f->c, "SISMEMBER " KEY_SPECS " %s", id);
	int rc = check_reply(f, r, REDIS_REPLY_INTEGER, "SISMEMBER", err);
	if (rc < 0)
		return rc;
	rc = r->integer != 0;
	freeReplyObject(r);
	return rc;
}

int diag_fleet_remove(struct diag_fleet *f, const char *id, struct diag_error *err)
{
	int rc = is_member(f, id, err);
	if (rc <= 0)
		return rc < 0 ? rc : diag_error_set(err, -ENOENT, "id: no probe '%.64s' in the store", id);
	redisAppendCommand(f->c, "MULTI");
	redisAppendCommand(f->c, "SREM " KEY_SPECS " %s", id);
	redisAppendCommand(f->c, "DEL " KEY_SPEC "%s " KEY_APPLIED "%s", id, id);
	redisAppendCommand(f->c, "EXEC");
	if ((rc = exec_all(f, 2, "remove", err)) < 0)
		return rc;
	char msg[DIAG_SPEC_ID_MAX + 16];
	snprintf(msg, sizeof(msg), "%.64s removed", id);
	redisReply *r = redisCommand(f->c, "PUBLISH " DIAG_FLEET_CHANNEL " %s", msg);
	if ((rc = check_reply(f, r, -1, "PUBLISH", err)) == 0)
		freeReplyObject(r);
	return rc;
}

static void bad_line(char **bad, const char *fmt, const char *a, const char *b)
{
	if (!bad)
		return;
	size_t old = *bad ? strlen(*bad) : 0, add = strlen(fmt) + strlen(a) + strlen(b) + 2;
	char *n = realloc(*bad, old + add);
	if (!n)
		return;
	snprintf(n + old, add, fmt, a, b);
	strcat(n + old, "\n");
	*bad = n;
}

/* A spec from its stored json with the applied records of the hash (key, value pairs). A
 * record that does not parse is left out and reported. */
static struct diag_spec *decode_one(const char *id, const char *json, const redisReply *ap,
				    char **bad)
{
	struct diag_error e = {0};
	cJSON *j = diag_json_parse(json, strlen(json), &e);
	if (!j) {
		bad_line(bad, "spec '%s': %s", id, e.msg);
		return NULL;
	}
	cJSON *applied = cJSON_AddObjectToObject(j, "applied");
	for (size_t i = 0; ap && applied && i + 1 < ap->elements; i += 2) {
		const redisReply *k = ap->element[i], *v = ap->element[i + 1];
		if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
			continue;
		cJSON *rec = diag_json_parse(v->str, v->len, &e);
		/* check the record alone: one bad record must not hide the spec */
		cJSON *probe = rec ? cJSON_Duplicate(j, true) : NULL;
		struct diag_spec *ps = NULL;
		if (probe) {
			cJSON *pa = cJSON_GetObjectItemCaseSensitive(probe, "applied");
			cJSON_AddItemToObject(pa, k->str, cJSON_Duplicate(rec, true));
		}
		if (!probe || diag_spec_from_json(probe, DIAG_SPEC_KEEP_APPLIED, id, &ps, &e) < 0) {
			bad_line(bad, "applied record '%s': %s", k->str, e.msg[0] ? e.msg : "not JSON");
			cJSON_Delete(rec);
		} else {
			cJSON_AddItemToObject(applied, k->str, rec);
		}
		diag_spec_free(ps);
		cJSON_Delete(probe);
	}
	struct diag_spec *s = NULL;
	if (diag_spec_from_json(j, DIAG_SPEC_KEEP_APPLIED, id, &s, &e) < 0)
		bad_line(bad, "spec '%s': %s", id, e.msg);
	cJSON_Delete(j);
	return s;
}

int diag_fleet_list(struct diag_fleet *f, struct diag_fleet_spec **out, char **bad,
		    struct diag_error *err)
{
	redisReply *ids = redisCommand(f->c, "SMEMBERS " KEY_SPECS);
	int rc = check_reply(f, ids, REDIS_REPLY_ARRAY, "SMEMBERS", err);
	if (rc < 0)
		return rc;
	struct diag_fleet_spec *v = calloc(ids->elements ? ids->elements : 1, sizeof(*v));
	size_t n = 0;
	for (size_t i = 0; v && i < ids->elements; i++) {
		const redisReply *id = ids->element[i];
		if (id->type != REDIS_REPLY_STRING)
			continue;
		redisAppendCommand(f->c, "HMGET " KEY_SPEC "%s json version", id->str);
		redisAppendCommand(f->c, "HGETALL " KEY_APPLIED "%s", id->str);
	}
	for (size_t i = 0; v && rc == 0 && i < ids->elements; i++) {
		const redisReply *id = ids->element[i];
		if (id->type != REDIS_REPLY_STRING)
			continue;
		redisReply *h = NULL, *ap = NULL;
		if (redisGetReply(f->c, (void **)&h) != REDIS_OK || redisGetReply(f->c, (void **)&ap) != REDIS_OK) {
			rc = diag_error_set(err, -EIO, "store %s: list: %s", f->where, f->c->errstr);
			freeReplyObject(h);
			break;
		}
		if (h && h->type == REDIS_REPLY_ARRAY && h->elements == 2 &&
		    h->element[0]->type == REDIS_REPLY_STRING) {
			struct diag_spec *s = decode_one(id->str, h->element[0]->str,
							 ap && ap->type == REDIS_REPLY_ARRAY ? ap : NULL, bad);
			if (s) {
				v[n].spec = s;
				v[n++].version = h->element[1]->type == REDIS_REPLY_STRING
						       ? strtoull(h->element[1]->str, NULL, 10) : 0;
			}
		} else {
			bad_line(bad, "spec '%s': %s", id->str, "listed but its hash is missing");
		}
		freeReplyObject(h);
		freeReplyObject(ap);
	}
	freeReplyObject(ids);
	if (!v)
		return diag_error_set(err, -ENOMEM, "out of memory");
	if (rc < 0) {
		for (size_t i = 0; i < n; i++)
			diag_spec_free(v[i].spec);
		free(v);
		return rc;
	}
	*out = v;
	return (int)n;
}

int diag_fleet_put_applied(struct diag_fleet *f, const char *id, const char *key,
			   const char *json, struct diag_error *err)
{
	redisReply *r = json ? redisCommand(f->c, "HSET " KEY_APPLIED "%s %s %s", id, key, json)
			     : redisCommand(f->c, "HDEL " KEY_APPLIED "%s %s", id, key);
	int rc = check_reply(f, r, REDIS_REPLY_INTEGER, "applied", err);
	if (rc == 0)
		freeReplyObject(r);
	return rc;
}

int diag_fleet_heartbeat(struct diag_fleet *f, const char *host, const char *version,
			 int processes, const char *problem, struct diag_error *err)
{
	cJSON *o = cJSON_CreateObject();
	if (problem && *problem)
		cJSON_AddStringToObject(o, "problem", problem);
	cJSON_AddStringToObject(o, "version", version);
	cJSON_AddNumberToObject(o, "last_seen", (double)(diag_clock_wall_ns() / 1000000000));
	cJSON_AddNumberToObject(o, "processes", processes);
	char *t = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!t)
		return diag_error_set(err, -ENOMEM, "out of memory");
	redisReply *r = redisCommand(f->c, "HSET " KEY_HOSTS " %s %s", host, t);
	free(t);
	int rc = check_reply(f, r, REDIS_REPLY_INTEGER, "heartbeat", err);
	if (rc == 0)
		freeReplyObject(r);
	return rc;
}

int diag_fleet_hosts(struct diag_fleet *f, double stale_s, cJSON **out, struct diag_error *err)
{
	redisReply *r = redisCommand(f->c, "HGETALL " KEY_HOSTS);
	int rc = check_reply(f, r, REDIS_REPLY_ARRAY, "HGETALL hosts", err);
	if (rc < 0)
		return rc;
	cJSON *o = cJSON_CreateObject();
	double now = (double)(diag_clock_wall_ns() / 1000000000);
	for (size_t i = 0; o && i + 1 < r->elements; i += 2) {
		const redisReply *k = r->element[i], *v = r->element[i + 1];
		struct diag_error e = {0};
		cJSON *rec = k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING
				     ? diag_json_parse(v->str, v->len, &e) : NULL;
		if (!cJSON_IsObject(rec)) {
			cJSON_Delete(rec);
			continue;
		}
		const cJSON *seen = cJSON_GetObjectItemCaseSensitive(rec, "last_seen");
		cJSON_AddBoolToObject(rec, "stale", !cJSON_IsNumber(seen) || now - seen->valuedouble > stale_s);
		cJSON_AddItemToObject(o, k->str, rec);
	}
	freeReplyObject(r);
	if (!o)
		return diag_error_set(err, -ENOMEM, "out of memory");
	*out = o;
	return 0;
}

void diag_fleet_entries_free(struct diag_fleet_entry *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		diag_spec_free(v[i].spec);
	free(v);
}

/* An entry from the reply of HMGET json version lastmodified: hostile input, checked. */
static void decode_entry(const char *id, const redisReply *h, struct diag_fleet_entry *e)
{
	memset(e, 0, sizeof(*e));
	snprintf(e->id, sizeof(e->id), "%s", id);
	if (!h || h->type != REDIS_REPLY_ARRAY || h->elements != 3 ||
	    h->element[0]->type != REDIS_REPLY_STRING) {
		snprintf(e->error, sizeof(e->error), "spec '%s': listed but its hash has no json", id);
		return;
	}
	const redisReply *json = h->element[0], *ver = h->element[1], *lm = h->element[2];
	if (json->len > DIAG_FLEET_MAX_SPEC_BYTES) {
		snprintf(e->error, sizeof(e->error), "spec '%s': %zu bytes (limit %u)", id, json->len,
			 DIAG_FLEET_MAX_SPEC_BYTES);
		return;
	}
	struct diag_error de = {0};
	cJSON *j = diag_json_parse(json->str, json->len, &de);
	struct diag_spec *s = NULL;
	char label[DIAG_SPEC_ID_MAX + 16];
	snprintf(label, sizeof(label), "spec '%s'", id);
	if (!j || diag_spec_from_json(j, 0, label, &s, &de) < 0) {
		if (!strncmp(de.msg, "spec '", 6)) /* the decoder names the spec itself */
			snprintf(e->error, sizeof(e->error), "%s", de.msg);
		else
			snprintf(e->error, sizeof(e->error), "spec '%s': %.400s", id,
				 de.msg[0] ? de.msg : "not JSON");
		cJSON_Delete(j);
		return;
	}
	cJSON_Delete(j);
	if (strcmp(s->id, id)) {
		snprintf(e->error, sizeof(e->error), "spec '%s': its json names id '%s'", id, s->id);
		diag_spec_free(s);
		return;
	}
	e->version = ver->type == REDIS_REPLY_STRING ? strtoull(ver->str, NULL, 10) : 0;
	if (lm->type == REDIS_REPLY_STRING) {
		long long v = strtoll(lm->str, NULL, 10);
		if (v > 0)
			s->lastmodified_ns = v;
	}
	e->lastmodified_ns = s->lastmodified_ns;
	e->spec = s;
}

/* Phase one of read_all: id, version and lastmodified of every id of the set (pipelined). */
static int read_versions(struct diag_fleet *f, const redisReply *ids, struct diag_fleet_entry *v,
			 size_t *n, struct diag_error *err)
{
	for (size_t i = 0; i < ids->elements; i++)
		if (ids->element[i]->type == REDIS_REPLY_STRING && diag_spec_id_valid(ids->element[i]->str))
			redisAppendCommand(f->c, "HMGET " KEY_SPEC "%s version lastmodified",
					   ids->element[i]->str);
	for (size_t i = 0; i < ids->elements; i++) {
		const redisReply *id = ids->element[i];
		if (id->type != REDIS_REPLY_STRING || !diag_spec_id_valid(id->str))
			continue;
		redisReply *h = NULL;
		if (redisGetReply(f->c, (void **)&h) != REDIS_OK)
			return diag_error_set(err, -EIO, "store %s: read: %s", f->where, f->c->errstr);
		struct diag_fleet_entry *e = &v[(*n)++];
		snprintf(e->id, sizeof(e->id), "%s", id->str);
		if (h && h->type == REDIS_REPLY_ARRAY && h->elements == 2) {
			if (h->element[0]->type == REDIS_REPLY_STRING)
				e->version = strtoull(h->element[0]->str, NULL, 10);
			if (h->element[1]->type == REDIS_REPLY_STRING)
				e->lastmodified_ns = strtoll(h->element[1]->str, NULL, 10);
		}
		freeReplyObject(h);
	}
	return 0;
}

int diag_fleet_read_all(struct diag_fleet *f, diag_fleet_want_fn want, void *ctx,
			struct diag_fleet_entry **out, struct diag_error *err)
{
	redisReply *ids = redisCommand(f->c, "SMEMBERS " KEY_SPECS);
	int rc = check_reply(f, ids, REDIS_REPLY_ARRAY, "SMEMBERS", err);
	if (rc < 0)
		return rc;
	if (ids->elements > DIAG_FLEET_MAX_SPECS) {
		rc = diag_error_set(err, -DIAG_E_LIMIT, "store %s: it holds %zu specs (limit %d)",
				    f->where, ids->elements, DIAG_FLEET_MAX_SPECS);
		freeReplyObject(ids);
		return rc;
	}
	struct diag_fleet_entry *v = calloc(ids->elements ? ids->elements : 1, sizeof(*v));
	size_t n = 0;
	rc = v ? read_versions(f, ids, v, &n, err) : diag_error_set(err, -ENOMEM, "out of memory");
	freeReplyObject(ids);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		v[i].unchanged = want && !want(ctx, v[i].id, v[i].version, v[i].lastmodified_ns);
		if (!v[i].unchanged)
			redisAppendCommand(f->c, "HMGET " KEY_SPEC "%s json version lastmodified", v[i].id);
	}
	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (v[i].unchanged)
			continue;
		redisReply *h = NULL;
		if (redisGetReply(f->c, (void **)&h) != REDIS_OK) {
			rc = diag_error_set(err, -EIO, "store %s: read: %s", f->where, f->c->errstr);
			break;
		}
		char id[sizeof(v[i].id)];
		snprintf(id, sizeof(id), "%s", v[i].id);
		uint64_t ver = v[i].version;
		int64_t lm = v[i].lastmodified_ns;
		decode_entry(id, h, &v[i]);
		if (!v[i].spec) { /* a bad record keeps the figures it is known by */
			v[i].version = ver;
			v[i].lastmodified_ns = lm;
		}
		freeReplyObject(h);
	}
	if (rc < 0) {
		diag_fleet_entries_free(v, n);
		return rc;
	}
	*out = v;
	return (int)n;
}

int diag_fleet_read_one(struct diag_fleet *f, const char *id, struct diag_fleet_entry *out,
			struct diag_error *err)
{
	int rc = is_member(f, id, err);
	if (rc <= 0)
		return rc;
	redisReply *r = redisCommand(f->c, "HMGET " KEY_SPEC "%s json version lastmodified", id);
	if ((rc = check_reply(f, r, REDIS_REPLY_ARRAY, "HMGET", err)) < 0)
		return rc;
	decode_entry(id, r, out);
	freeReplyObject(r);
	return 1;
}

int diag_fleet_subscribe(struct diag_fleet *f, struct diag_error *err)
{
	redisReply *r = redisCommand(f->c, "SUBSCRIBE " DIAG_FLEET_CHANNEL);
	int rc = check_reply(f, r, REDIS_REPLY_ARRAY, "SUBSCRIBE", err);
	if (rc == 0)
		freeReplyObject(r);
	return rc;
}

int diag_fleet_set_name(struct diag_fleet *f, const char *name, struct diag_error *err)
{
	redisReply *r = redisCommand(f->c, "CLIENT SETNAME %s", name);
	int rc = check_reply(f, r, -1, "CLIENT SETNAME", err);
	if (rc == 0)
		freeReplyObject(r);
	return rc;
}

int diag_fleet_fd(const struct diag_fleet *f)
{
	return f->c->fd;
}

/* A pub/sub message ["message", channel, "ID VERSION" | "ID removed"]: the id, else 0. */
static int change_of(const redisReply *r, char *id, size_t cap)
{
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
	    r->element[0]->type != REDIS_REPLY_STRING || strcmp(r->element[0]->str, "message") ||
	    r->element[2]->type != REDIS_REPLY_STRING)
		return 0;
	const char *msg = r->element[2]->str;
	size_t n = strcspn(msg, " ");
	if (n == 0 || n >= cap || n > DIAG_SPEC_ID_MAX)
		return 0;
	memcpy(id, msg, n);
	id[n] = '\0';
	return diag_spec_id_valid(id);
}

int diag_fleet_next_change(struct diag_fleet *f, bool read_socket, char *id, size_t cap,
			   struct diag_error *err)
{
	for (;;) {
		void *rep = NULL;
		if (redisGetReplyFromReader(f->c, &rep) != REDIS_OK)
			return diag_error_set(err, -EIO, "store %s: subscription: %s", f->where,
					      f->c->errstr);
		if (!rep) {
			if (!read_socket)
				return 0;
			read_socket = false; /* one read per call: never wait */
			if (redisBufferRead(f->c) != REDIS_OK)
				return diag_error_set(err, -EIO, "store %s: subscription: %s", f->where,
						      f->c->errstr[0] ? f->c->errstr : "connection lost");
			continue;
		}
		int got = change_of(rep, id, cap);
		freeReplyObject(rep);
		if (got)
			return 1;
	}
}

/* KEYS[1] the spec's hash, KEYS[2] its applied hash; ARGV[1] the field, ARGV[2] the record
 * ("" deletes the field). */
static const char write_script[] =
	"if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end "
	"if ARGV[2] == '' then return redis.call('HDEL', KEYS[2], ARGV[1]) end "
	"return redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])";

static int load_script(struct diag_fleet *f, struct diag_error *err)
{
	redisReply *r = redisCommand(f->c, "SCRIPT LOAD %s", write_script);
	int rc = check_reply(f, r, REDIS_REPLY_STRING, "SCRIPT LOAD", err);
	if (rc == 0) {
		snprintf(f->sha, sizeof(f->sha), "%.40s", r->str);
		freeReplyObject(r);
	}
	return rc;
}

/* EVALSHA (40 bytes a record, not the script's 200); a server whose scripts were flushed
 * meanwhile answers NOSCRIPT: loaded again and the batch written again (each write is
 * idempotent: the latest record wins). */
static int write_records(struct diag_fleet *f, const struct diag_fleet_record *v, size_t n,
			 bool again, struct diag_error *err)
{
	int rc = f->sha[0] ? 0 : load_script(f, err);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++)
		redisAppendCommand(f->c, "EVALSHA %s 2 " KEY_SPEC "%s " KEY_APPLIED "%s %s %s", f->sha,
				   v[i].id, v[i].id, v[i].key, v[i].json ? v[i].json : "");
	bool noscript = false;
	for (size_t i = 0; i < n; i++) {
		redisReply *r = NULL;
		if (redisGetReply(f->c, (void **)&r) != REDIS_OK)
			r = NULL;
		if (r && r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "NOSCRIPT", 8)) {
			noscript = true;
			freeReplyObject(r);
			continue;
		}
		int c = check_reply(f, r, REDIS_REPLY_INTEGER, "applied", err);
		if (c == 0)
			freeReplyObject(r);
		else if (!rc)
			rc = c;
		if (!r)
			return rc;
	}
	if (noscript && rc == 0 && !again) {
		f->sha[0] = '\0';
		return write_records(f, v, n, true, err);
	}
	if (noscript && rc == 0)
		rc = diag_error_set(err, -EIO, "store %s: applied: the script is refused (NOSCRIPT)",
				    f->where);
	return rc;
}

int diag_fleet_write_records(struct diag_fleet *f, const struct diag_fleet_record *v, size_t n,
			     struct diag_error *err)
{
	return write_records(f, v, n, false, err);
}
