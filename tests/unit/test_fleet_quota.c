// SPDX-License-Identifier: MIT
/*
 * Shared counts (warm-up caps): the batch a node reserves at once is a
 * hundredth of the cap, at least one and at most 100; without Redis a
 * reservation is refused at once, never queued.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tern/fleet_quota.h"

static void
test_batch(void **st)
{
	(void)st;
	assert_int_equal(fleet_quota_batch(1), 1);
	assert_int_equal(fleet_quota_batch(60), 1);
	assert_int_equal(fleet_quota_batch(1000), 10);
	assert_int_equal(fleet_quota_batch(1001), 11);
	assert_int_equal(fleet_quota_batch(50000), 100);
}

static void
never(void *arg, int granted)
{
	(void)arg;
	(void)granted;
	fail();
}

static void
test_no_redis(void **st)
{
	(void)st;
	assert_false(fleet_quota_up());
	assert_int_equal(fleet_quota_reserve("warmup:ip:0", 100, 0, 1, 60, never, NULL), -ENOTCONN);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_batch),
		cmocka_unit_test(test_no_redis),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
