// SPDX-License-Identifier: MIT
/*
 * The suppression index: an open-addressing table of 64-bit slots, a
 * power of two of them, linear probing, load at most 0.7. A slot holds a
 * key's 62-bit fingerprint and two flags (expiring; removed while
 * filling), so 10 M entries take 16 M slots, 128 MB, and a lookup reads
 * one cache line (two, rarely, at the end of a probe run).
 *
 * Exact but for fingerprints: two different keys share a fingerprint with
 * probability 2^-62, so a lookup of an unlisted key finds a listed one's
 * with probability about n / 2^62 (2e-12 at 10 M entries): that key would
 * be treated as suppressed. The seed is random per process, so a collision
 * cannot be aimed at, and none survives a restart.
 * Callers that read an entry's details read the spool, which has the truth.
 *
 * Removal leaves a tombstone, which lookups probe past. Puts do not reuse
 * tombstones: removals are rare next to puts, and tombstones go when the
 * table is rebuilt, which they trigger like live keys. When live keys,
 * tombstones and markers reach 0.7 of the table, a new table (twice the
 * size, or the same size when tombstones were most of it) is filled by the
 * writer and published by one pointer store; readers never wait. The old
 * table cannot be freed while a reader may still probe it, and readers take
 * no lock or reference: its pages are instead handed back to the kernel
 * (MADV_DONTNEED), after which they read as zeros, i.e. empty slots. A
 * reader that ends on an empty slot therefore checks that the table it read
 * is still the current one and, if not, probes the new one; only the
 * (lazily zeroed) address range is kept, and unmapped with the index.
 */
#include "tern/suppress_index.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>

#define SLOT_EMPTY 0ull
#define SLOT_TOMBSTONE 1ull /* fingerprint 0, which no key has */
#define FLAG_EXPIRING 1ull
#define FLAG_GONE 2ull /* removed while filling: the loader must not put it back */
#define FLAG_BITS 2
#define MIN_SLOTS (1ull << 16)
/* Load limit: 7/10 of the slots in use (live, markers, tombstones). */
#define LOAD_NUM 7
#define LOAD_DEN 10

struct table {
	_Atomic uint64_t *slots;
	uint64_t mask;
	struct table *retired; /* older tables, pages released, mapping kept */
};

struct suppress_index {
	_Atomic(struct table *) cur;
	uint64_t seed;
	/* Writer-only (under the caller's lock). */
	uint64_t used; /* slots not empty */
	bool filling;
	bool has_gone;
	/* Written by writers, read by stats. */
	_Atomic uint64_t live, grown;
};

/* Fingerprints */

static uint64_t
mix64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	return h ^ (h >> 33);
}

uint64_t
suppress_index_fingerprint(const struct suppress_index *ix, const void *key, size_t len)
{
	const unsigned char *p = key;
	uint64_t h = ix->seed ^ (len * 0x9e3779b97f4a7c15ull), w;

	for (; len >= 8; p += 8, len -= 8) {
		memcpy(&w, p, 8);
		h = mix64(h ^ w);
	}
	w = 0;
	memcpy(&w, p, len);
	h = mix64(h ^ w ^ ((uint64_t)len << 59)) >> FLAG_BITS;
	return h ? h : 1;
}

static uint64_t
slot_fp(uint64_t v)
{
	return v >> FLAG_BITS;
}

static bool
slot_live(uint64_t v)
{
	return slot_fp(v) != 0 && !(v & FLAG_GONE);
}

/* Tables */

static uint64_t
slots_for(uint64_t keys)
{
	uint64_t n = MIN_SLOTS;

	while (keys * LOAD_DEN >= n * LOAD_NUM && n < (1ull << 40))
		n <<= 1;
	return n;
}

static struct table *
table_new(uint64_t nslots)
{
	struct table *t = calloc(1, sizeof(*t));
	size_t bytes = nslots * sizeof(uint64_t);
	void *p;

	if (t == NULL)
		return NULL;
	/* Anonymous pages: zero (empty) without being written, and returnable to the kernel. */
	p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		free(t); t = NULL;
		return NULL;
	}
	/* Random probes into 128 MB miss the TLB with 4 KB pages; huge pages save the page walk. */
	madvise(p, bytes, MADV_HUGEPAGE);
	t->slots = p;
	t->mask = nslots - 1;
	return t;
}

static void
table_unmap(struct table *t)
{
	munmap((void *)t->slots, (t->mask + 1) * sizeof(uint64_t));
}

static struct table *
current(const struct suppress_index *ix)
{
	return atomic_load_explicit((_Atomic(struct table *) *)&ix->cur, memory_order_acquire);
}

static uint64_t
load_slot(const struct table *t, uint64_t i)
{
	return atomic_load_explicit(&t->slots[i], memory_order_relaxed);
}

static void
store_slot(struct table *t, uint64_t i, uint64_t v)
{
	atomic_store_explicit(&t->slots[i], v, memory_order_relaxed);
}

/*
 * The slot holding fp, or the first empty one on its probe run; *v is what
 * it held when read. A reader must use *v, not read the slot again: a
 * writer may fill an empty slot with another key in between.
 */
static uint64_t
probe(const struct table *t, uint64_t fp, uint64_t *v)
{
	uint64_t i = fp & t->mask;

	while ((*v = load_slot(t, i)) != SLOT_EMPTY && slot_fp(*v) != fp)
		i = (i + 1) & t->mask;
	return i;
}

static uint64_t
random_seed(void)
{
	uint64_t s;
	struct timespec ts;

	if (getrandom(&s, sizeof(s), GRND_NONBLOCK) == (ssize_t)sizeof(s))
		return s;
	clock_gettime(CLOCK_REALTIME, &ts);
	return mix64((uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 30 ^ (uintptr_t)&s);
}

struct suppress_index *
suppress_index_new(uint64_t expected)
{
	struct suppress_index *ix = calloc(1, sizeof(*ix));
	struct table *t;

	if (ix == NULL)
		return NULL;
	t = table_new(slots_for(expected));
	if (t == NULL) {
		free(ix); ix = NULL;
		return NULL;
	}
	atomic_init(&ix->cur, t);
	ix->seed = random_seed();
	ix->filling = true;
	return ix;
}

void
suppress_index_free(struct suppress_index *ix)
{
	struct table *t, *next;

	if (ix == NULL)
		return;
	for (t = atomic_load(&ix->cur); t != NULL; t = next) {
		next = t->retired;
		table_unmap(t);
		free(t);
	}
	free(ix);
}

/* Lookups */

enum suppress_index_hit
suppress_index_find(const struct suppress_index *ix, uint64_t fp)
{
	const struct table *t = current(ix), *now;
	uint64_t v;

	for (;;) {
		probe(t, fp, &v);
		if (v != SLOT_EMPTY)
			return (v & FLAG_GONE)	     ? SUPPRESS_INDEX_ABSENT
			       : (v & FLAG_EXPIRING) ? SUPPRESS_INDEX_EXPIRING
						     : SUPPRESS_INDEX_LISTED;
		/* An empty slot may be a retired table's released page: retry on a newer table. */
		atomic_thread_fence(memory_order_acquire);
		now = current(ix);
		if (now == t)
			return SUPPRESS_INDEX_ABSENT;
		t = now;
	}
}

void
suppress_index_prefetch(const struct suppress_index *ix, uint64_t fp)
{
	const struct table *t = current(ix);

	__builtin_prefetch((const void *)&t->slots[fp & t->mask]);
}

/* Writes */

/* Copy every live key and marker of old into t (fresh, big enough): no duplicates to look for. */
static void
rehash(struct table *t, const struct table *old)
{
	uint64_t i, v, empty;

	for (i = 0; i <= old->mask; i++) {
		v = load_slot(old, i);
		if (slot_fp(v) != 0)
			store_slot(t, probe(t, slot_fp(v), &empty), v);
	}
}

/*
 * A new table for the live keys and markers with room to grow, published
 * for readers; the old one's pages go back to the kernel (file comment).
 */
static int
grow(struct suppress_index *ix)
{
	struct table *old = atomic_load_explicit(&ix->cur, memory_order_relaxed), *t;
	uint64_t keep = 0, i;

	for (i = 0; i <= old->mask; i++)
		keep += slot_fp(load_slot(old, i)) != 0;
	/* Room for half as many again: a full table doubles, one mostly of tombstones does not. */
	t = table_new(slots_for(keep + keep / 2 + 1));
	if (t == NULL)
		return -ENOMEM;
	rehash(t, old);
	t->retired = old;
	ix->used = keep;
	atomic_store_explicit(&ix->cur, t, memory_order_release);
	madvise((void *)old->slots, (old->mask + 1) * sizeof(uint64_t), MADV_DONTNEED);
	atomic_fetch_add_explicit(&ix->grown, 1, memory_order_relaxed);
	return 0;
}

/* Store v (fingerprint and flags) in its fingerprint's slot; keep an existing one unless replace. */
static int
place(struct suppress_index *ix, uint64_t v, bool replace)
{
	struct table *t = atomic_load_explicit(&ix->cur, memory_order_relaxed);
	uint64_t old, i = probe(t, slot_fp(v), &old);

	if (old == SLOT_EMPTY && (ix->used + 1) * LOAD_DEN > (t->mask + 1) * LOAD_NUM) {
		if (grow(ix) < 0)
			return -ENOMEM;
		return place(ix, v, replace);
	}
	if (old != SLOT_EMPTY && !replace)
		return 0;
	if (old == SLOT_EMPTY)
		ix->used++;
	store_slot(t, i, v);
	atomic_fetch_add_explicit(&ix->live, (uint64_t)slot_live(v) - (uint64_t)slot_live(old),
				  memory_order_relaxed);
	return 0;
}

int
suppress_index_put(struct suppress_index *ix, uint64_t fp, bool expiring)
{
	return place(ix, fp << FLAG_BITS | (expiring ? FLAG_EXPIRING : 0), true);
}

int
suppress_index_put_new(struct suppress_index *ix, uint64_t fp, bool expiring)
{
	return place(ix, fp << FLAG_BITS | (expiring ? FLAG_EXPIRING : 0), false);
}

int
suppress_index_remove(struct suppress_index *ix, uint64_t fp)
{
	struct table *t;
	uint64_t i, old;

	if (ix->filling) {
		ix->has_gone = true;
		return place(ix, fp << FLAG_BITS | FLAG_GONE, true);
	}
	t = atomic_load_explicit(&ix->cur, memory_order_relaxed);
	i = probe(t, fp, &old);
	if (old == SLOT_EMPTY)
		return 0;
	/* A tombstone, not an empty slot: keys further along the probe run stay reachable. */
	store_slot(t, i, SLOT_TOMBSTONE);
	atomic_fetch_sub_explicit(&ix->live, (uint64_t)slot_live(old), memory_order_relaxed);
	return 0;
}

void
suppress_index_fill_done(struct suppress_index *ix)
{
	struct table *t = atomic_load_explicit(&ix->cur, memory_order_relaxed);
	uint64_t i;

	ix->filling = false;
	if (!ix->has_gone)
		return;
	for (i = 0; i <= t->mask; i++)
		if (load_slot(t, i) & FLAG_GONE)
			store_slot(t, i, SLOT_TOMBSTONE);
	ix->has_gone = false;
}

void
suppress_index_stats(const struct suppress_index *ix, struct suppress_index_stats *out)
{
	out->entries = atomic_load_explicit(&ix->live, memory_order_relaxed);
	out->slots = current(ix)->mask + 1;
	out->grown = atomic_load_explicit(&ix->grown, memory_order_relaxed);
}
