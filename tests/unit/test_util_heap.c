// SPDX-License-Identifier: MIT
/* Binary min-heap: pop order on random input, removal by index, back-indices after every step. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "tern/util_heap.h"

struct item {
	int key;
	size_t index;
};

static bool
item_less(const void *a, const void *b)
{
	return ((const struct item *)a)->key < ((const struct item *)b)->key;
}

static void
item_set_index(void *e, size_t index)
{
	((struct item *)e)->index = index;
}

/* Every stored element knows its slot and no child is smaller than its parent. */
static void
check_heap(const struct heap *h)
{
	size_t i;

	for (i = 0; i < h->n; i++) {
		const struct item *it = h->v[i];

		assert_int_equal(it->index, i);
		if (i > 0)
			assert_false(item_less(it, h->v[(i - 1) / 2]));
	}
}

static struct item *
random_items(size_t n, unsigned seed)
{
	struct item *items = calloc(n, sizeof(*items));
	size_t i;

	srand(seed);
	for (i = 0; i < n; i++)
		items[i].key = rand() % 500; /* duplicates on purpose */
	return items;
}

static void
test_pop_order_random(void **state)
{
	struct item *items = random_items(1000, 42);
	struct heap h;
	int last = -1;
	size_t i;

	heap_init(&h, item_less, item_set_index);
	assert_null(heap_peek(&h));
	assert_null(heap_pop(&h));
	for (i = 0; i < 1000; i++) {
		assert_int_equal(heap_push(&h, &items[i]), 0);
		check_heap(&h);
	}
	assert_int_equal(h.n, 1000);
	for (i = 0; i < 1000; i++) {
		struct item *top = heap_peek(&h), *it = heap_pop(&h);

		assert_ptr_equal(top, it);
		assert_true(it->key >= last);
		last = it->key;
		check_heap(&h);
	}
	assert_null(heap_pop(&h));
	heap_deinit(&h);
	free(items);
}

static void
test_remove_by_index(void **state)
{
	struct item *items = random_items(1000, 7);
	bool removed[1000] = {false};
	struct heap h;
	int last = -1;
	size_t i, left = 1000;

	heap_init(&h, item_less, item_set_index);
	for (i = 0; i < 1000; i++)
		assert_int_equal(heap_push(&h, &items[i]), 0);
	/* Remove every third item wherever it sits, through its own back-index. */
	for (i = 0; i < 1000; i += 3) {
		heap_remove(&h, items[i].index);
		removed[i] = true;
		left--;
		check_heap(&h);
	}
	assert_int_equal(h.n, left);
	while (h.n) {
		struct item *it = heap_pop(&h);

		assert_false(removed[it - items]);
		assert_true(it->key >= last);
		last = it->key;
		check_heap(&h);
	}
	heap_deinit(&h);
	free(items);
}

static void
test_remove_last_and_out_of_range(void **state)
{
	struct item a = {.key = 1}, b = {.key = 2};
	struct heap h;

	heap_init(&h, item_less, item_set_index);
	heap_push(&h, &b);
	heap_push(&h, &a);
	assert_int_equal(a.index, 0);
	assert_int_equal(b.index, 1);
	heap_remove(&h, 5); /* ignored */
	assert_int_equal(h.n, 2);
	heap_remove(&h, b.index);
	assert_int_equal(h.n, 1);
	assert_ptr_equal(heap_peek(&h), &a);
	check_heap(&h);
	heap_deinit(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pop_order_random),
	    cmocka_unit_test(test_remove_by_index),
	    cmocka_unit_test(test_remove_last_and_out_of_range),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
