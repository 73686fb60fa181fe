/* journal_sink: the log plugin's journald output (custom.journal: true): one journal entry
 * per event with the fields PROBE_ID, PROBE_NAME, TARGET_PID, TARGET_TID, EVENT, VALUE and
 * MESSAGE (the log line), rate-limited (custom.journal_rate entries per second, default 1000;
 * beyond it entries are dropped and counted, and one entry says how many). Built when
 * libsystemd is (DIAG_HAVE_SYSTEMD); without it custom.journal is refused with that reason.
 * Header-only, like plugin_util.h. */
#ifndef DIAG_PLUGIN_JOURNAL_SINK_H
#define DIAG_PLUGIN_JOURNAL_SINK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <diagnose/event.h>
#ifdef DIAG_HAVE_SYSTEMD
#include <syslog.h>
#include <systemd/sd-journal.h>
#endif

struct journal_sink {
	bool on;
	double rate;            /* entries per second */
	double tokens;
	uint64_t last_ns;
	uint64_t sent, dropped, dropped_reported;
};

static inline uint64_t journal_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static inline bool journal_sink_open(struct journal_sink *s, const cJSON *custom, char *err,
				     size_t errlen)
{
	*s = (struct journal_sink){.rate = 1000};
	const cJSON *on = cJSON_GetObjectItemCaseSensitive(custom, "journal");
	const cJSON *rate = cJSON_GetObjectItemCaseSensitive(custom, "journal_rate");
	if (on && !cJSON_IsBool(on)) {
		snprintf(err, errlen, "custom.journal: must be true or false");
		return false;
	}
	if (rate && (!cJSON_IsNumber(rate) || rate->valuedouble < 1 || rate->valuedouble > 1e6)) {
		snprintf(err, errlen, "custom.journal_rate: must be a number of entries per second in [1, 1000000]");
		return false;
	}
	s->on = on && cJSON_IsTrue(on);
	if (rate)
		s->rate = rate->valuedouble;
	s->tokens = s->rate;
	s->last_ns = journal_now_ns();
#ifndef DIAG_HAVE_SYSTEMD
	if (s->on) {
		snprintf(err, errlen, "custom.journal: this build has no libsystemd");
		return false;
	}
#endif
	return true;
}

/* A token bucket of `rate` per second, as deep as one second of entries. */
static inline bool journal_take(struct journal_sink *s)
{
	uint64_t now = journal_now_ns();
	s->tokens += (double)(now - s->last_ns) * s->rate / 1e9;
	if (s->tokens > s->rate)
		s->tokens = s->rate;
	s->last_ns = now;
	if (s->tokens < 1) {
		s->dropped++;
		return false;
	}
	s->tokens -= 1;
	return true;
}

static inline void journal_event(struct journal_sink *s, const struct diag_event *ev,
				 const char *line)
{
	if (!s->on || !journal_take(s))
		return;
#ifdef DIAG_HAVE_SYSTEMD
	if (s->dropped > s->dropped_reported) {
		sd_journal_send("MESSAGE=probe %s: %llu events not sent to the journal (over %.0f/s)",
				ev->probe_id ? ev->probe_id : "",
				(unsigned long long)(s->dropped - s->dropped_reported), s->rate,
				"PRIORITY=%d", LOG_WARNING, "PROBE_ID=%s", ev->probe_id ? ev->probe_id : "",
				NULL);
		s->dropped_reported = s->dropped;
	}
	sd_journal_send("MESSAGE=%s", line ? line : "", "PRIORITY=%d", LOG_INFO,
			"SYSLOG_IDENTIFIER=diagnosed", "PROBE_ID=%s", ev->probe_id ? ev->probe_id : "",
			"PROBE_NAME=%s", ev->name ? ev->name : "", "TARGET_PID=%d", (int)ev->pid,
			"TARGET_TID=%d", (int)ev->tid, "EVENT=%s", diag_event_kind_name(ev->kind),
			"VALUE=%s", ev->value.text ? ev->value.text : "", NULL);
	s->sent++;
#else
	(void)ev;
	(void)line;
#endif
}

static inline void journal_report(const struct journal_sink *s, cJSON *r)
{
	if (!s->on)
		return;
	cJSON *o = cJSON_AddObjectToObject(r, "journal");
	cJSON_AddNumberToObject(o, "sent", (double)s->sent);
	cJSON_AddNumberToObject(o, "dropped", (double)s->dropped);
}

#endif
