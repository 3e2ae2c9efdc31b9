// SPDX-License-Identifier: MIT
/*
 * The X-Tern-Ref trace header: a value made with a secret verifies with it
 * and gives back its fields; another secret, a changed field, a changed mac
 * or a malformed value do not. Folding whitespace inside is ignored.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tern/trace_ref.h"

static const char secret[] = "a-secret-of-some-length";

static void
make(struct buf *out, const char *tenant, const char *campaign, const char *rcpt)
{
	struct trace_ref r = {.id = "000661781300000000000002000000a1"};

	snprintf(r.tenant, sizeof(r.tenant), "%s", tenant);
	snprintf(r.campaign, sizeof(r.campaign), "%s", campaign);
	snprintf(r.recipient, sizeof(r.recipient), "%s", rcpt);
	buf_init(out);
	assert_int_equal(trace_ref_format(&r, secret, strlen(secret), out), 0);
}

static void
test_round_trip(void **state)
{
	struct trace_ref got;
	struct buf v;

	make(&v, "acme", "spring sale", "Ann.O'Neil+x@example.org");
	assert_null(strpbrk(v.data, " \t\r\n"));
	assert_int_equal(trace_ref_verify(v.data, secret, strlen(secret), &got), 0);
	assert_string_equal(got.id, "000661781300000000000002000000a1");
	assert_string_equal(got.tenant, "acme");
	assert_string_equal(got.campaign, "spring sale");
	assert_string_equal(got.recipient, "Ann.O'Neil+x@example.org");
	buf_deinit(&v);
	/* Empty tenant and campaign are fields too. */
	make(&v, "", "", "a@b.example");
	assert_int_equal(trace_ref_verify(v.data, secret, strlen(secret), &got), 0);
	assert_string_equal(got.tenant, "");
	buf_deinit(&v);
}

static void
test_folding_is_ignored(void **state)
{
	struct trace_ref got;
	struct buf v, folded;
	size_t half;

	make(&v, "acme", "c", "a@b.example");
	half = v.len / 2;
	buf_init(&folded);
	buf_append(&folded, v.data, half);
	buf_append_str(&folded, "\r\n\t");
	buf_append_str(&folded, v.data + half);
	assert_int_equal(trace_ref_verify(folded.data, secret, strlen(secret), &got), 0);
	buf_deinit(&folded);
	buf_deinit(&v);
}

static void
test_forgeries_fail(void **state)
{
	struct trace_ref got;
	struct buf v;
	char *dot;

	make(&v, "acme", "c", "a@b.example");
	/* Another secret. */
	assert_int_equal(trace_ref_verify(v.data, "another-secret-entirely", 23, &got), -EPERM);
	/* Another tenant ("ZXZpbA" is "evil") with the old mac. */
	dot = strchr(v.data + 2, '.');
	{
		struct buf forged;

		buf_init(&forged);
		buf_append(&forged, v.data, (size_t)(dot - v.data) + 1);
		buf_append_str(&forged, "ZXZpbA");
		buf_append_str(&forged, strchr(dot + 1, '.'));
		assert_int_equal(trace_ref_verify(forged.data, secret, strlen(secret), &got),
				 -EPERM);
		assert_string_equal(got.tenant, "evil");
		buf_deinit(&forged);
	}
	/* A flipped mac character. */
	v.data[v.len - 1] = v.data[v.len - 1] == 'A' ? 'B' : 'A';
	assert_int_equal(trace_ref_verify(v.data, secret, strlen(secret), &got), -EPERM);
	buf_deinit(&v);
}

static void
test_malformed_values(void **state)
{
	static const char *const bad[] = {
	    "",
	    "1",
	    "2.000661781300000000000002000000a1.YQ.YQ.YQ.YQ",
	    "1.0006617813.YQ.YQ.YQ.YQ",				 /* short id */
	    "1.000661781300000000000002000000a1.YQ.YQ.YQ",	 /* no mac */
	    "1.000661781300000000000002000000a1.Y.YQ.YQ.YQ",	 /* impossible base64 length */
	    "1.000661781300000000000002000000a1.Y!.YQ.YQ.YQ",	 /* not base64url */
	    "1.000661781300000000000002000000a1.AA.YQ.YQ.YQ",	 /* a NUL inside a field */
	    "1.000661781300000000000002000000a1.YQ.YQ.YQ.YQ.YQ", /* one field too many */
	};
	struct trace_ref got;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		assert_int_equal(trace_ref_verify(bad[i], secret, strlen(secret), &got), -EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_folding_is_ignored),
	    cmocka_unit_test(test_forgeries_fail),
	    cmocka_unit_test(test_malformed_values),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
