// SPDX-License-Identifier: MIT
/*
 * The fleet's limiter (fleet mode): suspensions, holds and limit overrides
 * come from the path states as on a single node (fleet_shaping.c shares
 * those); the permits of a path's max_message_rate, max_connection_rate and
 * connection_limit come from Redis (fleet_limit.h: GCRA, permits in batches;
 * fleet_lease.h: connection leases), each falling back to this node's share
 * while Redis is away. A limit the policy marked 'local:' is spent from this
 * node's throttles, as the local limiter does.
 */
#include "tern/fleet_lease.h"
#include "tern/fleet_limit.h"
#include "tern/limiter.h"

#include <stdlib.h>

struct fleet_path {
	struct limiter_path local; /* first: a limiter_path points at it */
	struct fleet_rate *msg_rate, *conn_rate;
	struct fleet_conns *conns;
};

static struct fleet_path *
fleet_path(struct limiter_path *p)
{
	return (struct fleet_path *)p;
}

static void
fleet_path_tune(struct limiter_path *p, const struct limiter_limits *l)
{
	struct fleet_path *fp = fleet_path(p);

	limiter_local()->path_tune(p, l);
	if (fp->msg_rate)
		fleet_rate_retune(fp->msg_rate, l->max_message_rate);
	if (fp->conn_rate)
		fleet_rate_retune(fp->conn_rate, l->max_connection_rate);
}

static void
fleet_path_free(struct limiter_path *p)
{
	struct fleet_path *fp = fleet_path(p);

	if (fp == NULL)
		return;
	fleet_rate_release(fp->msg_rate);
	fleet_rate_release(fp->conn_rate);
	fleet_conns_release(fp->conns);
	free(fp);
}

static struct limiter_path *
fleet_path_new(const char *key, const struct limiter_limits *l)
{
	struct fleet_path *fp = calloc(1, sizeof(*fp));

	if (fp == NULL)
		return NULL;
	limiter_path_init(&fp->local, l);
	fp->msg_rate = fleet_rate_new("rate", key);
	fp->conn_rate = fleet_rate_new("connrate", key);
	fp->conns = fleet_conns_new(key);
	if (fp->msg_rate == NULL || fp->conn_rate == NULL || fp->conns == NULL) {
		fleet_path_free(&fp->local);
		return NULL;
	}
	fleet_path_tune(&fp->local, l);
	return &fp->local;
}

static double
fleet_take_message(struct limiter_path *p, double now)
{
	if (p->limits.max_message_rate_local)
		return limiter_local()->take_message(p, now);
	return fleet_rate_take(fleet_path(p)->msg_rate, now);
}

/* The connection rate's permit, the fleet's unless kept to this node. */
static double
take_connection_rate(struct fleet_path *fp, double now)
{
	if (fp->local.limits.max_connection_rate_local)
		return throttle_take(&fp->local.conn_rate, now);
	return fleet_rate_take(fp->conn_rate, now);
}

/* A lease first: a rate permit taken while the fleet has no connection to spare would be lost. */
static double
fleet_take_connection(struct limiter_path *p, int open, double now, uint64_t *lease)
{
	struct fleet_path *fp = fleet_path(p);
	double wait;

	*lease = 0;
	if (!p->limits.connection_limit_local) {
		wait = fleet_conns_take(fp->conns, p->limits.connection_limit, open, lease);
		if (wait > 0)
			return wait;
	}
	wait = take_connection_rate(fp, now);
	if (wait > 0) {
		fleet_conns_keep(fp->conns, *lease);
		*lease = 0;
	}
	return wait;
}

static void
fleet_drop_connection(struct limiter_path *p, uint64_t lease)
{
	fleet_conns_drop(fleet_path(p)->conns, lease);
}

static bool
fleet_suspended(const char *source, const char *site, double now, double *until)
{
	return limiter_local()->suspended(source, site, now, until);
}

static bool
fleet_held(const char *site, const char *tenant, const char *campaign, double now, double *until)
{
	return limiter_local()->held(site, tenant, campaign, now, until);
}

static void
fleet_limits(const char *source, const char *site, const struct limiter_limits *base, double now,
	     struct limiter_limits *out)
{
	limiter_local()->limits(source, site, base, now, out);
}

static const struct limiter fleet = {
    .name = "fleet",
    .suspended = fleet_suspended,
    .held = fleet_held,
    .limits = fleet_limits,
    .path_new = fleet_path_new,
    .path_tune = fleet_path_tune,
    .take_message = fleet_take_message,
    .take_connection = fleet_take_connection,
    .drop_connection = fleet_drop_connection,
    .path_free = fleet_path_free,
};

const struct limiter *
limiter_fleet(void)
{
	return &fleet;
}
