/* SPDX-License-Identifier: MIT */
/*
 * Routing: where a message goes (the routing domain, its site and the
 * addresses to try), from smart hosts or the domain's MX set. The queue asks
 * when a message is due, egress submits along the route and the SMTP client
 * follows it; it has its own header so that the client, which egress drives,
 * does not need egress's.
 */
#ifndef TERN_EGRESS_ROUTE_H
#define TERN_EGRESS_ROUTE_H

#include <stddef.h>
#include <sys/socket.h>

struct shard;

#define EGRESS_MAX_ADDRS 16

/* One address to try, and the MX name it belongs to. */
struct egress_hop {
	struct sockaddr_storage addr; /* port set */
	char host[128];
};

/*
 * Where a message goes: the routing domain, its site and the addresses to
 * try in order. It holds only the hops it has: a path keeps its route for
 * as long as it lives, and 50,000 paths of two addresses each must not pay
 * for sixteen.
 */
struct egress_route {
	char domain[256];
	char site[512];
	size_t n_addrs;
	struct egress_hop hops[]; /* n_addrs of them */
};

/* Room to build a route of up to EGRESS_MAX_ADDRS hops in. */
union egress_route_space {
	struct egress_route route;
	char bytes[sizeof(struct egress_route) + EGRESS_MAX_ADDRS * sizeof(struct egress_hop)];
};

/* The bytes r takes, its hops included: what a copy of it needs. */
size_t egress_route_size(const struct egress_route *r);
/* A copy of r in memory of its own (free() it), or NULL when out of memory. */
struct egress_route *egress_route_copy(const struct egress_route *r);

/*
 * done gets a route (code 0), or the reply that settles the attempt instead:
 * 550 5.1.2 / 5.1.10 when the domain does not exist or refuses mail (null MX),
 * 451 when routing failed for now. The route is valid during the call.
 */
typedef void (*egress_route_fn)(void *arg, const struct egress_route *route, int code,
				const char *enhanced, const char *text);
/*
 * Route a message for domain: through mx_list ("IP:port" smart hosts) when
 * n_mx > 0, else by the domain's MX on shard s's resolver. done runs exactly
 * once, possibly before this returns.
 */
void egress_route_resolve(struct shard *s, const char *domain, char (*mx_list)[272], size_t n_mx,
			  egress_route_fn done, void *arg);

#endif
