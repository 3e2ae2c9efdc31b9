// SPDX-License-Identifier: MIT
/*
 * The suppression list. A key is the tenant, a NUL, and the lower-cased
 * address, so that one tenant's entries are one range of the column family
 * (listing and exporting a tenant is a prefix scan). A value is two 8-byte
 * big-endian millisecond times (added, expires) followed by the reason,
 * category and source id, each NUL-terminated: decoding it takes no parser.
 *
 * A sending MTA looks up every recipient and almost never finds one, so the
 * cost that matters is the miss. RocksDB's own bloom filters still walk the
 * memtables and one filter per level; a blocked bloom filter in memory (one
 * 64-byte block per key, six probes in it, ten bits per key) answers a miss
 * with one cache miss. The block is chosen by the address alone, so the two
 * scopes a lookup tries (its tenant, then "*") read the same cache line; the
 * probes by the whole key. It cannot forget: a removed address keeps its bits
 * and costs a RocksDB read until the next start rebuilds the filter, and a
 * list that grows past twice its size at start gets more false positives,
 * never wrong answers.
 */
#include "tern/suppress.h"
#include "tern/log.h"
#include "tern/spool.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MAX (SUPPRESS_TENANT_MAX + SUPPRESS_ADDR_MAX)
#define BLOOM_BITS_PER_KEY 10
#define BLOOM_MIN_KEYS (1u << 20)
#define BLOOM_PROBES 6
/* Rows per unsynced write of a bulk import. */
#define BATCH_ROWS 10000

struct bloom {
	_Atomic uint64_t *words;
	uint64_t blocks; /* a power of two; 8 words each */
};

static struct {
	struct spool *spool;
	struct bloom bloom;
	atomic_bool bloom_ready;
	atomic_bool stopping;
	bool filling;
	pthread_t filler;
	_Atomic unsigned long long checks, db_reads;
	pthread_mutex_t action_lock;
	enum suppress_action action;
	char reject_text[SUPPRESS_TEXT_MAX];
	pthread_mutex_t observer_lock;
	suppress_observer_fn observer;
	void *observer_arg;
} sup = {.observer_lock = PTHREAD_MUTEX_INITIALIZER,
	 .action_lock = PTHREAD_MUTEX_INITIALIZER,
	 .action = SUPPRESS_REJECT,
	 .reject_text = "Recipient address is on the suppression list"};

/* Keys */

static uint64_t
mix64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	return h ^ (h >> 33);
}

static uint64_t
key_hash(const char *key, size_t len)
{
	uint64_t h = 1469598103934665603ull;
	size_t i;

	for (i = 0; i < len; i++)
		h = (h ^ (uint8_t)key[i]) * 1099511628211ull;
	return mix64(h);
}

/*
 * tenant NUL lower(address), NUL-terminated: the length without the last
 * NUL, or 0 when either does not fit.
 */
static size_t
make_key(char key[KEY_MAX], const char *tenant, const char *address)
{
	size_t t = strlen(tenant), a = strlen(address), i;

	if (t >= SUPPRESS_TENANT_MAX || a >= SUPPRESS_ADDR_MAX)
		return 0;
	memcpy(key, tenant, t + 1);
	for (i = 0; i < a; i++)
		key[t + 1 + i] = (address[i] >= 'A' && address[i] <= 'Z')
				     ? (char)(address[i] - 'A' + 'a')
				     : address[i];
	key[t + 1 + a] = '\0';
	return t + 1 + a;
}

/* Bloom filter */

static int
bloom_init(struct bloom *b, uint64_t keys)
{
	uint64_t want = keys * BLOOM_BITS_PER_KEY / 512 + 1;

	b->blocks = 1;
	while (b->blocks < want)
		b->blocks <<= 1;
	b->words = calloc(b->blocks * 8, sizeof(uint64_t));
	return b->words ? 0 : -ENOMEM;
}

/* A key's place in the filter: its block (by the address) and its probes (9 bits each). */
struct bloom_pos {
	uint64_t block;
	uint64_t probes;
};

static struct bloom_pos
key_pos(const char *key, size_t klen)
{
	size_t t = strlen(key); /* the tenant, up to its NUL */
	uint64_t a = key_hash(key + t + 1, klen - t - 1);

	return (struct bloom_pos){a, mix64(a ^ key_hash(key, t) ^ 0x9e3779b97f4a7c15ull)};
}

static _Atomic uint64_t *
bloom_block(const struct bloom *b, struct bloom_pos pos)
{
	return b->words + (pos.block & (b->blocks - 1)) * 8;
}

static void
bloom_set(struct bloom *b, struct bloom_pos pos)
{
	_Atomic uint64_t *blk = bloom_block(b, pos);
	uint64_t p = pos.probes;
	int i;

	for (i = 0; i < BLOOM_PROBES; i++, p >>= 9)
		atomic_fetch_or_explicit(&blk[(p & 511) >> 6], 1ull << (p & 63),
					 memory_order_relaxed);
}

static bool
bloom_maybe(const struct bloom *b, struct bloom_pos pos)
{
	_Atomic uint64_t *blk = bloom_block(b, pos);
	uint64_t p = pos.probes;
	int i;

	for (i = 0; i < BLOOM_PROBES; i++, p >>= 9)
		if (!(atomic_load_explicit(&blk[(p & 511) >> 6], memory_order_relaxed) &
		      (1ull << (p & 63))))
			return false;
	return true;
}

static int
fill_visit(void *arg, const char *key, size_t klen, const char *val, size_t vlen)
{
	if (atomic_load(&sup.stopping))
		return -ECANCELED;
	bloom_set(&sup.bloom, key_pos(key, klen));
	return 0;
}

/*
 * The scan holds the first partition's read lock throughout (seconds for
 * millions of entries): lookups and writes go on, but a reopen after a
 * failed write waits for it to end.
 */
static void *
bloom_filler(void *arg)
{
	struct tern_err err;
	double start = util_now();

	if (spool_kv_scan(sup.spool, "", 0, fill_visit, NULL, &err) < 0) {
		if (!atomic_load(&sup.stopping))
			log_error("suppress", "bloom filter not built, lookups read the spool: %s",
				  err.msg);
		return NULL;
	}
	atomic_store_explicit(&sup.bloom_ready, true, memory_order_release);
	log_info("suppress", "bloom filter ready in %.1f s", util_now() - start);
	return NULL;
}

static int
start_filler(struct tern_err *err)
{
	uint64_t n = spool_kv_estimate(sup.spool) * 2;

	if (bloom_init(&sup.bloom, n > BLOOM_MIN_KEYS ? n : BLOOM_MIN_KEYS) < 0) {
		tern_err_set(err, 451, "4.3.0", "suppression list: out of memory");
		return -ENOMEM;
	}
	if (pthread_create(&sup.filler, NULL, bloom_filler, NULL) != 0) {
		tern_err_set(err, 451, "4.3.0", "suppression list: cannot start a thread");
		return -EAGAIN;
	}
	sup.filling = true;
	return 0;
}

int
suppress_open(struct spool *sp, bool bloom, struct tern_err *err)
{
	suppress_close();
	sup.spool = sp;
	atomic_store(&sup.stopping, false);
	atomic_store(&sup.checks, 0);
	atomic_store(&sup.db_reads, 0);
	if (bloom && start_filler(err) < 0) {
		suppress_close();
		return -EAGAIN;
	}
	return 0;
}

void
suppress_close(void)
{
	atomic_store(&sup.stopping, true);
	if (sup.filling)
		pthread_join(sup.filler, NULL);
	sup.filling = false;
	atomic_store(&sup.bloom_ready, false);
	free((void *)sup.bloom.words); sup.bloom.words = NULL;
	sup.spool = NULL;
}

bool
suppress_is_open(void)
{
	return sup.spool != NULL;
}

/* Entries */

static bool
printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f)
			return false;
	return true;
}

/* The key of (tenant, address), or 0 with err when they cannot be listed. */
static size_t
checked_key(char key[KEY_MAX], const char *tenant, const char *address, struct tern_err *err)
{
	size_t klen = 0;

	if (tenant != NULL && address != NULL && strchr(address, '@') != NULL &&
	    printable(address) && printable(tenant))
		klen = make_key(key, tenant, address);
	if (klen == 0)
		tern_err_set(err, 550, "5.1.3", "cannot suppress tenant \"%.64s\" address \"%.128s\"",
			     tenant ? tenant : "", address ? address : "");
	return klen;
}

int
suppress_entry_init(struct suppress_entry *e, const char *tenant, const char *address,
		    struct tern_err *err)
{
	char key[KEY_MAX];
	size_t t;

	memset(e, 0, sizeof(*e));
	if (checked_key(key, tenant, address, err) == 0)
		return -EINVAL;
	t = strlen(tenant);
	memcpy(e->tenant, tenant, t + 1);
	memcpy(e->address, key + t + 1, strlen(address) + 1);
	e->time = util_wallclock();
	return 0;
}

static void
put_ms(char *p, double t)
{
	uint64_t v = t > 0 ? (uint64_t)(t * 1000.0 + 0.5) : 0;
	int i;

	for (i = 7; i >= 0; i--, v >>= 8)
		p[i] = (char)(v & 0xff);
}

static double
get_ms(const char *p)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = v << 8 | (uint8_t)p[i];
	return (double)v / 1000.0;
}

static int
encode_value(const struct suppress_entry *e, struct buf *out)
{
	char times[16];

	put_ms(times, e->time);
	put_ms(times + 8, e->expires);
	buf_append(out, times, sizeof(times));
	buf_append(out, e->reason, strlen(e->reason) + 1);
	buf_append(out, e->category, strlen(e->category) + 1);
	return buf_append(out, e->source, strlen(e->source) + 1);
}

/* Copy the next NUL-terminated string of [*p, end) into out; false when malformed. */
static bool
take_string(const char **p, const char *end, char *out, size_t n)
{
	const char *nul = memchr(*p, '\0', (size_t)(end - *p));

	if (nul == NULL)
		return false;
	snprintf(out, n, "%s", *p);
	*p = nul + 1;
	return true;
}

static int
decode_entry(const char *key, size_t klen, const char *val, size_t vlen,
	     struct suppress_entry *e)
{
	const char *nul = memchr(key, '\0', klen), *p = val + 16, *end = val + vlen;

	memset(e, 0, sizeof(*e));
	if (nul == NULL || vlen < 16)
		return -EINVAL;
	snprintf(e->tenant, sizeof(e->tenant), "%s", key);
	snprintf(e->address, sizeof(e->address), "%.*s", (int)(klen - (size_t)(nul + 1 - key)),
		 nul + 1);
	e->time = get_ms(val);
	e->expires = get_ms(val + 8);
	if (!take_string(&p, end, e->reason, sizeof(e->reason)) ||
	    !take_string(&p, end, e->category, sizeof(e->category)) ||
	    !take_string(&p, end, e->source, sizeof(e->source)))
		return -EINVAL;
	return 0;
}

static int
not_open(struct tern_err *err)
{
	tern_err_set(err, 451, "4.3.0", "no suppression list (no spool is defined)");
	return -ENOENT;
}

/* Put e into b; the bloom filter learns the key now, before the write, so no lookup misses it. */
static int
batch_put(struct spool_kv_batch *b, const struct suppress_entry *e, struct tern_err *err)
{
	char key[KEY_MAX];
	size_t klen = checked_key(key, e->tenant, e->address, err);
	struct buf val;
	int rc;

	if (klen == 0)
		return -EINVAL;
	buf_init(&val);
	rc = encode_value(e, &val);
	if (rc == 0) {
		if (sup.bloom.words)
			bloom_set(&sup.bloom, key_pos(key, klen));
		spool_kv_batch_put(b, key, klen, val.data, val.len);
	} else {
		tern_err_set(err, 451, "4.3.0", "suppression list: out of memory");
	}
	buf_deinit(&val);
	return rc;
}

int
suppress_apply_add(const struct suppress_entry *e, struct tern_err *err)
{
	struct spool_kv_batch *b;
	int rc;

	if (sup.spool == NULL)
		return not_open(err);
	b = spool_kv_batch_new();
	if (b == NULL) {
		tern_err_set(err, 451, "4.3.0", "suppression list: out of memory");
		return -ENOMEM;
	}
	rc = batch_put(b, e, err);
	if (rc == 0)
		rc = spool_kv_write(sup.spool, b, false, err);
	spool_kv_batch_free(b);
	return rc;
}

int
suppress_apply_remove(const char *tenant, const char *address, struct tern_err *err)
{
	struct spool_kv_batch *b;
	char key[KEY_MAX];
	struct buf val;
	size_t klen;
	int rc;

	if (sup.spool == NULL)
		return not_open(err);
	klen = checked_key(key, tenant, address, err);
	if (klen == 0)
		return -EINVAL;
	buf_init(&val);
	rc = spool_kv_get(sup.spool, key, klen, &val, err);
	buf_deinit(&val);
	if (rc == -ENOENT)
		tern_err_set(err, 550, "5.1.1", "%.128s is not suppressed for tenant %.64s",
			     address, tenant);
	if (rc < 0)
		return rc;
	b = spool_kv_batch_new();
	if (b == NULL) {
		tern_err_set(err, 451, "4.3.0", "suppression list: out of memory");
		return -ENOMEM;
	}
	spool_kv_batch_delete(b, key, klen);
	rc = spool_kv_write(sup.spool, b, false, err);
	spool_kv_batch_free(b);
	return rc;
}

/* Fleet mode's observer */

void
suppress_set_observer(suppress_observer_fn fn, void *arg)
{
	pthread_mutex_lock(&sup.observer_lock);
	sup.observer = fn;
	sup.observer_arg = arg;
	pthread_mutex_unlock(&sup.observer_lock);
}

static void
tell_observer(const struct suppress_entry *e, bool removed)
{
	pthread_mutex_lock(&sup.observer_lock);
	if (sup.observer != NULL)
		sup.observer(sup.observer_arg, e, removed);
	pthread_mutex_unlock(&sup.observer_lock);
}

int
suppress_add(const struct suppress_entry *e, struct tern_err *err)
{
	int rc = suppress_apply_add(e, err);

	if (rc == 0)
		tell_observer(e, false);
	return rc;
}

int
suppress_remove(const char *tenant, const char *address, struct tern_err *err)
{
	struct suppress_entry e;
	int rc = suppress_apply_remove(tenant, address, err);

	if (rc == 0 && suppress_entry_init(&e, tenant, address, err) == 0)
		tell_observer(&e, true);
	return rc;
}

/* Lookups */

/* One scope's entry: 1 listed (and unexpired), 0 not, negative when unreadable. */
static int
lookup(const char *tenant, const char *address, struct suppress_entry *out)
{
	char key[KEY_MAX];
	size_t klen = make_key(key, tenant, address);
	struct suppress_entry e;
	struct tern_err err;
	struct buf val;
	int rc;

	if (klen == 0)
		return 0;
	if (atomic_load_explicit(&sup.bloom_ready, memory_order_acquire) &&
	    !bloom_maybe(&sup.bloom, key_pos(key, klen)))
		return 0;
	atomic_fetch_add_explicit(&sup.db_reads, 1, memory_order_relaxed);
	buf_init(&val);
	rc = spool_kv_get(sup.spool, key, klen, &val, &err);
	if (rc == 0)
		rc = decode_entry(key, klen, val.data, val.len, &e) == 0 ? 1 : 0;
	else if (rc == -ENOENT)
		rc = 0;
	else
		log_ratelimited(LOG_LEVEL_ERROR, "suppress", "lookup failed: %s", err.msg);
	buf_deinit(&val);
	if (rc == 1 && e.expires > 0 && e.expires <= util_wallclock())
		rc = 0;
	if (rc == 1 && out != NULL)
		*out = e;
	return rc;
}

int
suppress_check(const char *tenant, const char *address, struct suppress_entry *out)
{
	int rc;

	if (sup.spool == NULL || address == NULL)
		return 0;
	atomic_fetch_add_explicit(&sup.checks, 1, memory_order_relaxed);
	if (tenant != NULL && strcmp(tenant, SUPPRESS_ALL_TENANTS) != 0) {
		rc = lookup(tenant, address, out);
		if (rc != 0)
			return rc;
	}
	return lookup(SUPPRESS_ALL_TENANTS, address, out);
}

/* Bulk writes */

struct suppress_batch {
	struct spool_kv_batch *kv;
	int rc;
	struct tern_err err;
};

struct suppress_batch *
suppress_batch_new(void)
{
	struct suppress_batch *b = calloc(1, sizeof(*b));

	if (b == NULL)
		return NULL;
	b->kv = spool_kv_batch_new();
	if (b->kv == NULL) {
		free(b); b = NULL;
	}
	return b;
}

int
suppress_batch_add(struct suppress_batch *b, const struct suppress_entry *e, struct tern_err *err)
{
	int rc;

	if (sup.spool == NULL)
		return not_open(err);
	rc = batch_put(b->kv, e, err);
	if (rc == 0)
		tell_observer(e, false);
	if (rc == 0 && spool_kv_batch_count(b->kv) >= BATCH_ROWS)
		rc = spool_kv_write(sup.spool, b->kv, false, err);
	return rc;
}

int
suppress_batch_finish(struct suppress_batch *b, struct tern_err *err)
{
	int rc = sup.spool ? spool_kv_write(sup.spool, b->kv, true, err) : not_open(err);

	spool_kv_batch_free(b->kv);
	free(b);
	return rc;
}

/* Listing */

struct list_walk {
	suppress_visit_fn visit;
	void *arg;
};

static int
list_visit(void *arg, const char *key, size_t klen, const char *val, size_t vlen)
{
	struct list_walk *w = arg;
	struct suppress_entry e;

	if (klen > 0 && key[0] == SUPPRESS_KEY_RESERVED)
		return 0;
	if (decode_entry(key, klen, val, vlen, &e) < 0) {
		log_warn("suppress", "skipping a malformed entry of %zu bytes", vlen);
		return 0;
	}
	return w->visit(w->arg, &e);
}

int
suppress_list(const char *tenant, suppress_visit_fn visit, void *arg, struct tern_err *err)
{
	struct list_walk w = {visit, arg};
	char prefix[SUPPRESS_TENANT_MAX + 1];
	size_t plen = 0;

	if (sup.spool == NULL)
		return not_open(err);
	if (tenant != NULL) {
		plen = strlen(tenant) + 1;
		if (plen > sizeof(prefix))
			return 0;
		memcpy(prefix, tenant, plen);
	}
	return spool_kv_scan(sup.spool, prefix, plen, list_visit, &w, err);
}

static void
json_field(struct buf *out, const char *name, const char *v)
{
	buf_printf(out, ",\"%s\":", name);
	if (v[0] == '\0')
		buf_append_str(out, "null");
	else
		buf_append_json_string(out, v, strlen(v));
}

int
suppress_entry_json(const struct suppress_entry *e, struct buf *out)
{
	buf_append_str(out, "{\"tenant\":");
	buf_append_json_string(out, e->tenant, strlen(e->tenant));
	json_field(out, "address", e->address);
	json_field(out, "reason", e->reason);
	json_field(out, "category", e->category);
	json_field(out, "source", e->source);
	buf_printf(out, ",\"time\":%.3f", e->time);
	if (e->expires > 0)
		return buf_printf(out, ",\"expires\":%.3f}", e->expires);
	return buf_append_str(out, ",\"expires\":null}");
}

/* Policy's choice */

void
suppress_set_action(enum suppress_action a, const char *reject_text)
{
	pthread_mutex_lock(&sup.action_lock);
	sup.action = a;
	if (reject_text != NULL)
		snprintf(sup.reject_text, sizeof(sup.reject_text), "%s", reject_text);
	pthread_mutex_unlock(&sup.action_lock);
}

enum suppress_action
suppress_action(void)
{
	enum suppress_action a;

	pthread_mutex_lock(&sup.action_lock);
	a = sup.action;
	pthread_mutex_unlock(&sup.action_lock);
	return a;
}

void
suppress_reject_text(char *out, size_t n)
{
	pthread_mutex_lock(&sup.action_lock);
	snprintf(out, n, "%s", sup.reject_text);
	pthread_mutex_unlock(&sup.action_lock);
}

void
suppress_stats(struct suppress_stats *out)
{
	out->checks = atomic_load(&sup.checks);
	out->db_reads = atomic_load(&sup.db_reads);
	out->bloom_ready = atomic_load(&sup.bloom_ready);
}
