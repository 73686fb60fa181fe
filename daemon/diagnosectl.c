/* diagnosectl: the command-line client of diagnosed. Owns argument parsing and client-side
 * validation (precise messages, exit 2), one request per command over the control protocol
 * (docs/protocol.md) and the choice between human output (ctl_print.c) and the daemon's raw
 * JSON (--json). Never touches targets, specs on disk or plugins itself. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ctl_conn.h"
#include "ctl_print.h"
#include "ctl_store.h"
#include "spec/json.h"
#include "util/error.h"
#include "util/text.h"

#define CTL_DEFAULT_SOCKET "/run/diagnose/diagnosed.sock"
#define CTL_SPEC_FILE_MAX (16u << 20)

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

static const char ctl_usage_text[] =
	"diagnosectl [--socket PATH] [--json] COMMAND ...\n"
	"  add-probe [--pid PID] [--exe PATH] [--comm NAME] [--unit NAME.service] [--cgroup PATH]\n"
	"            --target T --type TYPE --name NAME [--value EXPR] [--event call|return|end]\n"
	"            [--lifespan MIN] [--custom JSON] [--condition EXPR] [--id ID]     (--pid may repeat)\n"
	"            [--host GLOB]...     (the hosts that apply it: names or fnmatch globs; default every host)\n"
	"  add-probe --spec FILE|-            (one spec object or an array)\n"
	"  remove-probe ID\n"
	"  list\n"
	"  stats [--folded] [ID]               (--folded: `stack count` lines of incr by_value probes, for flamegraph.pl)\n"
	"  tail [ID]                           (live events until interrupted; prints the `text`-based line \"Probe (NAME) = VALUE\" per event unless --json)\n"
	"  attach PID | detach PID\n"
	"  status\n"
	"  wait ID --hits N --timeout SEC      (exit 0 once ID has >= N hits, 1 on timeout)\n"
	"  symbols --pid PID [GLOB]            functions that can be probed: module, address, size (GLOB: fnmatch, e.g. 'handle_*')\n"
	"  vars --pid PID FUNC [--at ADDR|FUNC+OFF|+OFF]\n"
	"                                      parameters and locals in scope (at FUNC's entry, or at --at) with types and locations\n"
	"\n"
	"Options:\n"
	"  --socket PATH   control socket (default: $DIAGNOSE_SOCKET, else " CTL_DEFAULT_SOCKET ")\n"
	"  --json          print the daemon's replies as JSON, one per line\n"
	"  --store redis://[USER@]HOST:PORT[/DB]\n"
	"                  talk to the shared store, with no daemon: add-probe, remove-probe,\n"
	"                  list (every host's applied), hosts (each daemon, when last heard from)\n"
	"  --store-password-file FILE   the store's password (else $DIAGNOSE_REDIS_PASSWORD)\n"
	"  --stale-after SECONDS        with --store: a host not heard from for this long is stale\n"
	"                               in hosts and list (default 30; daemons beat every 5 s)\n"
	"  -h, --help      show this help (also: diagnosectl help)\n"
	"  --version       print the version\n"
	"--exe, --comm, --unit and --cgroup select processes (every one given must hold, with --pid\n"
	"too): those running now and those started later. --exe of a shared library (NAME.so...)\n"
	"takes the processes that map it. Without --pid or a selector, add-probe applies the probe\n"
	"to every attached process.\n"
	"Exit status: 0 success, 1 daemon error, connection failure, or a probe that applied in no\n"
	"process (add-probe: stored, but the reason is on stderr), 2 usage error.\n";

struct ctl {
	const char *socket;
	bool json;
	struct ctl_conn *conn;
	const char *store_url;      /* --store redis://...: the shared store, no daemon */
	const char *password_file;  /* --store-password-file */
	double stale_s;             /* --stale-after (0: the default) */
	struct ctl_store *store;
};

/* A command's arguments after its name. */
struct ctl_args {
	const char *cmd;
	int argc;
	char **argv;
};

/* One "diagnosectl: ..." line on stderr. Messages quote the daemon's errors, names and the
 * user's arguments: escaped, so none can forge a line or drive the terminal. */
static void ctl_say(const char *fmt, va_list ap)
{
	char line[4096], safe[8192];
	vsnprintf(line, sizeof(line), fmt, ap);
	diag_text_escape(safe, sizeof(safe), line, strlen(line), 0);
	fprintf(stderr, "diagnosectl: %s\n", safe);
}

static int ctl_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int ctl_usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ctl_say(fmt, ap);
	va_end(ap);
	fputs("Try 'diagnosectl --help' for more information.\n", stderr);
	return EXIT_USAGE;
}

static int ctl_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int ctl_fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ctl_say(fmt, ap);
	va_end(ap);
	return EXIT_FAIL;
}

/* A reply line as is (--json), with what a terminal would act on escaped. */
static void ctl_put_line(const char *line)
{
	char *safe = diag_text_escape_dup(line, 0);
	puts(safe ? safe : "");
	free(safe);
}

/* ---- argument values ---- */

static bool ctl_parse_pid(const char *s, int *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v <= 0 || v > INT_MAX)
		return false;
	*out = (int)v;
	return true;
}

static bool ctl_parse_count(const char *s, long long *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < 0)
		return false;
	*out = v;
	return true;
}

static bool ctl_parse_number(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v))
		return false;
	*out = v;
	return true;
}

/* ---- option parsing: --name VALUE, --name=VALUE and positional arguments ---- */

struct ctl_opt {
	const char *name; /* without the leading "--" */
	const char *value;
	int seen;
};

/* Splits args into options (each taking one value; repeats handled by on_repeat) and
 * positionals. Returns 0 or the exit code of a usage error. */
static int ctl_parse_opts(const struct ctl_args *a, struct ctl_opt *opts, size_t nopts,
			  const char **pos, int maxpos, int *npos,
			  int (*on_value)(void *ctx, struct ctl_opt *o, const char *value), void *ctx)
{
	*npos = 0;
	for (int i = 0; i < a->argc; i++) {
		const char *arg = a->argv[i];
		if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
			if (*npos >= maxpos)
				return ctl_usage_error("%s: unexpected argument '%s'", a->cmd, arg);
			pos[(*npos)++] = arg;
			continue;
		}
		const char *eq = strchr(arg, '=');
		size_t len = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
		struct ctl_opt *o = NULL;
		for (size_t k = 0; k < nopts && !o; k++)
			if (strlen(opts[k].name) == len && strncmp(opts[k].name, arg + 2, len) == 0)
				o = &opts[k];
		if (!o)
			return ctl_usage_error("%s: unknown option '%.*s'", a->cmd, (int)len + 2, arg);
		const char *value = eq ? eq + 1 : (i + 1 < a->argc ? a->argv[++i] : NULL);
		if (!value)
			return ctl_usage_error("--%s: missing value", o->name);
		int rc = on_value ? on_value(ctx, o, value) : 0;
		if (rc)
			return rc;
		if (o->seen++ && !on_value)
			return ctl_usage_error("--%s: given more than once", o->name);
		o->value = value;
	}
	return 0;
}

/* ---- talking to the daemon ---- */

/* A reply as the client checks every reply: printed raw with --json, refused when "ok" is not
 * true. Consumes r. Returns EXIT_OK with *reply, or EXIT_FAIL. */
static int ctl_take_reply(struct ctl *c, cJSON *r, cJSON **reply)
{
	if (!r)
		return ctl_fail("out of memory");
	if (c->json) {
		char *t = cJSON_PrintUnformatted(r);
		if (t)
			ctl_put_line(t);
		free(t);
		fflush(stdout);
	}
	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "ok"))) {
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(r, "error");
		ctl_fail("%s", cJSON_IsString(e) ? e->valuestring : "request failed (no error text)");
		cJSON_Delete(r);
		return EXIT_FAIL;
	}
	const cJSON *bad = cJSON_GetObjectItemCaseSensitive(r, "unreadable");
	if (cJSON_IsString(bad))
		ctl_fail("warning: records in the store that do not parse (kept there):\n%s",
			 bad->valuestring);
	*reply = r;
	return EXIT_OK;
}

/* --store: the request answered by the shared store itself. */
static int ctl_call_store(struct ctl *c, cJSON *req, cJSON **reply)
{
	struct diag_error err = {0};
	if (!c->store && ctl_store_open(c->store_url, c->password_file, c->stale_s, &c->store, &err) < 0)
		return ctl_fail("%s", err.msg);
	return ctl_take_reply(c, ctl_store_call(c->store, req), reply);
}

/* Send req and read its reply. Prints the raw reply with --json, the error on stderr when
 * "ok" is false. Returns EXIT_OK with *reply (caller deletes), or EXIT_FAIL. */
static int ctl_call(struct ctl *c, cJSON *req, cJSON **reply, int timeout_ms)
{
	struct diag_error err = {0};
	const char *line = NULL;
	*reply = NULL;
	if (!req)
		return ctl_fail("out of memory");
	if (c->store_url)
		return ctl_call_store(c, req, reply);
	if (!c->conn && diag_ctl_conn_open(c->socket, &c->conn, &err) < 0)
		return ctl_fail("%s", err.msg);
	struct diag_error serr = {0};
	/* a daemon that refuses the connection says why, then closes: read that first */
	bool sent = diag_ctl_conn_send(c->conn, req, &serr) == 0;
	int rc = diag_ctl_conn_recv(c->conn, &line, sent ? timeout_ms : 1000, &err);
	if (!sent && rc <= 0)
		return ctl_fail("%s", serr.msg);
	if (rc < 0)
		return ctl_fail("%s", err.msg);
	if (rc == 0)
		return ctl_fail("the daemon closed the connection without a reply");
	if (c->json) {
		ctl_put_line(line);
		fflush(stdout);
	}
	cJSON *r = cJSON_Parse(line);
	if (!cJSON_IsObject(r)) {
		cJSON_Delete(r);
		return ctl_fail("malformed reply from the daemon: %.200s", line);
	}
	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "ok"))) {
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(r, "error");
		ctl_fail("%s", cJSON_IsString(e) ? e->valuestring : "request failed (no error text)");
		cJSON_Delete(r);
		return EXIT_FAIL;
	}
	*reply = r;
	return EXIT_OK;
}

static cJSON *ctl_request(const char *cmd)
{
	cJSON *req = cJSON_CreateObject();
	if (req && !cJSON_AddStringToObject(req, "cmd", cmd)) {
		cJSON_Delete(req);
		return NULL;
	}
	return req;
}

/* Run one request, print the reply with print (unless --json) and clean up. */
static int ctl_simple(struct ctl *c, cJSON *req, void (*print)(FILE *, const cJSON *))
{
	cJSON *reply;
	int rc = ctl_call(c, req, &reply, -1);
	cJSON_Delete(req);
	if (rc == EXIT_OK && print && !c->json)
		print(stdout, reply);
	cJSON_Delete(reply);
	return rc;
}

/* ---- add-probe ---- */

enum {
	ADD_PID, ADD_TARGET, ADD_TYPE, ADD_NAME, ADD_VALUE, ADD_EVENT, ADD_LIFESPAN, ADD_CUSTOM,
	ADD_CONDITION, ADD_ID, ADD_SPEC, ADD_EXE, ADD_COMM, ADD_UNIT, ADD_CGROUP, ADD_HOST, ADD_NOPTS
};

struct add_ctx {
	struct ctl_opt *opts;
	cJSON *pids;
	cJSON *hosts; /* --host, may repeat */
};

static int add_on_value(void *vctx, struct ctl_opt *o, const char *value)
{
	struct add_ctx *ctx = vctx;
	if (o == &ctx->opts[ADD_HOST]) { /* the spec decoder judges the glob */
		cJSON_AddItemToArray(ctx->hosts, cJSON_CreateString(value));
		return 0;
	}
	if (o != &ctx->opts[ADD_PID]) {
		if (o->seen)
			return ctl_usage_error("--%s: given more than once", o->name);
		return 0;
	}
	int pid;
	if (!ctl_parse_pid(value, &pid))
		return ctl_usage_error("--pid: not a process id: '%s'", value);
	cJSON_AddItemToArray(ctx->pids, cJSON_CreateNumber(pid));
	return 0;
}

/* Check the option values that the client can judge. Returns 0 or a usage exit code. */
static int add_validate(struct ctl_opt *o, cJSON **custom)
{
	static const int required[] = {ADD_TARGET, ADD_TYPE, ADD_NAME};
	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
		if (!o[required[i]].value)
			return ctl_usage_error("add-probe: --%s is required (or use --spec FILE)",
					       o[required[i]].name);
	const char *ev = o[ADD_EVENT].value;
	if (ev && strcmp(ev, "call") && strcmp(ev, "return") && strcmp(ev, "end"))
		return ctl_usage_error("--event: must be call, return or end, not '%s'", ev);
	double lifespan;
	if (o[ADD_LIFESPAN].value && !ctl_parse_number(o[ADD_LIFESPAN].value, &lifespan))
		return ctl_usage_error("--lifespan: not a number: '%s'", o[ADD_LIFESPAN].value);
	if (o[ADD_LIFESPAN].value && lifespan <= 0)
		return ctl_usage_error("--lifespan: must be more than 0 minutes: '%s'",
				       o[ADD_LIFESPAN].value);
	if (o[ADD_TARGET].value[0] == '\0')
		return ctl_usage_error("--target: must not be empty");
	if (o[ADD_NAME].value[0] == '\0')
		return ctl_usage_error("--name: must not be empty");
	/* the daemon runs elsewhere: a path relative to here is made absolute here */
	static char exe[PATH_MAX];
	if (o[ADD_EXE].value && o[ADD_EXE].value[0] != '/') {
		if (!realpath(o[ADD_EXE].value, exe))
			return ctl_usage_error("--exe: %s: %s", o[ADD_EXE].value, strerror(errno));
		o[ADD_EXE].value = exe;
	}
	if (o[ADD_COMM].value && (!o[ADD_COMM].value[0] || strlen(o[ADD_COMM].value) > 15))
		return ctl_usage_error("--comm: '%s': a process name is 1 to 15 bytes (the kernel keeps "
				       "15; use --exe for a longer name)", o[ADD_COMM].value);
	if (o[ADD_CGROUP].value && o[ADD_CGROUP].value[0] != '/')
		return ctl_usage_error("--cgroup: must be a path from the root of the cgroup v2 "
				       "hierarchy, not '%s'", o[ADD_CGROUP].value);
	if (o[ADD_CUSTOM].value) {
		*custom = cJSON_Parse(o[ADD_CUSTOM].value);
		if (!*custom)
			return ctl_usage_error("--custom: invalid JSON");
		if (!cJSON_IsObject(*custom)) {
			cJSON_Delete(*custom);
			*custom = NULL;
			return ctl_usage_error("--custom: must be a JSON object");
		}
	}
	return 0;
}

/* The spec object from validated options (takes custom and pids). */
static cJSON *add_build_spec(struct ctl_opt *o, cJSON *custom, cJSON *pids)
{
	cJSON *spec = cJSON_CreateObject(), *ins = cJSON_CreateObject();
	if (!spec || !ins) {
		cJSON_Delete(spec);
		cJSON_Delete(ins);
		cJSON_Delete(custom);
		cJSON_Delete(pids);
		return NULL;
	}
	if (o[ADD_ID].value)
		cJSON_AddStringToObject(spec, "id", o[ADD_ID].value);
	cJSON_AddStringToObject(spec, "target", o[ADD_TARGET].value);
	cJSON_AddStringToObject(ins, "type", o[ADD_TYPE].value);
	cJSON_AddStringToObject(ins, "name", o[ADD_NAME].value);
	if (o[ADD_VALUE].value)
		cJSON_AddStringToObject(ins, "value", o[ADD_VALUE].value);
	if (o[ADD_EVENT].value)
		cJSON_AddStringToObject(ins, "event", o[ADD_EVENT].value);
	cJSON_AddItemToObject(ins, "custom", custom ? custom : cJSON_CreateObject());
	cJSON_AddItemToObject(spec, "instrument", ins);
	if (o[ADD_LIFESPAN].value)
		cJSON_AddNumberToObject(spec, "lifespan", strtod(o[ADD_LIFESPAN].value, NULL));
	if (o[ADD_CONDITION].value)
		cJSON_AddStringToObject(spec, "condition", o[ADD_CONDITION].value);
	static const int sel[] = {ADD_EXE, ADD_COMM, ADD_UNIT, ADD_CGROUP};
	cJSON *select = NULL;
	for (size_t i = 0; i < sizeof(sel) / sizeof(sel[0]); i++)
		if (o[sel[i]].value && (select || (select = cJSON_AddObjectToObject(spec, "select"))))
			cJSON_AddStringToObject(select, o[sel[i]].name, o[sel[i]].value);
	int n = cJSON_GetArraySize(pids);
	if (n == 1)
		cJSON_AddItemToObject(spec, "pid", cJSON_DetachItemFromArray(pids, 0));
	if (n > 1)
		cJSON_AddItemToObject(spec, "pid", pids);
	else
		cJSON_Delete(pids);
	return spec;
}

/* The spec is stored even where it could not be applied: say where and why on stderr. Returns
 * EXIT_OK when at least one process applied it (or holds it pending a library load), else
 * EXIT_FAIL: a script must not believe a probe works that runs nowhere. */
static int add_check_applied(const cJSON *reply)
{
	const cJSON *spec = cJSON_GetObjectItemCaseSensitive(reply, "spec");
	const cJSON *jid = cJSON_GetObjectItemCaseSensitive(spec, "id");
	const char *id = cJSON_IsString(jid) ? jid->valuestring : "probe";
	const cJSON *proc;
	int live = 0, procs = 0;
	cJSON_ArrayForEach(proc, cJSON_GetObjectItemCaseSensitive(spec, "applied")) {
		const cJSON *state = cJSON_GetObjectItemCaseSensitive(proc, "state");
		const cJSON *error = cJSON_GetObjectItemCaseSensitive(proc, "error");
		const char *st = cJSON_IsString(state) ? state->valuestring : "";
		procs++;
		if (strcmp(st, "pending") == 0 && cJSON_IsString(error) && error->valuestring[0])
			ctl_fail("note: %s pending in %s: %s", id, proc->string, error->valuestring);
		if (strcmp(st, "applied") == 0 || strcmp(st, "pending") == 0)
			live++;
		else if (strcmp(st, "error") == 0)
			ctl_fail("%s %s not applied in %s: %s", live || procs > 1 ? "warning:" : "error:",
				 id, proc->string,
				 cJSON_IsString(error) ? error->valuestring : "(no reason given)");
	}
	if (live)
		return EXIT_OK;
	if (!procs)
		ctl_fail("error: %s is stored but applied in no process: no process is attached "
			 "(give --pid PID or a selector such as --exe PATH, or `diagnosectl attach PID` "
			 "first)", id);
	else
		ctl_fail("error: %s is stored but applied in none of its %d process%s (reasons above; "
			 "`diagnosectl remove-probe %s` to drop it)", id, procs, procs == 1 ? "" : "es",
			 id);
	return EXIT_FAIL;
}

/* Send one spec; prints the id (or the raw reply with --json). label prefixes errors. */
static int add_send(struct ctl *c, cJSON *spec, const char *label)
{
	cJSON *req = ctl_request("add"), *reply;
	if (req)
		cJSON_AddItemToObject(req, "spec", spec);
	else
		cJSON_Delete(spec);
	if (label)
		fflush(stdout);
	int rc = ctl_call(c, req, &reply, -1);
	cJSON_Delete(req);
	if (rc != EXIT_OK) {
		if (label)
			fprintf(stderr, "diagnosectl: (the error above is for %s)\n", label);
		return rc;
	}
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(reply, "id");
	if (!c->json)
		ctl_put_line(cJSON_IsString(id) ? id->valuestring : "?");
	/* in the store, no daemon has applied it yet: each does within a second */
	rc = c->store_url ? EXIT_OK : add_check_applied(reply);
	cJSON_Delete(reply);
	return rc;
}

static char *ctl_read_file(const char *path, size_t *len, int *err)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "re");
	char *buf = NULL;
	size_t n = 0, cap = 0;
	*err = 0;
	if (!f) {
		*err = errno;
		return NULL;
	}
	for (;;) {
		if (cap - n < 4096) {
			char *b = cap + 65536 > CTL_SPEC_FILE_MAX ? NULL : realloc(buf, cap + 65536);
			if (!b) {
				*err = cap + 65536 > CTL_SPEC_FILE_MAX ? EFBIG : ENOMEM;
				break;
			}
			buf = b;
			cap += 65536;
		}
		size_t r = fread(buf + n, 1, cap - n - 1, f);
		n += r;
		if (r == 0) {
			if (ferror(f))
				*err = EIO;
			break;
		}
	}
	if (f != stdin)
		fclose(f);
	if (*err) {
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* add-probe --spec FILE: one object or an array of objects, each sent as one "add". */
static int add_from_file(struct ctl *c, const char *path)
{
	size_t len;
	int e;
	char *text = ctl_read_file(path, &len, &e);
	if (!text)
		return ctl_fail("--spec: cannot read %s: %s", path, strerror(e));
	/* strict, as the daemon reads it: a NUL in a string would be cut off here, unseen */
	struct diag_error err = {0};
	cJSON *doc = diag_json_parse(text, len, &err);
	free(text);
	if (!doc)
		return ctl_usage_error("--spec: %s: %s", path, err.msg);
	if (!cJSON_IsArray(doc) && !cJSON_IsObject(doc)) {
		cJSON_Delete(doc);
		return ctl_usage_error("--spec: %s: must be a spec object or an array of them", path);
	}
	if (cJSON_IsObject(doc))
		return add_send(c, doc, NULL);
	int n = cJSON_GetArraySize(doc), rc = EXIT_OK;
	for (int i = 0; i < n; i++)
		if (!cJSON_IsObject(cJSON_GetArrayItem(doc, i))) {
			cJSON_Delete(doc);
			return ctl_usage_error("--spec: %s: element %d is not an object", path, i + 1);
		}
	for (int i = 0; i < n; i++) {
		char label[64];
		snprintf(label, sizeof(label), "spec %d of %d", i + 1, n);
		/* Every spec is tried: one bad spec must not hide the others' errors. */
		if (add_send(c, cJSON_Duplicate(cJSON_GetArrayItem(doc, i), true), label) != EXIT_OK)
			rc = EXIT_FAIL;
	}
	cJSON_Delete(doc);
	return rc;
}

static int ctl_cmd_add(struct ctl *c, const struct ctl_args *a)
{
	struct ctl_opt o[ADD_NOPTS] = {
		[ADD_PID] = {.name = "pid"}, [ADD_TARGET] = {.name = "target"}, [ADD_TYPE] = {.name = "type"},
		[ADD_NAME] = {.name = "name"}, [ADD_VALUE] = {.name = "value"}, [ADD_EVENT] = {.name = "event"},
		[ADD_LIFESPAN] = {.name = "lifespan"}, [ADD_CUSTOM] = {.name = "custom"},
		[ADD_CONDITION] = {.name = "condition"}, [ADD_ID] = {.name = "id"}, [ADD_SPEC] = {.name = "spec"},
		[ADD_EXE] = {.name = "exe"}, [ADD_COMM] = {.name = "comm"}, [ADD_UNIT] = {.name = "unit"},
		[ADD_CGROUP] = {.name = "cgroup"},
		[ADD_HOST] = {.name = "host"},
	};
	struct add_ctx ctx = {.opts = o, .pids = cJSON_CreateArray(), .hosts = cJSON_CreateArray()};
	const char *pos[1];
	int npos;
	int rc = ctl_parse_opts(a, o, ADD_NOPTS, pos, 0, &npos, add_on_value, &ctx);
	if (rc == 0 && o[ADD_SPEC].value) {
		for (int k = 0; k < ADD_NOPTS; k++)
			if (k != ADD_SPEC && o[k].seen) {
				cJSON_Delete(ctx.pids);
				cJSON_Delete(ctx.hosts);
				return ctl_usage_error("add-probe: --spec cannot be combined with --%s",
						       o[k].name);
			}
		cJSON_Delete(ctx.pids);
		cJSON_Delete(ctx.hosts);
		return add_from_file(c, o[ADD_SPEC].value);
	}
	cJSON *custom = NULL;
	if (rc == 0)
		rc = add_validate(o, &custom);
	if (rc) {
		cJSON_Delete(ctx.pids);
		cJSON_Delete(ctx.hosts);
		return rc;
	}
	cJSON *spec = add_build_spec(o, custom, ctx.pids);
	if (!spec) {
		cJSON_Delete(ctx.hosts);
		return ctl_fail("out of memory");
	}
	if (cJSON_GetArraySize(ctx.hosts))
		cJSON_AddItemToObject(spec, "hosts", ctx.hosts);
	else
		cJSON_Delete(ctx.hosts);
	return add_send(c, spec, NULL);
}

/* ---- the other commands ---- */

/* Commands taking an optional or required ID and nothing else. */
static int ctl_parse_id(const struct ctl_args *a, bool required, const char **id)
{
	const char *pos[1] = {NULL};
	int npos;
	int rc = ctl_parse_opts(a, NULL, 0, pos, 1, &npos, NULL, NULL);
	if (rc)
		return rc;
	if (required && npos == 0)
		return ctl_usage_error("%s: missing probe ID", a->cmd);
	*id = pos[0];
	return 0;
}

static int ctl_cmd_remove(struct ctl *c, const struct ctl_args *a)
{
	const char *id;
	int rc = ctl_parse_id(a, true, &id);
	if (rc)
		return rc;
	cJSON *req = ctl_request("remove");
	cJSON_AddStringToObject(req, "id", id);
	return ctl_simple(c, req, NULL);
}

static int ctl_cmd_noargs(struct ctl *c, const struct ctl_args *a, const char *cmd,
			  void (*print)(FILE *, const cJSON *))
{
	int npos;
	int rc = ctl_parse_opts(a, NULL, 0, NULL, 0, &npos, NULL, NULL);
	return rc ? rc : ctl_simple(c, ctl_request(cmd), print);
}

/* `stats --folded`: only the folded stacks ("frame;frame count" lines for flamegraph.pl). */
static int ctl_stats_folded(struct ctl *c, cJSON *req)
{
	cJSON *reply;
	int rc = ctl_call(c, req, &reply, -1);
	cJSON_Delete(req);
	if (rc == EXIT_OK && !c->json && diag_ctl_print_folded(stdout, reply) == 0)
		rc = ctl_fail("stats --folded: no probe counts by value (an incr instrument with "
			      "custom {\"by_value\": true}, e.g. with value `stack`)");
	cJSON_Delete(reply);
	return rc;
}

static int ctl_cmd_stats(struct ctl *c, const struct ctl_args *a)
{
	char **argv = malloc((size_t)(a->argc + 1) * sizeof(*argv));
	if (!argv)
		return ctl_fail("out of memory");
	struct ctl_args rest = {.cmd = a->cmd, .argv = argv};
	bool folded = false;
	for (int i = 0; i < a->argc; i++) {
		if (strcmp(a->argv[i], "--folded") == 0)
			folded = true;
		else
			argv[rest.argc++] = a->argv[i];
	}
	const char *id;
	int rc = ctl_parse_id(&rest, false, &id);
	cJSON *req = rc ? NULL : ctl_request("stats");
	if (req && id)
		cJSON_AddStringToObject(req, "id", id);
	free(argv); /* id points into a->argv */
	if (rc)
		return rc;
	return folded ? ctl_stats_folded(c, req) : ctl_simple(c, req, diag_ctl_print_stats);
}

static int ctl_cmd_tail(struct ctl *c, const struct ctl_args *a)
{
	const char *id;
	int rc = ctl_parse_id(a, false, &id);
	if (rc)
		return rc;
	cJSON *req = ctl_request("tail"), *reply;
	if (id)
		cJSON_AddStringToObject(req, "id", id);
	rc = ctl_call(c, req, &reply, -1);
	cJSON_Delete(req);
	cJSON_Delete(reply);
	if (rc)
		return rc;
	for (;;) {
		struct diag_error err = {0};
		const char *line;
		int r = diag_ctl_conn_recv(c->conn, &line, -1, &err);
		if (r < 0)
			return ctl_fail("%s", err.msg);
		if (r == 0)
			return ctl_fail("the daemon closed the connection");
		if (c->json) {
			ctl_put_line(line);
		} else {
			cJSON *msg = cJSON_Parse(line);
			const cJSON *ev = cJSON_GetObjectItemCaseSensitive(msg, "event");
			const cJSON *e = cJSON_GetObjectItemCaseSensitive(msg, "error");
			if (cJSON_IsObject(ev))
				diag_ctl_print_event(stdout, ev);
			else if (cJSON_IsString(e)) {
				rc = ctl_fail("%s", e->valuestring);
				cJSON_Delete(msg);
				return rc;
			}
			cJSON_Delete(msg);
		}
		fflush(stdout);
	}
}

static int ctl_cmd_pid(struct ctl *c, const struct ctl_args *a)
{
	const char *pos[1] = {NULL};
	int npos, pid;
	int rc = ctl_parse_opts(a, NULL, 0, pos, 1, &npos, NULL, NULL);
	if (rc)
		return rc;
	if (npos == 0)
		return ctl_usage_error("%s: missing PID", a->cmd);
	if (!ctl_parse_pid(pos[0], &pid))
		return ctl_usage_error("%s: not a process id: '%s'", a->cmd, pos[0]);
	cJSON *req = ctl_request(a->cmd);
	cJSON_AddNumberToObject(req, "pid", pid);
	return ctl_simple(c, req, NULL);
}

static int ctl_cmd_wait(struct ctl *c, const struct ctl_args *a)
{
	struct ctl_opt o[2] = {{.name = "hits"}, {.name = "timeout"}};
	const char *pos[1] = {NULL};
	int npos;
	long long hits;
	double timeout;
	int rc = ctl_parse_opts(a, o, 2, pos, 1, &npos, NULL, NULL);
	if (rc)
		return rc;
	if (npos == 0)
		return ctl_usage_error("wait: missing probe ID");
	if (!o[0].value || !o[1].value)
		return ctl_usage_error("wait: --%s is required", o[0].value ? "timeout" : "hits");
	if (!ctl_parse_count(o[0].value, &hits))
		return ctl_usage_error("--hits: not a count: '%s'", o[0].value);
	if (!ctl_parse_number(o[1].value, &timeout))
		return ctl_usage_error("--timeout: not a number: '%s'", o[1].value);
	if (timeout <= 0 || timeout > 86400)
		return ctl_usage_error("--timeout: must be more than 0 and at most 86400 seconds: '%s'",
				       o[1].value);
	cJSON *req = ctl_request("wait"), *reply;
	cJSON_AddStringToObject(req, "id", pos[0]);
	cJSON_AddNumberToObject(req, "hits", (double)hits);
	cJSON_AddNumberToObject(req, "timeout", timeout);
	/* The daemon answers by the deadline; our own guard only catches a stuck daemon. */
	rc = ctl_call(c, req, &reply, (int)(timeout * 1000) + 10000);
	cJSON_Delete(req);
	cJSON_Delete(reply);
	return rc;
}

/* ---- symbols and vars (read-only: the pid need not be attached) ---- */

/* --pid PID (required, once) into *pid. Returns 0 or a usage exit code. */
static int ctl_require_pid(const char *cmd, const struct ctl_opt *o, int *pid)
{
	if (!o->value)
		return ctl_usage_error("%s: --pid is required", cmd);
	if (!ctl_parse_pid(o->value, pid))
		return ctl_usage_error("--pid: not a process id: '%s'", o->value);
	return 0;
}

static int ctl_cmd_symbols(struct ctl *c, const struct ctl_args *a)
{
	struct ctl_opt o[1] = {{.name = "pid"}};
	const char *pos[1] = {NULL};
	int npos, pid;
	int rc = ctl_parse_opts(a, o, 1, pos, 1, &npos, NULL, NULL);
	if (rc == 0)
		rc = ctl_require_pid(a->cmd, &o[0], &pid);
	if (rc)
		return rc;
	cJSON *req = ctl_request("symbols");
	cJSON_AddNumberToObject(req, "pid", pid);
	if (pos[0] && *pos[0])
		cJSON_AddStringToObject(req, "glob", pos[0]);
	return ctl_simple(c, req, diag_ctl_print_symbols);
}

/* FUNC alone, --at alone, or FUNC with --at +OFF (FUNC+OFF). */
static int vars_target(const char *func, const char *at, char *buf, size_t cap)
{
	if (!func && !at)
		return ctl_usage_error("vars: missing FUNC (or --at ADDR|FUNC+OFF)");
	if (at && !*at)
		return ctl_usage_error("--at: must not be empty");
	if (func && at && at[0] != '+')
		return ctl_usage_error("vars: give FUNC or --at %s, not both (or --at +OFF)", at);
	int n = snprintf(buf, cap, "%s%s", func ? func : "", at ? at : "");
	if (n < 0 || (size_t)n >= cap)
		return ctl_usage_error("vars: target too long");
	if (buf[0] == '+')
		return ctl_usage_error("--at %s: an offset needs FUNC", at);
	return 0;
}

static int ctl_cmd_vars(struct ctl *c, const struct ctl_args *a)
{
	struct ctl_opt o[2] = {{.name = "pid"}, {.name = "at"}};
	const char *pos[1] = {NULL};
	char target[1024];
	int npos, pid;
	int rc = ctl_parse_opts(a, o, 2, pos, 1, &npos, NULL, NULL);
	if (rc == 0)
		rc = ctl_require_pid(a->cmd, &o[0], &pid);
	if (rc == 0)
		rc = vars_target(pos[0], o[1].value, target, sizeof(target));
	if (rc)
		return rc;
	cJSON *req = ctl_request("vars");
	cJSON_AddNumberToObject(req, "pid", pid);
	cJSON_AddStringToObject(req, "target", target);
	return ctl_simple(c, req, diag_ctl_print_vars);
}

static int ctl_dispatch(struct ctl *c, const struct ctl_args *a)
{
	const char *cmd = a->cmd;
	if (strcmp(cmd, "add-probe") == 0)
		return ctl_cmd_add(c, a);
	if (strcmp(cmd, "remove-probe") == 0)
		return ctl_cmd_remove(c, a);
	if (strcmp(cmd, "list") == 0)
		return ctl_cmd_noargs(c, a, "list", diag_ctl_print_list);
	if (strcmp(cmd, "status") == 0)
		return ctl_cmd_noargs(c, a, "status", diag_ctl_print_status);
	if (strcmp(cmd, "stats") == 0)
		return ctl_cmd_stats(c, a);
	if (strcmp(cmd, "tail") == 0)
		return ctl_cmd_tail(c, a);
	if (strcmp(cmd, "attach") == 0 || strcmp(cmd, "detach") == 0)
		return ctl_cmd_pid(c, a);
	if (strcmp(cmd, "wait") == 0)
		return ctl_cmd_wait(c, a);
	if (strcmp(cmd, "symbols") == 0)
		return ctl_cmd_symbols(c, a);
	if (strcmp(cmd, "vars") == 0)
		return ctl_cmd_vars(c, a);
	if (strcmp(cmd, "hosts") == 0)
		return ctl_cmd_noargs(c, a, "hosts", diag_ctl_print_hosts);
	return ctl_usage_error("unknown command '%s'", cmd);
}

int main(int argc, char **argv)
{
	struct ctl c = {.socket = getenv("DIAGNOSE_SOCKET")};
	if (!c.socket || !*c.socket)
		c.socket = CTL_DEFAULT_SOCKET;
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *arg = argv[i];
		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			fputs(ctl_usage_text, stdout);
			return EXIT_OK;
		} else if (strcmp(arg, "--version") == 0) {
			printf("diagnosectl %s\n", DIAG_VERSION);
			return EXIT_OK;
		} else if (strcmp(arg, "--json") == 0) {
			c.json = true;
		} else if (strcmp(arg, "--socket") == 0) {
			if (i + 1 >= argc)
				return ctl_usage_error("--socket: missing value");
			c.socket = argv[++i];
		} else if (strncmp(arg, "--socket=", 9) == 0) {
			c.socket = arg + 9;
		} else if (strcmp(arg, "--stale-after") == 0) {
			if (i + 1 >= argc || !ctl_parse_number(argv[i + 1], &c.stale_s) || c.stale_s <= 0)
				return ctl_usage_error("--stale-after: must be a number of seconds > 0");
			i++;
		} else if (strcmp(arg, "--store") == 0 || strcmp(arg, "--store-password-file") == 0) {
			if (i + 1 >= argc)
				return ctl_usage_error("%s: missing value", arg);
			*(arg[7] ? &c.password_file : &c.store_url) = argv[++i];
		} else {
			return ctl_usage_error("unknown option '%s'", arg);
		}
	}
	if (!*c.socket)
		return ctl_usage_error("--socket: must not be empty");
	if (i >= argc)
		return ctl_usage_error("missing command");
	if (strcmp(argv[i], "help") == 0) {
		fputs(ctl_usage_text, stdout);
		return EXIT_OK;
	}
	struct ctl_args a = {.cmd = argv[i], .argc = argc - i - 1, .argv = argv + i + 1};
	int rc = ctl_dispatch(&c, &a);
	diag_ctl_conn_close(c.conn);
	ctl_store_close(c.store);
	return rc;
}
