/* jsonl_sink: the log plugin's JSON lines file (custom.file), for log shippers (Vector, Fluent
 * Bit, Filebeat): one JSON object per event and line, buffered, rotated by size
 * (custom.max_bytes, default 64 MiB; custom.keep rotated files, default 5: FILE.1 the newest)
 * between two lines, so no event is ever split across files or lost in a rotation. Writes from
 * the daemon's event worker only. Header-only, like plugin_util.h. */
#ifndef DIAG_PLUGIN_JSONL_SINK_H
#define DIAG_PLUGIN_JSONL_SINK_H

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <diagnose/event.h>

#define JSONL_BUF (64 * 1024)
#define JSONL_KEEP_MAX 100

struct jsonl_sink {
	int fd;                 /* -1: off */
	char *path;
	uint64_t max_bytes, size;
	unsigned keep;
	char *buf;
	size_t len;
	uint64_t lines, rotations, errors;
	uint64_t last_write_ns;
};

#define JSONL_FLUSH_NS 100000000ULL /* buffered lines reach the file at least this often */

static inline uint64_t jsonl_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static inline bool jsonl_number(const cJSON *custom, const char *key, double lo, double hi,
				double *out, char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(custom, key);
	if (!v)
		return true;
	if (!cJSON_IsNumber(v) || v->valuedouble < lo || v->valuedouble > hi ||
	    v->valuedouble != (double)(uint64_t)v->valuedouble) {
		snprintf(err, errlen, "custom.%s: must be an integer in [%.0f, %.0f]", key, lo, hi);
		return false;
	}
	*out = v->valuedouble;
	return true;
}

static inline int jsonl_open_file(const char *path)
{
	return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0640);
}

/* custom.file (absolute path), custom.max_bytes, custom.keep. Off without custom.file. */
static inline bool jsonl_sink_open(struct jsonl_sink *s, const cJSON *custom, char *err,
				   size_t errlen)
{
	memset(s, 0, sizeof(*s));
	s->fd = -1;
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(custom, "file");
	double max = 64.0 * 1024 * 1024, keep = 5;
	if (!jsonl_number(custom, "max_bytes", 4096, 1e12, &max, err, errlen) ||
	    !jsonl_number(custom, "keep", 1, JSONL_KEEP_MAX, &keep, err, errlen))
		return false;
	if (!f)
		return true;
	if (!cJSON_IsString(f) || f->valuestring[0] != '/' || strlen(f->valuestring) > 4000) {
		snprintf(err, errlen, "custom.file: must be an absolute path");
		return false;
	}
	s->fd = jsonl_open_file(f->valuestring);
	if (s->fd < 0) {
		snprintf(err, errlen, "custom.file: %s: %s", f->valuestring, strerror(errno));
		return false;
	}
	struct stat sb;
	s->size = fstat(s->fd, &sb) == 0 ? (uint64_t)sb.st_size : 0;
	s->path = strdup(f->valuestring);
	s->buf = malloc(JSONL_BUF);
	if (!s->path || !s->buf) {
		snprintf(err, errlen, "out of memory");
		close(s->fd);
		free(s->path);
		free(s->buf);
		s->fd = -1;
		return false;
	}
	s->max_bytes = (uint64_t)max;
	s->keep = (unsigned)keep;
	return true;
}

static inline void jsonl_write_out(struct jsonl_sink *s)
{
	size_t off = 0;
	while (off < s->len) {
		ssize_t w = write(s->fd, s->buf + off, s->len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			s->errors++; /* a full disk loses this batch, counted; the daemon goes on */
			break;
		}
		off += (size_t)w;
		s->size += (uint64_t)w;
	}
	s->len = 0;
}

/* FILE -> FILE.1 -> ... -> FILE.keep (the oldest dropped), then a fresh FILE. */
static inline void jsonl_rotate(struct jsonl_sink *s)
{
	size_t n = strlen(s->path) + 8;
	char *from = malloc(n), *to = malloc(n);
	if (from && to) {
		for (unsigned i = s->keep; i >= 1; i--) {
			snprintf(to, n, "%s.%u", s->path, i);
			if (i == 1)
				snprintf(from, n, "%s", s->path);
			else
				snprintf(from, n, "%s.%u", s->path, i - 1);
			rename(from, to); /* a missing one is fine */
		}
		int fd = jsonl_open_file(s->path);
		if (fd >= 0) {
			close(s->fd);
			s->fd = fd;
			s->size = 0;
			s->rotations++;
		} else {
			s->errors++;
		}
	}
	free(from);
	free(to);
}

static inline void jsonl_flush(struct jsonl_sink *s)
{
	if (s->fd >= 0 && s->len)
		jsonl_write_out(s);
	s->last_write_ns = jsonl_now_ns();
}

/* One event as one line; the file rotates before a line that would pass max_bytes. */
static inline void jsonl_event(struct jsonl_sink *s, const struct diag_event *ev)
{
	if (s->fd < 0)
		return;
	cJSON *o = cJSON_CreateObject();
	char t[40];
	struct tm tm;
	time_t sec = (time_t)(ev->time_ns / 1000000000u);
	gmtime_r(&sec, &tm);
	size_t tl = strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(t + tl, sizeof(t) - tl, ".%09" PRIu64 "Z", ev->time_ns % 1000000000u);
	cJSON_AddStringToObject(o, "time", t);
	cJSON_AddStringToObject(o, "probe", ev->probe_id ? ev->probe_id : "");
	cJSON_AddStringToObject(o, "name", ev->name ? ev->name : "");
	cJSON_AddNumberToObject(o, "pid", ev->pid);
	cJSON_AddNumberToObject(o, "tid", ev->tid);
	cJSON_AddStringToObject(o, "event", diag_event_kind_name(ev->kind));
	if (ev->value.kind != DIAG_VALUE_NONE)
		cJSON_AddStringToObject(o, "value", ev->value.text ? ev->value.text : "");
	if (ev->value.kind == DIAG_VALUE_SIGNED)
		cJSON_AddNumberToObject(o, "number", (double)ev->value.i);
	else if (ev->value.kind == DIAG_VALUE_UNSIGNED)
		cJSON_AddNumberToObject(o, "number", (double)ev->value.u);
	char *line = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!line) {
		s->errors++;
		return;
	}
	size_t n = strlen(line);
	if (s->size + s->len + n + 1 > s->max_bytes && s->size + s->len > 0) {
		jsonl_flush(s);
		jsonl_rotate(s);
	}
	if (s->len + n + 1 > JSONL_BUF)
		jsonl_flush(s);
	if (n + 1 <= JSONL_BUF) {
		memcpy(s->buf + s->len, line, n);
		s->len += n;
		s->buf[s->len++] = '\n';
		s->lines++;
	} else {
		s->errors++; /* one event larger than the buffer (64 KiB): not split, counted */
	}
	free(line);
	if (jsonl_now_ns() - s->last_write_ns >= JSONL_FLUSH_NS)
		jsonl_flush(s);
}

/* The event stream paused (ABI 2 idle): buffered lines reach the file once JSONL_FLUSH_NS old. */
static inline void jsonl_idle(struct jsonl_sink *s)
{
	if (s->fd >= 0 && s->len && jsonl_now_ns() - s->last_write_ns >= JSONL_FLUSH_NS)
		jsonl_flush(s);
}

static inline void jsonl_report(struct jsonl_sink *s, cJSON *r)
{
	if (s->fd < 0)
		return;
	jsonl_flush(s);
	cJSON *o = cJSON_AddObjectToObject(r, "file");
	cJSON_AddStringToObject(o, "path", s->path);
	cJSON_AddNumberToObject(o, "lines", (double)s->lines);
	cJSON_AddNumberToObject(o, "rotations", (double)s->rotations);
	cJSON_AddNumberToObject(o, "errors", (double)s->errors);
}

static inline void jsonl_close(struct jsonl_sink *s)
{
	if (s->fd < 0)
		return;
	jsonl_flush(s);
	close(s->fd);
	free(s->path);
	free(s->buf);
	s->fd = -1;
}

#endif
