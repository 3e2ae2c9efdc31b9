/* SPDX-License-Identifier: MIT */
/*
 * Objects kept in RAM beside the spool, keyed by message id: a message just
 * spooled stays here for its first delivery attempt, which then need not
 * read it back. The spool forgets an id's object whenever it changes or
 * removes the id's records, so what is kept never differs from what is
 * spooled. Bounded in bytes; the oldest go first. Thread-safe.
 */
#ifndef TERN_SPOOL_KEPT_H
#define TERN_SPOOL_KEPT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "tern/util_map.h"

struct spool_id;
struct kept_entry;

typedef void (*spool_kept_free_fn)(void *obj);

struct spool_kept {
	pthread_mutex_t lock;
	struct map by_id;	 /* hex id -> struct kept_entry */
	struct kept_entry *head; /* oldest */
	struct kept_entry *tail;
	size_t bytes, max_bytes;
	uint64_t taken, dropped;
};

void spool_kept_init(struct spool_kept *k, size_t max_bytes);
void spool_kept_deinit(struct spool_kept *k); /* frees what is still kept */
/* Keep obj (bytes of RAM) for id, or free it at once when it can never fit. */
void spool_kept_put(struct spool_kept *k, const struct spool_id *id, void *obj, size_t bytes,
		    spool_kept_free_fn free_fn);
/* The object kept for id, now the caller's; NULL when none is. */
void *spool_kept_take(struct spool_kept *k, const struct spool_id *id);
void spool_kept_forget(struct spool_kept *k, const struct spool_id *id);
void spool_kept_stats(struct spool_kept *k, uint64_t *bytes, uint64_t *taken, uint64_t *dropped);

#endif
