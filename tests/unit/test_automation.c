// SPDX-License-Identifier: MIT
/*
 * Automation rules: action and trigger names, matching over the normalised
 * reply (multi-line replies included) restricted to a path's rule ids in
 * their order, and a bad regex refused naming where the rule was written.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tern/automation.h"

static void
test_names(void **st)
{
	enum automation_action a;
	double period;
	int n;

	(void)st;
	assert_int_equal(automation_action_parse("suspend_source", &a), 0);
	assert_int_equal(a, AUTOMATION_SUSPEND_SOURCE);
	assert_string_equal(automation_action_name(AUTOMATION_SET), "set");
	assert_int_equal(automation_action_parse("pause", &a), -1);
	assert_int_equal(automation_trigger_parse("immediate", &n, &period), 0);
	assert_true(n == 1 && period == 0);
	assert_int_equal(automation_trigger_parse("3/5m", &n, &period), 0);
	assert_true(n == 3 && period == 300);
	assert_int_equal(automation_trigger_parse("0/5m", &n, &period), -1);
	assert_int_equal(automation_trigger_parse("3/", &n, &period), -1);
	assert_int_equal(automation_trigger_parse("often", &n, &period), -1);
	assert_int_equal(automation_trigger_parse("3/soon", &n, &period), -1);
}

static int
add(struct automation_rules *r, const char *p1, const char *p2, enum automation_action action)
{
	struct automation_rule_def d = {.patterns = {p1, p2}, .n_patterns = p2 ? 2 : 1,
					.action = action, .duration = 60, .recovery = 300,
					.trigger_n = 1, .file = "policy.lua", .line = 7};
	struct tern_err err;

	return automation_rules_add(r, &d, &err);
}

static void
test_match(void **st)
{
	struct automation_rules *r = automation_rules_new();
	const char *multi = "421-4.7.28 Our system has detected an\r\n421 4.7.28 unusual rate\r\n";
	uint16_t all[] = {0, 1}, second[] = {1}, bad[] = {9};

	(void)st;
	assert_int_equal(add(r, "4\\.7\\.28 our system", "unusual rate", AUTOMATION_SUSPEND), 0);
	assert_int_equal(add(r, "TSS04", NULL, AUTOMATION_SET), 1);
	assert_int_equal(automation_rules_count(r), 2);
	/* The normalised reply joins the lines, so a pattern may span them. */
	assert_ptr_equal(automation_match(r, all, 2, multi, strlen(multi)),
			 automation_match(r, all, 1, "421 4.7.28 our SYSTEM", 21));
	assert_non_null(automation_match(r, all, 2, multi, strlen(multi)));
	assert_int_equal(automation_match(r, all, 2, "451 TSS04 deferred", 18)->def.action,
			 AUTOMATION_SET);
	assert_null(automation_match(r, second, 1, multi, strlen(multi)));
	assert_null(automation_match(r, bad, 1, "TSS04", 5));
	assert_null(automation_match(r, all, 0, "TSS04", 5));
	assert_string_equal(automation_match(r, all, 2, "TSS04", 5)->where, "policy.lua:7 default");
	automation_rules_free(r);
}

static void
test_bad_regex_names_the_rule(void **st)
{
	struct automation_rules *r = automation_rules_new();
	struct automation_rule_def d = {.patterns = {"ok", "(unclosed"}, .n_patterns = 2,
					.duration = 60, .trigger_n = 1, .file = "policy.lua",
					.line = 12};
	struct tern_err err;

	(void)st;
	assert_int_equal(automation_rules_add(r, &d, &err), -1);
	assert_non_null(strstr(err.msg, "policy.lua:12"));
	assert_non_null(strstr(err.msg, "(unclosed"));
	d.n_patterns = 0;
	assert_int_equal(automation_rules_add(r, &d, &err), -1);
	assert_int_equal(automation_rules_count(r), 0);
	automation_rules_free(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_bad_regex_names_the_rule),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
