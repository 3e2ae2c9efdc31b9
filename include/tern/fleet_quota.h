/* SPDX-License-Identifier: MIT */
/*
 * A count the fleet shares (fleet mode): a cap per period (a warm-up
 * source's daily cap, its cap per provider) that every node spends from
 * together. The count of the period lives in one Redis key; a node reserves
 * permits in batches with one script call, which counts them at once and
 * grants no more than the cap leaves, so the fleet never passes the cap
 * while Redis answers, and Redis stays off the per-message path. Messages a
 * node sent while Redis was away (its fallback share) are its debt, counted
 * first at its next reservation.
 */
#ifndef TERN_FLEET_QUOTA_H
#define TERN_FLEET_QUOTA_H

#include <stdbool.h>

/* The reply on the asking shard: permits granted (0: the fleet reached the cap), or < 0: failed. */
typedef void (*fleet_quota_fn)(void *arg, int granted);

/*
 * On a shard's thread: count debt and reserve up to want more permits of
 * cap in the Redis key "tern:quota:<name>", kept for ttl seconds. 0 when
 * asked (fn runs later, on this shard), or -ENOTCONN while this shard has
 * no Redis (fn never runs).
 */
int fleet_quota_reserve(const char *name, double cap, int debt, int want, double ttl,
			fleet_quota_fn fn, void *arg);

/* On a shard's thread: whether it can reserve now (fleet mode, its Redis connection up). */
bool fleet_quota_up(void);

/* Pure: the permits a node reserves at once of a cap (a hundredth of it, 1 to 100). */
int fleet_quota_batch(double cap);

#endif
