/* SPDX-License-Identifier: MIT */
/*
 * A binary min-heap of pointers. Each element records its own position
 * (through set_index) so that it can be removed or re-prioritised in
 * O(log n) without a search.
 */
#ifndef TERN_UTIL_HEAP_H
#define TERN_UTIL_HEAP_H

#include <stdbool.h>
#include <stddef.h>

typedef bool (*heap_less_fn)(const void *a, const void *b);
typedef void (*heap_index_fn)(void *elem, size_t index);

struct heap {
	void **v;
	size_t n, cap;
	heap_less_fn less;
	heap_index_fn set_index;
};

void heap_init(struct heap *h, heap_less_fn less, heap_index_fn set_index);
void heap_deinit(struct heap *h);
int heap_push(struct heap *h, void *elem); /* 0 or -ENOMEM */
void *heap_peek(const struct heap *h);
void *heap_pop(struct heap *h);
void heap_remove(struct heap *h, size_t index);

#endif
