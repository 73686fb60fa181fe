/* unwind: call stacks of ptrace-stopped threads through libunwind-ptrace. Owns one libunwind
 * address space per process (created on first use, dropped by diag_unwinder_forget); never
 * symbolizes, never resumes a thread, and restores any register it set for a walk. */
#include "unwind/unwind.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <libunwind-ptrace.h>

#include "ptrace/tracee.h"
#include "util/u64map.h"

/* Register states cached per address space (libunwind's default is 256): one entry per
 * distinct pc seen in a walk, so hot stacks stop costing unwind-info lookups. */
#define UNWIND_RS_CACHE 2048

struct diag_unwinder {
	struct diag_u64map spaces; /* pid -> unw_addr_space_t */
};

int diag_unwinder_new(struct diag_unwinder **out)
{
	struct diag_unwinder *u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	diag_u64map_init(&u->spaces);
	*out = u;
	return 0;
}

void diag_unwinder_forget(struct diag_unwinder *u, pid_t pid)
{
	unw_addr_space_t as = u ? diag_u64map_del(&u->spaces, (uint64_t)pid) : NULL;
	if (as)
		unw_destroy_addr_space(as);
}

void diag_unwinder_free(struct diag_unwinder *u)
{
	if (!u)
		return;
	size_t pos = 0;
	uint64_t k;
	void *v;
	while (diag_u64map_next(&u->spaces, &pos, &k, &v))
		unw_destroy_addr_space(v);
	diag_u64map_release(&u->spaces);
	free(u);
}

/* Drop one cached process (any) to stay within the limit. */
static void evict_one(struct diag_unwinder *u)
{
	size_t pos = 0;
	uint64_t k;
	void *v;
	if (diag_u64map_next(&u->spaces, &pos, &k, &v))
		diag_unwinder_forget(u, (pid_t)k);
}

static int space_of(struct diag_unwinder *u, pid_t pid, unw_addr_space_t *out,
		    struct diag_error *err)
{
	unw_addr_space_t as = diag_u64map_get(&u->spaces, (uint64_t)pid);
	if (as) {
		*out = as;
		return 0;
	}
	if (u->spaces.count >= DIAG_UNWIND_MAX_PROCS)
		evict_one(u);
	as = unw_create_addr_space(&_UPT_accessors, 0);
	if (!as)
		return diag_error_set(err, -ENOMEM, "stack: out of memory (unwind address space)");
	/* a global (not per-thread) cache: one daemon thread walks every target thread */
	unw_set_caching_policy(as, UNW_CACHE_GLOBAL);
	unw_set_cache_size(as, UNWIND_RS_CACHE, 0);
	if (diag_u64map_put(&u->spaces, (uint64_t)pid, as) < 0) {
		unw_destroy_addr_space(as);
		return diag_error_set(err, -ENOMEM, "stack: out of memory");
	}
	*out = as;
	return 0;
}

/* libunwind-ptrace reads registers with PTRACE_PEEKUSER from the thread: give it regs. */
static int set_regs_for_walk(pid_t tid, const diag_regs *regs, diag_regs *saved, bool *changed,
			     struct diag_error *err)
{
	int r = diag_regs_read(tid, saved);
	if (r < 0)
		return diag_error_set(err, -DIAG_E_GONE, "stack: thread %d is not stopped (%s)",
				      (int)tid, strerror(-r));
	*changed = memcmp(saved, regs, sizeof(*regs)) != 0;
	if (*changed && (r = diag_regs_write(tid, regs)) < 0)
		return diag_error_set(err, -DIAG_E_GONE, "stack: thread %d: setting registers: %s",
				      (int)tid, strerror(-r));
	return 0;
}

/* Innermost first; returns 1 when callers remain past max, else 0. */
static int walk(unw_addr_space_t as, void *upt, int max, uint64_t *pcs, int *n)
{
	unw_cursor_t cur;
	*n = 0;
	if (unw_init_remote(&cur, as, upt) < 0)
		return 0;
	for (;;) {
		unw_word_t ip;
		if (unw_get_reg(&cur, UNW_REG_IP, &ip) < 0 || ip == 0)
			return 0;
		pcs[(*n)++] = ip;
		int r = unw_step(&cur);
		if (r <= 0)
			return 0;
		if (*n == max)
			return 1;
	}
}

int diag_unwind_stack(struct diag_unwinder *u, pid_t pid, pid_t tid,
		      const diag_regs *regs, int max_depth, uint64_t *pcs, int *n,
		      struct diag_error *err)
{
	if (max_depth < 1 || max_depth > DIAG_UNWIND_MAX_DEPTH)
		return diag_error_set(err, -DIAG_E_INVALID, "stack: depth %d is not in 1..%d",
				      max_depth, DIAG_UNWIND_MAX_DEPTH);
	unw_addr_space_t as;
	int r = space_of(u, pid, &as, err);
	if (r < 0)
		return r;
	diag_regs saved;
	bool changed = false;
	if ((r = set_regs_for_walk(tid, regs, &saved, &changed, err)) < 0)
		return r;
	/* per walk: it names the thread whose registers and memory libunwind reads */
	void *upt = _UPT_create(tid);
	int more = 0, found = 0;
	if (upt) {
		more = walk(as, upt, max_depth, pcs, &found);
		_UPT_destroy(upt);
	}
	if (changed)
		diag_regs_write(tid, &saved);
	if (!upt)
		return diag_error_set(err, -ENOMEM, "stack: out of memory (ptrace unwind state)");
	*n = found;
	return more;
}
