// SPDX-License-Identifier: MIT
/*
 * The spool: every accepted message lives in RocksDB until it is delivered,
 * bounced or expired. "data" holds the message bytes, "meta" its metadata,
 * keyed by the 16-byte time-ordered id, so that iterating a column family is
 * iterating messages in arrival order.
 *
 * A 250 may only be sent once a message is durable, and an fsync per message
 * would cap the MTA at the disk's fsync rate. So spool_put only queues a copy
 * of its records; one writer thread takes everything waiting, writes it as a
 * single synced WriteBatch and then completes every request in it. The
 * WriteBatch is atomic, so a request is either wholly durable or wholly
 * absent, whatever happens to the batch.
 *
 * A full disk must cost 4xx replies, never the process: spool_health.c
 * keeps each partition's free-space floor and its state after a failed
 * write; the writer asks it before each batch and reopens the database
 * here when it says so.
 */
#include "tern/spool.h"
#include "tern/spool_health.h"
#include "tern/spool_kept.h"
#include "tern/spool_layout.h"
#include "tern/spool_scan.h"
#include "tern/log.h"
#include "tern/metrics.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rocksdb/c.h>

#define SPOOL_MAX_BATCH_DEFAULT 4096
/*
 * RocksDB copies every value into the WriteBatch, so a batch doubles the
 * memory of what it holds: bound it in bytes as well as in records.
 */
#define SPOOL_MAX_BATCH_BYTES (64u << 20)
#define SPOOL_MEMTABLE_BUDGET_BYTES (64u << 20)
#define SPOOL_DATA_MEMTABLE_BYTES (32u << 20)
#define SPOOL_META_MEMTABLE_BYTES (8u << 20)
#define SPOOL_BLOCK_CACHE_BYTES (32u << 20)
/*
 * The meta CF's memtable fills slowly, and RocksDB keeps every WAL file
 * until all column families that have data in it are flushed; without a cap
 * one quiet CF pins gigabytes of WAL written for the busy data CF.
 */
#define SPOOL_MAX_TOTAL_WAL_BYTES (256u << 20)
/* Messages kept in RAM for their first attempt (spool_keep): a few thousand of 4 KiB. */
#define SPOOL_KEPT_BYTES (16u << 20)

enum spool_cf {
	SPOOL_CF_DEFAULT,
	SPOOL_CF_DATA,
	SPOOL_CF_META,
	SPOOL_CF_QUARANTINE,
	SPOOL_CF_KV,
	SPOOL_CF_N
};

/* RocksDB always has "default"; the spool keeps nothing in it. */
static const char *const spool_cf_names[SPOOL_CF_N] = {"default", "data", "meta", "quarantine",
						       "suppression"};

/*
 * One spool_put call: the records and a copy of their bytes, in one
 * allocation. Or one shard's deferred changes (spool_changes_commit): an
 * unsynced WriteBatch, no records, no callback.
 */
struct spool_req {
	struct spool_req *next;
	spool_done_fn done;
	void *arg;
	rocksdb_writebatch_t *changes;
	size_t n;
	size_t bytes;
	struct spool_record recs[];
};

struct spool_part {
	/*
	 * Every use of db and cf holds db_lock for reading; a reopen after a
	 * failed write replaces them under the write lock. db is NULL while a
	 * reopen has failed.
	 */
	pthread_rwlock_t db_lock;
	rocksdb_t *db;
	rocksdb_column_family_handle_t *cf[SPOOL_CF_N];
	rocksdb_options_t *db_opts;
	rocksdb_options_t *cf_opts[SPOOL_CF_N];
	rocksdb_block_based_table_options_t *table_opts;
	rocksdb_block_based_table_options_t *kv_table_opts;
	rocksdb_cache_t *cache;
	rocksdb_writeoptions_t *wo_sync;
	rocksdb_writeoptions_t *wo_nosync;
	rocksdb_readoptions_t *ro_meta;
	rocksdb_readoptions_t *ro_bulk;
	bool read_only;
	size_t max_batch;
	double min_sync_interval;
	double last_sync_start; /* util_now() as the last synced write began; the writer's own */
	char *path;
	struct spool_health health;
	_Atomic(spool_batch_end_fn) batch_end;

	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct spool_req *head;
	struct spool_req **tailp;
	size_t pending;
	bool pacing; /* the writer lets a batch fill for the puts announced */
	_Atomic int announced; /* puts on their way (spool_announce) */
	bool stopping;
	bool writer_running;
	pthread_t writer;

	_Atomic uint64_t batches;
	_Atomic uint64_t records;
	_Atomic uint64_t requests;
	_Atomic uint64_t failed;
};

/* Opening and closing */

static void
spool_set_cf_options(struct spool_part *sp, enum spool_cf cf, unsigned parts)
{
	rocksdb_options_t *o = rocksdb_options_create();

	rocksdb_options_set_block_based_table_factory(o, sp->table_opts);
	switch (cf) {
	case SPOOL_CF_DATA:
		/*
		 * Most bodies are deleted minutes after they arrive, often
		 * before their memtable is flushed, and what reaches an SST is
		 * largely base64 of already-compressed attachments: compressing
		 * would spend CPU on data that dies young and barely shrinks.
		 */
		rocksdb_options_set_compression(o, rocksdb_no_compression);
		rocksdb_options_set_write_buffer_size(o, SPOOL_DATA_MEMTABLE_BYTES / parts);
		break;
	case SPOOL_CF_META:
		/* Small JSON, rewritten on every attempt: LZ4 is nearly free. */
		rocksdb_options_set_compression(o, rocksdb_lz4_compression);
		rocksdb_options_set_write_buffer_size(o, SPOOL_META_MEMTABLE_BYTES / parts);
		break;
	case SPOOL_CF_QUARANTINE:
		/* Cold, and kept until an operator looks at it: zstd. */
		rocksdb_options_set_compression(o, rocksdb_zstd_compression);
		break;
	case SPOOL_CF_KV:
		/*
		 * Millions of small keys, nearly every lookup for one that is
		 * absent: a bloom filter answers those without reading a block.
		 */
		rocksdb_options_set_block_based_table_factory(o, sp->kv_table_opts);
		rocksdb_options_set_compression(o, rocksdb_lz4_compression);
		break;
	default:
		break;
	}
	sp->cf_opts[cf] = o;
}

static void
spool_set_options(struct spool_part *sp, unsigned parts)
{
	rocksdb_options_t *o = rocksdb_options_create();
	int i;

	/* The cache serves meta lookups; bulk reads below bypass it. */
	sp->cache = rocksdb_cache_create_lru(SPOOL_BLOCK_CACHE_BYTES / parts);
	sp->table_opts = rocksdb_block_based_options_create();
	rocksdb_block_based_options_set_block_cache(sp->table_opts, sp->cache);
	sp->kv_table_opts = rocksdb_block_based_options_create();
	rocksdb_block_based_options_set_block_cache(sp->kv_table_opts, sp->cache);
	rocksdb_block_based_options_set_filter_policy(sp->kv_table_opts,
						      rocksdb_filterpolicy_create_bloom_full(10));
	rocksdb_options_set_create_if_missing(o, !sp->read_only);
	rocksdb_options_set_create_missing_column_families(o, !sp->read_only);
	rocksdb_options_set_max_background_jobs(o, 2);
	rocksdb_options_set_max_total_wal_size(o, SPOOL_MAX_TOTAL_WAL_BYTES);
	/*
	 * Memtables across all column families share one budget, so ternd's
	 * memory does not grow with the backlog: a queued message costs its
	 * small queue entry, not a body held in RAM (DESIGN: memory holds
	 * metadata, not mail).
	 */
	rocksdb_options_set_db_write_buffer_size(o, SPOOL_MEMTABLE_BUDGET_BYTES / parts);
	rocksdb_options_set_keep_log_file_num(o, 4);
	/*
	 * RocksDB's info LOG lives on the spool's filesystem. Once one of its
	 * writes fails on a full disk, the next one trips an assertion in
	 * WritableFileWriter (`sync_without_flush_called_`, compiled into
	 * distribution builds) and aborts the process: the write that failed
	 * makes the error handler log again. Logging only fatal lines keeps the
	 * LOG from being written at run time at all; ternd reports the errors.
	 */
	rocksdb_options_set_info_log_level(o, 4 /* FATAL_LEVEL */);
	rocksdb_options_set_max_log_file_size(o, 16u << 20);
	sp->db_opts = o;
	for (i = 0; i < SPOOL_CF_N; i++)
		spool_set_cf_options(sp, (enum spool_cf)i, parts);

	sp->wo_sync = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(sp->wo_sync, 1);
	sp->wo_nosync = rocksdb_writeoptions_create();
	sp->ro_meta = rocksdb_readoptions_create();
	/* A body is read once per attempt and a scan reads everything once. */
	sp->ro_bulk = rocksdb_readoptions_create();
	rocksdb_readoptions_set_fill_cache(sp->ro_bulk, 0);
}

static void
spool_close_db(struct spool_part *sp)
{
	int i;

	for (i = 0; i < SPOOL_CF_N; i++) {
		if (sp->cf[i])
			rocksdb_column_family_handle_destroy(sp->cf[i]);
		sp->cf[i] = NULL;
	}
	if (sp->db)
		rocksdb_close(sp->db);
	sp->db = NULL;
}

static void
spool_free_handles(struct spool_part *sp)
{
	int i;

	spool_close_db(sp);
	for (i = 0; i < SPOOL_CF_N; i++)
		rocksdb_options_destroy(sp->cf_opts[i]);
	rocksdb_options_destroy(sp->db_opts);
	rocksdb_block_based_options_destroy(sp->table_opts);
	rocksdb_block_based_options_destroy(sp->kv_table_opts);
	rocksdb_cache_destroy(sp->cache);
	rocksdb_writeoptions_destroy(sp->wo_sync);
	rocksdb_writeoptions_destroy(sp->wo_nosync);
	rocksdb_readoptions_destroy(sp->ro_meta);
	rocksdb_readoptions_destroy(sp->ro_bulk);
}

/*
 * A spool written before a column family existed lacks it, and a read-only
 * open cannot create it: open what is there and leave the rest NULL.
 */
static int
spool_open_read_only(struct spool_part *sp, const char *path, char **rerr)
{
	const rocksdb_options_t *opts[SPOOL_CF_N];
	rocksdb_column_family_handle_t *h[SPOOL_CF_N];
	const char *names[SPOOL_CF_N];
	int map[SPOOL_CF_N], n = 0, i;
	size_t have_n = 0, j;
	char **have = rocksdb_list_column_families(sp->db_opts, path, &have_n, rerr);

	if (*rerr != NULL)
		return -EIO;
	for (i = 0; i < SPOOL_CF_N; i++) {
		for (j = 0; j < have_n && strcmp(have[j], spool_cf_names[i]) != 0; j++)
			;
		if (j == have_n)
			continue;
		names[n] = spool_cf_names[i];
		opts[n] = sp->cf_opts[i];
		map[n++] = i;
	}
	rocksdb_list_column_families_destroy(have, have_n);
	sp->db = rocksdb_open_for_read_only_column_families(sp->db_opts, path, n, names, opts, h, 0,
							     rerr);
	for (i = 0; *rerr == NULL && i < n; i++)
		sp->cf[map[i]] = h[i];
	return *rerr == NULL ? 0 : -EIO;
}

static int
spool_open_db(struct spool_part *sp, const char *path, struct tern_err *err)
{
	const rocksdb_options_t *cf_opts[SPOOL_CF_N];
	char *rerr = NULL;
	int i;

	for (i = 0; i < SPOOL_CF_N; i++)
		cf_opts[i] = sp->cf_opts[i];
	/* Read-only open takes no lock: it works beside a running ternd. */
	if (sp->read_only)
		spool_open_read_only(sp, path, &rerr);
	else
		sp->db = rocksdb_open_column_families(sp->db_opts, path, SPOOL_CF_N, spool_cf_names,
						      cf_opts, sp->cf, &rerr);
	if (rerr == NULL)
		return 0;
	tern_err_set(err, 451, "4.3.0", "cannot open spool %s: %s", path, rerr);
	rocksdb_free(rerr);
	sp->db = NULL;
	memset(sp->cf, 0, sizeof(sp->cf));
	return -EIO;
}

/* Handles and recovery */

/* Take the handles for a read or an unsynced write; -EAGAIN while a reopen has failed. */
static int
part_enter(struct spool_part *sp, struct tern_err *err)
{
	pthread_rwlock_rdlock(&sp->db_lock);
	if (sp->db != NULL)
		return 0;
	pthread_rwlock_unlock(&sp->db_lock);
	tern_err_set(err, 451, "4.3.0", "spool %s is recovering from a failed write", sp->path);
	return -EAGAIN;
}

static void
part_leave(struct spool_part *sp)
{
	pthread_rwlock_unlock(&sp->db_lock);
}

/*
 * Close and open the database after a failed write: the open replays the
 * WAL up to its last whole record, flushes it and starts a new WAL.
 */
static int
part_reopen(struct spool_part *sp, struct tern_err *err)
{
	int rc;

	pthread_rwlock_wrlock(&sp->db_lock);
	spool_close_db(sp);
	rc = spool_open_db(sp, sp->path, err);
	pthread_rwlock_unlock(&sp->db_lock);
	return rc;
}

/* On the writer: before each batch and once a second, look at the disk and recover. */
static void
part_tick(struct spool_part *sp, bool writing)
{
	struct tern_err err;

	if (spool_health_tick(&sp->health, writing))
		spool_health_reopened(&sp->health, part_reopen(sp, &err), &err);
}

/* The writer waits on the monotonic clock, to wake for its checks. */
static void
part_cond_init(struct spool_part *sp)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&sp->wake, &attr);
	pthread_condattr_destroy(&attr);
}

static void *spool_writer(void *arg);

static int
spool_start_writer(struct spool_part *sp, struct tern_err *err)
{
	int rc;

	if (sp->read_only)
		return 0;
	rc = pthread_create(&sp->writer, NULL, spool_writer, sp);
	if (rc != 0) {
		tern_err_set(err, 451, "4.3.0", "cannot start spool writer: %s", strerror(rc));
		return -rc;
	}
	sp->writer_running = true;
	return 0;
}

static void
spool_free(struct spool_part *sp)
{
	spool_free_handles(sp);
	pthread_cond_destroy(&sp->wake);
	pthread_mutex_destroy(&sp->lock);
	pthread_rwlock_destroy(&sp->db_lock);
	free(sp->path); sp->path = NULL;
	free(sp);
}

static struct spool_part *
part_open(const struct spool_config *cfg, const char *path, unsigned parts, struct tern_err *err)
{
	struct spool_part *sp = calloc(1, sizeof(*sp));

	if (sp == NULL) {
		tern_err_set(err, 451, "4.3.0", "cannot open spool: out of memory");
		return NULL;
	}
	sp->read_only = cfg->read_only;
	sp->max_batch = cfg->max_batch ? cfg->max_batch : SPOOL_MAX_BATCH_DEFAULT;
	sp->min_sync_interval = cfg->min_sync_interval;
	pthread_mutex_init(&sp->lock, NULL);
	part_cond_init(sp);
	pthread_rwlock_init(&sp->db_lock, NULL);
	sp->tailp = &sp->head;
	spool_set_options(sp, parts);
	sp->path = strdup(path);
	if (sp->path == NULL) {
		tern_err_set(err, 451, "4.3.0", "cannot open spool: out of memory");
		spool_free(sp);
		return NULL;
	}
	spool_health_init(&sp->health, sp->path, &cfg->min_free_space, &cfg->min_free_inodes);
	if (!sp->read_only)
		spool_health_check_space(&sp->health);
	if (spool_open_db(sp, path, err) < 0 || spool_start_writer(sp, err) < 0) {
		spool_free(sp);
		return NULL;
	}
	log_info("spool", "opened %s%s", path, sp->read_only ? " read-only" : "");
	return sp;
}

static void
part_close(struct spool_part *sp)
{
	if (sp == NULL)
		return;
	pthread_mutex_lock(&sp->lock);
	sp->stopping = true;
	pthread_cond_signal(&sp->wake);
	pthread_mutex_unlock(&sp->lock);
	/* The writer exits only once the queue is empty: nothing queued is dropped. */
	if (sp->writer_running)
		pthread_join(sp->writer, NULL);
	spool_free(sp);
}

/* Group commit */

static struct spool_req *
spool_req_new(const struct spool_record *recs, size_t n)
{
	size_t head = sizeof(struct spool_req) + n * sizeof(recs[0]);
	size_t bytes = 0, i;
	struct spool_req *req;
	char *p;

	if (n > (SIZE_MAX - sizeof(struct spool_req)) / sizeof(recs[0]))
		return NULL;
	for (i = 0; i < n; i++) {
		if (recs[i].data_len > SIZE_MAX - head - bytes ||
		    recs[i].meta_len > SIZE_MAX - head - bytes - recs[i].data_len)
			return NULL;
		bytes += recs[i].data_len + recs[i].meta_len;
	}
	req = malloc(head + bytes);
	if (req == NULL)
		return NULL;
	req->changes = NULL;
	req->n = n;
	req->bytes = bytes;
	p = (char *)req + head;
	for (i = 0; i < n; i++) {
		req->recs[i] = recs[i];
		req->recs[i].data = memcpy(p, recs[i].data, recs[i].data_len);
		p += recs[i].data_len;
		req->recs[i].meta = memcpy(p, recs[i].meta, recs[i].meta_len);
		p += recs[i].meta_len;
	}
	return req;
}

/* Queue req for the writer; -ESHUTDOWN once it is stopping (req stays the caller's). */
static int
part_enqueue(struct spool_part *sp, struct spool_req *req)
{
	req->next = NULL;
	pthread_mutex_lock(&sp->lock);
	if (sp->stopping) {
		pthread_mutex_unlock(&sp->lock);
		return -ESHUTDOWN;
	}
	*sp->tailp = req;
	sp->tailp = &req->next;
	sp->pending += req->n;
	if (!sp->pacing || sp->pending >= sp->max_batch || atomic_load(&sp->announced) <= 0)
		pthread_cond_signal(&sp->wake);
	pthread_mutex_unlock(&sp->lock);
	return 0;
}

static int
part_put(struct spool_part *sp, const struct spool_record *recs, size_t n, spool_done_fn done,
	  void *arg, struct tern_err *err)
{
	struct spool_req *req;

	if (n == 0 || done == NULL) {
		tern_err_set(err, 451, "4.3.0", "spool_put: nothing to write");
		return -EINVAL;
	}
	if (sp->read_only) {
		tern_err_set(err, 451, "4.3.0", "spool is read-only");
		return -EROFS;
	}
	if (spool_health_refusing(&sp->health, err))
		return -ENOSPC;
	req = spool_req_new(recs, n);
	if (req == NULL) {
		tern_err_set(err, 452, "4.3.1", "spool write failed: out of memory");
		return -ENOMEM;
	}
	req->done = done;
	req->arg = arg;
	if (part_enqueue(sp, req) == 0)
		return 0;
	free(req); req = NULL;
	tern_err_set(err, 451, "4.3.2", "spool is shutting down");
	return -ESHUTDOWN;
}

/*
 * Under load, a synced write waits for the puts announced as on their way,
 * until min_sync_interval after the one before it began, so that it covers
 * more messages: every sync costs CPU in the kernel (writeback, the
 * device's queue, wake-ups) however little it carries, and at a few
 * thousand messages a second a disk that syncs in a fraction of a
 * millisecond would otherwise sync one or two at a time. A write after a
 * quiet spell, with nothing announced, or filling a batch starts at once,
 * and so does a stop. Called with the lock held and something queued.
 */
static void
part_pace(struct spool_part *sp)
{
	double wait = sp->last_sync_start + sp->min_sync_interval - util_now();
	struct timespec until;

	if (wait <= 0)
		return;
	util_deadline_after(wait, &until);
	sp->pacing = true;
	while (sp->pending < sp->max_batch && !sp->stopping && atomic_load(&sp->announced) > 0)
		if (pthread_cond_timedwait(&sp->wake, &sp->lock, &until) == ETIMEDOUT)
			break;
	sp->pacing = false;
}

/*
 * Detach everything waiting, up to the batch limits, but always at least
 * one request so that an oversized one still goes through alone. NULL when
 * nothing came within SPOOL_HEALTH_CHECK_INTERVAL; *more turns false once stopping
 * and drained.
 */
static struct spool_req *
spool_take_batch(struct spool_part *sp, bool *more)
{
	struct spool_req *first, *last;
	struct timespec deadline;
	size_t recs, bytes;

	util_deadline_after(SPOOL_HEALTH_CHECK_INTERVAL, &deadline);
	pthread_mutex_lock(&sp->lock);
	while (sp->head == NULL && !sp->stopping)
		if (pthread_cond_timedwait(&sp->wake, &sp->lock, &deadline) == ETIMEDOUT)
			break;
	if (sp->head != NULL)
		part_pace(sp);
	*more = sp->head != NULL || !sp->stopping;
	first = last = sp->head;
	if (first != NULL) {
		recs = first->n;
		bytes = first->bytes;
		while (last->next && recs + last->next->n <= sp->max_batch &&
		       bytes + last->next->bytes <= SPOOL_MAX_BATCH_BYTES) {
			last = last->next;
			recs += last->n;
			bytes += last->bytes;
		}
		sp->head = last->next;
		if (sp->head == NULL)
			sp->tailp = &sp->head;
		last->next = NULL;
		sp->pending -= recs;
	}
	pthread_mutex_unlock(&sp->lock);
	return first;
}

static void
spool_fill_batch(struct spool_part *sp, rocksdb_writebatch_t *wb, const struct spool_req *batch)
{
	const struct spool_req *r;
	size_t i;

	for (r = batch; r; r = r->next) {
		for (i = 0; i < r->n; i++) {
			const struct spool_record *rec = &r->recs[i];

			rocksdb_writebatch_put_cf(wb, sp->cf[SPOOL_CF_DATA],
						  (const char *)rec->id.b, SPOOL_ID_LEN, rec->data,
						  rec->data_len);
			rocksdb_writebatch_put_cf(wb, sp->cf[SPOOL_CF_META],
						  (const char *)rec->id.b, SPOOL_ID_LEN, rec->meta,
						  rec->meta_len);
		}
	}
}

/*
 * The shards' deferred changes in the batch, each its own unsynced write:
 * the synced write that follows on this thread syncs them too.
 */
static void
spool_write_changes(struct spool_part *sp, const struct spool_req *batch)
{
	const struct spool_req *r;
	char *rerr = NULL;

	pthread_rwlock_rdlock(&sp->db_lock);
	for (r = batch; r && rerr == NULL; r = r->next)
		if (r->changes != NULL)
			rocksdb_write(sp->db, sp->wo_nosync, r->changes, &rerr);
	pthread_rwlock_unlock(&sp->db_lock);
	if (rerr == NULL)
		return;
	log_ratelimited(LOG_LEVEL_ERROR, "spool", "deferred update failed: %s", rerr);
	spool_health_write_failed(&sp->health, "a deferred update", rerr);
	rocksdb_free(rerr);
}

static uint64_t
batch_records(const struct spool_req *batch)
{
	uint64_t n = 0;

	for (; batch; batch = batch->next)
		n += batch->n;
	return n;
}

static int
spool_write_batch(struct spool_part *sp, const struct spool_req *batch, uint64_t nrecs,
		  struct tern_err *err)
{
	rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
	char *rerr = NULL;

	/* Only this thread reopens, and it does so between batches: the handles are there. */
	pthread_rwlock_rdlock(&sp->db_lock);
	spool_fill_batch(sp, wb, batch);
	sp->last_sync_start = util_now();
	rocksdb_write(sp->db, sp->wo_sync, wb, &rerr);
	pthread_rwlock_unlock(&sp->db_lock);
	rocksdb_writebatch_destroy(wb);
	atomic_fetch_add(&sp->batches, 1);
	atomic_fetch_add(&sp->records, nrecs);
	metrics_observe(METRICS_SYNC_BATCH, (double)nrecs);
	if (rerr == NULL)
		return 0;
	log_error("spool", "synced write of %llu records failed: %s", (unsigned long long)nrecs,
		  rerr);
	spool_health_write_failed(&sp->health, "a synced write", rerr);
	tern_err_set(err, 452, "4.3.1", "Insufficient system storage (spool write failed)");
	rocksdb_free(rerr);
	return -EIO;
}

/* Free a change request; true when it was one. */
static bool
free_changes(struct spool_req *req)
{
	if (req->changes == NULL)
		return false;
	rocksdb_writebatch_destroy(req->changes);
	free(req); req = NULL;
	return true;
}

static void
spool_commit(struct spool_part *sp, struct spool_req *batch)
{
	uint64_t nrecs = batch_records(batch);
	bool broken = spool_health_broken(&sp->health);
	struct tern_err err;
	struct spool_req *next;
	unsigned dropped = 0;
	int status = 0;

	/* A stopped database would refuse the write anyway; do not touch its WAL. */
	if (broken) {
		tern_err_set(&err, 452, "4.3.1",
			     "Insufficient system storage (spool recovering from a failed write)");
		status = -EIO;
	} else {
		spool_write_changes(sp, batch);
		if (nrecs > 0)
			status = spool_write_batch(sp, batch, nrecs, &err);
	}
	for (; batch; batch = next) {
		next = batch->next;
		if (free_changes(batch)) {
			dropped += broken;
			continue;
		}
		atomic_fetch_add(&sp->requests, 1);
		if (status < 0)
			atomic_fetch_add(&sp->failed, 1);
		batch->done(batch->arg, status, status < 0 ? &err : NULL);
		free(batch); batch = NULL;
	}
	if (dropped > 0)
		log_ratelimited(LOG_LEVEL_ERROR, "spool",
				"%u deferred updates dropped: %s is recovering from a failed write",
				dropped, sp->path);
}

static void *
spool_writer(void *arg)
{
	struct spool_part *sp = arg;
	struct spool_req *batch;
	spool_batch_end_fn end;
	bool more = true;

	/* RocksDB's default counts every key comparison of a memtable insert in thread-local storage. */
	rocksdb_set_perf_level(1 /* kDisable */);
	while (more) {
		batch = spool_take_batch(sp, &more);
		part_tick(sp, batch != NULL);
		if (batch == NULL)
			continue;
		spool_commit(sp, batch);
		end = atomic_load(&sp->batch_end);
		if (end != NULL)
			end();
	}
	return NULL;
}

static void
part_stats(struct spool_part *sp, struct spool_stats *out)
{
	out->batches = atomic_load(&sp->batches);
	out->records = atomic_load(&sp->records);
	out->requests = atomic_load(&sp->requests);
	out->failed = atomic_load(&sp->failed);
	out->announced = (uint64_t)atomic_load(&sp->announced);
	spool_health_stats(&sp->health, out);
	pthread_mutex_lock(&sp->lock);
	out->pending = sp->pending;
	pthread_mutex_unlock(&sp->lock);
}

/* Unsynced changes and reads */

static int
spool_check_writable(struct spool_part *sp, struct tern_err *err)
{
	if (!sp->read_only)
		return 0;
	tern_err_set(err, 451, "4.3.0", "spool is read-only");
	return -EROFS;
}

static int
spool_write_result(char *rerr, const char *what, struct tern_err *err)
{
	if (rerr == NULL)
		return 0;
	tern_err_set(err, 451, "4.3.0", "spool %s failed: %s", what, rerr);
	rocksdb_free(rerr);
	return -EIO;
}

/* Enter for an unsynced write: the spool is writable and its handles are there. */
static int
part_enter_writable(struct spool_part *sp, struct tern_err *err)
{
	int rc = spool_check_writable(sp, err);

	return rc < 0 ? rc : part_enter(sp, err);
}

/*
 * Write wb unsynced, leave (part_enter_writable came first) and free wb. A
 * failure stops the partition like a failed synced write.
 */
static int
part_write(struct spool_part *sp, rocksdb_writebatch_t *wb, const char *what, struct tern_err *err)
{
	char *rerr = NULL;

	rocksdb_write(sp->db, sp->wo_nosync, wb, &rerr);
	part_leave(sp);
	rocksdb_writebatch_destroy(wb);
	if (rerr != NULL)
		spool_health_write_failed(&sp->health, what, rerr);
	return spool_write_result(rerr, what, err);
}

static int
part_update_meta(struct spool_part *sp, const struct spool_id *id, const void *meta, size_t len,
		  struct tern_err *err)
{
	rocksdb_writebatch_t *wb;
	int rc = part_enter_writable(sp, err);

	if (rc < 0)
		return rc;
	wb = rocksdb_writebatch_create();
	rocksdb_writebatch_put_cf(wb, sp->cf[SPOOL_CF_META], (const char *)id->b, SPOOL_ID_LEN,
				  meta, len);
	return part_write(sp, wb, "meta update", err);
}

static int
part_remove(struct spool_part *sp, const struct spool_id *id, struct tern_err *err)
{
	rocksdb_writebatch_t *wb;
	int rc = part_enter_writable(sp, err);

	if (rc < 0)
		return rc;
	wb = rocksdb_writebatch_create();
	rocksdb_writebatch_delete_cf(wb, sp->cf[SPOOL_CF_DATA], (const char *)id->b, SPOOL_ID_LEN);
	rocksdb_writebatch_delete_cf(wb, sp->cf[SPOOL_CF_META], (const char *)id->b, SPOOL_ID_LEN);
	return part_write(sp, wb, "remove", err);
}

static int
spool_get_entered(struct spool_part *sp, enum spool_cf cf, const rocksdb_readoptions_t *ro,
		  const struct spool_id *id, struct buf *out, struct tern_err *err)
{
	rocksdb_pinnableslice_t *v;
	const char *p;
	char *rerr = NULL;
	size_t len;
	int rc;

	v = rocksdb_get_pinned_cf(sp->db, ro, sp->cf[cf], (const char *)id->b, SPOOL_ID_LEN, &rerr);
	if (rerr != NULL) {
		tern_err_set(err, 451, "4.3.0", "spool read failed: %s", rerr);
		rocksdb_free(rerr);
		return -EIO;
	}
	if (v == NULL) {
		tern_err_set(err, 451, "4.3.0", "message not in spool");
		return -ENOENT;
	}
	p = rocksdb_pinnableslice_value(v, &len);
	buf_reset(out);
	rc = buf_append(out, p, len);
	rocksdb_pinnableslice_destroy(v);
	if (rc < 0)
		tern_err_set(err, 451, "4.3.0", "spool read failed: out of memory");
	return rc;
}

static int
spool_get(struct spool_part *sp, enum spool_cf cf, const rocksdb_readoptions_t *ro,
	  const struct spool_id *id, struct buf *out, struct tern_err *err)
{
	int rc = part_enter(sp, err);

	if (rc < 0)
		return rc;
	rc = spool_get_entered(sp, cf, ro, id, out, err);
	part_leave(sp);
	return rc;
}

static int
part_get_data(struct spool_part *sp, const struct spool_id *id, struct buf *out, struct tern_err *err)
{
	return spool_get(sp, SPOOL_CF_DATA, sp->ro_bulk, id, out, err);
}

static int
part_get_meta(struct spool_part *sp, const struct spool_id *id, struct buf *out, struct tern_err *err)
{
	return spool_get(sp, SPOOL_CF_META, sp->ro_meta, id, out, err);
}

static int
part_scan(struct spool_part *sp, spool_visit_fn visit, void *arg, struct tern_err *err)
{
	struct spool_scan_handles h;
	int rc = part_enter(sp, err);

	if (rc < 0)
		return rc;
	h = (struct spool_scan_handles){
	    .db = sp->db,
	    .meta = sp->cf[SPOOL_CF_META],
	    .data = sp->cf[SPOOL_CF_DATA],
	    .quarantine = sp->cf[SPOOL_CF_QUARANTINE],
	    .ro = sp->ro_bulk,
	    .wo = sp->wo_nosync,
	    .read_only = sp->read_only,
	};
	rc = spool_scan_partition(&h, visit, arg, err);
	part_leave(sp);
	return rc;
}

/*
 * Partitions. A spool may be several RocksDB instances (partitions), each
 * with its own WAL and writer thread (spool_layout.c keeps the count on
 * disk). A message's partition is its id's lane modulo the partition count.
 */
struct spool {
	unsigned n;
	struct spool_part *parts[SPOOL_MAX_PARTITIONS];
	struct spool_kept kept;
};

static struct spool_part *
part_of(struct spool *sp, const struct spool_id *id)
{
	return sp->parts[spool_id_lane(id) % sp->n];
}

void
spool_announce(struct spool *sp, const struct spool_id *id)
{
	atomic_fetch_add(&part_of(sp, id)->announced, 1);
}

void
spool_withdraw(struct spool *sp, const struct spool_id *id)
{
	atomic_fetch_sub(&part_of(sp, id)->announced, 1);
}

struct spool *
spool_open(const struct spool_config *cfg, struct tern_err *err)
{
	struct spool *sp = calloc(1, sizeof(*sp));
	char path[4096];
	unsigned i, n;

	if (sp == NULL) {
		tern_err_set(err, 451, "4.3.0", "cannot open spool: out of memory");
		return NULL;
	}
	spool_kept_init(&sp->kept, SPOOL_KEPT_BYTES);
	if (spool_layout_choose(cfg, &n, err) < 0)
		goto fail;
	for (i = 0; i < n; i++) {
		if (n == 1)
			snprintf(path, sizeof(path), "%s", cfg->path);
		else
			snprintf(path, sizeof(path), "%s/p%u", cfg->path, i);
		sp->parts[i] = part_open(cfg, path, n, err);
		if (sp->parts[i] == NULL)
			goto fail;
		sp->n = i + 1;
	}
	if (!cfg->read_only && spool_layout_sync(cfg->path, err) < 0)
		goto fail;
	return sp;
fail:
	spool_close(sp);
	return NULL;
}

void
spool_close(struct spool *sp)
{
	unsigned i;

	if (sp == NULL)
		return;
	for (i = 0; i < sp->n; i++)
		part_close(sp->parts[i]);
	spool_kept_deinit(&sp->kept);
	free(sp);
}

unsigned
spool_partitions(const struct spool *sp)
{
	return sp->n;
}

int
spool_put(struct spool *sp, const struct spool_record *recs, size_t n, spool_done_fn done,
	  void *arg, struct tern_err *err)
{
	size_t i;

	/* All or nothing needs one WriteBatch, so one put may not span partitions. */
	for (i = 1; i < n; i++) {
		if (part_of(sp, &recs[i].id) != part_of(sp, &recs[0].id)) {
			tern_err_set(err, 451, "4.3.0", "spool_put: records of one put need one lane");
			return -EINVAL;
		}
	}
	return part_put(n ? part_of(sp, &recs[0].id) : sp->parts[0], recs, n, done, arg, err);
}

void
spool_stats(struct spool *sp, struct spool_stats *out)
{
	struct spool_stats one;
	unsigned i;

	memset(out, 0, sizeof(*out));
	out->free_bytes = UINT64_MAX;
	for (i = 0; i < sp->n; i++) {
		part_stats(sp->parts[i], &one);
		out->batches += one.batches;
		out->records += one.records;
		out->requests += one.requests;
		out->failed += one.failed;
		out->pending += one.pending;
		out->announced += one.announced;
		out->refused += one.refused;
		out->reopens += one.reopens;
		out->low |= one.low;
		out->broken |= one.broken;
		if (one.free_bytes < out->free_bytes) {
			out->free_bytes = one.free_bytes;
			out->size_bytes = one.size_bytes;
		}
	}
	spool_kept_stats(&sp->kept, &out->kept_bytes, &out->kept_taken, &out->kept_dropped);
}

void
spool_keep(struct spool *sp, const struct spool_id *id, void *obj, size_t bytes,
	   void (*free_fn)(void *obj))
{
	spool_kept_put(&sp->kept, id, obj, bytes, free_fn);
}

void *
spool_take_kept(struct spool *sp, const struct spool_id *id)
{
	return spool_kept_take(&sp->kept, id);
}

void
spool_set_batch_end(struct spool *sp, spool_batch_end_fn fn)
{
	unsigned i;

	for (i = 0; i < sp->n; i++)
		atomic_store(&sp->parts[i]->batch_end, fn);
}

int
spool_update_meta(struct spool *sp, const struct spool_id *id, const void *meta, size_t len,
		  struct tern_err *err)
{
	spool_kept_forget(&sp->kept, id);
	return part_update_meta(part_of(sp, id), id, meta, len, err);
}

int
spool_remove(struct spool *sp, const struct spool_id *id, struct tern_err *err)
{
	spool_kept_forget(&sp->kept, id);
	return part_remove(part_of(sp, id), id, err);
}

int
spool_get_data(struct spool *sp, const struct spool_id *id, struct buf *out, struct tern_err *err)
{
	return part_get_data(part_of(sp, id), id, out, err);
}

int
spool_get_meta(struct spool *sp, const struct spool_id *id, struct buf *out, struct tern_err *err)
{
	return part_get_meta(part_of(sp, id), id, out, err);
}

int
spool_scan(struct spool *sp, spool_visit_fn visit, void *arg, struct tern_err *err)
{
	unsigned i;
	int rc = 0;

	for (i = 0; i < sp->n && rc >= 0; i++)
		rc = part_scan(sp->parts[i], visit, arg, err);
	return rc;
}

/*
 * Deferred changes: removals and meta rewrites collected (per shard, per
 * loop iteration) and written together, one unsynced write per partition
 * instead of one per message.
 */
struct spool_changes {
	rocksdb_writebatch_t *wb[SPOOL_MAX_PARTITIONS];
	size_t pending;
};

struct spool_changes *
spool_changes_new(void)
{
	return calloc(1, sizeof(struct spool_changes));
}

void
spool_changes_free(struct spool_changes *c)
{
	int i;

	if (c == NULL)
		return;
	for (i = 0; i < SPOOL_MAX_PARTITIONS; i++)
		if (c->wb[i])
			rocksdb_writebatch_destroy(c->wb[i]);
	free(c);
}

size_t
spool_changes_pending(const struct spool_changes *c)
{
	return c->pending;
}

static rocksdb_writebatch_t *
changes_batch(struct spool_changes *c, struct spool *sp, const struct spool_id *id,
	      struct spool_part **part)
{
	unsigned i = spool_id_lane(id) % sp->n;

	*part = sp->parts[i];
	if (c->wb[i] == NULL)
		c->wb[i] = rocksdb_writebatch_create();
	return c->wb[i];
}

int
spool_changes_update_meta(struct spool_changes *c, struct spool *sp, const struct spool_id *id,
			  const void *meta, size_t len)
{
	struct spool_part *part;
	rocksdb_writebatch_t *wb = changes_batch(c, sp, id, &part);
	struct tern_err err;

	spool_kept_forget(&sp->kept, id);
	if (wb == NULL || part_enter(part, &err) < 0)
		return -EAGAIN;
	rocksdb_writebatch_put_cf(wb, part->cf[SPOOL_CF_META], (const char *)id->b, SPOOL_ID_LEN,
				  meta, len);
	part_leave(part);
	c->pending++;
	return 0;
}

int
spool_changes_remove(struct spool_changes *c, struct spool *sp, const struct spool_id *id)
{
	struct spool_part *part;
	rocksdb_writebatch_t *wb = changes_batch(c, sp, id, &part);
	struct tern_err err;

	spool_kept_forget(&sp->kept, id);
	if (wb == NULL || part_enter(part, &err) < 0)
		return -EAGAIN;
	rocksdb_writebatch_delete_cf(wb, part->cf[SPOOL_CF_DATA], (const char *)id->b, SPOOL_ID_LEN);
	rocksdb_writebatch_delete_cf(wb, part->cf[SPOOL_CF_META], (const char *)id->b, SPOOL_ID_LEN);
	part_leave(part);
	c->pending++;
	return 0;
}

/* Write wb unsynced here: for a writer that has stopped taking work. */
static int
changes_write_here(struct spool_part *part, rocksdb_writebatch_t *wb, struct tern_err *err)
{
	char *rerr = NULL;

	if (part_enter_writable(part, err) < 0)
		return -EIO;
	rocksdb_write(part->db, part->wo_nosync, wb, &rerr);
	part_leave(part);
	if (rerr != NULL)
		spool_health_write_failed(&part->health, "a deferred update", rerr);
	return spool_write_result(rerr, "deferred update", err);
}

/*
 * Hand the partition's batch to its writer thread, which writes it before
 * its next synced write: a shard's unsynced write would wait in RocksDB's
 * write queue behind the group commit in progress.
 */
static int
changes_hand_off(struct spool_part *part, rocksdb_writebatch_t **wb, struct tern_err *err)
{
	struct spool_req *req;
	size_t bytes;
	int rc;

	if (spool_check_writable(part, err) < 0)
		return -EROFS;
	req = calloc(1, sizeof(*req));
	if (req == NULL) {
		tern_err_set(err, 451, "4.3.0", "deferred update: out of memory");
		return -ENOMEM;
	}
	rocksdb_writebatch_data(*wb, &bytes);
	req->changes = *wb;
	req->bytes = bytes;
	if (part_enqueue(part, req) == 0) {
		*wb = NULL;
		return 0;
	}
	free(req); req = NULL;
	rc = changes_write_here(part, *wb, err);
	rocksdb_writebatch_clear(*wb);
	return rc;
}

int
spool_changes_commit(struct spool_changes *c, struct spool *sp, struct tern_err *err)
{
	unsigned i;
	int rc = 0;

	for (i = 0; i < sp->n; i++) {
		if (c->wb[i] == NULL || rocksdb_writebatch_count(c->wb[i]) == 0)
			continue;
		if (changes_hand_off(sp->parts[i], &c->wb[i], err) < 0) {
			if (c->wb[i] != NULL)
				rocksdb_writebatch_clear(c->wb[i]);
			rc = -EIO;
		}
	}
	c->pending = 0;
	return rc;
}

/*
 * The key-value column family ("suppression"): small records that are not
 * messages, kept beside them so that one directory holds all of a node's
 * state. Only the first partition's is used, so a key has one home whatever
 * the partition count.
 */

struct spool_kv_batch {
	rocksdb_writebatch_t *wb;
	size_t n;
};

static int
kv_enter(struct spool *sp, bool write, struct tern_err *err)
{
	struct spool_part *p = sp->parts[0];
	int rc = write ? part_enter_writable(p, err) : part_enter(p, err);

	if (rc < 0)
		return rc;
	if (p->cf[SPOOL_CF_KV] != NULL)
		return 0;
	part_leave(p);
	tern_err_set(err, 451, "4.3.0", "spool %s has no suppression column family", p->path);
	return -ENOENT;
}

int
spool_kv_get(struct spool *sp, const void *key, size_t klen, struct buf *out, struct tern_err *err)
{
	struct spool_part *p = sp->parts[0];
	rocksdb_pinnableslice_t *v;
	char *rerr = NULL;
	const char *val;
	size_t len;
	int rc = kv_enter(sp, false, err);

	if (rc < 0)
		return rc;
	v = rocksdb_get_pinned_cf(p->db, p->ro_meta, p->cf[SPOOL_CF_KV], key, klen, &rerr);
	if (rerr != NULL) {
		tern_err_set(err, 451, "4.3.0", "spool read failed: %s", rerr);
		rocksdb_free(rerr);
		rc = -EIO;
	} else if (v == NULL) {
		rc = -ENOENT;
	} else {
		val = rocksdb_pinnableslice_value(v, &len);
		buf_reset(out);
		rc = buf_append(out, val, len);
		rocksdb_pinnableslice_destroy(v);
	}
	part_leave(p);
	return rc;
}

struct spool_kv_batch *
spool_kv_batch_new(void)
{
	struct spool_kv_batch *b = calloc(1, sizeof(*b));

	if (b != NULL)
		b->wb = rocksdb_writebatch_create();
	return b;
}

void
spool_kv_batch_free(struct spool_kv_batch *b)
{
	if (b == NULL)
		return;
	rocksdb_writebatch_destroy(b->wb);
	free(b);
}

size_t
spool_kv_batch_count(const struct spool_kv_batch *b)
{
	return b->n;
}

void
spool_kv_batch_put(struct spool_kv_batch *b, const void *key, size_t klen, const void *val,
		   size_t vlen)
{
	rocksdb_writebatch_put(b->wb, key, klen, val, vlen);
	b->n++;
}

void
spool_kv_batch_delete(struct spool_kv_batch *b, const void *key, size_t klen)
{
	rocksdb_writebatch_delete(b->wb, key, klen);
	b->n++;
}

/*
 * A batch is collected without a column family and replayed into the kv
 * one at write time: the handle changes when a partition is reopened after
 * a failed write, and a batch may be collected across that.
 */
struct kv_replay {
	rocksdb_writebatch_t *wb;
	rocksdb_column_family_handle_t *cf;
};

static void
kv_replay_put(void *arg, const char *k, size_t klen, const char *v, size_t vlen)
{
	struct kv_replay *r = arg;

	rocksdb_writebatch_put_cf(r->wb, r->cf, k, klen, v, vlen);
}

static void
kv_replay_delete(void *arg, const char *k, size_t klen)
{
	struct kv_replay *r = arg;

	rocksdb_writebatch_delete_cf(r->wb, r->cf, k, klen);
}

int
spool_kv_write(struct spool *sp, struct spool_kv_batch *b, bool sync, struct tern_err *err)
{
	struct spool_part *p = sp->parts[0];
	struct kv_replay r;
	char *rerr = NULL;
	int rc = kv_enter(sp, true, err);

	if (rc < 0)
		return rc;
	r.wb = rocksdb_writebatch_create();
	r.cf = p->cf[SPOOL_CF_KV];
	rocksdb_writebatch_iterate(b->wb, &r, kv_replay_put, kv_replay_delete);
	rocksdb_write(p->db, sync ? p->wo_sync : p->wo_nosync, r.wb, &rerr);
	part_leave(p);
	rocksdb_writebatch_destroy(r.wb);
	rocksdb_writebatch_clear(b->wb);
	b->n = 0;
	if (rerr != NULL)
		spool_health_write_failed(&p->health, "suppression write", rerr);
	return spool_write_result(rerr, "suppression write", err);
}

int
spool_kv_scan(struct spool *sp, const void *prefix, size_t plen, spool_kv_visit_fn visit,
	      void *arg, struct tern_err *err)
{
	struct spool_part *p = sp->parts[0];
	rocksdb_iterator_t *it;
	char *rerr = NULL;
	int rc = kv_enter(sp, false, err);

	if (rc < 0)
		return rc;
	it = rocksdb_create_iterator_cf(p->db, p->ro_bulk, p->cf[SPOOL_CF_KV]);
	for (rocksdb_iter_seek(it, prefix, plen); rc == 0 && rocksdb_iter_valid(it);
	     rocksdb_iter_next(it)) {
		size_t klen, vlen;
		const char *k = rocksdb_iter_key(it, &klen);
		const char *v = rocksdb_iter_value(it, &vlen);

		if (klen < plen || memcmp(k, prefix, plen) != 0)
			break;
		rc = visit(arg, k, klen, v, vlen);
	}
	rocksdb_iter_get_error(it, &rerr);
	rocksdb_iter_destroy(it);
	part_leave(p);
	if (rerr != NULL) {
		tern_err_set(err, 451, "4.3.0", "spool read failed: %s", rerr);
		rocksdb_free(rerr);
		return -EIO;
	}
	return rc;
}

uint64_t
spool_kv_estimate(struct spool *sp)
{
	struct spool_part *p = sp->parts[0];
	struct tern_err err;
	uint64_t n = 0;

	if (kv_enter(sp, false, &err) < 0)
		return 0;
	if (rocksdb_property_int_cf(p->db, p->cf[SPOOL_CF_KV], "rocksdb.estimate-num-keys", &n) != 0)
		n = 0;
	part_leave(p);
	return n;
}
