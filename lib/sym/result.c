/* result: the result set of one resolution: locations distinct by address (aliases, C1/C2
 * constructors give one), the instances skipped with their reason, and how a location is
 * filled from a symbol. Called by every resolver (resolve*.c); calls nothing of lib/sym back.
 * Never looks a name up. */
#include "sym/sym_internal.h"

#include "util/grow.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sym_location_fill(struct diag_location *loc, const struct diag_module *mod,
		       const struct sym *s, uint64_t addr)
{
	memset(loc, 0, sizeof(*loc));
	loc->addr = addr;
	loc->mod = mod;
	if (!s)
		return;
	snprintf(loc->symbol, sizeof(loc->symbol), "%s", s->name);
	loc->func_start = s->addr + mod->bias;
	loc->func_end = loc->func_start + s->size;
	loc->offset = addr - loc->func_start;
	loc->ifunc = s->ifunc;
}

int sym_result_add(struct sym_result *r, const struct diag_location *loc)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->locs[i].addr == loc->addr)
			return 0;
	if (DIAG_GROW(&r->locs, &r->cap, r->n + 1))
		return -ENOMEM;
	r->locs[r->n++] = *loc;
	return 0;
}

int sym_result_skip(struct sym_result *r, const struct diag_module *mod, const char *what,
		    const char *reason)
{
	if (DIAG_GROW(&r->skips, &r->capskips, r->nskips + 1))
		return -ENOMEM;
	struct diag_skip *k = &r->skips[r->nskips++];
	memset(k, 0, sizeof(*k));
	k->mod = mod;
	snprintf(k->what, sizeof(k->what), "%s", what);
	snprintf(k->reason, sizeof(k->reason), "%s", reason);
	return 0;
}

void sym_result_free(struct sym_result *r)
{
	free(r->locs);
	free(r->skips);
	memset(r, 0, sizeof(*r));
}

int sym_result_give(struct sym_result *r, struct diag_location **out, size_t *n,
		    struct diag_skip **skips, size_t *nskips)
{
	*out = r->locs;
	*n = r->n;
	if (skips) {
		*skips = r->skips;
		*nskips = r->nskips;
	} else {
		free(r->skips);
	}
	memset(r, 0, sizeof(*r));
	return 0;
}
