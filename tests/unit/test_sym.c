/* test_sym: module map and ELF symbol resolution against live fixtures (work-{O0,O2}-{pie,nopie}
 * and this test process itself). Expected addresses come from nm, readelf and /proc/PID/maps
 * read independently here, and from the dynamic linker (dlsym) for this process. */
#include <dlfcn.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "elf_sym.h"
#include "fixture_proc.h"
#include "sym/modmap.h"
#include "sym/symtab.h"

#define CHECK_EQ_HEX(a, b)                                                                    \
	do {                                                                                  \
		uint64_t x_ = (uint64_t)(a), y_ = (uint64_t)(b);                              \
		if (x_ != y_) {                                                               \
			fprintf(stderr, "%s:%d: %s == %s failed: 0x%" PRIx64 " != 0x%" PRIx64 "\n", \
				__FILE__, __LINE__, #a, #b, x_, y_);                          \
			check_failures++;                                                     \
		}                                                                             \
	} while (0)

/* The vaddr of the first PT_LOAD, read with readelf. */
static uint64_t readelf_first_load(const char *file)
{
	char cmd[1024], line[512];
	snprintf(cmd, sizeof(cmd), "readelf -lW '%s'", file);
	FILE *p = popen(cmd, "r");
	uint64_t off, vaddr = UINT64_MAX;
	while (p && fgets(line, sizeof(line), p))
		if (vaddr == UINT64_MAX &&
		    sscanf(line, " LOAD 0x%" SCNx64 " 0x%" SCNx64, &off, &vaddr) != 2)
			vaddr = UINT64_MAX;
	if (p)
		pclose(p);
	return vaddr;
}

/* Start of the mapping of file at offset 0 in /proc/PID/maps. */
static uint64_t maps_offset0(pid_t pid, const char *file)
{
	char fn[64], line[1024];
	snprintf(fn, sizeof(fn), "/proc/%d/maps", (int)pid);
	FILE *f = fopen(fn, "r");
	uint64_t found = UINT64_MAX;
	while (f && fgets(line, sizeof(line), f)) {
		uint64_t start, end, off;
		char path[512] = "";
		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %*s %" SCNx64 " %*s %*s %511s", &start, &end,
			   &off, path) == 4 &&
		    off == 0 && strcmp(path, file) == 0 && found == UINT64_MAX)
			found = start;
	}
	if (f)
		fclose(f);
	return found;
}

static uint64_t expected_bias(pid_t pid, const struct diag_module *mod)
{
	return maps_offset0(pid, mod->path) - (readelf_first_load(mod->host_path) & ~(uint64_t)0xfff);
}

static int resolve1(struct diag_symcache *c, const struct diag_modmap *m, const char *target,
		    struct diag_location *loc, struct diag_error *err)
{
	struct diag_location *v = NULL;
	size_t n = 0;
	diag_error_clear(err);
	int rc = diag_sym_resolve(c, m, target, NULL, &v, &n, NULL, NULL, err);
	if (rc == 0) {
		CHECK_EQ_INT(n, 1);
		*loc = v[0];
		free(v);
	}
	return rc;
}

struct count_arg {
	const char *want;
	int hits;
};

static int count_cb(void *arg, const struct diag_module *mod, const char *name, uint64_t addr,
		    uint64_t size)
{
	struct count_arg *a = arg;
	(void)mod;
	CHECK(addr != 0 && size != 0);
	if (strcmp(name, a->want) == 0)
		a->hits++;
	return 0;
}

static void check_function(struct diag_symcache *c, const struct diag_modmap *m,
			   const struct diag_module *main_mod, const char *name)
{
	uint64_t v = 0, s = 0;
	struct diag_error err;
	struct diag_location loc;
	CHECK_EQ_INT(nm_symbol(main_mod->host_path, name, 0, &v, &s), 0);
	int rc = resolve1(c, m, name, &loc, &err);
	CHECK_EQ_INT(rc, 0);
	if (rc) {
		fprintf(stderr, "  resolve %s: %s\n", name, err.msg);
		return;
	}
	CHECK_EQ_HEX(loc.addr, v + main_mod->bias);
	CHECK(loc.mod == main_mod);
	CHECK_EQ_STR(loc.symbol, name);
	CHECK_EQ_INT(loc.offset, 0);
	CHECK_EQ_HEX(loc.func_start, v + main_mod->bias);
	CHECK_EQ_HEX(loc.func_end - loc.func_start, s);
}

static void check_libc(struct diag_symcache *c, const struct diag_modmap *m, pid_t pid)
{
	const struct diag_module *libc = diag_modmap_by_name(m, "libc.so.6");
	CHECK(libc != NULL);
	if (!libc)
		return;
	CHECK(diag_modmap_by_name(m, "libc") == libc);
	CHECK(diag_modmap_by_name(m, "libc.so") == libc);
	CHECK(diag_modmap_by_name(m, libc->path) == libc);
	CHECK_EQ_HEX(libc->bias, expected_bias(pid, libc));
	CHECK(libc->build_id[0] != '\0');
	uint64_t v = 0, s = 0;
	CHECK_EQ_INT(nm_symbol(libc->host_path, "getppid", 1, &v, &s), 0);
	const char *targets[] = { "libc.so.6:getppid", "libc:getppid", "getppid" };
	for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
		struct diag_location loc;
		struct diag_error err;
		int rc = resolve1(c, m, targets[i], &loc, &err);
		CHECK_EQ_INT(rc, 0);
		if (rc)
			fprintf(stderr, "  resolve %s: %s\n", targets[i], err.msg);
		else {
			CHECK_EQ_HEX(loc.addr, v + libc->bias);
			CHECK(loc.mod == libc);
		}
	}
	char name[64];
	uint64_t off = 1;
	CHECK_EQ_INT(diag_sym_lookup_addr(c, m, v + libc->bias + 2, name, sizeof(name), &off), 0);
	CHECK_EQ_STR(name, "getppid");
	CHECK_EQ_INT(off, 2);
}

static void check_errors(struct diag_symcache *c, const struct diag_modmap *m)
{
	struct diag_location loc;
	struct diag_error err;
	CHECK_EQ_INT(resolve1(c, m, "wrok", &loc, &err), -DIAG_E_NOSYM);
	CHECK_CONTAINS(err.msg, "no function 'wrok'");
	CHECK_CONTAINS(err.msg, "did you mean");
	CHECK_CONTAINS(err.msg, "work");
	CHECK_EQ_INT(resolve1(c, m, "libc:wrok", &loc, &err), -DIAG_E_NOSYM);
	CHECK_EQ_INT(resolve1(c, m, "nosuchlib:work", &loc, &err), -DIAG_E_NOSYM);
	CHECK_CONTAINS(err.msg, "nosuchlib");
	const char *bad[] = { "", "work+", "work+zz", "wo rk", ":work", "libc:", "0xZZ",
			      "1work", "work+0x" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_EQ_INT(resolve1(c, m, bad[i], &loc, &err), -DIAG_E_PARSE);
		if (bad[i][0])
			CHECK_CONTAINS(err.msg, bad[i]);
	}
	CHECK_EQ_INT(resolve1(c, m, "work+0x100000", &loc, &err), -DIAG_E_INVALID);
	CHECK_EQ_INT(resolve1(c, m, "0x10", &loc, &err), -DIAG_E_NOSYM);
	/* Both libc and ld.so define it: no silent pick. */
	CHECK_EQ_INT(resolve1(c, m, "_dl_catch_error", &loc, &err), -DIAG_E_AMBIGUOUS);
	CHECK_CONTAINS(err.msg, "libc.so.6:_dl_catch_error");
	CHECK_CONTAINS(err.msg, "ld-linux-x86-64.so.2:_dl_catch_error");
	/* Two versions of one name in libc: the default version wins, not an ambiguity. */
	CHECK_EQ_INT(resolve1(c, m, "libc:pthread_cond_wait", &loc, &err), 0);
}

static void check_fixture(struct diag_symcache *c, const char *dir, const char *variant)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s", dir, variant);
	char *argv[] = { path, "1", "1", "libc", NULL };
	struct fixture fx;
	if (fixture_start_ready(&fx, path, argv) < 0) {
		CHECK(!"fixture started");
		return;
	}
	struct diag_modmap m = { 0 };
	struct diag_error err = { 0 };
	int rc = diag_modmap_read(fx.pid, &m, &err);
	CHECK_EQ_INT(rc, 0);
	const struct diag_module *main_mod = diag_modmap_main(&m);
	CHECK(main_mod != NULL);
	if (rc == 0 && main_mod) {
		CHECK_EQ_STR(main_mod->name, variant);
		CHECK(main_mod->is_main);
		CHECK(diag_modmap_by_name(&m, variant) == main_mod);
		CHECK(main_mod->build_id[0] != '\0');
		CHECK_EQ_HEX(main_mod->bias, expected_bias(fx.pid, main_mod));
		if (strstr(variant, "nopie"))
			CHECK_EQ_HEX(main_mod->bias, 0);
		check_function(c, &m, main_mod, "work");
		check_function(c, &m, main_mod, "twice");

		struct diag_location w, loc;
		CHECK_EQ_INT(resolve1(c, &m, "work", &w, &err), 0);
		CHECK_EQ_INT(resolve1(c, &m, "work+4", &loc, &err), 0);
		CHECK_EQ_HEX(loc.addr, w.addr + 4);
		CHECK_EQ_INT(loc.offset, 4);
		CHECK_EQ_HEX(loc.func_start, w.addr);
		char text[64];
		snprintf(text, sizeof(text), "%s:work+0x3", variant);
		CHECK_EQ_INT(resolve1(c, &m, text, &loc, &err), 0);
		CHECK_EQ_HEX(loc.addr, w.addr + 3);
		snprintf(text, sizeof(text), "0x%" PRIx64, w.addr + 1);
		CHECK_EQ_INT(resolve1(c, &m, text, &loc, &err), 0);
		CHECK_EQ_HEX(loc.addr, w.addr + 1);
		CHECK(loc.mod == main_mod);
		CHECK_EQ_STR(loc.symbol, "work");
		CHECK_EQ_INT(loc.offset, 1);
		CHECK(diag_modmap_find(&m, w.addr) == main_mod);

		char name[64];
		uint64_t off = 0;
		CHECK_EQ_INT(diag_sym_lookup_addr(c, &m, w.addr + 3, name, sizeof(name), &off), 0);
		CHECK_EQ_STR(name, "work");
		CHECK_EQ_INT(off, 3);

		struct count_arg ca = { "twice", 0 };
		CHECK_EQ_INT(diag_sym_foreach(c, &m, "twi*", count_cb, &ca), 0);
		CHECK_EQ_INT(ca.hits, 1);

		check_libc(c, &m, fx.pid);
		check_errors(c, &m);
	} else {
		fprintf(stderr, "  modmap %s: %s\n", variant, err.msg);
	}
	diag_modmap_release(&m);
	CHECK_EQ_INT(fixture_finish(&fx), 0);
}

/* A binary deleted while running is still read, through /proc/PID/map_files. */
static void check_deleted(struct diag_symcache *c, const char *dir)
{
	char src[1024], tmp[] = "/tmp/test_sym_XXXXXX", cmd[2200];
	snprintf(src, sizeof(src), "%s/work-O2-pie", dir);
	int fd = mkstemp(tmp);
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	close(fd);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && chmod +x '%s'", src, tmp, tmp);
	CHECK_EQ_INT(system(cmd), 0);
	char *argv[] = { tmp, "1", "1", "libc", NULL };
	struct fixture fx;
	int started = fixture_start_ready(&fx, tmp, argv);
	unlink(tmp);
	CHECK_EQ_INT(started, 0);
	if (started < 0)
		return;
	struct diag_modmap m = { 0 };
	struct diag_error err = { 0 };
	CHECK_EQ_INT(diag_modmap_read(fx.pid, &m, &err), 0);
	const struct diag_module *main_mod = diag_modmap_main(&m);
	CHECK(main_mod != NULL);
	uint64_t v = 0, s = 0;
	struct diag_location loc;
	if (main_mod) {
		CHECK_EQ_STR(main_mod->path, tmp);
		CHECK_CONTAINS(main_mod->host_path, "/map_files/");
		CHECK_EQ_INT(nm_symbol(src, "work", 0, &v, &s), 0);
		CHECK_EQ_HEX(main_mod->bias, maps_offset0(fx.pid, tmp));
		CHECK_EQ_INT(resolve1(c, &m, "work", &loc, &err), 0);
		CHECK_EQ_HEX(loc.addr, v + main_mod->bias);
	}
	diag_modmap_release(&m);
	CHECK_EQ_INT(fixture_finish(&fx), 0);
}

/* This process: the dynamic linker's own answer is the reference. */
static void check_self(struct diag_symcache *c)
{
	struct diag_modmap m = { 0 };
	struct diag_error err = { 0 };
	CHECK_EQ_INT(diag_modmap_read(getpid(), &m, &err), 0);
	struct diag_location loc;
	CHECK_EQ_INT(resolve1(c, &m, "libc:getppid", &loc, &err), 0);
	CHECK_EQ_HEX(loc.addr, (uintptr_t)dlsym(RTLD_DEFAULT, "getppid"));
	CHECK_EQ_INT(resolve1(c, &m, "diag_sym_resolve", &loc, &err), 0);
	CHECK_EQ_HEX(loc.addr, (uintptr_t)&diag_sym_resolve);
	CHECK(loc.mod && loc.mod->is_main);
	diag_modmap_release(&m);
	diag_modmap_release(&m); /* idempotent */
	diag_modmap_release(NULL);
}

int main(void)
{
	const char *dir = getenv("DIAG_FIXTURE_DIR");
	if (!dir) {
		fprintf(stderr, "DIAG_FIXTURE_DIR is not set\n");
		return 1;
	}
	struct diag_symcache *c = NULL;
	CHECK_EQ_INT(diag_symcache_new(&c), 0);
	const char *variants[] = { "work-O2-pie", "work-O0-nopie", "work-O2-nopie", "work-O0-pie" };
	for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++)
		check_fixture(c, dir, variants[i]);
	/* A second process of an indexed binary adds no file to the cache. */
	size_t files = diag_symcache_count(c);
	check_fixture(c, dir, "work-O2-pie");
	CHECK_EQ_INT(diag_symcache_count(c), files);
	check_deleted(c, dir);
	check_self(c);

	struct diag_modmap gone = { 0 };
	struct diag_error err = { 0 };
	CHECK_EQ_INT(diag_modmap_read(999999999, &gone, &err), -DIAG_E_GONE);
	diag_symcache_free(c);
	diag_symcache_free(NULL);
	return CHECK_DONE();
}
