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

static const char id_hex[] = "000661781300000000000002000000a1";

static void
test_verp_round_trip(void **state)
{
	char id[SPOOL_ID_HEX_LEN + 1];
	struct buf rp;
	char upper[128];
	size_t i;

	buf_init(&rp);
	assert_int_equal(trace_verp_sender("bounces@mail.example", id_hex, "Ann@Example.org", secret,
					   strlen(secret), &rp),
			 0);
	assert_int_equal(strncmp(rp.data, "bounces+", 8), 0);
	assert_string_equal(rp.data + 8 + TRACE_VERP_TOKEN_LEN, "@mail.example");
	assert_true(strlen(rp.data) - strlen("@mail.example") <= 64);
	/* The recipient a bounce reports is compared without regard to case. */
	assert_int_equal(trace_verp_verify(rp.data, "ann@example.org", secret, strlen(secret), id), 0);
	assert_string_equal(id, id_hex);
	/* A mailer that upper-cases the local part does not break the token. */
	for (i = 0; rp.data[i] && i + 1 < sizeof(upper); i++)
		upper[i] = (char)(rp.data[i] >= 'a' && rp.data[i] <= 'z' ? rp.data[i] - 32 : rp.data[i]);
	upper[i] = '\0';
	assert_int_equal(trace_verp_verify(upper, "ann@example.org", secret, strlen(secret), id), 0);
	buf_deinit(&rp);
}

static void
test_verp_forgeries_and_strangers(void **state)
{
	char id[SPOOL_ID_HEX_LEN + 1], tampered[128];
	struct buf rp;

	buf_init(&rp);
	assert_int_equal(trace_verp_sender("b@m.example", id_hex, "ann@example.org", secret,
					   strlen(secret), &rp),
			 0);
	/* Another recipient, another secret, a changed id: all forged. */
	assert_int_equal(trace_verp_verify(rp.data, "bob@example.org", secret, strlen(secret), id),
			 -EPERM);
	assert_int_equal(trace_verp_verify(rp.data, "ann@example.org", "another-secret-xyz", 18, id),
			 -EPERM);
	snprintf(tampered, sizeof(tampered), "%s", rp.data);
	tampered[3] = tampered[3] == 'a' ? 'b' : 'a';
	assert_int_equal(trace_verp_verify(tampered, "ann@example.org", secret, strlen(secret), id),
			 -EPERM);
	/* Addresses that carry no token. */
	assert_int_equal(trace_verp_verify("bounces@m.example", "ann@example.org", secret,
					   strlen(secret), id),
			 -EINVAL);
	assert_int_equal(trace_verp_verify("", "a@b", secret, strlen(secret), id), -EINVAL);
	tampered[1] = '!';
	tampered[2] = '1'; /* not base32 */
	assert_int_equal(trace_verp_verify(tampered + 1, "ann@example.org", secret, strlen(secret), id),
			 -EINVAL);
	buf_deinit(&rp);
}

static void
test_verp_senders_that_cannot_carry_a_token(void **state)
{
	char local[64];
	struct buf rp;

	buf_init(&rp);
	assert_int_equal(trace_verp_sender("", id_hex, "a@b", secret, strlen(secret), &rp), -EINVAL);
	assert_int_equal(trace_verp_sender("no-at-sign", id_hex, "a@b", secret, strlen(secret), &rp),
			 -EINVAL);
	assert_int_equal(trace_verp_sender("b@m", "not-hex", "a@b", secret, strlen(secret), &rp),
			 -EINVAL);
	/* 64 - 1 - 40 = 23 octets of local part fit; 24 do not. */
	memset(local, 'x', 24);
	snprintf(local + 24, sizeof(local) - 24, "@m.example");
	assert_int_equal(trace_verp_sender(local, id_hex, "a@b", secret, strlen(secret), &rp), -EINVAL);
	assert_int_equal(trace_verp_sender(local + 1, id_hex, "a@b", secret, strlen(secret), &rp), 0);
	buf_deinit(&rp);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_folding_is_ignored),
	    cmocka_unit_test(test_forgeries_fail),
	    cmocka_unit_test(test_malformed_values),
	    cmocka_unit_test(test_verp_round_trip),
	    cmocka_unit_test(test_verp_forgeries_and_strangers),
	    cmocka_unit_test(test_verp_senders_that_cannot_carry_a_token),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
