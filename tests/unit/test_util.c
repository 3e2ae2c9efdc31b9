// SPDX-License-Identifier: MIT
/* Shared helpers: buffers, JSON string escaping, durations, sizes, time format. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "support.h"
#include "tern/util.h"

static void
test_buf_grows_and_consumes(void **state)
{
	struct buf b;
	int i;

	buf_init(&b);
	for (i = 0; i < 1000; i++)
		assert_int_equal(buf_printf(&b, "%d,", i), 0);
	assert_int_equal(strncmp(b.data, "0,1,2,", 6), 0);
	buf_consume(&b, 2);
	assert_int_equal(strncmp(b.data, "1,2,", 4), 0);
	assert_int_equal(b.data[b.len], '\0');
	buf_consume(&b, b.len + 5);
	assert_int_equal(b.len, 0);
	buf_append(&b, "x", 1);
	assert_string_equal(b.data, "x");
	buf_reset(&b);
	assert_string_equal(b.data, "");
	buf_deinit(&b);
}

static void
test_json_string_escapes(void **state)
{
	struct buf b;
	const char in[] = "a\"b\\c\n\r\t\x01\x7f\xc3\xa9";

	buf_init(&b);
	buf_append_json_string(&b, in, sizeof(in) - 1);
	assert_string_equal(b.data, "\"a\\\"b\\\\c\\n\\r\\t\\u0001\\u007f\xc3\xa9\"");
	buf_deinit(&b);
}

/* Plain runs go out whole; the bytes between them and at either end still get their escapes. */
static void
test_json_string_runs(void **state)
{
	struct buf b;
	const char in[] = "\"250 2.0.0 Ok: queued as ABC\xff\xc3\xa9 x \\ y\x1f\xe2\x82";

	buf_init(&b);
	buf_append_json_string(&b, in, sizeof(in) - 1);
	assert_string_equal(b.data,
			    "\"\\\"250 2.0.0 Ok: queued as ABC\\ufffd\xc3\xa9 x \\\\ y\\u001f\\ufffd\\ufffd\"");
	buf_reset(&b);
	buf_append_json_string(&b, "", 0);
	assert_string_equal(b.data, "\"\"");
	buf_deinit(&b);
}

/* The inline fast path and the growing one write the same bytes. */
static void
test_append_char_grows(void **state)
{
	struct buf b;
	int i;

	buf_init(&b);
	for (i = 0; i < 1000; i++)
		assert_int_equal(buf_append_char(&b, (char)('a' + i % 26)), 0);
	assert_int_equal(b.len, 1000);
	assert_int_equal(strlen(b.data), 1000);
	assert_int_equal(b.data[999], 'a' + 999 % 26);
	buf_deinit(&b);
}

static void
test_durations(void **state)
{
	double v;

	assert_int_equal(util_parse_duration("30", &v), 0);
	assert_true(v == 30);
	assert_int_equal(util_parse_duration("5m", &v), 0);
	assert_true(v == 300);
	assert_int_equal(util_parse_duration("1.5h", &v), 0);
	assert_true(v == 5400);
	assert_int_equal(util_parse_duration("3d", &v), 0);
	assert_true(v == 259200);
	assert_int_equal(util_parse_duration("250ms", &v), 0);
	assert_true(v == 0.25);
	assert_int_equal(util_parse_duration("5 weeks", &v), -EINVAL);
	assert_int_equal(util_parse_duration("-1s", &v), -EINVAL);
	assert_int_equal(util_parse_duration("", &v), -EINVAL);
}

static void
test_sizes(void **state)
{
	uint64_t v;

	assert_int_equal(util_parse_size("20MiB", &v), 0);
	assert_true(v == 20u * 1024 * 1024);
	assert_int_equal(util_parse_size("512k", &v), 0);
	assert_true(v == 512u * 1024);
	assert_int_equal(util_parse_size("1000", &v), 0);
	assert_true(v == 1000);
	assert_int_equal(util_parse_size("12 parsecs", &v), -EINVAL);
}

/*
 * Regression: util_parse_size cast an out-of-range double to uint64_t
 * (undefined; '17179869184G' became 0, "no limit"); sizes and durations past
 * their maximum are refused with -ERANGE instead.
 */
static void
test_out_of_range(void **state)
{
	uint64_t size;
	double secs;

	assert_int_equal(util_parse_size("17179869184G", &size), -ERANGE);
	assert_int_equal(util_parse_size("1e300", &size), -ERANGE);
	assert_int_equal(util_parse_size("1e400", &size), -EINVAL);
	assert_int_equal(util_parse_size("8388608G", &size), 0);
	assert_true(size == UTIL_SIZE_MAX);
	assert_int_equal(util_parse_size("8388609G", &size), -ERANGE);
	assert_int_equal(util_parse_duration("1e300d", &secs), -ERANGE);
	assert_int_equal(util_parse_duration("36500d", &secs), 0);
	assert_true(secs == UTIL_DURATION_MAX);
	assert_int_equal(util_parse_duration("36501d", &secs), -ERANGE);
}

static void
test_mail_date_format(void **state)
{
	char out[32];

	util_format_mail_date(1700000000.9, out);
	assert_string_equal(out, "Tue, 14 Nov 2023 22:13:20 +0000");
	/* The per-thread cache serves the same second and moves on with the next. */
	util_format_mail_date(1700000000.1, out);
	assert_string_equal(out, "Tue, 14 Nov 2023 22:13:20 +0000");
	util_format_mail_date(1700000001.0, out);
	assert_string_equal(out, "Tue, 14 Nov 2023 22:13:21 +0000");
	util_format_mail_date(951825600.0, out);
	assert_string_equal(out, "Tue, 29 Feb 2000 12:00:00 +0000");
}

static void
test_time_format(void **state)
{
	char out[32];

	util_format_time(1700000000.123, out);
	assert_string_equal(out, "2023-11-14T22:13:20.123Z");
	util_format_time(0, out);
	assert_string_equal(out, "1970-01-01T00:00:00.000Z");
	util_format_time(951825599.9996, out);
	assert_string_equal(out, "2000-02-29T12:00:00.000Z");
	util_format_time(253402300799.0, out);
	assert_string_equal(out, "9999-12-31T23:59:59.000Z");
	/* Beyond four-digit years printf still writes it, as before. */
	util_format_time(253402300800.0, out);
	assert_string_equal(out, "10000-01-01T00:00:00.000Z");
}

static void
test_err(void **state)
{
	struct tern_err err;

	tern_err_set(&err, 452, "4.3.1", "disk %s", "full");
	assert_int_equal(err.code, 452);
	assert_string_equal(err.enhanced, "4.3.1");
	assert_string_equal(err.msg, "disk full");
	tern_err_clear(&err);
	assert_int_equal(err.code, 0);
}

/* Regression: Delivery records printed an IPv6 peer as "::1:25", where the port cannot be told apart. */
static void
test_sockaddr_format(void **state)
{
	struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons(25)};
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(2525)};
	char out[64];

	(void)state;
	inet_pton(AF_INET, "192.0.2.1", &a4.sin_addr);
	inet_pton(AF_INET6, "2001:db8::1", &a6.sin6_addr);
	util_format_sockaddr((struct sockaddr *)&a4, out, sizeof(out));
	assert_string_equal(out, "192.0.2.1:25");
	util_format_sockaddr((struct sockaddr *)&a6, out, sizeof(out));
	assert_string_equal(out, "[2001:db8::1]:2525");
}

/* A steady 10 events/s reads as about 10/s after a few minutes, and decays once they stop. */
static void
test_rate(void **state)
{
	struct util_rate r = {0, 0};
	double t = 0;
	int i;

	(void)state;
	for (i = 0; i < 3000; i++)
		util_rate_tick(&r, t += 0.1);
	assert_true(util_rate_get(&r, t) > 9.9 && util_rate_get(&r, t) < 10.1);
	assert_true(util_rate_get(&r, t + 60) < 3.8 && util_rate_get(&r, t + 60) > 3.6);
}

/* A synced replacement leaves the new content and no temporary file; a failure names errno. */
static void
test_write_file_synced(void **state)
{
	char dir[] = "/tmp/tern-test-util-XXXXXX", path[128], tmp[160], got[16] = {0};
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/f.json", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	assert_int_equal(util_write_file_synced(path, "old", 3), 0);
	assert_int_equal(util_write_file_synced(path, "new!", 4), 0);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_int_equal(fread(got, 1, sizeof(got) - 1, f), 4);
	fclose(f);
	assert_string_equal(got, "new!");
	assert_int_equal(access(tmp, F_OK), -1);
	snprintf(path, sizeof(path), "%s/missing/f.json", dir);
	assert_int_equal(util_write_file_synced(path, "x", 1), -ENOENT);
	support_rm_rf(dir);
}

/* buf_printf into spare room and across a reallocation: the same bytes either way. */
static void
test_buf_printf_fills_room(void **state)
{
	struct buf b;
	char big[300];

	buf_init(&b);
	buf_reserve(&b, 100);
	assert_int_equal(buf_printf(&b, "%s-%d", "ab", 7), 0);
	assert_string_equal(b.data, "ab-7");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(buf_printf(&b, "[%s]", big), 0);
	assert_int_equal(b.len, 4 + 2 + sizeof(big) - 1);
	assert_int_equal(b.data[4], '[');
	assert_int_equal(b.data[b.len - 1], ']');
	assert_int_equal(b.data[b.len], '\0');
	buf_deinit(&b);
}

static void
expect_fixed(double v, int decimals)
{
	char want[400];
	struct buf b;

	snprintf(want, sizeof(want), "%.*f", decimals, v);
	buf_init(&b);
	assert_int_equal(buf_append_fixed(&b, v, decimals), 0);
	assert_string_equal(b.data, want);
	buf_deinit(&b);
}

/* The appenders that replace printf in records and spool metadata write what printf wrote. */
static void
test_buf_append_numbers(void **state)
{
	struct buf b;

	buf_init(&b);
	buf_append_uint(&b, 0);
	buf_append_char(&b, ' ');
	buf_append_uint(&b, 18446744073709551615ULL);
	assert_string_equal(b.data, "0 18446744073709551615");
	buf_deinit(&b);
	expect_fixed(1764490000.123456, 6);
	expect_fixed(1764490000.5, 3);
	expect_fixed(0, 6);
	expect_fixed(0.0005, 6);
	expect_fixed(12.25, 0);
	expect_fixed(-3.5, 1);
	expect_fixed(123.456, 3);
	expect_fixed(1e300, 3);
	expect_fixed(1.0 / 0.0, 3);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf_grows_and_consumes), cmocka_unit_test(test_json_string_escapes),
		cmocka_unit_test(test_json_string_runs), cmocka_unit_test(test_append_char_grows),
		cmocka_unit_test(test_durations),	       cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_out_of_range),
		cmocka_unit_test(test_time_format),
		cmocka_unit_test(test_mail_date_format),	       cmocka_unit_test(test_err),
		cmocka_unit_test(test_sockaddr_format),
		cmocka_unit_test(test_rate),
		cmocka_unit_test(test_write_file_synced),
		cmocka_unit_test(test_buf_printf_fills_room),
		cmocka_unit_test(test_buf_append_numbers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
