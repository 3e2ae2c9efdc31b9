// SPDX-License-Identifier: MIT
/* Decaying failure counts per client address (AUTH brute-force limits). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "tern/penalty.h"

static int
reset(void **state)
{
	penalty_reset();
	return 0;
}

static void
test_limit_reached_within_window(void **state)
{
	struct penalty_rule r = {.limit = 3, .window = 300};
	int i;

	for (i = 0; i < 2; i++) {
		penalty_add(&r, "192.0.2.1", 100 + i);
		assert_false(penalty_over(&r, "192.0.2.1", 100 + i));
	}
	penalty_add(&r, "192.0.2.1", 102);
	assert_true(penalty_over(&r, "192.0.2.1", 102));
	/* Another address is not affected. */
	assert_false(penalty_over(&r, "192.0.2.2", 102));
}

static void
test_count_decays(void **state)
{
	struct penalty_rule r = {.limit = 10, .window = 300};
	int i;

	for (i = 0; i < 10; i++)
		penalty_add(&r, "2001:db8::1", 1000);
	assert_true(penalty_over(&r, "2001:db8::1", 1000));
	/* One attempt comes back every window/limit = 30 s. */
	assert_true(penalty_over(&r, "2001:db8::1", 1029));
	assert_false(penalty_over(&r, "2001:db8::1", 1031));
	assert_false(penalty_over(&r, "2001:db8::1", 1400));
}

static void
test_disabled_rule(void **state)
{
	struct penalty_rule r = {.limit = 0, .window = 300};

	penalty_add(&r, "192.0.2.1", 0);
	assert_false(penalty_over(&r, "192.0.2.1", 0));
}

/* Many addresses never grow the table; the most recent failures are still remembered. */
static void
test_bounded_table(void **state)
{
	struct penalty_rule r = {.limit = 2, .window = 300};
	char addr[64];
	int i;

	for (i = 0; i < 100000; i++) {
		snprintf(addr, sizeof(addr), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		penalty_add(&r, addr, 5);
	}
	penalty_add(&r, "198.51.100.7", 6);
	penalty_add(&r, "198.51.100.7", 6);
	assert_true(penalty_over(&r, "198.51.100.7", 6));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_limit_reached_within_window, reset),
	    cmocka_unit_test_setup(test_count_decays, reset),
	    cmocka_unit_test_setup(test_disabled_rule, reset),
	    cmocka_unit_test_setup(test_bounded_table, reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
