// SPDX-License-Identifier: MIT
/*
 * Path states: which paths a suspension covers (one path, a source for a
 * provider's sites, a tenant or campaign for a site), the limits an
 * override sets and the climb from half back to full after it, lifting,
 * and the state file surviving a reopen (as across a restart), with a
 * corrupt file refused rather than read as no states; sharing (fleet
 * mode): local changes heard by the observer, a state's JSON round trip,
 * and a set from elsewhere replacing the table unheard.
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
#include "tern/path_state.h"

static struct path_state
state(enum path_state_scope scope, const char *source, const char *site, double now,
      double duration)
{
	struct path_state s;

	memset(&s, 0, sizeof(s));
	s.scope = scope;
	snprintf(s.source, sizeof(s.source), "%s", source);
	snprintf(s.site, sizeof(s.site), "%s", site);
	s.suspend = true;
	s.since = now;
	s.until = now + duration;
	s.recovery = 100;
	snprintf(s.action, sizeof(s.action), "suspend");
	snprintf(s.rule, sizeof(s.rule), "policy.lua:3 automation[1]");
	snprintf(s.reply, sizeof(s.reply), "421 4.7.28 unusual rate");
	return s;
}

static void
test_site_in(void **st)
{
	(void)st;
	assert_true(path_state_site_in("alt1.gmail-smtp-in.l.google.com,gmail-smtp-in.l.google.com",
				       "outlook.com,google.com"));
	assert_false(path_state_site_in("mx.example.net", "google.com"));
	assert_false(path_state_site_in("notgoogle.com.evil", "google.com"));
	assert_true(path_state_site_in("anything", ""));
}

static void
test_scopes(void **st)
{
	struct tern_err err;
	double now = util_wallclock();
	struct path_state s = state(PATH_STATE_PATH, "ip-a", "mx1,mx2", now, 60);
	struct path_state src = state(PATH_STATE_SOURCE, "ip-b", "google.com", now, 60);
	struct path_state ten = state(PATH_STATE_TENANT, "", "mx1,mx2", now, 60);

	(void)st;
	snprintf(ten.tenant, sizeof(ten.tenant), "acme");
	assert_int_equal(path_state_apply(&s, &err), 0);
	assert_int_equal(path_state_apply(&src, &err), 0);
	assert_int_equal(path_state_apply(&ten, &err), 0);
	assert_non_null(path_state_suspended("ip-a", "mx1,mx2", now));
	assert_null(path_state_suspended("ip-a", "mx3", now));
	assert_null(path_state_suspended("ip-a", "mx1,mx2", now + 61));
	assert_non_null(path_state_suspended("ip-b", "gmail-smtp-in.l.google.com", now));
	assert_null(path_state_suspended("ip-b", "mx1,mx2", now));
	assert_non_null(path_state_held("mx1,mx2", "acme", "", now));
	assert_null(path_state_held("mx1,mx2", "other", "", now));
	assert_true(path_state_in_force(&s, now));
	assert_int_equal(path_state_count(now), 3);
	/* A second state with the same keys replaces the first. */
	s.until = now + 5;
	assert_int_equal(path_state_apply(&s, &err), 0);
	assert_int_equal(path_state_count(now), 3);
	assert_null(path_state_suspended("ip-a", "mx1,mx2", now + 6));
	assert_int_equal(path_state_clear("ip-b", NULL, NULL, NULL, &err), 1);
	assert_null(path_state_suspended("ip-b", "gmail-smtp-in.l.google.com", now));
	assert_int_equal(path_state_clear(NULL, NULL, NULL, NULL, &err), -EINVAL);
	assert_int_equal(err.code, 422);
	assert_int_equal(path_state_clear(NULL, "mx1,mx2", NULL, NULL, &err), 2);
	path_state_close();
}

static void
test_override_and_recovery(void **st)
{
	struct tern_err err;
	double now = util_wallclock(), rate;
	struct path_state s = state(PATH_STATE_PATH, "ip-a", "mx", now, 60);
	int conns;

	(void)st;
	s.suspend = false;
	s.max_message_rate = 0.5;
	s.connection_limit = 2;
	assert_int_equal(path_state_apply(&s, &err), 0);
	assert_null(path_state_suspended("ip-a", "mx", now));
	rate = 10, conns = 8;
	path_state_limits("ip-a", "mx", now + 1, &rate, &conns);
	assert_true(rate == 0.5 && conns == 2);
	/* Recovery: half at the end, full after `recovery` seconds (100 here). */
	rate = 10, conns = 8;
	path_state_limits("ip-a", "mx", now + 60, &rate, &conns);
	assert_true(rate == 5 && conns == 4);
	rate = 10, conns = 8;
	path_state_limits("ip-a", "mx", now + 110, &rate, &conns);
	assert_true(rate == 7.5 && conns == 6);
	rate = 10, conns = 8;
	path_state_limits("ip-a", "mx", now + 161, &rate, &conns);
	assert_true(rate == 10 && conns == 8);
	rate = 0, conns = 1;
	path_state_limits("ip-a", "mx", now + 60, &rate, &conns);
	assert_true(rate == 0 && conns == 1); /* unlimited stays unlimited, never 0 connections */
	assert_int_equal(path_state_count(now + 161), 0);
	path_state_close();
}

static void
test_states_survive_reopen(void **st)
{
	char dir[] = "/tmp/tern-test-path-state-XXXXXX", path[128];
	struct tern_err err;
	double now = util_wallclock();
	struct path_state s = state(PATH_STATE_CAMPAIGN, "", "mx \"quoted\"", now, 3600);
	const struct path_state *got;
	FILE *f;

	(void)st;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(path_state_open(dir, &err), 0);
	snprintf(s.campaign, sizeof(s.campaign), "spring");
	assert_int_equal(path_state_apply(&s, &err), 0);
	path_state_close();
	assert_int_equal(path_state_open(dir, &err), 0);
	got = path_state_held("mx \"quoted\"", "", "spring", now);
	assert_non_null(got);
	assert_string_equal(got->reply, "421 4.7.28 unusual rate");
	assert_string_equal(got->rule, "policy.lua:3 automation[1]");
	assert_true(got->until > now + 3599 && got->until < now + 3601);
	path_state_close();
	snprintf(path, sizeof(path), "%s/shaping-state.json", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("{\"states\":[{\"scope\":\"nowhere\"}]}", f);
	fclose(f);
	assert_int_equal(path_state_open(dir, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "shaping-state.json"));
	path_state_close();
	support_rm_rf(dir);
}

static int heard_added, heard_removed;
static char heard_key[PATH_STATE_KEY_LEN];

static void
hear(void *arg, const struct path_state *added, const struct path_state *removed)
{
	(void)arg;
	heard_added += added != NULL;
	heard_removed += removed != NULL;
	path_state_key(added ? added : removed, heard_key, sizeof(heard_key));
}

static void
test_sharing(void **st)
{
	struct tern_err err;
	double now = util_wallclock();
	struct path_state a = state(PATH_STATE_PATH, "ip-a", "mx1", now, 60);
	struct path_state b = state(PATH_STATE_SOURCE, "ip-b", "google.com", now, 60), back;
	struct path_state *snap;
	char key[PATH_STATE_KEY_LEN];
	struct buf json;

	(void)st;
	path_state_set_observer(hear, NULL);
	assert_int_equal(path_state_apply(&a, &err), 0);
	path_state_key(&a, key, sizeof(key));
	assert_int_equal(heard_added, 1);
	assert_string_equal(heard_key, key);
	assert_string_equal(key, "path|ip-a|mx1||");

	buf_init(&json);
	path_state_json(&a, &json);
	assert_int_equal(path_state_from_json(json.data, json.len, &back, &err), 0);
	assert_int_equal(memcmp(back.source, a.source, sizeof(a.source)), 0);
	assert_string_equal(back.reply, a.reply);
	assert_true(back.suspend && back.scope == PATH_STATE_PATH);
	assert_true(back.until > a.until - 0.01 && back.until < a.until + 0.01);
	buf_deinit(&json);
	assert_int_equal(path_state_from_json("{\"scope\":\"path\"}", 16, &back, &err), -EINVAL);
	assert_int_equal(path_state_from_json("[1", 2, &back, &err), -EINVAL);

	/* Another node's set: a goes, b comes, and the observer hears nothing of it. */
	assert_int_equal(path_state_replace(&b, 1, &err), 0);
	assert_int_equal(heard_added + heard_removed, 1);
	assert_null(path_state_suspended("ip-a", "mx1", now));
	assert_non_null(path_state_suspended("ip-b", "aspmx.l.google.com", now));
	assert_int_equal(path_state_snapshot(&snap), 1);
	assert_string_equal(snap[0].source, "ip-b");
	free(snap);

	assert_int_equal(path_state_clear("ip-b", NULL, NULL, NULL, &err), 1);
	assert_int_equal(heard_removed, 1);
	path_state_key(&b, key, sizeof(key));
	assert_string_equal(heard_key, key);
	path_state_set_observer(NULL, NULL);
	path_state_close();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_site_in),
		cmocka_unit_test(test_scopes),
		cmocka_unit_test(test_override_and_recovery),
		cmocka_unit_test(test_states_survive_reopen),
		cmocka_unit_test(test_sharing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
