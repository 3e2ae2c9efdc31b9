// SPDX-License-Identifier: MIT
/*
 * CSV records: plain and quoted fields, doubled quotes, empty fields, line
 * ends, malformed quoting, the field limit, and fields written back.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "tern/util.h"
#include "tern/util_csv.h"

static int
split(const char *in, char *line, char **f, int max)
{
	strcpy(line, in);
	return util_csv_split(line, f, max);
}

static void
test_split(void **state)
{
	char line[256], *f[8];

	assert_int_equal(split("a@b.test,acme,\"550 5.1.1, \"\"gone\"\"\",,x\r\n", line, f, 8), 5);
	assert_string_equal(f[0], "a@b.test");
	assert_string_equal(f[1], "acme");
	assert_string_equal(f[2], "550 5.1.1, \"gone\"");
	assert_string_equal(f[3], "");
	assert_string_equal(f[4], "x");
	assert_int_equal(split("", line, f, 8), 1);
	assert_string_equal(f[0], "");
	assert_int_equal(split("\"\",", line, f, 8), 2);
	assert_string_equal(f[0], "");
	assert_string_equal(f[1], "");
}

static void
test_malformed(void **state)
{
	char line[256], *f[3];

	assert_int_equal(split("\"open", line, f, 3), -EINVAL);
	assert_int_equal(split("\"a\"b,c", line, f, 3), -EINVAL);
	assert_int_equal(split("a,b,c,d", line, f, 3), -EINVAL);
	assert_int_equal(split("a,b,c", line, f, 3), 3);
}

static void
test_field_round_trip(void **state)
{
	const char *in[] = {"plain", "with,comma", "with \"quote\"", "", "tab\there"};
	char line[256], *f[8];
	struct buf b;
	size_t i;

	buf_init(&b);
	for (i = 0; i < 5; i++) {
		if (i)
			buf_append_char(&b, ',');
		assert_int_equal(util_csv_field(&b, in[i]), 0);
	}
	assert_string_equal(b.data, "plain,\"with,comma\",\"with \"\"quote\"\"\",,tab\there");
	assert_int_equal(split(b.data, line, f, 8), 5);
	for (i = 0; i < 5; i++)
		assert_string_equal(f[i], in[i]);
	buf_deinit(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_split),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_field_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
