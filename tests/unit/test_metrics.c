// SPDX-License-Identifier: MIT
/*
 * Metrics: per-shard cells summed at read time, labelled families folded to
 * the top N plus "other", histogram buckets, queue snapshots, the history ring.
 * Work "on shard i" runs on this thread inside shard i's loop (shard_run_until),
 * which is what makes shard_self() answer i.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tern/metrics.h"
#include "tern/shard.h"

struct run {
	void (*fn)(void *arg);
	void *arg;
	bool done;
};

static void
run_task(void *arg)
{
	struct run *r = arg;

	r->fn(r->arg);
	r->done = true;
}

static void
on_shard(int i, void (*fn)(void *arg), void *arg)
{
	struct run r = {fn, arg, false};

	assert_int_equal(shard_post(shard_get(i), run_task, &r), 0);
	shard_run_until(shard_get(i), &r.done);
}

static void
inc_dkim(void *arg)
{
	int i, n = *(int *)arg;

	for (i = 0; i < n; i++)
		metrics_inc(METRICS_DKIM_SIGNATURES);
}

static void
test_counters_are_summed_over_shards(void **state)
{
	int three = 3, two = 2;
	uint64_t before = metrics_counter_total(METRICS_DKIM_SIGNATURES);

	on_shard(0, inc_dkim, &three);
	on_shard(1, inc_dkim, &two);
	/* Off the shards (a spool writer thread): the shared slot. */
	metrics_inc(METRICS_DKIM_SIGNATURES);
	assert_int_equal(metrics_counter_total(METRICS_DKIM_SIGNATURES) - before, 6);
}

/* Tenant tNN gets NN + 1 deliveries, for NN in [0, 30). */
static void
thirty_tenants(void *arg)
{
	char name[16];
	int i, j;

	for (i = 0; i < 30; i++) {
		struct metrics_outcome_labels l = {.tenant = name};

		snprintf(name, sizeof(name), "t%02d", i);
		for (j = 0; j <= i; j++)
			metrics_outcome(METRICS_DELIVERED, &l, -1);
	}
}

static void
one_more_for_t00(void *arg)
{
	struct metrics_outcome_labels l = {.tenant = "t00"};

	metrics_outcome(METRICS_DELIVERED, &l, -1);
	metrics_outcome(METRICS_BOUNCED, &l, -1);
}

static void
test_family_keeps_the_top_n_and_folds_the_rest(void **state)
{
	struct metrics_label_value v[METRICS_TOP_N + 1];
	size_t n;

	on_shard(0, thirty_tenants, NULL);
	on_shard(1, one_more_for_t00, NULL);
	n = metrics_family_read(METRICS_OUTCOME_BY_TENANT, v);
	assert_int_equal(n, METRICS_TOP_N + 1);
	assert_string_equal(v[0].value, "t29");
	assert_int_equal(v[0].n[METRICS_DELIVERED], 30);
	assert_string_equal(v[METRICS_TOP_N - 1].value, "t10");
	/* t00 to t09: 1 + ... + 10 deliveries, plus t00's one more and its bounce, merged over
	 * shards. */
	assert_string_equal(v[METRICS_TOP_N].value, "other");
	assert_int_equal(v[METRICS_TOP_N].n[METRICS_DELIVERED], 55 + 1);
	assert_int_equal(v[METRICS_TOP_N].n[METRICS_BOUNCED], 1);
}

/* More values than a shard remembers: the rest is counted as other, nothing is lost. */
static void
many_sites(void *arg)
{
	char name[16];
	int i;

	for (i = 0; i < METRICS_LABELS_PER_SHARD + 10; i++) {
		struct metrics_outcome_labels l = {.site = name};

		snprintf(name, sizeof(name), "site%03d", i);
		metrics_outcome(METRICS_TRANSIENT, &l, -1);
	}
}

static void
test_family_memory_is_bounded(void **state)
{
	struct metrics_label_value v[METRICS_TOP_N + 1];
	uint64_t sum = 0;
	size_t n, i;

	on_shard(0, many_sites, NULL);
	n = metrics_family_read(METRICS_OUTCOME_BY_SITE, v);
	assert_int_equal(n, METRICS_TOP_N + 1);
	for (i = 0; i < n; i++)
		sum += v[i].n[METRICS_TRANSIENT];
	assert_int_equal(sum, METRICS_LABELS_PER_SHARD + 10);
	assert_int_equal(v[METRICS_TOP_N].n[METRICS_TRANSIENT],
			 METRICS_LABELS_PER_SHARD + 10 - METRICS_TOP_N);
}

static void
test_histogram_buckets_and_sum(void **state)
{
	struct metrics_histogram_read r;
	size_t b;

	metrics_observe(METRICS_HOOK_TIME, 0.0003);
	metrics_observe(METRICS_HOOK_TIME, 7);
	metrics_observe(METRICS_HOOK_TIME, -1); /* a clock step back counts as 0 */
	metrics_histogram_read(METRICS_HOOK_TIME, &r);
	assert_int_equal(r.count, 3);
	assert_true(r.sum > 7.0002 && r.sum < 7.0004);
	for (b = 0; b < r.n_bounds && r.bounds[b] < 0.0005; b++)
		;
	assert_true(r.bounds[b] == 0.0005);
	assert_int_equal(r.buckets[b], 1);
	assert_int_equal(r.buckets[0], 1);
	assert_int_equal(r.buckets[r.n_bounds], 1); /* +Inf */
}

static void
publish_queues(void *arg)
{
	int base = *(int *)arg, i;
	struct metrics_queue_top top = {0};
	char name[32];

	for (i = 0; i < 25; i++) {
		snprintf(name, sizeof(name), "q%d", base + i);
		metrics_queue_top_add(&top, name, (uint64_t)(base + i));
	}
	metrics_queues_publish(METRICS_QUEUE_SCHEDULED, &top);
}

static void
test_queue_snapshots_merge_to_the_largest(void **state)
{
	struct metrics_queue_size out[METRICS_TOP_N];
	uint64_t total, count;
	int zero = 0, hundred = 100;
	size_t n;

	on_shard(0, publish_queues, &zero);
	on_shard(1, publish_queues, &hundred);
	n = metrics_queues_read(METRICS_QUEUE_SCHEDULED, out, &total, &count);
	assert_int_equal(n, METRICS_TOP_N);
	assert_string_equal(out[0].name, "q124");
	assert_int_equal(out[0].size, 124);
	assert_int_equal(out[METRICS_TOP_N - 1].size, 105);
	assert_int_equal(count, 50);
	assert_int_equal(total, (0 + 24) * 25 / 2 + (100 + 124) * 25 / 2);
}

static void
test_history_keeps_the_last_15_minutes(void **state)
{
	static struct metrics_history_point h[METRICS_HISTORY_SECONDS];
	size_t n, i;

	for (i = 0; i < METRICS_HISTORY_SECONDS + 100; i++)
		metrics_history_sample(1000.0 + (double)i);
	n = metrics_history_read(h);
	assert_int_equal(n, METRICS_HISTORY_SECONDS);
	assert_true(h[0].t == 1100.0);
	for (i = 1; i < n; i++)
		assert_true(h[i].t == h[i - 1].t + 1);
}

static void
classify_some(void *arg)
{
	metrics_classified(METRICS_BOUNCED, "ip-a", "bad-mailbox");
	metrics_classified(METRICS_BOUNCED, "ip-a", "bad-mailbox");
	metrics_classified(METRICS_BOUNCED, NULL, "spam-related"); /* no source: by category only */
	metrics_classified(METRICS_TRANSIENT, "ip-a", NULL);	   /* not classified */
	metrics_classified(METRICS_DELIVERED, "ip-a", "other");	   /* not a failure */
	metrics_complaint("ip-a");
	metrics_complaint(NULL);
}

static uint64_t
family_count(enum metrics_family f, const char *value, enum metrics_outcome o)
{
	struct metrics_label_value v[METRICS_TOP_N + 1];
	size_t n = metrics_family_read(f, v), i;

	for (i = 0; i < n; i++)
		if (strcmp(v[i].value, value) == 0)
			return v[i].n[o];
	return 0;
}

static void
test_failures_by_category_and_source(void **state)
{
	on_shard(0, classify_some, NULL);
	on_shard(1, classify_some, NULL);
	assert_int_equal(family_count(METRICS_OUTCOME_BY_CATEGORY, "bad-mailbox", METRICS_BOUNCED),
			 4);
	assert_int_equal(family_count(METRICS_OUTCOME_BY_CATEGORY, "spam-related", METRICS_BOUNCED),
			 2);
	assert_int_equal(
	    family_count(METRICS_OUTCOME_BY_CATEGORY, "unclassified", METRICS_TRANSIENT), 2);
	assert_int_equal(family_count(METRICS_OUTCOME_BY_CATEGORY, "other", METRICS_DELIVERED), 0);
	assert_int_equal(
	    family_count(METRICS_BOUNCE_BY_SOURCE_CATEGORY, "ip-a\tbad-mailbox", METRICS_BOUNCED),
	    4);
	assert_int_equal(family_count(METRICS_BOUNCE_BY_SOURCE_CATEGORY, "ip-a\tunclassified",
				      METRICS_TRANSIENT),
			 0);
	assert_int_equal(family_count(METRICS_COMPLAINTS_BY_SOURCE, "ip-a", 0), 2);
	assert_int_equal(family_count(METRICS_COMPLAINTS_BY_SOURCE, "unknown", 0), 2);
}

static void
publish_oldest(void *arg)
{
	struct metrics_queue_top top = {.oldest = *(double *)arg};

	metrics_queues_publish(METRICS_QUEUE_SCHEDULED, &top);
}

static void
test_oldest_is_the_minimum_over_shards(void **state)
{
	double a = 2000, b = 1500, none = 0;

	on_shard(0, publish_oldest, &a);
	on_shard(1, publish_oldest, &b);
	assert_true(metrics_queues_oldest(METRICS_QUEUE_SCHEDULED) == 1500);
	/* A shard with no messages does not count as the oldest. */
	on_shard(1, publish_oldest, &none);
	assert_true(metrics_queues_oldest(METRICS_QUEUE_SCHEDULED) == 2000);
	assert_true(metrics_queues_oldest(METRICS_QUEUE_READY) == 0);
}

static int
setup(void **state)
{
	struct tern_err err;

	return shards_init(2, &err);
}

static int
teardown(void **state)
{
	shards_free();
	metrics_free();
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_counters_are_summed_over_shards),
	    cmocka_unit_test(test_family_keeps_the_top_n_and_folds_the_rest),
	    cmocka_unit_test(test_family_memory_is_bounded),
	    cmocka_unit_test(test_histogram_buckets_and_sum),
	    cmocka_unit_test(test_queue_snapshots_merge_to_the_largest),
	    cmocka_unit_test(test_history_keeps_the_last_15_minutes),
	    cmocka_unit_test(test_failures_by_category_and_source),
	    cmocka_unit_test(test_oldest_is_the_minimum_over_shards),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
