// SPDX-License-Identifier: MIT
/* Log hooks: names (they become file names), option checks, the lag metrics.
 * Following the segments is tested end to end in tests/integration/test_log_hooks.py. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tern/loghook.h"
#include "tern/metrics.h"
#include "tern/shard.h"

static void
test_names(void **state)
{
	char longest[LOGHOOK_NAME_MAX];

	assert_true(loghook_name_valid("esp-events_1.v2"));
	assert_false(loghook_name_valid(""));
	assert_false(loghook_name_valid("a/b"));
	assert_false(loghook_name_valid("../x"));
	assert_false(loghook_name_valid(".hidden"));
	assert_false(loghook_name_valid("a b"));
	memset(longest, 'x', sizeof(longest) - 1);
	longest[sizeof(longest) - 1] = '\0';
	assert_true(loghook_name_valid(longest));
}

static void
test_configure_refuses_bad_options(void **state)
{
	struct loghook_config c = {.name = "one", .batch_size = 10, .max_latency = 1};
	struct tern_err err;
	char seg[LOGHOOK_SEGMENT_MAX] = "unchanged";

	assert_int_equal(shards_init(1, &err), 0);
	assert_false(loghook_oldest_needed(seg, sizeof(seg)));
	assert_string_equal(seg, "unchanged");

	c.batch_size = 0;
	assert_int_equal(loghook_configure(&c, &err), -EINVAL);
	c.batch_size = 10;
	c.max_latency = 0;
	assert_int_equal(loghook_configure(&c, &err), -EINVAL);
	c.max_latency = 1;
	c.name = "no/slash";
	assert_int_equal(loghook_configure(&c, &err), -EINVAL);

	assert_false(loghook_oldest_needed(seg, sizeof(seg)));
	shards_free();
}

static void
test_lag_metrics(void **state)
{
	struct metrics_log_hook_lag lag[METRICS_LOG_HOOKS_MAX];

	metrics_set_log_hook_lag("a", 10, 2.5);
	metrics_set_log_hook_lag("b", 0, 0);
	metrics_set_log_hook_lag("a", 3, 0.5);
	assert_int_equal(metrics_log_hook_lag_read(lag, METRICS_LOG_HOOKS_MAX), 2);
	assert_string_equal(lag[0].hook, "a");
	assert_int_equal(lag[0].records, 3);
	assert_true(lag[0].seconds == 0.5);
	assert_string_equal(lag[1].hook, "b");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_configure_refuses_bad_options),
	    cmocka_unit_test(test_lag_metrics),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
