/* SPDX-License-Identifier: MIT */
/*
 * A route: where a message goes once its domain is resolved (the routing
 * domain, its site and the addresses to try). Egress makes it; the SMTP
 * client follows it. It has its own header so that the client, which egress
 * drives, does not need egress's.
 */
#ifndef TERN_EGRESS_ROUTE_H
#define TERN_EGRESS_ROUTE_H

#include <stddef.h>
#include <sys/socket.h>

#define EGRESS_MAX_ADDRS 16

/* Where a message goes: the routing domain, its site and the addresses to try in order. */
struct egress_route {
	char domain[256];
	char site[512];
	size_t n_addrs;
	struct sockaddr_storage addrs[EGRESS_MAX_ADDRS]; /* ports set */
	char hosts[EGRESS_MAX_ADDRS][128];               /* the MX name of each address */
};

#endif
