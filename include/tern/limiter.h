/* SPDX-License-Identifier: MIT */
/*
 * The limiter: the one interface through which egress asks whether a path
 * may send and at what limits. The local limiter answers from this node's
 * path states (path_state.h); a fleet-wide one (shared through Redis, say)
 * plugs in behind the same operations without egress changing.
 */
#ifndef TERN_LIMITER_H
#define TERN_LIMITER_H

#include <stdbool.h>

struct limiter_limits {
	double max_message_rate; /* per second; 0 = unlimited */
	int connection_limit;
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
};

/* This node's limiter. */
const struct limiter *limiter_local(void);

#endif
