/* diagnosed_policy: the rules of the policy file and the checks made for a client that is not
 * root (see diagnosed_policy.h). The file:
 *
 *   {"rules": [{"users": ["alice"], "groups": ["web-oncall"],
 *               "processes": "own" | "any",          (default "own")
 *               "executables": ["/usr/sbin/nginx"],  (optional: only these programs)
 *               "units": ["nginx.service"],          (optional: only these systemd units)
 *               "types": ["incr", "hist"],           (optional: only these instruments)
 *               "read_memory": false}]}              (default true)
 *
 * A client may act when any rule that names it (by user, or by one of its groups) allows the
 * act; a refusal quotes the first rule that names it. Reads /proc and the user and group
 * databases only. */
#include "diagnosed_policy.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "spec/json.h"
#include "util/procfs.h"

#define MAX_RULES 256
#define MAX_LIST 64
#define POLICY_FILE_MAX (1u << 20)

struct names {
	char *v[MAX_LIST];
	size_t n;
};

struct rule {
	struct names users, groups, exes, units, types;
	gid_t gids[MAX_LIST];  /* groups, resolved at load (an unknown group matches nobody) */
	bool gid_known[MAX_LIST];
	bool any_process;
	bool read_memory;
};

struct dmn_policy {
	char *path;
	struct rule rules[MAX_RULES];
	int n;
};

static void names_free(struct names *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	l->n = 0;
}

void dmn_policy_free(struct dmn_policy *p)
{
	if (!p)
		return;
	for (int i = 0; i < p->n; i++) {
		struct rule *r = &p->rules[i];
		names_free(&r->users);
		names_free(&r->groups);
		names_free(&r->exes);
		names_free(&r->units);
		names_free(&r->types);
	}
	free(p->path);
	free(p);
}

int dmn_policy_rules(const struct dmn_policy *p)
{
	return p ? p->n : 0;
}

const char *dmn_policy_path(const struct dmn_policy *p)
{
	return p ? p->path : "(none)";
}

/* ---- loading ---- */

static int load_names(const cJSON *rule, const char *key, int idx, struct names *out,
		      struct diag_error *err)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(rule, key), *e;
	if (!a)
		return 0;
	if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) > MAX_LIST)
		return diag_error_set(err, -DIAG_E_INVALID,
				      "rules[%d].%s: must be a list of at most %d strings", idx, key,
				      MAX_LIST);
	cJSON_ArrayForEach(e, a) {
		if (!cJSON_IsString(e) || !e->valuestring[0] || strlen(e->valuestring) > 255)
			return diag_error_set(err, -DIAG_E_INVALID,
					      "rules[%d].%s: each entry must be a non-empty string of at most 255 bytes",
					      idx, key);
		if (!(out->v[out->n++] = strdup(e->valuestring)))
			return diag_error_set(err, -ENOMEM, "out of memory");
	}
	return 0;
}

static int load_bool(const cJSON *rule, const char *key, int idx, bool dflt, bool *out,
		     struct diag_error *err)
{
	const cJSON *b = cJSON_GetObjectItemCaseSensitive(rule, key);
	*out = dflt;
	if (!b)
		return 0;
	if (!cJSON_IsBool(b))
		return diag_error_set(err, -DIAG_E_INVALID, "rules[%d].%s: must be true or false", idx,
				      key);
	*out = cJSON_IsTrue(b);
	return 0;
}

static int load_rule(const cJSON *j, int idx, struct rule *r, struct diag_error *err)
{
	static const char *const known[] = {"users", "groups", "processes", "executables", "units",
					    "types", "read_memory", NULL};
	if (!cJSON_IsObject(j))
		return diag_error_set(err, -DIAG_E_INVALID, "rules[%d]: must be an object", idx);
	for (const cJSON *m = j->child; m; m = m->next) {
		size_t k = 0;
		while (known[k] && strcmp(known[k], m->string))
			k++;
		if (!known[k])
			return diag_error_set(err, -DIAG_E_INVALID,
					      "rules[%d]: unknown field '%.64s' (expected users, groups, processes, executables, units, types, read_memory)",
					      idx, m->string);
	}
	int rc;
	if ((rc = load_names(j, "users", idx, &r->users, err)) < 0 ||
	    (rc = load_names(j, "groups", idx, &r->groups, err)) < 0 ||
	    (rc = load_names(j, "executables", idx, &r->exes, err)) < 0 ||
	    (rc = load_names(j, "units", idx, &r->units, err)) < 0 ||
	    (rc = load_names(j, "types", idx, &r->types, err)) < 0 ||
	    (rc = load_bool(j, "read_memory", idx, true, &r->read_memory, err)) < 0)
		return rc;
	if (!r->users.n && !r->groups.n)
		return diag_error_set(err, -DIAG_E_INVALID,
				      "rules[%d]: names nobody (give users or groups)", idx);
	const cJSON *pr = cJSON_GetObjectItemCaseSensitive(j, "processes");
	if (pr && !(cJSON_IsString(pr) && (!strcmp(pr->valuestring, "own") ||
					   !strcmp(pr->valuestring, "any"))))
		return diag_error_set(err, -DIAG_E_INVALID,
				      "rules[%d].processes: must be \"own\" or \"any\"", idx);
	r->any_process = pr && !strcmp(pr->valuestring, "any");
	for (size_t i = 0; i < r->groups.n; i++) {
		struct group g, *res = NULL;
		char buf[4096];
		r->gid_known[i] = getgrnam_r(r->groups.v[i], &g, buf, sizeof(buf), &res) == 0 && res;
		r->gids[i] = r->gid_known[i] ? g.gr_gid : 0;
	}
	return 0;
}

static char *read_small(const char *path, size_t *len, int *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *buf = fd >= 0 ? malloc(POLICY_FILE_MAX + 1) : NULL;
	ssize_t n = buf ? read(fd, buf, POLICY_FILE_MAX + 1) : -1;
	*e = fd < 0 ? errno : n < 0 ? errno : n > (ssize_t)POLICY_FILE_MAX ? EFBIG : 0;
	if (fd >= 0)
		close(fd);
	if (*e) {
		free(buf);
		return NULL;
	}
	*len = (size_t)n;
	return buf;
}

static int load_tree(const cJSON *root, struct dmn_policy *p, struct diag_error *err)
{
	if (!cJSON_IsObject(root))
		return diag_error_set(err, -DIAG_E_INVALID, "must be an object {\"rules\": [...]}");
	for (const cJSON *m = root->child; m; m = m->next)
		if (strcmp(m->string, "rules"))
			return diag_error_set(err, -DIAG_E_INVALID,
					      "unknown field '%.64s' (expected rules)", m->string);
	const cJSON *rules = cJSON_GetObjectItemCaseSensitive(root, "rules"), *r;
	if (!cJSON_IsArray(rules) || cJSON_GetArraySize(rules) > MAX_RULES)
		return diag_error_set(err, -DIAG_E_INVALID, "rules: must be a list of at most %d rules",
				      MAX_RULES);
	cJSON_ArrayForEach(r, rules) {
		int rc = load_rule(r, p->n, &p->rules[p->n], err);
		p->n++;
		if (rc < 0)
			return rc;
	}
	return 0;
}

int dmn_policy_load(const char *path, struct dmn_policy **out, struct diag_error *err)
{
	size_t len = 0;
	int e = 0;
	char *text = read_small(path, &len, &e);
	if (!text && e == ENOENT) {
		*out = NULL;
		return 0;
	}
	if (!text)
		return diag_error_set(err, -e, "policy %s: %s", path, strerror(e));
	struct dmn_policy *p = calloc(1, sizeof(*p));
	cJSON *root = p ? diag_json_parse(text, len, err) : NULL;
	free(text);
	int rc = !p ? diag_error_set(err, -ENOMEM, "out of memory")
		: !root ? -DIAG_E_PARSE
		: load_tree(root, p, err);
	cJSON_Delete(root);
	if (rc == 0 && !(p->path = strdup(path)))
		rc = diag_error_set(err, -ENOMEM, "out of memory");
	if (rc < 0) {
		dmn_policy_free(p);
		diag_error_prefix(err, "policy %s: ", path);
		return rc;
	}
	*out = p;
	return 0;
}

/* ---- the client ---- */

/* One line of a small /proc file (comm, cgroup), without its newline. */
static void read_proc_line(pid_t pid, const char *what, char *buf, size_t cap)
{
	diag_proc_read_small(pid, what, buf, cap);
	buf[strcspn(buf, "\n")] = '\0';
}

/* The supplementary groups of pid from /proc/PID/status ("Groups:\t10 27 ..."). */
static void peer_groups(struct dmn_peer *p)
{
	char path[64], line[1024];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)p->pid);
	FILE *f = fopen(path, "re");
	p->groups[0] = p->gid;
	p->ngroups = 1;
	while (f && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "Groups:", 7))
			continue;
		char *s = line + 7, *end;
		for (unsigned long g; p->ngroups < DMN_PEER_GROUPS; s = end) {
			g = strtoul(s, &end, 10);
			if (end == s)
				break;
			p->groups[p->ngroups++] = (gid_t)g;
		}
	}
	if (f)
		fclose(f);
}

int dmn_peer_identify(int fd, struct dmn_peer *out)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return -errno;
	memset(out, 0, sizeof(*out));
	out->uid = cred.uid;
	out->gid = cred.gid;
	out->pid = cred.pid;
	struct passwd pw, *res = NULL;
	char buf[4096];
	if (getpwuid_r(cred.uid, &pw, buf, sizeof(buf), &res) == 0 && res)
		snprintf(out->user, sizeof(out->user), "%s", pw.pw_name);
	else
		snprintf(out->user, sizeof(out->user), "%u", (unsigned)cred.uid);
	read_proc_line(cred.pid, "comm", out->comm, sizeof(out->comm));
	peer_groups(out);
	return 0;
}

static bool rule_names(const struct rule *r, const struct dmn_peer *peer)
{
	for (size_t i = 0; i < r->users.n; i++)
		if (!strcmp(r->users.v[i], peer->user))
			return true;
	for (size_t i = 0; i < r->groups.n; i++)
		for (int g = 0; r->gid_known[i] && g < peer->ngroups; g++)
			if (peer->groups[g] == r->gids[i])
				return true;
	return false;
}

/* "rule 2 (users alice; groups web)" for refusals. */
static const char *rule_label(const struct dmn_policy *p, const struct rule *r, char *buf,
			      size_t cap)
{
	size_t n = (size_t)snprintf(buf, cap, "%s rule %d (", p->path, (int)(r - p->rules) + 1);
	for (size_t i = 0; i < r->users.n && n < cap; i++)
		n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? " " : "users ", r->users.v[i]);
	for (size_t i = 0; i < r->groups.n && n < cap; i++)
		n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? " " : r->users.n ? "; groups " : "groups ",
				      r->groups.v[i]);
	if (n < cap)
		snprintf(buf + n, cap - n, ")");
	return buf;
}

int dmn_policy_connect(const struct dmn_policy *p, const struct dmn_peer *peer,
		       struct diag_error *err)
{
	if (peer->uid == 0)
		return 0;
	for (int i = 0; p && i < p->n; i++)
		if (rule_names(&p->rules[i], peer))
			return 0;
	if (!p)
		return diag_error_set(err, -EACCES,
				      "permission denied: uid %u (%s) is not root, and no policy admits other users (%s is absent)",
				      (unsigned)peer->uid, peer->user, DMN_POLICY_DEFAULT);
	return diag_error_set(err, -EACCES,
			      "permission denied: uid %u (%s) is named by no rule of %s",
			      (unsigned)peer->uid, peer->user, p->path);
}

/* ---- processes ---- */

/* "Uid:\tR\tE\tS\tFS" (or Gid) of pid: all four equal to want. */
static bool ids_all(pid_t pid, const char *key, unsigned long want, unsigned long *seen)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "re");
	bool ok = false;
	size_t kl = strlen(key);
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, kl) && line[kl] == ':') {
			unsigned long v[4];
			ok = sscanf(line + kl + 1, "%lu %lu %lu %lu", &v[0], &v[1], &v[2], &v[3]) == 4;
			for (int i = 0; ok && i < 4; i++)
				if (v[i] != want) {
					*seen = v[i];
					ok = false;
				}
			break;
		}
	if (f)
		fclose(f);
	return ok;
}

static int yama_scope(void)
{
	char buf[16];
	int fd = open("/proc/sys/kernel/yama/ptrace_scope", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (fd >= 0)
		close(fd);
	return n > 0 ? atoi(buf) : 0;
}

static bool is_ancestor(pid_t anc, pid_t pid)
{
	for (int depth = 0; pid > 1 && depth < 4096; depth++) {
		char ppid[32];
		if (diag_proc_stat_field(pid, 4, ppid, sizeof(ppid)) < 0)
			return false;
		pid = (pid_t)atoi(ppid);
		if (pid == anc)
			return true;
	}
	return false;
}

/* The kernel's own rule for ptrace by peer (ptrace_may_access without CAP_SYS_PTRACE). */
static int own_process(const struct dmn_peer *peer, pid_t pid, struct diag_error *err)
{
	unsigned long seen = 0;
	if (!ids_all(pid, "Uid", peer->uid, &seen))
		return diag_error_set(err, -EACCES,
				      "pid %d: not your process (its uids are not all %u%s)", (int)pid,
				      (unsigned)peer->uid, seen ? "" : ", or it is gone");
	if (!ids_all(pid, "Gid", peer->gid, &seen))
		return diag_error_set(err, -EACCES,
				      "pid %d: runs with group %lu, not your group %u (a setgid program)",
				      (int)pid, seen, (unsigned)peer->gid);
	char dir[64];
	struct stat sb;
	snprintf(dir, sizeof(dir), "/proc/%d", (int)pid);
	/* the kernel gives a process that is not dumpable (setuid-gained, prctl) to root */
	if (stat(dir, &sb) < 0 || sb.st_uid != peer->uid)
		return diag_error_set(err, -EACCES,
				      "pid %d: not dumpable (setuid-gained or PR_SET_DUMPABLE 0): only root may trace it",
				      (int)pid);
	int scope = yama_scope();
	if (scope >= 2)
		return diag_error_set(err, -EACCES,
				      "pid %d: Yama ptrace_scope is %d: only root may trace", (int)pid,
				      scope);
	if (scope == 1 && !is_ancestor(peer->pid, pid))
		return diag_error_set(err, -EACCES,
				      "pid %d: Yama ptrace_scope is 1: only its ancestors may trace it, and %s (pid %d) is not one",
				      (int)pid, peer->comm, (int)peer->pid);
	return 0;
}

static bool exe_allowed(const struct rule *r, pid_t pid)
{
	char link[64];
	struct stat want, have;
	snprintf(link, sizeof(link), "/proc/%d/exe", (int)pid);
	if (stat(link, &have) < 0)
		return false;
	for (size_t i = 0; i < r->exes.n; i++)
		if (stat(r->exes.v[i], &want) == 0 && want.st_dev == have.st_dev &&
		    want.st_ino == have.st_ino)
			return true;
	return false;
}

/* The unit a process runs in: a component NAME.service (or .scope) of its cgroup v2 path. */
static bool unit_allowed(const struct rule *r, pid_t pid)
{
	char cg[1024];
	read_proc_line(pid, "cgroup", cg, sizeof(cg));
	for (size_t i = 0; i < r->units.n; i++) {
		size_t n = strlen(r->units.v[i]);
		for (const char *p = strstr(cg, r->units.v[i]); p; p = strstr(p + 1, r->units.v[i]))
			if (p[-1] == '/' && (p[n] == '/' || p[n] == '\0'))
				return true;
	}
	return false;
}

static int rule_process(const struct rule *r, const struct dmn_peer *peer, pid_t pid,
			struct diag_error *err)
{
	if (pid == getpid())
		return diag_error_set(err, -EACCES, "pid %d: the daemon itself", (int)pid);
	int rc = r->any_process ? 0 : own_process(peer, pid, err);
	if (rc == 0 && r->exes.n && !exe_allowed(r, pid))
		rc = diag_error_set(err, -EACCES, "pid %d: its executable is not one the rule allows",
				    (int)pid);
	if (rc == 0 && r->units.n && !unit_allowed(r, pid))
		rc = diag_error_set(err, -EACCES, "pid %d: not in a systemd unit the rule allows",
				    (int)pid);
	return rc;
}

/* Run check over the rules naming peer: 0 when one allows, else the first refusal, quoted
 * with its rule. */
static int each_rule(const struct dmn_policy *p, const struct dmn_peer *peer,
		     int (*check)(const struct rule *r, const struct dmn_peer *peer,
				  const void *arg, struct diag_error *err),
		     const void *arg, struct diag_error *err)
{
	if (peer->uid == 0)
		return 0;
	int rc = dmn_policy_connect(p, peer, err);
	struct diag_error first = {0};
	for (int i = 0; rc == 0 && i < p->n; i++) {
		const struct rule *r = &p->rules[i];
		struct diag_error why = {0};
		if (!rule_names(r, peer))
			continue;
		if (check(r, peer, arg, &why) == 0)
			return 0;
		if (!first.msg[0]) {
			char label[256];
			diag_error_set(&first, why.code, "policy: %s: %s", rule_label(p, r, label, sizeof(label)),
				       why.msg);
		}
	}
	if (rc < 0)
		return rc;
	*err = first;
	return first.code ? first.code : -EACCES;
}

static int check_pid(const struct rule *r, const struct dmn_peer *peer, const void *arg,
		     struct diag_error *err)
{
	return rule_process(r, peer, *(const pid_t *)arg, err);
}

int dmn_policy_check_process(const struct dmn_policy *p, const struct dmn_peer *peer, pid_t pid,
			     struct diag_error *err)
{
	return each_rule(p, peer, check_pid, &pid, err);
}

/* Conservative: only what the language evaluates from registers and the daemon's own clock
 * ($arg1, $rdi, $tid, $time, elapsed, result, hex(), arithmetic and comparisons). Anything
 * that could dereference (a name, *, [, ->, ., a string) counts as reading memory. */
static const char *reads_memory(const char *src)
{
	static const char *const ok_words[] = {"elapsed", "result", "hex", NULL};
	bool operand_expected = true;
	for (const char *p = src; p && *p;) {
		if (isspace((unsigned char)*p)) {
			p++;
			continue;
		}
		if (*p == '$' || isalpha((unsigned char)*p) || *p == '_') {
			const char *s = p++;
			while (isalnum((unsigned char)*p) || *p == '_')
				p++;
			size_t n = (size_t)(p - s), k = 0;
			while (*s != '$' && ok_words[k] && (strlen(ok_words[k]) != n || strncmp(ok_words[k], s, n)))
				k++;
			if (*s != '$' && !ok_words[k])
				return "a variable by name";
			operand_expected = false;
			continue;
		}
		if (isdigit((unsigned char)*p)) {
			while (isalnum((unsigned char)*p) || *p == '.')
				p++;
			operand_expected = false;
			continue;
		}
		if (*p == '[' || *p == '.' || (*p == '-' && p[1] == '>'))
			return "a field or an element";
		if (*p == '"' || *p == '\'')
			return "a string";
		if ((*p == '*' || *p == '&') && operand_expected)
			return "a dereference";
		operand_expected = *p != ')';
		p++;
	}
	return NULL;
}

static int check_type_values(const struct rule *r, const struct diag_spec *s,
			     struct diag_error *err)
{
	if (r->types.n) {
		size_t i = 0;
		while (i < r->types.n && strcmp(r->types.v[i], s->type))
			i++;
		if (i == r->types.n)
			return diag_error_set(err, -EACCES, "instrument type '%s' is not one the rule allows",
					      s->type);
	}
	const char *why;
	if (!r->read_memory && (why = reads_memory(s->value)))
		return diag_error_set(err, -EACCES,
				      "value '%.64s' may read the target's memory (%s); the rule allows registers and counts only",
				      s->value, why);
	if (!r->read_memory && (why = reads_memory(s->condition)))
		return diag_error_set(err, -EACCES,
				      "condition '%.64s' may read the target's memory (%s); the rule allows registers and counts only",
				      s->condition, why);
	return 0;
}

static int check_spec(const struct rule *r, const struct dmn_peer *peer, const void *arg,
		      struct diag_error *err)
{
	const struct diag_spec *s = arg;
	int rc = check_type_values(r, s, err);
	for (size_t i = 0; rc == 0 && i < s->npids; i++)
		rc = rule_process(r, peer, s->pids[i], err);
	return rc;
}

int dmn_policy_check_spec(const struct dmn_policy *p, const struct dmn_peer *peer,
			  const struct diag_spec *s, struct diag_error *err)
{
	if (peer->uid != 0 && !s->npids)
		return diag_error_set(err, -EACCES,
				      "policy: name the process to probe (pid): a user's probe never applies to every attached process, nor to a selector alone");
	return each_rule(p, peer, check_spec, s, err);
}
