/* SPDX-License-Identifier: MIT */
/*
 * The suppression list's in-memory index: the set of listed keys as 62-bit
 * fingerprints, so that the lookup of every recipient is answered without
 * reading the spool. An entry with an expiry is only marked as such: its
 * time is in the spool, and the caller confirms it there.
 *
 * Lookups are lock-free and may run on any thread at any time. Writes
 * (put, remove, fill) must be serialised by the caller (core/suppress.c
 * holds its write lock across the spool write and the index update, so
 * that the index and the spool agree on the last writer of a key).
 *
 * A new index is "filling": a thread loads it from the spool with
 * suppress_index_put_new while writers already put and remove. A removal
 * then leaves a marker that keeps the loader from bringing back what it
 * read before the removal; suppress_index_fill_done clears the markers.
 */
#ifndef TERN_SUPPRESS_INDEX_H
#define TERN_SUPPRESS_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct suppress_index;

enum suppress_index_hit {
	SUPPRESS_INDEX_ABSENT,	 /* not listed (or a fingerprint collision: n/2^62) */
	SUPPRESS_INDEX_LISTED,	 /* listed without expiry */
	SUPPRESS_INDEX_EXPIRING, /* listed with an expiry: ask the spool whether it is past */
};

/* An empty index sized for expected keys; NULL when out of memory. */
struct suppress_index *suppress_index_new(uint64_t expected);
/* Free ix; no lookup may be running. */
void suppress_index_free(struct suppress_index *ix);

/* The fingerprint of a key (never 0), keyed by ix's random seed. */
uint64_t suppress_index_fingerprint(const struct suppress_index *ix, const void *key, size_t len);

/* Lock-free. */
enum suppress_index_hit suppress_index_find(const struct suppress_index *ix, uint64_t fp);
/* Start fetching fp's slot into the cache, for a find a little later (a hint: lock-free). */
void suppress_index_prefetch(const struct suppress_index *ix, uint64_t fp);

/* Writers, serialised by the caller. -ENOMEM when the index cannot grow (it is then incomplete). */
int suppress_index_put(struct suppress_index *ix, uint64_t fp, bool expiring);
/* The loader's put: keeps what a writer put or removed since the index was made. */
int suppress_index_put_new(struct suppress_index *ix, uint64_t fp, bool expiring);
int suppress_index_remove(struct suppress_index *ix, uint64_t fp);
/* The loader is done: forget the removal markers. */
void suppress_index_fill_done(struct suppress_index *ix);

struct suppress_index_stats {
	uint64_t entries; /* listed keys */
	uint64_t slots;	  /* of the current table, 8 bytes each */
	uint64_t grown;	  /* tables replaced since new (growth, or clearing tombstones) */
};
/* Lock-free; figures may lag a concurrent writer. */
void suppress_index_stats(const struct suppress_index *ix, struct suppress_index_stats *out);

#endif
