/* statsd_sink: the StatsD output of the incr and hist plugins (custom.statsd "HOST:PORT", or
 * the daemon's default from DIAGNOSE_STATSD, set by `diagnosed --statsd`). Counts are summed
 * and values batched into datagrams of at most STATSD_DATAGRAM bytes, sent without ever
 * waiting from the plugin's worker thread (never from a target's hit): a receiver that is slow,
 * full or gone costs dropped datagrams, counted, never time. DogStatsD tags (custom.statsd_tags)
 * add `|#probe:ID,pid:PID`. Header-only, like plugin_util.h: built into each plugin. */
#ifndef DIAG_PLUGIN_STATSD_SINK_H
#define DIAG_PLUGIN_STATSD_SINK_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#define STATSD_DATAGRAM 1432        /* fits one Ethernet frame with IPv6 and UDP headers */
#define STATSD_FLUSH_NS 100000000ULL /* counts and partial datagrams leave at least this often */
#define STATSD_NAME_MAX 128
#define STATSD_PIDS 16              /* per-process counts held between flushes (tags) */

struct statsd_sink {
	int fd;                     /* -1: off */
	char target[80];
	char name[STATSD_NAME_MAX]; /* the instrument name, safe for the line protocol */
	bool tags;
	char buf[STATSD_DATAGRAM];
	size_t len;
	uint64_t last_flush_ns;
	struct { int pid; uint64_t n; char probe[65]; } counts[STATSD_PIDS];
	size_t ncounts;
	uint64_t sent, dropped;     /* datagrams */
};

static inline uint64_t statsd_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* "A.B.C.D:PORT" or "[v6]:PORT" into sa; false with a reason. A host name would need a
 * resolver that can block: refused, with what to write instead. */
static inline bool statsd_parse_addr(const char *field, const char *s,
				     struct sockaddr_storage *sa, socklen_t *len, char *err,
				     size_t errlen)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	const char *h = s, *he = colon;
	if (s[0] == '[') {
		he = strchr(s, ']');
		h = s + 1;
		if (!he || he[1] != ':')
			he = NULL;
		colon = he ? he + 1 : NULL;
	}
	char *end = NULL;
	long port = colon ? strtol(colon + 1, &end, 10) : 0;
	if (!colon || !he || he == h || (size_t)(he - h) >= sizeof(host) || !end || *end ||
	    end == colon + 1 || port < 1 || port > 65535) {
		snprintf(err, errlen, "%s: '%.80s' must be ADDR:PORT (127.0.0.1:8125, [::1]:8125)",
			 field, s);
		return false;
	}
	memcpy(host, h, (size_t)(he - h));
	host[he - h] = '\0';
	memset(sa, 0, sizeof(*sa));
	struct sockaddr_in *v4 = (struct sockaddr_in *)sa;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)sa;
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)port);
		*len = sizeof(*v4);
	} else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*v6);
	} else {
		snprintf(err, errlen,
			 "%s: '%.64s' is not an IP address (a name would be resolved on the daemon's event path; give the address)",
			 field, host);
		return false;
	}
	return true;
}

/* Read custom.statsd / custom.statsd_tags (or DIAGNOSE_STATSD) and open the socket. A sink
 * without a target stays off (fd -1). False with err on a bad setting. */
static inline bool statsd_sink_open(struct statsd_sink *s, const cJSON *custom, const char *name,
				    char *err, size_t errlen)
{
	memset(s, 0, sizeof(*s));
	s->fd = -1;
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(custom, "statsd");
	const cJSON *tags = cJSON_GetObjectItemCaseSensitive(custom, "statsd_tags");
	if (t && !cJSON_IsString(t)) {
		snprintf(err, errlen, "custom.statsd: must be a string ADDR:PORT");
		return false;
	}
	if (tags && !cJSON_IsBool(tags)) {
		snprintf(err, errlen, "custom.statsd_tags: must be true or false");
		return false;
	}
	const char *target = t ? t->valuestring : getenv("DIAGNOSE_STATSD");
	const char *field = t ? "custom.statsd" : "the daemon's --statsd";
	if (!target || !*target)
		return true;
	struct sockaddr_storage sa;
	socklen_t salen;
	if (!statsd_parse_addr(field, target, &sa, &salen, err, errlen))
		return false;
	s->fd = socket(sa.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0 || connect(s->fd, (struct sockaddr *)&sa, salen) < 0) {
		snprintf(err, errlen, "%s: %s: %s", field, target, strerror(errno));
		if (s->fd >= 0)
			close(s->fd);
		s->fd = -1;
		return false;
	}
	snprintf(s->target, sizeof(s->target), "%s", target);
	s->tags = tags && cJSON_IsTrue(tags);
	size_t i = 0;
	for (; name && name[i] && i + 1 < sizeof(s->name); i++) {
		char c = name[i];
		s->name[i] = (c == ':' || c == '|' || c == '@' || c == '#' || c == ',' || c <= ' ' ||
			      c == 0x7f) ? '_' : c;
	}
	s->name[i] = '\0';
	s->last_flush_ns = statsd_now_ns();
	return true;
}

static inline void statsd_send(struct statsd_sink *s)
{
	if (!s->len)
		return;
	/* MSG_DONTWAIT: a full socket buffer drops this datagram; ECONNREFUSED (nobody listens)
	 * is only the kernel's report of an earlier datagram: also a drop, never a wait */
	if (send(s->fd, s->buf, s->len - 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		s->dropped++;
	else
		s->sent++;
	s->len = 0;
}

/* One line (without its newline) into the datagram being filled. */
static inline void statsd_line(struct statsd_sink *s, const char *line, size_t n)
{
	if (n + 1 > sizeof(s->buf))
		return;
	if (s->len + n + 1 > sizeof(s->buf))
		statsd_send(s);
	memcpy(s->buf + s->len, line, n);
	s->len += n;
	s->buf[s->len++] = '\n';
}

static inline void statsd_tagged(struct statsd_sink *s, const char *body, const char *probe, int pid)
{
	char line[STATSD_NAME_MAX + 192];
	int n = s->tags ? snprintf(line, sizeof(line), "%s:%s|#probe:%s,pid:%d", s->name, body,
				   probe ? probe : "", pid)
			: snprintf(line, sizeof(line), "%s:%s", s->name, body);
	if (n > 0 && (size_t)n < sizeof(line))
		statsd_line(s, line, (size_t)n);
}

/* Everything held leaves now: the summed counts, then the partial datagram. */
static inline void statsd_flush(struct statsd_sink *s)
{
	if (s->fd < 0)
		return;
	for (size_t i = 0; i < s->ncounts; i++) {
		char body[40];
		snprintf(body, sizeof(body), "%llu|c", (unsigned long long)s->counts[i].n);
		statsd_tagged(s, body, s->counts[i].probe, s->counts[i].pid);
	}
	s->ncounts = 0;
	statsd_send(s);
	s->last_flush_ns = statsd_now_ns();
}

static inline void statsd_maybe_flush(struct statsd_sink *s)
{
	if (s->fd >= 0 && statsd_now_ns() - s->last_flush_ns >= STATSD_FLUSH_NS)
		statsd_flush(s);
}

/* The event stream paused (ABI 2 idle): what is held leaves once it is STATSD_FLUSH_NS old. */
static inline void statsd_idle(struct statsd_sink *s)
{
	if (s->ncounts || s->len)
		statsd_maybe_flush(s);
}

/* n counted events (summed per process when tagged, else in one count). */
static inline void statsd_count(struct statsd_sink *s, const char *probe, int pid, uint64_t n)
{
	if (s->fd < 0)
		return;
	int key = s->tags ? pid : 0;
	size_t i = 0;
	while (i < s->ncounts && s->counts[i].pid != key)
		i++;
	if (i == s->ncounts) {
		if (i == STATSD_PIDS) {
			statsd_flush(s);
			i = 0;
		}
		s->counts[i].pid = key;
		s->counts[i].n = 0;
		snprintf(s->counts[i].probe, sizeof(s->counts[i].probe), "%s", probe ? probe : "");
		s->ncounts = i + 1;
	}
	s->counts[i].n += n;
	statsd_maybe_flush(s);
}

/* One value of a histogram: a `|h` line of its own, batched. */
static inline void statsd_value(struct statsd_sink *s, double v, const char *probe, int pid)
{
	if (s->fd < 0)
		return;
	char body[48];
	if (v > -1e15 && v < 1e15 && v == (double)(long long)v)
		snprintf(body, sizeof(body), "%lld|h", (long long)v);
	else
		snprintf(body, sizeof(body), "%.6g|h", v);
	statsd_tagged(s, body, probe, pid);
	statsd_maybe_flush(s);
}

/* The sink's figures in a report: {"target", "datagrams", "dropped"}. */
static inline void statsd_report(struct statsd_sink *s, cJSON *r)
{
	if (s->fd < 0)
		return;
	statsd_flush(s);
	cJSON *o = cJSON_AddObjectToObject(r, "statsd");
	cJSON_AddStringToObject(o, "target", s->target);
	cJSON_AddNumberToObject(o, "datagrams", (double)s->sent);
	cJSON_AddNumberToObject(o, "dropped", (double)s->dropped);
}

static inline void statsd_close(struct statsd_sink *s)
{
	if (s->fd < 0)
		return;
	statsd_flush(s);
	close(s->fd);
	s->fd = -1;
}

#endif
