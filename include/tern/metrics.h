/* SPDX-License-Identifier: MIT */
/*
 * Metrics: counters, labelled counters and histograms that the engine bumps
 * on the message path, summed over the shards when someone scrapes them.
 *
 * Each shard owns a slot and is its only writer: an increment is a relaxed
 * load and store of its own cell, never a lock or a shared read-modify-write,
 * so counting costs the same with 1 shard or 64. A scrape reads every slot
 * with relaxed loads and adds them up; a value may be one increment behind,
 * never torn. Threads that are not shards (the spool's writers) share one
 * slot updated with atomic adds: they run once per group commit, not per
 * message.
 *
 * Labelled families keep their cardinality bounded: a shard remembers at
 * most METRICS_LABELS_PER_SHARD values per family and counts the rest as
 * "other"; a scrape shows the METRICS_TOP_N largest values and folds the rest
 * into "other" too, so a stream of new tenant or site names cannot grow the
 * memory or the exposition.
 *
 * Gauges that describe state owned elsewhere (queue sizes, disk, memory) are
 * not stored here: the exposition (api_metrics.c) reads them at scrape time,
 * and queue owners publish their largest queues once a second.
 */
#ifndef TERN_METRICS_H
#define TERN_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define METRICS_LABELS_PER_SHARD 64
#define METRICS_TOP_N 20
#define METRICS_LABEL_MAX 128 /* bytes kept of a label value, with the NUL */

enum metrics_counter {
	METRICS_CONNECTIONS_IN,	 /* SMTP sessions accepted */
	METRICS_CONNECTIONS_OUT, /* outbound SMTP connections attempted */
	METRICS_DNS_LOOKUPS,	 /* MX resolutions asked of the resolver */
	METRICS_DNS_CACHE_HITS,	 /* of those, answered from the cache */
	METRICS_DKIM_SIGNATURES, /* DKIM-Signature headers made */
	METRICS_HTTP_REQUESTS,	 /* HTTP requests answered */
	METRICS_SHAPING_ACTIONS, /* shaping automation rules that fired (ShapingAction records) */
	METRICS_COUNTER_COUNT,
};

/* What became of a delivery attempt's message (the log record types). */
enum metrics_outcome {
	METRICS_DELIVERED,
	METRICS_TRANSIENT, /* TransientFailure: deferred, will retry */
	METRICS_BOUNCED,
	METRICS_EXPIRED,
	METRICS_OUTCOME_COUNT,
};

/* Labelled families: each label value has one counter per outcome (received uses the first). */
enum metrics_family {
	METRICS_RECEIVED_BY_LISTENER,
	METRICS_OUTCOME_BY_SITE,
	METRICS_OUTCOME_BY_SOURCE,
	METRICS_OUTCOME_BY_POOL,
	METRICS_OUTCOME_BY_TENANT,
	METRICS_OUTCOME_BY_PATH,	   /* "source\tsite": the status page's grid */
	METRICS_OUTCOME_BY_CATEGORY,	   /* failures by bounce category */
	METRICS_BOUNCE_BY_SOURCE_CATEGORY, /* "source\tcategory": Bounce records (alerts) */
	METRICS_COMPLAINTS_BY_SOURCE,	   /* Feedback records (complaints), first cell */
	METRICS_FAMILY_COUNT,
};

enum metrics_histogram {
	METRICS_DELIVERY_LATENCY, /* seconds from reception to the final outcome */
	METRICS_HOOK_TIME,	  /* seconds a policy hook ran, from start to its end */
	METRICS_SYNC_BATCH,	  /* records per synced group commit */
	METRICS_HISTOGRAM_COUNT,
};

#define METRICS_BUCKETS_MAX 16

/* Where an outcome is counted: any field may be NULL or "" (not known). */
struct metrics_outcome_labels {
	const char *site;
	const char *source;
	const char *pool;
	const char *tenant;
};

void metrics_inc(enum metrics_counter c);
void metrics_add(enum metrics_counter c, uint64_t n);
/* n messages accepted (durable) on listener, named by its address ("127.0.0.1:25"). */
void metrics_received(const char *listener, uint64_t n);
/* One message's outcome; latency is seconds since reception (< 0: unknown, not observed). */
void metrics_outcome(enum metrics_outcome o, const struct metrics_outcome_labels *l,
		     double latency);
void metrics_observe(enum metrics_histogram h, double v);
/*
 * A failure's bounce category (NULL: not classified), counted after its
 * record was classified: by category, and for bounces by source too, so that
 * a hard-bounce rate per source can be alerted on. Delivered is ignored.
 */
void metrics_classified(enum metrics_outcome o, const char *source, const char *category);
/* A complaint (Feedback record) about a message sent from source (NULL or "": unknown). */
void metrics_complaint(const char *source);
/* A policy reload failed (hot reload calls it). */
void metrics_policy_reload_failed(void);
/* The policy epoch now serving (1 until hot reload exists). */
void metrics_set_policy_epoch(uint64_t epoch);
/* A TLS listener's certificate expiry (Unix time), set at start and again after a reload. */
void metrics_set_tls_expiry(const char *listener, double not_after);

/* ---- reading (scrape time, any thread) ---------------------------------------------------- */

uint64_t metrics_counter_total(enum metrics_counter c);
uint64_t metrics_outcome_total(enum metrics_outcome o);
uint64_t metrics_policy_reload_failures(void);
uint64_t metrics_policy_epoch(void);

/* One label value and its summed counters, as a scrape reports it. */
struct metrics_label_value {
	char value[METRICS_LABEL_MAX]; /* "other" for the folded rest */
	uint64_t n[METRICS_OUTCOME_COUNT];
};
/*
 * The family summed over shards: at most METRICS_TOP_N values by total, then
 * "other" when anything was folded. out must hold METRICS_TOP_N + 1; returns
 * how many were filled.
 */
size_t metrics_family_read(enum metrics_family f, struct metrics_label_value *out);

struct metrics_histogram_read {
	const double *bounds; /* upper bounds, ascending; +Inf is implied */
	size_t n_bounds;
	uint64_t buckets[METRICS_BUCKETS_MAX + 1]; /* per bucket (not cumulative); last is +Inf */
	uint64_t count;
	double sum;
};
void metrics_histogram_read(enum metrics_histogram h, struct metrics_histogram_read *out);

struct metrics_tls_expiry {
	char listener[METRICS_LABEL_MAX];
	double not_after;
};
/* The TLS listeners' expiry times; returns how many (at most max). */
size_t metrics_tls_expiry_read(struct metrics_tls_expiry *out, size_t max);

/* ---- queue gauges: published by their owners, once a second --------------------------------- */

enum metrics_queue_kind {
	METRICS_QUEUE_SCHEDULED,
	METRICS_QUEUE_READY,
	METRICS_QUEUE_KIND_COUNT,
};
struct metrics_queue_size {
	char name[METRICS_LABEL_MAX];
	uint64_t size;
};
/* A shard's queues of one kind, gathered by its tick: the largest, their total and count. */
struct metrics_queue_top {
	struct metrics_queue_size top[METRICS_TOP_N];
	size_t n;
	uint64_t total, count;
	double oldest; /* creation time (Unix) of the oldest message; 0: none or not known */
};
void metrics_queue_top_add(struct metrics_queue_top *t, const char *name, uint64_t size);
/* Replace the calling shard's snapshot of its queues of one kind. */
void metrics_queues_publish(enum metrics_queue_kind k, const struct metrics_queue_top *t);
/* The largest queues over every shard (sorted, at most METRICS_TOP_N), the total and the count. */
size_t metrics_queues_read(enum metrics_queue_kind k, struct metrics_queue_size *out,
			   uint64_t *total, uint64_t *count);
/* The creation time of the oldest message any shard published for kind k; 0 when none. */
double metrics_queues_oldest(enum metrics_queue_kind k);

/* ---- rate history for the status page ------------------------------------------------------ */

#define METRICS_HISTORY_SECONDS 900

struct metrics_history_point {
	double t;				  /* Unix time of the sample */
	uint64_t outcomes[METRICS_OUTCOME_COUNT]; /* totals at t */
};
/* Take one sample of the outcome totals (a timer calls it each second). */
void metrics_history_sample(double now);
/* The samples kept, oldest first; returns how many (at most METRICS_HISTORY_SECONDS). */
size_t metrics_history_read(struct metrics_history_point *out);

/* ---- the once-a-second tick ---------------------------------------------------------------- */

struct shard;
/* Runs on each shard once a second, e.g. to publish its queue sizes. Any thread, any time. */
typedef void (*metrics_tick_fn)(struct shard *s);
void metrics_on_tick(metrics_tick_fn fn);
/* Start the tick on every shard (after shards_start); shard 0 also samples the history. */
void metrics_start(void);

/* Free what the shards allocated (after they stopped). */
void metrics_free(void);

/* ---- log hooks: how far each is behind the local log (core/loghook.c publishes) ----------- */

#define METRICS_LOG_HOOKS_MAX 32

struct metrics_log_hook_lag {
	char hook[METRICS_LABEL_MAX];
	uint64_t records; /* records written and not yet acknowledged by deliver */
	double seconds;   /* age of the oldest of them; 0 when caught up */
};
void metrics_set_log_hook_lag(const char *hook, uint64_t records, double seconds);
/* The hooks' lag; returns how many (at most max). */
size_t metrics_log_hook_lag_read(struct metrics_log_hook_lag *out, size_t max);

#endif
