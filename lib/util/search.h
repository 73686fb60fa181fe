/* search: binary search over a sorted array of records by a uint64_t member (an address), the
 * one written for the symbol table, the DWARF scopes and the rest. Owns no state. */
#ifndef DIAG_UTIL_SEARCH_H
#define DIAG_UTIL_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The first index of base[0..n) (records of elem bytes, sorted by the uint64_t at byte off)
 * whose key is greater than key; n when none is. */
size_t diag_upper_bound_u64(const void *base, size_t n, size_t elem, size_t off, uint64_t key);

/* Whether base[0..n) is already in cmp's order: tables read from a file mostly are (symbols and
 * DIEs come in address order), and the check is one pass where qsort would be n log n calls. */
bool diag_sorted(const void *base, size_t n, size_t elem, int (*cmp)(const void *, const void *));
/* qsort unless already sorted. */
void diag_sort(void *base, size_t n, size_t elem, int (*cmp)(const void *, const void *));

#endif
