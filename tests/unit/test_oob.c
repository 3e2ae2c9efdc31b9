// SPDX-License-Identifier: MIT
/*
 * Reading bounces: a standard DSN's recipient groups (a delivered one is
 * no bounce, a delayed one is reported as such), a DSN whose MIME structure
 * was lost, notes for people (Exim's X-Failed-Recipients, qmail-like text),
 * a quoted local part, the X-Tern-Ref of the returned message, and ordinary
 * mail that is none of these. mime_parse's field reader underneath.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tern/mime_parse.h"
#include "tern/oob.h"

static const char standard[] =
    "From: MAILER-DAEMON@mx.example.net\r\nTo: bounce@bounces.example\r\n"
    "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
    "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n"
    "--b\r\nContent-Type: text/plain\r\n\r\nSorry.\r\n"
    "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
    "Reporting-MTA: dns; mx.example.net\r\n\r\n"
    "Final-Recipient: rfc822; ok@example.net\r\nAction: delivered\r\nStatus: 2.0.0\r\n\r\n"
    "Final-Recipient: rfc822; gone@example.net\r\nOriginal-Recipient: rfc822;Gone@example.net\r\n"
    "Action: failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; mx2.example.net\r\n"
    "Diagnostic-Code: smtp; 550 5.1.1 <gone@example.net>:\r\n    user unknown\r\n\r\n"
    "Final-Recipient: rfc822; slow@example.net\r\nAction: delayed\r\nStatus: 4.4.1\r\n\r\n"
    "--b\r\nContent-Type: message/rfc822\r\n\r\n"
    "X-Tern-Ref: 1.abc.def\r\nMessage-ID: <orig@example.org>\r\nSubject: hi\r\n\r\nhello\r\n"
    "--b--\r\n";

static void
test_standard_dsn(void **state)
{
	struct oob_report o;

	assert_int_equal(oob_parse(standard, sizeof(standard) - 1, &o), 1);
	assert_true(o.standard);
	assert_string_equal(o.reporting_mta, "mx.example.net");
	assert_int_equal(o.n_rcpts, 2);
	assert_string_equal(o.rcpts[0].address, "gone@example.net");
	assert_string_equal(o.rcpts[0].original, "Gone@example.net");
	assert_string_equal(o.rcpts[0].action, "failed");
	assert_string_equal(o.rcpts[0].status, "5.1.1");
	assert_int_equal(o.rcpts[0].code, 550);
	assert_string_equal(o.rcpts[0].diagnostic, "550 5.1.1 <gone@example.net>: user unknown");
	assert_string_equal(o.rcpts[0].remote_mta, "mx2.example.net");
	assert_string_equal(o.rcpts[1].address, "slow@example.net");
	assert_string_equal(o.rcpts[1].action, "delayed");
	assert_string_equal(o.ref, "1.abc.def");
	assert_string_equal(o.original_message_id, "<orig@example.org>");
}

static void
test_lost_structure(void **state)
{
	/* multipart/report whose boundaries were lost: the fields are still in the text. */
	static const char m[] =
	    "From: Mail Delivery Subsystem <MAILER-DAEMON@example.edu>\r\n"
	    "Content-Type: multipart/report; report-type=delivery-status; boundary=\"gone\"\r\n\r\n"
	    "The following addresses had permanent fatal errors\r\n\r\n"
	    "Reporting-MTA: dns; example.edu\r\n\r\n"
	    "Final-Recipient: RFC822; who@example.edu\r\nAction: failed\r\nStatus: 5.5.0\r\n";
	struct oob_report o;

	assert_int_equal(oob_parse(m, sizeof(m) - 1, &o), 1);
	assert_int_equal(o.n_rcpts, 1);
	assert_string_equal(o.rcpts[0].address, "who@example.edu");
	assert_string_equal(o.rcpts[0].status, "5.5.0");
}

static void
test_notes_for_people(void **state)
{
	static const char exim[] =
	    "From: Mail Delivery System <Mailer-Daemon@e1.example.org>\r\n"
	    "X-Failed-Recipients: who@example.jp\r\nSubject: Mail delivery failed\r\n\r\n"
	    "A message that you sent could not be delivered.\r\n\r\n  who@example.jp\r\n"
	    "    SMTP error from remote mail server after RCPT TO:<who@example.jp>:\r\n"
	    "    host mx.example.jp [192.0.2.20]: 550 5.1.1 <who@example.jp>... User "
	    "unknown\r\n\r\n"
	    "------ This is a copy of the message, including all the headers. ------\r\n"
	    "X-Tern-Ref: 1.quoted.inline\r\nTo: someone@else.example\r\n";
	static const char qmail[] =
	    "From: MAILER-DAEMON@mx.example.com\r\nSubject: failure notice\r\n\r\n"
	    "Hi. This is the qmail-send program. I'm afraid I wasn't able to deliver your "
	    "message.\r\n"
	    "\r\n<\"a..b\"@example.com>:\r\n192.0.2.1 does not like recipient.\r\n"
	    "Remote host said: 552 mailbox full\r\n\r\n--- Below this line is a copy of the "
	    "message.\r\n";
	struct oob_report o;

	assert_int_equal(oob_parse(exim, sizeof(exim) - 1, &o), 1);
	assert_false(o.standard);
	assert_string_equal(o.rcpts[0].address, "who@example.jp");
	assert_int_equal(o.rcpts[0].code, 550);
	assert_string_equal(o.rcpts[0].status, "5.1.1");
	assert_string_equal(o.rcpts[0].diagnostic, "550 5.1.1 <who@example.jp>... User unknown");
	assert_string_equal(o.ref, "1.quoted.inline");

	assert_int_equal(oob_parse(qmail, sizeof(qmail) - 1, &o), 1);
	assert_string_equal(o.rcpts[0].address, "\"a..b\"@example.com");
	assert_int_equal(o.rcpts[0].code, 552);
	assert_string_equal(o.rcpts[0].diagnostic, "552 mailbox full");
}

static void
test_not_bounces(void **state)
{
	static const char plain[] = "From: friend@example.org\r\nSubject: lunch\r\n\r\n"
				    "550 people at the party, see you@there.example\r\n";
	static const char delivered[] =
	    "Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
	    "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\n"
	    "Final-Recipient: rfc822; ok@example.net\r\nAction: relayed\r\nStatus: "
	    "2.0.0\r\n--b--\r\n";
	struct oob_report o;

	assert_int_equal(oob_parse(plain, sizeof(plain) - 1, &o), 0);
	assert_int_equal(o.n_rcpts, 0);
	assert_int_equal(oob_parse(delivered, sizeof(delivered) - 1, &o), 0);
	assert_int_equal(oob_parse("", 0, &o), 0);
}

static void
field(void *arg, int group, const char *name, const char *value)
{
	struct buf *b = arg;

	buf_printf(b, "%d|%s|%s\n", group, name, value);
}

static void
test_fields(void **state)
{
	static const char block[] =
	    "A: one\r\n  two\r\nnot a field\r\nB:three  \r\n\r\n\r\nC: x\r\n";
	char v[8];
	struct buf b;

	buf_init(&b);
	mime_parse_fields(block, sizeof(block) - 1, false, field, &b);
	assert_string_equal(b.data, "0|A|one two\n0|B|three\n1|C|x\n");
	buf_reset(&b);
	/* A header section ends at the first line that is not a field. */
	mime_parse_fields(block, sizeof(block) - 1, true, field, &b);
	assert_string_equal(b.data, "0|A|one two\n");
	buf_deinit(&b);
	assert_true(mime_parse_header(block, sizeof(block) - 1, "a", v, sizeof(v)));
	assert_string_equal(v, "one two");
	assert_false(mime_parse_header(block, sizeof(block) - 1, "B", v, sizeof(v)));
	mime_parse_address("rfc822; <x.y@example.org>.", v, sizeof(v));
	assert_string_equal(v, ""); /* longer than out: none rather than a part */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_standard_dsn),     cmocka_unit_test(test_lost_structure),
	    cmocka_unit_test(test_notes_for_people), cmocka_unit_test(test_not_bounces),
	    cmocka_unit_test(test_fields),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
