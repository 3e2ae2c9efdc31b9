// SPDX-License-Identifier: MIT
/* Egress, pure part: smooth weighted round-robin (sequence, distribution, skipping). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tern/egress.h"

#define MAXW 8

struct wrr_fixture {
	struct wrr w;
	int weight[MAXW];
	int current[MAXW];
};

static void
wrr_setup(struct wrr_fixture *f, const int *weights, size_t n)
{
	memset(f, 0, sizeof(*f));
	memcpy(f->weight, weights, n * sizeof(*weights));
	f->w.n = n;
	f->w.weight = f->weight;
	f->w.current = f->current;
}

static void
test_nginx_sequence(void **state)
{
	static const int weights[] = {5, 1, 1};
	struct wrr_fixture f;
	char seq[15] = "";
	int i;

	wrr_setup(&f, weights, 3);
	for (i = 0; i < 14; i++)
		seq[i] = (char)('a' + wrr_next(&f.w, NULL));
	/* nginx's documented order for 5,1,1; the cycle then repeats. */
	assert_string_equal(seq, "aabacaaaabacaa");
	for (i = 0; i < 3; i++)
		assert_int_equal(f.current[i], 0);
}

static void
test_distribution_exact_per_cycle(void **state)
{
	static const int weights[] = {7, 3, 2, 1, 1};
	struct wrr_fixture f;
	int count[5] = {0}, cycle, i, run = 0, last = -1, longest = 0;

	wrr_setup(&f, weights, 5);
	for (cycle = 0; cycle < 10; cycle++) {
		memset(count, 0, sizeof(count));
		for (i = 0; i < 14; i++) {
			int p = wrr_next(&f.w, NULL);

			count[p]++;
			run = p == last ? run + 1 : 1;
			last = p;
			if (run > longest)
				longest = run;
		}
		for (i = 0; i < 5; i++)
			assert_int_equal(count[i], weights[i]);
	}
	/* Smooth: the heaviest entry never runs 7 times in a row. */
	assert_true(longest <= 2);
}

static void
test_skip_excludes(void **state)
{
	static const int weights[] = {5, 1, 1};
	bool skip[3] = {true, false, false};
	struct wrr_fixture f;
	int count[3] = {0}, i;

	wrr_setup(&f, weights, 3);
	for (i = 0; i < 100; i++)
		count[wrr_next(&f.w, skip)]++;
	assert_int_equal(count[0], 0);
	assert_int_equal(count[1], 50);
	assert_int_equal(count[2], 50);
	skip[0] = false;
	skip[2] = true;
	for (i = 0; i < 60; i++)
		assert_int_not_equal(wrr_next(&f.w, skip), 2);
}

static void
test_all_skipped_or_empty(void **state)
{
	static const int weights[] = {2, 3};
	bool skip[2] = {true, true};
	struct wrr_fixture f;

	wrr_setup(&f, weights, 2);
	assert_int_equal(wrr_next(&f.w, skip), -1);
	assert_int_equal(f.current[0], 0); /* a refused pick changes nothing */
	assert_int_equal(f.current[1], 0);
	wrr_setup(&f, weights, 0);
	assert_int_equal(wrr_next(&f.w, NULL), -1);
}

static void
test_single_entry(void **state)
{
	static const int weights[] = {3};
	struct wrr_fixture f;
	int i;

	wrr_setup(&f, weights, 1);
	for (i = 0; i < 10; i++)
		assert_int_equal(wrr_next(&f.w, NULL), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_nginx_sequence),
	    cmocka_unit_test(test_distribution_exact_per_cycle),
	    cmocka_unit_test(test_skip_excludes),
	    cmocka_unit_test(test_all_skipped_or_empty),
	    cmocka_unit_test(test_single_entry),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
