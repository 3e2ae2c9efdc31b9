/* SPDX-License-Identifier: MIT */
/*
 * The suppression list shared by a fleet. A list holds millions of entries,
 * so it is not shared as a table announced whole (fleet_table.h): every
 * local change goes, in one script, to the stream tern:suppress (XADD with
 * MAXLEN ~ FLEET_SUPPRESS_STREAM_MAX: fields op "a"/"r", node, key, entry)
 * and to the hash tern:suppress:all (the fleet's whole list: key "tenant
 * address" -> the entry as JSON). Every node reads the stream after the last
 * id it applied and writes the other nodes' changes into its own list
 * (suppress_apply_*: not published again).
 *
 * Durable on each node, in its suppression column family under keys that are
 * not entries (SUPPRESS_KEY_RESERVED): the last stream id applied, so that a
 * restart resumes there, and every local change until Redis has taken it, so
 * that changes made while Redis is away reach the fleet once it is back.
 * When the stream has been trimmed past a node's last id (a node away longer
 * than the stream's reach, or a new node), the node reloads the hash in pages
 * (HSCAN) and goes on from the stream's end: adds reach it that way, removals
 * trimmed away meanwhile do not.
 *
 * Everything runs on shard 0, on the fleet's command client, except the
 * observer of local changes (any thread), which keeps the change in the
 * spool and nudges shard 0 to push it.
 */
#ifndef TERN_FLEET_SUPPRESS_H
#define TERN_FLEET_SUPPRESS_H

#include <stdint.h>

#define FLEET_SUPPRESS_STREAM_MAX 1000000 /* the stream keeps about this many changes */
#define FLEET_SUPPRESS_POLL 0.25	  /* seconds between reads of the stream's end */
#define FLEET_SUPPRESS_PAGE 512		  /* changes per XREAD, entries per HSCAN */

/* On shard 0 before the shards run (fleet_open), and at its exit. */
void fleet_suppress_start(void);
void fleet_suppress_stop(void);
/* The command client came (back) up: push what waits, check the stream, follow it. Shard 0. */
void fleet_suppress_joined(void);

struct fleet_suppress_stats {
	uint64_t applied; /* other nodes' changes written into this node's list */
	uint64_t pushed;  /* this node's changes Redis took */
	uint64_t pending; /* this node's changes waiting for Redis */
	double lag;	  /* seconds since this node last read the stream to its end */
};
/* Any thread. */
void fleet_suppress_stats(struct fleet_suppress_stats *out);

#endif
