/* SPDX-License-Identifier: MIT */
/*
 * Fleet mode: shaping automation's path states (path_state.h: suspensions
 * and overrides) are the fleet's, as admin rules are: a shared table
 * (fleet_table.h) in the hash tern:shaping:states, by path_state_key,
 * announced on tern:shaping. A suspension set on one node (a provider's
 * reply, an operator's clear) holds on all within a second or two; states
 * past their recovery leave the hash at the next reload.
 */
#ifndef TERN_FLEET_SHAPING_H
#define TERN_FLEET_SHAPING_H

#include "tern/fleet_table.h"

extern const struct fleet_table fleet_shaping_table;

/* Hear local changes of the path states (before the shards run), and stop. */
void fleet_shaping_start(void);
void fleet_shaping_stop(void);

#endif
