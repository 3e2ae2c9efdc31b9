// SPDX-License-Identifier: MIT
/*
 * IP warm-up. Every source selection of every shard asks about the source
 * it picked, and a cap must hold exactly across shards, so the state is one
 * table under one mutex whose critical sections are a lookup and a few
 * comparisons; with no warming source the question is one atomic load.
 *
 * A stage is a count of periods, not a date: a paused ramp stays at its
 * stage while days pass, and resumes from there. So the state keeps the
 * stage and the last period index seen, and advances the stage by the
 * periods that passed while it was not paused.
 *
 * The state is saved to <spool>/warmup.json rather than to a RocksDB column
 * family: it is a few hundred bytes per source, changes once per period (and
 * on a pause), must be readable by an operator, and admin.json already set
 * this house's pattern (temporary file, fsync, rename). The counts of a
 * period are saved when its cap is reached and at a clean stop, so a crash
 * can at worst let a source send one period's count again, never reopen a
 * cap it had reached.
 *
 * In fleet mode the caps are the fleet's (fleet_quota.h): a source's count
 * of a period, and each of its provider counts, is a Redis key from which
 * the nodes reserve permits in batches, asked for again when half a batch
 * is left, so that selection rarely waits for Redis and never calls it under
 * the lock. While Redis is away a node sends up to the cap divided by the
 * fleet's node count (its own count this period), and owes what it sent so
 * to the next reservation. Stages and pauses stay each node's own.
 */
#include "tern/warmup.h"
#include "tern/admin.h"
#include "tern/fleet.h"
#include "tern/fleet_quota.h"
#include "tern/json.h"
#include "tern/log.h"
#include "tern/logrec.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define WARMUP_FILE "warmup.json"

enum { WIN_DELIVERED, WIN_BOUNCED, WIN_COMPLAINTS, WIN_KINDS };

/* Fleet mode: this node's part of a count the fleet shares, for the current period. */
struct warmup_share {
	int permits;  /* reserved in Redis, not yet spent */
	int debt;     /* sent while Redis was away, not yet counted there */
	bool asking;  /* a reservation is on its way */
	bool reached; /* Redis says the fleet reached the cap */
};

struct warmup_source {
	struct warmup_plan plan;
	bool planned; /* in the current plans; state without a plan is kept for a reload */
	bool started; /* stage and period set */
	int stage;
	long long period; /* index of the period last seen; -1 before the start */
	double sent;
	double provider_sent[WARMUP_MAX_PROVIDERS];
	struct warmup_share share, provider_share[WARMUP_MAX_PROVIDERS];
	bool paused;
	char reason[200];
	double win_start;
	double cur[WIN_KINDS], prev[WIN_KINDS];
};

static pthread_mutex_t warmup_lock = PTHREAD_MUTEX_INITIALIZER;
/* Serialises saves, so that an older snapshot never lands after a newer one. */
static pthread_mutex_t warmup_save_lock = PTHREAD_MUTEX_INITIALIZER;
static struct warmup_source warmup_sources[WARMUP_MAX_SOURCES];
static size_t warmup_n;
static atomic_size_t warmup_planned;
#define WARMUP_LIMITS_DEFAULT {0.015, 0.0015, 86400, 100}
static struct warmup_limits warmup_lim = WARMUP_LIMITS_DEFAULT;
static char *warmup_path;

void
warmup_limits_defaults(struct warmup_limits *l)
{
	*l = (struct warmup_limits)WARMUP_LIMITS_DEFAULT;
}

/* ---- pure ------------------------------------------------------------------------------------ */

double
warmup_plan_cap(const struct warmup_plan *p, int stage)
{
	double cap;

	if (stage < 0)
		return 0;
	if (p->n_caps > 0)
		return (size_t)stage < p->n_caps ? p->caps[stage] : -1;
	cap = floor(p->first * pow(p->growth, stage));
	return p->max > 0 && cap >= p->max ? -1 : cap;
}

static bool
host_ends_with(const char *host, size_t len, const char *suffix)
{
	size_t n = strlen(suffix);

	if (len > 0 && host[len - 1] == '.')
		len--;
	if (n > 0 && suffix[n - 1] == '.')
		n--;
	return n <= len && strncasecmp(host + len - n, suffix, n) == 0;
}

/* The provider cap whose suffix ends a host of site ("a.,b."), or -1. */
static int
provider_of(const struct warmup_plan *p, const char *site)
{
	const char *h, *end;
	size_t i;

	for (h = site; h && *h; h = *end ? end + 1 : end) {
		end = strchr(h, ',');
		if (end == NULL)
			end = h + strlen(h);
		for (i = 0; i < p->n_providers; i++)
			if (host_ends_with(h, (size_t)(end - h), p->providers[i].suffix))
				return (int)i;
	}
	return -1;
}

/* ---- state (caller holds warmup_lock) -------------------------------------------------------- */

static struct warmup_source *
find(const char *source)
{
	size_t i;

	for (i = 0; i < warmup_n; i++)
		if (strcmp(warmup_sources[i].plan.source, source) == 0)
			return &warmup_sources[i];
	return NULL;
}

static struct warmup_source *
find_planned(const char *source)
{
	struct warmup_source *s = find(source);

	return s && s->planned ? s : NULL;
}

static long long
period_at(const struct warmup_plan *p, double now)
{
	return now < p->start ? -1 : (long long)floor((now - p->start) / p->period);
}

/* Move s to now's period: a new period empties the counts and, unless paused, moves the stage. */
static void
roll(struct warmup_source *s, double now)
{
	long long idx = period_at(&s->plan, now);
	long long from = s->period < 0 ? 0 : s->period;

	if (!s->started) {
		s->stage = idx < 0 ? 0 : (int)idx;
		s->period = idx;
		s->started = true;
		return;
	}
	if (idx == s->period)
		return;
	if (idx > s->period && !s->paused && idx > from)
		s->stage += (int)(idx - from);
	if (s->stage > WARMUP_MAX_STAGES * 16)
		s->stage = WARMUP_MAX_STAGES * 16; /* far past any plan; keeps pow() finite */
	s->period = idx;
	s->sent = 0;
	memset(s->provider_sent, 0, sizeof(s->provider_sent));
	memset(&s->share, 0, sizeof(s->share));
	memset(s->provider_share, 0, sizeof(s->provider_share));
}

/* The cap now: 0 before the start, -1 once the ramp ended. */
static double
cap_now(struct warmup_source *s, double now)
{
	roll(s, now);
	return s->period < 0 ? 0 : warmup_plan_cap(&s->plan, s->stage);
}

static void
window_roll(struct warmup_source *s, double now)
{
	double w = warmup_lim.window;
	double k;

	if (s->win_start == 0 || now < s->win_start)
		s->win_start = now;
	if (now < s->win_start + w)
		return;
	k = floor((now - s->win_start) / w);
	if (k == 1)
		memcpy(s->prev, s->cur, sizeof(s->prev));
	else
		memset(s->prev, 0, sizeof(s->prev));
	memset(s->cur, 0, sizeof(s->cur));
	s->win_start += k * w;
}

/* Outcomes of kind over the rolling window: this bucket, and the part of the last still inside. */
static double
window_count(const struct warmup_source *s, int kind, double now)
{
	double left = 1 - (now - s->win_start) / warmup_lim.window;

	return s->cur[kind] + s->prev[kind] * (left > 0 ? left : 0);
}

static void
view_of(struct warmup_source *s, double now, struct warmup_view *v)
{
	double d = window_count(s, WIN_DELIVERED, now), b = window_count(s, WIN_BOUNCED, now);
	double c = window_count(s, WIN_COMPLAINTS, now);

	memset(v, 0, sizeof(*v));
	snprintf(v->source, sizeof(v->source), "%s", s->plan.source);
	v->cap = cap_now(s, now);
	v->stage = s->period < 0 ? -1 : s->stage;
	v->sent = s->sent;
	v->next = s->plan.start + (double)(s->period + 1) * s->plan.period;
	v->paused = s->paused;
	snprintf(v->reason, sizeof(v->reason), "%s", s->reason);
	v->window_messages = d + b;
	v->bounce_rate = d + b > 0 ? b / (d + b) : 0;
	v->complaint_rate = d > 0 ? c / d : 0;
}

/* ---- saving ---------------------------------------------------------------------------------- */

static void
source_json(const struct warmup_source *s, struct buf *b)
{
	size_t i;

	buf_append_str(b, "{\"source\":");
	buf_append_json_string(b, s->plan.source, strlen(s->plan.source));
	buf_printf(b, ",\"stage\":%d,\"period\":%lld,\"sent\":%.0f,\"paused\":%s,\"reason\":",
		   s->stage, s->period, s->sent, s->paused ? "true" : "false");
	buf_append_json_string(b, s->reason, strlen(s->reason));
	buf_printf(b, ",\"win_start\":%.3f,\"cur\":[%.0f,%.0f,%.0f],\"prev\":[%.0f,%.0f,%.0f]",
		   s->win_start, s->cur[0], s->cur[1], s->cur[2], s->prev[0], s->prev[1],
		   s->prev[2]);
	buf_append_str(b, ",\"providers\":{");
	for (i = 0; i < s->plan.n_providers; i++) {
		if (i > 0)
			buf_append_char(b, ',');
		buf_append_json_string(b, s->plan.providers[i].name,
				       strlen(s->plan.providers[i].name));
		buf_printf(b, ":%.0f", s->provider_sent[i]);
	}
	buf_append_str(b, "}}");
}

/*
 * Snapshot under the lock, write outside it: other shards' source selection
 * never waits for this fsync (the calling shard does, once per period).
 */
static void
save(void)
{
	struct buf b;
	size_t i;
	bool first = true;
	int rc;

	pthread_mutex_lock(&warmup_save_lock);
	buf_init(&b);
	pthread_mutex_lock(&warmup_lock);
	buf_append_str(&b, "{\"sources\":[");
	for (i = 0; i < warmup_n; i++) {
		if (!warmup_sources[i].started)
			continue;
		if (!first)
			buf_append_char(&b, ',');
		first = false;
		source_json(&warmup_sources[i], &b);
	}
	buf_append_str(&b, "]}\n");
	pthread_mutex_unlock(&warmup_lock);
	if (warmup_path) {
		rc = b.data ? util_write_file_synced(warmup_path, b.data, b.len) : -ENOMEM;
		if (rc < 0)
			log_ratelimited(LOG_LEVEL_ERROR, "warmup", "cannot save %s: %s",
					warmup_path, strerror(-rc));
	}
	buf_deinit(&b);
	pthread_mutex_unlock(&warmup_save_lock);
}

/* Counts loaded or kept under provider names move to the indexes the new plan gives those names. */
static void
adopt_plan(struct warmup_source *s, const struct warmup_plan *p)
{
	double sent[WARMUP_MAX_PROVIDERS] = {0};
	size_t i, j;

	for (i = 0; i < p->n_providers; i++)
		for (j = 0; j < s->plan.n_providers; j++)
			if (strcmp(p->providers[i].name, s->plan.providers[j].name) == 0)
				sent[i] = s->provider_sent[j];
	s->plan = *p;
	memcpy(s->provider_sent, sent, sizeof(sent));
	/* Permits reserved under the old indexes lapse: the fleet may fall short, never over. */
	memset(s->provider_share, 0, sizeof(s->provider_share));
	s->planned = true;
}

/* ---- loading --------------------------------------------------------------------------------- */

static double
num_member(const struct json_span *obj, const char *key)
{
	struct json_span v;
	double d = 0;

	if (json_object_get(obj, key, &v) == 0)
		json_number_value(&v, &d);
	return d;
}

static int
window_item(void *arg, size_t i, const struct json_span *v)
{
	double *out = arg;

	if (i < WIN_KINDS)
		json_number_value(v, &out[i]);
	return 0;
}

/* Provider counts are kept by name until a plan says which index each name has. */
static int
provider_item(void *arg, const char *key, size_t keylen, const struct json_span *v)
{
	struct warmup_source *s = arg;
	size_t i = s->plan.n_providers;

	if (i >= WARMUP_MAX_PROVIDERS || keylen >= sizeof(s->plan.providers[i].name))
		return 0;
	memcpy(s->plan.providers[i].name, key, keylen);
	s->plan.providers[i].name[keylen] = '\0';
	json_number_value(v, &s->provider_sent[i]);
	s->plan.n_providers++;
	return 0;
}

/*
 * The saved state of one source. The plans may be there already (init runs
 * before the spool opens), so the state joins its source's entry; without
 * one it waits for a plan, its provider counts kept under their names.
 */
static void
adopt_state(const struct warmup_source *loaded)
{
	struct warmup_source *s = find(loaded->plan.source);
	struct warmup_plan plan;

	if (s == NULL) {
		if (warmup_n < WARMUP_MAX_SOURCES)
			warmup_sources[warmup_n++] = *loaded;
		return;
	}
	plan = s->plan;
	*s = *loaded;
	s->plan = loaded->plan;
	adopt_plan(s, &plan);
}

static int
source_item(void *arg, size_t i, const struct json_span *o)
{
	struct warmup_source *s = arg;
	struct json_span v;

	memset(s, 0, sizeof(*s));
	if (o->type != JSON_OBJECT || json_object_get(o, "source", &v) < 0 ||
	    admin_json_string(&v, s->plan.source, sizeof(s->plan.source)) < 0)
		return 0;
	s->started = true;
	s->stage = (int)num_member(o, "stage");
	s->period = (long long)num_member(o, "period");
	s->sent = num_member(o, "sent");
	s->win_start = num_member(o, "win_start");
	if (json_object_get(o, "paused", &v) == 0)
		s->paused = v.type == JSON_TRUE;
	if (json_object_get(o, "reason", &v) == 0)
		admin_json_string(&v, s->reason, sizeof(s->reason));
	if (json_object_get(o, "cur", &v) == 0 && v.type == JSON_ARRAY)
		json_array_foreach(&v, window_item, s->cur);
	if (json_object_get(o, "prev", &v) == 0 && v.type == JSON_ARRAY)
		json_array_foreach(&v, window_item, s->prev);
	if (json_object_get(o, "providers", &v) == 0 && v.type == JSON_OBJECT)
		json_object_foreach(&v, provider_item, s);
	adopt_state(s);
	return 0;
}

int
warmup_open(const char *spool_dir, struct tern_err *err)
{
	static struct warmup_source loaded; /* a few KB: not on a thread's stack */
	struct json_span doc, v;
	struct stat st;
	char *text = NULL;
	int fd, rc = 0;

	free(warmup_path);
	if (asprintf(&warmup_path, "%s/%s", spool_dir, WARMUP_FILE) < 0) {
		warmup_path = NULL;
		tern_err_set(err, 0, "", "out of memory");
		return -ENOMEM;
	}
	fd = open(warmup_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0) {
		tern_err_set(err, 0, "", "cannot read %s: %s", warmup_path, strerror(errno));
		return -EIO;
	}
	if (fstat(fd, &st) < 0 || (text = malloc((size_t)st.st_size + 1)) == NULL ||
	    read(fd, text, (size_t)st.st_size) != st.st_size)
		rc = -EIO;
	close(fd);
	pthread_mutex_lock(&warmup_lock);
	if (rc == 0 && json_parse_span(text, (size_t)st.st_size, &doc, err) == 0 &&
	    json_object_get(&doc, "sources", &v) == 0 && v.type == JSON_ARRAY)
		json_array_foreach(&v, source_item, &loaded);
	else
		rc = -EINVAL;
	pthread_mutex_unlock(&warmup_lock);
	free(text);
	if (rc < 0) {
		tern_err_set(err, 0, "", "%s is not a warm-up state file; move it away to start",
			     warmup_path);
		/* Never overwrite it at close: the operator may want what it held. */
		free(warmup_path);
		warmup_path = NULL;
	}
	return rc;
}

void
warmup_close(void)
{
	save();
	pthread_mutex_lock(&warmup_lock);
	warmup_n = 0;
	atomic_store(&warmup_planned, 0);
	pthread_mutex_unlock(&warmup_lock);
	free(warmup_path);
	warmup_path = NULL;
}

/* ---- plans ----------------------------------------------------------------------------------- */

int
warmup_configure(const struct warmup_plan *plans, size_t n, const struct warmup_limits *l,
		 struct tern_err *err)
{
	struct warmup_source *s;
	size_t i;
	int rc = 0;

	pthread_mutex_lock(&warmup_lock);
	for (i = 0; i < warmup_n; i++)
		warmup_sources[i].planned = false;
	for (i = 0; i < n && rc == 0; i++) {
		s = find(plans[i].source);
		if (s == NULL && warmup_n < WARMUP_MAX_SOURCES) {
			s = &warmup_sources[warmup_n++];
			memset(s, 0, sizeof(*s));
		}
		if (s == NULL) {
			tern_err_set(err, 0, "", "more than %d warming sources", WARMUP_MAX_SOURCES);
			rc = -ENOSPC;
		} else {
			adopt_plan(s, &plans[i]);
		}
	}
	warmup_lim = *l;
	atomic_store(&warmup_planned, rc == 0 ? n : 0);
	pthread_mutex_unlock(&warmup_lock);
	return rc;
}

/* ---- the questions --------------------------------------------------------------------------- */

/* Fleet mode: a reservation to ask for once the lock is released (provider "": the source's count). */
struct warmup_ask {
	char source[64];
	char provider[64];
	long long period;
	double cap, ttl;
	int debt, want;
};

#define WARMUP_ASKS 2 /* the source's count and one provider's */

/* The share of s for provider name ("": the source's own), or NULL when the plan has none. */
static struct warmup_share *
share_named(struct warmup_source *s, const char *name)
{
	size_t i;

	if (name[0] == '\0')
		return &s->share;
	for (i = 0; i < s->plan.n_providers; i++)
		if (strcmp(s->plan.providers[i].name, name) == 0)
			return &s->provider_share[i];
	return NULL;
}

/* Whether a count at sent of cap has room for one more: this node's alone, or the fleet's. */
static bool
room(const struct warmup_share *sh, double cap, double sent)
{
	if (cap <= 0)
		return false; /* before the start: nothing to ask the fleet for */
	if (!fleet_configured())
		return sent < cap;
	if (sh->permits > 0)
		return true;
	if (sh->reached || fleet_quota_up())
		return false; /* a reservation is asked for (or on its way) */
	return sent < floor(cap / fleet_nodes());
}

/* Caller holds the lock: reserve more for sh once the lock is released, unless it waits already. */
static void
want_more(struct warmup_source *s, struct warmup_share *sh, const char *provider, double cap,
	  struct warmup_ask *asks, size_t *n_asks)
{
	struct warmup_ask *a;

	if (!fleet_configured() || sh->asking || sh->reached || !fleet_quota_up())
		return;
	a = &asks[(*n_asks)++];
	*a = (struct warmup_ask){.period = s->period, .cap = cap, .ttl = 2 * s->plan.period + 60,
				 .debt = sh->debt, .want = fleet_quota_batch(cap)};
	snprintf(a->source, sizeof(a->source), "%s", s->plan.source);
	snprintf(a->provider, sizeof(a->provider), "%s", provider);
	sh->debt = 0;
	sh->asking = true;
}

/* Caller holds the lock: spend one of sh (a permit, or a debt while Redis is away). */
static void
spend(struct warmup_source *s, struct warmup_share *sh, const char *provider, double cap,
      struct warmup_ask *asks, size_t *n_asks)
{
	if (!fleet_configured())
		return;
	if (sh->permits > 0)
		sh->permits--;
	else
		sh->debt++;
	/* Half a batch left: the next one is asked for before selection has to wait for it. */
	if (sh->permits <= fleet_quota_batch(cap) / 2)
		want_more(s, sh, provider, cap, asks, n_asks);
}

/* Caller holds the lock: count one message for source to site, or say it is at a cap. */
static bool
take_locked(struct warmup_source *s, const char *site, double now, bool *reached,
	    struct warmup_ask *asks, size_t *n_asks)
{
	double cap = cap_now(s, now);
	const char *pname;
	int p;

	if (cap < 0)
		return true;
	p = provider_of(&s->plan, site);
	pname = p >= 0 ? s->plan.providers[p].name : "";
	if (!room(&s->share, cap, s->sent)) {
		want_more(s, &s->share, "", cap, asks, n_asks);
		return false;
	}
	if (p >= 0 && !room(&s->provider_share[p], s->plan.providers[p].cap, s->provider_sent[p])) {
		want_more(s, &s->provider_share[p], pname, s->plan.providers[p].cap, asks, n_asks);
		return false;
	}
	s->sent++;
	spend(s, &s->share, "", cap, asks, n_asks);
	if (p >= 0) {
		s->provider_sent[p]++;
		spend(s, &s->provider_share[p], pname, s->plan.providers[p].cap, asks, n_asks);
	}
	*reached = s->sent >= cap;
	return true;
}

/* Caller holds the lock: the reply to a (granted < 0: none came; its debt is owed again). */
static void
apply_reply(const struct warmup_ask *a, int granted)
{
	struct warmup_source *s = find_planned(a->source);
	struct warmup_share *sh;

	/* A reply for a period gone by is dropped: those permits lapsed with it. */
	if (s == NULL || s->period != a->period || (sh = share_named(s, a->provider)) == NULL)
		return;
	sh->asking = false;
	if (granted < 0) {
		sh->debt += a->debt;
		return;
	}
	sh->permits += granted;
	sh->reached = granted < a->want;
}

/* A reservation's reply, on the shard that asked. */
static void
reserved(void *arg, int granted)
{
	pthread_mutex_lock(&warmup_lock);
	apply_reply(arg, granted);
	pthread_mutex_unlock(&warmup_lock);
	free(arg);
}

/* Send the reservations take_locked() wanted; one that cannot go is undone. */
static void
ask_all(const struct warmup_ask *asks, size_t n)
{
	char name[300];
	struct warmup_ask *a;
	size_t i;

	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "warmup:%s:%lld%s%s", asks[i].source, asks[i].period,
			 asks[i].provider[0] ? ":" : "", asks[i].provider);
		a = malloc(sizeof(*a));
		if (a != NULL) {
			*a = asks[i];
			if (fleet_quota_reserve(name, a->cap, a->debt, a->want, a->ttl, reserved,
						a) == 0)
				continue;
			free(a);
		}
		pthread_mutex_lock(&warmup_lock);
		apply_reply(&asks[i], -1);
		pthread_mutex_unlock(&warmup_lock);
	}
}

bool
warmup_take(const char *source, const char *site)
{
	struct warmup_ask asks[WARMUP_ASKS];
	struct warmup_source *s;
	bool ok = true, reached = false;
	size_t n_asks = 0;

	if (atomic_load_explicit(&warmup_planned, memory_order_relaxed) == 0)
		return true;
	pthread_mutex_lock(&warmup_lock);
	s = find_planned(source);
	if (s)
		ok = take_locked(s, site, util_wallclock(), &reached, asks, &n_asks);
	pthread_mutex_unlock(&warmup_lock);
	ask_all(asks, n_asks);
	if (reached)
		save();
	return ok;
}

double
warmup_wait(const char *source)
{
	struct warmup_source *s;
	struct warmup_view v;
	double now = util_wallclock(), wait = 0;

	if (atomic_load_explicit(&warmup_planned, memory_order_relaxed) == 0)
		return 0;
	pthread_mutex_lock(&warmup_lock);
	s = find_planned(source);
	if (s) {
		view_of(s, now, &v);
		if (v.cap >= 0 && (v.sent >= v.cap || s->share.reached))
			wait = v.next - now;
	}
	pthread_mutex_unlock(&warmup_lock);
	return wait > 0 ? wait : 0;
}

static int
outcome_kind(const char *type)
{
	if (strcmp(type, "Delivery") == 0)
		return WIN_DELIVERED;
	if (strcmp(type, "Bounce") == 0)
		return WIN_BOUNCED;
	if (strcmp(type, "Feedback") == 0)
		return WIN_COMPLAINTS;
	return -1;
}

/* Caller holds the lock: pause s when a rate over the window passed its limit; true when it did. */
static bool
judge(struct warmup_source *s, double now, struct warmup_view *v)
{
	view_of(s, now, v);
	if (s->paused || v->cap < 0 || v->window_messages < warmup_lim.min_messages)
		return false;
	if (v->bounce_rate > warmup_lim.max_bounce_rate)
		snprintf(s->reason, sizeof(s->reason),
			 "hard-bounce rate %.2f%% over %.0f messages passed %.2f%%",
			 v->bounce_rate * 100, v->window_messages, warmup_lim.max_bounce_rate * 100);
	else if (v->complaint_rate > warmup_lim.max_complaint_rate)
		snprintf(s->reason, sizeof(s->reason),
			 "complaint rate %.3f%% over %.0f messages passed %.3f%%",
			 v->complaint_rate * 100, v->window_messages,
			 warmup_lim.max_complaint_rate * 100);
	else
		return false;
	s->paused = true;
	view_of(s, now, v);
	return true;
}

static void
write_paused(const struct warmup_view *v)
{
	struct logrec rec = {.type = "WarmupPaused", .egress_source = v->source,
			     .reason = v->reason,
			     .warmup = {v->stage, v->cap, v->bounce_rate, v->complaint_rate,
					v->window_messages}};

	log_warn("warmup", "%s: ramp paused at stage %d (cap %.0f): %s", v->source, v->stage,
		 v->cap, v->reason);
	logrec_write(&rec);
	logrec_commit();
}

void
warmup_outcome(const char *type, const char *source)
{
	struct warmup_source *s;
	struct warmup_view v;
	double now;
	bool paused = false;
	int kind;

	/* Every record of every shard passes here: with no warming source, one load. */
	if (atomic_load_explicit(&warmup_planned, memory_order_relaxed) == 0 || source == NULL ||
	    (kind = outcome_kind(type)) < 0)
		return;
	now = util_wallclock();
	pthread_mutex_lock(&warmup_lock);
	s = find_planned(source);
	if (s && cap_now(s, now) >= 0) {
		window_roll(s, now);
		s->cur[kind]++;
		/* Deliveries too: the window may reach min_messages with one. */
		paused = judge(s, now, &v);
	}
	pthread_mutex_unlock(&warmup_lock);
	if (paused) {
		write_paused(&v);
		save();
	}
}

int
warmup_resume(const char *source, struct tern_err *err)
{
	struct warmup_source *s;

	pthread_mutex_lock(&warmup_lock);
	s = find_planned(source);
	if (s) {
		s->paused = false;
		s->reason[0] = '\0';
		/* The rates that paused it start afresh, or the next outcome would pause it again. */
		memset(s->cur, 0, sizeof(s->cur));
		memset(s->prev, 0, sizeof(s->prev));
	}
	pthread_mutex_unlock(&warmup_lock);
	if (s == NULL) {
		tern_err_set(err, 404, "", "source '%s' is not warming up", source);
		return -ENOENT;
	}
	log_info("warmup", "%s: ramp resumed by an operator", source);
	save();
	return 0;
}

int
warmup_get(const char *source, struct warmup_view *out)
{
	struct warmup_source *s;

	pthread_mutex_lock(&warmup_lock);
	s = find_planned(source);
	if (s)
		view_of(s, util_wallclock(), out);
	pthread_mutex_unlock(&warmup_lock);
	return s ? 0 : -ENOENT;
}

void
warmup_foreach(warmup_view_fn fn, void *arg)
{
	struct warmup_view v;
	size_t i = 0;

	for (;;) {
		pthread_mutex_lock(&warmup_lock);
		while (i < warmup_n && !warmup_sources[i].planned)
			i++;
		if (i >= warmup_n) {
			pthread_mutex_unlock(&warmup_lock);
			return;
		}
		view_of(&warmup_sources[i++], util_wallclock(), &v);
		pthread_mutex_unlock(&warmup_lock);
		/* Called without the lock: fn may ask this module again. */
		if (fn(arg, &v) != 0)
			return;
	}
}

static int
view_json(void *arg, const struct warmup_view *v)
{
	struct buf *b = arg;

	if (b->len > 1)
		buf_append_char(b, ',');
	buf_append_str(b, "{\"source\":");
	buf_append_json_string(b, v->source, strlen(v->source));
	buf_printf(b, ",\"stage\":%d,\"cap\":%.0f,\"sent\":%.0f,\"next_refill\":%.3f,\"paused\":%s",
		   v->stage, v->cap, v->sent, v->next, v->paused ? "true" : "false");
	buf_append_str(b, ",\"reason\":");
	buf_append_json_string(b, v->reason, strlen(v->reason));
	buf_printf(b, ",\"bounce_rate\":%.5f,\"complaint_rate\":%.5f,\"window_messages\":%.0f}",
		   v->bounce_rate, v->complaint_rate, v->window_messages);
	return 0;
}

int
warmup_list_json(struct buf *out)
{
	struct buf b;
	int rc;

	buf_init(&b);
	buf_append_char(&b, '[');
	warmup_foreach(view_json, &b);
	rc = buf_append_char(&b, ']');
	if (rc == 0)
		rc = buf_append(out, b.data, b.len);
	buf_deinit(&b);
	return rc;
}
