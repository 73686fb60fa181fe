/* test_store: atomic JSON file store: round trip, missing file, corrupt file quarantine,
 * in-memory store, and no temp file left behind; what it writes it can read back (compact,
 * a write limit, target text escaped), and a file it cannot read is set aside (oversized,
 * not a regular file, a second bad file in the same second) or, when it cannot be moved,
 * never overwritten. */
#include "check.h"
#include "spec/json.h"
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static struct diag_spec *mk(const char *id)
{
	char t[256];
	snprintf(t, sizeof(t), "{\"id\":\"%s\",\"target\":\"work\",\"instrument\":{\"type\":\"log\",\"name\":\"w\"},\"lifespan\":1.5}", id);
	struct diag_spec **v;
	struct diag_error err;
	if (diag_spec_parse(t, strlen(t), false, 0, &v, &err) != 1)
		abort();
	struct diag_spec *s = v[0];
	free(v);
	return s;
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	int n = 0;
	for (struct dirent *e; d && (e = readdir(d));)
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "re");
	char *buf = f ? malloc(1 << 20) : NULL;
	*len = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
	if (buf)
		buf[*len] = '\0';
	if (f)
		fclose(f);
	return buf;
}

static int count_prefix(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	int n = 0;
	for (struct dirent *e; d && (e = readdir(d));)
		n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
	if (d)
		closedir(d);
	return n;
}

/* Compact, within the write limit, strictly readable even when target text is hostile. */
static void test_written_readable(const char *dir)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/w.json", dir);
	struct diag_store *st;
	struct diag_error err = { 0 };
	CHECK_EQ_INT(diag_store_open(path, &st), 0);
	struct diag_spec *s[20];
	for (int i = 0; i < 20; i++) {
		char id[16];
		snprintf(id, sizeof(id), "s%d", i);
		s[i] = mk(id);
	}
	struct diag_applied *a = diag_spec_applied_get(s[0], "host:7", 7);
	a->state = DIAG_APPLIED_ERROR;
	snprintf(a->error, sizeof(a->error), "target: no function 'x'; did you mean: a\nFAKE\x1b[31m\xff\xc2\x9b");
	CHECK_EQ_INT(diag_store_save(st, s, 1, &err), 0);
	size_t len;
	char *text = slurp(path, &len);
	CHECK(text && len > 0 && strchr(text, '\n') == text + len - 1); /* one line */
	cJSON *j = text ? diag_json_parse(text, len, &err) : NULL;
	CHECK(j != NULL); /* the strict reader accepts what was written */
	cJSON_Delete(j);
	CHECK(text && strstr(text, "did you mean: a\\\\nFAKE\\\\x1b[31m\\\\xff\\\\u009b\"") != NULL);
	free(text);
	struct diag_spec **got;
	CHECK_EQ_INT(diag_store_load(st, &got, &err), 1);
	diag_spec_free_array(got, 1);

	diag_store_set_write_max(st, 2048);
	int r = diag_store_save(st, s, 20, &err);
	CHECK_EQ_INT(r, -DIAG_E_LIMIT);
	char want[512];
	text = slurp(path, &len);
	CHECK(text != NULL);
	free(text);
	snprintf(want, sizeof(want), "store %s: would be ", path);
	CHECK(strncmp(err.msg, want, strlen(want)) == 0);
	CHECK_CONTAINS(err.msg, " bytes, over the limit of 2048; not saved");
	CHECK_EQ_INT(diag_store_load(st, &got, &err), 1); /* the last good content stays */
	diag_spec_free_array(got, 1);
	diag_store_free(st);
	for (int i = 0; i < 20; i++)
		diag_spec_free(s[i]);
}

/* Over the read limit, a FIFO, and a second bad file in the same second: set aside, each
 * under its own name, never overwritten by the next save. */
static void test_set_aside(const char *dir)
{
	char path[256], want[1024];
	snprintf(path, sizeof(path), "%s/big.json", dir);
	struct diag_store *st;
	struct diag_error err = { 0 };
	struct diag_spec **got;
	CHECK_EQ_INT(diag_store_open(path, &st), 0);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0 && ftruncate(fd, (off_t)DIAG_STORE_READ_MAX + 1) == 0);
	close(fd);
	time_t t0 = time(NULL);
	CHECK_EQ_INT(diag_store_load(st, &got, &err), -DIAG_E_PARSE);
	time_t t1 = time(NULL);
	char kept0[300], kept1[300];
	snprintf(kept0, sizeof(kept0), "%s.corrupt-%lld", path, (long long)t0);
	snprintf(kept1, sizeof(kept1), "%s.corrupt-%lld", path, (long long)t1);
	const char *kept = access(kept0, F_OK) == 0 ? kept0 : kept1;
	snprintf(want, sizeof(want), "store %s is unreadable (268435457 bytes, larger than the read "
		 "limit of 268435456); kept as %s, starting empty", path, kept);
	CHECK_EQ_STR(err.msg, want);
	CHECK_EQ_STR(diag_store_problem(st), want);
	struct stat sb;
	CHECK(stat(kept, &sb) == 0 && sb.st_size == (off_t)DIAG_STORE_READ_MAX + 1);
	struct diag_spec *s = mk("after");
	CHECK_EQ_INT(diag_store_save(st, &s, 1, &err), 0);
	CHECK(stat(kept, &sb) == 0 && sb.st_size == (off_t)DIAG_STORE_READ_MAX + 1);

	/* another bad file at once: a second name, the first one kept */
	FILE *f = fopen(path, "w");
	fputs("[}", f);
	fclose(f);
	CHECK_EQ_INT(diag_store_load(st, &got, &err), -DIAG_E_PARSE);
	CHECK_EQ_INT(count_prefix(dir, "big.json.corrupt-"), 2);
	CHECK(stat(kept, &sb) == 0 && sb.st_size == (off_t)DIAG_STORE_READ_MAX + 1);
	unlink(kept);

	/* a FIFO does not hang the start */
	unlink(path);
	CHECK(mkfifo(path, 0600) == 0);
	CHECK_EQ_INT(diag_store_load(st, &got, &err), -DIAG_E_PARSE);
	CHECK_CONTAINS(err.msg, "is unreadable (not a regular file); kept as ");
	diag_store_free(st);
	diag_spec_free(s);
}

/* A bad store that cannot be moved aside (a mount point: EBUSY) blocks every save. */
static void test_blocked(const char *dir)
{
	char path[256], src[256], want[1024];
	snprintf(path, sizeof(path), "%s/mnt.json", dir);
	snprintf(src, sizeof(src), "%s/src.json", dir);
	FILE *f = fopen(path, "w");
	fputs("x", f);
	fclose(f);
	f = fopen(src, "w");
	fputs("[not json", f);
	fclose(f);
	if (mount(src, path, NULL, MS_BIND, NULL) != 0) {
		fprintf(stderr, "FAIL: bind mount for the blocked-store case: %s\n", strerror(errno));
		check_failures++;
		return;
	}
	struct diag_store *st;
	struct diag_error err = { 0 };
	struct diag_spec **got;
	CHECK_EQ_INT(diag_store_open(path, &st), 0);
	CHECK_EQ_INT(diag_store_load(st, &got, &err), -DIAG_E_PARSE);
	snprintf(want, sizeof(want), "store %s is corrupt (invalid JSON at byte 1 near 'not json') and "
		 "could not be moved aside (Device or resource busy): it is left as it is and nothing "
		 "will be saved", path);
	CHECK_EQ_STR(err.msg, want);
	struct diag_spec *s = mk("x");
	CHECK_EQ_INT(diag_store_save(st, &s, 1, &err), -DIAG_E_STATE);
	CHECK_EQ_STR(err.msg, want);
	size_t len;
	char *text = slurp(path, &len);
	CHECK(text && strcmp(text, "[not json") == 0);
	free(text);
	CHECK(umount(path) == 0);
	diag_store_free(st);
	diag_spec_free(s);
}

int main(void)
{
	char dir[] = "/tmp/test_store.XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char path[256];
	snprintf(path, sizeof(path), "%s/specs.json", dir);
	struct diag_store *st;
	struct diag_error err = { 0 };
	CHECK_EQ_INT(diag_store_open(path, &st), 0);

	struct diag_spec **got;
	CHECK_EQ_INT(diag_store_load(st, &got, &err), 0); /* missing file = empty */
	free(got);

	struct diag_spec *s[2] = { mk("a"), mk("b") };
	s[0]->lastmodified_ns = 1795625242LL * 1000000000LL;
	struct diag_applied *a = diag_spec_applied_get(s[0], "host:7", 7);
	a->state = DIAG_APPLIED_EXPIRED;
	CHECK_EQ_INT(diag_store_save(st, s, 2, &err), 0);
	CHECK_EQ_INT(count_entries(dir), 1); /* no temp file left */

	int n = diag_store_load(st, &got, &err);
	CHECK_EQ_INT(n, 2);
	if (n == 2) {
		CHECK_EQ_STR(got[0]->id, "a");
		CHECK_EQ_STR(got[1]->id, "b");
		CHECK_EQ_INT(got[0]->lastmodified_ns, s[0]->lastmodified_ns);
		CHECK_EQ_INT(got[0]->napplied, 1);
		CHECK_EQ_INT(got[0]->applied[0].state, DIAG_APPLIED_EXPIRED);
		CHECK(got[1]->lifespan_min == 1.5);
		diag_spec_free_array(got, n);
	}

	FILE *f = fopen(path, "w");
	fputs("[{\"id\":\"a\",", f);
	fclose(f);
	n = diag_store_load(st, &got, &err);
	CHECK_EQ_INT(n, -DIAG_E_PARSE);
	CHECK(strstr(err.msg, "is corrupt (invalid JSON at byte") != NULL);
	CHECK(strstr(err.msg, "; kept as ") != NULL);
	CHECK(access(path, F_OK) != 0);
	CHECK_EQ_INT(count_entries(dir), 1); /* the .corrupt-<time> file */
	CHECK_EQ_INT(diag_store_load(st, &got, &err), 0);
	free(got);
	diag_store_free(st);

	/* Missing parent directories are created on save. */
	char deep[300];
	snprintf(deep, sizeof(deep), "%s/a/b/specs.json", dir);
	CHECK_EQ_INT(diag_store_open(deep, &st), 0);
	CHECK_EQ_INT(diag_store_save(st, s, 1, &err), 0);
	CHECK_EQ_INT(diag_store_load(st, &got, &err), 1);
	diag_spec_free_array(got, 1);
	diag_store_free(st);

	CHECK_EQ_INT(diag_store_open(NULL, &st), 0);
	CHECK_EQ_INT(diag_store_save(st, s, 2, &err), 0);
	CHECK_EQ_INT(diag_store_load(st, &got, &err), 0);
	free(got);
	diag_store_free(st);
	diag_spec_free(s[0]);
	diag_spec_free(s[1]);
	test_written_readable(dir);
	test_set_aside(dir);
	test_blocked(dir);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK_EQ_INT(system(cmd), 0);
	return CHECK_DONE();
}
