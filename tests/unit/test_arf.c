// SPDX-License-Identifier: MIT
/*
 * Reading feedback reports: an RFC 5965 report's fields and the reported
 * message's Message-ID and X-Tern-Ref, the complainer taken from the
 * reported message's To when the report redacts Original-Rcpt-To,
 * Microsoft's JMRP and Apple's unsubscribe, and a DSN that is no complaint.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tern/arf.h"

static const char arf[] =
    "From: feedback@fbl.example\r\nSubject: complaint\r\nMIME-Version: 1.0\r\n"
    "Content-Type: multipart/report; report-type=feedback-report; boundary=\"b\"\r\n\r\n"
    "--b\r\nContent-Type: text/plain\r\n\r\nAn abuse report.\r\n"
    "--b\r\nContent-Type: message/feedback-report\r\n\r\n"
    "Feedback-Type: abuse\r\nUser-Agent: SomeGenerator/1.0\r\nVersion: 1\r\n"
    "Original-Mail-From: <news@origin.example>\r\nArrival-Date: Thu, 8 Mar 2005 14:00:00 EDT\r\n"
    "Source-IP: 192.0.2.1\r\nReported-Domain: origin.example\r\n"
    "--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
    "X-Tern-Ref: 1.abc\r\n def\r\nTo: Reader <reader@dest.example>\r\n"
    "Message-ID: <n1@origin.example>\r\n--b--\r\n";

static void
test_rfc5965(void **state)
{
	struct arf_report a;

	assert_int_equal(arf_parse(arf, sizeof(arf) - 1, &a), 1);
	assert_string_equal(a.feedback_type, "abuse");
	assert_string_equal(a.user_agent, "SomeGenerator/1.0");
	assert_string_equal(a.original_mail_from, "news@origin.example");
	assert_string_equal(a.arrival_date, "Thu, 8 Mar 2005 14:00:00 EDT");
	assert_string_equal(a.source_ip, "192.0.2.1");
	assert_string_equal(a.reported_domain, "origin.example");
	/* Original-Rcpt-To is redacted: the reported message's To names the complainer. */
	assert_string_equal(a.original_rcpt, "reader@dest.example");
	assert_string_equal(a.original_message_id, "<n1@origin.example>");
	assert_string_equal(a.ref, "1.abc def");
}

static void
test_other_forms(void **state)
{
	static const char jmrp[] =
	    "From: staff@hotmail.example\r\nContent-Type: multipart/mixed; boundary=\"j\"\r\n\r\n"
	    "--j\r\nContent-Type: message/rfc822\r\n\r\nX-HmXmrOriginalRecipient: "
	    "who@outlook.example\r\n"
	    "To: who@outlook.example\r\nMessage-ID: <m@x.example>\r\n\r\nNyaan\r\n--j--\r\n";
	static const char apple[] = "From: someone@icloud.example\r\nX-Apple-Unsubscribe: true\r\n"
				    "Subject: unsubscribe\r\n\r\nApple Mail sent this.\r\n";
	struct arf_report a;

	assert_int_equal(arf_parse(jmrp, sizeof(jmrp) - 1, &a), 1);
	assert_string_equal(a.feedback_type, "abuse");
	assert_string_equal(a.original_rcpt, "who@outlook.example");
	assert_string_equal(a.original_message_id, "<m@x.example>");
	assert_int_equal(arf_parse(apple, sizeof(apple) - 1, &a), 1);
	assert_string_equal(a.feedback_type, "opt-out");
	assert_string_equal(a.original_rcpt, "someone@icloud.example");
}

static void
test_not_reports(void **state)
{
	static const char dsn[] =
	    "Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
	    "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; "
	    "x\r\n--b--\r\n";
	static const char forwarded[] = "Content-Type: multipart/mixed; "
					"boundary=f\r\n\r\n--f\r\nContent-Type: message/rfc822\r\n"
					"\r\nTo: a@b.example\r\n\r\nfyi\r\n--f--\r\n";
	struct arf_report a;

	assert_int_equal(arf_parse(dsn, sizeof(dsn) - 1, &a), 0);
	assert_int_equal(arf_parse(forwarded, sizeof(forwarded) - 1, &a), 0);
	assert_int_equal(arf_parse("garbage", 7, &a), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc5965),
	    cmocka_unit_test(test_other_forms),
	    cmocka_unit_test(test_not_reports),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
