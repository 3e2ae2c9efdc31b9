// SPDX-License-Identifier: MIT
/*
 * DSN building: the three parts of RFC 3464 in order, the fields of the
 * delivery-status part, quoted text kept to one 7-bit line (a reply with a
 * CRLF in it cannot add a field), the refusal of a DSN without a sender, and
 * dsn_is_report on a folded Content-Type.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tern/dsn.h"

static const char headers[] = "Received: from x\r\n\tby y\r\nSubject: caf\xc3\xa9\r\n"
			      "Message-ID: <m1@example.org>\r\n\r\nbody that is not returned\r\n";

static struct dsn_report
report(void)
{
	return (struct dsn_report){
	    .reporting_mta = "mta.example",
	    .to = "sender@example.org",
	    .recipient = "rcpt@example.net",
	    .status = "5.1.1",
	    .code = 550,
	    .enhanced = "5.1.1",
	    .diagnostic = "no such user",
	    .remote_mta = "mx.example.net",
	    .message_id = "dsn1@mta.example",
	    .arrival_date = 1700000000,
	    .date = 1700000600,
	    .headers = headers,
	    .headers_len = sizeof(headers) - 1,
	};
}

static void
test_parts_and_fields(void **state)
{
	struct dsn_report r = report();
	struct tern_err err;
	struct buf out;
	const char *ds, *hdr;

	buf_init(&out);
	assert_int_equal(dsn_build(&r, &out, &err), 0);
	assert_non_null(strstr(out.data,
			       "Content-Type: multipart/report; report-type=delivery-status;"
			       "\r\n\tboundary=\"=_tern_dsn_dsn1@mta.example\"\r\n"));
	assert_non_null(strstr(out.data, "\r\nTo: <sender@example.org>\r\n"));
	assert_non_null(strstr(out.data, "\r\nMessage-ID: <dsn1@mta.example>\r\n"));
	ds = strstr(out.data, "Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; "
			      "mta.example\r\nArrival-Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n\r\n"
			      "Final-Recipient: rfc822; rcpt@example.net\r\nAction: failed\r\n"
			      "Status: 5.1.1\r\nRemote-MTA: dns; mx.example.net\r\n"
			      "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n");
	assert_non_null(ds);
	hdr = strstr(out.data, "Content-Type: text/rfc822-headers\r\n");
	assert_true(hdr > ds);
	/* The headers, 7-bit, without the body. */
	assert_non_null(strstr(hdr, "Received: from x\r\n\tby y\r\nSubject: caf??\r\n"));
	assert_null(strstr(out.data, "body that is not returned"));
	assert_non_null(strstr(out.data, "\r\n--=_tern_dsn_dsn1@mta.example--\r\n"));
	buf_deinit(&out);
}

static void
test_quoted_text_stays_one_line(void **state)
{
	struct dsn_report r = report();
	struct tern_err err;
	struct buf out;

	r.diagnostic = "bad\r\nX-Injected: yes\r\n\xff";
	r.recipient = "a@b\r\nX-Other: no";
	buf_init(&out);
	assert_int_equal(dsn_build(&r, &out, &err), 0);
	assert_null(strstr(out.data, "\r\nX-Injected"));
	assert_null(strstr(out.data, "\r\nX-Other"));
	assert_non_null(
	    strstr(out.data, "Diagnostic-Code: smtp; 550 5.1.1 bad  X-Injected: yes  ?\r\n"));
	buf_deinit(&out);
}

static void
test_refusals(void **state)
{
	struct dsn_report r = report();
	struct tern_err err;
	struct buf out;

	buf_init(&out);
	r.to = "";
	assert_int_equal(dsn_build(&r, &out, &err), -EINVAL);
	r = report();
	r.status = "9.9.9";
	assert_int_equal(dsn_build(&r, &out, &err), -EINVAL);
	r = report();
	r.message_id = "<x>";
	assert_int_equal(dsn_build(&r, &out, &err), -EINVAL);
	assert_int_equal(out.len, 0);
	buf_deinit(&out);
}

static void
test_is_report(void **state)
{
	static const char folded[] = "From: MAILER-DAEMON@x\r\nContent-Type: multipart/report;\r\n"
				     "\treport-type=delivery-status; boundary=b\r\n\r\n";
	static const char feedback[] =
	    "Content-Type: multipart/report; report-type=feedback-report\r\n\r\n";
	static const char plain[] = "Subject: x\r\n\r\nContent-Type: multipart/report; "
				    "report-type=delivery-status\r\n";

	assert_true(dsn_is_report(folded, sizeof(folded) - 1));
	assert_false(dsn_is_report(feedback, sizeof(feedback) - 1));
	assert_false(dsn_is_report(plain, sizeof(plain) - 1));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parts_and_fields),
	    cmocka_unit_test(test_quoted_text_stays_one_line),
	    cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_is_report),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
