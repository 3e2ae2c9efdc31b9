// SPDX-License-Identifier: MIT
/*
 * Admin rules: parsing POST bodies (every wrong field named), matching queues
 * and ready queues, and the rule file surviving a reopen (as across a restart),
 * with a corrupt file refused by name rather than read as no rules.
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

#include "support.h"
#include "tern/admin.h"

static int
parse(const char *body, enum admin_kind kind, struct admin_rule *r, struct tern_err *err)
{
	memset(err, 0, sizeof(*err));
	return admin_rule_parse(body, strlen(body), kind, r, err);
}

static void
test_parse(void **state)
{
	struct admin_rule r;
	struct tern_err err;
	double now = util_wallclock();

	(void)state;
	assert_int_equal(parse("{\"domain\":\"Gmail.com\",\"reason\":\"slow\",\"duration\":\"2h\"}",
			       ADMIN_SUSPEND, &r, &err), 0);
	assert_string_equal(r.domain, "Gmail.com");
	assert_true(r.expires > now + 7199 && r.expires < now + 7300);
	assert_int_equal(parse("{\"queue_names\":[\"c:t@a.example\",\"b.example\"],\"reason\":\"x\","
			       "\"duration\":30}", ADMIN_BOUNCE, &r, &err), 0);
	assert_int_equal(r.n_queue_names, 2);
	assert_string_equal(r.queue_names[1], "b.example");
	assert_int_equal(parse("{\"name\":\"ip-a->mx.example@smtp_client\",\"reason\":\"x\","
			       "\"duration\":30}", ADMIN_SUSPEND_READY, &r, &err), 0);
	assert_string_equal(r.ready_q, "ip-a->mx.example");
}

static void
test_parse_errors_name_the_field(void **state)
{
	static const struct {
		const char *body;
		int code;
		const char *field;
	} cases[] = {
	    {"[1]", 400, "object"},
	    {"{\"domain\":", 400, "invalid JSON"},
	    {"{\"domain\":\"a\",\"reason\":\"x\"}", 422, "'duration'"},
	    {"{\"domain\":\"a\",\"reason\":\"x\",\"duration\":-5}", 422, "'duration'"},
	    {"{\"domain\":\"a\",\"reason\":\"x\",\"duration\":\"soon\"}", 422, "'duration'"},
	    {"{\"domain\":\"a\",\"duration\":\"1h\"}", 422, "'reason'"},
	    {"{\"reason\":\"x\",\"duration\":\"1h\"}", 422, "'domain'"},
	    {"{\"tenant\":5,\"reason\":\"x\",\"duration\":\"1h\"}", 422, "'tenant'"},
	    {"{\"domain\":\"a\\u0000b\",\"reason\":\"x\",\"duration\":\"1h\"}", 422, "'domain'"},
	    {"{\"queue_names\":[1],\"reason\":\"x\",\"duration\":\"1h\"}", 422, "'queue_names'"},
	};
	struct admin_rule r;
	struct tern_err err;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(parse(cases[i].body, ADMIN_SUSPEND, &r, &err), -EINVAL);
		assert_int_equal(err.code, cases[i].code);
		if (strstr(err.msg, cases[i].field) == NULL)
			fail_msg("%s: '%s' does not name %s", cases[i].body, err.msg, cases[i].field);
	}
	assert_int_equal(parse("{\"name\":\"no-arrow\",\"reason\":\"x\",\"duration\":1}",
			       ADMIN_SUSPEND_READY, &r, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "'name'"));
}

static void
test_matches(void **state)
{
	struct admin_rule r = {0};

	(void)state;
	snprintf(r.domain, sizeof(r.domain), "example.net");
	assert_true(admin_rule_matches(&r, "example.net", "example.net", "", ""));
	assert_true(admin_rule_matches(&r, "c:t@EXAMPLE.net", "EXAMPLE.net", "t", "c"));
	assert_false(admin_rule_matches(&r, "example.org", "example.org", "", ""));
	snprintf(r.tenant, sizeof(r.tenant), "crm");
	assert_false(admin_rule_matches(&r, "example.net", "example.net", "", ""));
	assert_true(admin_rule_matches(&r, "crm@example.net", "example.net", "crm", ""));
	memset(&r, 0, sizeof(r));
	snprintf(r.queue_names[0], sizeof(r.queue_names[0]), "x:crm@example.net");
	r.n_queue_names = 1;
	assert_true(admin_rule_matches(&r, "x:crm@example.net", "example.net", "crm", "x"));
	assert_false(admin_rule_matches(&r, "crm@example.net", "example.net", "crm", ""));
}

static void
test_saved_rules_survive_reopen(void **state)
{
	char dir[] = "/tmp/tern-test-admin-XXXXXX", path[128];
	struct tern_err err = {0};
	struct admin_rule r;
	struct buf list;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(admin_open(dir, &err), 0);
	assert_int_equal(parse("{\"name\":\"ip-a->mx.example\",\"reason\":\"rbl\",\"duration\":600}",
			       ADMIN_SUSPEND_READY, &r, &err), 0);
	assert_int_equal(admin_add(&r, &err), 0);
	assert_int_equal(parse("{\"domain\":\"a.example\",\"reason\":\"r\",\"duration\":600}",
			       ADMIN_SUSPEND, &r, &err), 0);
	assert_int_equal(admin_add(&r, &err), 0);
	admin_close();
	assert_null(admin_match(ADMIN_SUSPEND, "a.example", "a.example", "", ""));

	assert_int_equal(admin_open(dir, &err), 0);
	assert_non_null(admin_match(ADMIN_SUSPEND, "a.example", "a.example", "", ""));
	assert_null(admin_match(ADMIN_BOUNCE, "a.example", "a.example", "", ""));
	assert_non_null(admin_match_ready("ip-a", "mx.example"));
	assert_null(admin_match_ready("ip-a", "mx.example.org"));
	assert_null(admin_match_ready("ip", "a->mx.example"));
	assert_int_equal(admin_remove(r.id, ADMIN_BOUNCE, &err), -ENOENT);
	assert_int_equal(admin_remove(r.id, ADMIN_SUSPEND, &err), 0);
	assert_null(admin_match(ADMIN_SUSPEND, "a.example", "a.example", "", ""));
	buf_init(&list);
	assert_int_equal(admin_list_json(ADMIN_SUSPEND, &list), 0);
	assert_memory_equal(list.data, "[]", 2);
	buf_deinit(&list);
	admin_close();

	snprintf(path, sizeof(path), "%s/admin.json", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("{\"rules\":[{\"id\":\"x\"}]}", f);
	fclose(f);
	assert_int_equal(admin_open(dir, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "admin.json"));
	admin_close();
	support_rm_rf(dir);
}

static void
record_change(void *arg, const struct admin_rule *added, const char *removed_id)
{
	char *seen = arg;

	snprintf(seen, 64, "%s %s", added ? "added" : "removed", added ? added->id : removed_id);
}

/* What a fleet shares: each rule as JSON and back, the observer, a replaced table. */
static void
test_rules_shared_by_a_fleet(void **state)
{
	struct admin_rule r, back, *snap = NULL;
	struct tern_err err = {0};
	char seen[64] = "", want[64];
	struct buf json;

	(void)state;
	assert_int_equal(admin_open("/nonexistent-dir-of-test-admin", &err), 0);
	admin_set_observer(record_change, seen);
	assert_int_equal(parse("{\"domain\":\"b.example\",\"tenant\":\"t\",\"queue_names\":"
			       "[\"q1\"],\"reason\":\"say \\\"why\\\"\",\"duration\":600}",
			       ADMIN_SUSPEND, &r, &err), 0);
	r.expires = util_wallclock() + 600;
	strcpy(r.id, "local-1");
	buf_init(&json);
	admin_rule_json(&r, &json);
	assert_int_equal(admin_rule_from_json(json.data, json.len, &back, &err), 0);
	assert_string_equal(back.domain, "b.example");
	assert_string_equal(back.tenant, "t");
	assert_string_equal(back.queue_names[0], "q1");
	assert_string_equal(back.reason, "say \"why\"");
	assert_int_equal(back.kind, ADMIN_SUSPEND);
	buf_deinit(&json);
	assert_int_equal(admin_rule_from_json("{\"id\":\"\"}", 9, &back, &err), -EINVAL);
	assert_int_equal(admin_rule_from_json("[1", 2, &back, &err), -EINVAL);

	/* admin_open() of a missing dir keeps nothing on disk: the save is a no-op here. */
	admin_close();
	assert_int_equal(admin_add(&r, &err), 0);
	snprintf(want, sizeof(want), "added %s", r.id);
	assert_string_equal(seen, want);
	assert_int_equal(admin_snapshot(&snap), 1);
	assert_string_equal(snap[0].id, r.id);
	free(snap);

	/* The fleet's copy replaces the table without echoing to the observer. */
	strcpy(seen, "");
	back = r;
	strcpy(back.id, "remote-1");
	strcpy(back.domain, "c.example");
	back.n_queue_names = 0;
	assert_int_equal(admin_replace(&back, 1, &err), 0);
	assert_string_equal(seen, "");
	assert_null(admin_match(ADMIN_SUSPEND, "b.example", "b.example", "t", ""));
	assert_non_null(admin_match(ADMIN_SUSPEND, "c.example", "c.example", "t", ""));
	assert_int_equal(admin_remove("remote-1", ADMIN_SUSPEND, &err), 0);
	assert_string_equal(seen, "removed remote-1");
	admin_set_observer(NULL, NULL);
	admin_close();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_parse_errors_name_the_field),
		cmocka_unit_test(test_matches),
		cmocka_unit_test(test_saved_rules_survive_reopen),
		cmocka_unit_test(test_rules_shared_by_a_fleet),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
