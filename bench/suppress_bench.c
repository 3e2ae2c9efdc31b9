// SPDX-License-Identifier: MIT
/*
 * suppress_bench: the suppression list at scale. Fills a fresh spool with N
 * entries (default 10 M; tenants "t0".."t9", addresses userI@domainJ.example)
 * through the bulk path `tern suppress import` uses, then measures one
 * suppress_check() on one thread, in its CPU time, medians of 100 batches of 10 000:
 *   miss     - an address not listed (what nearly every recipient is)
 *   hit      - an address listed for its tenant, no details asked (the RCPT
 *              and injection gates)
 *   details  - the same hit with the entry asked for (a Suppressed record,
 *              tern.suppress.check, the admin API): a spool read
 * with the in-memory index (as ternd runs) and without it (RocksDB and its
 * table bloom filters alone), after reopening the spool so that the memtable
 * is flushed and the lookups read SST files. Also the index's load time and
 * the resident memory it adds per entry. An existing directory (from an
 * earlier run with the same N) is reused without filling.
 *
 * Build and run (after `make`):
 *   cc -std=gnu11 -O2 -Iinclude -o build/rel/suppress_bench bench/suppress_bench.c \
 *      build/rel/libtern.a $(pkg-config --libs luajit libcares openssl rocksdb libzstd \
 *      libpcre2-8) -lev -lpthread -lm
 *   build/rel/suppress_bench /var/tmp/suppress-bench 10000000
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tern/log.h"
#include "tern/spool.h"
#include "tern/suppress.h"

#define BATCHES 100
#define PER_BATCH 10000

static double
clock_of(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double
now(void)
{
	return clock_of(CLOCK_MONOTONIC);
}

/*
 * Lookups are timed in this thread's CPU time: on a shared, loaded box the
 * wall clock also counts the time slices other processes took meanwhile.
 */
static double
cpu_now(void)
{
	return clock_of(CLOCK_THREAD_CPUTIME_ID);
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void
address(char *out, size_t n, unsigned long i)
{
	snprintf(out, n, "user%lu@domain%lu.example", i, i % 5000);
}

static struct spool *
open_spool(const char *dir, bool bloom)
{
	struct spool_config cfg = {.path = dir};
	struct tern_err err;
	struct spool *sp = spool_open(&cfg, &err);

	if (sp == NULL || suppress_open(sp, bloom, &err) < 0) {
		fprintf(stderr, "open %s: %s\n", dir, err.msg);
		exit(1);
	}
	return sp;
}

static void
fill(const char *dir, unsigned long n)
{
	struct spool *sp = open_spool(dir, false);
	struct suppress_batch *b = suppress_batch_new();
	struct suppress_entry e;
	struct tern_err err;
	char tenant[8], addr[64];
	double t0 = now();
	unsigned long i;

	for (i = 0; i < n; i++) {
		snprintf(tenant, sizeof(tenant), "t%lu", i % 10);
		address(addr, sizeof(addr), i);
		if (suppress_entry_init(&e, tenant, addr, &err) < 0 ||
		    suppress_batch_add(b, &e, &err) < 0) {
			fprintf(stderr, "add: %s\n", err.msg);
			exit(1);
		}
	}
	if (suppress_batch_finish(b, &err) < 0) {
		fprintf(stderr, "finish: %s\n", err.msg);
		exit(1);
	}
	printf("import: %lu entries in %.1f s (%.0f entries/s)\n", n, now() - t0,
	       n / (now() - t0));
	suppress_close();
	spool_close(sp);
}

/* Median ns per check of one batch kind: hits look up listed (tenant, address) pairs. */
static double
measure(unsigned long n, bool hits, bool details)
{
	struct suppress_entry e;
	double per[BATCHES];
	char tenant[8], addr[64];
	unsigned long found = 0;
	int b, i;

	srandom(42);
	for (b = 0; b < BATCHES; b++) {
		double t0 = cpu_now();

		for (i = 0; i < PER_BATCH; i++) {
			unsigned long k = (unsigned long)random() % n;

			snprintf(tenant, sizeof(tenant), "t%lu", k % 10);
			address(addr, sizeof(addr), hits ? k : k + n);
			found += suppress_check(tenant, addr, details ? &e : NULL) == 1;
		}
		per[b] = (cpu_now() - t0) / PER_BATCH * 1e9;
	}
	if (found != (hits ? (unsigned long)BATCHES * PER_BATCH : 0))
		fprintf(stderr, "warning: %lu found of %d %s\n", found, BATCHES * PER_BATCH,
			hits ? "hits" : "misses");
	qsort(per, BATCHES, sizeof(per[0]), cmp_double);
	return per[BATCHES / 2];
}

/* The cost of formatting the keys alone, to subtract from the figures. */
static double
overhead(unsigned long n)
{
	char tenant[8], addr[64];
	volatile size_t sink = 0;
	double t0 = cpu_now();
	int i;

	for (i = 0; i < PER_BATCH * 10; i++) {
		unsigned long k = (unsigned long)random() % n;

		snprintf(tenant, sizeof(tenant), "t%lu", k % 10);
		address(addr, sizeof(addr), k);
		sink += strlen(addr);
	}
	return (cpu_now() - t0) / (PER_BATCH * 10) * 1e9;
}

/* This process's resident memory in bytes (VmRSS). */
static double
rss(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[128];
	double kb = 0;

	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %lf", &kb) == 1)
			break;
	if (f != NULL)
		fclose(f);
	return kb * 1024;
}

/* The index's load time and memory: RSS with it loaded, less RSS with the same spool without it. */
static void
index_cost(const char *dir, unsigned long n)
{
	struct spool *sp = open_spool(dir, false);
	struct suppress_stats st;
	double base, t0;

	measure(n, false, false); /* RocksDB's own caches warm, as in the other reading */
	base = rss();
	suppress_close();
	t0 = now();
	if (suppress_open(sp, true, &(struct tern_err){0}) < 0)
		exit(1);
	do {
		usleep(10000);
		suppress_stats(&st);
	} while (!st.index_ready);
	printf("index loaded from the spool in %.1f s: %llu entries, table %.0f MB, "
	       "RSS +%.0f MB (%.1f bytes/entry)\n",
	       now() - t0, st.index_entries, st.index_bytes / 1e6, (rss() - base) / 1e6,
	       (rss() - base) / (double)st.index_entries);
	suppress_close();
	spool_close(sp);
}

static void
lookups(const char *dir, unsigned long n, bool index)
{
	struct spool *sp = open_spool(dir, index);
	struct suppress_stats st;

	do {
		usleep(10000);
		suppress_stats(&st);
	} while (index && !st.index_ready);
	printf("%-13s miss %6.0f ns   hit %6.0f ns   hit+details %6.0f ns"
	       "   (key formatting %.0f ns, included)\n",
	       index ? "index" : "rocksdb only", measure(n, false, false), measure(n, true, false),
	       measure(n, true, true), overhead(n));
	suppress_close();
	spool_close(sp);
}

int
main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "/var/tmp/suppress-bench";
	unsigned long n = argc > 2 ? strtoul(argv[2], NULL, 10) : 10000000ul;

	log_set_level(LOG_LEVEL_WARN);
	/* A directory from an earlier run (same N) is reused: the lookups alone again. */
	if (access(dir, F_OK) == 0)
		printf("reusing %s (filled by an earlier run with the same N)\n", dir);
	else
		fill(dir, n);
	index_cost(dir, n);
	lookups(dir, n, true);
	lookups(dir, n, false);
	return 0;
}
