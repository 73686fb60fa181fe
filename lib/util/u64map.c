/* u64map: open addressing with linear probing and tombstones (see u64map.h). */
#include "util/u64map.h"

#include <errno.h>
#include <stdlib.h>

/* A removed entry keeps probing chains intact; any unique non-NULL address works. */
static const char tombstone_marker;
#define TOMB ((void *)(uintptr_t)&tombstone_marker)

static size_t slot_of(uint64_t key, size_t cap)
{
	key ^= key >> 33;
	key *= 0xff51afd7ed558ccdULL;
	key ^= key >> 33;
	return (size_t)key & (cap - 1);
}

void diag_u64map_init(struct diag_u64map *m)
{
	m->keys = NULL;
	m->vals = NULL;
	m->cap = m->used = m->count = 0;
}

void diag_u64map_release(struct diag_u64map *m)
{
	if (!m)
		return;
	free(m->keys);
	free(m->vals);
	diag_u64map_init(m);
}

static int grow(struct diag_u64map *m)
{
	size_t ncap = m->cap ? m->cap * 2 : 16;
	while (m->count * 2 >= ncap)
		ncap *= 2;
	uint64_t *keys = calloc(ncap, sizeof(*keys));
	void **vals = calloc(ncap, sizeof(*vals));
	if (!keys || !vals) {
		free(keys);
		free(vals);
		return -ENOMEM;
	}
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->vals[i] || m->vals[i] == TOMB)
			continue;
		size_t s = slot_of(m->keys[i], ncap);
		while (vals[s])
			s = (s + 1) & (ncap - 1);
		keys[s] = m->keys[i];
		vals[s] = m->vals[i];
	}
	free(m->keys);
	free(m->vals);
	m->keys = keys;
	m->vals = vals;
	m->cap = ncap;
	m->used = m->count;
	return 0;
}

int diag_u64map_put(struct diag_u64map *m, uint64_t key, void *val)
{
	if ((m->used + 1) * 4 >= m->cap * 3) {
		int r = grow(m);
		if (r < 0)
			return r;
	}
	size_t s = slot_of(key, m->cap), tomb = SIZE_MAX;
	while (m->vals[s]) {
		if (m->vals[s] == TOMB) {
			if (tomb == SIZE_MAX)
				tomb = s;
		} else if (m->keys[s] == key) {
			m->vals[s] = val;
			return 0;
		}
		s = (s + 1) & (m->cap - 1);
	}
	if (tomb != SIZE_MAX)
		s = tomb;
	else
		m->used++;
	m->keys[s] = key;
	m->vals[s] = val;
	m->count++;
	return 0;
}

static size_t find(const struct diag_u64map *m, uint64_t key)
{
	if (!m->cap)
		return SIZE_MAX;
	size_t s = slot_of(key, m->cap);
	while (m->vals[s]) {
		if (m->vals[s] != TOMB && m->keys[s] == key)
			return s;
		s = (s + 1) & (m->cap - 1);
	}
	return SIZE_MAX;
}

void *diag_u64map_get(const struct diag_u64map *m, uint64_t key)
{
	size_t s = find(m, key);
	return s == SIZE_MAX ? NULL : m->vals[s];
}

void *diag_u64map_del(struct diag_u64map *m, uint64_t key)
{
	size_t s = find(m, key);
	if (s == SIZE_MAX)
		return NULL;
	void *v = m->vals[s];
	m->vals[s] = TOMB;
	m->count--;
	return v;
}

int diag_u64map_next(const struct diag_u64map *m, size_t *pos, uint64_t *key, void **val)
{
	for (; *pos < m->cap; (*pos)++) {
		void *v = m->vals[*pos];
		if (v && v != TOMB) {
			*key = m->keys[*pos];
			*val = v;
			(*pos)++;
			return 1;
		}
	}
	return 0;
}
