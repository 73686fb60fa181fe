/* diagnosed request: one control-protocol line (docs/protocol.md) parsed into a command with
 * its checked arguments, or the exact error reply. Pure: no manager, no socket, no state, so
 * the control server's whole input surface can be fuzzed (tests/fuzz/fuzz_protocol.c). What
 * needs the daemon's state (does this id exist?) is the server's to check. */
#include "diagnosed.h"

#include "spec/json.h"
#include "util/text.h"

#include <stdio.h>
#include <string.h>

static const char *const cmd_names[] = {
	[DIAG_CMD_ADD] = "add", [DIAG_CMD_REMOVE] = "remove", [DIAG_CMD_LIST] = "list",
	[DIAG_CMD_STATS] = "stats", [DIAG_CMD_TAIL] = "tail", [DIAG_CMD_ATTACH] = "attach",
	[DIAG_CMD_DETACH] = "detach", [DIAG_CMD_STATUS] = "status", [DIAG_CMD_WAIT] = "wait",
	[DIAG_CMD_SYMBOLS] = "symbols", [DIAG_CMD_VARS] = "vars",
};

static int fail(char *why, size_t len, const char *msg)
{
	snprintf(why, len, "%s", msg);
	return -1;
}

/* An optional string id; a present id must be a valid one (else no probe could match). */
static int id_field(const cJSON *req, struct diag_request *out, bool required, char *why,
		    size_t len)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(req, "id");
	if (!cJSON_IsString(j))
		return required ? fail(why, len, "id: required string is missing") : 0;
	snprintf(out->id, sizeof(out->id), "%s", j->valuestring);
	out->has_id = true;
	if (!diag_spec_id_valid(j->valuestring)) {
		snprintf(why, len, "id: no probe '%.64s'", j->valuestring);
		return -1;
	}
	return 0;
}

static int pid_field(const cJSON *req, struct diag_request *out, char *why, size_t len)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(req, "pid");
	if (!cJSON_IsNumber(j) || !(j->valuedouble >= 1) || j->valuedouble > 4194304 ||
	    j->valuedouble != (double)(long)j->valuedouble)
		return fail(why, len, "pid: must be a process id");
	out->pid = (pid_t)j->valuedouble;
	return 0;
}

/* symbols' glob (optional) and vars' target (required), bounded like a spec's target. */
static int text_field(const cJSON *req, const char *key, bool required, struct diag_request *out,
		      char *why, size_t len)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(req, key);
	if (!j || cJSON_IsNull(j)) {
		if (required)
			snprintf(why, len, "%s: required string is missing", key);
		return required ? -1 : 0;
	}
	if (!cJSON_IsString(j)) {
		snprintf(why, len, "%s: must be a string", key);
		return -1;
	}
	if (strlen(j->valuestring) > DIAG_SPEC_EXPR_MAX) {
		snprintf(why, len, "%s: too long (%zu bytes, max %d)", key, strlen(j->valuestring),
			 DIAG_SPEC_EXPR_MAX);
		return -1;
	}
	struct diag_error err = { 0 };
	if (diag_text_field_check(key, j->valuestring, &err) < 0)
		return fail(why, len, err.msg);
	snprintf(out->text, sizeof(out->text), "%s", j->valuestring);
	return 0;
}

static int wait_fields(const cJSON *req, struct diag_request *out, char *why, size_t len)
{
	const cJSON *h = cJSON_GetObjectItemCaseSensitive(req, "hits");
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(req, "timeout");
	if (id_field(req, out, true, why, len) < 0)
		return -1;
	if (!cJSON_IsNumber(h) || !(h->valuedouble >= 0) || h->valuedouble > 1e18)
		return fail(why, len, "hits: must be a number >= 0");
	if (t && (!cJSON_IsNumber(t) || !(t->valuedouble >= 0) || t->valuedouble > 86400 * 365))
		return fail(why, len, "timeout: must be a number of seconds >= 0");
	out->hits = (uint64_t)h->valuedouble;
	out->timeout_s = t ? t->valuedouble : 60;
	return 0;
}

static int cmd_of(const char *name, enum diag_cmd *cmd)
{
	for (size_t i = 0; i < sizeof(cmd_names) / sizeof(cmd_names[0]); i++)
		if (strcmp(name, cmd_names[i]) == 0) {
			*cmd = (enum diag_cmd)i;
			return 0;
		}
	return -1;
}

static int parse_object(const cJSON *req, struct diag_request *out, char *why, size_t len)
{
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(req, "cmd");
	if (!cJSON_IsObject(req))
		return fail(why, len, "malformed request: must be a JSON object");
	if (!cJSON_IsString(c))
		return fail(why, len, "cmd: required string is missing");
	if (cmd_of(c->valuestring, &out->cmd) < 0) {
		snprintf(why, len,
			 "unknown cmd '%.64s' (expected add, remove, list, stats, tail, attach, detach, status, wait, symbols, vars)",
			 c->valuestring);
		return -1;
	}
	switch (out->cmd) {
	case DIAG_CMD_ADD: {
		const cJSON *js = cJSON_GetObjectItemCaseSensitive(req, "spec");
		struct diag_error err = { 0 };
		if (!js)
			return fail(why, len, "spec: required object is missing");
		if (diag_spec_from_json(js, DIAG_SPEC_CHECK_TARGET, "spec", &out->spec, &err) < 0)
			return fail(why, len, err.msg[0] ? err.msg : diag_strerror(err.code));
		return 0;
	}
	case DIAG_CMD_REMOVE: return id_field(req, out, true, why, len);
	case DIAG_CMD_STATS:
	case DIAG_CMD_TAIL: return id_field(req, out, false, why, len);
	case DIAG_CMD_ATTACH:
	case DIAG_CMD_DETACH: return pid_field(req, out, why, len);
	case DIAG_CMD_WAIT: return wait_fields(req, out, why, len);
	case DIAG_CMD_SYMBOLS:
		if (pid_field(req, out, why, len) < 0)
			return -1;
		return text_field(req, "glob", false, out, why, len);
	case DIAG_CMD_VARS:
		if (pid_field(req, out, why, len) < 0)
			return -1;
		return text_field(req, "target", true, out, why, len);
	default: return 0;
	}
}

int diag_request_parse(const char *line, size_t len, struct diag_request *out, char *why,
		       size_t whylen)
{
	memset(out, 0, sizeof(*out));
	struct diag_error err = { 0 };
	cJSON *req = diag_json_parse(line, len, &err);
	if (!req) {
		snprintf(why, whylen, "malformed request: %s", err.msg);
		return -1;
	}
	int r = parse_object(req, out, why, whylen);
	cJSON_Delete(req);
	if (r < 0) {
		diag_request_fini(out);
		for (char *p = why; *p; p++) /* quoted input stays one line */
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = '?';
	}
	return r;
}

void diag_request_fini(struct diag_request *r)
{
	if (!r)
		return;
	diag_spec_free(r->spec);
	r->spec = NULL;
}
