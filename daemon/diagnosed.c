/* diagnosed: the daemon's entry point. Parses the command line, applies --spec files to
 * --pid processes, and runs the one epoll loop over the engine's fd, a signalfd (SIGTERM,
 * SIGINT, SIGHUP), a timerfd (lifespans, wait timeouts) and the control socket. Exits only by
 * signal (end of stdin is not a stop condition: under systemd stdin is /dev/null) or when
 * nothing at all could be applied. No ELF, DWARF or ptrace code of its own. A fatal signal of
 * its own starts `diagnosed --recover-after` (diagnosed_crash.c), another mode of this binary.
 * The top of the daemon: it owns the manager, the governor and the server and ticks each; it
 * connects the manager's hits to the server. Nothing calls back up into it. */
#include "diagnosed_crash.h"
#include "diagnosed_fleet.h"
#include "diagnosed_governor.h"
#include "diagnosed_manager.h"
#include "diagnosed_metrics.h"
#include "diagnosed_server.h"
#include "diagnosed_watch.h"
#include "indexer/indexer.h"
#include "log.h"
#include "spec/json.h"
#include "spec/oneline.h"
#include "store/fleet.h"
#include "ctl_print.h"
#include "diagnosed_policy.h"
#include "util/clock.h"
#include "util/grow.h"
#include "util/text.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>
#ifdef DIAG_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#define DEFAULT_SOCKET "/run/diagnose/diagnosed.sock"
#define DEFAULT_STORE "/var/lib/diagnose/specs.json"
#define MAX_ARG_PIDS 256
#define MAX_ARG_SPECS 64

struct options {
	pid_t pids[MAX_ARG_PIDS];
	size_t npids;
	const char *specs[MAX_ARG_SPECS];
	size_t nspecs;
	const char *lines[MAX_ARG_SPECS]; /* -e: one-line probes (spec/oneline.h) */
	size_t nlines;
	double duration;     /* --duration SECONDS: a one-shot run ends then (0: no bound) */
	bool foreground;     /* --foreground: events to stdout also without --spec or -e */
	const char *socket, *store, *plugin_dir;
	const char *metrics_listen; /* --metrics-listen ADDR:PORT, NULL: off */
	const char *policy;         /* --policy FILE (default DMN_POLICY_DEFAULT) */
	const char *statsd;         /* --statsd ADDR:PORT: where incr and hist send by default */
	bool no_socket;
	bool allow_pid1;
	pid_t recover_after; /* --recover-after PID: restore what PID left, then exit */
	struct dmn_governor_limits limits;
	struct diag_indexer_opts indexer; /* --indexer-uid, --indexer-timeout */
	size_t ring_kib;                  /* --ring-kib, 0: the engine's default */
	size_t max_traced;                /* --max-traced, 0: DMN_MANAGER_TARGETS_MAX */
	size_t max_per_spec;              /* --max-processes-per-spec, 0: the default */
	const char *store_password_file;  /* --store-password-file (redis:// stores) */
	const char *host_name;            /* --host-name (default: the hostname) */
	double store_heartbeat;           /* --store-heartbeat SECONDS (0: 5) */
	int nice;                         /* --nice N, the daemon's threads' nice value */
	bool private_ring;                /* --private-ring (--shared-ring: the default) */
};

/* The daemon drains the targets' rings: starved of CPU by the programs it watches, it loses
 * their events (counted as dropped). By default it runs a little ahead of them. */
#define DEFAULT_NICE (-5)

static void usage(FILE *f)
{
	fputs("usage: diagnosed -p PID -e 'TYPE TARGET[@EVENT] [VALUE] [if COND]'... [-d SECONDS]\n"
	      "       diagnosed [--pid PID]... [--spec FILE]... [--socket PATH] [--store PATH]\n"
	      "                 [--plugin-dir DIR] [--no-socket] [--foreground] [--allow-pid1]\n"
	      "                 [--max-hits-per-sec N] [--max-stopped-ms-per-sec MS]\n"
	      "                 [--max-stopped-percent P]\n"
	      "                 [--max-total-hits-per-sec N] [--max-total-stopped-ms-per-sec MS]\n"
	      "                 [--indexer-uid UID[:GID]] [--indexer-timeout SECONDS]\n"
	      "                 [--metrics-listen ADDR:PORT] [--statsd ADDR:PORT] [--policy FILE]\n"
	      "                 [--ring-kib KIB] [--private-ring] [--nice N] [--max-traced N]\n"
	      "                 [--max-processes-per-spec N]\n"
	      "                 [--store redis://[USER@]HOST:PORT[/DB] [--store-password-file FILE]\n"
	      "                  [--host-name NAME] [--store-heartbeat SECONDS]]\n"
	      "       diagnosed --recover-after PID\n"
	      "       diagnosed --version\n", f);
}

static int parse_pid(const char *s, pid_t *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 1 || v > INT_MAX)
		return -1;
	*out = (pid_t)v;
	return 0;
}

/* A governor budget: a number >= 0 (0: no limit). */
static int parse_limit(const char *opt, const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= 0) || v > 1e12) {
		dmn_log("%s %s: must be a number >= 0 (0: no limit)", opt, s);
		return -1;
	}
	*out = v;
	return 0;
}

/* --max-traced, --max-processes-per-spec: a whole number in [1, max]. */
static int parse_count(const char *opt, const char *s, size_t max, size_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < 1 || v > max) {
		dmn_log("--%s %s: must be a whole number in [1, %zu]", opt, s, max);
		return -1;
	}
	*out = (size_t)v;
	return 0;
}

/* --indexer-uid UID[:GID] (GID defaults to UID); never 0. */
static int parse_ids(const char *s, struct diag_indexer_opts *o)
{
	char *end;
	errno = 0;
	unsigned long u = strtoul(s, &end, 10), g = u;
	if (!errno && end != s && *end == ':') {
		const char *gs = end + 1;
		g = strtoul(gs, &end, 10);
		if (end == gs)
			return -1;
	}
	if (errno || end == s || *end || u == 0 || g == 0 || u >= 0xffffffffUL || g >= 0xffffffffUL ||
	    s[0] == '-')
		return -1;
	o->uid = (uid_t)u;
	o->gid = (gid_t)g;
	return 0;
}

/* --ring-kib KIB: a whole number of KiB within the engine's limits. */
static int parse_ring_kib(const char *s, size_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < DIAG_ENGINE_RING_MIN / 1024 ||
	    v > DIAG_ENGINE_RING_MAX / 1024) {
		dmn_log("--ring-kib %s: must be a whole number of KiB in [%u, %u] (default %u): the "
			"hit ring each target maps for its jump probes", s, DIAG_ENGINE_RING_MIN / 1024,
			DIAG_ENGINE_RING_MAX / 1024, DIAG_ENGINE_RING_DEFAULT / 1024);
		return -1;
	}
	*out = (size_t)v;
	return 0;
}

/* --nice N: a whole number in [-20, 19]. */
static int parse_nice(const char *s, int *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < -20 || v > 19) {
		dmn_log("--nice %s: must be a whole number in [-20, 19] (default %d): the daemon's "
			"scheduling priority, ahead of its targets so that it drains their rings", s,
			DEFAULT_NICE);
		return -1;
	}
	*out = (int)v;
	return 0;
}

/* Before any thread exists (each inherits it): the daemon's nice value. Not allowed (no
 * CAP_SYS_NICE for a negative one): said, and the daemon runs at the one it has. */
static void apply_nice(int nice)
{
	if (setpriority(PRIO_PROCESS, 0, nice) < 0)
		dmn_log("--nice %d: %s; running at nice %d", nice, strerror(errno),
			getpriority(PRIO_PROCESS, 0));
}

/* Returns 0, 1 (exit 0: --help) or -1 (usage error, printed). */
static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "spec", required_argument, NULL, 's' },
		{ "socket", required_argument, NULL, 'S' },
		{ "store", required_argument, NULL, 'Z' },
		{ "plugin-dir", required_argument, NULL, 'P' },
		{ "no-socket", no_argument, NULL, 'n' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ "max-hits-per-sec", required_argument, NULL, 'H' },
		{ "max-stopped-ms-per-sec", required_argument, NULL, 'T' },
		{ "max-total-hits-per-sec", required_argument, NULL, 'I' },
		{ "max-total-stopped-ms-per-sec", required_argument, NULL, 'U' },
		{ "max-stopped-percent", required_argument, NULL, 'C' },
		{ "recover-after", required_argument, NULL, 'R' },
		{ "indexer-uid", required_argument, NULL, 'X' },
		{ "indexer-timeout", required_argument, NULL, 'Y' },
		{ "allow-pid1", no_argument, NULL, '1' },
		{ "metrics-listen", required_argument, NULL, 'M' },
		{ "ring-kib", required_argument, NULL, 'r' },
		{ "nice", required_argument, NULL, 'K' },
		{ "shared-ring", no_argument, NULL, 'j' }, /* the default; kept for old command lines */
		{ "private-ring", no_argument, NULL, 'q' },
		{ "version", no_argument, NULL, 'V' },
		{ "probe", required_argument, NULL, 'e' },
		{ "policy", required_argument, NULL, 'O' },
		{ "statsd", required_argument, NULL, 'G' },
		{ "duration", required_argument, NULL, 'D' },
		{ "max-traced", required_argument, NULL, 'N' },
		{ "max-processes-per-spec", required_argument, NULL, 'Q' },
		{ "store-password-file", required_argument, NULL, 'W' },
		{ "host-name", required_argument, NULL, 'J' },
		{ "store-heartbeat", required_argument, NULL, 'B' },
		{ 0 },
	};
	int ch, li = 0;
	opterr = 0;
	dmn_governor_default_limits(&o->limits);
	while ((ch = getopt_long(argc, argv, "p:e:d:", longopts, &li)) != -1) {
		double *lim = ch == 'H' ? &o->limits.max_hits_per_sec
			    : ch == 'T' ? &o->limits.max_stopped_ms_per_sec
			    : ch == 'I' ? &o->limits.max_total_hits_per_sec
			    : ch == 'U' ? &o->limits.max_total_stopped_ms_per_sec
			    : ch == 'C' ? &o->limits.max_stopped_percent : NULL;
		if (lim) {
			char opt[64];
			snprintf(opt, sizeof(opt), "--%s", longopts[li].name);
			if (parse_limit(opt, optarg, lim) < 0)
				return -1;
			continue;
		}
		switch (ch) {
		case 'p':
			if (o->npids == MAX_ARG_PIDS || parse_pid(optarg, &o->pids[o->npids]) < 0) {
				dmn_log("--pid %s: not a process id (or more than %d)", optarg,
					 MAX_ARG_PIDS);
				return -1;
			}
			o->npids++;
			break;
		case 's':
			if (o->nspecs == MAX_ARG_SPECS) {
				dmn_log("--spec: at most %d files", MAX_ARG_SPECS);
				return -1;
			}
			o->specs[o->nspecs++] = optarg;
			break;
		case 'R':
			if (parse_pid(optarg, &o->recover_after) < 0) {
				dmn_log("--recover-after %s: not a process id", optarg);
				return -1;
			}
			break;
		case 'X':
			if (parse_ids(optarg, &o->indexer) < 0) {
				dmn_log("--indexer-uid %s: must be UID or UID:GID, not 0", optarg);
				return -1;
			}
			break;
		case 'Y': {
			double secs;
			if (parse_limit("--indexer-timeout", optarg, &secs) < 0 || secs < 0.1 || secs > 3600) {
				dmn_log("--indexer-timeout %s: must be seconds in [0.1, 3600]", optarg);
				return -1;
			}
			o->indexer.timeout_ms = (unsigned)(secs * 1000);
			break;
		}
		case 'S': o->socket = optarg; break;
		case 'Z': o->store = optarg; break;
		case 'e':
			if (o->nlines == MAX_ARG_SPECS) {
				dmn_log("-e: at most %d probes", MAX_ARG_SPECS);
				return -1;
			}
			o->lines[o->nlines++] = optarg;
			break;
		case 'd':
		case 'D':
			if (parse_limit("--duration", optarg, &o->duration) < 0)
				return -1;
			break;
		case 'P': o->plugin_dir = optarg; break;
		case 'n': o->no_socket = true; break;
		case '1': o->allow_pid1 = true; break;
		case 'f': o->foreground = true; break; /* always in the foreground anyway */
		case 'h': usage(stdout); return 1;
		case 'V': printf("diagnosed %s\n", DIAG_VERSION); return 1;
		case 'M': o->metrics_listen = optarg; break;
		case 'r':
			if (parse_ring_kib(optarg, &o->ring_kib) < 0)
				return -1;
			break;
		case 'j':
			o->private_ring = false;
			break;
		case 'q':
			o->private_ring = true;
			break;
		case 'K':
			if (parse_nice(optarg, &o->nice) < 0)
				return -1;
			break;
		case 'N':
		case 'Q':
			if (parse_count(longopts[li].name, optarg, ch == 'N' ? DMN_MANAGER_TARGETS_MAX : 4096,
					ch == 'N' ? &o->max_traced : &o->max_per_spec) < 0)
				return -1;
			break;
		case 'O': o->policy = optarg; break;
		case 'W': o->store_password_file = optarg; break;
		case 'J':
			if (!diag_spec_host_valid(optarg)) {
				dmn_log("--host-name %s: must be 1-%d characters of A-Z a-z 0-9 . _ -",
					optarg, DIAG_SPEC_HOST_MAX);
				return -1;
			}
			o->host_name = optarg;
			break;
		case 'B':
			if (parse_limit("--store-heartbeat", optarg, &o->store_heartbeat) < 0 ||
			    o->store_heartbeat < 0.1 || o->store_heartbeat > 3600) {
				dmn_log("--store-heartbeat %s: must be seconds in [0.1, 3600]", optarg);
				return -1;
			}
			break;
		case 'G': o->statsd = optarg; break;
		default:
			dmn_log("unknown option '%s'", argv[optind - 1]);
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		dmn_log("unexpected argument '%s'", argv[optind]);
		usage(stderr);
		return -1;
	}
	return 0;
}

/* The build tree keeps plugins beside the daemon's directory; an installed daemon uses the
 * configured directory. */
static const char *default_plugin_dir(char *buf, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	struct stat sb;
	if (n > 0) {
		exe[n] = '\0';
		char guess[PATH_MAX + 16];
		snprintf(guess, sizeof(guess), "%s/../plugins", dirname(exe));
		if (stat(guess, &sb) == 0 && S_ISDIR(sb.st_mode) && realpath(guess, buf) && len >= PATH_MAX)
			return buf;
	}
	return DIAG_DEFAULT_PLUGIN_DIR;
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return NULL;
	size_t cap = 0, n = 0;
	char *buf = NULL;
	while (n == cap && cap < (64u << 20)) { /* full (or nothing yet): room for more */
		if (diag_grow((void **)&buf, &cap, cap + 1, 1, 4096) < 0) {
			free(buf);
			buf = NULL;
			break;
		}
		n += fread(buf + n, 1, cap - n, f);
	}
	int bad = ferror(f);
	fclose(f);
	if (bad) {
		free(buf);
		return NULL;
	}
	*len = n;
	return buf;
}

static void add_one(struct dmn_manager *m, const cJSON *j, const char *label)
{
	struct diag_spec *s;
	struct diag_error err = { 0 };
	if (diag_spec_from_json(j, DIAG_SPEC_CHECK_TARGET, label, &s, &err) < 0 ||
	    dmn_manager_add(m, s, NULL, &err) < 0)
		dmn_log("%s", err.msg);
}

/* -e 'TYPE TARGET ...': each line is a spec of its own, ids e1, e2, ... */
static void add_lines(struct dmn_manager *m, const struct options *o)
{
	for (size_t i = 0; i < o->nlines; i++) {
		char id[24];
		snprintf(id, sizeof(id), "e%zu", i + 1);
		cJSON *spec = NULL;
		struct diag_error err = { 0 };
		if (diag_spec_oneline(o->lines[i], id, &spec, &err) < 0) {
			dmn_log("%s", err.msg);
			continue;
		}
		add_one(m, spec, id);
		cJSON_Delete(spec);
	}
}

/* The end of a one-shot run: every probe's report (incr counts, hist bars) on stdout, as
 * `diagnosectl stats` prints them, after the last events. */
static void print_reports(struct dmn_manager *m)
{
	struct diag_error err = { 0 };
	cJSON *stats = dmn_manager_stats_json(m, NULL, true, &err);
	cJSON *reply = stats ? cJSON_CreateObject() : NULL;
	if (reply && cJSON_AddItemToObject(reply, "stats", stats)) {
		fflush(stdout);
		fputs("--- reports ---\n", stdout);
		diag_ctl_print_stats(stdout, reply);
	} else {
		cJSON_Delete(stats);
	}
	cJSON_Delete(reply);
	fflush(stdout);
}

/* Each spec of the file is applied on its own: one bad spec does not stop the others. */
static void add_spec_file(struct dmn_manager *m, const char *path)
{
	size_t len = 0;
	char *text = read_file(path, &len);
	if (!text) {
		dmn_log("--spec %s: %s", path, strerror(errno));
		return;
	}
	struct diag_error err = { 0 };
	cJSON *root = diag_json_parse(text, len, &err);
	if (!root) {
		dmn_log("--spec %s: %s", path, err.msg);
	} else if (cJSON_IsArray(root)) {
		int i = 0;
		for (const cJSON *c = root->child; c; c = c->next) {
			char label[32];
			snprintf(label, sizeof(label), "spec #%d", ++i);
			add_one(m, c, label);
		}
	} else {
		add_one(m, root, "spec");
	}
	cJSON_Delete(root);
	free(text);
}

struct loop {
	int epfd, sfd, tfd;
	bool watch_stdin; /* one-shot run from a shell or pipe: end of input stops it */
	bool oneshot;     /* --spec or -e: this run's probes only; it ends when they all have */
	int64_t end_ns;   /* --duration: when a one-shot run ends (0: never) */
	const char *why;  /* what ended the loop when no signal did */
	int test_crash;   /* DIAG_TEST_CRASH: the signal to fault with after the first hit */
	int64_t armed_ns;
	struct dmn_manager m;
	struct dmn_governor *governor;
	struct dmn_server *server;
	struct dmn_metrics *metrics; /* --metrics-listen, or NULL */
	struct dmn_watch *watch;     /* processes started after a selector's probe */
	struct dmn_fleet *fleet;     /* --store redis://..., or NULL */
	const char *policy_path;     /* re-read at SIGHUP */
};

static int epoll_add(int epfd, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static int setup_fds(struct loop *l, sigset_t *mask)
{
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	l->sfd = signalfd(-1, mask, SFD_CLOEXEC | SFD_NONBLOCK);
	l->tfd = timerfd_create(CLOCK_REALTIME, TFD_CLOEXEC | TFD_NONBLOCK);
	if (l->epfd < 0 || l->sfd < 0 || l->tfd < 0)
		return -errno;
	int r;
	if ((r = epoll_add(l->epfd, l->sfd)) < 0 || (r = epoll_add(l->epfd, l->tfd)) < 0 ||
	    (r = epoll_add(l->epfd, diag_engine_fd(l->m.engine))) < 0)
		return r;
	return 0;
}

static void arm_timer(struct loop *l, int64_t at_ns)
{
	if (at_ns == l->armed_ns)
		return;
	l->armed_ns = at_ns;
	struct itimerspec its = { 0 };
	its.it_value.tv_sec = at_ns / 1000000000;
	its.it_value.tv_nsec = at_ns % 1000000000;
	timerfd_settime(l->tfd, TFD_TIMER_ABSTIME, &its, NULL); /* zero disarms */
}

static int64_t earliest(int64_t a, int64_t b)
{
	return !a ? b : !b ? a : a < b ? a : b;
}

/* The policy file, at start and at SIGHUP: who besides root may use the socket. A file that
 * does not parse leaves the previous rules in force (and says why). */
static int load_policy(struct loop *l)
{
	if (!l->server)
		return 0;
	struct dmn_policy *p = NULL;
	struct diag_error err = { 0 };
	int r = dmn_policy_load(l->policy_path, &p, &err);
	if (r < 0) {
		dmn_log("%s; the rules in force are kept", err.msg);
		return r;
	}
	dmn_server_set_policy(l->server, p);
	if (p)
		dmn_info("policy %s: %d rule%s", dmn_policy_path(p), dmn_policy_rules(p),
			dmn_policy_rules(p) == 1 ? "" : "s");
	return 0;
}

/* Returns the signal that ended the loop. */
static int run(struct loop *l)
{
	for (;;) {
		int64_t now = diag_clock_wall_ns();
		int64_t next = dmn_manager_tick(&l->m, now);
		next = earliest(next, dmn_governor_tick(l->governor, &l->m, now));
		if (l->server)
			next = earliest(next, dmn_server_tick(l->server, now));
		next = earliest(next, dmn_metrics_tick(l->metrics, now));
		dmn_watch_tick(l->watch);
		next = earliest(next, dmn_fleet_tick(l->fleet, now));
		if (l->end_ns && now >= l->end_ns) {
			l->why = "--duration reached";
			return 0;
		}
		if (l->oneshot && dmn_manager_count_live(&l->m) == 0) {
			l->why = "no probe is live any more (lifespans over, processes exited)";
			return 0;
		}
		next = earliest(next, l->end_ns);
		arm_timer(l, next);
		dmn_manager_flush(&l->m); /* what this turn pushed reaches the worker before we wait */
		struct epoll_event evs[64];
		int n = epoll_wait(l->epfd, evs, 64, -1);
		if (n < 0 && errno != EINTR) {
			dmn_log("epoll_wait: %s", strerror(errno));
			return SIGTERM;
		}
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (fd == l->sfd) {
				struct signalfd_siginfo si;
				while (read(l->sfd, &si, sizeof(si)) == sizeof(si)) {
					if (si.ssi_signo != SIGHUP)
						return (int)si.ssi_signo;
					load_policy(l); /* a bad file keeps the rules in force */
				}
			} else if (fd == l->tfd) {
				uint64_t ticks;
				if (read(l->tfd, &ticks, sizeof(ticks)) < 0)
					l->armed_ns = 0;
				l->armed_ns = 0;
			} else if (l->watch_stdin && fd == STDIN_FILENO) {
				char buf[256];
				ssize_t got = read(STDIN_FILENO, buf, sizeof(buf));
				if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
					l->why = "end of input";
					return 0;
				}
			} else if (fd == diag_engine_fd(l->m.engine)) {
				int r = diag_engine_dispatch(l->m.engine);
				if (r < 0)
					dmn_log("engine: %s", diag_strerror(r));
				struct diag_engine_stats st;
				if (l->test_crash && (diag_engine_get_stats(l->m.engine, &st), st.hits))
					dmn_crash_test_fire(l->test_crash);
			} else if (dmn_watch_owns(l->watch, fd)) {
				dmn_watch_run(l->watch, fd);
			} else if (l->fleet && fd == dmn_fleet_fd(l->fleet)) {
				dmn_fleet_run(l->fleet);
			} else if (dmn_metrics_owns(l->metrics, fd)) {
				dmn_metrics_run(l->metrics);
			} else if (l->server) {
				dmn_server_handle(l->server, fd, evs[i].events);
			}
		}
	}
}

static void attach_pids(struct loop *l, const struct options *o)
{
	for (size_t i = 0; i < o->npids; i++) {
		struct diag_error err = { 0 };
		int r = dmn_manager_attach_process(&l->m, o->pids[i], &err);
		if (r >= 0)
			continue;
		/* the message names the field ("pid N: why"); here the user typed --pid N */
		char field[32];
		int n = snprintf(field, sizeof(field), "pid %d: ", (int)o->pids[i]);
		const char *why = strncmp(err.msg, field, (size_t)n) == 0 ? err.msg + n
				  : err.msg[0] ? err.msg : diag_strerror(r);
		dmn_log("--pid %d: %s", (int)o->pids[i], why);
	}
}

static void server_on_hit(void *server, const struct dmn_mspec *ms,
			  const struct diag_engine_hit *hit)
{
	dmn_server_on_hit(server, ms, hit);
}

static int start_server(struct loop *l, const struct options *o)
{
	if (o->no_socket)
		return 0;
	struct diag_error err = { 0 };
	const char *path = o->socket ? o->socket : DEFAULT_SOCKET;
	int r = dmn_server_new(&l->m, path, l->epfd, &l->server, &err);
	if (r < 0) {
		dmn_log("%s", err.msg);
		/* With --spec the socket is a convenience; the probes are what was asked for. */
		if (o->nspecs && !o->socket)
			return 0;
		return r;
	}
	dmn_manager_on_hit(&l->m, server_on_hit, l->server);
	return 0;
}

/* --store redis://...: the store thread, with the password from its file or the
 * environment (never from the command line). A store that does not answer yet is no reason
 * to stop: status shows why, the thread retries. */
static int start_fleet(struct loop *l, const struct options *o, const char *url)
{
	char pw[512];
	struct diag_error err = { 0 };
	struct dmn_fleet_opts fo = { .url = url, .heartbeat_s = o->store_heartbeat };
	int r = diag_fleet_password(o->store_password_file, pw, sizeof(pw), &err);
	if (r == 0) {
		fo.password = pw[0] ? pw : NULL;
		r = dmn_fleet_new(&l->m, &fo, &l->fleet, &err);
	}
	explicit_bzero(pw, sizeof(pw));
	if (r == 0 && (r = epoll_add(l->epfd, dmn_fleet_fd(l->fleet))) < 0)
		diag_error_set(&err, r, "store: epoll: %s", strerror(-r));
	if (r < 0)
		dmn_log("%s", err.msg);
	else
		dmn_info("store %s as host '%s'", url, l->m.host);
	return r;
}

int main(int argc, char **argv)
{
	struct options o = { .nice = DEFAULT_NICE };
	int r = parse_args(argc, argv, &o);
	if (r)
		return r > 0 ? 0 : 2;
	if (o.recover_after)
		return dmn_crash_recover(o.recover_after);
	apply_nice(o.nice);
	struct diag_error cerr = { 0 };
	if (dmn_crash_arm(&cerr) < 0) /* the journal still lets the next daemon restore */
		dmn_log("%s; a crash leaves the targets to the next daemon", cerr.msg);
	/* read by the incr and hist plugins for every instance without custom.statsd (set
	 * before any plugin or thread exists) */
	if (o.statsd)
		setenv("DIAGNOSE_STATSD", o.statsd, 1);
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	signal(SIGPIPE, SIG_IGN);
	/* Blocked before any thread exists, so the worker inherits the mask and only the
	 * signalfd sees these. */
	sigset_t mask;
	dmn_crash_block_stop_signals(&mask);

	char pdir[PATH_MAX];
	const char *plugin_dir = o.plugin_dir ? o.plugin_dir : default_plugin_dir(pdir, sizeof(pdir));
	/* Specs given on the command line are this run's only, unless a store is named. */
	bool oneshot = o.nspecs || o.nlines;
	const char *store = o.store ? o.store : oneshot ? NULL : DEFAULT_STORE;
	/* the shared store: specs live in Redis, this daemon holds them in memory */
	bool shared = store && !strncmp(store, "redis://", 8);
	struct loop l = { .epfd = -1, .sfd = -1, .tfd = -1, .test_crash = dmn_crash_test_signal() };
	struct diag_error err = { 0 };
	if ((r = dmn_manager_init(&l.m, plugin_dir, shared ? NULL : store, &err)) == 0 &&
	    (r = dmn_governor_new(&o.limits, &l.governor)) < 0)
		diag_error_set(&err, r, "governor: %s", diag_strerror(r));
	if (r == 0)
		r = dmn_manager_use_indexer(&l.m, &o.indexer, &err);
	if (r == 0)
		r = diag_engine_set_ring_size(l.m.engine, o.ring_kib * 1024, &err);
	if (r == 0 && o.private_ring)
		diag_engine_set_ring_shared(l.m.engine, false);
	if (r < 0) {
		dmn_log("%s", err.msg);
		dmn_manager_fini(&l.m);
		dmn_governor_free(l.governor);
		return 1;
	}
	l.m.allow_pid1 = o.allow_pid1;
	if (o.max_traced)
		l.m.targets_max = o.max_traced;
	if (o.max_per_spec)
		l.m.spec_procs_max = o.max_per_spec;
	if (o.host_name)
		snprintf(l.m.host, sizeof(l.m.host), "%s", o.host_name);
	l.m.print_events = oneshot || o.foreground;
	l.oneshot = oneshot;
	if (o.duration > 0)
		l.end_ns = diag_clock_wall_ns() + (int64_t)(o.duration * 1e9);
	if ((r = setup_fds(&l, &mask)) < 0) {
		dmn_log("setup: %s", strerror(-r));
		dmn_manager_fini(&l.m);
		dmn_governor_free(l.governor);
		return 1;
	}
	if (dmn_watch_new(&l.m, l.epfd, &l.watch) < 0) {
		dmn_log("setup: out of memory");
		dmn_manager_fini(&l.m);
		dmn_governor_free(l.governor);
		return 1;
	}
	attach_pids(&l, &o);
	dmn_manager_load(&l.m);
	if (shared && start_fleet(&l, &o, store) < 0) {
		dmn_watch_free(l.watch);
		dmn_manager_fini(&l.m);
		dmn_governor_free(l.governor);
		return 1;
	}
	for (size_t i = 0; i < o.nspecs; i++)
		add_spec_file(&l.m, o.specs[i]);
	add_lines(&l.m, &o);
	pid_t one[1];
	bool nothing = (oneshot && dmn_manager_count_live(&l.m) == 0) ||
		       (o.npids && !oneshot && diag_engine_pids(l.m.engine, one, 1) == 0);
	if (nothing)
		dmn_log("nothing could be applied; exiting");
	if (!nothing && o.metrics_listen &&
	    dmn_metrics_new(&l.m, o.metrics_listen, l.epfd, &l.metrics, &err) < 0) {
		dmn_log("%s", err.msg);
		nothing = true; /* asked for and not served: fail at start, not silently */
	}
	l.policy_path = o.policy ? o.policy : DMN_POLICY_DEFAULT;
	/* a policy named on the command line must be right at start; the default one, if
	 * present and wrong, leaves the socket to root (and says why) */
	if (nothing || start_server(&l, &o) < 0 || (load_policy(&l) < 0 && o.policy)) {
		dmn_fleet_free(l.fleet);
		dmn_metrics_free(l.metrics);
		dmn_watch_free(l.watch);
		dmn_manager_fini(&l.m);
		dmn_governor_free(l.governor);
		return 1;
	}
	if (oneshot)
		dmn_info("%zu probe%s live; Ctrl-C%s ends the run and prints the reports",
			dmn_manager_count_live(&l.m), dmn_manager_count_live(&l.m) == 1 ? "" : "s",
			o.duration > 0 ? " or --duration" : "");
	fflush(stdout);
	/* `diagnosed --pid P --spec F` from a shell or a pipe ends with its input (Ctrl-D, the
	 * writer closing); under systemd stdin is /dev/null and is not watched. */
	struct stat in;
	if (oneshot && fstat(STDIN_FILENO, &in) == 0 && (S_ISFIFO(in.st_mode) || isatty(STDIN_FILENO)))
		l.watch_stdin = epoll_add(l.epfd, STDIN_FILENO) == 0;
#ifdef DIAG_HAVE_SYSTEMD
	sd_notify(0, "READY=1");
#endif
	int sig = run(&l);
#ifdef DIAG_HAVE_SYSTEMD
	sd_notify(0, "STOPPING=1");
#endif
	dmn_info("%s: restoring every target and exiting", sig ? strsignal(sig) : l.why);
	if (oneshot)
		print_reports(&l.m);
	dmn_fleet_free(l.fleet); /* before the manager: nothing more is handed over */
	dmn_manager_on_hit(&l.m, NULL, NULL); /* the engine's last hits (detach) reach no server */
	dmn_server_free(l.server);
	dmn_metrics_free(l.metrics);
	dmn_watch_free(l.watch); /* before the engine: no exec waits on a daemon that is leaving */
	dmn_manager_fini(&l.m);
	dmn_governor_free(l.governor);
	fflush(stdout);
	return 0;
}
