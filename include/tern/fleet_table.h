/* SPDX-License-Identifier: MIT */
/*
 * A table the fleet shares through Redis (admin rules, shaping states): a
 * hash holds every item as JSON by its key, and a channel announces changes.
 *
 * A local change is written to the hash and announced; every node (the
 * writer too, so that a reload racing the change cannot hide it) then
 * reloads the whole hash into its table. After a reconnect a node first adds
 * the items it holds (HSETNX: what it made while Redis was away reaches the
 * others), announces, then reloads. Items past their end leave the hash at a
 * reload. Without Redis each node keeps its own table, saved as before; a
 * removal made while Redis was away is not seen by the others (they still
 * hold the item, and give it back at the next reload).
 *
 * Everything talks through shard 0's command client: fleet_table_changed()
 * may be called on any thread (it posts there), the rest on shard 0.
 */
#ifndef TERN_FLEET_TABLE_H
#define TERN_FLEET_TABLE_H

#include <stdbool.h>
#include <stddef.h>

#include "tern/util.h"

#define FLEET_TABLE_KEY_MAX 1024

struct redis_client;

/* How one table's items are named, written, read and installed. */
struct fleet_table {
	const char *hash;    /* "tern:admin:rules" */
	const char *channel; /* "tern:admin" */
	const char *what;    /* "admin rule", for log lines */
	size_t item_size;
	void (*key)(const void *item, char *out, size_t size);
	void (*to_json)(const void *item, struct buf *out);
	int (*from_json)(const char *text, size_t len, void *item, struct tern_err *err);
	bool (*over)(const void *item, double now); /* ended: leaves the hash */
	/* Replace the local table by items[n] (not heard as a local change). */
	int (*install)(const void *items, size_t n, struct tern_err *err);
	/* A malloc'd copy of the local items into *out; how many. */
	size_t (*snapshot)(void **out);
};

/* A local change: added (its JSON stored) or the item of removed_key deleted. Any thread. */
void fleet_table_changed(const struct fleet_table *t, const void *added, const char *removed_key);
/* The command client came (back) up: this node's items join the fleet's, then reload. */
void fleet_table_joined(const struct fleet_table *t);
/* Reload the fleet's items (an announcement, or the subscription came back). */
void fleet_table_resync(const struct fleet_table *t);
/* Hear the table's announcements on sub (a subscription client), now and after reconnects. */
int fleet_table_subscribe(const struct fleet_table *t, struct redis_client *sub);

#endif
