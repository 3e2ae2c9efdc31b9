// SPDX-License-Identifier: MIT
/*
 * The ordered PCRE2 rule list that bounce and automation share
 * (regex_rules.c): rules keep their order and their slots through growth,
 * patterns match caselessly, and a bad pattern is refused with its offset.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tern/regex_rules.h"

struct rule {
	int id;
	pcre2_code *re;
};

static void
rule_free(void *p)
{
	struct rule *r = p;

	pcre2_code_free(r->re);
}

static void
test_order_and_match(void **state)
{
	struct regex_rules set;
	struct tern_err err = {0};
	const char *reply = "550 5.1.1 User Unknown";
	int i, first = -1;

	assert_int_equal(regex_rules_init(&set, sizeof(struct rule)), 0);
	/* More than the first allocation holds: the list grows, rules keep their contents. */
	for (i = 0; i < 40; i++) {
		struct rule *r = regex_rules_reserve(&set);

		assert_non_null(r);
		assert_null(r->re);
		r->id = i;
		r->re = regex_rules_compile(i % 2 ? "user unknown" : "mailbox full", &err, "rule %d", i);
		assert_non_null(r->re);
		assert_int_equal(regex_rules_push(&set), (size_t)i);
	}
	assert_int_equal(set.n, 40);
	for (i = 0; i < 40 && first < 0; i++) {
		struct rule *r = regex_rules_at(&set, (size_t)i);

		assert_int_equal(r->id, i);
		if (regex_rules_match(&set, r->re, reply, strlen(reply)))
			first = r->id;
	}
	assert_int_equal(first, 1);
	regex_rules_deinit(&set, rule_free);
	assert_int_equal(set.n, 0);
}

static void
test_bad_pattern(void **state)
{
	struct tern_err err = {0};

	assert_null(regex_rules_compile("user (unknown", &err, "%s:%d: rule '%s'", "p.lua", 7,
					"user (unknown"));
	assert_string_equal(err.msg, "p.lua:7: rule 'user (unknown' at offset 13: "
				     "missing closing parenthesis");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_order_and_match),
	    cmocka_unit_test(test_bad_pattern),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
