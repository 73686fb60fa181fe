/* dwarf_index: times diagnose's DWARF indexing of one binary (bench/dwarf.sh). Builds the index
 * of BINARY from scratch (a new cache: nothing shared with an earlier run) and lists the scope
 * at file address ADDR, as `diagnosectl vars` does; then lists it again from the built index.
 * usage: dwarf_index BINARY ADDR   ->  "index_ms T vars N" and "cached_ms T"
 * Not a test; the library stays quiet, this tool prints. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "expr/expr.h"

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void count_var(void *arg, const struct diag_expr_var_info *v)
{
	(void)v;
	++*(int *)arg;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: dwarf_index BINARY ADDR\n");
		return 2;
	}
	struct diag_dwarf_cache *dc = NULL;
	struct diag_error err = { 0 };
	struct diag_expr_scope sc = { .pid = 0, .elf_path = argv[1], .build_id = "",
				      .pc = strtoull(argv[2], NULL, 0), .event = DIAG_EVENT_CALL };
	double t0 = now_ms();
	if (diag_dwarf_cache_new(&dc) < 0)
		return 1;
	sc.dwarf = dc;
	int nvars = 0;
	int n = diag_expr_list_scope(&sc, count_var, &nvars, &err);
	double t1 = now_ms();
	if (n < 0) {
		fprintf(stderr, "dwarf_index: %s\n", err.msg);
		diag_dwarf_cache_free(dc);
		return 1;
	}
	n = diag_expr_list_scope(&sc, count_var, &nvars, &err);
	double t2 = now_ms();
	printf("index_ms %.1f vars %d\ncached_ms %.3f\n", t1 - t0, n, t2 - t1);
	diag_dwarf_cache_free(dc);
	return 0;
}
