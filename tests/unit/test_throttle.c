// SPDX-License-Identifier: MIT
/* GCRA throttles: rate parsing, admitted counts over a window, burst tolerance, unlimited. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tern/throttle.h"
#include "tern/util.h"

static double
rate(const char *s)
{
	double r = -1;

	assert_int_equal(throttle_parse_rate(s, &r), 0);
	return r;
}

static void
test_parse_rates(void **state)
{
	assert_float_equal(rate("120/min"), 2, 1e-12);
	assert_float_equal(rate("10/s"), 10, 1e-12);
	assert_float_equal(rate("10/sec"), 10, 1e-12);
	assert_float_equal(rate("5000/h"), 5000.0 / 3600, 1e-12);
	assert_float_equal(rate("5000/hour"), 5000.0 / 3600, 1e-12);
	assert_float_equal(rate("100/day"), 100.0 / 86400, 1e-12);
	assert_float_equal(rate("100/d"), 100.0 / 86400, 1e-12);
	assert_float_equal(rate("50/5min"), 50.0 / 300, 1e-12);
	assert_float_equal(rate("30/m"), 0.5, 1e-12);
	assert_float_equal(rate("1.5/s"), 1.5, 1e-12);
	assert_float_equal(rate("10/500ms"), 20, 1e-12);
	assert_float_equal(rate("3/1.5h"), 3 / 5400.0, 1e-12);
}

static void
expect_rejected(const char *const *bad, size_t n)
{
	double r = 42;
	size_t i;

	for (i = 0; i < n; i++) {
		if (throttle_parse_rate(bad[i], &r) != -EINVAL)
			fail_msg("rate \"%s\" was not rejected", bad[i]);
	}
	assert_true(r == 42); /* untouched on failure */
}

static void
test_parse_rejects(void **state)
{
	static const char *const bad[] = {"",	    "120",	    "/min",  "x/min",  "0/min",
					  "-5/s",   "10/fortnight", "10/0s", "10/-1s", "10 /s",
					  "10/s/s", "10/min2",	    "10//s", "10/mins"};

	expect_rejected(bad, TERN_ARRAY_LEN(bad));
}

/*
 * Regression (fixed): throttle_parse_rate() accepts "10/" as 10 per second (an empty unit
 * becomes "1", a bare number of seconds) and takes the count from strtod(),
 * so "nan/s", "inf/s" and "1e400/s" give a NaN or infinite rate.
 */
static void
test_parse_rejects_empty_unit_and_non_finite(void **state)
{
	static const char *const bad[] = {"10/", "nan/s", "inf/s", "1e400/s"};

	expect_rejected(bad, TERN_ARRAY_LEN(bad));
}

/* A client that asks again as soon as it is told it may: count admissions in [0, window). */
static int
admitted_greedy(struct throttle *t, double window)
{
	double now = 0, wait;
	int n = 0;

	while (now < window) {
		wait = throttle_take(t, now);
		if (wait == 0)
			n++;
		else
			now += wait;
	}
	return n;
}

/* A client polling every step seconds: each admission is late by up to one step. */
static int
admitted_polling(struct throttle *t, double window, double step)
{
	double now;
	int n = 0, i;

	for (i = 0; (now = i * step) < window; i++)
		while (throttle_take(t, now) == 0)
			n++;
	return n;
}

static void
assert_within_2pct(int got, double want)
{
	if (got < want * 0.98 || got > want * 1.02)
		fail_msg("admitted %d, want %.0f +-2%%", got, want);
}

static void
test_gcra_10_per_second(void **state)
{
	struct throttle t;

	throttle_init(&t, rate("10/s"), 1);
	assert_within_2pct(admitted_greedy(&t, 60), 600);
	throttle_init(&t, rate("10/s"), 1);
	assert_within_2pct(admitted_polling(&t, 60, 0.001), 600);
}

static void
test_gcra_600_per_minute(void **state)
{
	struct throttle t;

	throttle_init(&t, rate("600/min"), 1);
	assert_within_2pct(admitted_greedy(&t, 60), 600);
	throttle_init(&t, rate("600/min"), 1);
	assert_within_2pct(admitted_polling(&t, 60, 0.001), 600);
}

static void
test_gcra_slow_rate(void **state)
{
	struct throttle t;

	throttle_init(&t, rate("5000/h"), 1);
	assert_within_2pct(admitted_greedy(&t, 3600), 5000);
	throttle_init(&t, rate("100/day"), 1);
	assert_within_2pct(admitted_greedy(&t, 86400), 100);
}

static void
test_wait_is_exact(void **state)
{
	struct throttle t;

	throttle_init(&t, 4, 1);
	assert_true(throttle_take(&t, 100) == 0);
	assert_float_equal(throttle_take(&t, 100), 0.25, 1e-12);
	assert_float_equal(throttle_take(&t, 100.1), 0.15, 1e-12);
	assert_true(throttle_take(&t, 100.25) == 0);
	/* Idle time is not banked: after a long pause only one event passes at once. */
	assert_true(throttle_take(&t, 200) == 0);
	assert_true(throttle_take(&t, 200) > 0);
}

static int
admitted_at_once(struct throttle *t, double now)
{
	int n = 0;

	while (throttle_take(t, now) == 0)
		n++;
	return n;
}

static void
test_burst(void **state)
{
	struct throttle t;
	int n;

	throttle_init(&t, 10, 5);
	assert_int_equal(admitted_at_once(&t, 0), 5);
	assert_float_equal(throttle_take(&t, 0), 0.1, 1e-12);
	assert_int_equal(admitted_at_once(&t, 0.1), 1);
	/* Over a window the burst adds at most `burst` events beyond the steady rate. */
	throttle_init(&t, 10, 5);
	n = admitted_polling(&t, 60, 0.001);
	assert_true(n >= 600 && n <= 605);
}

/*
 * Regression (fixed): throttle_take() compares now against tat - tolerance exactly, and tat
 * is a sum of rounded intervals, so a full burst is cut short depending on
 * the clock value: rate 10/s, burst 5, five takes at now = 1.0 admit only 4
 * (tat 1.4000000000000004 - tolerance 0.4 > 1.0); at now = 0 or 120 they
 * admit 5.
 */
static void
test_burst_full_at_any_time(void **state)
{
	static const double nows[] = {0, 1, 120, 1000, 1700000000.5};
	struct throttle t;
	size_t i;

	for (i = 0; i < TERN_ARRAY_LEN(nows); i++) {
		throttle_init(&t, 10, 5);
		assert_int_equal(admitted_at_once(&t, nows[i]), 5);
		/* And again after idling for longer than the burst takes to refill. */
		assert_int_equal(admitted_at_once(&t, nows[i] + 60), 5);
	}
}

static void
test_burst_below_one_is_one(void **state)
{
	struct throttle t;

	throttle_init(&t, 10, 0);
	assert_true(throttle_take(&t, 5) == 0);
	assert_true(throttle_take(&t, 5) > 0);
}

/* A reload that leaves the rate alone must not reset the throttle (no burst, no stall). */
static void
test_retune_same_rate_keeps_state(void **state)
{
	struct throttle t;
	double now = 1000.0;

	(void)state;
	throttle_init(&t, 10, 1);
	assert_true(throttle_take(&t, now) == 0);
	assert_false(throttle_retune(&t, 10, 1));
	/* Still paced: the next event waits the rest of its interval, as without a reload. */
	assert_float_equal(throttle_take(&t, now), 0.1, 1e-9);
}

static void
test_retune_new_rate_applies_at_once(void **state)
{
	struct throttle t;
	double now = 1000.0;

	(void)state;
	throttle_init(&t, 10, 1);
	assert_true(throttle_take(&t, now) == 0);
	assert_true(throttle_retune(&t, 2, 1));
	assert_true(throttle_take(&t, now) == 0);
	assert_float_equal(throttle_take(&t, now), 0.5, 1e-9);
}

/*
 * Regression: each take's lateness (a poll, a timer firing late on a loaded
 * loop) was lost, so a client polling every 7 ms got 10/s as about 9.7/s; a
 * path under load ran 3% below its max_message_rate.
 */
static void
test_late_takes_keep_the_schedule(void **state)
{
	struct throttle t;
	int n;

	throttle_init(&t, rate("10/s"), 1);
	n = admitted_polling(&t, 60, 0.007);
	assert_true(n >= 600 && n <= 601);
	throttle_init(&t, rate("10/s"), 1);
	n = admitted_polling(&t, 60, 0.033);
	assert_true(n >= 600 && n <= 601);
}

/* Late by less than an interval: the next slot follows the missed one; after a pause, now. */
static void
test_lateness_and_pauses(void **state)
{
	struct throttle t;

	throttle_init(&t, 10, 1);
	assert_true(throttle_take(&t, 100) == 0);
	assert_true(throttle_take(&t, 100.15) == 0);
	assert_float_equal(throttle_take(&t, 100.15), 0.05, 1e-9);
	/* A pause of an interval or more banks nothing: one, then the full interval. */
	assert_true(throttle_take(&t, 105) == 0);
	assert_float_equal(throttle_take(&t, 105), 0.1, 1e-9);
}

static void
test_unlimited(void **state)
{
	struct throttle t;
	int i;

	throttle_init(&t, 0, 1);
	for (i = 0; i < 100000; i++)
		assert_true(throttle_take(&t, 1) == 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_rates),
	    cmocka_unit_test(test_retune_same_rate_keeps_state),
	    cmocka_unit_test(test_retune_new_rate_applies_at_once),
	    cmocka_unit_test(test_parse_rejects),
	    cmocka_unit_test(test_gcra_10_per_second),
	    cmocka_unit_test(test_gcra_600_per_minute),
	    cmocka_unit_test(test_gcra_slow_rate),
	    cmocka_unit_test(test_wait_is_exact),
	    cmocka_unit_test(test_burst),
	    cmocka_unit_test(test_burst_below_one_is_one),
	    cmocka_unit_test(test_unlimited),
	    cmocka_unit_test(test_late_takes_keep_the_schedule),
	    cmocka_unit_test(test_lateness_and_pauses),
	    cmocka_unit_test(test_parse_rejects_empty_unit_and_non_finite),
	    cmocka_unit_test(test_burst_full_at_any_time),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
