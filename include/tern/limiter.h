/* SPDX-License-Identifier: MIT */
/*
 * The limiter: the one interface through which egress asks whether a path
 * may send and at what limits, and takes its permits: a message, a new
 * connection (its rate and its place under connection_limit). The local
 * limiter answers from this node's path states and throttles; the fleet's
 * (limiter_fleet.c) shares the limits through Redis, each one unless the
 * policy kept it to the node ('local:'), and falls back to the local
 * throttles' share while Redis is away. Egress never knows which it has.
 */
#ifndef TERN_LIMITER_H
#define TERN_LIMITER_H

#include <stdbool.h>
#include <stdint.h>

#include "tern/throttle.h"

struct limiter_limits {
	double max_message_rate;    /* per second; 0 = unlimited */
	int connection_limit;
	double max_connection_rate; /* per second; 0 = unlimited */
	/* 'local:' in the policy: this node's own, even when the fleet shares limits. */
	bool max_message_rate_local, connection_limit_local, max_connection_rate_local;
};

/*
 * One path's permits as a limiter keeps them. It belongs to the shard of
 * the path's ready queue: make, use and free it there.
 */
struct limiter_path {
	struct limiter_limits limits; /* as last tuned */
	struct throttle msg_rate, conn_rate; /* this node's */
};

struct limiter {
	const char *name;
	/* When (source, site) is suspended now: true with *until its end. */
	bool (*suspended)(const char *source, const char *site, double now, double *until);
	/* When tenant's or campaign's messages for site are held now: true with *until. */
	bool (*held)(const char *site, const char *tenant, const char *campaign, double now,
		     double *until);
	/* The limits of (source, site) now, given the path's own in base. */
	void (*limits)(const char *source, const char *site, const struct limiter_limits *base,
		       double now, struct limiter_limits *out);

	/* The permits of the path named key ("source|site") at limits l; NULL: out of memory. */
	struct limiter_path *(*path_new)(const char *key, const struct limiter_limits *l);
	/* The path's limits now: an unchanged rate keeps its state (no burst, no stall). */
	void (*path_tune)(struct limiter_path *p, const struct limiter_limits *l);
	/* One message may go now: 0, else the seconds to wait before asking again. */
	double (*take_message)(struct limiter_path *p, double now);
	/*
	 * One more connection, open of them on this node now (the caller keeps
	 * open under the connection_limit it was tuned to): 0 with *lease to give
	 * back to drop_connection when it closes, else the seconds to wait (a
	 * closing connection is a reason to ask sooner).
	 */
	double (*take_connection)(struct limiter_path *p, int open, double now, uint64_t *lease);
	void (*drop_connection)(struct limiter_path *p, uint64_t lease);
	void (*path_free)(struct limiter_path *p);
};

/* This node's limiter. */
const struct limiter *limiter_local(void);
/* The fleet's limiter (fleet mode: tern.configure_redis). */
const struct limiter *limiter_fleet(void);

/* For limiters built on the local one: p's throttles at l, as path_new gives them. */
void limiter_path_init(struct limiter_path *p, const struct limiter_limits *l);

#endif
