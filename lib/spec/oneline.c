/* spec/oneline: the `-e` one-line form into a spec object (see oneline.h). Splits on white
 * space only where the grammar has words (type, target, the `if` keyword); the value and the
 * condition are passed through whole for the expression compiler to judge. */
#include "spec/oneline.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *skip_space(const char *p)
{
	while (*p && isspace((unsigned char)*p))
		p++;
	return p;
}

/* The next white-space-delimited word at *p into buf; false when there is none or it is too
 * long. */
static bool next_word(const char **p, char *buf, size_t cap)
{
	const char *s = skip_space(*p), *e = s;
	while (*e && !isspace((unsigned char)*e))
		e++;
	if (e == s || (size_t)(e - s) >= cap)
		return false;
	memcpy(buf, s, (size_t)(e - s));
	buf[e - s] = '\0';
	*p = e;
	return true;
}

/* The start of a separate word `if` in s, or NULL. */
static const char *find_if(const char *s)
{
	for (const char *p = s; (p = strstr(p, "if")); p += 2)
		if ((p == s || isspace((unsigned char)p[-1])) && (!p[2] || isspace((unsigned char)p[2])))
			return p;
	return NULL;
}

static char *trimmed_dup(const char *s, size_t n)
{
	while (n && isspace((unsigned char)*s))
		s++, n--;
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	return n ? strndup(s, n) : NULL;
}

/* KEY[=VAL],... after the type into custom. */
static int parse_custom(char *list, cJSON *custom, struct diag_error *err)
{
	for (char *save = NULL, *kv = strtok_r(list, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(kv, '=');
		if (eq)
			*eq++ = '\0';
		if (!*kv)
			return diag_error_set(err, -DIAG_E_PARSE, "a setting without a name ('=%s')", eq);
		cJSON *v;
		char *end = NULL;
		double d = eq && *eq ? strtod(eq, &end) : 0;
		if (!eq)
			v = cJSON_CreateTrue();
		else if (end && !*end)
			v = cJSON_CreateNumber(d);
		else if (!strcmp(eq, "true") || !strcmp(eq, "false"))
			v = cJSON_CreateBool(!strcmp(eq, "true"));
		else
			v = cJSON_CreateString(eq);
		if (!v || !cJSON_AddItemToObject(custom, kv, v)) {
			cJSON_Delete(v);
			return diag_error_set(err, -ENOMEM, "out of memory");
		}
	}
	return 0;
}

/* TARGET[@EVENT] into target and event. */
static int split_event(char *target, const char **event, struct diag_error *err)
{
	char *at = strrchr(target, '@');
	*event = "call";
	if (!at)
		return 0;
	*at++ = '\0';
	static const char *const events[] = {"call", "return", "end"};
	for (size_t i = 0; i < 3; i++)
		if (!strcmp(at, events[i])) {
			*event = events[i];
			return *target ? 0 : diag_error_set(err, -DIAG_E_PARSE, "no target before '@%s'", at);
		}
	return diag_error_set(err, -DIAG_E_PARSE, "unknown event '@%s' (expected @call, @return or @end)",
			      at);
}

static int build(const char *line, const char *id, cJSON *spec, struct diag_error *err)
{
	char type[256], target[1100];
	const char *p = line, *event = "call";
	if (!next_word(&p, type, sizeof(type)))
		return diag_error_set(err, -DIAG_E_PARSE, "empty (expected TYPE TARGET [VALUE] [if COND])");
	if (!next_word(&p, target, sizeof(target)))
		return diag_error_set(err, -DIAG_E_PARSE, "a TARGET must follow the type '%s'", type);
	cJSON *ins = cJSON_AddObjectToObject(spec, "instrument");
	cJSON *custom = ins ? cJSON_CreateObject() : NULL;
	if (!custom)
		return diag_error_set(err, -ENOMEM, "out of memory");
	char *comma = strchr(type, ',');
	if (comma)
		*comma++ = '\0';
	int r = comma ? parse_custom(comma, custom, err) : 0;
	if (r == 0)
		r = split_event(target, &event, err);
	if (r < 0) {
		cJSON_Delete(custom);
		return r;
	}
	char name[sizeof(target) + 8];
	snprintf(name, sizeof(name), "%s%s%s", target, strcmp(event, "call") ? "@" : "",
		 strcmp(event, "call") ? event : "");
	const char *cond = find_if(p);
	char *value = trimmed_dup(p, cond ? (size_t)(cond - p) : strlen(p));
	char *condition = cond ? trimmed_dup(cond + 2, strlen(cond + 2)) : NULL;
	if (cond && !condition)
		r = diag_error_set(err, -DIAG_E_PARSE, "'if' without a condition");
	if (r == 0 && (!cJSON_AddStringToObject(spec, "id", id) ||
		       !cJSON_AddStringToObject(spec, "target", target) ||
		       !cJSON_AddStringToObject(ins, "type", type) ||
		       !cJSON_AddStringToObject(ins, "name", name) ||
		       (value && !cJSON_AddStringToObject(ins, "value", value)) ||
		       !cJSON_AddStringToObject(ins, "event", event) ||
		       (condition && !cJSON_AddStringToObject(spec, "condition", condition))))
		r = diag_error_set(err, -ENOMEM, "out of memory");
	free(value);
	free(condition);
	cJSON_AddItemToObject(ins, "custom", custom);
	return r;
}

int diag_spec_oneline(const char *line, const char *id, cJSON **out, struct diag_error *err)
{
	if (strlen(line) > DIAG_ONELINE_MAX)
		return diag_error_set(err, -DIAG_E_LIMIT, "-e: longer than %d bytes", DIAG_ONELINE_MAX);
	cJSON *spec = cJSON_CreateObject();
	if (!spec)
		return diag_error_set(err, -ENOMEM, "out of memory");
	int r = build(line, id, spec, err);
	if (r < 0) {
		cJSON_Delete(spec);
		return diag_error_prefix(err, "-e '%.40s': ", line);
	}
	*out = spec;
	return 0;
}
