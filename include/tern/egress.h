/* SPDX-License-Identifier: MIT */
/*
 * Egress: sources (one IP each, PowerMTA's VirtualMTAs), pools of sources
 * with weights, and ready queues, one per (source, site), each owning its
 * connections and throttles. A site is the sorted set of a domain's MX
 * hosts, so every domain a provider hosts shares one ready queue and one set
 * of limits. A ready queue lives on shard hash(source, site).
 */
#ifndef TERN_EGRESS_H
#define TERN_EGRESS_H

#include <stddef.h>
#include <sys/socket.h>

#include "tern/util.h"

struct queue_msg;

#define EGRESS_MAX_ADDRS 16

/* Where a message goes: the routing domain, its site and the addresses to try in order. */
struct egress_route {
	char domain[256];
	char site[512];
	size_t n_addrs;
	struct sockaddr_storage addrs[EGRESS_MAX_ADDRS]; /* ports set */
	char hosts[EGRESS_MAX_ADDRS][128];               /* the MX name of each address */
};

/* Smooth weighted round-robin (nginx's): deterministic, evenly interleaved. Pure. */
struct wrr {
	size_t n;
	int *weight;
	int *current;
};
/* Index of the next pick among entries whose skip[i] is false (skip may be NULL); -1 if none. */
int wrr_next(struct wrr *w, const bool *skip);

/*
 * On the scheduled queue's shard: choose a source from pool (hook
 * get_egress_pool, memoized) and move m to the ready queue for (source,
 * site). On a policy error m gets a transient failure.
 */
void egress_submit(struct queue_msg *m, const char *pool, const struct egress_route *route);

#endif
