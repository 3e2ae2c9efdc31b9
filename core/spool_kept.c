// SPDX-License-Identifier: MIT
/*
 * Messages kept in RAM from their spooling to their first attempt (see
 * spool_kept.h). Nearly every message is delivered milliseconds after its
 * 250, and reading it back then costs two RocksDB lookups and a parse of
 * its metadata. A small budget in bytes keeps RAM from growing with the
 * backlog: when it is full, the oldest kept go, and their first attempts
 * read the spool like every retry does.
 */
#include "tern/spool_kept.h"
#include "tern/spool.h"

#include <stdlib.h>

struct kept_entry {
	struct kept_entry *prev, *next;
	void *obj;
	size_t bytes;
	spool_kept_free_fn free_fn;
	char key[SPOOL_ID_HEX_LEN + 1];
};

void
spool_kept_init(struct spool_kept *k, size_t max_bytes)
{
	pthread_mutex_init(&k->lock, NULL);
	map_init(&k->by_id);
	k->head = k->tail = NULL;
	k->bytes = 0;
	k->max_bytes = max_bytes;
	k->taken = k->dropped = 0;
}

/* Unlink e from the age list and the map; the caller frees it and its object. */
static void
unlink_entry(struct spool_kept *k, struct kept_entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		k->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		k->tail = e->prev;
	map_del(&k->by_id, e->key);
	k->bytes -= e->bytes;
}

static void
free_entry(struct kept_entry *e)
{
	e->free_fn(e->obj);
	free(e);
}

static void
free_list(struct kept_entry *e)
{
	struct kept_entry *next;

	for (; e; e = next) {
		next = e->next;
		free_entry(e);
	}
}

void
spool_kept_deinit(struct spool_kept *k)
{
	free_list(k->head);
	k->head = k->tail = NULL;
	map_deinit(&k->by_id, NULL);
	pthread_mutex_destroy(&k->lock);
}

/*
 * Unlink the oldest until bytes more fit, into a list freed after the lock
 * is dropped: every shard's put and take wait on it.
 */
static struct kept_entry *
evict_for(struct spool_kept *k, size_t bytes)
{
	struct kept_entry *evicted = NULL, *e;

	while (k->head != NULL && k->bytes + bytes > k->max_bytes) {
		e = k->head;
		unlink_entry(k, e);
		e->next = evicted;
		evicted = e;
		k->dropped++;
	}
	return evicted;
}

void
spool_kept_put(struct spool_kept *k, const struct spool_id *id, void *obj, size_t bytes,
	       spool_kept_free_fn free_fn)
{
	struct kept_entry *e = malloc(sizeof(*e)), *evicted, *old;
	int err = 0;

	bytes += sizeof(*e);
	if (e == NULL || bytes > k->max_bytes) {
		free(e);
		free_fn(obj);
		return;
	}
	e->obj = obj;
	e->bytes = bytes;
	e->free_fn = free_fn;
	spool_id_to_hex(id, e->key);
	pthread_mutex_lock(&k->lock);
	evicted = evict_for(k, bytes);
	/* One object per id: a second put replaces the first. */
	old = map_get(&k->by_id, e->key);
	if (old != NULL) {
		unlink_entry(k, old);
		old->next = evicted;
		evicted = old;
		k->dropped++;
	}
	map_put(&k->by_id, e->key, e, &err);
	if (err < 0) {
		pthread_mutex_unlock(&k->lock);
		free_list(evicted);
		free_entry(e);
		return;
	}
	e->prev = k->tail;
	e->next = NULL;
	if (k->tail)
		k->tail->next = e;
	else
		k->head = e;
	k->tail = e;
	k->bytes += bytes;
	pthread_mutex_unlock(&k->lock);
	free_list(evicted);
}

/* Detach id's entry, counted in *counter; NULL when none. */
static struct kept_entry *
detach(struct spool_kept *k, const struct spool_id *id, uint64_t *counter)
{
	char key[SPOOL_ID_HEX_LEN + 1];
	struct kept_entry *e;

	spool_id_to_hex(id, key);
	pthread_mutex_lock(&k->lock);
	e = map_get(&k->by_id, key);
	if (e != NULL) {
		unlink_entry(k, e);
		(*counter)++;
	}
	pthread_mutex_unlock(&k->lock);
	return e;
}

void *
spool_kept_take(struct spool_kept *k, const struct spool_id *id)
{
	struct kept_entry *e = detach(k, id, &k->taken);
	void *obj;

	if (e == NULL)
		return NULL;
	obj = e->obj;
	free(e);
	return obj;
}

void
spool_kept_forget(struct spool_kept *k, const struct spool_id *id)
{
	struct kept_entry *e = detach(k, id, &k->dropped);

	if (e != NULL)
		free_entry(e);
}

void
spool_kept_stats(struct spool_kept *k, uint64_t *bytes, uint64_t *taken, uint64_t *dropped)
{
	pthread_mutex_lock(&k->lock);
	*bytes = k->bytes;
	*taken = k->taken;
	*dropped = k->dropped;
	pthread_mutex_unlock(&k->lock);
}
