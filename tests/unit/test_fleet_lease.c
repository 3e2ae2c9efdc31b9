// SPDX-License-Identifier: MIT
/*
 * Shared connection limits while Redis is away: each node's share of the
 * fleet's limit, never zero (a node must go on delivering).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tern/fleet_lease.h"

static void
test_alone_share(void **st)
{
	(void)st;
	assert_int_equal(fleet_conns_alone(6, 3), 2);
	assert_int_equal(fleet_conns_alone(6, 1), 6);
	assert_int_equal(fleet_conns_alone(10, 3), 3);
	assert_int_equal(fleet_conns_alone(2, 5), 1);
	assert_int_equal(fleet_conns_alone(6, 0), 6);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alone_share),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
