// SPDX-License-Identifier: MIT
/* Open-addressing string map with FNV-1a hashing; grows at 70% load, never shrinks. */
#include "tern/util_map.h"
#include "tern/util.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct map_slot {
	char *key;
	void *value;
	uint64_t hash;
};

void
map_init(struct map *m)
{
	m->slots = NULL;
	m->n = m->cap = 0;
}

void
map_deinit(struct map *m, void (*free_value)(void *))
{
	size_t i;

	for (i = 0; i < m->cap; i++) {
		if (m->slots[i].key == NULL)
			continue;
		free(m->slots[i].key);
		if (free_value)
			free_value(m->slots[i].value);
	}
	free(m->slots); m->slots = NULL;
	m->n = m->cap = 0;
}

static struct map_slot *
find_slot(struct map_slot *slots, size_t cap, const char *key, uint64_t h)
{
	size_t i = h & (cap - 1);

	while (slots[i].key && (slots[i].hash != h || strcmp(slots[i].key, key) != 0))
		i = (i + 1) & (cap - 1);
	return &slots[i];
}

static int
grow(struct map *m)
{
	size_t cap = m->cap ? m->cap * 2 : 16, i;
	struct map_slot *slots = calloc(cap, sizeof(*slots));

	if (slots == NULL)
		return -ENOMEM;
	for (i = 0; i < m->cap; i++)
		if (m->slots[i].key)
			*find_slot(slots, cap, m->slots[i].key, m->slots[i].hash) = m->slots[i];
	free(m->slots);
	m->slots = slots;
	m->cap = cap;
	return 0;
}

void *
map_get(const struct map *m, const char *key)
{
	struct map_slot *s;

	if (m->cap == 0)
		return NULL;
	s = find_slot(m->slots, m->cap, key, util_hash(key));
	return s->key ? s->value : NULL;
}

void *
map_put(struct map *m, const char *key, void *value, int *err)
{
	uint64_t h = util_hash(key);
	struct map_slot *s;
	void *old;

	*err = 0;
	if ((m->n + 1) * 10 > m->cap * 7 && (*err = grow(m)) < 0)
		return NULL;
	s = find_slot(m->slots, m->cap, key, h);
	if (s->key) {
		old = s->value;
		s->value = value;
		return old;
	}
	s->key = strdup(key);
	if (s->key == NULL) {
		*err = -ENOMEM;
		return NULL;
	}
	s->hash = h;
	s->value = value;
	m->n++;
	return NULL;
}

void
map_foreach(const struct map *m, void (*fn)(const char *key, void *value, void *arg), void *arg)
{
	size_t i;

	for (i = 0; i < m->cap; i++)
		if (m->slots[i].key)
			fn(m->slots[i].key, m->slots[i].value, arg);
}

/*
 * Backward-shift deletion: each later entry of the probe run moves into the
 * hole when the hole lies on its path from its home slot, so lookups never
 * meet a gap inside a run and no tombstones accumulate.
 */
void *
map_del(struct map *m, const char *key)
{
	size_t mask = m->cap - 1, i, j, home;
	struct map_slot *s;
	void *value;

	if (m->cap == 0)
		return NULL;
	s = find_slot(m->slots, m->cap, key, util_hash(key));
	if (s->key == NULL)
		return NULL;
	value = s->value;
	free(s->key);
	i = j = (size_t)(s - m->slots);
	for (;;) {
		j = (j + 1) & mask;
		if (m->slots[j].key == NULL)
			break;
		home = m->slots[j].hash & mask;
		if (((j - home) & mask) >= ((j - i) & mask)) {
			m->slots[i] = m->slots[j];
			i = j;
		}
	}
	memset(&m->slots[i], 0, sizeof(m->slots[i]));
	m->n--;
	return value;
}
