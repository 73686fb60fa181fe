/* u64map: an open-addressing hash map from uint64_t keys to pointers. Used on the hit path
 * (breakpoint by address, thread by tid), so lookups never allocate. Owns only its table,
 * never the values. */
#ifndef DIAG_UTIL_U64MAP_H
#define DIAG_UTIL_U64MAP_H

#include <stddef.h>
#include <stdint.h>

struct diag_u64map {
	uint64_t *keys;
	void **vals;   /* NULL = empty slot; a removed entry becomes a tombstone marker */
	size_t cap;    /* power of two */
	size_t used;   /* live + tombstones */
	size_t count;  /* live */
};

void diag_u64map_init(struct diag_u64map *m);
void diag_u64map_release(struct diag_u64map *m);
/* Returns 0 or -ENOMEM. Replaces an existing value. val must not be NULL. */
int diag_u64map_put(struct diag_u64map *m, uint64_t key, void *val);
void *diag_u64map_get(const struct diag_u64map *m, uint64_t key);
/* Returns the removed value or NULL. */
void *diag_u64map_del(struct diag_u64map *m, uint64_t key);
/* Iterate: start with *pos = 0; returns 1 and sets key/val while entries remain. */
int diag_u64map_next(const struct diag_u64map *m, size_t *pos, uint64_t *key, void **val);

#endif
