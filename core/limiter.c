// SPDX-License-Identifier: MIT
/*
 * The local limiter: answers from this node's path states and spends
 * permits from this node's throttles. Egress holds a pointer to a struct
 * limiter rather than calling path_state or the throttles directly, so that
 * the fleet's limiter replaces this one in one place.
 */
#include "tern/limiter.h"
#include "tern/path_state.h"

#include <stdlib.h>

static bool
local_suspended(const char *source, const char *site, double now, double *until)
{
	const struct path_state *s = path_state_suspended(source, site, now);

	if (s == NULL)
		return false;
	*until = s->until;
	return true;
}

static bool
local_held(const char *site, const char *tenant, const char *campaign, double now, double *until)
{
	const struct path_state *s = path_state_held(site, tenant, campaign, now);

	if (s == NULL)
		return false;
	*until = s->until;
	return true;
}

static void
local_limits(const char *source, const char *site, const struct limiter_limits *base, double now,
	     struct limiter_limits *out)
{
	*out = *base;
	path_state_limits(source, site, now, &out->max_message_rate, &out->connection_limit);
}

void
limiter_path_init(struct limiter_path *p, const struct limiter_limits *l)
{
	p->limits = *l;
	throttle_init(&p->msg_rate, l->max_message_rate, 1);
	throttle_init(&p->conn_rate, l->max_connection_rate, 1);
}

static struct limiter_path *
local_path_new(const char *key, const struct limiter_limits *l)
{
	struct limiter_path *p = calloc(1, sizeof(*p));

	(void)key;
	if (p != NULL)
		limiter_path_init(p, l);
	return p;
}

static void
local_path_tune(struct limiter_path *p, const struct limiter_limits *l)
{
	p->limits = *l;
	throttle_retune(&p->msg_rate, l->max_message_rate, 1);
	throttle_retune(&p->conn_rate, l->max_connection_rate, 1);
}

static double
local_take_message(struct limiter_path *p, double now)
{
	return throttle_take(&p->msg_rate, now);
}

static double
local_take_connection(struct limiter_path *p, int open, double now, uint64_t *lease)
{
	(void)open;
	*lease = 0;
	return throttle_take(&p->conn_rate, now);
}

static void
local_drop_connection(struct limiter_path *p, uint64_t lease)
{
	(void)p;
	(void)lease;
}

static void
local_path_free(struct limiter_path *p)
{
	free(p);
}

static const struct limiter local = {
    .name = "local",
    .suspended = local_suspended,
    .held = local_held,
    .limits = local_limits,
    .path_new = local_path_new,
    .path_tune = local_path_tune,
    .take_message = local_take_message,
    .take_connection = local_take_connection,
    .drop_connection = local_drop_connection,
    .path_free = local_path_free,
};

const struct limiter *
limiter_local(void)
{
	return &local;
}
