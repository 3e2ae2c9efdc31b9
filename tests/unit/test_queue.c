// SPDX-License-Identifier: MIT
/* Scheduled queues, pure parts: queue name parsing and the retry back-off with jitter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tern/message.h"
#include "tern/queue.h"

struct parts {
	char campaign[64], tenant[64], domain[256];
};

static struct parts
parse(const char *name)
{
	struct parts p;

	memset(&p, 'X', sizeof(p)); /* every part must be written, even when empty */
	queue_name_parse(name, p.campaign, sizeof(p.campaign), p.tenant, sizeof(p.tenant), p.domain,
			 sizeof(p.domain));
	return p;
}

static void
expect_parts(const char *name, const char *campaign, const char *tenant, const char *domain)
{
	struct parts p = parse(name);

	assert_string_equal(p.campaign, campaign);
	assert_string_equal(p.tenant, tenant);
	assert_string_equal(p.domain, domain);
}

/* The shapes message_queue_name() produces: [campaign:][tenant@]domain. */
static void
test_name_shapes(void **state)
{
	expect_parts("example.com", "", "", "example.com");
	expect_parts("acme@example.com", "", "acme", "example.com");
	expect_parts("spring:acme@example.com", "spring", "acme", "example.com");
	expect_parts("spring:example.com", "spring", "", "example.com");
	expect_parts("", "", "", "");
	expect_parts(":@", "", "", "");
}

static void
test_name_separators_in_parts(void **state)
{
	/* The first ':' ends the campaign; the last '@' starts the domain. */
	expect_parts("a:b:t@d", "a", "b:t", "d");
	expect_parts("c:t@x@d", "c", "t@x", "d");
	/* A meta queue override need not look like a domain at all. */
	expect_parts("Special", "", "", "Special");
}

/* queue_name_parse() undoes message_queue_name(). */
static void
test_name_round_trip_with_message(void **state)
{
	static const char *const meta[][2] = {
	    {NULL, NULL}, {"\"spring\"", NULL}, {NULL, "\"acme\""}, {"\"spring\"", "\"acme\""}};
	static const char *const want[][2] = {
	    {"", ""}, {"spring", ""}, {"", "acme"}, {"spring", "acme"}};
	struct buf name;
	size_t i;

	buf_init(&name);
	for (i = 0; i < TERN_ARRAY_LEN(meta); i++) {
		struct message *m = message_new("s@x", "r@Example.COM");
		struct parts p;

		if (meta[i][0])
			message_set_meta(m, "campaign", meta[i][0], strlen(meta[i][0]));
		if (meta[i][1])
			message_set_meta(m, "tenant", meta[i][1], strlen(meta[i][1]));
		buf_reset(&name);
		assert_int_equal(message_queue_name(m, &name), 0);
		p = parse(name.data);
		assert_string_equal(p.campaign, want[i][0]);
		assert_string_equal(p.tenant, want[i][1]);
		assert_string_equal(p.domain, "example.com");
		message_free(m);
	}
	buf_deinit(&name);
}

static void
test_name_truncates_to_buffers(void **state)
{
	char c[4], t[4], d[4];

	queue_name_parse("campaign:tenant@domain", c, sizeof(c), t, sizeof(t), d, sizeof(d));
	assert_string_equal(c, "cam");
	assert_string_equal(t, "ten");
	assert_string_equal(d, "dom");
}

static void
test_retry_grows_exponentially(void **state)
{
	/* jitter01 = 0.5 is the midpoint: no spread. */
	assert_float_equal(queue_retry_delay(0, 60, 1e9, 0.5), 60, 1e-9);
	assert_float_equal(queue_retry_delay(1, 60, 1e9, 0.5), 60, 1e-9);
	assert_float_equal(queue_retry_delay(2, 60, 1e9, 0.5), 120, 1e-9);
	assert_float_equal(queue_retry_delay(3, 60, 1e9, 0.5), 240, 1e-9);
	assert_float_equal(queue_retry_delay(10, 60, 1e9, 0.5), 60 * 512, 1e-9);
}

static void
test_retry_capped_at_max(void **state)
{
	assert_float_equal(queue_retry_delay(5, 60, 600, 0.5), 600, 1e-9);
	assert_float_equal(queue_retry_delay(100, 60, 3600, 0.5), 3600, 1e-9);
	assert_float_equal(queue_retry_delay(5000, 60, 3600, 0.5), 3600, 1e-9); /* pow overflows */
	assert_float_equal(queue_retry_delay(4000000000u, 60, 3600, 0.5), 3600, 1e-9);
}

static void
test_retry_jitter_bounds(void **state)
{
	double j, d;

	assert_float_equal(queue_retry_delay(1, 100, 1e9, 0), 90, 1e-9);
	assert_float_equal(queue_retry_delay(1, 100, 1e9, 0.999999), 110, 1e-3);
	assert_float_equal(queue_retry_delay(50, 100, 1000, 0), 900, 1e-9);
	for (j = 0; j < 1; j += 0.01) {
		d = queue_retry_delay(4, 100, 1e9, j);
		assert_true(d >= 800 * 0.9 && d < 800 * 1.1);
		/* Monotonic in the jitter: spreads, never reorders. */
		assert_true(d <= queue_retry_delay(4, 100, 1e9, j + 0.005));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_name_shapes),
	    cmocka_unit_test(test_name_separators_in_parts),
	    cmocka_unit_test(test_name_round_trip_with_message),
	    cmocka_unit_test(test_name_truncates_to_buffers),
	    cmocka_unit_test(test_retry_grows_exponentially),
	    cmocka_unit_test(test_retry_capped_at_max),
	    cmocka_unit_test(test_retry_jitter_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
