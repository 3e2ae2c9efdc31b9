// SPDX-License-Identifier: MIT
/* Spool partitions (routing by lane, one lane per put, the count kept at reopen) and deferred changes. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tern/spool.h"

#include "support.h"

struct waiter {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int done;
	int status;
};

static void
on_done(void *arg, int status, const struct tern_err *err)
{
	struct waiter *w = arg;

	pthread_mutex_lock(&w->mu);
	w->done++;
	w->status = status;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->mu);
}

static int
put_sync(struct spool *sp, struct spool_record *recs, size_t n)
{
	struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
	struct tern_err err;
	int rc = spool_put(sp, recs, n, on_done, &w, &err);

	if (rc < 0)
		return rc;
	pthread_mutex_lock(&w.mu);
	while (!w.done)
		pthread_cond_wait(&w.cond, &w.mu);
	pthread_mutex_unlock(&w.mu);
	return w.status;
}

static struct spool *
open_spool(const char *dir, unsigned partitions, bool read_only)
{
	struct spool_config cfg = {.path = dir, .partitions = partitions, .read_only = read_only};
	struct tern_err err;
	struct spool *sp = spool_open(&cfg, &err);

	if (sp == NULL)
		fail_msg("spool_open: %s", err.msg);
	return sp;
}

static int
count_visit(void *arg, const struct spool_id *id, const char *meta, size_t meta_len,
	    size_t data_len)
{
	(*(int *)arg)++;
	return 0;
}

static void
test_lanes_spread_and_reopen_keeps_count(void **state)
{
	char dir[] = "/tmp/tern-spool-parts-XXXXXX", path[128];
	struct spool_record rec = {.data = "body", .data_len = 4, .meta = "{}", .meta_len = 2};
	struct spool_id ids[8];
	struct tern_err err;
	struct spool *sp;
	struct buf out;
	int i, seen = 0;

	assert_non_null(mkdtemp(dir));
	sp = open_spool(dir, 4, false);
	assert_int_equal(spool_partitions(sp), 4);
	for (i = 0; i < 8; i++) {
		spool_make_id(&ids[i], 0, (uint16_t)i);
		rec.id = ids[i];
		assert_int_equal(put_sync(sp, &rec, 1), 0);
	}
	/* Each partition is its own RocksDB directory. */
	for (i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "%s/p%d/CURRENT", dir, i);
		assert_int_equal(access(path, F_OK), 0);
	}
	spool_close(sp);
	/* Asking for 2 now changes nothing: ids must keep finding their partition. */
	sp = open_spool(dir, 2, false);
	assert_int_equal(spool_partitions(sp), 4);
	buf_init(&out);
	for (i = 0; i < 8; i++)
		assert_int_equal(spool_get_data(sp, &ids[i], &out, &err), 0);
	assert_int_equal(spool_scan(sp, count_visit, &seen, &err), 0);
	assert_int_equal(seen, 8);
	assert_int_equal(spool_remove(sp, &ids[3], &err), 0);
	assert_int_equal(spool_get_data(sp, &ids[3], &out, &err), -ENOENT);
	buf_deinit(&out);
	spool_close(sp);
	/* Read-only (tern spool list) sees the same layout. */
	sp = open_spool(dir, 1, true);
	seen = 0;
	assert_int_equal(spool_scan(sp, count_visit, &seen, &err), 0);
	assert_int_equal(seen, 7);
	spool_close(sp);
	assert_int_equal(support_rm_rf(dir), 0);
}

static void
test_one_put_needs_one_lane(void **state)
{
	char dir[] = "/tmp/tern-spool-parts-XXXXXX";
	struct spool_record recs[2] = {
		{.data = "a", .data_len = 1, .meta = "{}", .meta_len = 2},
		{.data = "b", .data_len = 1, .meta = "{}", .meta_len = 2},
	};
	struct spool *sp;

	assert_non_null(mkdtemp(dir));
	sp = open_spool(dir, 2, false);
	spool_make_id(&recs[0].id, 0, 0);
	spool_make_id(&recs[1].id, 0, 1);
	assert_int_equal(put_sync(sp, recs, 2), -EINVAL);
	spool_make_id(&recs[1].id, 0, 2);
	assert_int_equal(put_sync(sp, recs, 2), 0);
	spool_close(sp);
	assert_int_equal(support_rm_rf(dir), 0);
}

static void
test_plain_spool_stays_plain(void **state)
{
	char dir[] = "/tmp/tern-spool-parts-XXXXXX", path[128];
	struct spool *sp;

	assert_non_null(mkdtemp(dir));
	sp = open_spool(dir, 1, false);
	spool_close(sp);
	snprintf(path, sizeof(path), "%s/CURRENT", dir);
	assert_int_equal(access(path, F_OK), 0);
	/* An existing single-database spool is not re-laid out by a larger count. */
	sp = open_spool(dir, 4, false);
	assert_int_equal(spool_partitions(sp), 1);
	spool_close(sp);
	assert_int_equal(support_rm_rf(dir), 0);
}

static void
test_deferred_changes_land_on_commit(void **state)
{
	char dir[] = "/tmp/tern-spool-parts-XXXXXX";
	struct spool_record rec = {.data = "body", .data_len = 4, .meta = "{}", .meta_len = 2};
	struct spool_changes *c = spool_changes_new();
	struct spool_id ids[4];
	struct tern_err err;
	struct spool *sp;
	struct buf out;
	int i;

	assert_non_null(mkdtemp(dir));
	sp = open_spool(dir, 2, false);
	for (i = 0; i < 4; i++) {
		spool_make_id(&ids[i], 0, (uint16_t)i);
		rec.id = ids[i];
		assert_int_equal(put_sync(sp, &rec, 1), 0);
	}
	/* Two partitions touched: a removal in each and a meta rewrite. */
	spool_changes_remove(c, sp, &ids[0]);
	spool_changes_remove(c, sp, &ids[1]);
	spool_changes_update_meta(c, sp, &ids[2], "{\"attempts\":1}", 14);
	assert_int_equal(spool_changes_pending(c), 3);
	buf_init(&out);
	/* Nothing is written before the commit. */
	assert_int_equal(spool_get_data(sp, &ids[0], &out, &err), 0);
	assert_int_equal(spool_changes_commit(c, sp, &err), 0);
	assert_int_equal(spool_changes_pending(c), 0);
	/* Each partition's writer applies them before a later put is done. */
	for (i = 0; i < 2; i++) {
		struct spool_id later;

		spool_make_id(&later, 0, (uint16_t)(4 + i));
		rec.id = later;
		assert_int_equal(put_sync(sp, &rec, 1), 0);
	}
	assert_int_equal(spool_get_data(sp, &ids[0], &out, &err), -ENOENT);
	assert_int_equal(spool_get_meta(sp, &ids[1], &out, &err), -ENOENT);
	assert_int_equal(spool_get_meta(sp, &ids[2], &out, &err), 0);
	assert_string_equal(out.data, "{\"attempts\":1}");
	assert_int_equal(spool_get_data(sp, &ids[3], &out, &err), 0);
	/* A committed collector is empty and reusable. */
	assert_int_equal(spool_changes_commit(c, sp, &err), 0);
	buf_deinit(&out);
	spool_changes_free(c);
	spool_close(sp);
	assert_int_equal(support_rm_rf(dir), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lanes_spread_and_reopen_keeps_count),
		cmocka_unit_test(test_one_put_needs_one_lane),
		cmocka_unit_test(test_plain_spool_stays_plain),
		cmocka_unit_test(test_deferred_changes_land_on_commit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
