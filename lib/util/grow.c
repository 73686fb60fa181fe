/* grow: see grow.h. Owns no state. */
#include "util/grow.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

int diag_grow(void **arr, size_t *cap, size_t need, size_t elem, size_t first)
{
	if (need <= *cap)
		return 0;
	size_t c = *cap ? *cap : (first ? first : 1);
	while (c < need) {
		if (c > SIZE_MAX / 2)
			return -ENOMEM;
		c *= 2;
	}
	if (elem && c > SIZE_MAX / elem)
		return -ENOMEM;
	void *v = realloc(*arr, c * elem);
	if (!v)
		return -ENOMEM;
	*arr = v;
	*cap = c;
	return 0;
}
