// SPDX-License-Identifier: MIT
/*
 * libFuzzer: spool records and their recovery. One two-partition spool is
 * opened per process; each input is a list of operations on a few ids:
 *   op byte % 3 == 0: spool_put(id, meta, data), synced, as reception does,
 *                 1: spool_update_meta(id, meta) (also for an id never put:
 *                    metadata without data, as a crash between writes leaves),
 *                 2: spool_remove(id);
 * the id is one of 8 (byte % 8, spread over both partitions and lanes),
 * meta and data are length-prefixed byte strings. Then the recovery scan runs
 * with the loader's decoding (message_decode_spool_meta, message_queue_name):
 * it must visit each complete entry once, in id order within a partition,
 * with the lengths last written, quarantine what does not decode, and leave
 * nothing else behind. Everything left is removed before the next input.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_tmpdir.h"
#include "tern/log.h"
#include "tern/message.h"
#include "tern/spool.h"

#define IDS 8

struct entry {
	bool meta, data;
	size_t meta_len, data_len;
	int visits;
	bool quarantined; /* its metadata did not load */
};

struct put_wait {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool done;
	int status;
};

static struct spool *spool;
static const char *dir;

static void
check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_spool: %s\n", what);
		abort();
	}
}

static struct spool_id
make_id(int i)
{
	struct spool_id id;

	memset(&id, 0, sizeof(id));
	id.b[7] = (uint8_t)(0x10 + i); /* time: ids sort by i */
	id.b[11] = (uint8_t)i;	       /* lane: i % 2 picks the partition */
	return id;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct spool_config cfg = {.partitions = 2};
	struct tern_err err;

	dir = fuzz_tmpdir_make("fuzz_spool");
	/* The scan logs each quarantined entry: expected here. */
	log_set_level(LOG_LEVEL_ERROR);
	cfg.path = dir;
	spool = spool_open(&cfg, &err);
	check(spool != NULL, err.msg);
	return 0;
}

static void
put_done(void *arg, int status, const struct tern_err *err)
{
	struct put_wait *w = arg;

	pthread_mutex_lock(&w->mu);
	w->status = status;
	w->done = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->mu);
}

static void
put(int i, const uint8_t *meta, size_t mlen, const uint8_t *data, size_t dlen)
{
	struct put_wait w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0};
	struct spool_record r = {make_id(i), data, dlen, meta, mlen};
	struct tern_err err;

	check(spool_put(spool, &r, 1, put_done, &w, &err) == 0, "spool_put refused");
	pthread_mutex_lock(&w.mu);
	while (!w.done)
		pthread_cond_wait(&w.cond, &w.mu);
	pthread_mutex_unlock(&w.mu);
	check(w.status == 0, "spool_put failed");
}

/* A length-prefixed byte string from the input (short at its end). */
static const uint8_t *
take(const uint8_t **p, size_t *n, size_t *len)
{
	const uint8_t *s;

	*len = *n > 0 ? **p : 0;
	if (*n > 0) {
		(*p)++;
		(*n)--;
	}
	*len = *len < *n ? *len : *n;
	s = *p;
	*p += *len;
	*n -= *len;
	return s;
}

static void
apply(struct entry *e, const uint8_t **p, size_t *n)
{
	uint8_t op = **p % 3, i = (*p)[1] % IDS;
	const uint8_t *meta, *data;
	size_t mlen, dlen;
	struct tern_err err;
	struct spool_id id = make_id(i);

	*p += 2;
	*n -= 2;
	meta = take(p, n, &mlen);
	if (op == 0) {
		data = take(p, n, &dlen);
		put(i, meta, mlen, data, dlen);
		e[i] = (struct entry){true, true, mlen, dlen, 0, false};
	} else if (op == 1) {
		check(spool_update_meta(spool, &id, meta, mlen, &err) == 0, "update_meta");
		e[i].meta = true;
		e[i].meta_len = mlen;
	} else {
		check(spool_remove(spool, &id, &err) == 0, "remove");
		e[i] = (struct entry){0};
	}
}

struct scan {
	struct entry *e;
	int last[2]; /* per partition: the last id visited */
};

static int
visit(void *arg, const struct spool_id *id, const char *meta, size_t meta_len, size_t data_len)
{
	struct scan *s = arg;
	int i = id->b[11], part = i % 2;
	struct message *m = message_new("", NULL);
	struct tern_err err;
	struct buf queue;
	int rc = 0;

	check(i < IDS && id->b[7] == 0x10 + i, "visited an id never written");
	check(s->e[i].meta && s->e[i].data, "visited an incomplete entry");
	check(meta_len == s->e[i].meta_len && data_len == s->e[i].data_len, "lengths differ");
	check(i > s->last[part], "visited out of order");
	s->last[part] = i;
	s->e[i].visits++;
	check(m != NULL, "out of memory");
	buf_init(&queue);
	if (message_decode_spool_meta(m, meta, meta_len, &err) < 0 ||
	    message_queue_name(m, &queue) < 0)
		rc = SPOOL_SCAN_QUARANTINE;
	s->e[i].quarantined = rc == SPOOL_SCAN_QUARANTINE;
	buf_deinit(&queue);
	message_free(m);
	return rc;
}

static void
scan_and_check(struct entry *e)
{
	struct scan s = {e, {-1, -1}};
	struct tern_err err;
	int i;

	check(spool_scan(spool, visit, &s, &err) == 0, "spool_scan failed");
	for (i = 0; i < IDS; i++) {
		check(e[i].visits == (e[i].meta && e[i].data), "a complete entry was not visited once");
		/* What remains: entries that loaded; the rest went to quarantine. */
		if (!e[i].meta || !e[i].data || e[i].quarantined)
			e[i] = (struct entry){0};
		e[i].visits = 0;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct entry e[IDS] = {{0}};
	struct tern_err err;
	struct spool_id id;
	int i;

	while (size >= 2)
		apply(e, &data, &size);
	scan_and_check(e);
	/* Again: exactly the entries that loaded are still there, unchanged. */
	scan_and_check(e);
	for (i = 0; i < IDS; i++) {
		id = make_id(i);
		check(spool_remove(spool, &id, &err) == 0, "remove");
	}
	return 0;
}
