// SPDX-License-Identifier: MIT
/*
 * The suppression list. A key is the tenant, a NUL, and the lower-cased
 * address, so that one tenant's entries are one range of the column family
 * (listing and exporting a tenant is a prefix scan). A value is two 8-byte
 * big-endian millisecond times (added, expires) followed by the reason,
 * category and source id, each NUL-terminated: decoding it takes no parser.
 *
 * Every recipient is looked up, at RCPT and at injection, so the decision
 * comes from memory: an exact index of the listed keys (core/suppress_index.c,
 * 8-byte slots, 13 bytes an entry at 10 M) answers hits and misses alike
 * without touching RocksDB.
 * The spool is read only
 *   - for an entry with an expiry (the index marks it; the spool has the time),
 *   - when the caller asks for the entry's details (out != NULL in
 *     suppress_check: the Suppressed record of a dropped message, the Lua
 *     tern.suppress.check, the admin API's GET) and the address is listed,
 *   - while the index is being loaded from the spool at open (a thread; the
 *     column family's own bloom filters answer most misses meanwhile),
 *   - always without the index (the CLI, short-lived tools).
 * So the RCPT and injection gates (out == NULL) cost a hash per scope (the
 * tenant's, "*") and the cache misses of the two slots, fetched together
 * (0.3-0.5 us, bench/RESULTS.md). Writers hold one lock across the spool write and the
 * index update, so that two writers of one key leave the index as they
 * leave the spool.
 */
#include "tern/suppress.h"
#include "tern/log.h"
#include "tern/spool.h"
#include "tern/suppress_index.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MAX (SUPPRESS_TENANT_MAX + SUPPRESS_ADDR_MAX)
/* Keys the loader puts into the index per hold of the write lock. */
#define FILL_CHUNK 4096
/* Rows per unsynced write of a bulk import. */
#define BATCH_ROWS 10000

static struct {
	struct spool *spool;
	struct suppress_index *index;
	atomic_bool index_ready;
	bool index_failed; /* under write_lock: an update failed, the index is incomplete */
	pthread_mutex_t write_lock; /* spool write + index update, when there is an index */
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
	 .write_lock = PTHREAD_MUTEX_INITIALIZER,
	 .action = SUPPRESS_REJECT,
	 .reject_text = "Recipient address is on the suppression list"};

/* Keys */

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

/* Index */

/* A change for the index, made once the spool write it follows has succeeded. */
struct index_op {
	uint64_t fp;
	enum { INDEX_PUT, INDEX_PUT_EXPIRING, INDEX_REMOVE } kind;
};

static int
index_apply(const struct index_op *op)
{
	switch (op->kind) {
	case INDEX_PUT:
		return suppress_index_put(sup.index, op->fp, false);
	case INDEX_PUT_EXPIRING:
		return suppress_index_put(sup.index, op->fp, true);
	case INDEX_REMOVE:
		return suppress_index_remove(sup.index, op->fp);
	}
	return -EINVAL;
}

/* Under write_lock: an index that missed an update must not answer again. */
static void
index_fail(void)
{
	if (!sup.index_failed)
		log_error("suppress", "suppression index out of memory: lookups read the spool");
	sup.index_failed = true;
	atomic_store_explicit(&sup.index_ready, false, memory_order_release);
}

/*
 * Write b, then apply its index changes, both under write_lock (file
 * comment). A failed write changes neither.
 */
static int
write_indexed(struct spool_kv_batch *b, const struct index_op *ops, size_t n, bool sync,
	      struct tern_err *err)
{
	size_t i;
	int rc;

	if (sup.index == NULL)
		return spool_kv_write(sup.spool, b, sync, err);
	pthread_mutex_lock(&sup.write_lock);
	rc = spool_kv_write(sup.spool, b, sync, err);
	for (i = 0; rc == 0 && i < n && !sup.index_failed; i++)
		if (index_apply(&ops[i]) < 0)
			index_fail();
	pthread_mutex_unlock(&sup.write_lock);
	return rc;
}

/* The loader's keys, put into the index a chunk per hold of the lock. */
struct fill {
	uint64_t fp[FILL_CHUNK];
	bool expiring[FILL_CHUNK];
	size_t n;
	double now;
};

static void
fill_flush(struct fill *f)
{
	size_t i;

	pthread_mutex_lock(&sup.write_lock);
	for (i = 0; i < f->n && !sup.index_failed; i++)
		if (suppress_index_put_new(sup.index, f->fp[i], f->expiring[i]) < 0)
			index_fail();
	pthread_mutex_unlock(&sup.write_lock);
	f->n = 0;
}

static int
fill_visit(void *arg, const char *key, size_t klen, const char *val, size_t vlen)
{
	struct fill *f = arg;
	double expires;

	if (atomic_load(&sup.stopping))
		return -ECANCELED;
	/* Neither an expired entry nor a malformed one (read_entry) suppresses: left out. */
	if (vlen < 16)
		return 0;
	expires = get_ms(val + 8);
	if (expires > 0 && expires <= f->now)
		return 0;
	f->fp[f->n] = suppress_index_fingerprint(sup.index, key, klen);
	f->expiring[f->n++] = expires > 0;
	if (f->n == FILL_CHUNK)
		fill_flush(f);
	return 0;
}

/*
 * The scan holds the first partition's read lock throughout (seconds for
 * millions of entries): lookups and writes go on, but a reopen after a
 * failed write waits for it to end. Writers update the index meanwhile;
 * put_new keeps their word over the scan's older one.
 */
static void *
index_loader(void *arg)
{
	struct fill *f = calloc(1, sizeof(*f));
	struct tern_err err;
	double start = util_now();
	int rc = -ENOMEM;

	if (f != NULL) {
		f->now = util_wallclock();
		rc = spool_kv_scan(sup.spool, "", 0, fill_visit, f, &err);
		fill_flush(f);
	}
	free(f); f = NULL;
	if (rc < 0) {
		if (!atomic_load(&sup.stopping))
			log_error("suppress",
				  "suppression index not built, lookups read the spool: %s",
				  rc == -ENOMEM ? "out of memory" : err.msg);
		return NULL;
	}
	pthread_mutex_lock(&sup.write_lock);
	suppress_index_fill_done(sup.index);
	if (!sup.index_failed)
		atomic_store_explicit(&sup.index_ready, true, memory_order_release);
	pthread_mutex_unlock(&sup.write_lock);
	log_info("suppress", "suppression index ready in %.1f s", util_now() - start);
	return NULL;
}

static int
start_loader(struct tern_err *err)
{
	sup.index = suppress_index_new(spool_kv_estimate(sup.spool));
	if (sup.index == NULL) {
		tern_err_set(err, 451, "4.3.0", "suppression list: out of memory");
		return -ENOMEM;
	}
	if (pthread_create(&sup.filler, NULL, index_loader, NULL) != 0) {
		tern_err_set(err, 451, "4.3.0", "suppression list: cannot start a thread");
		return -EAGAIN;
	}
	sup.filling = true;
	return 0;
}

int
suppress_open(struct spool *sp, bool index, struct tern_err *err)
{
	suppress_close();
	sup.spool = sp;
	atomic_store(&sup.stopping, false);
	atomic_store(&sup.checks, 0);
	atomic_store(&sup.db_reads, 0);
	if (index && start_loader(err) < 0) {
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
	atomic_store(&sup.index_ready, false);
	sup.index_failed = false;
	suppress_index_free(sup.index); sup.index = NULL;
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

/* Put e into b, and say in op what the index is to learn once b is written. */
static int
batch_put(struct spool_kv_batch *b, const struct suppress_entry *e, struct index_op *op,
	  struct tern_err *err)
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
		spool_kv_batch_put(b, key, klen, val.data, val.len);
		op->fp = sup.index ? suppress_index_fingerprint(sup.index, key, klen) : 0;
		op->kind = e->expires > 0 ? INDEX_PUT_EXPIRING : INDEX_PUT;
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
	struct index_op op;
	int rc;

	if (sup.spool == NULL)
		return not_open(err);
	b = spool_kv_batch_new();
	if (b == NULL) {
		tern_err_set(err, 451, "4.3.0", "suppression list: out of memory");
		return -ENOMEM;
	}
	rc = batch_put(b, e, &op, err);
	if (rc == 0)
		rc = write_indexed(b, &op, 1, false, err);
	spool_kv_batch_free(b);
	return rc;
}

int
suppress_apply_remove(const char *tenant, const char *address, struct tern_err *err)
{
	struct spool_kv_batch *b;
	struct index_op op;
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
	op.kind = INDEX_REMOVE;
	op.fp = sup.index ? suppress_index_fingerprint(sup.index, key, klen) : 0;
	rc = write_indexed(b, &op, 1, false, err);
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

/* The spool's entry for key: 1 listed (and unexpired), 0 not, negative when unreadable. */
static int
read_entry(const char *key, size_t klen, struct suppress_entry *out)
{
	struct suppress_entry e;
	struct tern_err err;
	struct buf val;
	int rc;

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

/* One scope of a lookup: the tenant's, or "*". */
struct scope {
	char key[KEY_MAX];
	size_t klen;
	uint64_t fp;
};

/*
 * Make s's key; with the index, its fingerprint, and start fetching its
 * slot so that the two scopes' cache misses overlap. False when the key
 * does not fit (nothing that long is listed).
 */
static bool
scope_init(struct scope *s, const char *tenant, const char *address, bool indexed)
{
	s->klen = make_key(s->key, tenant, address);
	if (s->klen == 0)
		return false;
	if (indexed) {
		s->fp = suppress_index_fingerprint(sup.index, s->key, s->klen);
		suppress_index_prefetch(sup.index, s->fp);
	}
	return true;
}

/* One scope's entry, from the index when it can answer alone (file comment). */
static int
lookup(const struct scope *s, bool indexed, struct suppress_entry *out)
{
	if (indexed) {
		switch (suppress_index_find(sup.index, s->fp)) {
		case SUPPRESS_INDEX_ABSENT:
			return 0;
		case SUPPRESS_INDEX_LISTED:
			if (out == NULL)
				return 1;
			break;
		case SUPPRESS_INDEX_EXPIRING:
			break;
		}
	}
	return read_entry(s->key, s->klen, out);
}

int
suppress_check(const char *tenant, const char *address, struct suppress_entry *out)
{
	struct scope own, all;
	bool indexed, has_own;
	int rc;

	if (sup.spool == NULL || address == NULL)
		return 0;
	atomic_fetch_add_explicit(&sup.checks, 1, memory_order_relaxed);
	indexed = atomic_load_explicit(&sup.index_ready, memory_order_acquire);
	has_own = tenant != NULL && strcmp(tenant, SUPPRESS_ALL_TENANTS) != 0 &&
		  scope_init(&own, tenant, address, indexed);
	if (!scope_init(&all, SUPPRESS_ALL_TENANTS, address, indexed))
		return 0;
	if (has_own) {
		rc = lookup(&own, indexed, out);
		if (rc != 0)
			return rc;
	}
	return lookup(&all, indexed, out);
}

/* Bulk writes */

struct suppress_batch {
	struct spool_kv_batch *kv;
	struct index_op ops[BATCH_ROWS]; /* one per row of kv */
	size_t nops;
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
	rc = batch_put(b->kv, e, &b->ops[b->nops], err);
	if (rc == 0)
		tell_observer(e, false);
	if (rc == 0 && ++b->nops == BATCH_ROWS) {
		rc = write_indexed(b->kv, b->ops, b->nops, false, err);
		b->nops = 0;
	}
	return rc;
}

int
suppress_batch_finish(struct suppress_batch *b, struct tern_err *err)
{
	int rc = sup.spool ? write_indexed(b->kv, b->ops, b->nops, true, err) : not_open(err);

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
	struct suppress_index_stats ix = {0};

	out->index_ready = atomic_load(&sup.index_ready);
	if (sup.index)
		suppress_index_stats(sup.index, &ix);
	out->index_entries = ix.entries;
	out->index_bytes = ix.slots * sizeof(uint64_t);
}
