// SPDX-License-Identifier: MIT
/*
 * Routing: where a message for a domain goes. Smart hosts from the queue's
 * mx_list, or the domain's MX set from DNS; either way the site is the list
 * of hosts, so every domain a provider hosts shares one site and one ready
 * queue per source. Routing decides where; the scheduler only when.
 */
#include "tern/egress_route.h"
#include "tern/dns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "host:port" (host an IP literal or a name resolved like a domain without MX). */
static int
parse_host_port(const char *s, char *host, size_t hlen, int *port)
{
	const char *colon = strrchr(s, ':');
	const char *h = s;
	size_t n;

	*port = 25;
	if (colon && strchr(colon, ']') == NULL && (s[0] == '[' || strchr(s, ':') == colon)) {
		*port = atoi(colon + 1);
		n = (size_t)(colon - s);
	} else {
		n = strlen(s);
	}
	if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
		h++;
		n -= 2;
	}
	snprintf(host, hlen, "%.*s", (int)n, h);
	return *port > 0 && *port < 65536 ? 0 : -EINVAL;
}

static bool
literal_address(const char *host, int port, struct sockaddr_storage *ss)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		return true;
	}
	if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		return true;
	}
	return false;
}

/* Smart hosts from mx_list; literals only (the list names the site). */
static int
route_from_mx_list(const char *domain, char (*mx_list)[272], size_t n_mx, struct egress_route *r)
{
	size_t i;

	memset(r, 0, sizeof(*r));
	snprintf(r->domain, sizeof(r->domain), "%s", domain);
	for (i = 0; i < n_mx && r->n_addrs < EGRESS_MAX_ADDRS; i++) {
		char host[256];
		int port;

		if (parse_host_port(mx_list[i], host, sizeof(host), &port) < 0 ||
		    !literal_address(host, port, &r->hops[r->n_addrs].addr))
			return -EINVAL;
		snprintf(r->hops[r->n_addrs].host, sizeof(r->hops[0].host), "%s", host);
		r->n_addrs++;
		snprintf(r->site + strlen(r->site), sizeof(r->site) - strlen(r->site), "%s%s",
			 i ? "," : "", mx_list[i]);
	}
	return 0;
}

/* The site key: the sorted MX host names (already sorted by preference then name). */
static void
route_from_dns(const char *domain, const struct dns_mx_result *res, struct egress_route *r)
{
	size_t i, j;

	memset(r, 0, sizeof(*r));
	snprintf(r->domain, sizeof(r->domain), "%s", domain);
	for (i = 0; i < res->n_hosts; i++) {
		const struct dns_mx_host *h = &res->hosts[i];
		size_t used = strlen(r->site);

		snprintf(r->site + used, sizeof(r->site) - used, "%s%s", i ? "," : "", h->name);
		for (j = 0; j < h->n_addrs && r->n_addrs < EGRESS_MAX_ADDRS; j++) {
			struct sockaddr_storage *a = &r->hops[r->n_addrs].addr;

			*a = h->addrs[j];
			if (a->ss_family == AF_INET)
				((struct sockaddr_in *)a)->sin_port = htons(25);
			else
				((struct sockaddr_in6 *)a)->sin6_port = htons(25);
			snprintf(r->hops[r->n_addrs].host, sizeof(r->hops[0].host), "%s", h->name);
			r->n_addrs++;
		}
	}
}

struct route_lookup {
	egress_route_fn done;
	void *arg;
	char domain[256];
};

static void
dns_done(void *arg, struct dns_mx_result *res)
{
	struct route_lookup lk = *(struct route_lookup *)arg;
	union egress_route_space route;
	char text[200];

	free(arg);
	snprintf(text, sizeof(text), "DNS: %s for %s", res->error, lk.domain);
	switch (res->status) {
	case DNS_OK:
		route_from_dns(lk.domain, res, &route.route);
		lk.done(lk.arg, &route.route, 0, NULL, NULL);
		break;
	case DNS_NXDOMAIN:
	case DNS_NULL_MX:
		lk.done(lk.arg, NULL, 550, res->status == DNS_NULL_MX ? "5.1.10" : "5.1.2", text);
		break;
	default:
		lk.done(lk.arg, NULL, 451, "4.4.3", text);
	}
}

void
egress_route_resolve(struct shard *s, const char *domain, char (*mx_list)[272], size_t n_mx,
		     egress_route_fn done, void *arg)
{
	struct route_lookup *lk;
	union egress_route_space route;

	if (n_mx > 0) {
		if (route_from_mx_list(domain, mx_list, n_mx, &route.route) < 0)
			done(arg, NULL, 451, "4.3.5", "mx_list entries must be IP:port");
		else
			done(arg, &route.route, 0, NULL, NULL);
		return;
	}
	lk = malloc(sizeof(*lk));
	if (lk == NULL) {
		done(arg, NULL, 451, "4.3.0", "out of memory");
		return;
	}
	lk->done = done;
	lk->arg = arg;
	snprintf(lk->domain, sizeof(lk->domain), "%s", domain);
	dns_resolve_mx(dns_for_shard(s), domain, dns_done, lk);
}

size_t
egress_route_size(const struct egress_route *r)
{
	return sizeof(*r) + r->n_addrs * sizeof(r->hops[0]);
}

struct egress_route *
egress_route_copy(const struct egress_route *r)
{
	struct egress_route *c = malloc(egress_route_size(r));

	if (c != NULL)
		memcpy(c, r, egress_route_size(r));
	return c;
}
