// SPDX-License-Identifier: MIT
/*
 * GET /metrics (Prometheus text exposition format 0.0.4) and GET
 * /metrics.json. Both come from one walk over the metrics (expose_all):
 * it names each family once, with its type and help, and emits samples
 * into an exposition that writes either text or JSON, so the two can never
 * disagree on a name or a value. docs/metrics.md describes every family.
 *
 * A scrape reads the shards' slots (metrics.c) and the few gauges owned
 * elsewhere (spool, memory) on the shard that got the request; nothing on
 * the message path waits for it.
 */
#include "tern/api_metrics.h"
#include "tern/fleet.h"
#include "tern/fleet_suppress.h"
#include "tern/http_server.h"
#include "tern/logrec.h"
#include "tern/metrics.h"
#include "tern/path_state.h"
#include "tern/reception.h"
#include "tern/shard.h"
#include "tern/spool.h"
#include "tern/warmup.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXPO_TLS_MAX 32

struct expo {
	struct buf *out;
	int rc; /* -ENOMEM once an append failed: the answer is a 500, not a truncated page */
	bool json;
	const char *family; /* open family, or NULL */
	bool first_family, first_sample;
};

struct label {
	const char *name, *value;
};

static const char *const outcome_names[METRICS_OUTCOME_COUNT] = {
    [METRICS_DELIVERED] = "delivered",
    [METRICS_TRANSIENT] = "transient_failure",
    [METRICS_BOUNCED] = "bounced",
    [METRICS_EXPIRED] = "expired",
};

/* ---- the two formats ----------------------------------------------------------------------- */

static void expo_printf(struct expo *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
expo_printf(struct expo *e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (buf_vprintf(e->out, fmt, ap) < 0)
		e->rc = -ENOMEM;
	va_end(ap);
}

static void
expo_put(struct expo *e, const char *s)
{
	if (buf_append_str(e->out, s) < 0)
		e->rc = -ENOMEM;
}

static void
expo_json_string(struct expo *e, const char *s)
{
	if (buf_append_json_string(e->out, s, strlen(s)) < 0)
		e->rc = -ENOMEM;
}

static void
format_value(double v, char out[40])
{
	if (isinf(v))
		snprintf(out, 40, "%s", v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) < 1e15)
		snprintf(out, 40, "%.0f", v);
	else
		snprintf(out, 40, "%.9g", v);
}

/* Prometheus label value: backslash, double quote and newline escaped. */
static void
prom_label_value(struct expo *e, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			expo_printf(e, "\\%c", *v);
		else if (*v == '\n')
			expo_put(e, "\\n");
		else
			expo_printf(e, "%c", *v);
	}
}

static void
expo_close_family(struct expo *e)
{
	if (e->json && e->family)
		expo_put(e, "]}");
	e->family = NULL;
}

static void
expo_family(struct expo *e, const char *name, const char *type, const char *help)
{
	expo_close_family(e);
	if (e->json) {
		expo_put(e, e->first_family ? "\n" : ",\n");
		expo_json_string(e, name);
		expo_printf(e, ":{\"type\":\"%s\",\"help\":", type);
		expo_json_string(e, help);
		expo_put(e, ",\"samples\":[");
	} else {
		expo_printf(e, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
	}
	e->family = name;
	e->first_family = false;
	e->first_sample = true;
}

static void
json_sample(struct expo *e, const char *suffix, const struct label *l, size_t n, const char *val)
{
	size_t i;

	expo_put(e, e->first_sample ? "{\"name\":\"" : ",{\"name\":\"");
	expo_printf(e, "%s%s\",\"labels\":{", e->family, suffix);
	for (i = 0; i < n; i++) {
		if (i > 0)
			expo_put(e, ",");
		expo_json_string(e, l[i].name);
		expo_put(e, ":");
		expo_json_string(e, l[i].value);
	}
	/* JSON has no infinity: an out-of-range value is a string, as in the text format. */
	if (strchr(val, 'I') != NULL)
		expo_printf(e, "},\"value\":\"%s\"}", val);
	else
		expo_printf(e, "},\"value\":%s}", val);
}

static void
expo_sample(struct expo *e, const char *suffix, const struct label *l, size_t n, double v)
{
	char val[40];
	size_t i;

	format_value(v, val);
	if (e->json) {
		json_sample(e, suffix, l, n, val);
	} else {
		expo_printf(e, "%s%s", e->family, suffix);
		for (i = 0; i < n; i++) {
			expo_printf(e, "%s%s=\"", i ? "," : "{", l[i].name);
			prom_label_value(e, l[i].value);
			expo_put(e, "\"");
		}
		expo_printf(e, "%s %s\n", n ? "}" : "", val);
	}
	e->first_sample = false;
}

static void
expo_single(struct expo *e, const char *name, const char *type, const char *help, double v)
{
	expo_family(e, name, type, help);
	expo_sample(e, "", NULL, 0, v);
}

/* ---- the families ------------------------------------------------------------------------- */

static const struct {
	enum metrics_counter c;
	const char *name, *help;
} counter_defs[] = {
    {METRICS_CONNECTIONS_IN, "tern_connections_in_total", "SMTP connections accepted."},
    {METRICS_CONNECTIONS_OUT, "tern_connections_out_total",
     "Outbound SMTP connections attempted (one per address tried)."},
    {METRICS_DNS_LOOKUPS, "tern_dns_lookups_total", "MX resolutions asked of the resolver."},
    {METRICS_DNS_CACHE_HITS, "tern_dns_cache_hits_total",
     "MX resolutions answered from the resolver's cache."},
    {METRICS_DKIM_SIGNATURES, "tern_dkim_signatures_total", "DKIM signatures made."},
    {METRICS_HTTP_REQUESTS, "tern_http_requests_total", "HTTP requests answered."},
    {METRICS_SHAPING_ACTIONS, "tern_shaping_actions_total",
     "Shaping automation rules that fired (ShapingAction records)."},
};

static const struct {
	enum metrics_outcome o;
	const char *name, *help;
} outcome_defs[] = {
    {METRICS_DELIVERED, "tern_messages_delivered_total", "Messages delivered (Delivery records)."},
    {METRICS_TRANSIENT, "tern_messages_transient_failures_total",
     "Delivery attempts that failed temporarily (TransientFailure records)."},
    {METRICS_BOUNCED, "tern_messages_bounced_total", "Messages bounced (Bounce and AdminBounce records)."},
    {METRICS_EXPIRED, "tern_messages_expired_total", "Messages expired (Expiration records)."},
};

static const struct {
	enum metrics_family f;
	const char *name, *label, *help;
} family_defs[] = {
    {METRICS_OUTCOME_BY_SITE, "tern_outcomes_by_site_total", "site",
     "Outcomes by destination site (provider), top values plus other."},
    {METRICS_OUTCOME_BY_SOURCE, "tern_outcomes_by_source_total", "source",
     "Outcomes by egress source, top values plus other."},
    {METRICS_OUTCOME_BY_POOL, "tern_outcomes_by_pool_total", "pool",
     "Outcomes by egress pool, top values plus other."},
    {METRICS_OUTCOME_BY_TENANT, "tern_outcomes_by_tenant_total", "tenant",
     "Outcomes by tenant, top values plus other."},
    {METRICS_OUTCOME_BY_CATEGORY, "tern_outcomes_by_category_total", "category",
     "Failed outcomes by bounce category (unclassified: no category), top values plus other."},
};

static const struct {
	enum metrics_histogram h;
	const char *name, *help;
} histogram_defs[] = {
    {METRICS_DELIVERY_LATENCY, "tern_delivery_latency_seconds",
     "Seconds from reception to delivery, bounce or expiry."},
    {METRICS_HOOK_TIME, "tern_hook_duration_seconds",
     "Seconds a policy hook ran, from its start to its end (waits included)."},
    {METRICS_SYNC_BATCH, "tern_spool_sync_batch_records", "Records per synced spool group commit."},
};

static void
expose_counters(struct expo *e)
{
	size_t i;

	for (i = 0; i < sizeof(counter_defs) / sizeof(counter_defs[0]); i++)
		expo_single(e, counter_defs[i].name, "counter", counter_defs[i].help,
			    (double)metrics_counter_total(counter_defs[i].c));
	for (i = 0; i < sizeof(outcome_defs) / sizeof(outcome_defs[0]); i++)
		expo_single(e, outcome_defs[i].name, "counter", outcome_defs[i].help,
			    (double)metrics_outcome_total(outcome_defs[i].o));
}

/* A family that counts one thing per value (n[0]), summed over the shards, as one label. */
static void
expose_counts(struct expo *e, enum metrics_family f, const char *name, const char *label,
	      const char *help)
{
	struct metrics_label_value v[METRICS_TOP_N + 1];
	size_t n = metrics_family_read(f, v), i;

	expo_family(e, name, "counter", help);
	for (i = 0; i < n; i++) {
		struct label l = {label, v[i].value};

		expo_sample(e, "", &l, 1, (double)v[i].n[0]);
	}
}

/* One sample per (value, outcome) that is not zero. */
static void
expose_family_values(struct expo *e, const struct metrics_label_value *v, size_t n,
		     const char *label)
{
	size_t i;
	int o;

	for (i = 0; i < n; i++) {
		for (o = 0; o < METRICS_OUTCOME_COUNT; o++) {
			struct label l[2] = {{label, v[i].value}, {"outcome", outcome_names[o]}};

			if (v[i].n[o] > 0)
				expo_sample(e, "", l, 2, (double)v[i].n[o]);
		}
	}
}

/*
 * A family whose values are "a\tb" pairs, as two labels; with_outcome adds
 * the outcome label, otherwise the family counts one outcome (o).
 */
struct pair_family {
	enum metrics_family f;
	const char *name, *help, *label_a, *label_b;
	bool with_outcome;
	enum metrics_outcome o;
};

static const struct pair_family pair_defs[] = {
    {METRICS_OUTCOME_BY_PATH, "tern_outcomes_by_path_total",
     "Outcomes by path (source and site), top paths plus other.", "source", "site", true, 0},
    {METRICS_BOUNCE_BY_SOURCE_CATEGORY, "tern_bounces_by_source_total",
     "Bounce records by egress source and bounce category, top pairs plus other.", "source",
     "category", false, METRICS_BOUNCED},
};

static void
expose_pair(struct expo *e, const struct pair_family *p, struct metrics_label_value *v)
{
	char *tab = strchr(v->value, '\t');
	const char *b = tab ? tab + 1 : "other";
	int o;

	if (tab)
		*tab = '\0';
	for (o = 0; o < METRICS_OUTCOME_COUNT; o++) {
		struct label l[3] = {
		    {p->label_a, v->value}, {p->label_b, b}, {"outcome", outcome_names[o]}};

		if (v->n[o] > 0 && (p->with_outcome || (enum metrics_outcome)o == p->o))
			expo_sample(e, "", l, p->with_outcome ? 3 : 2, (double)v->n[o]);
	}
}

static void
expose_pairs(struct expo *e, const struct pair_family *p)
{
	struct metrics_label_value v[METRICS_TOP_N + 1];
	size_t n = metrics_family_read(p->f, v), i;

	expo_family(e, p->name, "counter", p->help);
	for (i = 0; i < n; i++)
		expose_pair(e, p, &v[i]);
}

static void
expose_families(struct expo *e)
{
	struct metrics_label_value v[METRICS_TOP_N + 1];
	size_t i, n;

	expose_counts(e, METRICS_RECEIVED_BY_LISTENER, "tern_messages_received_total", "listener",
		      "Messages accepted (durable in the spool), by listener.");
	for (i = 0; i < sizeof(family_defs) / sizeof(family_defs[0]); i++) {
		n = metrics_family_read(family_defs[i].f, v);
		expo_family(e, family_defs[i].name, "counter", family_defs[i].help);
		expose_family_values(e, v, n, family_defs[i].label);
	}
	for (i = 0; i < sizeof(pair_defs) / sizeof(pair_defs[0]); i++)
		expose_pairs(e, &pair_defs[i]);
	expose_counts(e, METRICS_COMPLAINTS_BY_SOURCE, "tern_complaints_by_source_total", "source",
		      "Complaints (Feedback records) by egress source, top values plus other.");
}

static void
expose_histogram(struct expo *e, enum metrics_histogram h, const char *name, const char *help)
{
	struct metrics_histogram_read r;
	uint64_t cum = 0;
	size_t b;

	metrics_histogram_read(h, &r);
	expo_family(e, name, "histogram", help);
	for (b = 0; b <= r.n_bounds; b++) {
		char le[40];
		struct label l = {"le", le};

		format_value(b < r.n_bounds ? r.bounds[b] : INFINITY, le);
		cum += r.buckets[b];
		expo_sample(e, "_bucket", &l, 1, (double)cum);
	}
	expo_sample(e, "_sum", NULL, 0, r.sum);
	expo_sample(e, "_count", NULL, 0, (double)r.count);
}

static void
expose_queues(struct expo *e, enum metrics_queue_kind k, const char *what)
{
	struct metrics_queue_size top[METRICS_TOP_N];
	uint64_t total, count;
	size_t n = metrics_queues_read(k, top, &total, &count), i;
	char name[64], help[128];

	snprintf(name, sizeof(name), "tern_%s_queue_messages", what);
	snprintf(help, sizeof(help), "Messages in the largest %s queues (top %d).", what,
		 METRICS_TOP_N);
	expo_family(e, name, "gauge", help);
	for (i = 0; i < n; i++) {
		struct label l = {"queue", top[i].name};

		expo_sample(e, "", &l, 1, (double)top[i].size);
	}
	snprintf(name, sizeof(name), "tern_%s_messages", what);
	snprintf(help, sizeof(help), "Messages in all %s queues.", what);
	expo_single(e, name, "gauge", help, (double)total);
	snprintf(name, sizeof(name), "tern_%s_queues", what);
	snprintf(help, sizeof(help), "Number of %s queues.", what);
	expo_single(e, name, "gauge", help, (double)count);
}

static void
expose_oldest(struct expo *e)
{
	double oldest = metrics_queues_oldest(METRICS_QUEUE_SCHEDULED);
	double now = util_wallclock();

	expo_single(e, "tern_scheduled_oldest_message_age_seconds", "gauge",
		    "Age of the oldest message in the scheduled queues (0: none).",
		    oldest > 0 && now > oldest ? now - oldest : 0);
}

static void
expose_spool(struct expo *e)
{
	struct spool *sp = reception_get_spool();
	struct spool_stats st;

	if (sp == NULL)
		return;
	spool_stats(sp, &st);
	expo_single(e, "tern_spool_sync_batches_total", "counter",
		    "Synced group commits (one fsync each).", (double)st.batches);
	expo_single(e, "tern_spool_records_total", "counter",
		    "Records written by synced group commits.", (double)st.records);
	expo_single(e, "tern_spool_write_failures_total", "counter",
		    "Spool writes completed with an error.", (double)st.failed);
	expo_single(e, "tern_spool_pending_records", "gauge",
		    "Records waiting for the spool writer.", (double)st.pending);
	if (st.free_bytes != UINT64_MAX)
		expo_single(e, "tern_spool_disk_free_bytes", "gauge",
			    "Free bytes on the fullest spool partition's filesystem.",
			    (double)st.free_bytes);
	if (st.size_bytes != 0)
		expo_single(e, "tern_spool_disk_size_bytes", "gauge",
			    "Size of the filesystem of the fullest spool partition.",
			    (double)st.size_bytes);
	expo_single(e, "tern_spool_low", "gauge",
		    "1 while a spool partition is below its free-space floor.", st.low ? 1 : 0);
	expo_single(e, "tern_spool_kept_bytes", "gauge",
		    "RAM held by messages kept for their first attempt.", (double)st.kept_bytes);
	expo_single(e, "tern_spool_kept_taken_total", "counter",
		    "First attempts that took their message from RAM, not the spool.",
		    (double)st.kept_taken);
	expo_single(e, "tern_spool_kept_dropped_total", "counter",
		    "Messages kept for a first attempt and dropped unused (budget full, or changed).",
		    (double)st.kept_dropped);
}

static void
expose_tls(struct expo *e)
{
	struct metrics_tls_expiry t[EXPO_TLS_MAX];
	size_t n = metrics_tls_expiry_read(t, EXPO_TLS_MAX), i;

	expo_family(e, "tern_tls_certificate_expiry_timestamp_seconds", "gauge",
		    "When a TLS listener's certificate expires (Unix time).");
	for (i = 0; i < n; i++) {
		struct label l = {"listener", t[i].listener};

		expo_sample(e, "", &l, 1, t[i].not_after);
	}
}

static void
expose_log_hooks(struct expo *e)
{
	struct metrics_log_hook_lag h[METRICS_LOG_HOOKS_MAX];
	size_t n = metrics_log_hook_lag_read(h, METRICS_LOG_HOOKS_MAX), i;

	expo_family(e, "tern_log_hook_lag_records", "gauge",
		    "Records written to the local log that a log hook has not delivered yet.");
	for (i = 0; i < n; i++) {
		struct label l = {"hook", h[i].hook};

		expo_sample(e, "", &l, 1, (double)h[i].records);
	}
	expo_family(e, "tern_log_hook_lag_seconds", "gauge",
		    "Age of the oldest record a log hook has not delivered yet (0 when caught up).");
	for (i = 0; i < n; i++) {
		struct label l = {"hook", h[i].hook};

		expo_sample(e, "", &l, 1, h[i].seconds);
	}
}

static uint64_t
rss_bytes(void)
{
	unsigned long long size = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f == NULL)
		return 0;
	if (fscanf(f, "%llu %llu", &size, &resident) != 2)
		resident = 0;
	fclose(f);
	return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void
expose_process(struct expo *e)
{
	const char *rev = logrec_policy_revision();
	struct label l = {"revision", rev ? rev : ""};

	expo_single(e, "tern_policy_epoch", "gauge", "The policy epoch serving now.",
		    (double)metrics_policy_epoch());
	expo_single(e, "tern_policy_reload_failures_total", "counter",
		    "Policy reloads that failed (the old epoch kept running).",
		    (double)metrics_policy_reload_failures());
	expo_family(e, "tern_policy_info", "gauge", "The policy revision serving now (value 1).");
	expo_sample(e, "", &l, 1, 1);
	expo_single(e, "tern_process_resident_memory_bytes", "gauge",
		    "Resident memory of ternd (from /proc/self/statm).", (double)rss_bytes());
	expo_single(e, "tern_shards", "gauge", "Event-loop shards (threads).",
		    (double)shard_count());
}

/* Fleet mode only: whether Redis answers, and how many nodes share the fleet's limits. */
static void
expose_fleet(struct expo *e)
{
	if (!fleet_configured())
		return;
	expo_single(e, "tern_redis_up", "gauge",
		    "Whether this node's Redis connection is up (fleet mode).",
		    fleet_redis_up() ? 1 : 0);
	expo_single(e, "tern_fleet_nodes", "gauge",
		    "Nodes of the fleet alive as last counted (or fallback_nodes when set).",
		    (double)fleet_nodes());
}

/* Fleet mode only: the suppression list's changes from and to the fleet (fleet_suppress.h). */
static void
expose_fleet_suppress(struct expo *e)
{
	struct fleet_suppress_stats st;

	if (!fleet_configured())
		return;
	fleet_suppress_stats(&st);
	expo_single(e, "tern_fleet_suppress_applied_total", "counter",
		    "Other nodes' suppression changes written into this node's list.",
		    (double)st.applied);
	expo_single(e, "tern_fleet_suppress_pushed_total", "counter",
		    "This node's suppression changes taken by Redis.", (double)st.pushed);
	expo_single(e, "tern_fleet_suppress_pending", "gauge",
		    "This node's suppression changes kept in its spool until Redis takes them.",
		    (double)st.pending);
	expo_single(e, "tern_fleet_suppress_lag_seconds", "gauge",
		    "Seconds since this node last read the fleet's suppression stream to its end.",
		    st.lag);
}

/* One family of the warming sources' state, read from the warm-up table at scrape time. */
struct warmup_family {
	struct expo *e;
	int field; /* 0 stage, 1 cap, 2 sent, 3 paused */
};

static int
warmup_sample(void *arg, const struct warmup_view *v)
{
	struct warmup_family *f = arg;
	struct label l = {"source", v->source};
	const double values[] = {v->stage, v->cap, v->sent, v->paused ? 1 : 0};

	expo_sample(f->e, "", &l, 1, values[f->field]);
	return 0;
}

static void
expose_warmup(struct expo *e)
{
	static const char *const names[][2] = {
	    {"tern_warmup_stage", "A warming source's stage (0-based; -1 before its start)."},
	    {"tern_warmup_cap", "Messages a warming source may take this period (-1: ramp ended)."},
	    {"tern_warmup_sent", "Messages a warming source took this period."},
	    {"tern_warmup_paused", "1 while a warming source's ramp is paused (WarmupPaused)."},
	};
	struct warmup_family f = {e, 0};

	for (f.field = 0; f.field < 4; f.field++) {
		expo_family(e, names[f.field][0], "gauge", names[f.field][1]);
		warmup_foreach(warmup_sample, &f);
	}
}

static void
expose_all(struct expo *e)
{
	size_t i;

	expose_counters(e);
	expose_families(e);
	for (i = 0; i < sizeof(histogram_defs) / sizeof(histogram_defs[0]); i++)
		expose_histogram(e, histogram_defs[i].h, histogram_defs[i].name,
				 histogram_defs[i].help);
	expose_queues(e, METRICS_QUEUE_SCHEDULED, "scheduled");
	expose_queues(e, METRICS_QUEUE_READY, "ready");
	expose_oldest(e);
	expose_spool(e);
	expose_tls(e);
	expose_warmup(e);
	expose_log_hooks(e);
	expose_process(e);
	expose_fleet(e);
	expose_fleet_suppress(e);
	expo_single(e, "tern_shaping_states", "gauge",
		    "Path suspensions and overrides set by shaping automation, not yet recovered.",
		    (double)path_state_count(util_wallclock()));
	expo_close_family(e);
}

/* ---- endpoints ---------------------------------------------------------------------------- */

void
api_metrics_handle(struct http_request *req)
{
	struct buf out;
	struct expo e = {.out = &out, .first_family = true};

	buf_init(&out);
	expose_all(&e);
	if (e.rc < 0)
		http_request_reply_error(req, 500, "out of memory");
	else
		http_request_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", out.data,
				   out.len);
	buf_deinit(&out);
}

/* [[t, delivered, transient, bounced, expired], ...]: totals each second, oldest first. */
static void
append_history(struct expo *e)
{
	struct metrics_history_point *h = calloc(METRICS_HISTORY_SECONDS, sizeof(*h));
	size_t n = h ? metrics_history_read(h) : 0, i;
	int o;

	if (h == NULL)
		e->rc = -ENOMEM;
	expo_put(e, ",\n\"history\":[");
	for (i = 0; i < n; i++) {
		expo_printf(e, "%s[%.3f", i ? "," : "", h[i].t);
		for (o = 0; o < METRICS_OUTCOME_COUNT; o++)
			expo_printf(e, ",%llu", (unsigned long long)h[i].outcomes[o]);
		expo_put(e, "]");
	}
	expo_put(e, "]");
	free(h); h = NULL;
}

void
api_metrics_json_handle(struct http_request *req)
{
	struct buf out;
	struct expo e = {.out = &out, .json = true, .first_family = true};
	const char *history = http_request_arg(req, "history");

	buf_init(&out);
	expo_put(&e, "{\"metrics\":{");
	expose_all(&e);
	expo_put(&e, "}");
	if (history != NULL && strcmp(history, "0") != 0)
		append_history(&e);
	expo_put(&e, "}\n");
	if (e.rc < 0)
		http_request_reply_error(req, 500, "out of memory");
	else
		http_request_reply_json(req, 200, out.data, out.len);
	buf_deinit(&out);
}
