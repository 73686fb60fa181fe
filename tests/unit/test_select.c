/* test_select: selectors against real processes: the executable by identity (also through
 * /proc/self/root, and a copy of the same bytes is another file), a mapped library, the name
 * as pgrep -x compares it, a cgroup v2 subtree (a cgroup the test creates), a unit, AND of
 * several, a gone process; and the precise errors for bad selectors. Needs root (cgroups). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "fixture_proc.h"
#include "procwatch/select.h"

static void copy_file(const char *from, const char *to)
{
	char cmd[8400];
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && chmod 755 '%s'", from, to, to);
	if (system(cmd) != 0)
		exit(2);
}

static int match(const struct diag_selector *s, pid_t pid, char *why, size_t cap)
{
	struct diag_error err = {0};
	int r = diag_selector_match(s, pid, &err);
	snprintf(why, cap, "%s", err.msg);
	return r;
}

/* The mount point of the cgroup v2 hierarchy (the unified one on a hybrid system). */
static int cgroup2_root(char *out, size_t cap)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[1024];
	int r = -1;
	while (f && r < 0 && fgets(line, sizeof(line), f)) {
		char mnt[512], fs[64];
		const char *dash = strstr(line, " - ");
		if (dash && sscanf(dash, " - %63s", fs) == 1 && strcmp(fs, "cgroup2") == 0 &&
		    sscanf(line, "%*s %*s %*s %*s %511s", mnt) == 1) {
			snprintf(out, cap, "%s", mnt);
			r = 0;
		}
	}
	if (f)
		fclose(f);
	return r;
}

static void test_cgroup(pid_t pid, pid_t other)
{
	char root[512], dir[700], procs[800], rel[128], why[512];
	if (cgroup2_root(root, sizeof(root)) < 0) {
		fprintf(stderr, "FAIL: no cgroup v2 hierarchy mounted\n");
		check_failures++;
		return;
	}
	snprintf(rel, sizeof(rel), "/diag-test-select-%d", (int)getpid());
	snprintf(dir, sizeof(dir), "%s%s", root, rel);
	snprintf(procs, sizeof(procs), "%s/child/cgroup.procs", dir);
	CHECK_EQ_INT(mkdir(dir, 0755), 0);
	char child[760];
	snprintf(child, sizeof(child), "%s/child", dir);
	CHECK_EQ_INT(mkdir(child, 0755), 0);
	FILE *f = fopen(procs, "we");
	CHECK(f != NULL);
	if (f) {
		fprintf(f, "%d\n", (int)pid);
		CHECK_EQ_INT(fclose(f), 0);
	}
	struct diag_selector s = {0};
	CHECK_EQ_INT(diag_selector_set_cgroup(&s, rel, NULL), 0);
	CHECK_EQ_INT(match(&s, pid, why, sizeof(why)), 1); /* a subtree: rel/child */
	CHECK_EQ_INT(match(&s, other, why, sizeof(why)), 0);
	CHECK_CONTAINS(why, "select.cgroup is");
	char sub[200];
	snprintf(sub, sizeof(sub), "%s/chi", rel); /* a prefix that is not a path component */
	CHECK_EQ_INT(diag_selector_set_cgroup(&s, sub, NULL), 0);
	CHECK_EQ_INT(match(&s, pid, why, sizeof(why)), 0);
	/* move it back to the root so the cgroups can go */
	char back[600];
	snprintf(back, sizeof(back), "%s/cgroup.procs", root);
	f = fopen(back, "we");
	if (f) {
		fprintf(f, "%d\n", (int)pid);
		fclose(f);
	}
	CHECK_EQ_INT(rmdir(child), 0);
	CHECK_EQ_INT(rmdir(dir), 0);
}

int main(void)
{
	const char *fixture = fixture_path("work", "O0", "pie");
	char dir[] = "/tmp/test_select.XXXXXX";
	if (!mkdtemp(dir))
		return 2;
	char a[4200], b[4200], via_root[4300], why[512];
	snprintf(a, sizeof(a), "%s/selprog", dir);
	snprintf(b, sizeof(b), "%s/selcopy", dir);
	copy_file(fixture, a);
	copy_file(fixture, b);
	snprintf(via_root, sizeof(via_root), "/proc/self/root%s", a);

	struct fixture fa, fb;
	char *argv_a[] = {a, NULL}, *argv_b[] = {b, NULL};
	CHECK_EQ_INT(fixture_start_ready(&fa, a, argv_a), 0);
	CHECK_EQ_INT(fixture_start_ready(&fb, b, argv_b), 0);

	struct diag_selector s = {0};
	CHECK_EQ_INT(match(&s, fa.pid, why, sizeof(why)), 1); /* empty: every process */

	/* executable by identity */
	CHECK_EQ_INT(diag_selector_set_exe(&s, a, false, NULL), 0);
	CHECK_EQ_INT(match(&s, fa.pid, why, sizeof(why)), 1);
	CHECK_EQ_INT(match(&s, fb.pid, why, sizeof(why)), 0);
	CHECK_CONTAINS(why, "does not run");
	struct diag_selector r = {0};
	CHECK_EQ_INT(diag_selector_set_exe(&r, via_root, false, NULL), 0);
	CHECK_EQ_INT(match(&r, fa.pid, why, sizeof(why)), 1);

	/* name, and AND with the executable */
	CHECK_EQ_INT(diag_selector_set_comm(&s, "selprog", NULL), 0);
	CHECK_EQ_INT(match(&s, fa.pid, why, sizeof(why)), 1);
	CHECK_EQ_INT(diag_selector_set_comm(&s, "selcopy", NULL), 0);
	CHECK_EQ_INT(match(&s, fa.pid, why, sizeof(why)), 0); /* exe yes, name no */
	CHECK_CONTAINS(why, "select.comm is 'selprog', not 'selcopy'");

	/* a library it maps (libc, found from our own maps), and one it does not */
	char libc[4096] = "";
	FILE *m = fopen("/proc/self/maps", "re");
	char line[8192];
	while (m && !libc[0] && fgets(line, sizeof(line), m)) {
		char *p = strchr(line, '/');
		if (p && strstr(p, "/libc.so.6")) {
			p[strcspn(p, "\n")] = '\0';
			snprintf(libc, sizeof(libc), "%s", p);
		}
	}
	if (m)
		fclose(m);
	CHECK(libc[0] != '\0');
	struct diag_selector l = {0};
	CHECK_EQ_INT(diag_selector_set_exe(&l, libc, true, NULL), 0);
	CHECK_EQ_INT(match(&l, fa.pid, why, sizeof(why)), 1);
	CHECK_EQ_INT(diag_selector_set_exe(&l, b, true, NULL), 0);
	CHECK_EQ_INT(match(&l, fa.pid, why, sizeof(why)), 0);
	CHECK_CONTAINS(why, "does not map");

	/* a unit: the fixture runs in none */
	struct diag_selector u = {0};
	CHECK_EQ_INT(diag_selector_set_unit(&u, "nginx.service", NULL), 0);
	CHECK(match(&u, fa.pid, why, sizeof(why)) <= 0);
	CHECK_CONTAINS(why, "in no systemd unit");

	test_cgroup(fa.pid, fb.pid);

	/* errors */
	struct diag_error err = {0};
	CHECK(diag_selector_set_exe(&s, "/nonexistent/prog", false, &err) < 0);
	CHECK_EQ_STR(err.field, "select.exe");
	CHECK_CONTAINS(err.msg, "select.exe: /nonexistent/prog: No such file or directory");
	CHECK(diag_selector_set_exe(&s, "/tmp", false, &err) < 0);
	CHECK_CONTAINS(err.msg, "not a regular file");
	CHECK(diag_selector_set_comm(&s, "a-name-of-twenty-bytes", &err) < 0);
	CHECK_EQ_STR(err.field, "select.comm");
	CHECK_CONTAINS(err.msg, "can never match (use 'a-name-of-twent'");
	CHECK(diag_selector_set_comm(&s, "usr/bin/x", &err) < 0);
	CHECK(diag_selector_set_cgroup(&s, "system.slice", &err) < 0);
	CHECK_EQ_STR(err.field, "select.cgroup");
	CHECK(diag_selector_set_unit(&s, "", &err) < 0);

	/* a gone process */
	fixture_go(&fb);
	fixture_reap(&fb);
	struct diag_selector e = {0};
	CHECK_EQ_INT(diag_selector_set_exe(&e, b, false, NULL), 0);
	CHECK_EQ_INT(diag_selector_match(&e, fb.pid, &err), -ESRCH);

	fixture_go(&fa);
	fixture_reap(&fa);
	unlink(a);
	unlink(b);
	rmdir(dir);
	return CHECK_DONE();
}
