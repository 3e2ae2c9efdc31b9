// SPDX-License-Identifier: MIT
/*
 * Warm-up: stage caps (a list, a growth rule and its end), the cap holding
 * exactly with per-provider caps inside it, a source before its start, the
 * rates pausing a ramp only past min_messages, resume, and the state
 * surviving a reopen (as across a restart) whichever of plans and state
 * comes first, with a corrupt file refused by name.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support.h"
#include "tern/warmup.h"

/* A plan whose stage 0 began a second ago and lasts a day. */
static struct warmup_plan
plan_now(const char *source, double cap0)
{
	struct warmup_plan p;

	memset(&p, 0, sizeof(p));
	snprintf(p.source, sizeof(p.source), "%s", source);
	p.start = util_wallclock() - 1;
	p.period = 86400;
	p.caps[0] = cap0;
	p.caps[1] = cap0 * 2;
	p.n_caps = 2;
	return p;
}

static void
configure(const struct warmup_plan *p, size_t n, double min_messages)
{
	struct warmup_limits l;
	struct tern_err err;

	warmup_limits_defaults(&l);
	l.min_messages = min_messages;
	assert_int_equal(warmup_configure(p, n, &l, &err), 0);
}

static void
test_plan_caps(void **state)
{
	struct warmup_plan p = plan_now("a", 200);

	(void)state;
	assert_true(warmup_plan_cap(&p, -1) == 0);
	assert_true(warmup_plan_cap(&p, 0) == 200);
	assert_true(warmup_plan_cap(&p, 1) == 400);
	assert_true(warmup_plan_cap(&p, 2) == -1);
	p.n_caps = 0;
	p.first = 100;
	p.growth = 1.5;
	p.max = 300;
	assert_true(warmup_plan_cap(&p, 0) == 100);
	assert_true(warmup_plan_cap(&p, 2) == 225);
	assert_true(warmup_plan_cap(&p, 3) == -1); /* 337 passed max: warm */
}

static void
test_cap_holds_exactly(void **state)
{
	struct warmup_plan p[2] = {plan_now("warm", 5), plan_now("later", 5)};
	struct warmup_view v;
	int i, taken = 0, google = 0;

	(void)state;
	snprintf(p[0].providers[0].name, sizeof(p[0].providers[0].name), "google");
	snprintf(p[0].providers[0].suffix, sizeof(p[0].providers[0].suffix), ".google.com");
	p[0].providers[0].cap = 2;
	p[0].n_providers = 1;
	p[1].start = util_wallclock() + 3600;
	configure(p, 2, 100);
	for (i = 0; i < 4; i++)
		google += warmup_take("warm", "alt1.gmail-smtp-in.l.google.com.,mx.google.com.");
	assert_int_equal(google, 2);
	for (i = 0; i < 10; i++)
		taken += warmup_take("warm", "mx.example.net.");
	assert_int_equal(taken, 3);
	assert_true(warmup_take("not-warming", "mx.example.net."));
	assert_false(warmup_take("later", "mx.example.net."));
	assert_true(warmup_wait("warm") > 86000);
	assert_true(warmup_wait("not-warming") == 0);
	assert_int_equal(warmup_get("warm", &v), 0);
	assert_int_equal(v.stage, 0);
	assert_true(v.cap == 5 && v.sent == 5 && !v.paused);
	assert_int_equal(warmup_get("later", &v), 0);
	assert_int_equal(v.stage, -1);
	assert_int_equal(warmup_get("nope", &v), -ENOENT);
	configure(NULL, 0, 100);
	assert_true(warmup_take("warm", "mx.example.net."));
}

static void
test_rates_pause_and_resume(void **state)
{
	struct warmup_plan p = plan_now("w", 1000);
	struct warmup_view v;
	struct tern_err err;
	int i;

	(void)state;
	configure(&p, 1, 20);
	warmup_outcome("Bounce", "w");
	warmup_outcome("TransientFailure", "w");
	for (i = 0; i < 18; i++)
		warmup_outcome("Delivery", "w");
	assert_int_equal(warmup_get("w", &v), 0);
	assert_false(v.paused); /* 19 outcomes: not judged yet */
	warmup_outcome("Delivery", "w");
	assert_int_equal(warmup_get("w", &v), 0);
	assert_true(v.paused); /* 1 in 20: 5% */
	assert_non_null(strstr(v.reason, "hard-bounce rate 5.00% over 20 messages"));
	assert_int_equal(warmup_resume("w", &err), 0);
	assert_int_equal(warmup_get("w", &v), 0);
	assert_false(v.paused);
	assert_true(v.window_messages == 0);
	for (i = 0; i < 25; i++)
		warmup_outcome("Delivery", "w");
	warmup_outcome("Feedback", "w");
	assert_int_equal(warmup_get("w", &v), 0);
	assert_true(v.paused); /* 1 complaint in 25 deliveries */
	assert_non_null(strstr(v.reason, "complaint rate"));
	assert_int_equal(warmup_resume("x", &err), -ENOENT);
	assert_int_equal(err.code, 404);
	configure(NULL, 0, 100);
}

static void
test_state_survives_reopen(void **state)
{
	char dir[] = "/tmp/tern-test-warmup-XXXXXX", path[128];
	struct warmup_plan p = plan_now("saved", 3);
	struct tern_err err = {0};
	struct warmup_view v;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(warmup_open(dir, &err), 0);
	configure(&p, 1, 1);
	assert_true(warmup_take("saved", "mx.example.net."));
	warmup_outcome("Bounce", "saved");
	warmup_close();

	/* Plans first (init runs before the spool opens), then the saved state. */
	configure(&p, 1, 1);
	assert_int_equal(warmup_open(dir, &err), 0);
	assert_int_equal(warmup_get("saved", &v), 0);
	assert_true(v.paused && v.sent == 1 && v.window_messages == 1);
	warmup_close();

	/* The saved state first, then the plans. */
	assert_int_equal(warmup_open(dir, &err), 0);
	assert_int_equal(warmup_get("saved", &v), -ENOENT);
	configure(&p, 1, 1);
	assert_int_equal(warmup_get("saved", &v), 0);
	assert_true(v.paused && v.sent == 1);
	assert_true(warmup_take("saved", "mx.example.net."));
	assert_true(warmup_take("saved", "mx.example.net."));
	assert_false(warmup_take("saved", "mx.example.net."));
	warmup_close();

	snprintf(path, sizeof(path), "%s/warmup.json", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("{\"sources\":", f);
	fclose(f);
	assert_int_equal(warmup_open(dir, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "warmup.json"));
	warmup_close();
	support_rm_rf(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plan_caps),
		cmocka_unit_test(test_cap_holds_exactly),
		cmocka_unit_test(test_rates_pause_and_resume),
		cmocka_unit_test(test_state_survives_reopen),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
