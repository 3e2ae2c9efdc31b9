// SPDX-License-Identifier: MIT
/* String map: put/get/replace, growth with many keys, foreach coverage, values freed by deinit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tern/util_map.h"

static void
test_put_get_replace(void **state)
{
	struct map m;
	int a = 1, b = 2, err = 1;
	char key[] = "alpha";

	map_init(&m);
	assert_null(map_get(&m, "alpha"));
	assert_null(map_put(&m, key, &a, &err));
	assert_int_equal(err, 0);
	key[0] = 'X'; /* the map holds its own copy of the key */
	assert_ptr_equal(map_get(&m, "alpha"), &a);
	assert_null(map_get(&m, "Xlpha"));
	assert_null(map_get(&m, "alph"));
	assert_ptr_equal(map_put(&m, "alpha", &b, &err), &a);
	assert_int_equal(err, 0);
	assert_ptr_equal(map_get(&m, "alpha"), &b);
	assert_int_equal(m.n, 1);
	assert_null(map_put(&m, "", &a, &err));
	assert_ptr_equal(map_get(&m, ""), &a);
	assert_int_equal(m.n, 2);
	map_deinit(&m, NULL);
	assert_int_equal(m.n, 0);
	assert_null(map_get(&m, "alpha"));
}

#define MANY 5000

static void
test_many_keys_grow(void **state)
{
	static int vals[MANY];
	struct map m;
	char key[32];
	int i, err;

	map_init(&m);
	for (i = 0; i < MANY; i++) {
		snprintf(key, sizeof(key), "key-%d", i);
		vals[i] = i;
		assert_null(map_put(&m, key, &vals[i], &err));
		assert_int_equal(err, 0);
	}
	assert_int_equal(m.n, MANY);
	assert_true(m.cap * 7 >= m.n * 10); /* load stays at or under 70% */
	for (i = 0; i < MANY; i++) {
		snprintf(key, sizeof(key), "key-%d", i);
		assert_ptr_equal(map_get(&m, key), &vals[i]);
	}
	assert_null(map_get(&m, "key-5000"));
	map_deinit(&m, NULL);
}

/* Deleting keeps every other key reachable (probe runs stay whole), and reuses the slots. */
static void
test_delete(void **state)
{
	static int vals[MANY];
	struct map m;
	char key[32];
	int i, err;

	map_init(&m);
	assert_null(map_del(&m, "absent"));
	for (i = 0; i < MANY; i++) {
		snprintf(key, sizeof(key), "key-%d", i);
		map_put(&m, key, &vals[i], &err);
	}
	for (i = 0; i < MANY; i += 3) {
		snprintf(key, sizeof(key), "key-%d", i);
		assert_ptr_equal(map_del(&m, key), &vals[i]);
		assert_null(map_del(&m, key));
	}
	assert_int_equal(m.n, MANY - (MANY + 2) / 3);
	for (i = 0; i < MANY; i++) {
		snprintf(key, sizeof(key), "key-%d", i);
		assert_ptr_equal(map_get(&m, key), i % 3 ? &vals[i] : NULL);
	}
	/* Churn without growth: a map whose keys come and go stays its size. */
	for (i = 0; i < 20 * MANY; i++) {
		snprintf(key, sizeof(key), "churn-%d", i);
		map_put(&m, key, &vals[0], &err);
		assert_ptr_equal(map_del(&m, key), &vals[0]);
	}
	assert_true(m.cap <= 8192);
	map_deinit(&m, NULL);
}

struct visit {
	unsigned char seen[MANY];
	int calls;
};

static void
visit_one(const char *key, void *value, void *arg)
{
	struct visit *v = arg;
	int i = *(int *)value;
	char want[32];

	snprintf(want, sizeof(want), "k%d", i);
	assert_string_equal(key, want);
	v->seen[i]++;
	v->calls++;
}

static void
test_foreach_visits_all(void **state)
{
	static int vals[1000];
	static struct visit v;
	struct map m;
	char key[32];
	int i, err;

	map_init(&m);
	map_foreach(&m, visit_one, &v); /* empty map: no calls */
	assert_int_equal(v.calls, 0);
	for (i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		vals[i] = i;
		map_put(&m, key, &vals[i], &err);
	}
	map_foreach(&m, visit_one, &v);
	assert_int_equal(v.calls, 1000);
	for (i = 0; i < 1000; i++)
		assert_int_equal(v.seen[i], 1);
	map_deinit(&m, NULL);
}

static int freed;

static void
count_free(void *p)
{
	freed++;
	free(p);
}

static void
test_deinit_frees_values(void **state)
{
	struct map m;
	char key[32];
	int i, err;

	map_init(&m);
	for (i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "v%d", i);
		map_put(&m, key, malloc(16), &err);
	}
	/* A replaced value goes back to the caller, so only the current ones are freed. */
	free(map_put(&m, "v0", malloc(16), &err));
	freed = 0;
	map_deinit(&m, count_free);
	assert_int_equal(freed, 100);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_put_get_replace),
	    cmocka_unit_test(test_many_keys_grow),
	    cmocka_unit_test(test_delete),
	    cmocka_unit_test(test_foreach_visits_all),
	    cmocka_unit_test(test_deinit_frees_values),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
