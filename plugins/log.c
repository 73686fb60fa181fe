/* log: the stock "log" instrument. Emits one line per event through host->emit, by default
 * `Probe (NAME) = VALUE` (the seed's format; `Probe (NAME)` alone when the probe has no
 * value expression), or a user format with placeholders; with custom.file also a JSON lines
 * file (jsonl_sink.h), with custom.journal also journal entries (journal_sink.h). Never blocks
 * and never keeps event pointers past fire(). */
#include <inttypes.h>
#include <time.h>

#include <diagnose/instrument.h>

#include "plugin_util.h"
#include "journal_sink.h"
#include "jsonl_sink.h"

struct log_instrument {
	char *name;
	char *format; /* NULL: the default line */
	struct diag_host host;
	uint64_t count;
	struct pbuf line; /* reused between events */
	struct jsonl_sink file;       /* custom.file: JSON lines, rotated */
	struct journal_sink journal;  /* custom.journal: journald entries */
};

static const char *const log_settings[] = {"format", "file", "max_bytes", "keep", "journal",
					   "journal_rate", NULL};

#define LOG_PLACEHOLDERS "{name}, {value}, {pid}, {tid}, {kind}, {time}, {id}"

static void log_add_time(struct pbuf *out, uint64_t ns)
{
	time_t sec = (time_t)(ns / 1000000000u);
	struct tm tm;
	char buf[32];
	gmtime_r(&sec, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	pbuf_addf(out, "%s.%09" PRIu64 "Z", buf, ns % 1000000000u);
}

/* Append the expansion of placeholder `key` (length n) for ev; false if the key is unknown.
 * With ev == NULL only the key is checked, which is how create() validates a format. */
static bool log_add_placeholder(struct pbuf *out, const char *key, size_t n,
				const struct diag_event *ev)
{
#define IS(k) (n == sizeof(k) - 1 && memcmp(key, k, n) == 0)
	if (!(IS("name") || IS("value") || IS("pid") || IS("tid") || IS("kind") || IS("time") ||
	      IS("id")))
		return false;
	if (!ev)
		return true;
	if (IS("name"))
		pbuf_add(out, ev->name ? ev->name : "");
	else if (IS("value"))
		pbuf_add(out, ev->value.text ? ev->value.text : "");
	else if (IS("pid"))
		pbuf_addf(out, "%d", (int)ev->pid);
	else if (IS("tid"))
		pbuf_addf(out, "%d", (int)ev->tid);
	else if (IS("kind"))
		pbuf_add(out, diag_event_kind_name(ev->kind));
	else if (IS("time"))
		log_add_time(out, ev->time_ns);
	else
		pbuf_add(out, ev->probe_id ? ev->probe_id : "");
	return true;
#undef IS
}

/* Expand fmt into out ("{{" and "}}" are literal braces). Returns false with err on a bad
 * placeholder; with ev == NULL nothing is appended (validation only). */
static bool log_expand(const char *fmt, const struct diag_event *ev, struct pbuf *out, char *err,
		       size_t errlen)
{
	const char *p = fmt;
	while (*p) {
		if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
			if (ev)
				pbuf_addn(out, p, 1);
			p += 2;
			continue;
		}
		if (*p != '{') {
			size_t n = strcspn(p, "{}");
			if (n == 0) { /* a lone '}' is kept as text */
				n = 1;
			}
			if (ev)
				pbuf_addn(out, p, n);
			p += n;
			continue;
		}
		const char *end = strchr(p, '}');
		if (!end) {
			snprintf(err, errlen, "custom.format: unterminated placeholder at offset %zu",
				 (size_t)(p - fmt));
			return false;
		}
		if (!log_add_placeholder(out, p + 1, (size_t)(end - p - 1), ev)) {
			snprintf(err, errlen,
				 "custom.format: unknown placeholder '%.*s' (expected " LOG_PLACEHOLDERS
				 ")",
				 (int)(end - p + 1 > 64 ? 64 : end - p + 1), p);
			return false;
		}
		p = end + 1;
	}
	return true;
}

static void log_destroy(void *self)
{
	struct log_instrument *l = self;
	if (!l)
		return;
	free(l->name);
	free(l->format);
	pbuf_free(&l->line);
	jsonl_close(&l->file);
	free(l);
}

static void *log_create(const char *name, const char *custom_json, const struct diag_host *host,
			char *err, size_t errlen)
{
	cJSON *custom = plugin_custom_parse(custom_json, log_settings, err, errlen);
	if (!custom)
		return NULL;
	const char *format = NULL;
	struct log_instrument *l = NULL;
	if (!plugin_custom_string(custom, "format", &format, err, errlen))
		goto fail;
	if (format && !log_expand(format, NULL, NULL, err, errlen))
		goto fail;
	l = calloc(1, sizeof(*l));
	if (l)
		l->file.fd = -1;
	if (!l || !(l->name = strdup(name ? name : "")) || (format && !(l->format = strdup(format)))) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (!journal_sink_open(&l->journal, custom, err, errlen) ||
	    !jsonl_sink_open(&l->file, custom, err, errlen))
		goto fail;
	if (host)
		l->host = *host;
	cJSON_Delete(custom);
	return l;
fail:
	cJSON_Delete(custom);
	log_destroy(l);
	return NULL;
}

static void log_fire(void *self, const struct diag_event *ev)
{
	struct log_instrument *l = self;
	l->count++;
	jsonl_event(&l->file, ev);
	if (!l->host.emit && !l->journal.on)
		return;
	l->line.len = 0;
	if (l->line.s)
		l->line.s[0] = '\0';
	if (l->format) {
		char err[8];
		log_expand(l->format, ev, &l->line, err, sizeof(err));
	} else { /* the default line, without printf: this runs millions of times a second */
		pbuf_add(&l->line, "Probe (");
		pbuf_add(&l->line, ev->name ? ev->name : l->name);
		if (ev->value.kind == DIAG_VALUE_NONE) {
			pbuf_add(&l->line, ")");
		} else {
			pbuf_add(&l->line, ") = ");
			pbuf_add(&l->line, ev->value.text ? ev->value.text : "");
		}
	}
	const char *line = pbuf_str(&l->line);
	journal_event(&l->journal, ev, line);
	if (line && l->host.emit)
		l->host.emit(l->host.ctx, line);
	else /* the next event may fit again */
		pbuf_free(&l->line);
}

static char *log_report(void *self)
{
	struct log_instrument *l = self;
	cJSON *r = cJSON_CreateObject();
	if (r) {
		cJSON_AddNumberToObject(r, "count", (double)l->count);
		jsonl_report(&l->file, r);
		journal_report(&l->journal, r);
	}
	return plugin_report_finish(r);
}

static void log_idle(void *self)
{
	struct log_instrument *l = self;
	jsonl_idle(&l->file);
}

PLUGIN_EXPORT const struct diag_instrument_ops diag_instrument = {
	.abi_version = DIAG_INSTRUMENT_ABI,
	.type = "log",
	.create = log_create,
	.fire = log_fire,
	.report = log_report,
	.destroy = log_destroy,
	.idle = log_idle,
};
