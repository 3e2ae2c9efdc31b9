// SPDX-License-Identifier: MIT
/*
 * The local limiter's permits: a path's message and connection rates spent
 * from its own throttles, a retune that keeps an unchanged rate's state (a
 * reload makes no burst) and starts a changed one afresh, and no lease.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tern/limiter.h"

static const struct limiter_limits ten_a_second = {
	.max_message_rate = 10, .connection_limit = 4, .max_connection_rate = 2,
};

static void
test_message_rate(void **st)
{
	const struct limiter *lim = limiter_local();
	struct limiter_path *p = lim->path_new("src|site", &ten_a_second);

	(void)st;
	assert_non_null(p);
	assert_true(lim->take_message(p, 100.0) == 0);
	assert_true(lim->take_message(p, 100.0) > 0.09);
	assert_true(lim->take_message(p, 100.1) == 0);
	lim->path_free(p);
}

static void
test_connection_rate_and_no_lease(void **st)
{
	const struct limiter *lim = limiter_local();
	struct limiter_path *p = lim->path_new("src|site", &ten_a_second);
	uint64_t lease = 7;

	(void)st;
	assert_true(lim->take_connection(p, 0, 100.0, &lease) == 0);
	assert_int_equal(lease, 0);
	assert_true(lim->take_connection(p, 1, 100.0, &lease) > 0.49);
	lim->drop_connection(p, lease);
	assert_true(lim->take_connection(p, 0, 100.5, &lease) == 0);
	lim->path_free(p);
}

static void
test_tune_keeps_an_unchanged_rate(void **st)
{
	const struct limiter *lim = limiter_local();
	struct limiter_path *p = lim->path_new("src|site", &ten_a_second);
	struct limiter_limits faster = ten_a_second;

	(void)st;
	assert_true(lim->take_message(p, 100.0) == 0);
	lim->path_tune(p, &ten_a_second);
	assert_true(lim->take_message(p, 100.0) > 0); /* no fresh burst */
	faster.max_message_rate = 1000;
	lim->path_tune(p, &faster);
	assert_true(lim->take_message(p, 100.0) == 0); /* a new rate starts afresh */
	assert_int_equal(p->limits.connection_limit, 4);
	lim->path_free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_message_rate),
		cmocka_unit_test(test_connection_rate_and_no_lease),
		cmocka_unit_test(test_tune_keeps_an_unchanged_rate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
