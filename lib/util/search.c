/* search: see search.h. */
#include "util/search.h"

#include <stdlib.h>
#include <string.h>

size_t diag_upper_bound_u64(const void *base, size_t n, size_t elem, size_t off, uint64_t key)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uint64_t v;
		memcpy(&v, (const char *)base + mid * elem + off, sizeof(v));
		if (v <= key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

bool diag_sorted(const void *base, size_t n, size_t elem, int (*cmp)(const void *, const void *))
{
	const char *p = base;
	for (size_t i = 1; i < n; i++)
		if (cmp(p + (i - 1) * elem, p + i * elem) > 0)
			return false;
	return true;
}

void diag_sort(void *base, size_t n, size_t elem, int (*cmp)(const void *, const void *))
{
	if (n > 1 && !diag_sorted(base, n, elem, cmp))
		qsort(base, n, elem, cmp);
}
