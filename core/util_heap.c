// SPDX-License-Identifier: MIT
/* Binary min-heap with back-indices. */
#include "tern/util_heap.h"

#include <errno.h>
#include <stdlib.h>

void
heap_init(struct heap *h, heap_less_fn less, heap_index_fn set_index)
{
	h->v = NULL;
	h->n = h->cap = 0;
	h->less = less;
	h->set_index = set_index;
}

void
heap_deinit(struct heap *h)
{
	free(h->v); h->v = NULL;
	h->n = h->cap = 0;
}

static void
heap_place(struct heap *h, size_t i, void *e)
{
	h->v[i] = e;
	h->set_index(e, i);
}

static void
sift_up(struct heap *h, size_t i)
{
	void *e = h->v[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (!h->less(e, h->v[parent]))
			break;
		heap_place(h, i, h->v[parent]);
		i = parent;
	}
	heap_place(h, i, e);
}

static void
sift_down(struct heap *h, size_t i)
{
	void *e = h->v[i];

	for (;;) {
		size_t child = 2 * i + 1;

		if (child >= h->n)
			break;
		if (child + 1 < h->n && h->less(h->v[child + 1], h->v[child]))
			child++;
		if (!h->less(h->v[child], e))
			break;
		heap_place(h, i, h->v[child]);
		i = child;
	}
	heap_place(h, i, e);
}

int
heap_push(struct heap *h, void *elem)
{
	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 16;
		void **v = realloc(h->v, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		h->v = v;
		h->cap = cap;
	}
	h->v[h->n] = elem;
	sift_up(h, h->n++);
	return 0;
}

void *
heap_peek(const struct heap *h)
{
	return h->n ? h->v[0] : NULL;
}

void
heap_remove(struct heap *h, size_t index)
{
	if (index >= h->n)
		return;
	h->n--;
	if (index == h->n)
		return;
	h->v[index] = h->v[h->n];
	h->set_index(h->v[index], index);
	sift_down(h, index);
	sift_up(h, index);
}

void *
heap_pop(struct heap *h)
{
	void *top = heap_peek(h);

	if (top)
		heap_remove(h, 0);
	return top;
}
