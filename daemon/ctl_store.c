/* ctl_store: the requests of diagnosectl answered by the shared store (see ctl_store.h). */
#include "ctl_store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "spec/spec.h"
#include "store/fleet.h"
#include "util/clock.h"

#define CTL_STORE_TIMEOUT_MS 5000
#define CTL_HOST_STALE_S 30.0 /* a daemon beats every 5 s: six missed is gone */

struct ctl_store {
	struct diag_fleet *f;
	double stale_s;
};

int ctl_store_open(const char *url, const char *password_file, double stale_s,
		   struct ctl_store **out,
		   struct diag_error *err)
{
	char pw[512];
	int rc = diag_fleet_password(password_file, pw, sizeof(pw), err);
	if (rc < 0)
		return rc;
	const char *password = pw;
	struct ctl_store *s = calloc(1, sizeof(*s));
	if (!s)
		return diag_error_set(err, -ENOMEM, "out of memory");
	s->stale_s = stale_s > 0 ? stale_s : CTL_HOST_STALE_S;
	rc = diag_fleet_connect(url, *password ? password : NULL,
				    CTL_STORE_TIMEOUT_MS, &s->f, err);
	if (rc < 0) {
		free(s);
		return rc;
	}
	*out = s;
	return 0;
}

void ctl_store_close(struct ctl_store *s)
{
	if (!s)
		return;
	diag_fleet_free(s->f);
	free(s);
}

static cJSON *fail(const char *msg)
{
	cJSON *j = cJSON_CreateObject();
	cJSON_AddBoolToObject(j, "ok", 0);
	cJSON_AddStringToObject(j, "error", msg);
	return j;
}

static cJSON *ok(void)
{
	cJSON *j = cJSON_CreateObject();
	cJSON_AddBoolToObject(j, "ok", 1);
	return j;
}

/* An id for a spec that has none: p + 8 hex digits, random (many clients add at once). */
static void new_id(char *id, size_t cap)
{
	unsigned v = 0;
	if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
		v = (unsigned)diag_clock_wall_ns();
	snprintf(id, cap, "p%08x", v);
}

static cJSON *do_add(struct ctl_store *s, const cJSON *req)
{
	struct diag_spec *spec = NULL;
	struct diag_error e = {0};
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(req, "spec");
	if (diag_spec_from_json(j, DIAG_SPEC_CHECK_TARGET, "spec", &spec, &e) < 0)
		return fail(e.msg);
	if (!spec->id[0])
		new_id(spec->id, sizeof(spec->id));
	spec->lastmodified_ns = diag_clock_wall_ns();
	uint64_t version = 0;
	cJSON *r = diag_fleet_put(s->f, spec, &version, &e) < 0 ? fail(e.msg) : ok();
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "ok"))) {
		cJSON_AddStringToObject(r, "id", spec->id);
		cJSON_AddNumberToObject(r, "version", (double)version);
		cJSON_AddItemToObject(r, "spec", diag_spec_to_json(spec, DIAG_SPEC_JSON_APPLIED,
								     diag_clock_wall_ns()));
	}
	diag_spec_free(spec);
	return r;
}

/* A record whose host is stale (not heard from within stale_s, or never) says so: its state
 * is what the host last wrote, not what it does now. */
static void mark_stale(cJSON *applied, const cJSON *hosts)
{
	cJSON *rec;
	cJSON_ArrayForEach(rec, applied) {
		const char *colon = strrchr(rec->string, ':');
		char host[DIAG_SPEC_HOST_MAX + 1];
		size_t n = colon ? (size_t)(colon - rec->string) : strlen(rec->string);
		snprintf(host, sizeof(host), "%.*s", (int)(n < sizeof(host) ? n : sizeof(host) - 1),
			 rec->string);
		const cJSON *h = cJSON_GetObjectItemCaseSensitive(hosts, host);
		cJSON_AddBoolToObject(rec, "stale",
				      !h || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(h, "stale")));
	}
}

static cJSON *do_list(struct ctl_store *s)
{
	struct diag_fleet_spec *v = NULL;
	char *bad = NULL;
	struct diag_error e = {0};
	int n = diag_fleet_list(s->f, &v, &bad, &e);
	if (n < 0) {
		free(bad);
		return fail(e.msg);
	}
	cJSON *hosts = NULL;
	if (diag_fleet_hosts(s->f, s->stale_s, &hosts, &e) < 0)
		hosts = NULL; /* records then read stale: nothing says their hosts are alive */
	cJSON *r = ok(), *arr = cJSON_AddArrayToObject(r, "specs");
	int64_t now = diag_clock_wall_ns();
	for (int i = 0; i < n; i++) {
		cJSON *o = diag_spec_to_json(v[i].spec, DIAG_SPEC_JSON_APPLIED, now);
		mark_stale(cJSON_GetObjectItemCaseSensitive(o, "applied"), hosts);
		cJSON_AddNumberToObject(o, "version", (double)v[i].version);
		cJSON_AddItemToArray(arr, o);
		diag_spec_free(v[i].spec);
	}
	free(v);
	cJSON_Delete(hosts);
	if (bad) /* records that do not parse stay in the store; say so, never delete them */
		cJSON_AddStringToObject(r, "unreadable", bad);
	free(bad);
	return r;
}

cJSON *ctl_store_call(struct ctl_store *s, const cJSON *req)
{
	const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(req, "cmd");
	const char *c = cJSON_IsString(cmd) ? cmd->valuestring : "";
	struct diag_error e = {0};
	if (!strcmp(c, "add"))
		return do_add(s, req);
	if (!strcmp(c, "list"))
		return do_list(s);
	if (!strcmp(c, "remove")) {
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(req, "id");
		return diag_fleet_remove(s->f, cJSON_IsString(id) ? id->valuestring : "", &e) < 0
			       ? fail(e.msg) : ok();
	}
	if (!strcmp(c, "hosts")) {
		cJSON *hosts = NULL;
		if (diag_fleet_hosts(s->f, s->stale_s, &hosts, &e) < 0)
			return fail(e.msg);
		cJSON *r = ok();
		cJSON_AddItemToObject(r, "hosts", hosts);
		return r;
	}
	char msg[160];
	snprintf(msg, sizeof(msg), "%s: needs a daemon (--store talks to the store: add-probe, "
		 "remove-probe, list, hosts)", c);
	return fail(msg);
}
