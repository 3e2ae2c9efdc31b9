// SPDX-License-Identifier: MIT
/*
 * Synced spool puts per second: THREADS threads each put one record at a
 * time and wait for its completion, as SMTP sessions waiting for their 250
 * do, so the rate shows what group commit makes of one fsync per batch.
 *
 * Build and run from the top of the tree, after `make`:
 *   cc -std=gnu11 -O2 -Iinclude -o build/rel/spool_bench bench/spool_bench.c \
 *      build/rel/libtern.a $(pkg-config --libs rocksdb) -lpthread -lm
 *   build/rel/spool_bench [DIR [THREADS [SECONDS [RECORD_BYTES]]]]
 * Defaults: a fresh directory under /tmp, 20 threads, 10 s, 4096 bytes.
 * The directory is left behind so it can be listed: tern spool list --spool DIR.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tern/log.h"
#include "tern/spool.h"

struct bench {
	struct spool *sp;
	size_t record_bytes;
	double until;
	atomic_ullong puts;
	atomic_ullong failures;
};

struct worker {
	struct bench *b;
	uint16_t shard;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
	int status;
	double max_latency;
};

static void
put_done(void *arg, int status, const struct tern_err *err)
{
	struct worker *w = arg;

	pthread_mutex_lock(&w->lock);
	w->status = status;
	w->done = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

static int
put_one(struct worker *w, char *data, struct buf *meta)
{
	struct spool_record rec = {.data = data, .data_len = w->b->record_bytes};
	struct tern_err err;

	spool_make_id(&rec.id, 1, w->shard);
	buf_reset(meta);
	buf_printf(meta,
		   "{\"sender\":\"bench@example.com\",\"recipient\":\"rcpt%u@example.org\","
		   "\"queue\":\"example.org\",\"size\":%zu,\"attempts\":0}",
		   (unsigned)w->shard, w->b->record_bytes);
	rec.meta = meta->data;
	rec.meta_len = meta->len;
	w->done = false;
	if (spool_put(w->b->sp, &rec, 1, put_done, w, &err) < 0)
		return -1;
	pthread_mutex_lock(&w->lock);
	while (!w->done)
		pthread_cond_wait(&w->cond, &w->lock);
	pthread_mutex_unlock(&w->lock);
	return w->status;
}

static void *
run_worker(void *arg)
{
	struct worker *w = arg;
	char *data = malloc(w->b->record_bytes);
	struct buf meta;

	memset(data, 'm', w->b->record_bytes);
	buf_init(&meta);
	while (util_now() < w->b->until) {
		double t0 = util_now(), lat;

		if (put_one(w, data, &meta) < 0)
			atomic_fetch_add(&w->b->failures, 1);
		else
			atomic_fetch_add(&w->b->puts, 1);
		lat = util_now() - t0;
		if (lat > w->max_latency)
			w->max_latency = lat;
	}
	buf_deinit(&meta);
	free(data);
	return NULL;
}

int
main(int argc, char **argv)
{
	char tmpl[] = "/tmp/spool_bench.XXXXXX";
	const char *dir = argc > 1 ? argv[1] : mkdtemp(tmpl);
	int threads = argc > 2 ? atoi(argv[2]) : 20;
	double secs = argc > 3 ? atof(argv[3]) : 10;
	struct bench b = {.record_bytes = argc > 4 ? strtoul(argv[4], NULL, 10) : 4096};
	struct spool_config cfg = {.path = dir};
	struct worker *w = calloc((size_t)threads, sizeof(*w));
	pthread_t *t = calloc((size_t)threads, sizeof(*t));
	struct spool_stats st;
	struct tern_err err;
	double start, elapsed, max_lat = 0;
	int i;

	log_set_level(LOG_LEVEL_WARN);
	b.sp = spool_open(&cfg, &err);
	if (dir == NULL || b.sp == NULL || threads <= 0 || w == NULL || t == NULL) {
		fprintf(stderr, "spool_bench: %s\n", b.sp ? "bad arguments" : err.msg);
		return 1;
	}
	start = util_now();
	b.until = start + secs;
	for (i = 0; i < threads; i++) {
		w[i] = (struct worker){.b = &b, .shard = (uint16_t)i};
		pthread_mutex_init(&w[i].lock, NULL);
		pthread_cond_init(&w[i].cond, NULL);
		pthread_create(&t[i], NULL, run_worker, &w[i]);
	}
	for (i = 0; i < threads; i++) {
		pthread_join(t[i], NULL);
		if (w[i].max_latency > max_lat)
			max_lat = w[i].max_latency;
	}
	elapsed = util_now() - start;
	spool_stats(b.sp, &st);
	spool_close(b.sp);
	printf("spool %s: %d threads, %zu-byte records, %.1f s\n", dir, threads, b.record_bytes,
	       elapsed);
	printf("%llu synced puts (%.0f/s), %llu failed; %llu fsynced batches (%.1f records/batch);"
	       " max put latency %.1f ms\n",
	       (unsigned long long)b.puts, (double)b.puts / elapsed, (unsigned long long)b.failures,
	       (unsigned long long)st.batches, st.batches ? (double)st.records / st.batches : 0.0,
	       max_lat * 1000);
	free(w);
	free(t);
	return b.failures ? 1 : 0;
}
