// SPDX-License-Identifier: MIT
/*
 * The health of a spool partition's device: the free-space floor, and the
 * refusal between a failed write and the reopen (spool_health.c). The
 * whole path through RocksDB is tested in test_spool.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <errno.h>

#include <cmocka.h>

#include "tern/spool.h"
#include "tern/spool_health.h"

static void
test_floor_parse(void **state)
{
	struct spool_floor f;

	assert_int_equal(spool_floor_parse("5%", &f), 0);
	assert_true(f.percent == 5 && f.amount == 0);
	assert_int_equal(spool_floor_parse("0.5%", &f), 0);
	assert_true(f.percent == 0.5);
	assert_int_equal(spool_floor_parse("200M", &f), 0);
	assert_true(f.percent == 0 && f.amount == 200u << 20);
	assert_int_equal(spool_floor_parse("10000", &f), 0);
	assert_true(f.amount == 10000);
	assert_int_equal(spool_floor_parse("0", &f), 0);
	assert_int_equal(spool_floor_parse("100%", &f), -EINVAL);
	assert_int_equal(spool_floor_parse("-1%", &f), -EINVAL);
	assert_int_equal(spool_floor_parse("x%", &f), -EINVAL);
	assert_int_equal(spool_floor_parse("5 %", &f), -EINVAL);
	assert_int_equal(spool_floor_parse("lots", &f), -EINVAL);
	assert_int_equal(spool_floor_parse("", &f), -EINVAL);
}

static const struct spool_floor no_floor = {0, 0};

/* No filesystem has 2^60 bytes free: below the floor at once, and refused with 452 4.3.1. */
static void
test_below_floor_refuses(void **state)
{
	struct spool_floor huge = {0, 1ull << 60};
	struct spool_health h;
	struct tern_err err = {0};
	struct spool_stats st = {0};

	spool_health_init(&h, "/", &huge, &no_floor);
	assert_false(spool_health_refusing(&h, &err));
	spool_health_check_space(&h);
	assert_true(spool_health_refusing(&h, &err));
	assert_int_equal(err.code, 452);
	assert_string_equal(err.enhanced, "4.3.1");
	assert_string_equal(err.msg, "Insufficient system storage");
	/* Room again (the floor was lowered): no reopen is due, nothing broken. */
	h.floor_space = no_floor;
	assert_false(spool_health_tick(&h, true));
	assert_false(spool_health_refusing(&h, &err));
	spool_health_stats(&h, &st);
	assert_int_equal(st.refused, 1);
	assert_false(st.low);
	assert_true(st.size_bytes > 0);
}

/* A failed write refuses until a reopen succeeds; a failed reopen keeps refusing. */
static void
test_failed_write_until_reopened(void **state)
{
	struct spool_health h;
	struct tern_err err = {0};
	struct spool_stats st = {0};

	spool_health_init(&h, "/", &no_floor, &no_floor);
	spool_health_write_failed(&h, "a synced write", "IO error: No space left on device");
	assert_true(spool_health_broken(&h));
	assert_true(spool_health_refusing(&h, &err));
	assert_string_equal(err.msg,
			    "Insufficient system storage (spool recovering from a failed write)");
	assert_true(spool_health_tick(&h, true));
	tern_err_set(&err, 451, "4.3.0", "cannot open spool /: test");
	spool_health_reopened(&h, -EIO, &err);
	assert_true(spool_health_broken(&h));
	/* Idle, the next attempt waits for its check; before a batch it comes at once. */
	h.next_check = util_now() + 3600;
	assert_false(spool_health_tick(&h, false));
	assert_true(spool_health_tick(&h, true));
	spool_health_reopened(&h, 0, NULL);
	assert_false(spool_health_broken(&h));
	assert_false(spool_health_refusing(&h, &err));
	spool_health_stats(&h, &st);
	assert_int_equal(st.reopens, 1);
	assert_int_equal(st.refused, 1);
	assert_false(st.broken);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_floor_parse),
	    cmocka_unit_test(test_below_floor_refuses),
	    cmocka_unit_test(test_failed_write_until_reopened),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
