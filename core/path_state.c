// SPDX-License-Identifier: MIT
/*
 * Path states. Dispatch on every shard reads them, rules fire a few times an
 * hour: so the set is an immutable table swapped by pointer, like admin.c's
 * rules. A retired table is kept until path_state_close() rather than
 * reclaimed, since a reader may still hold a state from it and changes are
 * too rare for the memory to matter. The states are few (one per path a
 * provider pushed back on), so lookups scan the table.
 *
 * Durability: shaping-state.json next to admin.json in the spool directory,
 * not a RocksDB column family. The states are a few kilobytes changed a few
 * times an hour, must be known before the first dispatch after a restart,
 * and are what an operator may want to read or fix by hand: the same
 * reasons admin.json exists, and one mechanism for both.
 */
#include "tern/path_state.h"
#include "tern/json.h"
#include "tern/log.h"
#include "tern/queue.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PATH_STATE_FILE "shaping-state.json"
/* Recovery climbs in steps of this fraction, so a throttle is retuned a few times, not per message. */
#define PATH_STATE_RECOVERY_STEPS 10

struct state_table {
	size_t n;
	struct state_table *retired;
	struct path_state states[];
};

static _Atomic(struct state_table *) current;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char *state_path;

static path_state_observer_fn observer;
static void *observer_arg;

static const char *const scope_names[] = {"path", "source", "tenant", "campaign"};
#define SCOPES 4

/* ---- pure ----------------------------------------------------------------------------- */

static bool
host_ends_with(const char *host, size_t hlen, const char *suffix, size_t slen)
{
	return slen > 0 && slen <= hlen && strncasecmp(host + hlen - slen, suffix, slen) == 0;
}

/* Whether one host of site (comma-separated) ends in suffix. */
static bool
site_has_suffix(const char *site, const char *suffix, size_t slen)
{
	const char *h = site, *end;

	for (; *h; h = *end ? end + 1 : end) {
		end = strchr(h, ',');
		end = end ? end : h + strlen(h);
		if (host_ends_with(h, (size_t)(end - h), suffix, slen))
			return true;
	}
	return false;
}

bool
path_state_site_in(const char *site, const char *suffixes)
{
	const char *s = suffixes, *end;

	if (suffixes[0] == '\0')
		return true;
	for (; *s; s = *end ? end + 1 : end) {
		end = strchr(s, ',');
		end = end ? end : s + strlen(s);
		if (site_has_suffix(site, s, (size_t)(end - s)))
			return true;
	}
	return false;
}

static bool
covers_path(const struct path_state *s, const char *source, const char *site)
{
	if (strcmp(s->source, source) != 0)
		return false;
	if (s->scope == PATH_STATE_PATH)
		return strcmp(s->site, site) == 0;
	return s->scope == PATH_STATE_SOURCE && path_state_site_in(site, s->site);
}

/* Whether a and b are the same state (a new one replaces the old). */
static bool
same_keys(const struct path_state *a, const struct path_state *b)
{
	return a->scope == b->scope && strcmp(a->source, b->source) == 0 &&
	       strcmp(a->site, b->site) == 0 && strcmp(a->tenant, b->tenant) == 0 &&
	       strcmp(a->campaign, b->campaign) == 0;
}

static bool
recovered(const struct path_state *s, double now)
{
	return s->until + s->recovery <= now;
}

/* ---- readers ---------------------------------------------------------------------------- */

static const struct state_table *
table_now(void)
{
	return atomic_load_explicit(&current, memory_order_acquire);
}

bool
path_state_in_force(const struct path_state *s, double now)
{
	const struct state_table *t = table_now();
	size_t i;

	for (i = 0; t && i < t->n; i++)
		if (t->states[i].until > now && same_keys(&t->states[i], s))
			return true;
	return false;
}

const struct path_state *
path_state_find(const char *source, const char *site, double now)
{
	const struct state_table *t = table_now();
	size_t i;

	for (i = 0; t && i < t->n; i++)
		if (!recovered(&t->states[i], now) && covers_path(&t->states[i], source, site))
			return &t->states[i];
	return NULL;
}

const struct path_state *
path_state_suspended(const char *source, const char *site, double now)
{
	const struct state_table *t = table_now();
	size_t i;

	for (i = 0; t && i < t->n; i++)
		if (t->states[i].suspend && t->states[i].until > now &&
		    covers_path(&t->states[i], source, site))
			return &t->states[i];
	return NULL;
}

const struct path_state *
path_state_held(const char *site, const char *tenant, const char *campaign, double now)
{
	const struct state_table *t = table_now();
	size_t i;

	for (i = 0; t && i < t->n; i++) {
		const struct path_state *s = &t->states[i];

		if (!s->suspend || s->until <= now || strcmp(s->site, site) != 0)
			continue;
		if ((s->scope == PATH_STATE_TENANT && tenant && strcmp(s->tenant, tenant) == 0) ||
		    (s->scope == PATH_STATE_CAMPAIGN && campaign && strcmp(s->campaign, campaign) == 0))
			return s;
	}
	return NULL;
}

/* The fraction of the path's own limits a state leaves now: 1 when it does not limit. */
static double
recovery_factor(const struct path_state *s, double now)
{
	double done;

	if (now < s->until || recovered(s, now))
		return 1;
	done = floor((now - s->until) / s->recovery * PATH_STATE_RECOVERY_STEPS) /
	       PATH_STATE_RECOVERY_STEPS;
	return 0.5 + 0.5 * done;
}

static void
apply_limits(const struct path_state *s, double now, double *rate, int *connections)
{
	double f;

	if (now < s->until) {
		if (s->max_message_rate > 0)
			*rate = s->max_message_rate;
		if (s->connection_limit > 0)
			*connections = s->connection_limit;
		return;
	}
	f = recovery_factor(s, now);
	*rate *= f;
	*connections = (int)ceil(*connections * f);
}

void
path_state_limits(const char *source, const char *site, double now, double *rate, int *connections)
{
	const struct state_table *t = table_now();
	size_t i;

	for (i = 0; t && i < t->n; i++)
		if (!recovered(&t->states[i], now) && covers_path(&t->states[i], source, site))
			apply_limits(&t->states[i], now, rate, connections);
	if (*connections < 1)
		*connections = 1;
}

size_t
path_state_count(double now)
{
	const struct state_table *t = table_now();
	size_t i, n = 0;

	for (i = 0; t && i < t->n; i++)
		n += !recovered(&t->states[i], now);
	return n;
}

/* ---- JSON --------------------------------------------------------------------------------- */

static void
add_string(struct buf *out, const char *key, const char *v)
{
	buf_printf(out, ",\"%s\":", key);
	buf_append_json_string(out, v, strlen(v));
}

static void
state_json(const struct path_state *s, struct buf *out)
{
	buf_printf(out, "{\"scope\":\"%s\"", scope_names[s->scope]);
	add_string(out, "source", s->source);
	add_string(out, "site", s->site);
	add_string(out, "tenant", s->tenant);
	add_string(out, "campaign", s->campaign);
	add_string(out, "action", s->action);
	add_string(out, "rule", s->rule);
	add_string(out, "reply", s->reply);
	buf_printf(out, ",\"suspend\":%s,\"max_message_rate\":%.17g,\"connection_limit\":%d,"
		   "\"since\":%.3f,\"until\":%.3f,\"recovery\":%.3f}",
		   s->suspend ? "true" : "false", s->max_message_rate, s->connection_limit,
		   s->since, s->until, s->recovery);
}

static int
table_json(const struct state_table *t, struct buf *out)
{
	double now = util_wallclock();
	bool first = true;
	size_t i;

	buf_append_char(out, '[');
	for (i = 0; t && i < t->n; i++) {
		if (recovered(&t->states[i], now))
			continue;
		if (!first)
			buf_append_char(out, ',');
		first = false;
		state_json(&t->states[i], out);
	}
	return buf_append_char(out, ']');
}

int
path_state_list_json(struct buf *out)
{
	int rc;

	pthread_mutex_lock(&lock);
	rc = table_json(current, out);
	pthread_mutex_unlock(&lock);
	return rc;
}

/* ---- writers ------------------------------------------------------------------------------ */

static int
table_save(const struct state_table *t, struct tern_err *err)
{
	struct buf b;
	int rc;

	if (state_path == NULL)
		return 0;
	buf_init(&b);
	buf_append_str(&b, "{\"states\":");
	table_json(t, &b);
	buf_append_str(&b, "}\n");
	rc = b.data ? util_write_file_synced(state_path, b.data, b.len) : -ENOMEM;
	buf_deinit(&b);
	if (rc < 0)
		tern_err_set(err, 503, "", "cannot save %s: %s", state_path, strerror(-rc));
	return rc;
}

/* Caller holds lock: a copy of the states not yet recovered, with room for extra more. */
static struct state_table *
table_copy(size_t extra)
{
	struct state_table *cur = current, *t;
	double now = util_wallclock();
	size_t i, n = cur ? cur->n : 0;

	t = calloc(1, sizeof(*t) + (n + extra) * sizeof(t->states[0]));
	if (t == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		if (!recovered(&cur->states[i], now))
			t->states[t->n++] = cur->states[i];
	return t;
}

/* Caller holds lock: save t, then publish it (or drop it when it cannot be saved). */
static int
table_publish(struct state_table *t, struct tern_err *err)
{
	if (table_save(t, err) < 0) {
		free(t);
		return -EIO;
	}
	t->retired = current;
	atomic_store_explicit(&current, t, memory_order_release);
	return 0;
}

int
path_state_apply(const struct path_state *s, struct tern_err *err)
{
	struct state_table *t;
	size_t i, kept = 0;
	int rc = -ENOMEM;

	pthread_mutex_lock(&lock);
	t = table_copy(1);
	if (t != NULL) {
		for (i = 0; i < t->n; i++)
			if (!same_keys(&t->states[i], s))
				t->states[kept++] = t->states[i];
		t->n = kept;
		t->states[t->n++] = *s;
		rc = table_publish(t, err);
		if (rc == 0 && observer != NULL)
			observer(observer_arg, s, NULL);
	} else {
		tern_err_set(err, 503, "", "out of memory");
	}
	pthread_mutex_unlock(&lock);
	return rc;
}

static bool
key_matches(const char *want, const char *have)
{
	return want == NULL || want[0] == '\0' || strcmp(want, have) == 0;
}

static bool
clear_matches(const struct path_state *s, const char *source, const char *site,
	      const char *tenant, const char *campaign)
{
	return key_matches(source, s->source) && key_matches(site, s->site) &&
	       key_matches(tenant, s->tenant) && key_matches(campaign, s->campaign);
}

/* Messages held by lifted suspensions wait until their ends: wake them now. */
static void
wake_held(const double *ends, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		queue_wake_due_at(ends[i]);
}

/* Caller holds lock: the observer hears of each state old had that a clear removed. */
static void
observe_cleared(const struct state_table *old, const char *source, const char *site,
		const char *tenant, const char *campaign)
{
	size_t i;

	for (i = 0; observer != NULL && old != NULL && i < old->n; i++)
		if (clear_matches(&old->states[i], source, site, tenant, campaign))
			observer(observer_arg, NULL, &old->states[i]);
}

int
path_state_clear(const char *source, const char *site, const char *tenant, const char *campaign,
		 struct tern_err *err)
{
	struct state_table *t;
	double *ends = NULL;
	size_t i, kept = 0, n_ends = 0, removed;
	int rc;

	if (!(source && *source) && !(site && *site) && !(tenant && *tenant) &&
	    !(campaign && *campaign)) {
		tern_err_set(err, 422, "", "one of 'source', 'site', 'tenant' or 'campaign' is required");
		return -EINVAL;
	}
	pthread_mutex_lock(&lock);
	t = table_copy(0);
	if (t == NULL || (ends = calloc(t->n + 1, sizeof(*ends))) == NULL) {
		pthread_mutex_unlock(&lock);
		free(t);
		tern_err_set(err, 503, "", "out of memory");
		return -ENOMEM;
	}
	for (i = 0; i < t->n; i++) {
		const struct path_state *s = &t->states[i];

		if (!clear_matches(s, source, site, tenant, campaign))
			t->states[kept++] = *s;
		else if (s->suspend)
			ends[n_ends++] = s->until;
	}
	removed = t->n - kept;
	t->n = kept;
	rc = table_publish(t, err);
	if (rc == 0)
		observe_cleared(t->retired, source, site, tenant, campaign);
	pthread_mutex_unlock(&lock);
	if (rc == 0)
		wake_held(ends, n_ends);
	free(ends);
	return rc < 0 ? rc : (int)removed;
}

/* ---- start-up ----------------------------------------------------------------------------- */

struct loading {
	struct state_table *t;
	size_t cap;
};

static int
get_text(const struct json_span *obj, const char *key, char *out, size_t size)
{
	struct json_span v;
	size_t len;

	/* Decoding never grows a string, and the span counts two quotes more than its text. */
	if (json_object_get(obj, key, &v) < 0 || v.type != JSON_STRING || v.len > size + 1 ||
	    json_string_decode_to(&v, out, &len) < 0 || len >= size)
		return -EINVAL;
	out[len] = '\0';
	return 0;
}

static int
get_number(const struct json_span *obj, const char *key, double *out)
{
	struct json_span v;

	if (json_object_get(obj, key, &v) < 0)
		return -EINVAL;
	return json_number_value(&v, out);
}

static int
load_numbers(const struct json_span *v, struct path_state *s)
{
	struct json_span b;
	double conns;

	if (get_number(v, "max_message_rate", &s->max_message_rate) < 0 ||
	    get_number(v, "connection_limit", &conns) < 0 || get_number(v, "since", &s->since) < 0 ||
	    get_number(v, "until", &s->until) < 0 || get_number(v, "recovery", &s->recovery) < 0 ||
	    json_object_get(v, "suspend", &b) < 0)
		return -EINVAL;
	s->connection_limit = (int)conns;
	s->suspend = b.type == JSON_TRUE;
	return 0;
}

static int
state_from_span(const struct json_span *v, struct path_state *out)
{
	struct path_state s = {0};
	char scope[16];
	size_t k;

	if (v->type != JSON_OBJECT || get_text(v, "scope", scope, sizeof(scope)) < 0 ||
	    get_text(v, "source", s.source, sizeof(s.source)) < 0 ||
	    get_text(v, "site", s.site, sizeof(s.site)) < 0 ||
	    get_text(v, "tenant", s.tenant, sizeof(s.tenant)) < 0 ||
	    get_text(v, "campaign", s.campaign, sizeof(s.campaign)) < 0 ||
	    get_text(v, "action", s.action, sizeof(s.action)) < 0 ||
	    get_text(v, "rule", s.rule, sizeof(s.rule)) < 0 ||
	    get_text(v, "reply", s.reply, sizeof(s.reply)) < 0 || load_numbers(v, &s) < 0)
		return -EINVAL;
	for (k = 0; k < SCOPES && strcmp(scope, scope_names[k]) != 0; k++)
		;
	if (k == SCOPES)
		return -EINVAL;
	s.scope = (enum path_state_scope)k;
	*out = s;
	return 0;
}

static int
load_state(void *arg, size_t i, const struct json_span *v)
{
	struct loading *l = arg;

	(void)i;
	if (l->t->n >= l->cap || state_from_span(v, &l->t->states[l->t->n]) < 0)
		return -EINVAL;
	l->t->n++;
	return 0;
}

static int
table_load(const char *text, size_t len, struct tern_err *err)
{
	struct json_span doc, states;
	struct loading l = {NULL, len / 64 + 1};

	if (json_parse_span(text, len, &doc, err) < 0 || doc.type != JSON_OBJECT ||
	    json_object_get(&doc, "states", &states) < 0 || states.type != JSON_ARRAY)
		return -EINVAL;
	l.t = calloc(1, sizeof(*l.t) + l.cap * sizeof(l.t->states[0]));
	if (l.t == NULL)
		return -ENOMEM;
	if (json_array_foreach(&states, load_state, &l) < 0) {
		free(l.t);
		return -EINVAL;
	}
	current = l.t;
	return 0;
}

int
path_state_open(const char *spool_dir, struct tern_err *err)
{
	struct tern_err why = {0};
	struct buf b;
	int rc;

	path_state_close();
	if (asprintf(&state_path, "%s/%s", spool_dir, PATH_STATE_FILE) < 0) {
		state_path = NULL;
		return -ENOMEM;
	}
	buf_init(&b);
	rc = util_read_file(state_path, &b);
	if (rc == -ENOENT)
		rc = 0;
	else if (rc == 0 && table_load(b.data ? b.data : "", b.len, &why) < 0)
		rc = -EINVAL;
	if (rc < 0)
		tern_err_set(err, 0, "", "%s: %s", state_path,
			     why.msg[0] ? why.msg : "cannot be read or is not a list of path states");
	buf_deinit(&b);
	return rc;
}

void
path_state_close(void)
{
	struct state_table *t = current, *next;

	atomic_store(&current, NULL);
	for (; t != NULL; t = next) {
		next = t->retired;
		free(t);
	}
	free(state_path); state_path = NULL;
}

/* ---- sharing (fleet mode) ----------------------------------------------------------------- */

void
path_state_set_observer(path_state_observer_fn fn, void *arg)
{
	pthread_mutex_lock(&lock);
	observer = fn;
	observer_arg = arg;
	pthread_mutex_unlock(&lock);
}

void
path_state_json(const struct path_state *s, struct buf *out)
{
	state_json(s, out);
}

int
path_state_from_json(const char *text, size_t len, struct path_state *out, struct tern_err *err)
{
	struct json_span doc;

	if (json_parse_span(text, len, &doc, err) < 0)
		return -EINVAL;
	if (state_from_span(&doc, out) < 0) {
		tern_err_set(err, 0, "", "not a path state");
		return -EINVAL;
	}
	return 0;
}

void
path_state_key(const struct path_state *s, char *out, size_t size)
{
	snprintf(out, size, "%s|%s|%s|%s|%s", scope_names[s->scope], s->source, s->site, s->tenant,
		 s->campaign);
}

size_t
path_state_snapshot(struct path_state **out)
{
	struct state_table *t;
	size_t n = 0;

	*out = NULL;
	pthread_mutex_lock(&lock);
	t = table_copy(0);
	if (t != NULL && t->n > 0 && (*out = calloc(t->n, sizeof(**out))) != NULL) {
		memcpy(*out, t->states, t->n * sizeof(**out));
		n = t->n;
	}
	pthread_mutex_unlock(&lock);
	free(t);
	return n;
}

/* Caller holds lock: the ends of the suspensions in old that next no longer has. */
static size_t
lifted_ends(const struct state_table *old, const struct state_table *next, double *ends)
{
	size_t i, j, n = 0;

	for (i = 0; old != NULL && i < old->n; i++) {
		for (j = 0; j < next->n && !same_keys(&old->states[i], &next->states[j]); j++)
			;
		if (old->states[i].suspend && j == next->n)
			ends[n++] = old->states[i].until;
	}
	return n;
}

int
path_state_replace(const struct path_state *states, size_t n, struct tern_err *err)
{
	struct state_table *t;
	double *ends;
	size_t n_ends = 0;
	int rc = -ENOMEM;

	pthread_mutex_lock(&lock);
	t = calloc(1, sizeof(*t) + (n + 1) * sizeof(t->states[0]));
	ends = calloc((current ? current->n : 0) + 1, sizeof(*ends));
	if (t != NULL && ends != NULL) {
		memcpy(t->states, states, n * sizeof(*states));
		t->n = n;
		n_ends = lifted_ends(current, t, ends);
		rc = table_publish(t, err);
		t = NULL;
	} else {
		tern_err_set(err, 503, "", "out of memory");
	}
	pthread_mutex_unlock(&lock);
	free(t);
	if (rc == 0)
		wake_held(ends, n_ends);
	free(ends);
	return rc;
}
