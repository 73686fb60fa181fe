/* grow: the one way an array of diagnose grows. Doubling from a first capacity, checked for
 * overflow; the array is untouched when memory runs out. Owns no state. */
#ifndef DIAG_UTIL_GROW_H
#define DIAG_UTIL_GROW_H

#include <stddef.h>

/* Make room for at least `need` elements of `elem` bytes in *arr (capacity *cap, 0 for an
 * unallocated array): returns 0 (nothing done when need <= *cap) or -ENOMEM, leaving *arr and
 * *cap as they were. The new capacity is the first of first, 2*first, ... that holds need. */
int diag_grow(void **arr, size_t *cap, size_t need, size_t elem, size_t first);

/* diag_grow for a typed array: DIAG_GROW(&v, &cap, n + 1). */
#define DIAG_GROW(arrp, capp, need) diag_grow((void **)(arrp), (capp), (need), sizeof(**(arrp)), 8)

#endif
