/* SPDX-License-Identifier: MIT */
/*
 * Scheduled queues. After spooling, a message joins the queue named
 * "campaign:tenant@domain" (parts from meta campaign and tenant; meta queue
 * overrides), which lives on shard hash(name). In memory a queued message is
 * a struct queue_msg: id, due time, attempts, a link; never its body. When it
 * is due, the queue's config (asked through config, memoised per epoch)
 * names its egress pool, routing (egress_route: DNS, or the config's mx_list)
 * names its site, and the message moves to the egress ready queue for
 * (source, site).
 *
 * Retries back off exponentially with jitter, from retry_interval up to
 * max_retry_interval; past max_age the message expires.
 */
#ifndef TERN_QUEUE_H
#define TERN_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tern/spool.h"
#include "tern/util.h"

struct sched_queue;
struct message;

/* A queued message in memory: metadata only. */
struct queue_msg {
	struct spool_id id;
	double due;               /* epoch seconds */
	struct sched_queue *queue;
	struct queue_msg *next;   /* ready-queue FIFO link */
	uint32_t heap_index;
	uint32_t created;         /* epoch seconds */
	uint16_t attempts;
};

struct queue_config {
	char egress_pool[64];
	double retry_interval;
	double max_retry_interval;
	double max_age;
	double max_message_rate; /* per second; 0 = unlimited */
	char (*mx_list)[272]; /* "host:port" entries: smart hosts instead of MX */
	size_t n_mx;
	/* Bounces and expiries send a DSN (RFC 3464) to the envelope sender. */
	bool dsn;
};

/* The config a queue has when policy does not say. */
void queue_config_defaults(struct queue_config *c);
void queue_config_deinit(struct queue_config *c);

/* Split a queue name into campaign, tenant and domain (each may come back empty). */
void queue_name_parse(const char *name, char *campaign, size_t clen, char *tenant, size_t tlen,
		      char *domain, size_t dlen);
/* Seconds to wait before attempt number attempts+1; jitter01 in [0,1) spreads retries by +-10%. */
double queue_retry_delay(unsigned attempts, double base, double max, double jitter01);

/* The spool the queues read from and update (set at start-up). */
void queue_set_spool(struct spool *sp);
struct spool *queue_spool(void);
/* Hand a spooled message to its queue (any thread). */
int queue_insert(const struct spool_id *id, const char *queue_name, double created,
		 unsigned attempts, double due);
/* Re-enter every message in the spool into its queue (start-up). */
int queue_recover(struct spool *sp, struct tern_err *err);

const char *queue_msg_name(const struct queue_msg *m);
/* The tenant part of m's queue name ("" when none). */
const char *queue_msg_tenant(const struct queue_msg *m);
/* The campaign and domain parts of m's queue name ("" when none). */
const char *queue_msg_campaign(const struct queue_msg *m);
const char *queue_msg_domain(const struct queue_msg *m);
/* Back to its queue's shard with m->due set (any thread). */
void queue_requeue(struct queue_msg *m);
/* When attempt m->attempts + 1 is due: the queue's backoff from now, with jitter. */
double queue_retry_due(const struct queue_msg *m);
/* Free m's memory (the message stays in the spool): shutdown paths. */
void queue_msg_drop(struct queue_msg *m);
/* True once the shards stopped and the queues were freed. */
bool queue_is_closed(void);
/* Load m's message from the spool; NULL when it cannot be (then m is logged and freed). */
struct message *queue_load(struct queue_msg *m, bool with_data);

/*
 * Admin rules (admin.h) act at dispatch: a bounced queue's messages get an
 * AdminBounce outcome, a suspended queue's wait parked until the suspension
 * ends. After adding a bounce, sweep: waiting messages it matches are due now.
 */
int queue_admin_sweep(void);
/*
 * Every waiting message due at exactly `due` is due now. Egress holds a
 * message until the end of the suspension that holds it (its due is that
 * end), so lifting a suspension early wakes exactly its messages.
 */
int queue_wake_due_at(double due);
/*
 * Rebind (admin): every message of the queues sel matches (domain, tenant,
 * campaign, queue_names) gets the meta in data (a JSON object, e.g.
 * {"queue": "other"} or {"tenant": "t2"}), saved to the spool, and joins the
 * queue its meta now names, due now. Asynchronous: one visit per shard.
 */
struct admin_rule;
int queue_rebind(const struct admin_rule *sel, const char *data, size_t len);
/*
 * On a shard's thread: append its scheduled queues as comma-separated JSON
 * objects {name, domain, count, suspended_count, oldest_age, suspended,
 * max_message_rate} to out.
 */
int queue_summary_shard(struct buf *out);

#endif
