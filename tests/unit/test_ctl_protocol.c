/* test_ctl_protocol: the diagnosectl binary against a scripted fake daemon on a temporary
 * socket (a protocol test of the CLIENT only): the request JSON it sends, what it prints
 * (tables, --json passthrough, stats bars, tail lines) and its exit codes, plus usage errors,
 * and that every string of a hostile reply is printed escaped. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "check.h"

#define MAX_SCRIPT 4

/* The fake daemon: for each request line on a connection it records the line and answers
 * with the next scripted reply (which may hold several lines); after the last reply it closes
 * the connection. */
struct fake {
	char dir[64];
	char path[128];
	int lfd;
	pthread_t thread;
	pthread_mutex_t mu;
	const char *script[MAX_SCRIPT];
	int nscript;
	char *requests[MAX_SCRIPT];
	int nrequests;
};

static bool fake_read_line(int fd, char *buf, size_t len)
{
	size_t n = 0;
	while (n + 1 < len) {
		ssize_t r = read(fd, buf + n, 1);
		if (r <= 0)
			return false;
		if (buf[n] == '\n')
			break;
		n++;
	}
	buf[n] = '\0';
	return true;
}

static void fake_serve(struct fake *f, int fd)
{
	static char line[1 << 16];
	for (int k = 0;; k++) {
		if (!fake_read_line(fd, line, sizeof(line)))
			return;
		pthread_mutex_lock(&f->mu);
		const char *reply = k < f->nscript ? f->script[k] : "{\"ok\":false,\"error\":\"unscripted\"}\n";
		bool last = k + 1 >= f->nscript;
		if (f->nrequests < MAX_SCRIPT)
			f->requests[f->nrequests++] = strdup(line);
		pthread_mutex_unlock(&f->mu);
		if (write(fd, reply, strlen(reply)) < 0 || last)
			return;
	}
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	for (;;) {
		int fd = accept(f->lfd, NULL, NULL);
		if (fd < 0)
			return NULL; /* shutdown() by fake_stop */
		fake_serve(f, fd);
		close(fd);
	}
}

static void fake_start(struct fake *f)
{
	strcpy(f->dir, "/tmp/ctltestXXXXXX");
	if (!mkdtemp(f->dir)) {
		perror("mkdtemp");
		exit(1);
	}
	snprintf(f->path, sizeof(f->path), "%s/d.sock", f->dir);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strcpy(sa.sun_path, f->path);
	f->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (f->lfd < 0 || bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(f->lfd, 4) < 0) {
		perror("fake daemon socket");
		exit(1);
	}
	pthread_mutex_init(&f->mu, NULL);
	pthread_create(&f->thread, NULL, fake_main, f);
}

static void fake_reset(struct fake *f, const char *r0, const char *r1)
{
	pthread_mutex_lock(&f->mu);
	for (int i = 0; i < f->nrequests; i++)
		free(f->requests[i]);
	f->nrequests = 0;
	f->script[0] = r0;
	f->script[1] = r1;
	f->nscript = r1 ? 2 : 1;
	pthread_mutex_unlock(&f->mu);
}

/* The request number i as parsed JSON (caller deletes), NULL if none was received. */
static cJSON *fake_request(struct fake *f, int i)
{
	pthread_mutex_lock(&f->mu);
	cJSON *r = i < f->nrequests ? cJSON_Parse(f->requests[i]) : NULL;
	int n = f->nrequests;
	pthread_mutex_unlock(&f->mu);
	if (!r)
		fprintf(stderr, "request %d not received (got %d)\n", i, n);
	return r;
}

static void fake_stop(struct fake *f)
{
	shutdown(f->lfd, SHUT_RDWR);
	pthread_join(f->thread, NULL);
	close(f->lfd);
	fake_reset(f, NULL, NULL);
	unlink(f->path);
	char p[160];
	snprintf(p, sizeof(p), "%s/stderr", f->dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/spec.json", f->dir);
	unlink(p);
	rmdir(f->dir);
}

static char *slurp(FILE *fp)
{
	size_t n = 0, cap = 4096;
	char *s = malloc(cap);
	size_t r;
	while ((r = fread(s + n, 1, cap - n - 1, fp)) > 0) {
		n += r;
		if (cap - n < 2)
			s = realloc(s, cap *= 2);
	}
	s[n] = '\0';
	return s;
}

struct run {
	int status;
	char *out, *err;
};

/* Run diagnosectl with `args` (shell words) against the fake daemon. */
static struct run run_ctl(struct fake *f, const char *args)
{
	static char bin[4096];
	const char *dir = getenv("DIAG_BUILD_DIR");
	snprintf(bin, sizeof(bin), "%s/daemon/diagnosectl", dir ? dir : ".");
	if (access(bin, X_OK) != 0) {
		fprintf(stderr, "%s not built (make diagnosectl): %s\n", bin, strerror(errno));
		exit(1);
	}
	char cmd[8192], errpath[160];
	snprintf(errpath, sizeof(errpath), "%s/stderr", f->dir);
	snprintf(cmd, sizeof(cmd), "env -u DIAGNOSE_SOCKET %s --socket %s %s 2>%s", bin, f->path,
		 args, errpath);
	struct run r = {0};
	FILE *p = popen(cmd, "r");
	if (!p) {
		perror("popen");
		exit(1);
	}
	r.out = slurp(p);
	int st = pclose(p);
	r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	FILE *e = fopen(errpath, "r");
	r.err = e ? slurp(e) : strdup("");
	if (e)
		fclose(e);
	return r;
}

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

static const char *jstr(const cJSON *o, const char *path)
{
	/* path like "spec.instrument.type" */
	char buf[128];
	snprintf(buf, sizeof(buf), "%s", path);
	const cJSON *cur = o;
	for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, "."))
		cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
	return cJSON_IsString(cur) ? cur->valuestring : NULL;
}

static const char list_reply[] =
	"{\"ok\":true,\"specs\":[{\"id\":\"w1\",\"target\":\"work.c:42\",\"instrument\":{\"type\":\"log\","
	"\"name\":\"calc\",\"event\":\"return\",\"custom\":{}},\"lifespan\":10,\"expires_in\":599,"
	"\"applied\":{\"host:100\":{\"state\":\"applied\",\"hits\":12},\"host:200\":{\"state\":\"error\","
	"\"error\":\"no symbol 'calc' in /bin/x\",\"hits\":0}}},{\"id\":\"p2\",\"target\":\"malloc\","
	"\"instrument\":{\"type\":\"hist\",\"name\":\"sz\"},\"lifespan\":null,\"expires_in\":null,"
	"\"applied\":{}}]}";

static void test_list(struct fake *f)
{
	fake_reset(f, "{\"ok\":true,\"specs\":[]}\n", NULL);
	struct run r = run_ctl(f, "list");
	CHECK_EQ_INT(r.status, 0);
	CHECK_EQ_STR(r.out, "ID  TARGET  TYPE  NAME  EVENT  PROCESS  STATE  HITS  EXPIRES\n");
	cJSON *req = fake_request(f, 0);
	CHECK_EQ_STR(jstr(req, "cmd"), "list");
	CHECK_EQ_INT(cJSON_GetArraySize(req), 1);
	cJSON_Delete(req);
	run_free(&r);

	char reply[sizeof(list_reply) + 1];
	snprintf(reply, sizeof(reply), "%s\n", list_reply);
	fake_reset(f, reply, NULL);
	r = run_ctl(f, "list");
	CHECK_EQ_INT(r.status, 0);
	CHECK_EQ_STR(r.out,
		     "ID  TARGET     TYPE  NAME  EVENT   PROCESS   STATE    HITS  EXPIRES\n"
		     "w1  work.c:42  log   calc  return  host:100  applied  12    9m59s\n"
		     "w1  work.c:42  log   calc  return  host:200  error    0     9m59s\n"
		     "    error: no symbol 'calc' in /bin/x\n"
		     "p2  malloc     hist  sz    call    -         -        0     never\n");
	CHECK_EQ_STR(r.err, "");
	run_free(&r);

	fake_reset(f, reply, NULL);
	r = run_ctl(f, "--json list");
	CHECK_EQ_INT(r.status, 0);
	CHECK_EQ_STR(r.out, reply); /* the daemon's exact reply */
	run_free(&r);
}

static void test_add(struct fake *f)
{
	fake_reset(f, "{\"ok\":true,\"id\":\"w7\",\"spec\":{\"applied\":{\"h:10\":{\"state\":\"applied\"}}}}\n",
		   NULL);
	struct run r = run_ctl(f, "add-probe --pid 10 --pid 11 --target work.c:42 --type hist "
				  "--name lat --value 'req->len' --event return --lifespan 5 "
				  "--custom '{\"unit\":\"bytes\"}' --condition 'n > 1' --id w7");
	CHECK_EQ_INT(r.status, 0);
	CHECK_EQ_STR(r.out, "w7\n");
	cJSON *req = fake_request(f, 0);
	CHECK_EQ_STR(jstr(req, "cmd"), "add");
	CHECK_EQ_STR(jstr(req, "spec.id"), "w7");
	CHECK_EQ_STR(jstr(req, "spec.target"), "work.c:42");
	CHECK_EQ_STR(jstr(req, "spec.condition"), "n > 1");
	CHECK_EQ_STR(jstr(req, "spec.instrument.type"), "hist");
	CHECK_EQ_STR(jstr(req, "spec.instrument.name"), "lat");
	CHECK_EQ_STR(jstr(req, "spec.instrument.value"), "req->len");
	CHECK_EQ_STR(jstr(req, "spec.instrument.event"), "return");
	CHECK_EQ_STR(jstr(req, "spec.instrument.custom.unit"), "bytes");
	cJSON *spec = cJSON_GetObjectItem(req, "spec");
	CHECK_EQ_INT(cJSON_GetObjectItem(spec, "lifespan")->valuedouble, 5);
	cJSON *pids = cJSON_GetObjectItem(spec, "pid");
	CHECK_EQ_INT(cJSON_GetArraySize(pids), 2);
	CHECK_EQ_INT(cJSON_GetArrayItem(pids, 1)->valueint, 11);
	cJSON_Delete(req);
	run_free(&r);

	/* A spec file holding an array: one request per spec, one id per line. */
	char path[160], args[256];
	snprintf(path, sizeof(path), "%s/spec.json", f->dir);
	FILE *fp = fopen(path, "w");
	fputs("[{\"target\":\"a\",\"instrument\":{\"type\":\"log\",\"name\":\"a\"}},\n"
	      " {\"target\":\"b\",\"instrument\":{\"type\":\"incr\",\"name\":\"b\"}}]\n", fp);
	fclose(fp);
	fake_reset(f, "{\"ok\":true,\"id\":\"p1\",\"spec\":{\"applied\":{\"h:1\":{\"state\":\"applied\"}}}}\n",
		   "{\"ok\":true,\"id\":\"p2\",\"spec\":{\"applied\":{\"h:1\":{\"state\":\"pending\"}}}}\n");
	snprintf(args, sizeof(args), "add-probe --spec %s", path);
	r = run_ctl(f, args);
	CHECK_EQ_INT(r.status, 0);
	CHECK_EQ_STR(r.out, "p1\np2\n");
	req = fake_request(f, 1);
	CHECK_EQ_STR(jstr(req, "spec.target"), "b");
	cJSON_Delete(req);
	run_free(&r);

	/* Stored but applied nowhere: the id, the reason per process, and exit 1. */
	fake_reset(f, "{\"ok\":true,\"id\":\"p4\",\"spec\":{\"id\":\"p4\",\"applied\":{\"h:10\":"
		      "{\"state\":\"error\",\"error\":\"value: no variable 'q' at work.c:42\"}}}}\n", NULL);
	r = run_ctl(f, "add-probe --pid 10 --target work.c:42 --type log --name n --value q");
	CHECK_EQ_INT(r.status, 1);
	CHECK_EQ_STR(r.out, "p4\n");
	CHECK_EQ_STR(r.err, "diagnosectl: error: p4 not applied in h:10: value: no variable 'q' at work.c:42\n"
			    "diagnosectl: error: p4 is stored but applied in none of its 1 process (reasons "
			    "above; `diagnosectl remove-probe p4` to drop it)\n");
	run_free(&r);

	/* Applied in one process, not in another: exit 0, a warning naming the other. */
	fake_reset(f, "{\"ok\":true,\"id\":\"p5\",\"spec\":{\"id\":\"p5\",\"applied\":{\"h:10\":"
		      "{\"state\":\"applied\"},\"h:11\":{\"state\":\"error\",\"error\":\"pid 11: gone\"}}}}\n",
		   NULL);
	r = run_ctl(f, "add-probe --pid 10 --pid 11 --target work --type log --name n");
	CHECK_EQ_INT(r.status, 0);
	CHECK_EQ_STR(r.err, "diagnosectl: warning: p5 not applied in h:11: pid 11: gone\n");
	run_free(&r);

	/* The daemon's error goes to stderr with exit 1. */
	fake_reset(f, "{\"ok\":false,\"error\":\"spec p3: target: no function 'nope' in pid 10\"}\n", NULL);
	r = run_ctl(f, "add-probe --pid 10 --target nope --type log --name n");
	CHECK_EQ_INT(r.status, 1);
	CHECK_EQ_STR(r.out, "");
	CHECK_EQ_STR(r.err, "diagnosectl: spec p3: target: no function 'nope' in pid 10\n");
	run_free(&r);
}

static void test_stats_tail_wait(struct fake *f)
{
	fake_reset(f,
		   "{\"ok\":true,\"stats\":[{\"id\":\"w1\",\"type\":\"hist\",\"name\":\"lat\",\"report\":"
		   "{\"count\":22,\"min\":4,\"max\":15,\"mean\":10.5,\"p50\":11,\"p90\":14,\"p99\":15,"
		   "\"text\":\"[4, 8)  3 |@@|\\n\"}},{\"id\":\"w2\",\"type\":\"incr\",\"name\":\"n\","
		   "\"report\":{\"count\":4,\"sum\":6}},{\"id\":\"w3\",\"type\":\"log\",\"name\":\"l\","
		   "\"report\":{\"count\":3}}]}\n",
		   NULL);
	struct run r = run_ctl(f, "stats w1");
	CHECK_EQ_INT(r.status, 0);
	CHECK_EQ_STR(r.out, "w1 (lat) count=22 min=4 max=15 mean=10.5 p50=11 p90=14 p99=15\n"
			    "[4, 8)  3 |@@|\n"
			    "\n"
			    "w2 (n) count=4 sum=6\n"
			    "w3 (l) {\"count\":3}\n");
	cJSON *req = fake_request(f, 0);
	CHECK_EQ_STR(jstr(req, "cmd"), "stats");
	CHECK_EQ_STR(jstr(req, "id"), "w1");
	cJSON_Delete(req);
	run_free(&r);

	fake_reset(f,
		   "{\"ok\":true}\n"
		   "{\"event\":{\"id\":\"w1\",\"name\":\"calc\",\"kind\":\"return\",\"value\":5,\"text\":\"5\"}}\n"
		   "{\"event\":{\"id\":\"w1\",\"name\":\"calc\",\"kind\":\"call\",\"value\":null,\"text\":\"\"}}\n",
		   NULL);
	r = run_ctl(f, "tail");
	CHECK_EQ_STR(r.out, "Probe (calc) = 5\nProbe (calc)\n");
	CHECK_EQ_INT(r.status, 1); /* the fake daemon hung up */
	CHECK_EQ_STR(r.err, "diagnosectl: the daemon closed the connection\n");
	run_free(&r);

	fake_reset(f, "{\"ok\":true,\"hits\":3}\n", NULL);
	r = run_ctl(f, "wait w1 --hits 3 --timeout 5");
	CHECK_EQ_INT(r.status, 0);
	req = fake_request(f, 0);
	CHECK_EQ_STR(jstr(req, "cmd"), "wait");
	CHECK_EQ_INT(cJSON_GetObjectItem(req, "hits")->valueint, 3);
	CHECK_EQ_INT(cJSON_GetObjectItem(req, "timeout")->valueint, 5);
	cJSON_Delete(req);
	run_free(&r);

	fake_reset(f, "{\"ok\":false,\"error\":\"timeout: probe 'w1' has 1 hits, wanted 3\"}\n", NULL);
	r = run_ctl(f, "wait w1 --hits 3 --timeout 1");
	CHECK_EQ_INT(r.status, 1);
	CHECK_EQ_STR(r.err, "diagnosectl: timeout: probe 'w1' has 1 hits, wanted 3\n");
	run_free(&r);

	fake_reset(f, "{\"ok\":true}\n", NULL);
	r = run_ctl(f, "attach 1234");
	CHECK_EQ_INT(r.status, 0);
	req = fake_request(f, 0);
	CHECK_EQ_STR(jstr(req, "cmd"), "attach");
	CHECK_EQ_INT(cJSON_GetObjectItem(req, "pid")->valueint, 1234);
	cJSON_Delete(req);
	run_free(&r);
}

/* A daemon (or a target behind it) that sends control characters: diagnosectl prints every
 * string escaped, whatever the daemon did. */
/* diagnosectl ARGS against one scripted reply: its exit status and exact stdout or stderr
 * (NULL: not checked). */
static void check_reply(struct fake *f, const char *reply, const char *args, int status,
			const char *out, const char *err)
{
	fake_reset(f, reply, NULL);
	struct run r = run_ctl(f, args);
	CHECK_EQ_INT(r.status, status);
	if (out)
		CHECK_EQ_STR(r.out, out);
	if (err)
		CHECK_EQ_STR(r.err, err);
	run_free(&r);
}

/* A daemon (or a target behind it) that sends control characters: diagnosectl prints every
 * string escaped, whatever the daemon did. */
static void test_hostile_replies(struct fake *f)
{
	check_reply(f,
		    "{\"ok\":true,\"specs\":[{\"id\":\"w1\",\"target\":\"wo\\u001b[2Jrk\",\"instrument\":"
		    "{\"type\":\"log\",\"name\":\"a\\nFAKE Probe (x) = 1\",\"event\":\"call\"},"
		    "\"expires_in\":null,\"applied\":{\"h:\\u0007\":{\"state\":\"error\",\"hits\":0,"
		    "\"error\":\"no \\u009b31m\\r\"}}}]}\n",
		    "list", 0,
		    "ID  TARGET       TYPE  NAME                   EVENT  PROCESS  STATE  HITS  EXPIRES\n"
		    "w1  wo\\x1b[2Jrk  log   a\\nFAKE Probe (x) = 1  call   h:\\x07   error  0     never\n"
		    "    error: no \\u009b31m\\r\n",
		    NULL);
	check_reply(f,
		    "{\"ok\":true}\n"
		    "{\"event\":{\"id\":\"w1\",\"name\":\"n\\nFAKE\",\"kind\":\"call\",\"text\":\"5\\u001b[31m\"}}\n",
		    "tail", 1, "Probe (n\\nFAKE) = 5\\x1b[31m\n", NULL);
	check_reply(f, "{\"ok\":false,\"error\":\"bad\\nFAKE line\\u001b]0;title\\u0007\"}\n",
		    "remove-probe w1", 1, "", "diagnosectl: bad\\nFAKE line\\x1b]0;title\\x07\n");
	check_reply(f,
		    "{\"ok\":true,\"stats\":[{\"id\":\"w1\",\"type\":\"incr\",\"name\":\"n\","
		    "\"report\":{\"count\":1,\"sum\":1,\"keys\":{\"k\\u001b\":1}}},"
		    "{\"id\":\"w2\",\"type\":\"hist\",\"name\":\"h\",\"report\":{\"count\":1,"
		    "\"text\":\"[1]  1 |@|\\n\\u001b[2J\"}}]}\n",
		    "stats", 0,
		    "w1 (n) count=1 sum=1\n"
		    "           1  k\\x1b\n"
		    "\n"
		    "w2 (h) count=1\n"
		    "[1]  1 |@|\n\\x1b[2J",
		    NULL);
	/* --json: the reply as sent, with raw C1 bytes (a terminal's CSI) escaped */
	check_reply(f, "{\"ok\":true,\"specs\":[],\"x\":\"\xc2\x9b" "2J\"}\n", "--json list", 0,
		    "{\"ok\":true,\"specs\":[],\"x\":\"\\u009b2J\"}\n", NULL);
}

static void check_usage(struct fake *f, const char *args, const char *want)
{
	fake_reset(f, "{\"ok\":true}\n", NULL);
	struct run r = run_ctl(f, args);
	char full[512];
	snprintf(full, sizeof(full), "diagnosectl: %s\nTry 'diagnosectl --help' for more information.\n",
		 want);
	if (r.status != 2)
		fprintf(stderr, "for args: %s\n", args);
	CHECK_EQ_INT(r.status, 2);
	CHECK_EQ_STR(r.err, full);
	pthread_mutex_lock(&f->mu);
	CHECK_EQ_INT(f->nrequests, 0); /* nothing reached the daemon */
	pthread_mutex_unlock(&f->mu);
	run_free(&r);
}

static void test_usage(struct fake *f)
{
	const char *base = "add-probe --pid 1 --target t --type log --name n";
	char args[256];
	snprintf(args, sizeof(args), "%s --lifespan abc", base);
	check_usage(f, args, "--lifespan: not a number: 'abc'");
	snprintf(args, sizeof(args), "%s --custom '{\"a\":'", base);
	check_usage(f, args, "--custom: invalid JSON");
	snprintf(args, sizeof(args), "%s --custom '[1]'", base);
	check_usage(f, args, "--custom: must be a JSON object");
	snprintf(args, sizeof(args), "%s --event entry", base);
	check_usage(f, args, "--event: must be call, return or end, not 'entry'");
	check_usage(f, "add-probe --pid abc --target t --type log --name n",
		    "--pid: not a process id: 'abc'");
	check_usage(f, "add-probe --pid 1 --type log --name n",
		    "add-probe: --target is required (or use --spec FILE)");
	check_usage(f, "add-probe --spec x.json --pid 1", "add-probe: --spec cannot be combined with --pid");
	check_usage(f, "add-probe --bogus 1", "add-probe: unknown option '--bogus'");
	check_usage(f, "remove-probe", "remove-probe: missing probe ID");
	check_usage(f, "attach x", "attach: not a process id: 'x'");
	check_usage(f, "wait w1 --hits x --timeout 1", "--hits: not a count: 'x'");
	check_usage(f, "frobnicate", "unknown command 'frobnicate'");
	check_usage(f, "list extra", "list: unexpected argument 'extra'");

	struct run r = run_ctl(f, "--help");
	CHECK_EQ_INT(r.status, 0);
	CHECK(strncmp(r.out, "diagnosectl [--socket PATH] [--json] COMMAND ...\n", 49) == 0);
	run_free(&r);
}

static void test_no_daemon(struct fake *f)
{
	char args[256], want[512];
	snprintf(args, sizeof(args), "--socket %s/none.sock status", f->dir);
	struct run r = run_ctl(f, args);
	snprintf(want, sizeof(want),
		 "diagnosectl: cannot connect to %s/none.sock: No such file or directory (is "
		 "diagnosed running?)\n",
		 f->dir);
	CHECK_EQ_INT(r.status, 1);
	CHECK_EQ_STR(r.err, want);
	run_free(&r);
}

int main(void)
{
	struct fake f = {0};
	fake_start(&f);
	test_list(&f);
	test_add(&f);
	test_stats_tail_wait(&f);
	test_hostile_replies(&f);
	test_usage(&f);
	test_no_daemon(&f);
	fake_stop(&f);
	return CHECK_DONE();
}
