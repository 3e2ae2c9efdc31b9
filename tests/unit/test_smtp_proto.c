// SPDX-License-Identifier: MIT
/*
 * Unit tests for smtp_proto: command parsing (every verb, every error code,
 * address edge cases), the DATA reader (every smuggling variant split at
 * every byte boundary must give the same result), BDAT line-ending checks,
 * reply formatting and reply-line parsing.
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

#include "tern/smtp_proto.h"

/* Lets the out-of-memory test ask for an impossible allocation under ASan. */
const char *
__asan_default_options(void)
{
	return "allocator_may_return_null=1";
}

static int
parse(const char *line, struct smtp_cmd *cmd, struct tern_err *err)
{
	tern_err_clear(err);
	return smtp_parse_command(line, strlen(line), cmd, err);
}

static struct smtp_cmd cmd;
static struct tern_err err;

static void
ok(const char *line, enum smtp_verb verb)
{
	if (parse(line, &cmd, &err) != 0)
		fail_msg("\"%s\": %d %s %s", line, err.code, err.enhanced, err.msg);
	assert_int_equal(cmd.verb, verb);
}

static void
bad(const char *line, int code, const char *enhanced)
{
	if (parse(line, &cmd, &err) == 0)
		fail_msg("\"%s\" parsed", line);
	if (err.code != code || strcmp(err.enhanced, enhanced) != 0)
		fail_msg("\"%s\": %d %s, want %d %s", line, err.code, err.enhanced, code, enhanced);
}

static void
ok_addr(const char *line, const char *addr)
{
	if (parse(line, &cmd, &err) != 0)
		fail_msg("\"%s\": %d %s %s", line, err.code, err.enhanced, err.msg);
	assert_string_equal(cmd.addr, addr);
}

static void
test_every_verb(void **state)
{
	ok("HELO mx.example.com", SMTP_VERB_HELO);
	assert_string_equal(cmd.domain, "mx.example.com");
	ok("EHLO mx.example.com", SMTP_VERB_EHLO);
	ok("MAIL FROM:<a@example.com>", SMTP_VERB_MAIL);
	ok("RCPT TO:<b@example.com>", SMTP_VERB_RCPT);
	ok("DATA", SMTP_VERB_DATA);
	ok("BDAT 10", SMTP_VERB_BDAT);
	ok("RSET", SMTP_VERB_RSET);
	ok("NOOP", SMTP_VERB_NOOP);
	ok("QUIT", SMTP_VERB_QUIT);
	ok("VRFY someone", SMTP_VERB_VRFY);
	ok("HELP", SMTP_VERB_HELP);
	ok("STARTTLS", SMTP_VERB_STARTTLS);
	ok("AUTH PLAIN", SMTP_VERB_AUTH);
}

static void
test_case_insensitive(void **state)
{
	ok("ehlo x", SMTP_VERB_EHLO);
	ok("Helo x", SMTP_VERB_HELO);
	ok("mail from:<a@b.c>", SMTP_VERB_MAIL);
	ok("Rcpt To:<a@b.c>", SMTP_VERB_RCPT);
	ok("data", SMTP_VERB_DATA);
	ok("StartTls", SMTP_VERB_STARTTLS);
	ok("bdat 5 last", SMTP_VERB_BDAT);
	assert_true(cmd.last);
	ok("auth plain", SMTP_VERB_AUTH);
	assert_string_equal(cmd.mechanism, "PLAIN");
	ok("MAIL FROM:<a@b.c> size=10 body=8bitmime smtputf8", SMTP_VERB_MAIL);
	assert_int_equal(cmd.size, 10);
	assert_int_equal(cmd.body, SMTP_BODY_8BITMIME);
	assert_true(cmd.smtputf8);
}

static void
test_unknown_and_syntax(void **state)
{
	bad("FOO bar", 500, "5.5.1");
	assert_int_equal(cmd.verb, SMTP_VERB_UNKNOWN);
	bad("", 500, "5.5.1");
	bad("QUITX", 500, "5.5.1");
	bad(" QUIT", 500, "5.5.1");
	/* the verb is known even when the rest is wrong */
	bad("DATA now", 501, "5.5.4");
	assert_int_equal(cmd.verb, SMTP_VERB_DATA);
	bad("RSET x", 501, "5.5.4");
	bad("QUIT x", 501, "5.5.4");
	bad("STARTTLS x", 501, "5.5.4");
	ok("QUIT   ", SMTP_VERB_QUIT);
	bad("VRFY", 501, "5.5.4");
	ok("VRFY  postmaster ", SMTP_VERB_VRFY);
	assert_int_equal(cmd.arg_len, 10);
	assert_memory_equal(cmd.arg, "postmaster", 10);
	ok("NOOP hello there", SMTP_VERB_NOOP);
	assert_int_equal(cmd.arg_len, 11);
	ok("HELP MAIL", SMTP_VERB_HELP);
	ok("NOOP", SMTP_VERB_NOOP);
	assert_int_equal(cmd.arg_len, 0);
}

static void
test_control_characters(void **state)
{
	struct smtp_cmd c;

	bad("NOOP a\tb", 501, "5.5.4");
	assert_int_equal(cmd.verb, SMTP_VERB_NOOP);
	bad("MAIL FROM:<a\x01@b.c>", 501, "5.5.4");
	bad("QUIT\r", 501, "5.5.4");
	bad("NOOP \x7f", 501, "5.5.4");
	bad("FOO\x02", 501, "5.5.4");
	tern_err_clear(&err);
	assert_true(smtp_parse_command("RCPT TO:<a@b.c>\0x", 17, &c, &err) < 0);
	assert_int_equal(err.code, 501);
	assert_int_equal(c.verb, SMTP_VERB_RCPT);
	assert_true(smtp_parse_command(NULL, 0, &c, &err) < 0);
	assert_int_equal(err.code, 500);
}

static void
test_line_length(void **state)
{
	char line[1200];

	memset(line, 'x', sizeof(line));
	memcpy(line, "NOOP ", 5);
	assert_int_equal(smtp_parse_command(line, 998, &cmd, &err), 0);
	assert_true(smtp_parse_command(line, 999, &cmd, &err) < 0);
	assert_int_equal(err.code, 500);
	assert_string_equal(err.enhanced, "5.5.2");
}

static void
test_helo(void **state)
{
	char line[300];

	bad("HELO", 501, "5.5.4");
	bad("EHLO   ", 501, "5.5.4");
	assert_int_equal(cmd.verb, SMTP_VERB_EHLO);
	ok("EHLO [192.0.2.1]", SMTP_VERB_EHLO);
	assert_string_equal(cmd.domain, "[192.0.2.1]");
	ok("EHLO   client.example  ", SMTP_VERB_EHLO);
	assert_string_equal(cmd.domain, "client.example");
	ok("HELO my_host extra words", SMTP_VERB_HELO);
	assert_string_equal(cmd.domain, "my_host");
	snprintf(line, sizeof(line), "EHLO %0255d", 0);
	ok(line, SMTP_VERB_EHLO);
	snprintf(line, sizeof(line), "EHLO %0256d", 0);
	bad(line, 501, "5.5.4");
	bad("EHLO h\xc3", 501, "5.5.4");
}

static void
test_mail_paths(void **state)
{
	ok_addr("MAIL FROM:<a@example.com>", "a@example.com");
	ok_addr("MAIL FROM: <a@example.com>", "a@example.com");
	ok_addr("MAIL FROM:<>", "");
	ok_addr("MAIL FROM:<> SIZE=0", "");
	ok_addr("MAIL FROM:a@example.com", "a@example.com");
	ok_addr("MAIL FROM:a@example.com SIZE=5", "a@example.com");
	ok_addr("MAIL FROM:<@relay.one,@relay.two:a@example.com>", "a@example.com");
	ok_addr("MAIL FROM:<@relay.one:a@example.com>", "a@example.com");
	ok_addr("MAIL FROM:<\"john q\\\"doe\"@example.com>", "\"john q\\\"doe\"@example.com");
	ok_addr("MAIL FROM:<\"a>b\"@example.com>", "\"a>b\"@example.com");
	ok_addr("MAIL FROM:<a@[192.0.2.1]>", "a@[192.0.2.1]");
	ok_addr("MAIL FROM:<a@[IPv6:2001:db8::1]>", "a@[IPv6:2001:db8::1]");
	ok_addr("MAIL FROM:<a@[ipv6:::1]>", "a@[ipv6:::1]");
	ok_addr("MAIL FROM:<foo.@docomo.ne.jp>", "foo.@docomo.ne.jp");
	ok_addr("MAIL FROM:<a+tag!#$%&'*/=?^_`{|}~-@x-y.example>",
		"a+tag!#$%&'*/=?^_`{|}~-@x-y.example");
	ok_addr("MAIL FROM:<A@EXAMPLE.COM>", "A@EXAMPLE.COM");

	bad("MAIL FROM:  <a@example.com>", 501, "5.1.7");
	bad("MAIL FROM:<a@example.com", 501, "5.1.7");
	bad("MAIL FROM:<a>", 501, "5.1.7");
	bad("MAIL FROM:<postmaster>", 501, "5.1.7");
	bad("MAIL FROM:<@relay.one:>", 501, "5.1.7");
	bad("MAIL FROM:<@:a@b.c>", 501, "5.1.7");
	bad("MAIL FROM:<a b@example.com>", 501, "5.1.7");
	bad("MAIL FROM:a b@example.com", 501, "5.1.7");
	bad("MAIL FROM:<\"unterminated@example.com>", 501, "5.1.7");
	bad("MAIL FROM:\"a\\", 501, "5.1.7");
	bad("MAIL FROM:<\"a\\\x80\"@example.com>", 501, "5.1.7");
	bad("MAIL "
	    "FROM:<a@[IPv6:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0]>",
	    501, "5.1.7");
	bad("MAIL FROM:<a@[192.0.2]>", 501, "5.1.7");
	bad("MAIL FROM:<a@[IPv6:zz::1]>", 501, "5.1.7");
	bad("MAIL FROM:<a@[2001:db8::1]>", 501, "5.1.7");
	bad("MAIL FROM:<a@[192.0.2.1>", 501, "5.1.7");
	bad("MAIL FROM:<a@-x.example>", 501, "5.1.7");
	bad("MAIL FROM:<a@x-.example>", 501, "5.1.7");
	bad("MAIL FROM:<a@x..example>", 501, "5.1.7");
	bad("MAIL FROM:<a@example.com.>", 501, "5.1.7");
	bad("MAIL FROM:<a@exa_mple.com>", 501, "5.1.7");
	bad("MAIL FROM:<a@example.com>SIZE=1", 501, "5.1.7");
	bad("MAIL FROM:<a@@example.com>", 501, "5.1.7");
	bad("MAIL TO:<a@example.com>", 501, "5.5.4");
	bad("MAIL FROM", 501, "5.5.4");
	bad("MAIL FROM:", 501, "5.5.4");
	bad("MAIL", 501, "5.5.4");
	ok_addr("MAIL  FROM:<a@b.c>", "a@b.c");
}

static void
test_address_lengths(void **state)
{
	char label[64], line[600], domain[300];
	int i;

	memset(label, 'l', 63);
	label[63] = '\0';
	snprintf(line, sizeof(line), "MAIL FROM:<a@%s.example>", label);
	ok(line, SMTP_VERB_MAIL);
	snprintf(line, sizeof(line), "MAIL FROM:<a@%sl.example>", label);
	bad(line, 501, "5.1.7");

	/* a 255-byte domain is the most there can be */
	memset(domain, 'x', 255);
	domain[255] = '\0';
	for (i = 63; i < 255; i += 64)
		domain[i] = '.';
	snprintf(line, sizeof(line), "RCPT TO:<a@%s>", domain);
	ok(line, SMTP_VERB_RCPT);
	snprintf(line, sizeof(line), "RCPT TO:<a@%s.x>", domain);
	bad(line, 501, "5.1.3");

	/* 64 + 1 + 255 = SMTP_ADDR_MAX */
	snprintf(line, sizeof(line), "RCPT TO:<%064d@%s>", 0, domain);
	ok(line, SMTP_VERB_RCPT);
	assert_int_equal(strlen(cmd.addr), SMTP_ADDR_MAX);
	snprintf(line, sizeof(line), "RCPT TO:<%065d@%s>", 0, domain);
	bad(line, 501, "5.1.3");
	domain[250] = '\0';
	snprintf(line, sizeof(line), "RCPT TO:<%069d@%s>", 0, domain);
	ok(line, SMTP_VERB_RCPT);
	assert_int_equal(strlen(cmd.addr), SMTP_ADDR_MAX);
	snprintf(line, sizeof(line), "RCPT TO:<%070d@%s>", 0, domain);
	bad(line, 501, "5.1.3");
}

static void
test_mail_params(void **state)
{
	ok("MAIL FROM:<a@b.c> SIZE=123", SMTP_VERB_MAIL);
	assert_true(cmd.has_size);
	assert_int_equal(cmd.size, 123);
	assert_int_equal(cmd.body, SMTP_BODY_UNSPEC);
	assert_false(cmd.smtputf8);
	ok("MAIL FROM:<a@b.c>", SMTP_VERB_MAIL);
	assert_false(cmd.has_size);
	ok("MAIL FROM:<a@b.c> SIZE=99999999999999999999999", SMTP_VERB_MAIL);
	assert_true(cmd.size == UINT64_MAX);
	ok("MAIL FROM:<a@b.c> SIZE=18446744073709551615", SMTP_VERB_MAIL);
	assert_true(cmd.size == UINT64_MAX);
	ok("MAIL FROM:<a@b.c> SIZE=18446744073709551614", SMTP_VERB_MAIL);
	assert_true(cmd.size == UINT64_MAX - 1);
	ok("MAIL FROM:<a@b.c> BODY=7BIT", SMTP_VERB_MAIL);
	assert_int_equal(cmd.body, SMTP_BODY_7BIT);
	ok("MAIL FROM:<a@b.c> BODY=BINARYMIME", SMTP_VERB_MAIL);
	assert_int_equal(cmd.body, SMTP_BODY_BINARYMIME);
	ok("MAIL FROM:<a@b.c>   SMTPUTF8   SIZE=1  ", SMTP_VERB_MAIL);
	assert_true(cmd.smtputf8);
	ok("MAIL FROM:<a@b.c> RET=HDRS ENVID=QQ314159 AUTH=<>", SMTP_VERB_MAIL);
	assert_memory_equal(cmd.arg, "FROM:<a@b.c> RET", 16);

	bad("MAIL FROM:<a@b.c> SIZE=abc", 501, "5.5.4");
	bad("MAIL FROM:<a@b.c> SIZE=", 501, "5.5.4");
	bad("MAIL FROM:<a@b.c> SIZE", 501, "5.5.4");
	bad("MAIL FROM:<a@b.c> SIZE=1 SIZE=2", 501, "5.5.4");
	bad("MAIL FROM:<a@b.c> BODY=9BIT", 501, "5.5.4");
	bad("MAIL FROM:<a@b.c> BODY=7BIT BODY=7BIT", 501, "5.5.4");
	bad("MAIL FROM:<a@b.c> SMTPUTF8=yes", 501, "5.5.4");
	bad("MAIL FROM:<a@b.c> SMTPUTF8 SMTPUTF8", 501, "5.5.4");
	bad("MAIL FROM:<a@b.c> RET", 501, "5.5.4");
	bad("MAIL FROM:<a@b.c> =x", 501, "5.5.4");
	bad("MAIL FROM:<a@b.c> -X=1", 501, "5.5.4");
	bad("MAIL FROM:<a@b.c> X=a=b", 501, "5.5.4");
	bad("MAIL FROM:<a@b.c> X!", 501, "5.5.4");
	bad("MAIL FROM:<a@b.c> XFOO=1", 555, "5.5.4");
	assert_non_null(strstr(err.msg, "XFOO"));
	bad("MAIL FROM:<a@b.c> NOTIFY=NEVER", 555, "5.5.4");
	bad("MAIL FROM:<a@b.c> X-VENDOR", 555, "5.5.4");
}

static void
test_rcpt(void **state)
{
	ok_addr("RCPT TO:<b@example.com>", "b@example.com");
	ok_addr("RCPT TO: <b@example.com>", "b@example.com");
	ok_addr("RCPT TO:<postmaster>", "postmaster");
	ok_addr("RCPT TO:<PostMaster>", "PostMaster");
	ok_addr("RCPT TO:postmaster", "postmaster");
	ok_addr("RCPT TO:<postmaster@example.com>", "postmaster@example.com");
	ok_addr("RCPT TO:<postmaster> NOTIFY=NEVER", "postmaster");
	ok_addr("RCPT TO:<@r.example:b@example.com>", "b@example.com");
	ok_addr("RCPT TO:<b@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@example.com",
		"b@example.com");

	bad("RCPT TO:<>", 501, "5.1.3");
	bad("RCPT TO:<b>", 501, "5.1.3");
	bad("RCPT TO:<postmasterx>", 501, "5.1.3");
	bad("RCPT TO:<postmaster", 501, "5.1.3");
	bad("RCPT TO:<b@example.com", 501, "5.1.3");
	bad("RCPT TO:", 501, "5.5.4");
	bad("RCPT FROM:<b@example.com>", 501, "5.5.4");
	bad("RCPT TO:<b@example.com> SIZE=10", 555, "5.5.4");
	bad("RCPT TO:<b@example.com> SMTPUTF8", 555, "5.5.4");
	bad("RCPT TO:<b@example.com> ORCPT", 501, "5.5.4");
}

static void
test_utf8_addresses(void **state)
{
	const char *rcpt = "RCPT TO:<j\xc3\xb6rg@b\xc3\xbc"
			   "cher.example>";

	ok_addr("MAIL FROM:<j\xc3\xb6rg@b\xc3\xbc"
		"cher.example> SMTPUTF8",
		"j\xc3\xb6rg@b\xc3\xbc"
		"cher.example");
	ok_addr("MAIL FROM:<\"\xe2\x82\xac uro\"@example.com> SMTPUTF8",
		"\"\xe2\x82\xac uro\"@example.com");
	ok("MAIL FROM:<\xf0\x9f\x98\x80@example.com> SMTPUTF8", SMTP_VERB_MAIL);
	bad("MAIL FROM:<j\xc3\xb6rg@example.com>", 553, "5.6.7");
	bad("MAIL FROM:<jorg@b\xc3\xbc"
	    "cher.example>",
	    553, "5.6.7");

	bad(rcpt, 553, "5.6.7");
	tern_err_clear(&err);
	assert_int_equal(smtp_parse_command_utf8(rcpt, strlen(rcpt), true, &cmd, &err), 0);
	assert_string_equal(cmd.addr, "j\xc3\xb6rg@b\xc3\xbc"
				      "cher.example");
	assert_int_equal(smtp_parse_command_utf8("RCPT TO:<a@b.c>", 15, true, &cmd, &err), 0);

	/* malformed UTF-8 is never an address, SMTPUTF8 or not */
	bad("MAIL FROM:<a\xc3\x28@example.com> SMTPUTF8", 501, "5.1.7");
	bad("MAIL FROM:<a\xc0\xaf@example.com> SMTPUTF8", 501, "5.1.7");
	bad("MAIL FROM:<a\xed\xa0\x80@example.com> SMTPUTF8", 501, "5.1.7");
	bad("MAIL FROM:<a\xf4\x90\x80\x80@example.com> SMTPUTF8", 501, "5.1.7");
	bad("MAIL FROM:<a\xe2\x82@example.com> SMTPUTF8", 501, "5.1.7");
	bad("MAIL FROM:<a\xff@example.com> SMTPUTF8", 501, "5.1.7");
	bad("MAIL FROM:<a\xe0\x80\xaf@example.com> SMTPUTF8", 501, "5.1.7");
	bad("MAIL FROM:<a\xf0\x80\x80\xaf@example.com> SMTPUTF8", 501, "5.1.7");
	bad("MAIL FROM:<\"a\\\xc3\xb6\"@example.com> SMTPUTF8", 501, "5.1.7");
}

static void
test_bdat(void **state)
{
	ok("BDAT 100", SMTP_VERB_BDAT);
	assert_int_equal(cmd.chunk_size, 100);
	assert_false(cmd.last);
	ok("BDAT 0 LAST", SMTP_VERB_BDAT);
	assert_int_equal(cmd.chunk_size, 0);
	assert_true(cmd.last);
	ok("BDAT 18446744073709551615", SMTP_VERB_BDAT);
	assert_true(cmd.chunk_size == UINT64_MAX);
	bad("BDAT 18446744073709551616", 501, "5.5.4");
	bad("BDAT", 501, "5.5.4");
	bad("BDAT x", 501, "5.5.4");
	bad("BDAT -1", 501, "5.5.4");
	bad("BDAT 10 FIRST", 501, "5.5.4");
	bad("BDAT 10 LAST x", 501, "5.5.4");
	bad("BDAT 10 LASTX", 501, "5.5.4");
}

static void
test_auth(void **state)
{
	char line[1100];

	ok("AUTH plain", SMTP_VERB_AUTH);
	assert_string_equal(cmd.mechanism, "PLAIN");
	assert_string_equal(cmd.initial_response, "");
	ok("AUTH PLAIN AGFsaWNlAHNlY3JldA==", SMTP_VERB_AUTH);
	assert_string_equal(cmd.initial_response, "AGFsaWNlAHNlY3JldA==");
	ok("AUTH PLAIN =", SMTP_VERB_AUTH);
	assert_string_equal(cmd.initial_response, "=");
	ok("AUTH scram-sha-256 biwsbj11c2VyLHI9ZnlrbytkMmxiYkZnT05Sdjlxa3hkYXdM", SMTP_VERB_AUTH);
	assert_string_equal(cmd.mechanism, "SCRAM-SHA-256");
	ok("AUTH X_OAUTH2 YWJj", SMTP_VERB_AUTH);

	bad("AUTH", 501, "5.5.4");
	bad("AUTH PL@IN", 501, "5.5.4");
	bad("AUTH ABCDEFGHIJKLMNOPQRSTU", 501, "5.5.4");
	ok("AUTH ABCDEFGHIJKLMNOPQRST", SMTP_VERB_AUTH);
	bad("AUTH PLAIN abc", 501, "5.5.2");
	bad("AUTH PLAIN ab=c", 501, "5.5.2");
	bad("AUTH PLAIN a===", 501, "5.5.2");
	bad("AUTH PLAIN ab!c", 501, "5.5.2");
	bad("AUTH PLAIN YWJj YWJj", 501, "5.5.4");

	/* longer than a command line, as RFC 4954 allows, up to our buffer */
	memset(line, 'A', sizeof(line));
	memcpy(line, "AUTH XOAUTH2 ", 13);
	assert_int_equal(smtp_parse_command(line, 13 + 1020, &cmd, &err), 0);
	assert_int_equal(strlen(cmd.initial_response), 1020);
	assert_true(smtp_parse_command(line, 13 + 1024, &cmd, &err) < 0);
	assert_int_equal(err.code, 500);
	assert_string_equal(err.enhanced, "5.5.6");
}

/*
 * DATA reader. feed() pushes the input in chunks of the sizes given by a
 * chunker and checks the contract on every call.
 */
struct result {
	struct buf out;
	size_t consumed;
	bool done, bad, big;
};

typedef size_t (*chunk_fn)(size_t i, void *arg);

static void
feed(const char *in, size_t len, size_t max, bool fix, chunk_fn chunk, void *arg,
     struct result *res)
{
	struct smtp_data_reader r;
	enum smtp_data_status st = SMTP_DATA_MORE;
	size_t pos = 0, n, used, i;

	smtp_data_reader_init(&r, max, fix);
	buf_init(&res->out);
	for (i = 0; pos < len && st == SMTP_DATA_MORE; i++) {
		n = chunk(i, arg);
		if (n > len - pos)
			n = len - pos;
		st = smtp_data_feed(&r, in + pos, n, &res->out, &used);
		assert_true(used <= n);
		if (st == SMTP_DATA_MORE)
			assert_int_equal(used, n);
		pos += used;
	}
	if (st == SMTP_DATA_DONE) {
		assert_int_equal(smtp_data_feed(&r, "x", 1, &res->out, &used), SMTP_DATA_DONE);
		assert_int_equal(used, 0);
	}
	res->consumed = pos;
	res->done = st == SMTP_DATA_DONE;
	res->bad = smtp_data_bad_line_ending(&r);
	res->big = smtp_data_too_big(&r);
	assert_false(smtp_data_nomem(&r));
}

static size_t
chunk_all(size_t i, void *arg)
{
	return SIZE_MAX;
}

static size_t
chunk_one(size_t i, void *arg)
{
	return 1;
}

/* First chunk *arg bytes, the rest in one. */
static size_t
chunk_split(size_t i, void *arg)
{
	return i == 0 ? *(size_t *)arg : SIZE_MAX;
}

static size_t
chunk_random(size_t i, void *arg)
{
	uint32_t *x = arg;

	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return 1 + *x % 7;
}

/* An empty buf may have no data at all. */
static bool
buf_is(const struct buf *b, const char *p, size_t n)
{
	return b->len == n && (n == 0 || memcmp(b->data, p, n) == 0);
}

static bool
same_result(const struct result *a, const struct result *b)
{
	return buf_is(&a->out, b->out.data, b->out.len) && a->consumed == b->consumed &&
	       a->done == b->done && a->bad == b->bad && a->big == b->big;
}

static void
check_against(const struct result *want, const struct result *got, const char *how, size_t at)
{
	if (!same_result(want, got))
		fail_msg("%s %zu: out %zu/%zu consumed %zu/%zu done %d/%d bad %d/%d", how, at,
			 got->out.len, want->out.len, got->consumed, want->consumed, got->done,
			 want->done, got->bad, want->bad);
}

/* The same result whichever way the input is cut. */
static void
feed_every_way(const char *in, size_t len, size_t max, bool fix, struct result *want)
{
	struct result got;
	size_t cut, at;
	uint32_t seed;

	feed(in, len, max, fix, chunk_all, NULL, want);
	feed(in, len, max, fix, chunk_one, NULL, &got);
	check_against(want, &got, "bytewise", 0);
	buf_deinit(&got.out);
	for (cut = 0; cut <= len; cut++) {
		feed(in, len, max, fix, chunk_split, &cut, &got);
		check_against(want, &got, "split at", cut);
		buf_deinit(&got.out);
	}
	for (at = 0; at < 20; at++) {
		seed = 2463534242u + (uint32_t)at;
		feed(in, len, max, fix, chunk_random, &seed, &got);
		check_against(want, &got, "random chunks", at);
		buf_deinit(&got.out);
	}
}

static void
expect_data(const char *in, size_t max, bool fix, const char *out, size_t consumed, bool bad)
{
	struct result res;

	feed_every_way(in, strlen(in), max, fix, &res);
	if (!buf_is(&res.out, out, strlen(out)))
		fail_msg("output for \"%s\" (fix %d) differs: got %zu bytes", in, fix, res.out.len);
	assert_int_equal(res.consumed, consumed);
	assert_true(res.done);
	assert_int_equal(res.bad, bad);
	buf_deinit(&res.out);
}

static void
test_data_basic(void **state)
{
	expect_data("hello\r\nworld\r\n.\r\n", 0, false, "hello\r\nworld\r\n", 17, false);
	expect_data(".\r\n", 0, false, "", 3, false);
	expect_data("\r\n.\r\n", 0, false, "\r\n", 5, false);
	expect_data("..\r\n.\r\n", 0, false, ".\r\n", 7, false);
	expect_data("a\r\n..b\r\n...\r\n.c\r\n.\r\n", 0, false, "a\r\n.b\r\n..\r\nc\r\n", 20,
		    false);
	expect_data("a.\r\n. \r\n.\r\n", 0, false, "a.\r\n \r\n", 11, false);
}

static void
test_data_pipelined(void **state)
{
	const char *in = "Subject: x\r\n\r\nbody\r\n.\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\n";

	expect_data(in, 0, false, "Subject: x\r\n\r\nbody\r\n", (size_t)(strstr(in, "MAIL") - in),
		    false);
	expect_data(".\r\nQUIT\r\n", 0, false, "", 3, false);
}

static void
test_data_incomplete(void **state)
{
	struct result res;

	feed_every_way("abc\r\n.\r", 7, 0, false, &res);
	assert_false(res.done);
	assert_int_equal(res.consumed, 7);
	/* the held ".\r" is not written until we know what it is */
	assert_int_equal(res.out.len, 5);
	buf_deinit(&res.out);
}

/* Each smuggling variant, then the real end, then a pipelined command. */
static void
test_data_smuggling(void **state)
{
	static const struct {
		const char *in, *raw, *fixed;
	} cases[] = {
	    {"a\n.\nX\r\n.\r\nQUIT\r\n", "a\n\nX\r\n", "a\r\n\r\nX\r\n"},
	    {"a\r.\rX\r\n.\r\nQUIT\r\n", "a\r\rX\r\n", "a\r\n\r\nX\r\n"},
	    {"a\n.\r\nX\r\n.\r\nQUIT\r\n", "a\n\r\nX\r\n", "a\r\n\r\nX\r\n"},
	    {"a\r\n.\nX\r\n.\r\nQUIT\r\n", "a\r\n\nX\r\n", "a\r\n\r\nX\r\n"},
	    {"a\r\n.\rX\r\n.\r\nQUIT\r\n", "a\r\n\rX\r\n", "a\r\n\r\nX\r\n"},
	    {"a\r.\r\nX\r\n.\r\nQUIT\r\n", "a\r\r\nX\r\n", "a\r\n\r\nX\r\n"},
	    {".\nX\r\n.\r\nQUIT\r\n", "\nX\r\n", "\r\nX\r\n"},
	    {"\n.\r\nX\r\n.\r\nQUIT\r\n", "\n\r\nX\r\n", "\r\n\r\nX\r\n"},
	    {"a\r\n.\r\r\n.\r\nQUIT\r\n", "a\r\n\r\r\n", "a\r\n\r\n\r\n"},
	    {"a\r\n.\n.\r\n.\r\nQUIT\r\n", "a\r\n\n\r\n", "a\r\n\r\n\r\n"},
	    {"a\r\r\n.\r\nQUIT\r\n", "a\r\r\n", "a\r\n\r\n"},
	    {"a\n\r\n.\r\nQUIT\r\n", "a\n\r\n", "a\r\n\r\n"},
	};
	size_t i, len;

	for (i = 0; i < TERN_ARRAY_LEN(cases); i++) {
		len = strlen(cases[i].in) - strlen("QUIT\r\n");
		expect_data(cases[i].in, 0, false, cases[i].raw, len, true);
		expect_data(cases[i].in, 0, true, cases[i].fixed, len, false);
	}
}

static void
test_data_fix_mode(void **state)
{
	expect_data("a\nb\rc\r\n.\r\n", 0, true, "a\r\nb\r\nc\r\n", 10, false);
	expect_data("a\nb\rc\r\n.\r\n", 0, false, "a\nb\rc\r\n", 10, true);
	expect_data("a\n..b\r\n.\r\n", 0, true, "a\r\n.b\r\n", 10, false);
	expect_data("\r\r\r\n.\r\n", 0, true, "\r\n\r\n\r\n", 7, false);
}

static void
test_data_too_big(void **state)
{
	struct result res;
	const char *in = "hello world\r\n..x\r\n.\r\nQUIT\r\n";

	feed_every_way(in, strlen(in), 5, false, &res);
	assert_true(res.done && res.big);
	assert_int_equal(res.consumed, 21);
	assert_int_equal(res.out.len, 5);
	assert_memory_equal(res.out.data, "hello", 5);
	buf_deinit(&res.out);

	/* the limit is on the unstuffed message, exactly */
	feed_every_way(in, strlen(in), 17, false, &res);
	assert_false(res.big);
	assert_int_equal(res.out.len, 17);
	buf_deinit(&res.out);
	feed_every_way(in, strlen(in), 16, false, &res);
	assert_true(res.big);
	assert_int_equal(res.out.len, 16);
	buf_deinit(&res.out);
}

static void
test_data_size_and_nomem(void **state)
{
	struct smtp_data_reader r;
	struct buf out;
	size_t used, real_cap;

	/*
	 * A buffer that claims to be enormous makes the next append fail:
	 * the reader must say so and keep reading to the end.
	 */
	buf_init(&out);
	assert_int_equal(buf_append(&out, "x", 1), 0);
	real_cap = out.cap;
	out.len = out.cap = (SIZE_MAX >> 2) + 1;
	smtp_data_reader_init(&r, 0, false);
	assert_int_equal(smtp_data_feed(&r, "abc\r\n", 5, &out, &used), SMTP_DATA_MORE);
	assert_true(smtp_data_nomem(&r));
	assert_int_equal(smtp_data_feed(&r, "def\r\n.\r\n", 8, &out, &used), SMTP_DATA_DONE);
	assert_int_equal(used, 8);
	assert_int_equal(smtp_data_size(&r), 10);
	assert_false(smtp_data_too_big(&r));
	out.len = 1;
	out.cap = real_cap;
	buf_deinit(&out);
}

/* Feeding a long message in one call is linear, whatever its line endings. */
static void
test_data_large(void **state)
{
	size_t n = 4 << 20, i, used;
	char *in = malloc(n + 5);
	struct smtp_data_reader r;
	struct buf out;

	assert_non_null(in);
	for (i = 0; i < n; i++)
		in[i] = i % 2 ? '\r' : 'x';
	memcpy(in + n, "\r\n.\r\n", 5);
	smtp_data_reader_init(&r, 0, true);
	buf_init(&out);
	assert_int_equal(smtp_data_feed(&r, in, n + 5, &out, &used), SMTP_DATA_DONE);
	assert_int_equal(used, n + 5);
	/* every "x\r" became "x\r\n", then the empty line */
	assert_int_equal(out.len, n / 2 * 3 + 2);
	buf_deinit(&out);
	free(in);
}

static void
test_bdat_line_endings(void **state)
{
	bool cr = false;

	assert_false(smtp_has_bare_line_ending("a\r\nb\r\n", 6, &cr));
	assert_false(cr);
	assert_false(smtp_has_bare_line_ending("a\r", 2, &cr));
	assert_true(cr);
	assert_false(smtp_has_bare_line_ending("\nb", 2, &cr));
	assert_false(cr);
	assert_false(smtp_has_bare_line_ending("", 0, &cr));
	assert_true(smtp_has_bare_line_ending("a\nb", 3, &cr));
	cr = false;
	assert_true(smtp_has_bare_line_ending("a\rb", 3, &cr));
	cr = false;
	assert_true(smtp_has_bare_line_ending("\na", 2, &cr));
	cr = true;
	assert_true(smtp_has_bare_line_ending("x\r\n", 3, &cr));
	assert_false(cr);
	cr = false;
	assert_true(smtp_has_bare_line_ending("\r\r\n", 3, &cr));
}

static void
expect_reply(int code, const char *enh, const char *text, const char *want)
{
	struct buf b;

	buf_init(&b);
	assert_int_equal(smtp_format_reply(&b, code, enh, text), 0);
	assert_string_equal(b.data, want);
	buf_deinit(&b);
}

/* Regression: NUL bytes and lines over 998 octets were relayed as they came. */
static void
test_content_flaws(void **state)
{
	char line[1200];

	assert_int_equal(smtp_content_flaws("", 0), 0);
	assert_int_equal(smtp_content_flaws("a\r\nb\r\n", 6), 0);
	assert_int_equal(smtp_content_flaws("a\0b\r\n", 5), SMTP_CONTENT_NUL);
	memset(line, 'x', sizeof(line));
	memcpy(line + 998, "\r\n", 2);
	assert_int_equal(smtp_content_flaws(line, 1000), 0);
	/* The last line needs no ending to count. */
	assert_int_equal(smtp_content_flaws(line, 998), 0);
	assert_int_equal(smtp_content_flaws(line, 999), SMTP_CONTENT_LONG_LINE);
	line[998] = 'x';
	line[999] = '\n';
	assert_int_equal(smtp_content_flaws(line, 1000), SMTP_CONTENT_LONG_LINE);
	line[5] = '\0';
	assert_int_equal(smtp_content_flaws(line, 1000), SMTP_CONTENT_NUL | SMTP_CONTENT_LONG_LINE);
}

/* Every line of out is at most 998 octets, and out unfolds (CRLF before a blank removed) to in. */
static void
assert_wrapped(const char *in, size_t n, const char *expect_unfolded)
{
	struct buf out, unfolded;
	size_t i;

	buf_init(&out);
	buf_init(&unfolded);
	assert_int_equal(smtp_wrap_long_lines(in, n, &out), 0);
	assert_int_equal(smtp_content_flaws(out.data, out.len), 0);
	for (i = 0; i < out.len; i++) {
		if (i + 2 < out.len && out.data[i] == '\r' && out.data[i + 1] == '\n' &&
		    (out.data[i + 2] == ' ' || out.data[i + 2] == '\t')) {
			i++;
			continue;
		}
		buf_append_char(&unfolded, out.data[i]);
	}
	assert_int_equal(unfolded.len, strlen(expect_unfolded));
	assert_memory_equal(unfolded.data, expect_unfolded, unfolded.len);
	buf_deinit(&out);
	buf_deinit(&unfolded);
}

static void
test_wrap_long_lines(void **state)
{
	struct buf in, out, want;
	int i;

	/* Short lines pass unchanged, bare LF endings included. */
	assert_wrapped("a: b\r\n\r\nbody\nmore\r\n", 19, "a: b\r\n\r\nbody\nmore\r\n");

	/* Blanks within reach: a header folds, a body line breaks before a blank it keeps. */
	buf_init(&in);
	buf_append_str(&in, "To: ");
	for (i = 0; i < 300; i++)
		buf_printf(&in, "u%d@example.com, ", i);
	buf_append_str(&in, "\r\nSubject: short\r\n\r\n");
	for (i = 0; i < 400; i++)
		buf_append_str(&in, "word ");
	buf_append_str(&in, "\r\n");
	assert_wrapped(in.data, in.len, in.data);

	/* No blank within reach: hard breaks, in a header with an added leading space. */
	buf_reset(&in);
	buf_append_str(&in, "X-Token: ");
	for (i = 0; i < 2500; i++)
		buf_append_char(&in, 't');
	buf_append_str(&in, "\r\n\r\n");
	for (i = 0; i < 2500; i++)
		buf_append_char(&in, 'b');
	buf_append_str(&in, "\n");
	buf_init(&want);
	buf_append_str(&want, "X-Token:\r\n ");
	for (i = 0; i < 2500; i++)
		buf_append_str(&want, i == 997 || i == 997 + 997 ? "\r\n t" : "t");
	buf_append_str(&want, "\r\n\r\n");
	for (i = 0; i < 2500; i++)
		buf_append_str(&want, i == 998 || i == 2 * 998 ? "\r\nb" : "b");
	buf_append_str(&want, "\n");
	buf_init(&out);
	assert_int_equal(smtp_wrap_long_lines(in.data, in.len, &out), 0);
	assert_int_equal(smtp_content_flaws(out.data, out.len), 0);
	assert_int_equal(out.len, want.len);
	assert_memory_equal(out.data, want.data, want.len);
	buf_deinit(&out);
	buf_deinit(&want);
	buf_deinit(&in);
}

static void
test_format_reply(void **state)
{
	struct buf b;

	expect_reply(250, "2.0.0", "Ok", "250 2.0.0 Ok\r\n");
	expect_reply(220, NULL, "mx.example ESMTP", "220 mx.example ESMTP\r\n");
	expect_reply(221, "", "Bye", "221 Bye\r\n");
	expect_reply(250, NULL, "mx.example\nPIPELINING\nSIZE 100\n8BITMIME",
		     "250-mx.example\r\n250-PIPELINING\r\n250-SIZE 100\r\n250 8BITMIME\r\n");
	expect_reply(550, "5.7.1", "Rejected\nsee https://example.com/x",
		     "550-5.7.1 Rejected\r\n550 5.7.1 see https://example.com/x\r\n");
	expect_reply(451, "4.3.0", "a\r\nb\rc\n", "451-4.3.0 a\r\n451-4.3.0 b\r\n451 4.3.0 c\r\n");
	expect_reply(250, NULL, "a\n\n", "250-a\r\n250\r\n");
	expect_reply(250, "2.0.0", "a\n\nb", "250-2.0.0 a\r\n250-2.0.0\r\n250 2.0.0 b\r\n");
	expect_reply(250, "2.0.0", "", "250 2.0.0\r\n");
	expect_reply(250, NULL, NULL, "250\r\n");
	expect_reply(250, NULL, "x\r\n", "250 x\r\n");
	expect_reply(250, NULL, "x\r", "250 x\r\n");
	expect_reply(250, NULL, "\n", "250\r\n");
	expect_reply(554, "5.123.456", "x", "554 5.123.456 x\r\n");

	buf_init(&b);
	assert_int_equal(smtp_format_reply(&b, 250, NULL, "start"), 0);
	assert_int_equal(smtp_format_reply(&b, 199, NULL, "x"), -EINVAL);
	assert_int_equal(smtp_format_reply(&b, 600, NULL, "x"), -EINVAL);
	assert_int_equal(smtp_format_reply(&b, 550, "4.1.1", "x"), -EINVAL);
	assert_int_equal(smtp_format_reply(&b, 550, "5.1", "x"), -EINVAL);
	assert_int_equal(smtp_format_reply(&b, 550, "5.1.1 ", "x"), -EINVAL);
	assert_int_equal(smtp_format_reply(&b, 550, "5.1.1234", "x"), -EINVAL);
	assert_int_equal(smtp_format_reply(&b, 354, "3.0.0", "x"), -EINVAL);
	assert_int_equal(smtp_format_reply(&b, 550, "5..1", "x"), -EINVAL);
	assert_int_equal(smtp_format_reply(&b, 550, "5.1.", "x"), -EINVAL);
	assert_string_equal(b.data, "250 start\r\n");
	buf_deinit(&b);
}

/* An allocation failure appends nothing, not half a reply. */
static void
test_format_reply_nomem(void **state)
{
	struct buf b;
	size_t real_cap;

	buf_init(&b);
	assert_int_equal(buf_append(&b, "x", 1), 0);
	real_cap = b.cap;
	b.len = b.cap = (SIZE_MAX >> 2) + 1;
	assert_int_equal(smtp_format_reply(&b, 250, NULL, "a\nb"), -ENOMEM);
	assert_true(b.len == (SIZE_MAX >> 2) + 1);
	b.len = 1;
	b.cap = real_cap;
	assert_string_equal(b.data, "x");
	buf_deinit(&b);
}

/* Every line ends in CRLF, no other CR or LF, none longer than the limit. */
static void
check_reply_lines(const struct buf *b, int code)
{
	struct smtp_reply_line rl;
	const char *p = b->data, *eol;

	while (p < b->data + b->len) {
		eol = memchr(p, '\n', (size_t)(b->data + b->len - p));
		assert_non_null(eol);
		assert_true(eol > p && eol[-1] == '\r');
		assert_null(memchr(p, '\r', (size_t)(eol - 1 - p)));
		assert_true(eol + 1 - p <= SMTP_REPLY_LINE_MAX);
		assert_int_equal(smtp_parse_reply_line(p, (size_t)(eol - 1 - p), &rl), 0);
		assert_int_equal(rl.code, code);
		assert_int_equal(rl.more, eol + 1 < b->data + b->len);
		p = eol + 1;
	}
}

static void
test_format_reply_wraps(void **state)
{
	char text[3001];
	struct buf b;
	size_t i;

	memset(text, 'x', 1200);
	text[1200] = '\0';
	buf_init(&b);
	assert_int_equal(smtp_format_reply(&b, 550, "5.7.1", text), 0);
	check_reply_lines(&b, 550);
	assert_int_equal(b.len, 1200 + 3 * strlen("550-5.7.1 \r\n"));
	buf_reset(&b);

	/* two-byte characters: cuts fall between them, not inside */
	for (i = 0; i + 1 < 3000; i += 2)
		memcpy(text + i, "\xc3\xa9", 2);
	text[3000] = '\0';
	/* "2.1.10" leaves an odd width, so a plain cut would split a character */
	assert_int_equal(smtp_format_reply(&b, 250, "2.1.10", text), 0);
	check_reply_lines(&b, 250);
	for (i = 0; i < b.len; i++)
		if (b.data[i] == '\r')
			assert_int_equal((unsigned char)b.data[i - 1], 0xa9);
	buf_deinit(&b);
}

static void
expect_reply_line(const char *line, int code, bool more, const char *enh, const char *text)
{
	struct smtp_reply_line rl;

	assert_int_equal(smtp_parse_reply_line(line, strlen(line), &rl), 0);
	assert_int_equal(rl.code, code);
	assert_int_equal(rl.more, more);
	assert_string_equal(rl.enhanced, enh);
	assert_int_equal(rl.text_len, strlen(text));
	assert_memory_equal(rl.text, text, rl.text_len);
}

static void
test_parse_reply_line(void **state)
{
	struct smtp_reply_line rl;
	static const char *const malformed[] = {"",	 "25",	  "2x0 ok", "2500", "250x ok",
						"199 x", "600 x", "099 x",  "abc"};
	size_t i;

	expect_reply_line("250-SIZE 100", 250, true, "", "SIZE 100");
	expect_reply_line("250 2.1.0 Ok", 250, false, "2.1.0", "Ok");
	expect_reply_line("550 5.1.1 User unknown\r", 550, false, "5.1.1", "User unknown");
	expect_reply_line("421-4.7.0 Try again later", 421, true, "4.7.0", "Try again later");
	expect_reply_line("250", 250, false, "", "");
	expect_reply_line("250-", 250, true, "", "");
	expect_reply_line("250 2.0.0", 250, false, "2.0.0", "");
	expect_reply_line("550 4.1.1 wrong class", 550, false, "", "4.1.1 wrong class");
	expect_reply_line("550 5.1.1x", 550, false, "", "5.1.1x");
	expect_reply_line("550 5.1234.1 x", 550, false, "", "5.1234.1 x");
	expect_reply_line("354 End data with <CR><LF>.<CR><LF>", 354, false, "",
			  "End data with <CR><LF>.<CR><LF>");
	expect_reply_line("220 mx ESMTP", 220, false, "", "mx ESMTP");
	expect_reply_line("550 5..1 x", 550, false, "", "5..1 x");
	for (i = 0; i < TERN_ARRAY_LEN(malformed); i++)
		assert_int_equal(smtp_parse_reply_line(malformed[i], strlen(malformed[i]), &rl),
				 -EINVAL);
}

static enum smtp_reply_status
feed_reply(struct smtp_reply *r, const char *line, struct tern_err *err)
{
	return smtp_reply_feed(r, line, strlen(line), err);
}

/* A reply line of exactly wire bytes with its CRLF: "250-AAA...". */
static char *
reply_line_of(size_t wire, char sep)
{
	char *line = malloc(wire - 1);

	assert_non_null(line);
	memset(line, 'A', wire - 2);
	memcpy(line, "250", 3);
	line[3] = sep;
	line[wire - 2] = '\0';
	return line;
}

static void
expect_reply_error(struct smtp_reply *r, const char *line, const char *cause)
{
	struct tern_err err;

	tern_err_clear(&err);
	assert_int_equal(feed_reply(r, line, &err), SMTP_REPLY_ERROR);
	assert_int_equal(err.code, 451);
	assert_string_equal(err.enhanced, "4.4.2");
	assert_string_equal(err.msg, cause);
}

static void
test_reply_assembly(void **state)
{
	struct smtp_reply r, copy;
	struct tern_err err;

	smtp_reply_init(&r);
	smtp_reply_init(&copy);
	assert_int_equal(feed_reply(&r, "250-mx.example Hello\r", &err), SMTP_REPLY_MORE);
	assert_int_equal(feed_reply(&r, "250-PIPELINING", &err), SMTP_REPLY_MORE);
	assert_int_equal(feed_reply(&r, "250-", &err), SMTP_REPLY_MORE);
	assert_int_equal(feed_reply(&r, "250 8BITMIME", &err), SMTP_REPLY_DONE);
	assert_int_equal(r.code, 250);
	assert_string_equal(r.enhanced, "");
	assert_string_equal(r.text.data, "mx.example Hello\nPIPELINING\n\n8BITMIME");
	assert_int_equal(r.lines, 4);
	assert_int_equal(r.size, 22 + 16 + 6 + 14);
	/* a line after the end is not silently taken as the next reply */
	expect_reply_error(&r, "250 again", "reply line after the end of the reply");
	assert_int_equal(smtp_reply_copy(&copy, &r), 0);
	assert_string_equal(copy.text.data, "mx.example Hello\nPIPELINING\n\n8BITMIME");

	/* the first line's codes are the reply's */
	smtp_reply_reset(&r);
	assert_int_equal(feed_reply(&r, "550-5.1.1 no such", &err), SMTP_REPLY_MORE);
	assert_int_equal(feed_reply(&r, "550 5.1.1 user", &err), SMTP_REPLY_DONE);
	assert_int_equal(r.code, 550);
	assert_string_equal(r.enhanced, "5.1.1");
	assert_string_equal(r.text.data, "no such\nuser");

	smtp_reply_reset(&r);
	assert_int_equal(r.code, 0);
	assert_int_equal(r.lines, 0);
	assert_int_equal(feed_reply(&r, "250-ok", &err), SMTP_REPLY_MORE);
	expect_reply_error(&r, "hello", "malformed reply");
	smtp_reply_deinit(&r);
	smtp_reply_deinit(&copy);
}

/* Regression: a hostile MX grew one reply without bound (2.3 GB in 25 s). */
static void
test_reply_limits(void **state)
{
	struct smtp_reply r;
	struct tern_err err;
	char *line;
	size_t i;

	smtp_reply_init(&r);
	/* line length: SMTP_REPLY_LINE_LIMIT with CRLF, a CR before the LF counted once */
	line = reply_line_of(SMTP_REPLY_LINE_LIMIT, ' ');
	assert_int_equal(feed_reply(&r, line, &err), SMTP_REPLY_DONE);
	assert_int_equal(r.text.len, SMTP_REPLY_LINE_LIMIT - 6);
	free(line);
	smtp_reply_reset(&r);
	line = reply_line_of(SMTP_REPLY_LINE_LIMIT + 1, ' ');
	line[SMTP_REPLY_LINE_LIMIT - 2] = '\r';
	assert_int_equal(feed_reply(&r, line, &err), SMTP_REPLY_DONE);
	smtp_reply_reset(&r);
	line[SMTP_REPLY_LINE_LIMIT - 2] = 'A';
	expect_reply_error(&r, line, "reply line too long");
	free(line);

	/* lines: SMTP_REPLY_LINES_LIMIT, and not one more */
	smtp_reply_reset(&r);
	for (i = 1; i < SMTP_REPLY_LINES_LIMIT; i++)
		assert_int_equal(feed_reply(&r, "250-X", &err), SMTP_REPLY_MORE);
	assert_int_equal(feed_reply(&r, "250 X", &err), SMTP_REPLY_DONE);
	smtp_reply_reset(&r);
	for (i = 0; i < SMTP_REPLY_LINES_LIMIT; i++)
		assert_int_equal(feed_reply(&r, "250-X", &err), SMTP_REPLY_MORE);
	expect_reply_error(&r, "250 X", "too many reply lines");

	/* size: exactly SMTP_REPLY_SIZE_LIMIT bytes on the wire, and not one more */
	smtp_reply_reset(&r);
	line = reply_line_of(1024, '-');
	for (i = 1; i < SMTP_REPLY_SIZE_LIMIT / 1024; i++)
		assert_int_equal(feed_reply(&r, line, &err), SMTP_REPLY_MORE);
	line[3] = ' ';
	assert_int_equal(feed_reply(&r, line, &err), SMTP_REPLY_DONE);
	assert_int_equal(r.size, SMTP_REPLY_SIZE_LIMIT);
	smtp_reply_reset(&r);
	line[3] = '-';
	for (i = 1; i < SMTP_REPLY_SIZE_LIMIT / 1024; i++)
		assert_int_equal(feed_reply(&r, line, &err), SMTP_REPLY_MORE);
	assert_int_equal(feed_reply(&r, "250-", &err), SMTP_REPLY_MORE);
	line[3] = ' ';
	expect_reply_error(&r, line, "reply too large");
	assert_true(r.text.len < SMTP_REPLY_SIZE_LIMIT);
	free(line);
	smtp_reply_deinit(&r);
}

static void
expect_caps(const char *text, bool pipelining, bool starttls, bool eightbit, bool utf8)
{
	struct smtp_caps caps;

	memset(&caps, 0xff, sizeof(caps));
	smtp_parse_capabilities(text, text ? strlen(text) : 0, &caps);
	assert_int_equal(caps.pipelining, pipelining);
	assert_int_equal(caps.starttls, starttls);
	assert_int_equal(caps.eightbitmime, eightbit);
	assert_int_equal(caps.smtputf8, utf8);
}

static void
test_capabilities(void **state)
{
	expect_caps("mx.example Hello\nPIPELINING\nSTARTTLS\n8BITMIME\nSMTPUTF8", true, true, true,
		    true);
	expect_caps("mx.example\npipelining\nStartTLS\nSIZE 100\n8bitmime extra", true, true, true,
		    false);
	/* the first line is the server's name, whatever it says */
	expect_caps("PIPELINING", false, false, false, false);
	expect_caps("PIPELINING\nSMTPUTF8", false, false, false, true);
	/* keywords are whole words */
	expect_caps("mx\nPIPELININGX\nSTARTTLS2\n 8BITMIME\nX-SMTPUTF8", false, false, false,
		    false);
	expect_caps("mx\n\n\nSTARTTLS\n", false, true, false, false);
	expect_caps("", false, false, false, false);
	expect_caps(NULL, false, false, false, false);
}

/* Regression: AUTH PLAIN with a fourth field was accepted with the password cut at the NUL. */
static void
test_auth_plain(void **state)
{
	struct smtp_auth_plain p;
	struct tern_err err;
	char buf[64];

	(void)state;
	assert_int_equal(smtp_auth_plain_decode("YXV0aHoAdXNlcgBwYXNz", 20, buf, sizeof(buf), &p,
						&err), 0);
	assert_string_equal(p.authz, "authz");
	assert_string_equal(p.authc, "user");
	assert_string_equal(p.password, "pass");
	assert_int_equal(smtp_auth_plain_decode("AHVzZXIAcGFzcw==", 16, buf, sizeof(buf), &p, &err), 0);
	assert_string_equal(p.authz, "");
	assert_string_equal(p.password, "pass");
	/* authz NUL user NUL pass NUL extra */
	assert_int_equal(smtp_auth_plain_decode("YXV0aHoAdXNlcgBwYXNzAGV4dHJh", 28, buf, sizeof(buf),
						&p, &err), -1);
	assert_int_equal(err.code, 501);
	assert_string_equal(err.msg, "Malformed PLAIN credentials");
	/* two fields */
	assert_int_equal(smtp_auth_plain_decode("AHVz", 4, buf, sizeof(buf), &p, &err), -1);
	/* not base64, not a multiple of four, too long for the buffer */
	assert_int_equal(smtp_auth_plain_decode("dXNl*g==", 8, buf, sizeof(buf), &p, &err), -1);
	assert_string_equal(err.enhanced, "5.5.2");
	assert_int_equal(smtp_auth_plain_decode("dXNlcg=", 7, buf, sizeof(buf), &p, &err), -1);
	assert_int_equal(smtp_auth_plain_decode("YXV0aHoAdXNlcgBwYXNz", 20, buf, 12, &p, &err), -1);
}

static void
test_auth_login(void **state)
{
	struct tern_err err;
	char buf[64];

	(void)state;
	assert_int_equal(smtp_auth_login_decode("dXNlcg==", 8, buf, sizeof(buf), &err), 0);
	assert_string_equal(buf, "user");
	assert_int_equal(smtp_auth_login_decode("", 0, buf, sizeof(buf), &err), 0);
	assert_string_equal(buf, "");
	/* "user\0pass": a NUL would cut what the hook sees */
	assert_int_equal(smtp_auth_login_decode("dXNlcgBwYXNz", 12, buf, sizeof(buf), &err), -1);
	assert_int_equal(err.code, 501);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_verb),
	    cmocka_unit_test(test_case_insensitive),
	    cmocka_unit_test(test_unknown_and_syntax),
	    cmocka_unit_test(test_control_characters),
	    cmocka_unit_test(test_line_length),
	    cmocka_unit_test(test_helo),
	    cmocka_unit_test(test_mail_paths),
	    cmocka_unit_test(test_address_lengths),
	    cmocka_unit_test(test_mail_params),
	    cmocka_unit_test(test_rcpt),
	    cmocka_unit_test(test_utf8_addresses),
	    cmocka_unit_test(test_bdat),
	    cmocka_unit_test(test_auth),
	    cmocka_unit_test(test_data_basic),
	    cmocka_unit_test(test_data_pipelined),
	    cmocka_unit_test(test_data_incomplete),
	    cmocka_unit_test(test_data_smuggling),
	    cmocka_unit_test(test_data_fix_mode),
	    cmocka_unit_test(test_data_too_big),
	    cmocka_unit_test(test_data_size_and_nomem),
	    cmocka_unit_test(test_data_large),
	    cmocka_unit_test(test_bdat_line_endings),
	    cmocka_unit_test(test_content_flaws),
	    cmocka_unit_test(test_wrap_long_lines),
	    cmocka_unit_test(test_format_reply),
	    cmocka_unit_test(test_format_reply_wraps),
	    cmocka_unit_test(test_format_reply_nomem),
	    cmocka_unit_test(test_parse_reply_line),
	    cmocka_unit_test(test_reply_assembly),
	    cmocka_unit_test(test_reply_limits),
	    cmocka_unit_test(test_capabilities),
	    cmocka_unit_test(test_auth_plain),
	    cmocka_unit_test(test_auth_login),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
