// SPDX-License-Identifier: MIT
/*
 * Spool tests against a real RocksDB in a fresh temporary directory: ids,
 * group-committed puts and their pacing, state changes, the recovery scan
 * and its quarantine, reopening, read-only inspection beside a writer, and a
 * failing disk.
 */
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <fcntl.h>
#include <rocksdb/c.h>

#include "tern/cli.h"
#include "tern/spool.h"

#include "support.h"

struct fixture {
	char dir[64];
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/test_spool.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	support_rm_rf(f->dir);
	free(f);
	return 0;
}

static struct spool *
open_spool(const char *dir, bool read_only)
{
	struct spool_config cfg = {.path = dir, .read_only = read_only};
	struct tern_err err = {0};
	struct spool *sp = spool_open(&cfg, &err);

	if (sp == NULL)
		fail_msg("spool_open %s: %s", dir, err.msg);
	return sp;
}

/* A request's completion, waited for by the test. */
struct waiter {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	atomic_int calls;
	int status;
	struct tern_err err;
	bool err_was_null;
};

static void
waiter_init(struct waiter *w)
{
	memset(w, 0, sizeof(*w));
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
}

static void
waiter_done(void *arg, int status, const struct tern_err *err)
{
	struct waiter *w = arg;

	pthread_mutex_lock(&w->lock);
	w->status = status;
	w->err_was_null = err == NULL;
	if (err)
		w->err = *err;
	atomic_fetch_add(&w->calls, 1);
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

static void
waiter_wait(struct waiter *w)
{
	pthread_mutex_lock(&w->lock);
	while (atomic_load(&w->calls) == 0)
		pthread_cond_wait(&w->cond, &w->lock);
	pthread_mutex_unlock(&w->lock);
}

static void
put_sync(struct spool *sp, const struct spool_record *recs, size_t n)
{
	struct tern_err err = {0};
	struct waiter w;

	waiter_init(&w);
	assert_int_equal(spool_put(sp, recs, n, waiter_done, &w, &err), 0);
	waiter_wait(&w);
	assert_int_equal(w.status, 0);
	assert_true(w.err_was_null);
	assert_int_equal(atomic_load(&w.calls), 1);
}

static struct spool_record
record(struct spool_id *id, const char *data, const char *meta)
{
	struct spool_record r = {
	    .data = data, .data_len = strlen(data), .meta = meta, .meta_len = strlen(meta)};

	spool_make_id(id, 1, 0);
	r.id = *id;
	return r;
}

static void
assert_get(struct spool *sp, const struct spool_id *id, const char *data, const char *meta)
{
	struct tern_err err = {0};
	struct buf b;

	buf_init(&b);
	assert_int_equal(spool_get_data(sp, id, &b, &err), 0);
	assert_int_equal(b.len, strlen(data));
	assert_memory_equal(b.data, data, b.len);
	assert_int_equal(spool_get_meta(sp, id, &b, &err), 0);
	assert_string_equal(b.data, meta);
	buf_deinit(&b);
}

static void
assert_absent(struct spool *sp, const struct spool_id *id)
{
	struct tern_err err = {0};
	struct buf b;

	buf_init(&b);
	assert_int_equal(spool_get_data(sp, id, &b, &err), -ENOENT);
	assert_int_equal(spool_get_meta(sp, id, &b, &err), -ENOENT);
	buf_deinit(&b);
}

/* Ids */

static void
test_id_order_and_hex(void **state)
{
	struct spool_id prev, id, back;
	char hex[SPOOL_ID_HEX_LEN + 1];
	int i;

	spool_make_id(&prev, 7, 3);
	/* Far more ids than microseconds elapse: many share one. */
	for (i = 0; i < 100000; i++) {
		spool_make_id(&id, 7, 3);
		assert_true(memcmp(prev.b, id.b, SPOOL_ID_LEN) < 0);
		prev = id;
	}
	assert_true(spool_id_time(&id) > 1.6e9);
	assert_true(spool_id_time(&id) <= util_wallclock() + 1);
	assert_int_equal(id.b[8] << 8 | id.b[9], 7);
	assert_int_equal(id.b[10] << 8 | id.b[11], 3);

	spool_id_to_hex(&id, hex);
	assert_int_equal(strlen(hex), SPOOL_ID_HEX_LEN);
	assert_int_equal(spool_id_from_hex(hex, strlen(hex), &back), 0);
	assert_memory_equal(back.b, id.b, SPOOL_ID_LEN);
	assert_int_equal(spool_id_from_hex("00112233445566778899AABBCCDDEEFF", 32, &back), 0);
	assert_int_equal(back.b[10], 0xaa);
	assert_int_equal(spool_id_from_hex(hex, 31, &back), -EINVAL);
	assert_int_equal(spool_id_from_hex("0011223344556677889900aabbccddeg", 32, &back), -EINVAL);
}

#define ID_THREADS 4
#define IDS_PER_THREAD 20000

static struct spool_id thread_ids[ID_THREADS][IDS_PER_THREAD];

static void *
make_ids(void *arg)
{
	struct spool_id *ids = arg;
	int i;

	/* Every thread claims the same shard: the sequence alone keeps them apart. */
	for (i = 0; i < IDS_PER_THREAD; i++)
		spool_make_id(&ids[i], 1, 1);
	return NULL;
}

static int
cmp_id(const void *a, const void *b)
{
	return memcmp(a, b, SPOOL_ID_LEN);
}

static void
test_id_threads_unique(void **state)
{
	pthread_t t[ID_THREADS];
	struct spool_id *all = &thread_ids[0][0];
	int i, j;

	for (i = 0; i < ID_THREADS; i++)
		pthread_create(&t[i], NULL, make_ids, thread_ids[i]);
	for (i = 0; i < ID_THREADS; i++)
		pthread_join(t[i], NULL);
	for (i = 0; i < ID_THREADS; i++)
		for (j = 1; j < IDS_PER_THREAD; j++)
			assert_true(cmp_id(&thread_ids[i][j - 1], &thread_ids[i][j]) < 0);
	qsort(all, ID_THREADS * IDS_PER_THREAD, sizeof(*all), cmp_id);
	for (i = 1; i < ID_THREADS * IDS_PER_THREAD; i++)
		assert_true(cmp_id(&all[i - 1], &all[i]) != 0);
}

/* Puts */

static void
test_put_get(void **state)
{
	struct fixture *f = *state;
	struct spool *sp = open_spool(f->dir, false);
	struct spool_id ids[3], missing;
	struct spool_record recs[3];
	char big[100000];
	struct spool_stats st;

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	recs[0] = record(&ids[0], "Subject: a\r\n\r\nbody a\r\n", "{\"sender\":\"a@x\"}");
	recs[1] = record(&ids[1], big, "{}");
	recs[2] = record(&ids[2], "", "{\"empty\":true}");
	put_sync(sp, recs, 3);
	assert_get(sp, &ids[0], "Subject: a\r\n\r\nbody a\r\n", "{\"sender\":\"a@x\"}");
	assert_get(sp, &ids[1], big, "{}");
	assert_get(sp, &ids[2], "", "{\"empty\":true}");
	spool_make_id(&missing, 1, 0);
	assert_absent(sp, &missing);
	spool_stats(sp, &st);
	assert_int_equal(st.batches, 1);
	assert_int_equal(st.records, 3);
	assert_int_equal(st.requests, 1);
	assert_int_equal(st.failed, 0);
	assert_int_equal(st.pending, 0);
	spool_close(sp);
}

static void
test_put_rejects(void **state)
{
	struct fixture *f = *state;
	struct spool *sp = open_spool(f->dir, false);
	struct tern_err err = {0};
	struct spool_record rec;
	struct spool_id id;
	struct waiter w;

	waiter_init(&w);
	rec = record(&id, "d", "m");
	assert_int_equal(spool_put(sp, &rec, 0, waiter_done, &w, &err), -EINVAL);
	assert_int_equal(spool_put(sp, &rec, 1, NULL, NULL, &err), -EINVAL);
	assert_int_equal(atomic_load(&w.calls), 0);
	spool_close(sp);
}

#define PUT_THREADS 4
#define PUTS_PER_THREAD 150

struct putter {
	struct spool *sp;
	struct waiter w[PUTS_PER_THREAD];
	struct spool_id ids[PUTS_PER_THREAD];
	bool wait_each; /* an SMTP session waits for each 250; an injector may not */
};

static void *
put_many(void *arg)
{
	struct putter *p = arg;
	struct tern_err err;
	char data[64];
	int i;

	for (i = 0; i < PUTS_PER_THREAD; i++) {
		struct spool_record rec;

		snprintf(data, sizeof(data), "message %d from %p", i, (void *)p);
		rec = record(&p->ids[i], data, "{}");
		waiter_init(&p->w[i]);
		if (spool_put(p->sp, &rec, 1, waiter_done, &p->w[i], &err) != 0)
			return "spool_put failed";
		if (p->wait_each)
			waiter_wait(&p->w[i]);
	}
	for (i = 0; i < PUTS_PER_THREAD; i++)
		waiter_wait(&p->w[i]);
	return NULL;
}

static void
run_putters(struct spool *sp, struct putter *p, bool wait_each)
{
	pthread_t t[PUT_THREADS];
	void *res;
	int i;

	for (i = 0; i < PUT_THREADS; i++) {
		p[i].sp = sp;
		p[i].wait_each = wait_each;
		pthread_create(&t[i], NULL, put_many, &p[i]);
	}
	for (i = 0; i < PUT_THREADS; i++) {
		pthread_join(t[i], &res);
		assert_null(res);
	}
}

static void
check_putters(struct spool *sp, struct putter *p)
{
	struct buf b;
	int i, j;

	buf_init(&b);
	for (i = 0; i < PUT_THREADS; i++) {
		for (j = 0; j < PUTS_PER_THREAD; j++) {
			assert_int_equal(atomic_load(&p[i].w[j].calls), 1);
			assert_int_equal(p[i].w[j].status, 0);
			assert_int_equal(spool_get_data(sp, &p[i].ids[j], &b, NULL), 0);
		}
	}
	buf_deinit(&b);
}

static void
test_group_commit(void **state)
{
	static struct putter p[PUT_THREADS];
	struct fixture *f = *state;
	struct spool *sp = open_spool(f->dir, false);
	const uint64_t total = PUT_THREADS * PUTS_PER_THREAD;
	struct spool_stats st;
	int round;

	for (round = 0; round < 2; round++) {
		memset(p, 0, sizeof(p));
		run_putters(sp, p, round == 0);
		/* Give done time to be called a second time, if it ever were. */
		usleep(20000);
		check_putters(sp, p);
	}
	spool_stats(sp, &st);
	print_message("group commit: %llu requests in %llu synced batches\n",
		      (unsigned long long)st.requests, (unsigned long long)st.batches);
	assert_int_equal(st.requests, 2 * total);
	assert_int_equal(st.records, 2 * total);
	assert_true(st.batches < st.requests);
	assert_int_equal(st.failed, 0);
	spool_close(sp);
}

static void
test_max_batch(void **state)
{
	struct fixture *f = *state;
	struct spool_config cfg = {.path = f->dir, .max_batch = 2};
	struct spool *sp = spool_open(&cfg, NULL);
	struct spool_record recs[5];
	struct spool_id ids[5];
	struct waiter w[3];
	struct spool_stats st;
	int i;

	assert_non_null(sp);
	for (i = 0; i < 5; i++)
		recs[i] = record(&ids[i], "d", "m");
	for (i = 0; i < 3; i++)
		waiter_init(&w[i]);
	/* A request bigger than max_batch still goes through, alone and whole. */
	assert_int_equal(spool_put(sp, recs, 3, waiter_done, &w[0], NULL), 0);
	assert_int_equal(spool_put(sp, recs + 3, 1, waiter_done, &w[1], NULL), 0);
	assert_int_equal(spool_put(sp, recs + 4, 1, waiter_done, &w[2], NULL), 0);
	for (i = 0; i < 3; i++) {
		waiter_wait(&w[i]);
		assert_int_equal(w[i].status, 0);
	}
	spool_stats(sp, &st);
	assert_int_equal(st.records, 5);
	assert_true(st.batches >= 2);
	for (i = 0; i < 5; i++)
		assert_get(sp, &ids[i], "d", "m");
	spool_close(sp);
}

/*
 * Announces n + extra puts, then withdraws and puts n of them, one request
 * each, and waits for them all: the seconds it took. The extra stay
 * announced, as messages whose hooks still run.
 */
static double
put_announced(struct spool *sp, int n, int extra)
{
	struct waiter w[8];
	struct spool_id ids[8];
	double start = util_now();
	int i;

	assert_true(n + extra <= 8);
	for (i = 0; i < n + extra; i++) {
		spool_make_id(&ids[i], 1, 0);
		spool_announce(sp, &ids[i]);
	}
	for (i = 0; i < n; i++) {
		struct spool_record rec = {ids[i], "body", 4, "{}", 2};

		waiter_init(&w[i]);
		spool_withdraw(sp, &ids[i]);
		assert_int_equal(spool_put(sp, &rec, 1, waiter_done, &w[i], NULL), 0);
	}
	for (i = 0; i < n; i++) {
		waiter_wait(&w[i]);
		assert_int_equal(w[i].status, 0);
	}
	for (i = n; i < n + extra; i++)
		spool_withdraw(sp, &ids[i]);
	return util_now() - start;
}

static uint64_t
batches(struct spool *sp)
{
	struct spool_stats st;

	spool_stats(sp, &st);
	return st.batches;
}

static void
test_min_sync_interval(void **state)
{
	struct fixture *f = *state;
	struct spool_config cfg = {.path = f->dir, .min_sync_interval = 1.0};
	struct spool *sp = spool_open(&cfg, NULL);

	assert_non_null(sp);
	/* After a quiet spell a write is synced at once, whatever is announced... */
	assert_true(put_announced(sp, 1, 1) < 0.5);
	/* ...and so is one with nothing else announced, right after a sync... */
	assert_true(put_announced(sp, 1, 0) < 0.5);
	/* ...or once everything announced has been put, all in one sync. */
	assert_true(put_announced(sp, 3, 0) < 0.5);
	assert_int_equal(batches(sp), 3);
	/* What is put while more is announced waits for it, up to the interval. */
	assert_true(put_announced(sp, 5, 1) > 0.8);
	assert_int_equal(batches(sp), 4);
	spool_close(sp);
}

static void
test_min_sync_interval_full_batch_and_stop(void **state)
{
	struct fixture *f = *state;
	struct spool_config cfg = {.path = f->dir, .max_batch = 2, .min_sync_interval = 30.0};
	struct spool *sp = spool_open(&cfg, NULL);
	struct spool_id id, more;
	struct spool_record rec = record(&id, "body", "{}");
	struct waiter w;
	double start;

	assert_non_null(sp);
	assert_true(put_announced(sp, 1, 0) < 5);
	/* A full batch does not wait for the rest. */
	assert_true(put_announced(sp, 2, 1) < 5);
	assert_int_equal(batches(sp), 2);
	/* Nor does a stop: close syncs what is queued and returns. */
	spool_make_id(&more, 1, 0);
	spool_announce(sp, &more);
	waiter_init(&w);
	start = util_now();
	assert_int_equal(spool_put(sp, &rec, 1, waiter_done, &w, NULL), 0);
	spool_close(sp);
	assert_true(util_now() - start < 5);
	assert_int_equal(atomic_load(&w.calls), 1);
	assert_int_equal(w.status, 0);
}

#define DRAIN_N 500

static void
test_close_drains(void **state)
{
	static struct waiter w[DRAIN_N];
	struct fixture *f = *state;
	struct spool *sp = open_spool(f->dir, false);
	struct spool_id ids[DRAIN_N];
	int i;

	for (i = 0; i < DRAIN_N; i++) {
		struct spool_record rec = record(&ids[i], "body", "{}");

		waiter_init(&w[i]);
		assert_int_equal(spool_put(sp, &rec, 1, waiter_done, &w[i], NULL), 0);
	}
	spool_close(sp);
	for (i = 0; i < DRAIN_N; i++) {
		assert_int_equal(atomic_load(&w[i].calls), 1);
		assert_int_equal(w[i].status, 0);
	}
	sp = open_spool(f->dir, false);
	for (i = 0; i < DRAIN_N; i++)
		assert_get(sp, &ids[i], "body", "{}");
	spool_close(sp);
}

static void
test_update_remove(void **state)
{
	struct fixture *f = *state;
	struct spool *sp = open_spool(f->dir, false);
	struct tern_err err = {0};
	struct spool_record rec;
	struct spool_id id;

	rec = record(&id, "body", "{\"attempts\":0}");
	put_sync(sp, &rec, 1);
	assert_int_equal(spool_update_meta(sp, &id, "{\"attempts\":1}", 14, &err), 0);
	assert_get(sp, &id, "body", "{\"attempts\":1}");
	assert_int_equal(spool_remove(sp, &id, &err), 0);
	assert_absent(sp, &id);
	/* Removing what is not there is not an error: a retried removal after a crash. */
	assert_int_equal(spool_remove(sp, &id, &err), 0);
	spool_close(sp);
}

static atomic_int kept_freed;

static void
free_counted(void *obj)
{
	atomic_fetch_add(&kept_freed, 1);
	free(obj);
}

static void
keep(struct spool *sp, const struct spool_id *id, size_t bytes)
{
	spool_keep(sp, id, strdup("kept"), bytes, free_counted);
}

/*
 * What is kept for a first attempt comes back once; any change to the id's
 * records drops it; a full budget drops the oldest; a close frees the rest.
 */
static void
test_kept_for_the_first_attempt(void **state)
{
	struct fixture *f = *state;
	struct spool *sp = open_spool(f->dir, false);
	struct spool_changes *c = spool_changes_new();
	struct tern_err err = {0};
	struct spool_record rec;
	struct spool_id id[6];
	struct spool_stats st;
	char *obj;
	int i;

	atomic_store(&kept_freed, 0);
	for (i = 0; i < 6; i++) {
		rec = record(&id[i], "body", "{}");
		put_sync(sp, &rec, 1);
	}
	keep(sp, &id[0], 100);
	obj = spool_take_kept(sp, &id[0]);
	assert_non_null(obj);
	assert_string_equal(obj, "kept");
	free(obj);
	assert_null(spool_take_kept(sp, &id[0]));

	keep(sp, &id[1], 100);
	keep(sp, &id[2], 100);
	keep(sp, &id[3], 100);
	keep(sp, &id[4], 100);
	assert_int_equal(spool_update_meta(sp, &id[1], "{\"attempts\":1}", 14, &err), 0);
	assert_int_equal(spool_remove(sp, &id[2], &err), 0);
	assert_int_equal(spool_changes_update_meta(c, sp, &id[3], "{}", 2), 0);
	assert_int_equal(spool_changes_remove(c, sp, &id[4]), 0);
	assert_int_equal(spool_changes_commit(c, sp, &err), 0);
	for (i = 1; i <= 4; i++)
		assert_null(spool_take_kept(sp, &id[i]));
	assert_int_equal(atomic_load(&kept_freed), 4);

	/* 6 MiB each against a 16 MiB budget: the third put drops the first. */
	keep(sp, &id[1], 6u << 20);
	keep(sp, &id[2], 6u << 20);
	keep(sp, &id[3], 6u << 20);
	assert_null(spool_take_kept(sp, &id[1]));
	assert_int_equal(atomic_load(&kept_freed), 5);
	spool_stats(sp, &st);
	assert_true(st.kept_bytes > (12u << 20) && st.kept_bytes <= (16u << 20));
	assert_int_equal(st.kept_taken, 1);
	assert_int_equal(st.kept_dropped, 5);
	/* What can never fit is freed at once. */
	keep(sp, &id[5], 17u << 20);
	assert_int_equal(atomic_load(&kept_freed), 6);
	assert_null(spool_take_kept(sp, &id[5]));

	spool_changes_free(c);
	spool_close(sp);
	assert_int_equal(atomic_load(&kept_freed), 8);
}

/* Scan */

struct visited {
	struct spool_id ids[64];
	size_t meta_len[64];
	size_t data_len[64];
	int n;
	const struct spool_id *reject; /* ask for this one to be quarantined */
	int stop_after;		       /* return -ECANCELED after this many (0: never) */
};

static int
visit(void *arg, const struct spool_id *id, const char *meta, size_t meta_len, size_t data_len)
{
	struct visited *v = arg;

	if (v->n == 64)
		return -E2BIG;
	v->ids[v->n] = *id;
	v->meta_len[v->n] = meta_len;
	v->data_len[v->n] = data_len;
	v->n++;
	if (v->stop_after && v->n == v->stop_after)
		return -ECANCELED;
	if (v->reject && memcmp(v->reject->b, id->b, SPOOL_ID_LEN) == 0)
		return SPOOL_SCAN_QUARANTINE;
	return 0;
}

/* Write a raw entry into one column family, as a crash between two writes would leave it. */
static void
raw_put(const char *dir, const char *cf_name, const char *key, size_t klen, const char *val)
{
	const char *names[5] = {"default", "data", "meta", "quarantine", "suppression"};
	rocksdb_column_family_handle_t *cf[5];
	rocksdb_options_t *o = rocksdb_options_create();
	const rocksdb_options_t *cfo[5] = {o, o, o, o, o};
	rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
	char *rerr = NULL;
	rocksdb_t *db = rocksdb_open_column_families(o, dir, 5, names, cfo, cf, &rerr);
	int i;

	assert_null(rerr);
	for (i = 0; i < 5; i++)
		if (strcmp(names[i], cf_name) == 0)
			rocksdb_put_cf(db, wo, cf[i], key, klen, val, strlen(val), &rerr);
	assert_null(rerr);
	for (i = 0; i < 5; i++)
		rocksdb_column_family_handle_destroy(cf[i]);
	rocksdb_close(db);
	rocksdb_writeoptions_destroy(wo);
	rocksdb_options_destroy(o);
}

/* Read a raw value from the quarantine column family; NULL when absent. */
static char *
raw_quarantine_get(const char *dir, const char *prefix, const struct spool_id *id)
{
	const char *names[5] = {"default", "data", "meta", "quarantine", "suppression"};
	rocksdb_column_family_handle_t *cf[5];
	rocksdb_options_t *o = rocksdb_options_create();
	const rocksdb_options_t *cfo[5] = {o, o, o, o, o};
	rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
	char key[64], *val, *rerr = NULL;
	size_t plen = strlen(prefix), vlen;
	rocksdb_t *db =
	    rocksdb_open_for_read_only_column_families(o, dir, 4, names, cfo, cf, 0, &rerr);
	int i;

	assert_null(rerr);
	memcpy(key, prefix, plen);
	memcpy(key + plen, id->b, SPOOL_ID_LEN);
	val = rocksdb_get_cf(db, ro, cf[3], key, plen + SPOOL_ID_LEN, &vlen, &rerr);
	assert_null(rerr);
	if (val) {
		val = realloc(val, vlen + 1);
		val[vlen] = '\0';
	}
	for (i = 0; i < 4; i++)
		rocksdb_column_family_handle_destroy(cf[i]);
	rocksdb_close(db);
	rocksdb_readoptions_destroy(ro);
	rocksdb_options_destroy(o);
	return val;
}

static void
assert_quarantined(const char *dir, const char *prefix, const struct spool_id *id, const char *val)
{
	char *got = raw_quarantine_get(dir, prefix, id);

	assert_non_null(got);
	assert_string_equal(got, val);
	free(got);
}

static void
test_scan_order(void **state)
{
	struct fixture *f = *state;
	struct spool *sp = open_spool(f->dir, false);
	struct spool_record recs[10];
	struct spool_id ids[10];
	struct visited v = {0};
	struct tern_err err = {0};
	char meta[10][24];
	int i;

	for (i = 0; i < 10; i++) {
		snprintf(meta[i], sizeof(meta[i]), "{\"n\":%d}", i);
		recs[i] = record(&ids[i], "0123456789" + i, meta[i]);
	}
	/* Written newest first, in two batches: the scan still goes by id. */
	put_sync(sp, recs + 5, 5);
	put_sync(sp, recs, 5);
	assert_int_equal(spool_scan(sp, visit, &v, &err), 0);
	assert_int_equal(v.n, 10);
	for (i = 0; i < 10; i++) {
		assert_memory_equal(v.ids[i].b, ids[i].b, SPOOL_ID_LEN);
		assert_int_equal(v.meta_len[i], strlen(meta[i]));
		assert_int_equal(v.data_len[i], 10 - i);
	}
	memset(&v, 0, sizeof(v));
	v.stop_after = 3;
	assert_int_equal(spool_scan(sp, visit, &v, &err), -ECANCELED);
	assert_int_equal(v.n, 3);
	spool_close(sp);
}

static void
test_scan_quarantine(void **state)
{
	struct fixture *f = *state;
	struct spool *sp = open_spool(f->dir, false);
	struct spool_id good[3], meta_orphan, data_orphan;
	struct spool_record recs[3];
	struct tern_err err = {0};
	struct visited v = {0};

	recs[0] = record(&good[0], "d0", "m0");
	spool_make_id(&data_orphan, 1, 0);
	recs[1] = record(&good[1], "d1", "m1");
	spool_make_id(&meta_orphan, 1, 0);
	recs[2] = record(&good[2], "d2", "m2");
	put_sync(sp, recs, 3);
	/* The crash case: state written for a message whose data never made it. */
	assert_int_equal(spool_update_meta(sp, &meta_orphan, "lost meta", 9, &err), 0);
	spool_close(sp);
	raw_put(f->dir, "data", (const char *)data_orphan.b, SPOOL_ID_LEN, "lost data");
	raw_put(f->dir, "meta", "short", 5, "bad key meta");
	raw_put(f->dir, "data", "short", 5, "bad key data");

	sp = open_spool(f->dir, false);
	v.reject = &good[1];
	assert_int_equal(spool_scan(sp, visit, &v, &err), 0);
	assert_int_equal(v.n, 3);
	assert_memory_equal(v.ids[0].b, good[0].b, SPOOL_ID_LEN);
	assert_memory_equal(v.ids[1].b, good[1].b, SPOOL_ID_LEN);
	assert_memory_equal(v.ids[2].b, good[2].b, SPOOL_ID_LEN);
	assert_absent(sp, &good[1]);
	assert_absent(sp, &meta_orphan);
	assert_absent(sp, &data_orphan);
	assert_get(sp, &good[0], "d0", "m0");

	/* Only the good entries are left for the next start. */
	memset(&v, 0, sizeof(v));
	assert_int_equal(spool_scan(sp, visit, &v, &err), 0);
	assert_int_equal(v.n, 2);
	spool_close(sp);

	assert_quarantined(f->dir, "meta:", &meta_orphan, "lost meta");
	assert_quarantined(f->dir, "data:", &data_orphan, "lost data");
	assert_quarantined(f->dir, "meta:", &good[1], "m1");
	assert_quarantined(f->dir, "data:", &good[1], "d1");
	assert_null(raw_quarantine_get(f->dir, "meta:", &good[0]));
}

static void
test_reopen_recovers(void **state)
{
	struct fixture *f = *state;
	struct spool *sp = open_spool(f->dir, false);
	struct spool_record recs[20];
	struct spool_id ids[20];
	struct visited v = {0};
	int i;

	for (i = 0; i < 20; i++)
		recs[i] = record(&ids[i], "data", "meta");
	for (i = 0; i < 20; i += 4)
		put_sync(sp, recs + i, 4);
	spool_close(sp);

	sp = open_spool(f->dir, false);
	assert_int_equal(spool_scan(sp, visit, &v, NULL), 0);
	assert_int_equal(v.n, 20);
	for (i = 0; i < 20; i++) {
		assert_memory_equal(v.ids[i].b, ids[i].b, SPOOL_ID_LEN);
		assert_get(sp, &ids[i], "data", "meta");
	}
	spool_close(sp);
}

static void
test_read_only_beside_writer(void **state)
{
	struct fixture *f = *state;
	struct spool *rw = open_spool(f->dir, false);
	struct spool *ro;
	struct spool_record rec, orphan;
	struct spool_id id, orphan_id;
	struct tern_err err = {0};
	struct visited v = {0};
	struct buf b;

	rec = record(&id, "written while open", "{}");
	put_sync(rw, &rec, 1);
	orphan = record(&orphan_id, "x", "orphan meta");
	assert_int_equal(spool_update_meta(rw, &orphan_id, orphan.meta, orphan.meta_len, &err), 0);

	ro = open_spool(f->dir, true);
	assert_get(ro, &id, "written while open", "{}");
	/* A read-only scan reports the orphan but cannot move it. */
	assert_int_equal(spool_scan(ro, visit, &v, &err), 0);
	assert_int_equal(v.n, 1);
	assert_int_equal(spool_put(ro, &rec, 1, waiter_done, NULL, &err), -EROFS);
	assert_int_equal(spool_update_meta(ro, &id, "{}", 2, &err), -EROFS);
	assert_int_equal(spool_remove(ro, &id, &err), -EROFS);
	spool_close(ro);

	buf_init(&b);
	assert_int_equal(spool_get_meta(rw, &orphan_id, &b, &err), 0);
	buf_deinit(&b);
	spool_close(rw);
}

static void
test_not_a_spool(void **state)
{
	struct fixture *f = *state;
	struct spool_config cfg = {.path = f->dir, .read_only = true};
	struct tern_err err = {0};

	/* An empty directory is not a spool, and a read-only open must not make one. */
	assert_null(spool_open(&cfg, &err));
	assert_int_equal(err.code, 451);
	assert_non_null(strstr(err.msg, f->dir));
	assert_int_equal(rmdir(f->dir), 0);
	assert_int_equal(mkdir(f->dir, 0700), 0);
}

/* Wait (up to 10 s) until the writer has reopened the spool after a failed write. */
static void
wait_reopened(struct spool *sp)
{
	struct spool_stats st;
	int i;

	for (i = 0; i < 1000; i++) {
		spool_stats(sp, &st);
		if (st.reopens > 0 && !st.broken)
			return;
		usleep(10000);
	}
	fail_msg("the spool was not reopened after a failed write");
}

/*
 * Regression: the first failed write on a full disk aborted ternd in
 * RocksDB (`sync_without_flush_called_`). A full disk, made with
 * RLIMIT_FSIZE: the WAL append fails, every request of the batch gets 452
 * 4.3.1, nothing of it can be read back, new requests are refused at once
 * until the writer has reopened the database, and then they are accepted.
 */
static void
test_write_failure(void **state)
{
	struct fixture *f = *state;
	struct spool *sp = open_spool(f->dir, false);
	static char big[1 << 20];
	struct rlimit old, small;
	struct spool_record rec;
	struct spool_id id, later;
	struct spool_stats st;
	struct waiter w;

	memset(big, 'b', sizeof(big) - 1);
	rec = record(&id, big, "{}");
	signal(SIGXFSZ, SIG_IGN);
	getrlimit(RLIMIT_FSIZE, &old);
	small = old;
	small.rlim_cur = 64 << 10;
	setrlimit(RLIMIT_FSIZE, &small);
	waiter_init(&w);
	assert_int_equal(spool_put(sp, &rec, 1, waiter_done, &w, NULL), 0);
	waiter_wait(&w);
	setrlimit(RLIMIT_FSIZE, &old);

	assert_true(w.status < 0);
	assert_false(w.err_was_null);
	assert_int_equal(w.err.code, 452);
	assert_string_equal(w.err.enhanced, "4.3.1");
	assert_non_null(strstr(w.err.msg, "Insufficient system storage"));
	assert_int_equal(atomic_load(&w.calls), 1);
	spool_stats(sp, &st);
	assert_int_equal(st.failed, 1);
	assert_absent(sp, &id);

	/* Refused without a write until the reopen, which the writer does by itself. */
	spool_stats(sp, &st);
	if (st.broken) {
		struct tern_err err = {0};

		rec = record(&later, "small", "{}");
		assert_int_equal(spool_put(sp, &rec, 1, waiter_done, &w, &err), -ENOSPC);
		assert_int_equal(err.code, 452);
		assert_string_equal(err.enhanced, "4.3.1");
	}
	wait_reopened(sp);
	rec = record(&later, "after", "{}");
	put_sync(sp, &rec, 1);
	assert_get(sp, &later, "after", "{}");
	spool_close(sp);

	sp = open_spool(f->dir, false);
	assert_absent(sp, &id);
	spool_close(sp);
}

/* A filesystem below the floor (here: no filesystem has 2^60 bytes free): 452 4.3.1 at once. */
static void
test_floor_refuses(void **state)
{
	struct fixture *f = *state;
	struct spool_config cfg = {.path = f->dir, .min_free_space = {0, 1ull << 60}};
	struct tern_err err = {0};
	struct spool_stats st;
	struct spool_record rec;
	struct spool_id id;
	struct spool *sp = spool_open(&cfg, &err);
	struct waiter w;

	assert_non_null(sp);
	waiter_init(&w);
	rec = record(&id, "data", "{}");
	assert_int_equal(spool_put(sp, &rec, 1, waiter_done, &w, &err), -ENOSPC);
	assert_int_equal(err.code, 452);
	assert_string_equal(err.enhanced, "4.3.1");
	assert_string_equal(err.msg, "Insufficient system storage");
	assert_int_equal(atomic_load(&w.calls), 0);
	spool_stats(sp, &st);
	assert_true(st.low);
	assert_int_equal(st.refused, 1);
	/* Removals, which free space, go on below the floor. */
	assert_int_equal(spool_remove(sp, &id, &err), 0);
	spool_close(sp);

	/* The same disk with a floor it clears (a share of it, and inodes). */
	cfg.min_free_space = (struct spool_floor){0.001, 0};
	cfg.min_free_inodes = (struct spool_floor){0.001, 0};
	sp = spool_open(&cfg, &err);
	assert_non_null(sp);
	put_sync(sp, &rec, 1);
	assert_get(sp, &id, "data", "{}");
	spool_close(sp);
}

/* tern spool list */

/* Run `tern spool ...` with its stdout captured into out. */
static int
run_cli(const char *dir, struct buf *out, int argc, char **argv)
{
	char path[128];
	int saved, fd, rc;
	char chunk[4096];
	ssize_t n;

	snprintf(path, sizeof(path), "%s.out", dir);
	fflush(stdout);
	saved = dup(STDOUT_FILENO);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	dup2(fd, STDOUT_FILENO);
	rc = cli_spool_main(argc, argv);
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	lseek(fd, 0, SEEK_SET);
	buf_reset(out);
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		buf_append(out, chunk, (size_t)n);
	close(fd);
	unlink(path);
	return rc;
}

static void
expect_line(struct buf *b, const struct spool_id *id, const char *fields, const char *size)
{
	char hex[SPOOL_ID_HEX_LEN + 1], created[32];

	spool_id_to_hex(id, hex);
	util_format_time(spool_id_time(id), created);
	buf_printf(b, "{\"id\":\"%s\",%s,\"created\":\"%s\",\"size\":%s}\n", hex, fields, created,
		   size);
}

static void
test_cli_list(void **state)
{
	struct fixture *f = *state;
	struct spool *sp = open_spool(f->dir, false);
	char *argv[] = {"spool", "list", "--spool", f->dir};
	struct spool_record recs[4];
	struct spool_id ids[4];
	struct buf out, want;
	char eq[96];

	/* Top-level fields only, whatever nests before them; escapes decoded and re-escaped. */
	recs[0] = record(
	    &ids[0], "0123456789",
	    "{\"nested\":{\"sender\":\"wrong\"},\"list\":[{\"queue\":\"x\"},\"]}\"],"
	    "\"sender\":\"a\\\"q\\\"\\/b@example.com\",\"recipient\":\"b\\u00e9@example.org\","
	    "\"queue\":\"example.org\",\"size\":1234}");
	recs[1] = record(&ids[1], "12345",
			 " {\"sender\":\"\\ud83d\\ude00@x\",\"recipient\":\"tab\\there\","
			 "\"queue\":7,\"size\":-1}");
	recs[2] = record(&ids[2], "123", "not json{");
	recs[3] = record(&ids[3], "1234", "[\"sender\",\"a\"]");
	put_sync(sp, recs, 4);

	buf_init(&out);
	buf_init(&want);
	expect_line(
	    &want, &ids[0],
	    "\"sender\":\"a\\\"q\\\"/b@example.com\",\"recipient\":\"b\xc3\xa9@example.org\","
	    "\"queue\":\"example.org\"",
	    "1234");
	expect_line(&want, &ids[1],
		    "\"sender\":\"\xf0\x9f\x98\x80@x\",\"recipient\":\"tab\\there\",\"queue\":null",
		    "5");
	expect_line(&want, &ids[2], "\"sender\":null,\"recipient\":null,\"queue\":null", "3");
	expect_line(&want, &ids[3], "\"sender\":null,\"recipient\":null,\"queue\":null", "4");

	/* Listed while ternd (this read-write handle) still has the spool open. */
	assert_int_equal(run_cli(f->dir, &out, 4, argv), 0);
	assert_string_equal(out.data, want.data);
	spool_close(sp);

	snprintf(eq, sizeof(eq), "--spool=%s", f->dir);
	argv[2] = eq;
	assert_int_equal(run_cli(f->dir, &out, 3, argv), 0);
	assert_string_equal(out.data, want.data);
	argv[2] = "--spool=";
	assert_int_equal(run_cli(f->dir, &out, 3, argv), 2);
	assert_int_equal(out.len, 0);
	buf_deinit(&out);
	buf_deinit(&want);
}

static void
test_cli_usage_and_not_a_spool(void **state)
{
	struct fixture *f = *state;
	char not_spool[96];
	char *list[] = {"spool", "list", "--spool", not_spool};
	char *bogus[] = {"spool", "list", "--bogus"};
	char *nothing[] = {"spool"};
	char *help[] = {"spool", "--help"};
	struct buf out;

	buf_init(&out);
	snprintf(not_spool, sizeof(not_spool), "%s/empty", f->dir);
	assert_int_equal(mkdir(not_spool, 0700), 0);
	assert_int_equal(run_cli(f->dir, &out, 4, list), 2);
	assert_int_equal(out.len, 0);
	assert_int_equal(run_cli(f->dir, &out, 3, bogus), 2);
	assert_int_equal(run_cli(f->dir, &out, 2, list), 2);
	assert_int_equal(run_cli(f->dir, &out, 1, nothing), 2);
	assert_int_equal(run_cli(f->dir, &out, 2, help), 0);
	assert_non_null(strstr(out.data, "tern spool list --spool DIR"));
	/* Still nothing there: a read-only open creates no spool. */
	assert_int_equal(rmdir(not_spool), 0);
	buf_deinit(&out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_id_order_and_hex),
	    cmocka_unit_test(test_id_threads_unique),
	    cmocka_unit_test_setup_teardown(test_put_get, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_put_rejects, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_max_batch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_min_sync_interval, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_min_sync_interval_full_batch_and_stop, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_close_drains, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_update_remove, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_kept_for_the_first_attempt, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scan_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scan_quarantine, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reopen_recovers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_read_only_beside_writer, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_not_a_spool, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_write_failure, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_floor_refuses, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cli_list, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cli_usage_and_not_a_spool, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
