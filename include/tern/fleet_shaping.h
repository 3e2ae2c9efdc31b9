/* SPDX-License-Identifier: MIT */
/*
 * Fleet mode: shaping automation's path states (path_state.h: suspensions
 * and overrides) are the fleet's, as admin rules are (fleet.h). The hash
 * tern:shaping:states holds every state by its key (path_state_key); a
 * local change (a provider's reply on one node, an operator's clear) is
 * written there and announced on the channel tern:shaping, and every node
 * then reloads the whole hash into its table, so a suspension set on one
 * node holds on all within a second or two. States past their recovery
 * leave the hash at the next reload. After a reconnect a node first adds
 * the states it holds (HSETNX), then reloads. Without Redis each node keeps
 * its own, saved in its spool as before.
 *
 * Everything runs on shard 0's thread, with the fleet's command client.
 */
#ifndef TERN_FLEET_SHAPING_H
#define TERN_FLEET_SHAPING_H

struct redis_client;

/* Hear local changes, and the fleet's announcements on sub (before the shards run). */
int fleet_shaping_start(struct redis_client *sub);
void fleet_shaping_stop(void);
/* The command client came (back) up: this node's states join the fleet's, then reload. */
void fleet_shaping_joined(void);
/* Reload the fleet's states (the subscription came back: announcements may be lost). */
void fleet_shaping_resync(void);

#endif
