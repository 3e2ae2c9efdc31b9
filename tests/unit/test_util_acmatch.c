// SPDX-License-Identifier: MIT
/* The multi-literal matcher: overlapping literals, shared prefixes, repeats, empty input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tern/util_acmatch.h"

struct hits {
	int count[8];
};

static void
hit(uint32_t id, void *arg)
{
	((struct hits *)arg)->count[id]++;
}

static struct hits
scan(const char *const *lits, int n, const char *text)
{
	struct acmatch *m = acmatch_new();
	struct hits h = {{0}};
	int i;

	assert_non_null(m);
	for (i = 0; i < n; i++)
		assert_int_equal(acmatch_add(m, lits[i], strlen(lits[i]), (uint32_t)i), 0);
	assert_int_equal(acmatch_build(m), 0);
	acmatch_scan(m, text, strlen(text), hit, &h);
	acmatch_free(m);
	return h;
}

static void
test_overlapping(void **state)
{
	static const char *const lits[] = {"he", "she", "his", "hers", "zzz"};
	struct hits h = scan(lits, 5, "ushers and his");

	assert_int_equal(h.count[0], 1); /* he in ushers */
	assert_int_equal(h.count[1], 1);
	assert_int_equal(h.count[2], 1);
	assert_int_equal(h.count[3], 1);
	assert_int_equal(h.count[4], 0);
}

static void
test_repeats_and_suffixes(void **state)
{
	static const char *const lits[] = {"a", "aa", "user unknown", "unknown"};
	struct hits h = scan(lits, 4, "aaa: user unknown");

	assert_int_equal(h.count[0], 3);
	assert_int_equal(h.count[1], 2);
	assert_int_equal(h.count[2], 1);
	assert_int_equal(h.count[3], 1);
}

static void
test_empty_and_bytes(void **state)
{
	static const char *const lits[] = {"\xff\x01", "x"};
	struct acmatch *m = acmatch_new();
	struct hits h = scan(lits, 2, "");

	assert_int_equal(h.count[0] + h.count[1], 0);
	h = scan(lits, 2, "a\xff\x01x");
	assert_int_equal(h.count[0], 1);
	assert_int_equal(h.count[1], 1);
	assert_int_equal(acmatch_add(m, "", 0, 0), -22);
	assert_int_equal(acmatch_build(m), 0); /* no literals: scans find nothing */
	acmatch_scan(m, "abc", 3, hit, &h);
	acmatch_free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_overlapping),
		cmocka_unit_test(test_repeats_and_suffixes),
		cmocka_unit_test(test_empty_and_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
