/* xol_page: slot pages in the target (see xol_page.h). */
#include "bp/xol_page.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "arch/trampoline.h"
#include "util/grow.h"
#include "util/procfs.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define REACH (3ULL << 29) /* 1.5 GiB: leaves room for displacements inside the module */
#define SLOT_ALIGN 16

static uint64_t dist(uint64_t a, uint64_t b)
{
	return a > b ? a - b : b - a;
}

/* Free gaps of at least size bytes from /proc/PID/maps: the candidate start closest to `near` in each gap. */
static int pick_candidates(pid_t pid, uint64_t near, size_t size, uint64_t *cand, size_t cap,
			   size_t *n)
{
	struct diag_proc_maps maps;
	struct diag_proc_map m;
	int r = diag_proc_maps_open(pid, &maps);
	if (r < 0)
		return r;
	uint64_t prev_end = 0x10000; /* stay clear of mmap_min_addr */
	*n = 0;
	for (int last = 0; !last;) {
		uint64_t lo, hi;
		if (diag_proc_maps_next(&maps, &m)) {
			lo = m.start;
			hi = m.end;
		} else {
			last = 1;
			lo = 0x7ffffffff000ULL; /* top of the user address space */
			hi = lo;
		}
		if (lo > prev_end && lo - prev_end >= size && *n < cap) {
			uint64_t c = near < prev_end ? prev_end
				     : near + size > lo ? lo - size : (near & ~0xfffULL);
			if (dist(c, near) < REACH)
				cand[(*n)++] = c;
		}
		if (hi > prev_end)
			prev_end = hi;
	}
	diag_proc_maps_close(&maps);
	/* closest first */
	for (size_t i = 1; i < *n; i++)
		for (size_t j = i; j > 0 && dist(cand[j], near) < dist(cand[j - 1], near); j--) {
			uint64_t t = cand[j];
			cand[j] = cand[j - 1];
			cand[j - 1] = t;
		}
	return 0;
}

/* Map size bytes read+exec at the free address closest to near; *at where. */
static int map_near(struct diag_thread *t, uint64_t near, size_t size, uint64_t *at)
{
	uint64_t cand[64];
	size_t n = 0;
	int r = pick_candidates(t->proc->pid, near, size, cand, 64, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		/* Read+exec only: the daemon writes slots through /proc/PID/mem, the target never
		 * can. */
		long args[6] = {(long)cand[i], (long)size, PROT_READ | PROT_EXEC,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0};
		long ret;
		r = diag_thread_syscall(t, SYS_mmap, args, &ret);
		if (r < 0)
			return r;
		if (ret < 0 && ret > -4096)
			continue; /* EEXIST: raced with the target's own mmap */
		if ((uint64_t)ret != cand[i]) { /* a kernel ignoring NOREPLACE: not ours to keep */
			long un[6] = {ret, (long)size, 0, 0, 0, 0};
			diag_thread_syscall(t, SYS_munmap, un, &ret);
			continue;
		}
		*at = cand[i];
		return 0;
	}
	return -ENOSPC;
}

static int map_region(struct diag_xol *x, struct diag_thread *t, uint64_t near)
{
	uint64_t base;
	int r = map_near(t, near, DIAG_XOL_REGION_SIZE, &base);
	if (r < 0)
		return r;
	if (DIAG_GROW(&x->regions, &x->cap, x->n + 1) < 0) {
		long un[6] = {(long)base, DIAG_XOL_REGION_SIZE, 0, 0, 0, 0}, ret;
		diag_thread_syscall(t, SYS_munmap, un, &ret);
		return -ENOMEM;
	}
	x->regions[x->n++] = (struct diag_xol_region){.base = base, .used = 0};
	return 0;
}

int diag_xol_map_page(struct diag_thread *t, uint64_t near, uint64_t *page)
{
	return map_near(t, near, DIAG_TRAMP_SLOT, page);
}

int diag_xol_unmap_page(struct diag_thread *t, uint64_t page)
{
	long args[6] = {(long)page, DIAG_TRAMP_SLOT, 0, 0, 0, 0}, ret;
	int r = diag_thread_syscall(t, SYS_munmap, args, &ret);
	return r < 0 ? r : ret < 0 ? (int)ret : 0;
}

int diag_xol_alloc(struct diag_xol *x, struct diag_thread *t, uint64_t near, size_t len,
		   uint64_t *slot)
{
	len = (len + SLOT_ALIGN - 1) & ~(size_t)(SLOT_ALIGN - 1);
	for (int attempt = 0; attempt < 2; attempt++) {
		for (size_t i = 0; i < x->n; i++) {
			struct diag_xol_region *r = &x->regions[i];
			if (dist(r->base, near) < REACH && r->used + len <= DIAG_XOL_REGION_SIZE) {
				*slot = r->base + r->used;
				r->used += len;
				return 0;
			}
		}
		if (attempt == 0) {
			if (!t)
				return -EAGAIN;
			int rc = map_region(x, t, near);
			if (rc < 0)
				return rc;
		}
	}
	return -ENOSPC;
}

const struct diag_xol_region *diag_xol_find(const struct diag_xol *x, uint64_t addr)
{
	for (size_t i = 0; i < x->n; i++)
		if (addr >= x->regions[i].base && addr < x->regions[i].base + DIAG_XOL_REGION_SIZE)
			return &x->regions[i];
	return NULL;
}

void diag_xol_unmap_all(struct diag_xol *x, struct diag_thread *t)
{
	for (size_t i = 0; t && i < x->n; i++) {
		long args[6] = {(long)x->regions[i].base, DIAG_XOL_REGION_SIZE, 0, 0, 0, 0}, ret;
		diag_thread_syscall(t, SYS_munmap, args, &ret);
	}
	diag_xol_release(x);
}

int diag_xol_clone(struct diag_xol *dst, const struct diag_xol *src)
{
	*dst = (struct diag_xol){0};
	if (!src->n)
		return 0;
	if (DIAG_GROW(&dst->regions, &dst->cap, src->n) < 0)
		return -ENOMEM;
	memcpy(dst->regions, src->regions, src->n * sizeof(*dst->regions));
	dst->n = src->n;
	return 0;
}

void diag_xol_release(struct diag_xol *x)
{
	free(x->regions);
	*x = (struct diag_xol){0};
}
