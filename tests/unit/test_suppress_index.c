// SPDX-License-Identifier: MIT
/*
 * The suppression index alone: hits and misses, expiring marks, removal
 * (tombstones) and re-adding, growth past the size it was made for, the
 * loader's put_new against removals made while it runs, and lookups from
 * several threads while a writer grows the table under them.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tern/suppress_index.h"

static uint64_t
fp_of(const struct suppress_index *ix, const char *tenant, unsigned long i)
{
	char key[96];
	int n = snprintf(key, sizeof(key), "%s%cuser%lu@example.com", tenant, '\0', i);

	return suppress_index_fingerprint(ix, key, (size_t)n);
}

static void
test_hit_miss(void **state)
{
	struct suppress_index *ix = suppress_index_new(0);
	struct suppress_index_stats st;
	unsigned long i;

	assert_non_null(ix);
	for (i = 0; i < 1000; i++)
		assert_int_equal(suppress_index_put(ix, fp_of(ix, "acme", i), false), 0);
	for (i = 0; i < 1000; i++) {
		assert_int_equal(suppress_index_find(ix, fp_of(ix, "acme", i)),
				 SUPPRESS_INDEX_LISTED);
		/* The same address for another tenant, or "*", is another key. */
		assert_int_equal(suppress_index_find(ix, fp_of(ix, "beta", i)),
				 SUPPRESS_INDEX_ABSENT);
		assert_int_equal(suppress_index_find(ix, fp_of(ix, "*", i)), SUPPRESS_INDEX_ABSENT);
		assert_int_equal(suppress_index_find(ix, fp_of(ix, "acme", i + 1000)),
				 SUPPRESS_INDEX_ABSENT);
	}
	/* Putting a key again replaces it: still one entry. */
	assert_int_equal(suppress_index_put(ix, fp_of(ix, "acme", 7), false), 0);
	suppress_index_stats(ix, &st);
	assert_int_equal(st.entries, 1000);
	suppress_index_free(ix);
}

static void
test_fingerprint(void **state)
{
	struct suppress_index *ix = suppress_index_new(0);

	/* Keys differing in their tenant, a byte past the first 8, or their length differ. */
	assert_int_not_equal(suppress_index_fingerprint(ix, "a\0b@c.d", 7),
			     suppress_index_fingerprint(ix, "b\0b@c.d", 7));
	assert_int_not_equal(suppress_index_fingerprint(ix, "acme\0bob@example.com", 20),
			     suppress_index_fingerprint(ix, "acme\0bob@example.con", 20));
	assert_int_not_equal(suppress_index_fingerprint(ix, "acme\0b@e.c\0", 11),
			     suppress_index_fingerprint(ix, "acme\0b@e.c\0", 10));
	assert_int_not_equal(suppress_index_fingerprint(ix, "", 0), 0);
	assert_int_equal(suppress_index_fingerprint(ix, "acme\0bob@example.com", 20),
			 suppress_index_fingerprint(ix, "acme\0bob@example.com", 20));
	suppress_index_free(ix);
}

static void
test_expiring(void **state)
{
	struct suppress_index *ix = suppress_index_new(0);
	uint64_t fp = fp_of(ix, "acme", 1);

	assert_int_equal(suppress_index_put(ix, fp, true), 0);
	assert_int_equal(suppress_index_find(ix, fp), SUPPRESS_INDEX_EXPIRING);
	/* Re-added without an expiry (a hard bounce after a soft one): permanent. */
	assert_int_equal(suppress_index_put(ix, fp, false), 0);
	assert_int_equal(suppress_index_find(ix, fp), SUPPRESS_INDEX_LISTED);
	assert_int_equal(suppress_index_put(ix, fp, true), 0);
	assert_int_equal(suppress_index_find(ix, fp), SUPPRESS_INDEX_EXPIRING);
	suppress_index_free(ix);
}

/* Regression: the bloom filter this replaces could not forget a removed address. */
static void
test_remove_and_readd(void **state)
{
	struct suppress_index *ix = suppress_index_new(0);
	struct suppress_index_stats st, st0;
	unsigned long i;

	suppress_index_fill_done(ix);
	suppress_index_stats(ix, &st0);
	for (i = 0; i < 100; i++)
		assert_int_equal(suppress_index_put(ix, fp_of(ix, "acme", i), false), 0);
	assert_int_equal(suppress_index_remove(ix, fp_of(ix, "acme", 50)), 0);
	assert_int_equal(suppress_index_find(ix, fp_of(ix, "acme", 50)), SUPPRESS_INDEX_ABSENT);
	/* Keys probed past the tombstone are still found. */
	for (i = 0; i < 100; i++)
		if (i != 50)
			assert_int_equal(suppress_index_find(ix, fp_of(ix, "acme", i)),
					 SUPPRESS_INDEX_LISTED);
	assert_int_equal(suppress_index_remove(ix, fp_of(ix, "acme", 50)), 0);
	assert_int_equal(suppress_index_put(ix, fp_of(ix, "acme", 50), false), 0);
	assert_int_equal(suppress_index_find(ix, fp_of(ix, "acme", 50)), SUPPRESS_INDEX_LISTED);
	/* Churn leaves tombstones; rebuilding clears them without growing the table. */
	for (i = 1000; i < 201000; i++) {
		assert_int_equal(suppress_index_put(ix, fp_of(ix, "churn", i), false), 0);
		assert_int_equal(suppress_index_remove(ix, fp_of(ix, "churn", i)), 0);
	}
	suppress_index_stats(ix, &st);
	assert_int_equal(st.entries, 100);
	assert_true(st.grown > 0);
	assert_int_equal(st.slots, st0.slots);
	for (i = 0; i < 100; i++)
		assert_int_equal(suppress_index_find(ix, fp_of(ix, "acme", i)),
				 SUPPRESS_INDEX_LISTED);
	assert_int_equal(suppress_index_find(ix, fp_of(ix, "churn", 5000)), SUPPRESS_INDEX_ABSENT);
	suppress_index_free(ix);
}

static void
test_growth(void **state)
{
	struct suppress_index *ix = suppress_index_new(1000);
	struct suppress_index_stats st;
	unsigned long i, n = 1000000;

	suppress_index_stats(ix, &st);
	assert_int_equal(st.slots, 1u << 16);
	for (i = 0; i < n; i++)
		assert_int_equal(suppress_index_put(ix, fp_of(ix, "t", i), i % 10 == 0), 0);
	suppress_index_stats(ix, &st);
	assert_int_equal(st.entries, n);
	/* Load at most 0.7: 1 M keys need 2^21 slots. */
	assert_int_equal(st.slots, 1u << 21);
	for (i = 0; i < n; i++) {
		assert_int_equal(suppress_index_find(ix, fp_of(ix, "t", i)),
				 i % 10 == 0 ? SUPPRESS_INDEX_EXPIRING : SUPPRESS_INDEX_LISTED);
		assert_int_equal(suppress_index_find(ix, fp_of(ix, "t", i + n)),
				 SUPPRESS_INDEX_ABSENT);
	}
	suppress_index_free(ix);
	/* Sized at start for what is expected: no growth while loading it. */
	ix = suppress_index_new(n);
	suppress_index_stats(ix, &st);
	assert_int_equal(st.slots, 1u << 21);
	suppress_index_free(ix);
}

/*
 * Regression: the loader reads a snapshot of the spool; a key removed after
 * the snapshot must not come back when the loader reaches it, and a key a
 * writer put meanwhile keeps the writer's expiry.
 */
static void
test_loader_against_writers(void **state)
{
	struct suppress_index *ix = suppress_index_new(0);
	struct suppress_index_stats st;
	uint64_t removed = fp_of(ix, "acme", 1), readded = fp_of(ix, "acme", 2),
		 rewritten = fp_of(ix, "acme", 3), plain = fp_of(ix, "acme", 4);

	assert_int_equal(suppress_index_remove(ix, removed), 0);
	assert_int_equal(suppress_index_remove(ix, readded), 0);
	assert_int_equal(suppress_index_put(ix, readded, false), 0);
	assert_int_equal(suppress_index_put(ix, rewritten, true), 0);
	/* The loader comes by with what its snapshot had. */
	assert_int_equal(suppress_index_put_new(ix, removed, false), 0);
	assert_int_equal(suppress_index_put_new(ix, readded, false), 0);
	assert_int_equal(suppress_index_put_new(ix, rewritten, false), 0);
	assert_int_equal(suppress_index_put_new(ix, plain, false), 0);
	suppress_index_fill_done(ix);
	assert_int_equal(suppress_index_find(ix, removed), SUPPRESS_INDEX_ABSENT);
	assert_int_equal(suppress_index_find(ix, readded), SUPPRESS_INDEX_LISTED);
	assert_int_equal(suppress_index_find(ix, rewritten), SUPPRESS_INDEX_EXPIRING);
	assert_int_equal(suppress_index_find(ix, plain), SUPPRESS_INDEX_LISTED);
	suppress_index_stats(ix, &st);
	assert_int_equal(st.entries, 3);
	/* Once loaded, a removal is a plain tombstone and put_new still adds. */
	assert_int_equal(suppress_index_remove(ix, plain), 0);
	assert_int_equal(suppress_index_find(ix, plain), SUPPRESS_INDEX_ABSENT);
	suppress_index_free(ix);
}

#define READERS 3
#define STABLE 20000

struct race {
	struct suppress_index *ix;
	atomic_bool done;
	atomic_ulong wrong, lookups;
};

/* Keys listed before the writer starts must be found throughout, absent ones never. */
static void *
reader(void *arg)
{
	struct race *r = arg;
	unsigned long i = 0, wrong = 0, n = 0;

	while (!atomic_load(&r->done) || n < 2 * STABLE) {
		i = (i + 7919) % STABLE;
		wrong +=
		    suppress_index_find(r->ix, fp_of(r->ix, "stable", i)) != SUPPRESS_INDEX_LISTED;
		wrong +=
		    suppress_index_find(r->ix, fp_of(r->ix, "never", i)) != SUPPRESS_INDEX_ABSENT;
		n++;
	}
	atomic_fetch_add(&r->wrong, wrong);
	atomic_fetch_add(&r->lookups, n);
	return NULL;
}

/* Regression guard for growth: readers probing the table being replaced get every answer right. */
static void
test_readers_during_growth(void **state)
{
	struct race r = {.ix = suppress_index_new(0)};
	struct suppress_index_stats st;
	pthread_t th[READERS];
	unsigned long i;
	int t;

	for (i = 0; i < STABLE; i++)
		assert_int_equal(suppress_index_put_new(r.ix, fp_of(r.ix, "stable", i), false), 0);
	suppress_index_fill_done(r.ix);
	for (t = 0; t < READERS; t++)
		assert_int_equal(pthread_create(&th[t], NULL, reader, &r), 0);
	for (i = 0; i < 600000; i++) {
		assert_int_equal(suppress_index_put(r.ix, fp_of(r.ix, "grow", i), false), 0);
		if (i % 3 == 0)
			assert_int_equal(suppress_index_remove(r.ix, fp_of(r.ix, "grow", i / 2)),
					 0);
	}
	atomic_store(&r.done, true);
	for (t = 0; t < READERS; t++)
		pthread_join(th[t], NULL);
	suppress_index_stats(r.ix, &st);
	assert_true(st.grown >= 3);
	assert_true(atomic_load(&r.lookups) >= READERS * 2 * STABLE);
	assert_int_equal(atomic_load(&r.wrong), 0);
	suppress_index_free(r.ix);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hit_miss),
	    cmocka_unit_test(test_fingerprint),
	    cmocka_unit_test(test_expiring),
	    cmocka_unit_test(test_remove_and_readd),
	    cmocka_unit_test(test_growth),
	    cmocka_unit_test(test_loader_against_writers),
	    cmocka_unit_test(test_readers_during_growth),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
