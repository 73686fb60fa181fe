/* store: the JSON file store (see store.h). Never loses an acknowledged save: every save is
 * write-temp + fsync + rename + fsync(dir). Never interprets specs beyond lib/spec. */
#include "store/store.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct diag_store {
	char *path;
	size_t write_max;
	bool blocked;                    /* the unreadable file could not be moved aside */
	char problem[DIAG_ERRMSG_MAX];   /* the load's error, "" when none */
};

int diag_store_open(const char *path, struct diag_store **out)
{
	struct diag_store *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	if (path && !(st->path = strdup(path))) {
		free(st);
		return -ENOMEM;
	}
	st->write_max = DIAG_STORE_WRITE_MAX;
	*out = st;
	return 0;
}

void diag_store_free(struct diag_store *st)
{
	if (!st)
		return;
	free(st->path);
	free(st);
}

const char *diag_store_path(const struct diag_store *st)
{
	return st->path;
}

void diag_store_set_write_max(struct diag_store *st, size_t bytes)
{
	st->write_max = bytes;
}

const char *diag_store_problem(const struct diag_store *st)
{
	return st->problem[0] ? st->problem : NULL;
}

static int read_all(const char *path, char **buf, size_t *len, struct diag_error *err)
{
	/* O_NONBLOCK: a FIFO at the path must not hang the daemon's start */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 && errno == ENOENT)
		return -ENOENT;
	if (fd < 0)
		return diag_error_set(err, -errno, "cannot open: %s", strerror(errno));
	struct stat sb;
	int r = fstat(fd, &sb) < 0 ? diag_error_set(err, -errno, "fstat: %s", strerror(errno))
		: !S_ISREG(sb.st_mode) ? diag_error_set(err, -EINVAL, "not a regular file")
		: (uint64_t)sb.st_size > DIAG_STORE_READ_MAX
			? diag_error_set(err, -EFBIG, "%lld bytes, larger than the read limit of %u",
					 (long long)sb.st_size, DIAG_STORE_READ_MAX)
			: 0;
	if (r < 0) {
		close(fd);
		return r;
	}
	char *b = malloc((size_t)sb.st_size + 1);
	size_t got = 0;
	while (b && got < (size_t)sb.st_size) {
		ssize_t n = read(fd, b + got, (size_t)sb.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (!b)
		return -ENOMEM;
	b[got] = '\0';
	*buf = b;
	*len = got;
	return 0;
}

/* rename without replacing: the name may be taken by an earlier bad file of the same second. */
static int rename_noreplace(const char *from, const char *to)
{
	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS) /* a file system without RENAME_NOREPLACE */
		return -errno;
	if (link(from, to) < 0)
		return -errno;
	return unlink(from) < 0 ? -errno : 0;
}

/* Keep the bad file for the operator and start empty: refusing to start would leave every
 * target unprobed over one bad byte. A file that cannot be moved aside blocks every save. */
static int quarantine(struct diag_store *st, const char *what, struct diag_error *err)
{
	char bad[4096], why[DIAG_ERRMSG_MAX];
	snprintf(why, sizeof(why), "%s", err->msg);
	int r = -EEXIST;
	time_t now = time(NULL);
	for (int i = 0; i < 100 && r == -EEXIST; i++) {
		if (i == 0)
			snprintf(bad, sizeof(bad), "%s.corrupt-%lld", st->path, (long long)now);
		else
			snprintf(bad, sizeof(bad), "%s.corrupt-%lld-%d", st->path, (long long)now, i);
		r = rename_noreplace(st->path, bad);
	}
	if (r < 0) {
		st->blocked = true;
		diag_error_set(err, -DIAG_E_PARSE,
			       "store %s is %s (%s) and could not be moved aside (%s): it is left as it "
			       "is and nothing will be saved",
			       st->path, what, why, strerror(-r));
	} else {
		diag_error_set(err, -DIAG_E_PARSE, "store %s is %s (%s); kept as %s, starting empty",
			       st->path, what, why, bad);
	}
	snprintf(st->problem, sizeof(st->problem), "%s", err->msg);
	return err->code;
}

int diag_store_load(struct diag_store *st, struct diag_spec ***specs, struct diag_error *err)
{
	struct diag_error local = { 0 };
	if (!err)
		err = &local;
	*specs = NULL;
	if (!st->path)
		return 0;
	char *buf = NULL;
	size_t len = 0;
	int r = read_all(st->path, &buf, &len, err);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return quarantine(st, "unreadable", err);
	struct diag_spec **v = NULL;
	int n = 0;
	if (len == 0)
		diag_error_set(err, -DIAG_E_PARSE, "empty file");
	else
		n = diag_spec_parse(buf, len, true, DIAG_SPEC_KEEP_APPLIED, &v, err);
	free(buf);
	if (len == 0 || n < 0)
		return quarantine(st, "corrupt", err);
	*specs = v;
	return n;
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int fsync_dir_of(const char *path)
{
	char *copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(copy);
	if (fd < 0)
		return -errno;
	int r = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return r;
}

/* Outside systemd nobody made StateDirectory for us. */
static int mkdir_parents(const char *path)
{
	char buf[4096];
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; (p = strchr(p, '/')); p++) {
		*p = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return 0;
}

static char *render(struct diag_spec *const *specs, size_t n)
{
	cJSON *arr = cJSON_CreateArray();
	for (size_t i = 0; arr && i < n; i++)
		cJSON_AddItemToArray(arr, diag_spec_to_json(specs[i], DIAG_SPEC_JSON_APPLIED, 0));
	/* compact: pretty-printing indents by depth, which multiplied a nested custom object */
	char *text = arr ? cJSON_PrintUnformatted(arr) : NULL;
	cJSON_Delete(arr);
	return text;
}

int diag_store_save(struct diag_store *st, struct diag_spec *const *specs, size_t n,
		    struct diag_error *err)
{
	if (!st->path)
		return 0;
	if (st->blocked)
		return diag_error_set(err, -DIAG_E_STATE, "%s", st->problem);
	char *text = render(specs, n);
	if (!text)
		return diag_error_set(err, -ENOMEM, "store %s: out of memory", st->path);
	size_t len = strlen(text);
	if (len + 1 > st->write_max) {
		free(text);
		return diag_error_set(err, -DIAG_E_LIMIT,
				      "store %s: would be %zu bytes, over the limit of %zu; not saved",
				      st->path, len + 1, st->write_max);
	}
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s.tmp-%d", st->path, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 && errno == ENOENT && mkdir_parents(st->path) == 0)
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int r = fd < 0 ? -errno : 0;
	const char *step = "create";
	if (!r && (r = write_all(fd, text, len)) == 0)
		r = write_all(fd, "\n", 1);
	if (!r && fsync(fd) < 0) {
		r = -errno;
		step = "fsync";
	} else if (r) {
		step = "write";
	}
	if (fd >= 0)
		close(fd);
	free(text);
	if (!r && rename(tmp, st->path) < 0) {
		r = -errno;
		step = "rename";
	}
	if (r) {
		unlink(tmp);
		return diag_error_set(err, r, "store %s: %s failed: %s", st->path, step, strerror(-r));
	}
	/* The rename is durable only once the directory entry is. */
	r = fsync_dir_of(st->path);
	if (r)
		return diag_error_set(err, r, "store %s: fsync of directory failed: %s", st->path,
				      strerror(-r));
	return 0;
}
