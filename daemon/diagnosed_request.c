/* diagnosed_request: one control-protocol line (docs/protocol.md) parsed into a command with
 * its checked arguments, or the exact error reply (see diagnosed_request.h). Pure: no manager,
 * no socket, no state. What needs the daemon's state (does this id exist?) is the server's to
 * check. Never writes *out on failure. */
#include "diagnosed_request.h"

#include "spec/json.h"
#include "util/text.h"

#include <stdio.h>
#include <string.h>

static const char *const cmd_names[] = {
	[DMN_CMD_ADD] = "add", [DMN_CMD_REMOVE] = "remove", [DMN_CMD_LIST] = "list",
	[DMN_CMD_STATS] = "stats", [DMN_CMD_TAIL] = "tail", [DMN_CMD_ATTACH] = "attach",
	[DMN_CMD_DETACH] = "detach", [DMN_CMD_STATUS] = "status", [DMN_CMD_WAIT] = "wait",
	[DMN_CMD_SYMBOLS] = "symbols", [DMN_CMD_VARS] = "vars",
};

/* An optional string id; a present id must be a valid one (else no probe could match). */
static int id_field(const cJSON *req, struct dmn_request *out, bool required,
		    struct diag_error *err)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(req, "id");
	if (!cJSON_IsString(j))
		return required ? diag_error_set_field(err, "id", -DIAG_E_INVALID,
						       "id: required string is missing")
				: 0;
	snprintf(out->id, sizeof(out->id), "%s", j->valuestring);
	out->has_id = true;
	if (!diag_spec_id_valid(j->valuestring))
		return diag_error_set_field(err, "id", -DIAG_E_INVALID, "id: no probe '%.64s'",
					    j->valuestring);
	return 0;
}

static int pid_field(const cJSON *req, struct dmn_request *out, struct diag_error *err)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(req, "pid");
	if (!cJSON_IsNumber(j) || !(j->valuedouble >= 1) || j->valuedouble > 4194304 ||
	    j->valuedouble != (double)(long)j->valuedouble)
		return diag_error_set_field(err, "pid", -DIAG_E_INVALID, "pid: must be a process id");
	out->pid = (pid_t)j->valuedouble;
	return 0;
}

/* symbols' glob (optional) and vars' target (required), bounded like a spec's target. */
static int text_field(const cJSON *req, const char *key, bool required, struct dmn_request *out,
		      struct diag_error *err)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(req, key);
	if (!j || cJSON_IsNull(j))
		return required ? diag_error_set_field(err, key, -DIAG_E_INVALID,
						       "%s: required string is missing", key)
				: 0;
	if (!cJSON_IsString(j))
		return diag_error_set_field(err, key, -DIAG_E_INVALID, "%s: must be a string", key);
	if (strlen(j->valuestring) > DIAG_SPEC_EXPR_MAX)
		return diag_error_set_field(err, key, -DIAG_E_INVALID,
					    "%s: too long (%zu bytes, max %d)", key,
					    strlen(j->valuestring), DIAG_SPEC_EXPR_MAX);
	int r = diag_text_field_check(key, j->valuestring, err);
	if (r < 0)
		return r;
	snprintf(out->text, sizeof(out->text), "%s", j->valuestring);
	return 0;
}

static int wait_fields(const cJSON *req, struct dmn_request *out, struct diag_error *err)
{
	const cJSON *h = cJSON_GetObjectItemCaseSensitive(req, "hits");
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(req, "timeout");
	int r = id_field(req, out, true, err);
	if (r < 0)
		return r;
	if (!cJSON_IsNumber(h) || !(h->valuedouble >= 0) || h->valuedouble > 1e18)
		return diag_error_set_field(err, "hits", -DIAG_E_INVALID,
					    "hits: must be a number >= 0");
	if (t && (!cJSON_IsNumber(t) || !(t->valuedouble >= 0) || t->valuedouble > 86400 * 365))
		return diag_error_set_field(err, "timeout", -DIAG_E_INVALID,
					    "timeout: must be a number of seconds >= 0");
	out->hits = (uint64_t)h->valuedouble;
	out->timeout_s = t ? t->valuedouble : 60;
	return 0;
}

static int cmd_of(const char *name, enum dmn_cmd *cmd)
{
	for (size_t i = 0; i < sizeof(cmd_names) / sizeof(cmd_names[0]); i++)
		if (strcmp(name, cmd_names[i]) == 0) {
			*cmd = (enum dmn_cmd)i;
			return 0;
		}
	return -1;
}

static int parse_object(const cJSON *req, struct dmn_request *out, struct diag_error *err)
{
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(req, "cmd");
	if (!cJSON_IsObject(req))
		return diag_error_set(err, -DIAG_E_INVALID, "malformed request: must be a JSON object");
	if (!cJSON_IsString(c))
		return diag_error_set_field(err, "cmd", -DIAG_E_INVALID,
					    "cmd: required string is missing");
	if (cmd_of(c->valuestring, &out->cmd) < 0)
		return diag_error_set(err, -DIAG_E_INVALID,
				      "unknown cmd '%.64s' (expected add, remove, list, stats, tail, attach, detach, status, wait, symbols, vars)",
				      c->valuestring);
	int r;
	switch (out->cmd) {
	case DMN_CMD_ADD: {
		const cJSON *js = cJSON_GetObjectItemCaseSensitive(req, "spec");
		if (!js)
			return diag_error_set_field(err, "spec", -DIAG_E_INVALID,
						    "spec: required object is missing");
		if ((r = diag_spec_from_json(js, DIAG_SPEC_CHECK_TARGET, "spec", &out->spec, err)) < 0 && !err->msg[0])
			diag_error_set(err, r, "%s", diag_strerror(err->code));
		return r;
	}
	case DMN_CMD_REMOVE: return id_field(req, out, true, err);
	case DMN_CMD_STATS:
	case DMN_CMD_TAIL: return id_field(req, out, false, err);
	case DMN_CMD_ATTACH:
	case DMN_CMD_DETACH: return pid_field(req, out, err);
	case DMN_CMD_WAIT: return wait_fields(req, out, err);
	case DMN_CMD_SYMBOLS:
		if ((r = pid_field(req, out, err)) < 0)
			return r;
		return text_field(req, "glob", false, out, err);
	case DMN_CMD_VARS:
		if ((r = pid_field(req, out, err)) < 0)
			return r;
		return text_field(req, "target", true, out, err);
	default: return 0;
	}
}

int dmn_request_parse(const char *line, size_t len, struct dmn_request *out,
		      struct diag_error *err)
{
	struct diag_error e = { 0 };
	struct dmn_request rq = { 0 };
	cJSON *req = diag_json_parse(line, len, &e);
	int r = req ? parse_object(req, &rq, &e) : e.code ? e.code : -DIAG_E_PARSE;
	if (!req)
		diag_error_prefix(&e, "malformed request: ");
	cJSON_Delete(req);
	if (r < 0) {
		dmn_request_fini(&rq);
		diag_json_excerpt(e.msg, sizeof(e.msg), e.msg, sizeof(e.msg), '?'); /* one line */
		if (err)
			*err = e;
		return r;
	}
	*out = rq;
	return 0;
}

void dmn_request_fini(struct dmn_request *r)
{
	if (!r)
		return;
	diag_spec_free(r->spec);
	r->spec = NULL;
}
