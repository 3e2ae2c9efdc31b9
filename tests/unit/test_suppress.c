// SPDX-License-Identifier: MIT
/*
 * Suppression list tests against a real spool in a temporary directory:
 * tenant scopes and "*", case, expiry, removal, the in-memory index loaded
 * at open from what is stored and kept up to date (which lookups still read
 * the spool), bulk writes, listing, bad input. The index's own tests:
 * test_suppress_index.c.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tern/bounce_route.h"
#include "tern/spool.h"
#include "tern/suppress.h"

#include "support.h"

struct fixture {
	char dir[64];
	struct spool *sp;
};

static struct spool *
open_spool(const char *dir, bool read_only)
{
	struct spool_config cfg = {.path = dir, .read_only = read_only};
	struct tern_err err;
	struct spool *sp = spool_open(&cfg, &err);

	assert_non_null(sp);
	return sp;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct tern_err err;

	strcpy(f->dir, "/tmp/test_suppress.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	f->sp = open_spool(f->dir, false);
	if (suppress_open(f->sp, false, &err) < 0)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	suppress_close();
	spool_close(f->sp);
	support_rm_rf(f->dir);
	free(f);
	return 0;
}

static void
add(const char *tenant, const char *address, const char *category, double expires)
{
	struct suppress_entry e;
	struct tern_err err;

	assert_int_equal(suppress_entry_init(&e, tenant, address, &err), 0);
	snprintf(e.category, sizeof(e.category), "%s", category);
	snprintf(e.reason, sizeof(e.reason), "550 5.1.1 no such user");
	snprintf(e.source, sizeof(e.source), "0123456789abcdef0123456789abcdef");
	e.expires = expires;
	assert_int_equal(suppress_add(&e, &err), 0);
}

static void
test_tenant_scope(void **state)
{
	struct suppress_entry e;

	add("acme", "Bob@Example.COM", "bad-mailbox", 0);
	assert_int_equal(suppress_check("acme", "bob@example.com", &e), 1);
	assert_string_equal(e.tenant, "acme");
	assert_string_equal(e.address, "bob@example.com");
	assert_string_equal(e.category, "bad-mailbox");
	assert_string_equal(e.reason, "550 5.1.1 no such user");
	assert_string_equal(e.source, "0123456789abcdef0123456789abcdef");
	assert_true(e.time > 1e9);
	assert_int_equal(suppress_check("acme", "BOB@example.com", NULL), 1);
	/* Another tenant, and mail without a tenant, may still write to bob. */
	assert_int_equal(suppress_check("other", "bob@example.com", NULL), 0);
	assert_int_equal(suppress_check("", "bob@example.com", NULL), 0);
	assert_int_equal(suppress_check("acme", "rob@example.com", NULL), 0);
}

static void
test_all_tenants(void **state)
{
	struct suppress_entry e;

	add("*", "spamtrap@example.net", "", 0);
	assert_int_equal(suppress_check("acme", "spamtrap@example.net", &e), 1);
	assert_string_equal(e.tenant, "*");
	assert_int_equal(suppress_check("", "spamtrap@example.net", NULL), 1);
	assert_int_equal(suppress_check(NULL, "spamtrap@example.net", NULL), 1);
}

static void
test_expiry_and_remove(void **state)
{
	struct tern_err err;

	add("acme", "old@example.com", "quota-issues", util_wallclock() - 1);
	add("acme", "new@example.com", "quota-issues", util_wallclock() + 3600);
	assert_int_equal(suppress_check("acme", "old@example.com", NULL), 0);
	assert_int_equal(suppress_check("acme", "new@example.com", NULL), 1);
	assert_int_equal(suppress_remove("acme", "NEW@example.com", &err), 0);
	assert_int_equal(suppress_check("acme", "new@example.com", NULL), 0);
	assert_int_equal(suppress_remove("acme", "new@example.com", &err), -ENOENT);
	assert_int_equal(err.code, 550);
	/* An expired entry is still there to be removed. */
	assert_int_equal(suppress_remove("acme", "old@example.com", &err), 0);
}

static void
test_bad_input(void **state)
{
	struct suppress_entry e;
	struct tern_err err;
	char longaddr[400];

	assert_int_equal(suppress_entry_init(&e, "acme", "no-at-sign", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "no-at-sign"));
	assert_int_equal(suppress_entry_init(&e, "acme", "a b@example.com", &err), -EINVAL);
	assert_int_equal(suppress_entry_init(&e, "ac\nme", "ab@example.com", &err), -EINVAL);
	memset(longaddr, 'a', sizeof(longaddr) - 1);
	longaddr[sizeof(longaddr) - 1] = '\0';
	longaddr[10] = '@';
	assert_int_equal(suppress_entry_init(&e, "acme", longaddr, &err), -EINVAL);
	assert_int_equal(suppress_check("acme", longaddr, NULL), 0);
	/* An entry that bypassed init is refused by add too. */
	memset(&e, 0, sizeof(e));
	assert_int_equal(suppress_add(&e, &err), -EINVAL);
}

static int
count_visit(void *arg, const struct suppress_entry *e)
{
	(*(int *)arg)++;
	return 0;
}

static void
test_batch_and_list(void **state)
{
	struct suppress_batch *b = suppress_batch_new();
	struct suppress_entry e;
	struct tern_err err;
	char addr[64];
	int i, n = 0;

	assert_non_null(b);
	for (i = 0; i < 25000; i++) {
		snprintf(addr, sizeof(addr), "user%d@example.org", i);
		assert_int_equal(suppress_entry_init(&e, i % 2 ? "acme" : "beta", addr, &err), 0);
		assert_int_equal(suppress_batch_add(b, &e, &err), 0);
	}
	assert_int_equal(suppress_batch_finish(b, &err), 0);
	add("acmex", "x@example.org", "", 0);
	assert_int_equal(suppress_list("acme", count_visit, &n, &err), 0);
	/* The tenant prefix ends at its NUL: "acmex" is not "acme". */
	assert_int_equal(n, 12500);
	n = 0;
	assert_int_equal(suppress_list(NULL, count_visit, &n, &err), 0);
	assert_int_equal(n, 25001);
	assert_int_equal(suppress_check("acme", "user24999@example.org", NULL), 1);
	assert_int_equal(suppress_check("acme", "user24998@example.org", NULL), 0);
}

static bool
index_loading(void *arg)
{
	struct suppress_stats st;

	suppress_stats(&st);
	return !st.index_ready;
}

/* Close and reopen the spool with the index, waiting for its loader. */
static void
reopen_indexed(struct fixture *f)
{
	struct tern_err err;

	suppress_close();
	spool_close(f->sp);
	f->sp = open_spool(f->dir, false);
	assert_int_equal(suppress_open(f->sp, true, &err), 0);
	while (index_loading(NULL))
		usleep(1000);
}

static unsigned long long
db_reads(void)
{
	struct suppress_stats st;

	suppress_stats(&st);
	return st.db_reads;
}

/*
 * Regression: a hit cost a RocksDB read (10 us at 10 M entries). With the
 * index, the RCPT/injection gate (no details asked) never reads the spool
 * for a permanent entry, listed or not.
 */
static void
test_index_answers_from_memory(void **state)
{
	struct suppress_entry e;
	unsigned long long reads;
	char addr[64];
	int i;

	add("acme", "kept@example.com", "bad-domain", 0);
	add("*", "trap@example.com", "", 0);
	reopen_indexed(*state);
	reads = db_reads();
	/* Built from what was stored, and told of what is added since. */
	assert_int_equal(suppress_check("acme", "kept@example.com", NULL), 1);
	assert_int_equal(suppress_check("acme", "KEPT@example.com", NULL), 1);
	assert_int_equal(suppress_check("other", "kept@example.com", NULL), 0);
	assert_int_equal(suppress_check("other", "trap@example.com", NULL), 1);
	assert_int_equal(suppress_check(NULL, "trap@example.com", NULL), 1);
	add("acme", "later@example.com", "bad-mailbox", 0);
	assert_int_equal(suppress_check("acme", "later@example.com", NULL), 1);
	for (i = 0; i < 1000; i++) {
		snprintf(addr, sizeof(addr), "absent%d@example.com", i);
		assert_int_equal(suppress_check("acme", addr, NULL), 0);
	}
	assert_int_equal(db_reads(), reads);
	/* Details are read from the spool, only for a listed address. */
	assert_int_equal(suppress_check("acme", "later@example.com", &e), 1);
	assert_string_equal(e.category, "bad-mailbox");
	assert_int_equal(suppress_check("other", "trap@example.com", &e), 1);
	assert_string_equal(e.tenant, "*");
	assert_int_equal(suppress_check("acme", "absent1@example.com", &e), 0);
	/* A read for each listed entry whose details were asked for, none for an unlisted scope. */
	assert_int_equal(db_reads(), reads + 2);
}

/* Regression: the bloom filter kept a removed address, and a read per lookup, until restart. */
static void
test_index_remove_and_readd(void **state)
{
	struct tern_err err;
	unsigned long long reads;

	add("acme", "gone@example.com", "bad-mailbox", 0);
	reopen_indexed(*state);
	assert_int_equal(suppress_remove("acme", "gone@example.com", &err), 0);
	reads = db_reads();
	assert_int_equal(suppress_check("acme", "gone@example.com", NULL), 0);
	assert_int_equal(db_reads(), reads);
	add("acme", "gone@example.com", "bad-mailbox", 0);
	assert_int_equal(suppress_check("acme", "gone@example.com", NULL), 1);
	assert_int_equal(suppress_remove("acme", "gone@example.com", &err), 0);
	assert_int_equal(suppress_check("acme", "gone@example.com", NULL), 0);
	assert_int_equal(suppress_remove("acme", "gone@example.com", &err), -ENOENT);
}

/* Entries with an expiry are confirmed in the spool; expired ones are left out at load. */
static void
test_index_expiry(void **state)
{
	unsigned long long reads;

	add("acme", "old@example.com", "quota-issues", util_wallclock() - 1);
	add("acme", "soon@example.com", "quota-issues", util_wallclock() + 3600);
	reopen_indexed(*state);
	reads = db_reads();
	assert_int_equal(suppress_check("acme", "old@example.com", NULL), 0);
	assert_int_equal(db_reads(), reads);
	assert_int_equal(suppress_check("acme", "soon@example.com", NULL), 1);
	assert_int_equal(db_reads(), reads + 1);
	/* Added after load with an expiry already past: marked, confirmed, not suppressed. */
	add("acme", "past@example.com", "quota-issues", util_wallclock() - 10);
	assert_int_equal(suppress_check("acme", "past@example.com", NULL), 0);
	/* A permanent entry replacing an expiring one answers from memory again. */
	add("acme", "soon@example.com", "bad-mailbox", 0);
	reads = db_reads();
	assert_int_equal(suppress_check("acme", "soon@example.com", NULL), 1);
	assert_int_equal(db_reads(), reads);
}

/* The list grows past the size the index was made for at open: bulk and single adds. */
static void
test_index_growth(void **state)
{
	struct suppress_batch *b;
	struct suppress_entry e;
	struct suppress_stats st0, st;
	struct tern_err err;
	char addr[64];
	int i;

	reopen_indexed(*state);
	suppress_stats(&st0);
	b = suppress_batch_new();
	for (i = 0; i < 120000; i++) {
		snprintf(addr, sizeof(addr), "bulk%d@example.org", i);
		assert_int_equal(suppress_entry_init(&e, "acme", addr, &err), 0);
		assert_int_equal(suppress_batch_add(b, &e, &err), 0);
	}
	assert_int_equal(suppress_batch_finish(b, &err), 0);
	add("acme", "single@example.org", "", 0);
	suppress_stats(&st);
	assert_int_equal(st.index_entries, 120001);
	assert_true(st.index_bytes > st0.index_bytes);
	for (i = 0; i < 120000; i += 7) {
		snprintf(addr, sizeof(addr), "bulk%d@example.org", i);
		assert_int_equal(suppress_check("acme", addr, NULL), 1);
		snprintf(addr, sizeof(addr), "bulk%d@example.org", i + 120000);
		assert_int_equal(suppress_check("acme", addr, NULL), 0);
	}
	assert_int_equal(suppress_check("acme", "single@example.org", NULL), 1);
	assert_int_equal(db_reads(), st.db_reads);
}

static void
test_read_only_and_json(void **state)
{
	struct fixture *f = *state;
	struct suppress_entry e;
	struct tern_err err;
	struct spool *ro;
	struct buf j;

	add("acme", "ro@example.com", "inactive-mailbox", 0);
	suppress_close();
	spool_close(f->sp);
	f->sp = open_spool(f->dir, false);
	ro = open_spool(f->dir, true);
	assert_int_equal(suppress_open(ro, false, &err), 0);
	assert_int_equal(suppress_check("acme", "ro@example.com", &e), 1);
	buf_init(&j);
	assert_int_equal(suppress_entry_json(&e, &j), 0);
	assert_non_null(strstr(j.data, "\"tenant\":\"acme\",\"address\":\"ro@example.com\""));
	assert_non_null(strstr(j.data, "\"category\":\"inactive-mailbox\""));
	assert_non_null(strstr(j.data, "\"expires\":null}"));
	buf_deinit(&j);
	assert_int_equal(suppress_add(&e, &err), -EROFS);
	suppress_close();
	spool_close(ro);
	assert_int_equal(suppress_open(f->sp, false, &err), 0);
}

static void
test_closed(void **state)
{
	struct suppress_entry e;
	struct tern_err err;

	suppress_close();
	assert_false(suppress_is_open());
	assert_int_equal(suppress_check("acme", "a@example.com", NULL), 0);
	assert_int_equal(suppress_entry_init(&e, "acme", "a@example.com", &err), 0);
	assert_int_equal(suppress_add(&e, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "no suppression list"));
}

static void
test_action(void **state)
{
	char text[128];

	assert_int_equal(suppress_action(), SUPPRESS_REJECT);
	suppress_set_action(SUPPRESS_DROP, "gone");
	assert_int_equal(suppress_action(), SUPPRESS_DROP);
	suppress_reject_text(text, sizeof(text));
	assert_string_equal(text, "gone");
	suppress_set_action(SUPPRESS_REJECT, NULL);
	suppress_reject_text(text, sizeof(text));
	assert_string_equal(text, "gone");
}

/* The default routing suppresses on mailbox and domain failures only, never on reputation. */
static void
test_default_routing_categories(void **state)
{
	static const char *const yes[] = {"bad-mailbox", "bad-domain", "inactive-mailbox"};
	static const char *const no[] = {"spam-related", "policy-related", "rate-limited",
					 "authentication-failure", "quota-issues",
					 "message-expired", "other", "", "bad-mailboxes"};
	size_t i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		assert_true(bounce_route_suppresses(yes[i]));
	for (i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		assert_false(bounce_route_suppresses(no[i]));
	assert_false(bounce_route_suppresses(NULL));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_tenant_scope, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_all_tenants, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_expiry_and_remove, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_batch_and_list, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_index_answers_from_memory, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_index_remove_and_readd, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_index_expiry, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_index_growth, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_read_only_and_json, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_closed, setup, teardown),
	    cmocka_unit_test(test_action),
	    cmocka_unit_test(test_default_routing_categories),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
