/* spec: JSON codec and validation of probe specs (see spec.h). Every error names the spec,
 * the field and the reason. Never touches processes, files or plugins. */
#include "spec/spec.h"
#include "util/clock.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "spec/json.h"
#include "spec/target.h"
#include "util/grow.h"
#include "util/text.h"

static const char *json_type_name(const cJSON *j)
{
	if (cJSON_IsNull(j))
		return "null";
	if (cJSON_IsBool(j))
		return "boolean";
	if (cJSON_IsNumber(j))
		return "number";
	if (cJSON_IsString(j))
		return "string";
	if (cJSON_IsArray(j))
		return "array";
	if (cJSON_IsObject(j))
		return "object";
	return "invalid";
}

bool diag_spec_id_valid(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n > DIAG_SPEC_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)id[i]) && !strchr("_.-", id[i]))
			return false;
	return true;
}

bool diag_spec_host_valid(const char *host)
{
	size_t n = strlen(host);
	if (n == 0 || n > DIAG_SPEC_HOST_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)host[i]) && !strchr("_.-", host[i]))
			return false;
	return true;
}

bool diag_spec_selects_host(const struct diag_spec *s, const char *host)
{
	if (!s->nhosts)
		return true;
	for (size_t i = 0; i < s->nhosts; i++)
		if (fnmatch(s->hosts[i], host, 0) == 0)
			return true;
	return false;
}

const char *diag_applied_state_name(enum diag_applied_state st)
{
	static const char *const names[] = { "pending", "applied", "expired", "removed", "error",
					     "disabled", "exited" };
	return (unsigned)st < sizeof(names) / sizeof(names[0]) ? names[st] : "error";
}

static int applied_state_parse(const char *s, enum diag_applied_state *st)
{
	for (int i = DIAG_APPLIED_PENDING; i <= DIAG_APPLIED_EXITED; i++)
		if (strcmp(s, diag_applied_state_name(i)) == 0) {
			*st = i;
			return 0;
		}
	return -DIAG_E_INVALID;
}

char *diag_time_format(int64_t ns, bool with_ns, char *buf, size_t len)
{
	time_t sec = (time_t)(ns / 1000000000);
	struct tm tm;
	gmtime_r(&sec, &tm);
	char base[32];
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	if (with_ns)
		snprintf(buf, len, "%s.%09lldZ", base, (long long)(ns % 1000000000));
	else
		snprintf(buf, len, "%sZ", base);
	return buf;
}

int diag_time_parse(const char *s, int64_t *ns)
{
	struct tm tm = { 0 };
	const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!p)
		return -DIAG_E_PARSE;
	int64_t frac = 0;
	if (*p == '.') {
		int digits = 0;
		for (p++; isdigit((unsigned char)*p); p++, digits++)
			if (digits < 9)
				frac = frac * 10 + (*p - '0');
		if (digits == 0)
			return -DIAG_E_PARSE;
		for (; digits < 9; digits++)
			frac *= 10;
	}
	if (strcmp(p, "Z") != 0)
		return -DIAG_E_PARSE;
	time_t t = timegm(&tm);
	if (t < 0 || t > 8000000000) /* 1970..2223: the ns count stays within int64 */
		return -DIAG_E_PARSE;
	*ns = (int64_t)t * 1000000000 + frac;
	return 0;
}

/* Decoding context: the spec's name for error messages. */
struct dec {
	char who[DIAG_SPEC_ID_MAX + 32];
	struct diag_error *err;
};

static int dec_fail(struct dec *d, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int dec_fail(struct dec *d, const char *field, const char *fmt, ...)
{
	char why[DIAG_ERRMSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return diag_error_set_field(d->err, field, -DIAG_E_INVALID, "%s: %s: %s", d->who, field,
				    why);
}

/* Every string of a spec can reach a log line or a terminal: valid UTF-8 without control
 * characters, or an error naming the field (the same definition the output side escapes). */
static int dec_text(struct dec *d, const char *field, const char *v)
{
	int r = diag_text_field_check(field, v, d->err);
	if (r < 0)
		diag_error_prefix(d->err, "%s: ", d->who);
	return r;
}

/* A string field: required or optional, bounded. *out is malloc'd ("" when absent). */
static int dec_string(struct dec *d, const cJSON *obj, const char *key, const char *field,
		      bool required, size_t max, char **out)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
	const char *v = "";
	if (!j || cJSON_IsNull(j)) {
		if (required)
			return dec_fail(d, field, "required string is missing");
	} else if (!cJSON_IsString(j)) {
		return dec_fail(d, field, "must be a string (got %s)", json_type_name(j));
	} else {
		v = j->valuestring;
		if (required && !*v)
			return dec_fail(d, field, "must not be empty");
		if (strlen(v) > max)
			return dec_fail(d, field, "too long (%zu bytes, max %zu)", strlen(v), max);
		int r = dec_text(d, field, v);
		if (r < 0)
			return r;
	}
	*out = strdup(v);
	return *out ? 0 : -ENOMEM;
}

static int dec_unknown(struct dec *d, const cJSON *obj, const char *prefix,
		       const char *const *known)
{
	for (const cJSON *c = obj->child; c; c = c->next) {
		bool ok = false;
		for (size_t i = 0; known[i] && !ok; i++)
			ok = strcmp(c->string, known[i]) == 0;
		if (!ok) {
			char field[DIAG_ERRFIELD_MAX];
			snprintf(field, sizeof(field), "%s%s", prefix, c->string);
			return diag_error_set_field(d->err, field, -DIAG_E_INVALID,
						    "%s: unknown field '%s%s'", d->who, prefix,
						    c->string);
		}
	}
	return 0;
}

static bool type_name_valid(const char *t)
{
	for (; *t; t++)
		if (!isalnum((unsigned char)*t) && *t != '_' && *t != '-')
			return false;
	return true;
}

/* custom's member names and string values, at any depth (field: instrument.custom.a[2].b). */
static int dec_custom_text(struct dec *d, const cJSON *j, char *path, size_t at, size_t cap)
{
	int r = 0;
	size_t i = 0;
	for (const cJSON *c = j->child; c && r == 0; c = c->next, i++) {
		int n = c->string ? snprintf(path + at, cap - at, ".%.40s", c->string)
				  : snprintf(path + at, cap - at, "[%zu]", i);
		size_t end = n > 0 && at + (size_t)n < cap ? at + (size_t)n : at;
		if (c->string && (r = dec_text(d, path, c->string)) < 0)
			break;
		if (cJSON_IsString(c))
			r = dec_text(d, path, c->valuestring);
		else if (c->child)
			r = dec_custom_text(d, c, path, end, cap);
		path[at] = '\0';
	}
	return r;
}

static int dec_custom(struct dec *d, const cJSON *in, struct diag_spec *s)
{
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(in, "custom");
	if (c && !cJSON_IsNull(c) && !cJSON_IsObject(c))
		return dec_fail(d, "instrument.custom", "must be an object (got %s)", json_type_name(c));
	char path[256] = "instrument.custom";
	int r = c && cJSON_IsObject(c) ? dec_custom_text(d, c, path, strlen(path), sizeof(path)) : 0;
	if (r < 0)
		return r;
	s->custom = c && cJSON_IsObject(c) ? cJSON_PrintUnformatted(c) : strdup("{}");
	if (!s->custom)
		return -ENOMEM;
	/* what one spec may add to the store is bounded, so the store can always be read back */
	if (strlen(s->custom) > DIAG_SPEC_CUSTOM_MAX)
		return dec_fail(d, "instrument.custom", "too large (%zu bytes as stored, max %d)",
				strlen(s->custom), DIAG_SPEC_CUSTOM_MAX);
	return 0;
}

static int dec_instrument(struct dec *d, const cJSON *obj, struct diag_spec *s)
{
	static const char *const known[] = { "type", "name", "value", "event", "custom", NULL };
	const cJSON *in = cJSON_GetObjectItemCaseSensitive(obj, "instrument");
	if (!in)
		return dec_fail(d, "instrument", "required object is missing");
	if (!cJSON_IsObject(in))
		return dec_fail(d, "instrument", "must be an object (got %s)", json_type_name(in));
	int r = dec_unknown(d, in, "instrument.", known);
	if (r < 0)
		return r;
	if ((r = dec_string(d, in, "type", "instrument.type", true, 64, &s->type)) < 0 ||
	    (r = dec_string(d, in, "name", "instrument.name", true, 256, &s->name)) < 0 ||
	    (r = dec_string(d, in, "value", "instrument.value", false, DIAG_SPEC_EXPR_MAX,
			    &s->value)) < 0)
		return r;
	if (!type_name_valid(s->type))
		return dec_fail(d, "instrument.type", "must use only letters, digits, '_' and '-' (got '%s')",
				s->type);
	char *ev = NULL;
	if ((r = dec_string(d, in, "event", "instrument.event", false, 64, &ev)) < 0)
		return r;
	if (!*ev || strcmp(ev, "call") == 0)
		s->event = DIAG_EVENT_CALL;
	else if (strcmp(ev, "return") == 0)
		s->event = DIAG_EVENT_RETURN;
	else if (strcmp(ev, "end") == 0)
		s->event = DIAG_EVENT_END;
	else
		r = dec_fail(d, "instrument.event", "must be one of call, return, end (got '%s')", ev);
	free(ev);
	if (r < 0)
		return r;
	return dec_custom(d, in, s);
}

static int dec_lifespan(struct dec *d, const cJSON *obj, struct diag_spec *s)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, "lifespan");
	s->lifespan_min = 0;
	if (!j || cJSON_IsNull(j))
		return 0;
	if (!cJSON_IsNumber(j))
		return dec_fail(d, "lifespan", "must be a number of minutes or null (got %s)",
				json_type_name(j));
	double v = j->valuedouble;
	char got[32];
	diag_text_double(v, got, sizeof(got));
	if (!(v > 0))
		return dec_fail(d, "lifespan", "must be > 0 minutes (got %s)", got);
	/* lastmodified + lifespan must stay within int64 ns */
	if (!(v <= DIAG_SPEC_LIFESPAN_MAX))
		return dec_fail(d, "lifespan",
				"must be at most %.0f minutes (about 190 years; got %s)",
				DIAG_SPEC_LIFESPAN_MAX, got);
	s->lifespan_min = v;
	return 0;
}

static int dec_limit(struct dec *d, const cJSON *lim, const char *key, double max, double *out)
{
	char field[64];
	snprintf(field, sizeof(field), "limits.%s", key);
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(lim, key);
	if (!j || cJSON_IsNull(j))
		return 0;
	if (!cJSON_IsNumber(j))
		return dec_fail(d, field, "must be a number (got %s)", json_type_name(j));
	char got[32];
	if (!(j->valuedouble > 0) || !(j->valuedouble <= max))
		return dec_fail(d, field, "must be > 0 and <= %.0f (got %s)", max,
				diag_text_double(j->valuedouble, got, sizeof(got)));
	*out = j->valuedouble;
	return 0;
}

/* The governor's budget; absent members keep the daemon's defaults. */
static int dec_limits(struct dec *d, const cJSON *obj, struct diag_spec *s)
{
	static const char *const known[] = { "max_hits_per_sec", "max_stopped_ms_per_sec", NULL };
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, "limits");
	if (!j || cJSON_IsNull(j))
		return 0;
	if (!cJSON_IsObject(j))
		return dec_fail(d, "limits", "must be an object (got %s)", json_type_name(j));
	int r = dec_unknown(d, j, "limits.", known);
	if (r < 0 ||
	    (r = dec_limit(d, j, "max_hits_per_sec", DIAG_SPEC_HITS_PER_SEC_MAX,
			   &s->max_hits_per_sec)) < 0)
		return r;
	return dec_limit(d, j, "max_stopped_ms_per_sec", DIAG_SPEC_STOPPED_MS_PER_SEC_MAX,
			 &s->max_stopped_ms_per_sec);
}

static int dec_one_pid(struct dec *d, const cJSON *j, pid_t *out)
{
	if (!cJSON_IsNumber(j))
		return dec_fail(d, "pid", "must be a process id or a list of them (got %s)",
				json_type_name(j));
	double v = j->valuedouble;
	char got[32];
	if (!(v >= 1 && v <= 4194304) || v != (double)(long long)v)
		return dec_fail(d, "pid", "not a valid process id (got %s)",
				diag_text_double(v, got, sizeof(got)));
	*out = (pid_t)v;
	return 0;
}

static int dec_pids(struct dec *d, const cJSON *obj, struct diag_spec *s)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, "pid");
	if (!j || cJSON_IsNull(j))
		return 0;
	int n = cJSON_IsArray(j) ? cJSON_GetArraySize(j) : 1;
	if (n > DIAG_SPEC_PIDS_MAX)
		return dec_fail(d, "pid", "too many processes (%d, max %d)", n, DIAG_SPEC_PIDS_MAX);
	if (n == 0) /* never "every process" by accident */
		return dec_fail(d, "pid", "empty list (omit pid to mean every attached process)");
	s->pids = calloc(n ? n : 1, sizeof(*s->pids));
	if (!s->pids)
		return -ENOMEM;
	if (!cJSON_IsArray(j)) {
		s->npids = 1;
		return dec_one_pid(d, j, &s->pids[0]);
	}
	for (const cJSON *c = j->child; c; c = c->next) {
		int r = dec_one_pid(d, c, &s->pids[s->npids]);
		if (r < 0)
			return r;
		s->npids++;
	}
	return 0;
}

bool diag_spec_has_select(const struct diag_spec *s)
{
	return s->select.exe || s->select.comm || s->select.unit || s->select.cgroup;
}

bool diag_spec_path_is_library(const char *path)
{
	const char *base = strrchr(path, '/');
	const char *so = strstr(base ? base + 1 : path, ".so");
	return so && (so[3] == '\0' || so[3] == '.');
}

char *diag_spec_select_text(const struct diag_spec *s, char *buf, size_t cap)
{
	const char *const v[] = { s->select.exe, s->select.comm, s->select.unit, s->select.cgroup };
	static const char *const k[] = { "exe", "comm", "unit", "cgroup" };
	size_t at = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < 4; i++) {
		if (!v[i] || at >= cap)
			continue;
		int n = snprintf(buf + at, cap - at, "%s%s=%s", at ? " " : "", k[i], v[i]);
		at = n < 0 ? cap : at + (size_t)n;
	}
	return buf;
}

/* The form of one select member; what it names is checked by the daemon (procwatch). */
static int dec_select_form(struct dec *d, const char *key, const char *v)
{
	char field[32];
	snprintf(field, sizeof(field), "select.%s", key);
	size_t n = strlen(v);
	if (strcmp(key, "exe") == 0 || strcmp(key, "cgroup") == 0) {
		if (v[0] != '/')
			return dec_fail(d, field, "must be an absolute path (got '%.200s')", v);
		if (n > DIAG_SPEC_PATH_MAX)
			return dec_fail(d, field, "too long (%zu bytes, max %d)", n, DIAG_SPEC_PATH_MAX);
		return 0;
	}
	if (strcmp(key, "comm") == 0) {
		if (strchr(v, '/'))
			return dec_fail(d, field, "'%s' is a path; give the process name as pgrep -x "
				       "matches it, or use select.exe", v);
		if (n > DIAG_SPEC_COMM_MAX)
			return dec_fail(d, field, "'%.64s' is %zu bytes; the kernel keeps %d of a process "
				       "name, so it can never match (use '%.*s', or select.exe)", v, n,
				       DIAG_SPEC_COMM_MAX, DIAG_SPEC_COMM_MAX, v);
		return 0;
	}
	if (strchr(v, '/') || !strchr(v, '.') || v[0] == '.' || n > DIAG_SPEC_UNIT_MAX)
		return dec_fail(d, field, "must be a systemd unit name like NAME.service (got '%.200s')", v);
	return 0;
}

static int dec_select_member(struct dec *d, const cJSON *sel, const char *key, char **out)
{
	char field[32];
	snprintf(field, sizeof(field), "select.%s", key);
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(sel, key);
	if (!j || cJSON_IsNull(j))
		return 0;
	char *v = NULL;
	int r = dec_string(d, sel, key, field, true, DIAG_SPEC_PATH_MAX + 1, &v);
	if (r == 0)
		r = dec_select_form(d, key, v);
	if (r < 0) {
		free(v);
		return r;
	}
	*out = v;
	return 0;
}

/* `select`: an object of exe, comm, unit, cgroup; at least one (omit select for none). */
static int dec_select(struct dec *d, const cJSON *obj, struct diag_spec *s)
{
	static const char *const known[] = { "exe", "comm", "unit", "cgroup", NULL };
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, "select");
	if (!j || cJSON_IsNull(j))
		return 0;
	if (!cJSON_IsObject(j))
		return dec_fail(d, "select", "must be an object of exe, comm, unit, cgroup (got %s)",
				json_type_name(j));
	int r = dec_unknown(d, j, "select.", known);
	if (r < 0 || (r = dec_select_member(d, j, "exe", &s->select.exe)) < 0 ||
	    (r = dec_select_member(d, j, "comm", &s->select.comm)) < 0 ||
	    (r = dec_select_member(d, j, "unit", &s->select.unit)) < 0 ||
	    (r = dec_select_member(d, j, "cgroup", &s->select.cgroup)) < 0)
		return r;
	if (!diag_spec_has_select(s))
		return dec_fail(d, "select", "empty (give exe, comm, unit or cgroup, or omit select)");
	return 0;
}

/* `hosts`: a name or glob, or a list of them; each is a host name with the glob characters
 * * ? [ ] ! also allowed. */
static int dec_one_host(struct dec *d, const cJSON *j, char **out)
{
	if (!cJSON_IsString(j))
		return dec_fail(d, "hosts", "must be a host name or glob, or a list of them (got %s)",
				json_type_name(j));
	const char *v = j->valuestring;
	size_t n = strlen(v);
	if (n == 0 || n > DIAG_SPEC_HOST_MAX)
		return dec_fail(d, "hosts", "each must be 1-%d bytes (got %zu)", DIAG_SPEC_HOST_MAX, n);
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)v[i]) && !strchr("_.-*?[]!", v[i]))
			return dec_fail(d, "hosts", "'%.80s': only A-Z a-z 0-9 . _ - and the glob characters * ? [ ] ! are allowed",
					v);
	*out = strdup(v);
	return *out ? 0 : -ENOMEM;
}

static int dec_hosts(struct dec *d, const cJSON *obj, struct diag_spec *s)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, "hosts");
	if (!j || cJSON_IsNull(j))
		return 0;
	int n = cJSON_IsArray(j) ? cJSON_GetArraySize(j) : 1;
	if (n > DIAG_SPEC_HOSTS_MAX)
		return dec_fail(d, "hosts", "too many names (%d, max %d)", n, DIAG_SPEC_HOSTS_MAX);
	if (n == 0) /* never "every host" by accident */
		return dec_fail(d, "hosts", "empty list (omit hosts to mean every host)");
	s->hosts = calloc((size_t)n, sizeof(*s->hosts));
	if (!s->hosts)
		return -ENOMEM;
	for (const cJSON *c = cJSON_IsArray(j) ? j->child : j; c; c = cJSON_IsArray(j) ? c->next : NULL) {
		int r = dec_one_host(d, c, &s->hosts[s->nhosts]);
		if (r < 0)
			return r;
		s->nhosts++;
	}
	return 0;
}

/* A stored counter; out-of-range doubles must not reach a conversion (undefined in C). */
static uint64_t count_of(double v)
{
	return v >= 0 && v < 1.8e19 ? (uint64_t)v : 0;
}

/* Stored text read in the form the encoder writes it (escaped, cut to cap without a partial
 * UTF-8 sequence at the end), so a store read and written again is the same text. */
static void read_safe_text(char *out, size_t cap, const char *s)
{
	diag_text_escape(out, cap, s, strlen(s), 0);
	size_t off;
	uint32_t cp;
	if (diag_text_check(out, strlen(out), &off, &cp) != DIAG_TEXT_OK)
		out[off] = '\0'; /* only a sequence the cut split can be left unsafe */
}

static int dec_applied_one(struct dec *d, const cJSON *rec, struct diag_applied *a)
{
	const char *key = rec->string;
	/* checked first: the key is echoed in messages, and the store's encoder escapes text, so
	 * a control character read here would come back longer than the key may be */
	int r = dec_text(d, "applied", key);
	if (r < 0)
		return r;
	const char *colon = strrchr(key, ':');
	if (!cJSON_IsObject(rec) || !colon || strlen(key) >= sizeof(a->key))
		return dec_fail(d, "applied", "bad record '%s'", key);
	snprintf(a->key, sizeof(a->key), "%s", key);
	a->pid = (pid_t)strtol(colon + 1, NULL, 10);
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(rec, "state");
	if (!cJSON_IsString(j) || applied_state_parse(j->valuestring, &a->state) < 0)
		return dec_fail(d, "applied", "record '%s': bad state", key);
	if (cJSON_IsString(j = cJSON_GetObjectItemCaseSensitive(rec, "error")))
		read_safe_text(a->error, sizeof(a->error), j->valuestring);
	if (cJSON_IsString(j = cJSON_GetObjectItemCaseSensitive(rec, "lm")))
		diag_time_parse(j->valuestring, &a->lm_ns);
	if (cJSON_IsString(j = cJSON_GetObjectItemCaseSensitive(rec, "last_hit")))
		diag_time_parse(j->valuestring, &a->last_hit_ns);
	if (cJSON_IsNumber(j = cJSON_GetObjectItemCaseSensitive(rec, "hits")))
		a->hits = count_of(j->valuedouble);
	if (cJSON_IsNumber(j = cJSON_GetObjectItemCaseSensitive(rec, "dropped")))
		a->dropped = count_of(j->valuedouble);
	if (cJSON_IsNumber(j = cJSON_GetObjectItemCaseSensitive(rec, "processes")))
		a->processes = count_of(j->valuedouble);
	const cJSON *addrs = cJSON_GetObjectItemCaseSensitive(rec, "addresses");
	for (const cJSON *c = addrs ? addrs->child : NULL; c && a->naddrs < DIAG_SPEC_ADDRS_MAX;
	     c = c->next)
		if (cJSON_IsString(c))
			a->addrs[a->naddrs++] = strtoull(c->valuestring, NULL, 16);
	const cJSON *inst = cJSON_GetObjectItemCaseSensitive(rec, "instances");
	cJSON *safe = cJSON_IsArray(inst) ? cJSON_Duplicate(inst, true) : NULL;
	if (safe)
		diag_json_escape_strings(safe, 0); /* as the encoder writes it */
	char *txt = safe ? cJSON_PrintUnformatted(safe) : NULL;
	cJSON_Delete(safe);
	if (txt && strlen(txt) < sizeof(a->instances))
		memcpy(a->instances, txt, strlen(txt) + 1);
	free(txt);
	return 0;
}

static int dec_applied(struct dec *d, const cJSON *obj, struct diag_spec *s)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, "applied");
	if (!j || cJSON_IsNull(j))
		return 0;
	if (!cJSON_IsObject(j))
		return dec_fail(d, "applied", "must be an object (got %s)", json_type_name(j));
	for (const cJSON *c = j->child; c; c = c->next) {
		struct diag_applied tmp = { 0 };
		int r = dec_applied_one(d, c, &tmp);
		if (r < 0)
			return r;
		struct diag_applied *a = diag_spec_applied_get(s, tmp.key, tmp.pid);
		if (!a)
			return -ENOMEM;
		*a = tmp;
	}
	return 0;
}

static int dec_id(struct dec *d, const cJSON *obj, const char *label, struct diag_spec *s)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, "id");
	snprintf(d->who, sizeof(d->who), "%s", label && *label ? label : "spec");
	if (!j || cJSON_IsNull(j))
		return 0;
	if (!cJSON_IsString(j))
		return dec_fail(d, "id", "must be a string (got %s)", json_type_name(j));
	if (!diag_spec_id_valid(j->valuestring))
		return dec_fail(d, "id", "must be 1-%d characters of A-Z a-z 0-9 _ . - (got '%.80s')",
				DIAG_SPEC_ID_MAX, j->valuestring);
	snprintf(s->id, sizeof(s->id), "%s", j->valuestring);
	snprintf(d->who, sizeof(d->who), "spec '%s'", s->id);
	return 0;
}

static int dec_lastmodified(struct dec *d, const cJSON *obj, struct diag_spec *s)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, "lastmodified");
	if (!j || cJSON_IsNull(j))
		return 0;
	if (!cJSON_IsString(j) || diag_time_parse(j->valuestring, &s->lastmodified_ns) < 0)
		return dec_fail(d, "lastmodified", "must be a UTC time like 2026-11-25T16:47:22Z");
	return 0;
}

/* A spec being added: its target parsed by the one target grammar, or refused before anything
 * is stored, with field "target". */
static int dec_target(struct dec *d, const char *target)
{
	struct diag_target t;
	int r = diag_target_parse(target, &t, d->err);
	if (r < 0)
		diag_error_prefix(d->err, "%s: ", d->who);
	return r;
}

/* `owner`: the uid that added the spec (the daemon sets it from the client's credentials; a
 * client's own value is replaced). */
static int dec_owner(struct dec *d, const cJSON *obj, struct diag_spec *s)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, "owner");
	if (!j)
		return 0;
	if (!cJSON_IsNumber(j) || j->valuedouble < 0 || j->valuedouble > 4294967294.0 ||
	    j->valuedouble != (double)(uint32_t)j->valuedouble)
		return dec_fail(d, "owner", "must be a uid (an integer 0 .. 4294967294)");
	s->owner = (uint32_t)j->valuedouble;
	return 0;
}

static int dec_spec(struct dec *d, const cJSON *obj, unsigned flags, const char *label,
		    struct diag_spec *s)
{
	static const char *const known[] = { "id", "target", "instrument", "lifespan", "condition",
					     "pid", "lastmodified", "applied", "expires_in", "limits",
					     "owner", "select", "hosts", NULL };
	int r = dec_id(d, obj, label, s);
	if (r < 0)
		return r;
	if ((r = dec_unknown(d, obj, "", known)) < 0 ||
	    (r = dec_string(d, obj, "target", "target", true, DIAG_SPEC_EXPR_MAX, &s->target)) < 0 ||
	    ((flags & DIAG_SPEC_CHECK_TARGET) && (r = dec_target(d, s->target)) < 0) ||
	    (r = dec_instrument(d, obj, s)) < 0 || (r = dec_lifespan(d, obj, s)) < 0 ||
	    (r = dec_string(d, obj, "condition", "condition", false, DIAG_SPEC_EXPR_MAX,
			    &s->condition)) < 0 ||
	    (r = dec_pids(d, obj, s)) < 0 || (r = dec_select(d, obj, s)) < 0 ||
	    (r = dec_hosts(d, obj, s)) < 0 ||
	    (r = dec_lastmodified(d, obj, s)) < 0 ||
	    (r = dec_limits(d, obj, s)) < 0 || (r = dec_owner(d, obj, s)) < 0)
		return r;
	return (flags & DIAG_SPEC_KEEP_APPLIED) ? dec_applied(d, obj, s) : 0;
}

/* Messages quote the input (ids, field names, values), whose JSON strings may hold control
 * characters: an error stays one line for logs and the protocol. */
static int one_line(struct diag_error *err, int r)
{
	if (err)
		diag_json_excerpt(err->msg, sizeof(err->msg), err->msg, sizeof(err->msg), '?');
	return r;
}

int diag_spec_from_json(const void *cjson, unsigned flags, const char *label,
			struct diag_spec **out, struct diag_error *err)
{
	const cJSON *obj = cjson;
	struct dec d = { .err = err };
	if (!cJSON_IsObject(obj))
		return diag_error_set(err, -DIAG_E_INVALID, "%s: must be a JSON object (got %s)",
				      label && *label ? label : "spec", json_type_name(obj));
	struct diag_spec *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	int r = dec_spec(&d, obj, flags, label, s);
	if (r < 0) {
		if (r == -ENOMEM)
			diag_error_set(err, r, "%s: out of memory", d.who);
		diag_spec_free(s);
		return one_line(err, r);
	}
	*out = s;
	return 0;
}

int diag_spec_parse(const char *text, size_t len, bool allow_array, unsigned flags,
		    struct diag_spec ***out, struct diag_error *err)
{
	cJSON *root = diag_json_parse(text, len, err);
	if (!root)
		return err ? err->code : -DIAG_E_PARSE;
	bool arr = cJSON_IsArray(root);
	if (arr && !allow_array) {
		cJSON_Delete(root);
		return diag_error_set(err, -DIAG_E_INVALID, "spec: must be a JSON object (got array)");
	}
	int n = arr ? cJSON_GetArraySize(root) : 1;
	if (n > DIAG_SPEC_MAX) {
		cJSON_Delete(root);
		return diag_error_set(err, -DIAG_E_LIMIT, "too many specs (%d, max %d)", n,
				      DIAG_SPEC_MAX);
	}
	struct diag_spec **v = calloc(n ? n : 1, sizeof(*v));
	int r = v ? 0 : -ENOMEM;
	int i = 0;
	for (const cJSON *c = arr ? root->child : root; r == 0 && c && i < n; c = c->next, i++) {
		char label[32];
		snprintf(label, sizeof(label), "spec #%d", i + 1);
		r = diag_spec_from_json(c, flags, label, &v[i], err);
	}
	cJSON_Delete(root);
	if (r < 0) {
		diag_spec_free_array(v, n);
		return r;
	}
	*out = v;
	return n;
}

static cJSON *applied_to_json(const struct diag_applied *a)
{
	char t[64];
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "state", diag_applied_state_name(a->state));
	if (a->error[0])
		cJSON_AddStringToObject(o, "error", a->error);
	if (a->lm_ns)
		cJSON_AddStringToObject(o, "lm", diag_time_format(a->lm_ns, false, t, sizeof(t)));
	else
		cJSON_AddNullToObject(o, "lm");
	cJSON_AddNumberToObject(o, "hits", (double)a->hits);
	cJSON_AddNumberToObject(o, "dropped", (double)a->dropped);
	if (a->processes)
		cJSON_AddNumberToObject(o, "processes", (double)a->processes);
	if (a->last_hit_ns)
		cJSON_AddStringToObject(o, "last_hit",
					diag_time_format(a->last_hit_ns, true, t, sizeof(t)));
	else
		cJSON_AddNullToObject(o, "last_hit");
	cJSON *addrs = cJSON_AddArrayToObject(o, "addresses");
	for (size_t i = 0; i < a->naddrs; i++) {
		snprintf(t, sizeof(t), "0x%llx", (unsigned long long)a->addrs[i]);
		cJSON_AddItemToArray(addrs, cJSON_CreateString(t));
	}
	cJSON *inst = a->instances[0] ? cJSON_Parse(a->instances) : NULL;
	if (inst)
		cJSON_AddItemToObject(o, "instances", inst);
	return o;
}

void *diag_spec_to_json(const struct diag_spec *s, unsigned flags, int64_t now_ns)
{
	char t[64];
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "id", s->id);
	cJSON_AddStringToObject(o, "target", s->target);
	cJSON *in = cJSON_AddObjectToObject(o, "instrument");
	cJSON_AddStringToObject(in, "type", s->type);
	cJSON_AddStringToObject(in, "name", s->name);
	cJSON_AddStringToObject(in, "value", s->value);
	cJSON_AddStringToObject(in, "event", diag_event_kind_name(s->event));
	cJSON *custom = cJSON_Parse(s->custom);
	cJSON_AddItemToObject(in, "custom", custom ? custom : cJSON_CreateObject());
	if (s->lifespan_min > 0)
		cJSON_AddNumberToObject(o, "lifespan", s->lifespan_min);
	else
		cJSON_AddNullToObject(o, "lifespan");
	if (s->condition && *s->condition)
		cJSON_AddStringToObject(o, "condition", s->condition);
	if (s->npids == 1)
		cJSON_AddNumberToObject(o, "pid", s->pids[0]);
	else if (s->npids > 1) {
		cJSON *p = cJSON_AddArrayToObject(o, "pid");
		for (size_t i = 0; i < s->npids; i++)
			cJSON_AddItemToArray(p, cJSON_CreateNumber(s->pids[i]));
	}
	if (diag_spec_has_select(s)) {
		cJSON *sel = cJSON_AddObjectToObject(o, "select");
		if (s->select.exe)
			cJSON_AddStringToObject(sel, "exe", s->select.exe);
		if (s->select.comm)
			cJSON_AddStringToObject(sel, "comm", s->select.comm);
		if (s->select.unit)
			cJSON_AddStringToObject(sel, "unit", s->select.unit);
		if (s->select.cgroup)
			cJSON_AddStringToObject(sel, "cgroup", s->select.cgroup);
	}
	if (s->nhosts) {
		cJSON *h = cJSON_AddArrayToObject(o, "hosts");
		for (size_t i = 0; i < s->nhosts; i++)
			cJSON_AddItemToArray(h, cJSON_CreateString(s->hosts[i]));
	}
	if (s->max_hits_per_sec > 0 || s->max_stopped_ms_per_sec > 0) {
		cJSON *lim = cJSON_AddObjectToObject(o, "limits");
		if (s->max_hits_per_sec > 0)
			cJSON_AddNumberToObject(lim, "max_hits_per_sec", s->max_hits_per_sec);
		if (s->max_stopped_ms_per_sec > 0)
			cJSON_AddNumberToObject(lim, "max_stopped_ms_per_sec",
						s->max_stopped_ms_per_sec);
	}
	if (s->lastmodified_ns)
		cJSON_AddStringToObject(o, "lastmodified",
					diag_time_format(s->lastmodified_ns, false, t, sizeof(t)));
	if (s->owner)
		cJSON_AddNumberToObject(o, "owner", s->owner);
	if (flags & DIAG_SPEC_JSON_APPLIED) {
		cJSON *ap = cJSON_AddObjectToObject(o, "applied");
		for (size_t i = 0; i < s->napplied; i++)
			cJSON_AddItemToObject(ap, s->applied[i].key, applied_to_json(&s->applied[i]));
		/* errors and instances quote target-supplied names (symbols, paths, comm) */
		diag_json_escape_strings(ap, 0);
		int64_t exp = diag_spec_expiry_ns(s);
		if (exp && now_ns)
			cJSON_AddNumberToObject(o, "expires_in",
						exp > now_ns ? (double)(exp - now_ns) / 1e9 : 0.0);
		else if (now_ns)
			cJSON_AddNullToObject(o, "expires_in");
	}
	return o;
}

void *diag_applied_to_json(const struct diag_applied *a)
{
	cJSON *o = applied_to_json(a);
	if (o)
		diag_json_escape_strings(o, 0);
	return o;
}

static char *dup_or_null(const char *s, bool *fail)
{
	char *r = s ? strdup(s) : NULL;
	if (s && !r)
		*fail = true;
	return r;
}

struct diag_spec *diag_spec_dup(const struct diag_spec *s)
{
	struct diag_spec *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	*d = *s;
	bool fail = false;
	d->target = dup_or_null(s->target, &fail);
	d->type = dup_or_null(s->type, &fail);
	d->name = dup_or_null(s->name, &fail);
	d->value = dup_or_null(s->value, &fail);
	d->condition = dup_or_null(s->condition, &fail);
	d->custom = dup_or_null(s->custom, &fail);
	d->select.exe = dup_or_null(s->select.exe, &fail);
	d->select.comm = dup_or_null(s->select.comm, &fail);
	d->select.unit = dup_or_null(s->select.unit, &fail);
	d->select.cgroup = dup_or_null(s->select.cgroup, &fail);
	d->pids = s->npids ? malloc(s->npids * sizeof(*d->pids)) : NULL;
	d->hosts = s->nhosts ? calloc(s->nhosts, sizeof(*d->hosts)) : NULL;
	if (s->nhosts && !d->hosts) {
		d->nhosts = 0;
		fail = true;
	}
	for (size_t i = 0; d->hosts && i < s->nhosts; i++)
		d->hosts[i] = dup_or_null(s->hosts[i], &fail);
	d->applied = s->napplied ? malloc(s->napplied * sizeof(*d->applied)) : NULL;
	d->applied_cap = d->applied ? s->napplied : 0;
	if ((s->npids && !d->pids) || (s->napplied && !d->applied) || fail) {
		if (s->npids && !d->pids)
			d->npids = 0;
		if (s->napplied && !d->applied)
			d->napplied = 0;
		diag_spec_free(d);
		return NULL;
	}
	if (s->npids)
		memcpy(d->pids, s->pids, s->npids * sizeof(*d->pids));
	if (s->napplied)
		memcpy(d->applied, s->applied, s->napplied * sizeof(*d->applied));
	return d;
}

void diag_spec_free(struct diag_spec *s)
{
	if (!s)
		return;
	free(s->target);
	free(s->type);
	free(s->name);
	free(s->value);
	free(s->condition);
	free(s->custom);
	free(s->select.exe);
	free(s->select.comm);
	free(s->select.unit);
	free(s->select.cgroup);
	free(s->pids);
	for (size_t i = 0; s->hosts && i < s->nhosts; i++)
		free(s->hosts[i]);
	free(s->hosts);
	free(s->applied);
	free(s);
}

void diag_spec_free_array(struct diag_spec **a, size_t n)
{
	if (!a)
		return;
	for (size_t i = 0; i < n; i++)
		diag_spec_free(a[i]);
	free(a);
}

struct diag_applied *diag_spec_applied_get(struct diag_spec *s, const char *key, pid_t pid)
{
	for (size_t i = 0; i < s->napplied; i++)
		if (strcmp(s->applied[i].key, key) == 0)
			return &s->applied[i];
	/* from one record: a record is large (instances), most specs have one or two */
	if (diag_grow((void **)&s->applied, &s->applied_cap, s->napplied + 1, sizeof(*s->applied),
		      1) < 0)
		return NULL;
	struct diag_applied *a = &s->applied[s->napplied++];
	memset(a, 0, sizeof(*a));
	snprintf(a->key, sizeof(a->key), "%s", key);
	a->pid = pid;
	return a;
}

int64_t diag_spec_expiry_ns(const struct diag_spec *s)
{
	if (s->lifespan_min <= 0 || !s->lastmodified_ns)
		return 0;
	return s->lastmodified_ns + (int64_t)(s->lifespan_min * 60e9);
}
