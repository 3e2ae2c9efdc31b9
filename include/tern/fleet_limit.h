/* SPDX-License-Identifier: MIT */
/*
 * A rate shared by the fleet (fleet mode): GCRA kept in Redis, one key per
 * egress path and kind (a path's message rate, its connection rate), so
 * three nodes limited to 600/min send 600/min together, not 1,800.
 *
 * Redis stays off the per-message path: a node takes permits in small
 * batches (about a tenth of a second's worth, at least one) with one script
 * call and spends them locally; unspent permits lapse after a second, so the
 * fleet never exceeds the limit by more than one batch per node (plus, after
 * a stall of the whole fleet, the quarter second of permits it missed). While
 * Redis is away (or before the node's shard has a connection) each node
 * limits itself to the rate divided by the fleet's node count (fleet.h).
 *
 * A fleet_rate belongs to one shard: take, retune and release it there. A
 * request in flight holds it; release frees it once the reply is in.
 */
#ifndef TERN_FLEET_LIMIT_H
#define TERN_FLEET_LIMIT_H

#include "tern/throttle.h"

struct fleet_rate;

/* A rate kept in the Redis key "tern:<kind>:<name>"; NULL when out of memory. */
struct fleet_rate *fleet_rate_new(const char *kind, const char *name);
/* The fleet-wide rate (per second; 0: unlimited); a change starts afresh. */
void fleet_rate_retune(struct fleet_rate *r, double per_second);
/* 0 when one event (a message, a connection) may happen now, else the seconds to wait before asking again. */
double fleet_rate_take(struct fleet_rate *r, double now);
void fleet_rate_release(struct fleet_rate *r);

/* Pure: the permits a node asks for at once at this rate. */
int fleet_rate_batch(double per_second);

#endif
