/* xol_page: the "diagnose pages" mapped into a target to hold execute-out-of-line slots.
 * Owns choosing an address within reach of a module (pc-relative operands need it; x86-64:
 * rip-relative, +-2 GiB), the remote mmap/munmap, and slot allocation. Slots are never reused
 * while attached: a thread may still be running inside a slot of a just-removed breakpoint.
 * Never writes outside the pages it mapped. */
#ifndef DIAG_BP_XOL_PAGE_H
#define DIAG_BP_XOL_PAGE_H

#include <stddef.h>
#include <stdint.h>

#include "ptrace/tracee.h"

#define DIAG_XOL_REGION_SIZE (64 * 1024)

struct diag_xol_region {
	uint64_t base;
	size_t used;
};

struct diag_xol {
	struct diag_xol_region *regions;
	size_t n, cap;
};

/* Allocate len bytes of slot space reachable from `near` (within 1.5 GiB), mapping a new
 * region with thread t (stopped) when needed. Returns 0 and *slot or -errno. */
int diag_xol_alloc(struct diag_xol *x, struct diag_thread *t, uint64_t near, size_t len,
		   uint64_t *slot);
/* A capture trampoline's slot (arch/trampoline.h): one DIAG_TRAMP_SLOT page of its own,
 * read+exec, within reach of `near`, mapped with thread t (stopped). Each slot page is its own
 * mapping so that it can be unmapped alone when its probe is gone. Returns 0 and *page or
 * -errno (-ENOSPC: no free gap within reach). */
int diag_xol_map_page(struct diag_thread *t, uint64_t near, uint64_t *page);
/* Unmap one page diag_xol_map_page mapped (t stopped). Returns 0 or -errno. */
int diag_xol_unmap_page(struct diag_thread *t, uint64_t page);
/* True when addr lies inside one of the regions. */
const struct diag_xol_region *diag_xol_find(const struct diag_xol *x, uint64_t addr);
/* Unmap every region with stopped thread t (t may be NULL to forget them only). */
void diag_xol_unmap_all(struct diag_xol *x, struct diag_thread *t);
int diag_xol_clone(struct diag_xol *dst, const struct diag_xol *src);
void diag_xol_release(struct diag_xol *x);

#endif
