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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "tern/egress_route.h"
#include "tern/smtp_client.h"
#include "tern/util.h"

struct queue_msg;

/* A source: one local address and its EHLO name (hook get_egress_source). */
struct egress_source_cfg {
	char name[64];
	bool has_addr;
	struct sockaddr_storage addr;
	char addr_text[64];
	char ehlo[256];
};

/* A pool: weighted sources (hook get_egress_pool). */
struct egress_pool_cfg {
	char name[64];
	size_t n;
	char (*sources)[64];
	int *weights;
};

/* The most automation rules one path is watched by. */
#define EGRESS_AUTOMATION_MAX 64

/* A path: the limits of one ready queue, (source, site) (hook get_egress_path_config). */
struct egress_path_cfg {
	int connection_limit;
	double max_message_rate;    /* per second; 0 = unlimited */
	bool max_message_rate_local; /* 'local:...': this node's, even in fleet mode */
	bool connection_limit_local; /* 'local:N': this node's, even in fleet mode */
	double max_connection_rate; /* per second; 0 = unlimited */
	bool max_connection_rate_local; /* 'local:...': this node's, even in fleet mode */
	int max_deliveries_per_connection;
	enum smtp_tls_mode tls;
	int smtp_port;
	double connect_timeout, banner_timeout, ehlo_timeout, mail_timeout, rcpt_timeout,
		data_timeout, idle_timeout;
	char ehlo[256]; /* "" = the source's */
	char tls_ca_file[256]; /* "" = the system's trusted roots */
	/* Shaping automation rules watching this path's replies, by index in the shard's rule set. */
	uint16_t automation[EGRESS_AUTOMATION_MAX];
	size_t n_automation;
};

/* The limits a path has when policy does not say. */
void egress_path_defaults(struct egress_path_cfg *c);
void egress_pool_cfg_deinit(struct egress_pool_cfg *c);

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

/*
 * On a shard's thread: append its ready queues as comma-separated JSON objects
 * {name: "source->site", source, site, count, connections, connection_limit,
 * max_message_rate, suspended} to out.
 */
int egress_summary_shard(struct buf *out);
/*
 * On a shard's thread: append "source->site": {"suspended": {context, expires}?,
 * "connection_limited": {context}?} members for its ready queues in such a state.
 */
int egress_states_shard(struct buf *out);
/*
 * On the ready queue's shard: the automation rule ids watching (source,
 * site)'s path in this config epoch; 0 when the path has none or is not here.
 */
size_t egress_path_automation(const char *source, const char *site, const uint16_t **ids);

#endif
