// SPDX-License-Identifier: MIT
/*
 * suppress_bench: the suppression list at scale. Fills a fresh spool with N
 * entries (default 10 M; tenants "t0".."t9", addresses userI@domainJ.example)
 * through the bulk path `tern suppress import` uses, then measures one
 * suppress_check() on one thread, in its CPU time, medians of 100 batches of 10 000:
 *   miss  - an address not listed (what nearly every recipient is)
 *   hit   - an address listed for its tenant
 * each with the in-memory bloom filter (as ternd runs) and without it (RocksDB
 * and its table bloom filters alone), after reopening the spool so that the
 * memtable is flushed and the lookups read SST files. An existing directory
 * (from an earlier run with the same N) is reused without filling.
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
measure(unsigned long n, bool hits)
{
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
			found += suppress_check(tenant, addr, NULL) == 1;
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

static void
lookups(const char *dir, unsigned long n, bool bloom)
{
	struct spool *sp = open_spool(dir, bloom);
	struct suppress_stats st;
	double t0 = now();

	do {
		suppress_stats(&st);
		usleep(10000);
	} while (bloom && !st.bloom_ready);
	if (bloom)
		printf("bloom filter built from the spool in %.1f s\n", now() - t0);
	printf("%-14s miss %6.0f ns   hit %6.0f ns   (key formatting %.0f ns, included)\n",
	       bloom ? "bloom+rocksdb" : "rocksdb only", measure(n, false), measure(n, true),
	       overhead(n));
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
	lookups(dir, n, true);
	lookups(dir, n, false);
	return 0;
}
