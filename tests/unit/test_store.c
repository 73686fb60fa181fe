/* test_store: atomic JSON file store: round trip, missing file, corrupt file quarantine,
 * in-memory store, and no temp file left behind. */
#include "check.h"
#include "store/store.h"

#include <dirent.h>
#include <stdlib.h>
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
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK_EQ_INT(system(cmd), 0);
	return CHECK_DONE();
}
