// SPDX-License-Identifier: MIT
/*
 * The local limiter: answers from this node's path states. Egress holds a
 * pointer to a struct limiter rather than calling path_state directly, so
 * that a limiter shared by a fleet replaces this one in one place.
 */
#include "tern/limiter.h"
#include "tern/path_state.h"

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

static const struct limiter local = {
    .name = "local",
    .suspended = local_suspended,
    .held = local_held,
    .limits = local_limits,
};

const struct limiter *
limiter_local(void)
{
	return &local;
}
