/* SPDX-License-Identifier: MIT */
/* A string-keyed hash map (open addressing, linear probing); keys are copied. */
#ifndef TERN_UTIL_MAP_H
#define TERN_UTIL_MAP_H

#include <stddef.h>

struct map_slot;

struct map {
	struct map_slot *slots;
	size_t n, cap;
};

void map_init(struct map *m);
/* free_value (may be NULL) is called for every value. */
void map_deinit(struct map *m, void (*free_value)(void *));
void *map_get(const struct map *m, const char *key);
/* Insert or replace; returns the previous value (or NULL). *err is -ENOMEM on failure. */
void *map_put(struct map *m, const char *key, void *value, int *err);
/* Remove key; returns its value (or NULL when absent). */
void *map_del(struct map *m, const char *key);
/* Visit every entry. */
void map_foreach(const struct map *m, void (*fn)(const char *key, void *value, void *arg), void *arg);

#endif
