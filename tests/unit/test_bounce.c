// SPDX-License-Identifier: MIT
/* The bounce classifier: normalisation, rule order, site scope, cache, bad rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tern/bounce.h"

static void
check_norm(const char *reply, const char *want)
{
	char out[BOUNCE_REPLY_MAX];
	size_t n = bounce_normalise(reply, strlen(reply), out, sizeof(out));

	assert_string_equal(out, want);
	assert_int_equal(n, strlen(want));
}

static void
test_normalise_single_line(void **state)
{
	check_norm("550 5.1.1 <a@b.example>: User unknown", "550 5.1.1 <a@b.example>: User unknown");
	check_norm("  421   4.7.0  Try   again\tlater  ", "421 4.7.0 Try again later");
	check_norm("554 Transaction failed", "554 Transaction failed");
	check_norm("550", "550");
	check_norm("", "");
}

static void
test_normalise_multi_line(void **state)
{
	check_norm("550-5.1.1 The email account that you tried to reach does not exist.\r\n"
		   "550-5.1.1 Please try double-checking.\r\n"
		   "550 5.1.1 Learn more - gsmtp\r\n",
		   "550 5.1.1 The email account that you tried to reach does not exist. Please try "
		   "double-checking. Learn more - gsmtp");
	/* A multi-line reply without enhanced codes keeps only the first code. */
	check_norm("554-mx.example ESMTP\n554-No SMTP service\n554 IP address is block listed",
		   "554 mx.example ESMTP No SMTP service IP address is block listed");
}

/* Logs flatten multi-line replies onto one line; both shapes normalise alike. */
static void
test_normalise_flattened(void **state)
{
	check_norm("550-5.2.1 The email account that you tried to reach is disabled. Learn more at "
		   "550 5.2.1 https://support.google.com/mail/?p=DisabledUser - gsmtp",
		   "550 5.2.1 The email account that you tried to reach is disabled. Learn more at "
		   "https://support.google.com/mail/?p=DisabledUser - gsmtp");
	/* Another code, or the code alone inside a line, is text. */
	check_norm("550 5.7.1 said: 554 5.7.1 no; 550 apples", "550 5.7.1 said: 554 5.7.1 no; 550 apples");
}

static void
test_normalise_no_code_and_controls(void **state)
{
	check_norm("Your email to group x was rejected", "Your email to group x was rejected");
	check_norm("550 5.1.1 a\x01\x7f" "b\0c", "550 5.1.1 a b");
	check_norm("5.1.1 not a reply code", "5.1.1 not a reply code");
}

static void
test_normalise_truncates(void **state)
{
	char out[8];

	assert_int_equal(bounce_normalise("550 5.1.1 user unknown", 22, out, sizeof(out)), 7);
	assert_string_equal(out, "550 5.1");
	assert_int_equal(bounce_normalise("550", 3, out, 0), 0);
}

static void
test_category_names(void **state)
{
	enum bounce_category c;
	int i;

	for (i = 0; i < BOUNCE_N_CATEGORIES; i++) {
		assert_int_equal(bounce_category_parse(bounce_category_name(i), &c), 0);
		assert_int_equal(c, i);
	}
	assert_string_equal(bounce_category_name(BOUNCE_AUTHENTICATION_FAILURE), "authentication-failure");
	assert_string_equal(bounce_category_name(BOUNCE_RATE_LIMITED), "rate-limited");
	assert_null(bounce_category_name(BOUNCE_N_CATEGORIES));
	assert_int_equal(bounce_category_parse("spam", &c), -1);
}

static struct bounce_rules *
rules_of(const struct bounce_rule_def *defs, size_t n)
{
	struct bounce_rules *r = bounce_rules_new();
	struct tern_err err;
	size_t i;

	assert_non_null(r);
	for (i = 0; i < n; i++)
		assert_int_equal(bounce_rules_add(r, &defs[i], &err), 0);
	return r;
}

static const struct bounce_rule_def defs[] = {
	{"outlook-block", BOUNCE_SPAM_RELATED, "S3150", "outlook\\.com\\.$", "t.lua", 1},
	{"unknown", BOUNCE_BAD_MAILBOX, "user unknown", NULL, "t.lua", 2},
	{"also-unknown", BOUNCE_POLICY_RELATED, "unknown", NULL, "t.lua", 3},
	{"code", BOUNCE_POLICY_RELATED, "^\\d{3} 5\\.7\\.\\d+ ", NULL, "t.lua", 4},
};

static void
test_first_rule_wins(void **state)
{
	struct bounce_rules *r = rules_of(defs, 4);
	struct bounce_result res = bounce_classify(r, "550 5.1.1 USER Unknown", 22, NULL);

	assert_int_equal(res.category, BOUNCE_BAD_MAILBOX);
	assert_string_equal(res.rule, "unknown");
	assert_string_equal(res.file, "t.lua");
	assert_int_equal(res.line, 2);
	res = bounce_classify(r, "550 unknown host", 16, NULL);
	assert_string_equal(res.rule, "also-unknown");
	/* The enhanced code is matched on the normalised form, wherever the reply put it. */
	res = bounce_classify(r, "550-5.7.1 go\r\n550 5.7.1 away", 28, NULL);
	assert_string_equal(res.rule, "code");
	bounce_rules_free(r);
}

static void
test_no_match_is_other(void **state)
{
	struct bounce_rules *r = rules_of(defs, 4);
	struct bounce_result res = bounce_classify(r, "451 try later", 13, "");

	assert_int_equal(res.category, BOUNCE_OTHER);
	assert_null(res.rule);
	assert_int_equal(bounce_rules_count(r), 4);
	bounce_rules_free(r);
}

/* A scoped rule applies only to the sites it names; the cache keeps sites apart. */
static void
test_site_scope_and_cache(void **state)
{
	struct bounce_rules *r = rules_of(defs, 4);
	const char *reply = "550 5.7.1 on our block list (S3150)";
	size_t n = strlen(reply);
	int i;

	for (i = 0; i < 3; i++) {
		assert_int_equal(bounce_classify(r, reply, n, "mx1.outlook.com.").category,
				 BOUNCE_SPAM_RELATED);
		assert_string_equal(bounce_classify(r, reply, n, "mx.example.net.").rule, "code");
		assert_string_equal(bounce_classify(r, reply, n, NULL).rule, "code");
	}
	bounce_rules_free(r);
}

/* A rule added after replies were classified is seen by the next classification. */
static void
test_rules_added_later(void **state)
{
	struct bounce_rules *r = rules_of(&defs[1], 1);
	struct tern_err err;

	assert_null(bounce_classify(r, "550 5.7.1 no", 12, "").rule);
	assert_int_equal(bounce_rules_add(r, &defs[3], &err), 0);
	assert_string_equal(bounce_classify(r, "550 5.7.1 no", 12, "").rule, "code");
	bounce_rules_free(r);
}

/* Many distinct replies only ever replace cache slots; results stay right. */
static void
test_cache_bounded(void **state)
{
	struct bounce_rules *r = rules_of(defs, 4);
	char reply[64];
	int i, n;

	for (i = 0; i < 20000; i++) {
		n = snprintf(reply, sizeof(reply), "550 5.1.1 user unknown %d", i);
		assert_string_equal(bounce_classify(r, reply, (size_t)n, "").rule, "unknown");
	}
	bounce_rules_free(r);
}

static void
test_bad_pattern_named(void **state)
{
	struct bounce_rules *r = bounce_rules_new();
	struct bounce_rule_def bad = {"broken", BOUNCE_OTHER, "user (unknown", NULL, "p.lua", 9};
	struct bounce_rule_def bad_site = {"scoped", BOUNCE_OTHER, "x", "[a-", "p.lua", 10};
	struct tern_err err;

	assert_int_equal(bounce_rules_add(r, &bad, &err), -1);
	assert_non_null(strstr(err.msg, "'broken'"));
	assert_non_null(strstr(err.msg, "pattern"));
	assert_int_equal(bounce_rules_add(r, &bad_site, &err), -1);
	assert_non_null(strstr(err.msg, "site"));
	assert_int_equal(bounce_rules_count(r), 0);
	bounce_rules_free(r);
}

/* The literal prefilter must never hide a rule whose regex matches. */
static void
check_rule(const char *pattern, const char *reply, bool want)
{
	struct bounce_rule_def def = {"r", BOUNCE_BAD_MAILBOX, pattern, NULL, "t.lua", 1};
	struct bounce_rules *r = rules_of(&def, 1);

	if ((bounce_classify(r, reply, strlen(reply), "").rule != NULL) != want)
		fail_msg("pattern %s on %s: want %s", pattern, reply, want ? "match" : "none");
	bounce_rules_free(r);
}

static void
test_prefilter_quantifiers_and_branches(void **state)
{
	check_rule("doesn'?t exist", "550 doesnt exist", true);
	check_rule("doesn'?t exist", "550 DOESN'T EXIST", true);
	check_rule("colou*r|grey", "550 color", true);
	check_rule("colou*r|grey", "550 colr", false);
	check_rule("colou*r|grey", "550 GREY", true);
	check_rule("ab{0}c", "550 ac", true);
	check_rule("ab{00,3}c", "550 ac", true);
	check_rule("ab{2}c", "550 abbc", true);
	check_rule("ab+c", "550 abbbc", true);
	check_rule("user (unknown|not found)", "550 user not found", true);
	check_rule("user (unknown|not found)", "550 user gone", false);
	check_rule("\\[TSS?\\d\\d\\]", "421 [TS03] deferred", true);
	check_rule("a[|]b|zz", "550 a|b", true);
	check_rule("x|", "550 anything", true);
}

/* Regression: "{0," not closed by digits and "}" is a literal brace, not a quantifier
 * reaching to a later branch's "}" (found by fuzz_bounce). */
static void
test_prefilter_literal_brace(void **state)
{
	check_rule("u?r{0,z|a{2}b", "550 r{0,z", true);
	check_rule("u?r{0,z|a{2}b", "550 aab", true);
	check_rule("x{,2}", "550 x{,2}", true);
}

/* Syntax the prefilter does not read leaves the rule always tried. */
static void
test_prefilter_unread_syntax(void **state)
{
	check_rule("(?-i)ABC", "550 ABC", true);
	check_rule("(?-i)ABC", "550 abc", false);
	check_rule("\\x41BC", "550 abc", true);
	check_rule("\\Qa|b\\E", "550 a|b", true);
	check_rule("(a)\\1", "550 AA", true);
	check_rule("[[:digit:]]x", "550 9x", true);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_normalise_single_line),
		cmocka_unit_test(test_normalise_multi_line),
		cmocka_unit_test(test_normalise_flattened),
		cmocka_unit_test(test_normalise_no_code_and_controls),
		cmocka_unit_test(test_normalise_truncates),
		cmocka_unit_test(test_category_names),
		cmocka_unit_test(test_first_rule_wins),
		cmocka_unit_test(test_no_match_is_other),
		cmocka_unit_test(test_site_scope_and_cache),
		cmocka_unit_test(test_cache_bounded),
		cmocka_unit_test(test_rules_added_later),
		cmocka_unit_test(test_bad_pattern_named),
		cmocka_unit_test(test_prefilter_quantifiers_and_branches),
		cmocka_unit_test(test_prefilter_literal_brace),
		cmocka_unit_test(test_prefilter_unread_syntax),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
