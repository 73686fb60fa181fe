/* plugin_util: helpers shared by the stock instrument plugins (header-only, because every
 * plugins/<type>.c file is built as its own plugin). Owns settings parsing with precise errors,
 * a growable text buffer and numeric reading of event values. Never touches daemon internals:
 * only the public ABI in include/diagnose/. */
#ifndef DIAG_PLUGIN_UTIL_H
#define DIAG_PLUGIN_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <diagnose/event.h>

#define PLUGIN_EXPORT __attribute__((visibility("default")))

/* Growable NUL-terminated text. On allocation failure it sets `failed` and stops growing, so
 * callers check once at the end instead of after every append. */
struct pbuf {
	char *s;
	size_t len, cap;
	bool failed;
};

static inline bool pbuf_reserve(struct pbuf *b, size_t more)
{
	if (b->failed)
		return false;
	if (b->len + more + 1 <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 128;
	while (cap < b->len + more + 1)
		cap *= 2;
	char *s = realloc(b->s, cap);
	if (!s) {
		b->failed = true;
		return false;
	}
	b->s = s;
	b->cap = cap;
	return true;
}

static inline void pbuf_addn(struct pbuf *b, const char *s, size_t n)
{
	if (!pbuf_reserve(b, n))
		return;
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static inline void pbuf_add(struct pbuf *b, const char *s)
{
	pbuf_addn(b, s, strlen(s));
}

static inline void pbuf_addf(struct pbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void pbuf_addf(struct pbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !pbuf_reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* The text, or "" when empty; NULL after an allocation failure. The buffer keeps ownership. */
static inline const char *pbuf_str(const struct pbuf *b)
{
	if (b->failed)
		return NULL;
	return b->s ? b->s : "";
}

static inline void pbuf_free(struct pbuf *b)
{
	free(b->s);
	*b = (struct pbuf){0};
}

/* Parse the custom settings object and refuse keys not in `known` (NULL-terminated), naming
 * the key and the accepted ones. Returns the parsed object (caller deletes) or NULL with err. */
static inline cJSON *plugin_custom_parse(const char *json, const char *const *known, char *err,
					 size_t errlen)
{
	cJSON *obj = cJSON_Parse(json ? json : "{}");
	if (!obj) {
		snprintf(err, errlen, "custom: invalid JSON");
		return NULL;
	}
	if (!cJSON_IsObject(obj)) {
		snprintf(err, errlen, "custom: must be a JSON object");
		cJSON_Delete(obj);
		return NULL;
	}
	const cJSON *it;
	cJSON_ArrayForEach(it, obj) {
		size_t i = 0;
		while (known[i] && strcmp(known[i], it->string) != 0)
			i++;
		if (known[i])
			continue;
		char list[256] = "";
		size_t used = 0;
		for (i = 0; known[i] && used < sizeof(list); i++)
			used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s",
						 i ? ", " : "", known[i]);
		snprintf(err, errlen, "custom.%s: unknown setting (expected: %s)", it->string,
			 known[0] ? list : "no settings");
		cJSON_Delete(obj);
		return NULL;
	}
	return obj;
}

/* Optional string setting: *out is the value (owned by obj) or NULL when absent. */
static inline bool plugin_custom_string(const cJSON *obj, const char *key, const char **out,
					char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	*out = NULL;
	if (!v)
		return true;
	if (!cJSON_IsString(v)) {
		snprintf(err, errlen, "custom.%s: must be a string", key);
		return false;
	}
	*out = v->valuestring;
	return true;
}

/* Optional boolean setting: *out keeps its default when absent. */
static inline bool plugin_custom_bool(const cJSON *obj, const char *key, bool *out, char *err,
				      size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (!v)
		return true;
	if (!cJSON_IsBool(v)) {
		snprintf(err, errlen, "custom.%s: must be true or false", key);
		return false;
	}
	*out = cJSON_IsTrue(v);
	return true;
}

static inline bool plugin_value_is_numeric(const struct diag_value *v)
{
	return v->kind == DIAG_VALUE_SIGNED || v->kind == DIAG_VALUE_UNSIGNED ||
	       v->kind == DIAG_VALUE_FLOAT;
}

/* The value as a double (exact for integers up to 2^53). */
static inline double plugin_value_number(const struct diag_value *v)
{
	switch (v->kind) {
	case DIAG_VALUE_SIGNED:
		return (double)v->i;
	case DIAG_VALUE_UNSIGNED:
		return (double)v->u;
	case DIAG_VALUE_FLOAT:
		return v->f;
	default:
		return 0;
	}
}

/* A number for display: integers without a fraction, others with 6 significant digits. */
static inline void plugin_format_number(char *buf, size_t len, double v)
{
	if (v > -1e15 && v < 1e15 && v == (double)(long long)v)
		snprintf(buf, len, "%lld", (long long)v);
	else
		snprintf(buf, len, "%.6g", v);
}

/* cJSON output of `obj` (malloc'd, freed with free() by the daemon), deleting obj. */
static inline char *plugin_report_finish(cJSON *obj)
{
	char *s = obj ? cJSON_PrintUnformatted(obj) : NULL;
	cJSON_Delete(obj);
	return s;
}

/* A report with its human-readable text: adds text as "text" when ok (what the caller built
 * into obj succeeded) and text did not fail, frees text, then finishes as plugin_report_finish.
 * NULL (obj deleted) when anything failed. */
static inline char *plugin_report_finish_text(cJSON *obj, struct pbuf *text, bool ok)
{
	ok = ok && pbuf_str(text) && cJSON_AddStringToObject(obj, "text", pbuf_str(text));
	pbuf_free(text);
	if (!ok) {
		cJSON_Delete(obj);
		return NULL;
	}
	return plugin_report_finish(obj);
}

#endif
