/* SPDX-License-Identifier: MIT */
/*
 * DNS: c-ares driven by a shard's libev loop, one resolver per shard. An MX
 * lookup resolves the MX set, then the A and AAAA records of every MX host in
 * parallel, and hands back one immutable, refcounted result that is cached
 * for the smallest TTL it was built from (negative answers per the zone's SOA
 * minimum, transient failures only briefly). Identical concurrent lookups on
 * a resolver share one resolution.
 */
#ifndef TERN_DNS_H
#define TERN_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "tern/util.h"

struct ev_loop;
struct shard;
struct dns_resolver;
struct dns_query;

#define DNS_MAX_SERVERS 8

/*
 * servers: "ip", "ip:port" or "[ipv6]:port"; none means the system's
 * resolv.conf servers. timeout: seconds one whole lookup may take (MX and
 * addresses), split between the attempts of each query.
 */
struct dns_config {
	const char *servers[DNS_MAX_SERVERS];
	size_t n_servers;
	double timeout;
	int attempts;
};

#define DNS_DEFAULT_TIMEOUT 10.0
#define DNS_DEFAULT_ATTEMPTS 2

/*
 * Process-wide configuration, set by tern.dns.configure{} at policy load or in
 * init, before the shards resolve anything. It applies to resolvers created
 * afterwards; an existing resolver picks it up (and drops its cache) at its
 * next lookup once it has no query in flight, or at dns_resolver_reconfigure().
 * Thread-safe. Returns 0 or -EINVAL with err filled.
 */
int dns_configure(const struct dns_config *cfg, struct tern_err *err);

struct dns_resolver *dns_resolver_new(struct ev_loop *loop, struct tern_err *err);
/* Pending queries are dropped without their callbacks. */
void dns_resolver_free(struct dns_resolver *r);
/* Apply the current configuration now; TERN_AGAIN when queries are in flight (applied later). */
int dns_resolver_reconfigure(struct dns_resolver *r, struct tern_err *err);

/* The shard's resolver, created on first use on its loop and freed when the shard exits. */
struct dns_resolver *dns_for_shard(struct shard *s);

enum dns_status {
	DNS_OK,
	DNS_NXDOMAIN,	/* permanent: the domain does not exist */
	DNS_NULL_MX,	/* permanent: RFC 7505, the domain accepts no mail */
	DNS_NO_ADDRESS, /* transient: no MX host (or the domain itself) has an address */
	DNS_TEMPFAIL,	/* transient: SERVFAIL, timeout, refused, ... */
};

/* "OK", "NXDOMAIN", "NULL_MX", "NO_ADDRESS", "TEMPFAIL" */
const char *dns_status_name(enum dns_status status);

struct dns_mx_host {
	char name[256]; /* absolute, with the trailing dot: "mx1.example.com." */
	int preference;
	struct sockaddr_storage *addrs; /* A records first, then AAAA; port 0 */
	size_t n_addrs;
};

struct dns_mx_result {
	int refs; /* negative: a static result, never freed */
	enum dns_status status;
	char error[160];	   /* for people: "NXDOMAIN", "null MX", "SERVFAIL", ... */
	struct dns_mx_host *hosts; /* sorted by preference, then name; only hosts with addresses */
	size_t n_hosts;
	bool implicit;	/* no MX: the domain's own A/AAAA (RFC 5321 5.1) */
	double expires; /* monotonic (util_now) */
};

/*
 * cb runs exactly once, unless the query is cancelled: synchronously when the
 * answer is known at once (a fresh cache entry, an invalid name, no memory),
 * and then dns_resolve_mx returns NULL; otherwise later on the resolver's
 * loop. The result is valid during the callback; dns_mx_result_ref() to keep it.
 */
typedef void (*dns_mx_fn)(void *arg, struct dns_mx_result *res);
struct dns_query *dns_resolve_mx(struct dns_resolver *r, const char *domain, dns_mx_fn cb,
				 void *arg);
/* The callback will not run. The lookup itself goes on and fills the cache. */
void dns_cancel(struct dns_query *q);
void dns_mx_result_ref(struct dns_mx_result *res);
void dns_mx_result_unref(struct dns_mx_result *res);

/* Resolver counters, for tests and metrics. */
struct dns_stats {
	uint64_t lookups;      /* dns_resolve_mx calls */
	uint64_t cache_hits;   /* answered from the cache */
	uint64_t coalesced;    /* joined a resolution already in flight */
	uint64_t ares_queries; /* DNS questions asked */
};
void dns_resolver_stats(const struct dns_resolver *r, struct dns_stats *out);

/*
 * The pure half, exposed for tests and fuzzing: the records of type qtype in
 * the answer section of a DNS message, and the negative-caching TTL from the
 * SOA in its authority section (RFC 2308: min(SOA TTL, SOA minimum)).
 */
#define DNS_TYPE_A 1
#define DNS_TYPE_MX 15
#define DNS_TYPE_AAAA 28
#define DNS_TYPE_SOA 6

struct dns_rr {
	uint32_t ttl;
	int preference;	  /* MX */
	char name[256];	  /* MX exchange, without the trailing dot ("" for the root) */
	uint8_t addr[16]; /* A (4 bytes) or AAAA (16 bytes) */
};

struct dns_answer {
	int rcode;
	struct dns_rr *rrs;
	size_t n_rrs;
	int64_t negative_ttl; /* -1 when there is no SOA */
};

/* Returns 0, or -EINVAL for a malformed message, -ENOMEM. Free with dns_answer_deinit. */
int dns_answer_parse(const uint8_t *msg, size_t len, int qtype, struct dns_answer *out);
void dns_answer_deinit(struct dns_answer *a);

#endif
