// SPDX-License-Identifier: MIT
/*
 * Admin rules (suspensions, admin bounces). Dispatch reads the table on
 * every shard, the admin API changes it a few times a day: so the table is
 * immutable once published and swapped by pointer. Old tables are kept
 * until admin_close() rather than reclaimed, since a reader may still hold
 * one and changes are too rare for the memory to matter.
 */
#include "tern/admin.h"
#include "tern/json.h"
#include "tern/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define ADMIN_FILE "admin.json"

struct admin_table {
	size_t n;
	struct admin_table *retired; /* the table this one replaced */
	struct admin_rule rules[];
};

static _Atomic(struct admin_table *) admin_current;
static pthread_mutex_t admin_lock = PTHREAD_MUTEX_INITIALIZER;
static char *admin_path;
static admin_observer_fn observer;
static void *observer_arg;

static const char *const kind_names[] = {"suspend", "bounce", "suspend-ready-q"};
#define ADMIN_KINDS 3

/* ---- pure ----------------------------------------------------------------------------- */

static bool
part_matches(const char *want, const char *have)
{
	return want[0] == '\0' || strcasecmp(want, have) == 0;
}

bool
admin_rule_matches(const struct admin_rule *r, const char *name, const char *domain,
		   const char *tenant, const char *campaign)
{
	size_t i;

	if (!part_matches(r->domain, domain) || !part_matches(r->tenant, tenant) ||
	    !part_matches(r->campaign, campaign))
		return false;
	for (i = 0; i < r->n_queue_names; i++)
		if (strcmp(r->queue_names[i], name) == 0)
			return true;
	return r->n_queue_names == 0;
}

int
admin_json_string(const struct json_span *v, char *out, size_t size)
{
	struct buf b;
	int rc = -EINVAL;

	buf_init(&b);
	if (v->type == JSON_STRING && json_string_decode(v, &b) == 0 && b.len < size &&
	    (b.len == 0 || memchr(b.data, '\0', b.len) == NULL)) {
		memcpy(out, b.data ? b.data : "", b.len);
		out[b.len] = '\0';
		rc = 0;
	}
	buf_deinit(&b);
	return rc;
}

/* An optional string member into out[size]; 422 naming the field when it is not one or too long. */
static int
get_string(const struct json_span *obj, const char *key, char *out, size_t size,
	   struct tern_err *err)
{
	struct json_span v;

	out[0] = '\0';
	if (json_object_get(obj, key, &v) == -ENOENT)
		return 0;
	if (admin_json_string(&v, out, size) < 0) {
		tern_err_set(err, 422, "", "field '%s' must be a string of at most %zu bytes", key,
			     size - 1);
		return -EINVAL;
	}
	return 0;
}

static int
name_item(void *arg, size_t i, const struct json_span *v)
{
	struct admin_rule *r = arg;

	if (i >= ADMIN_MAX_NAMES ||
	    admin_json_string(v, r->queue_names[i], sizeof(r->queue_names[i])) < 0)
		return -EINVAL;
	r->n_queue_names = i + 1;
	return 0;
}

static int
get_names(const struct json_span *obj, struct admin_rule *r, struct tern_err *err)
{
	struct json_span v;

	if (json_object_get(obj, "queue_names", &v) == -ENOENT)
		return 0;
	if (v.type != JSON_ARRAY || json_array_foreach(&v, name_item, r) < 0) {
		tern_err_set(err, 422, "", "field 'queue_names' must be an array of at most %d names",
			     ADMIN_MAX_NAMES);
		return -EINVAL;
	}
	return 0;
}

static int
get_duration(const struct json_span *obj, double *out, struct tern_err *err)
{
	char text[64];
	struct json_span v;

	*out = 0;
	if (json_object_get(obj, "duration", &v) == -ENOENT) {
		tern_err_set(err, 422, "", "field 'duration' is required (\"30m\", \"2h\", seconds)");
		return -EINVAL;
	}
	if (v.type == JSON_NUMBER && json_number_value(&v, out) == 0 && *out > 0 &&
	    *out <= UTIL_DURATION_MAX)
		return 0;
	if (v.type == JSON_STRING && get_string(obj, "duration", text, sizeof(text), err) == 0 &&
	    util_parse_duration(text, out) == 0 && *out > 0)
		return 0;
	tern_err_set(err, 422, "", "field 'duration' must be a positive duration (\"30m\", \"2h\", seconds)");
	return -EINVAL;
}

static int
parse_selector(const struct json_span *obj, struct admin_rule *r, struct tern_err *err)
{
	if (get_string(obj, "domain", r->domain, sizeof(r->domain), err) < 0 ||
	    get_string(obj, "tenant", r->tenant, sizeof(r->tenant), err) < 0 ||
	    get_string(obj, "campaign", r->campaign, sizeof(r->campaign), err) < 0 ||
	    get_names(obj, r, err) < 0 ||
	    get_string(obj, "reason", r->reason, sizeof(r->reason), err) < 0)
		return -EINVAL;
	return 0;
}

/* KumoMTA names a ready queue "source->site@smtp_client"; the protocol suffix is optional here. */
static int
parse_ready_q(const struct json_span *obj, struct admin_rule *r, struct tern_err *err)
{
	char *at;

	if (get_string(obj, "name", r->ready_q, sizeof(r->ready_q), err) < 0)
		return -EINVAL;
	if ((at = strrchr(r->ready_q, '@')) != NULL && strcmp(at, "@smtp_client") == 0)
		*at = '\0';
	if (strstr(r->ready_q, "->") == NULL || strstr(r->ready_q, "->") == r->ready_q ||
	    strstr(r->ready_q, "->")[2] == '\0') {
		tern_err_set(err, 422, "", "field 'name' must be a ready queue \"source->site\"");
		return -EINVAL;
	}
	return 0;
}

int
admin_rule_parse(const char *body, size_t len, enum admin_kind kind, struct admin_rule *r,
		 struct tern_err *err)
{
	struct json_span obj;
	double duration;

	memset(r, 0, sizeof(*r));
	r->kind = kind;
	if (json_parse_span(body, len, &obj, err) < 0) {
		err->code = 400;
		return -EINVAL;
	}
	if (obj.type != JSON_OBJECT) {
		tern_err_set(err, 400, "", "the body must be a JSON object");
		return -EINVAL;
	}
	if (parse_selector(&obj, r, err) < 0 || get_duration(&obj, &duration, err) < 0)
		return -EINVAL;
	if (r->reason[0] == '\0') {
		tern_err_set(err, 422, "", "field 'reason' is required");
		return -EINVAL;
	}
	r->expires = util_wallclock() + duration;
	if (kind == ADMIN_SUSPEND_READY)
		return parse_ready_q(&obj, r, err);
	if (!r->domain[0] && !r->tenant[0] && !r->campaign[0] && r->n_queue_names == 0) {
		tern_err_set(err, 422, "",
			     "one of 'domain', 'tenant', 'campaign' or 'queue_names' is required");
		return -EINVAL;
	}
	return 0;
}

int
admin_rebind_parse(const char *body, size_t len, struct admin_rule *sel, struct json_span *data,
		   struct tern_err *err)
{
	struct json_span obj;

	memset(sel, 0, sizeof(*sel));
	if (json_parse_span(body, len, &obj, err) < 0) {
		err->code = 400;
		return -EINVAL;
	}
	if (obj.type != JSON_OBJECT) {
		tern_err_set(err, 400, "", "the body must be a JSON object");
		return -EINVAL;
	}
	if (parse_selector(&obj, sel, err) < 0)
		return -EINVAL;
	if (sel->reason[0] == '\0') {
		tern_err_set(err, 422, "", "field 'reason' is required");
		return -EINVAL;
	}
	if (!sel->domain[0] && !sel->tenant[0] && !sel->campaign[0] && sel->n_queue_names == 0) {
		tern_err_set(err, 422, "",
			     "one of 'domain', 'tenant', 'campaign' or 'queue_names' is required");
		return -EINVAL;
	}
	if (json_object_get(&obj, "data", data) < 0 || data->type != JSON_OBJECT) {
		tern_err_set(err, 422, "", "field 'data' must be an object of meta to set, e.g. {\"queue\": \"q2\"}");
		return -EINVAL;
	}
	return 0;
}

/* ---- the table ------------------------------------------------------------------------ */

const struct admin_rule *
admin_match(enum admin_kind kind, const char *name, const char *domain, const char *tenant,
	    const char *campaign)
{
	const struct admin_table *t = atomic_load_explicit(&admin_current, memory_order_acquire);
	double now;
	size_t i;

	if (t == NULL || t->n == 0)
		return NULL;
	now = util_wallclock();
	for (i = 0; i < t->n; i++) {
		const struct admin_rule *r = &t->rules[i];

		if (r->kind == kind && r->expires > now &&
		    admin_rule_matches(r, name, domain, tenant, campaign))
			return r;
	}
	return NULL;
}

const struct admin_rule *
admin_match_ready(const char *source, const char *site)
{
	const struct admin_table *t = atomic_load_explicit(&admin_current, memory_order_acquire);
	size_t i, slen = strlen(source);
	double now;

	if (t == NULL || t->n == 0)
		return NULL;
	now = util_wallclock();
	for (i = 0; i < t->n; i++) {
		const struct admin_rule *r = &t->rules[i];

		if (r->kind == ADMIN_SUSPEND_READY && r->expires > now &&
		    strncmp(r->ready_q, source, slen) == 0 && strncmp(r->ready_q + slen, "->", 2) == 0 &&
		    strcmp(r->ready_q + slen + 2, site) == 0)
			return r;
	}
	return NULL;
}

/* The selector of a queue rule: domain, tenant, campaign, queue_names. */
static void
selector_json(const struct admin_rule *r, struct buf *out)
{
	size_t i;

	buf_append_str(out, ",\"domain\":");
	buf_append_json_string(out, r->domain, strlen(r->domain));
	buf_append_str(out, ",\"tenant\":");
	buf_append_json_string(out, r->tenant, strlen(r->tenant));
	buf_append_str(out, ",\"campaign\":");
	buf_append_json_string(out, r->campaign, strlen(r->campaign));
	buf_append_str(out, ",\"queue_names\":[");
	for (i = 0; i < r->n_queue_names; i++) {
		if (i > 0)
			buf_append_char(out, ',');
		buf_append_json_string(out, r->queue_names[i], strlen(r->queue_names[i]));
	}
	buf_append_char(out, ']');
}

void
admin_rule_json(const struct admin_rule *r, struct buf *out)
{
	buf_printf(out, "{\"id\":\"%s\",\"kind\":\"%s\"", r->id, kind_names[r->kind]);
	if (r->kind == ADMIN_SUSPEND_READY) {
		buf_append_str(out, ",\"name\":");
		buf_append_json_string(out, r->ready_q, strlen(r->ready_q));
	} else {
		selector_json(r, out);
	}
	buf_append_str(out, ",\"reason\":");
	buf_append_json_string(out, r->reason, strlen(r->reason));
	buf_printf(out, ",\"expires\":%.3f,\"duration\":%.3f}", r->expires,
		   r->expires - util_wallclock());
}

/* Caller holds admin_lock. Live rules of kind (or of every kind when all) as a JSON array. */
static int
table_json(const struct admin_table *t, bool all, enum admin_kind kind, struct buf *out)
{
	double now = util_wallclock();
	bool first = true;
	size_t i;

	buf_append_char(out, '[');
	for (i = 0; t && i < t->n; i++) {
		if ((!all && t->rules[i].kind != kind) || t->rules[i].expires <= now)
			continue;
		if (!first)
			buf_append_char(out, ',');
		first = false;
		admin_rule_json(&t->rules[i], out);
	}
	return buf_append_char(out, ']');
}

int
admin_list_json(enum admin_kind kind, struct buf *out)
{
	int rc;

	pthread_mutex_lock(&admin_lock);
	rc = table_json(admin_current, false, kind, out);
	pthread_mutex_unlock(&admin_lock);
	return rc;
}

/* Save the table: a crash leaves the old file or the new one (util_write_file_synced). */
static int
table_save(const struct admin_table *t, struct tern_err *err)
{
	struct buf b;
	int rc;

	if (admin_path == NULL)
		return 0;
	buf_init(&b);
	buf_append_str(&b, "{\"rules\":");
	table_json(t, true, ADMIN_SUSPEND, &b);
	buf_append_str(&b, "}\n");
	rc = b.data ? util_write_file_synced(admin_path, b.data, b.len) : -ENOMEM;
	buf_deinit(&b);
	if (rc < 0) {
		tern_err_set(err, 503, "", "cannot save %s: %s", admin_path, strerror(-rc));
		return -EIO;
	}
	return 0;
}

/* Caller holds admin_lock: a copy of the live rules with room for extra more. */
static struct admin_table *
table_copy(size_t extra)
{
	struct admin_table *cur = admin_current, *t;
	double now = util_wallclock();
	size_t i, n = cur ? cur->n : 0;

	t = calloc(1, sizeof(*t) + (n + extra) * sizeof(t->rules[0]));
	if (t == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		if (cur->rules[i].expires > now)
			t->rules[t->n++] = cur->rules[i];
	return t;
}

/* Caller holds admin_lock: save t, then publish it (or drop it when it cannot be saved). */
static int
table_publish(struct admin_table *t, struct tern_err *err)
{
	if (table_save(t, err) < 0) {
		free(t);
		return -EIO;
	}
	t->retired = admin_current;
	atomic_store_explicit(&admin_current, t, memory_order_release);
	return 0;
}

static void
make_id(char out[ADMIN_ID_LEN + 1])
{
	unsigned char b[16];

	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		for (size_t i = 0; i < sizeof(b); i++)
			b[i] = (unsigned char)lrand48();
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	snprintf(out, ADMIN_ID_LEN + 1,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
		 b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
		 b[15]);
}

void
admin_set_observer(admin_observer_fn fn, void *arg)
{
	pthread_mutex_lock(&admin_lock);
	observer = fn;
	observer_arg = arg;
	pthread_mutex_unlock(&admin_lock);
}

int
admin_add(struct admin_rule *r, struct tern_err *err)
{
	struct admin_table *t;
	int rc = -ENOMEM;

	make_id(r->id);
	pthread_mutex_lock(&admin_lock);
	t = table_copy(1);
	if (t != NULL) {
		t->rules[t->n++] = *r;
		rc = table_publish(t, err);
	} else {
		tern_err_set(err, 503, "", "out of memory");
	}
	if (rc == 0 && observer != NULL)
		observer(observer_arg, r, NULL);
	pthread_mutex_unlock(&admin_lock);
	return rc;
}

int
admin_remove(const char *id, enum admin_kind kind, struct tern_err *err)
{
	struct admin_table *t;
	size_t i, kept = 0;
	int rc;

	pthread_mutex_lock(&admin_lock);
	t = table_copy(0);
	if (t == NULL) {
		pthread_mutex_unlock(&admin_lock);
		tern_err_set(err, 503, "", "out of memory");
		return -ENOMEM;
	}
	for (i = 0; i < t->n; i++)
		if (t->rules[i].kind != kind || strcmp(t->rules[i].id, id) != 0)
			t->rules[kept++] = t->rules[i];
	if (kept == t->n) {
		free(t);
		tern_err_set(err, 404, "", "no %s with id '%s'", kind_names[kind], id);
		rc = -ENOENT;
	} else {
		t->n = kept;
		rc = table_publish(t, err);
	}
	if (rc == 0 && observer != NULL)
		observer(observer_arg, NULL, id);
	pthread_mutex_unlock(&admin_lock);
	return rc;
}

size_t
admin_snapshot(struct admin_rule **out)
{
	struct admin_table *t;
	size_t n = 0;

	pthread_mutex_lock(&admin_lock);
	t = table_copy(0);
	if (t != NULL && t->n > 0) {
		*out = malloc(t->n * sizeof(**out));
		if (*out != NULL) {
			memcpy(*out, t->rules, t->n * sizeof(**out));
			n = t->n;
		}
	}
	pthread_mutex_unlock(&admin_lock);
	free(t);
	return n;
}

int
admin_replace(const struct admin_rule *rules, size_t n, struct tern_err *err)
{
	struct admin_table *t = calloc(1, sizeof(*t) + n * sizeof(t->rules[0]));
	double now = util_wallclock();
	size_t i;
	int rc;

	if (t == NULL) {
		tern_err_set(err, 503, "", "out of memory");
		return -ENOMEM;
	}
	for (i = 0; i < n; i++)
		if (rules[i].expires > now)
			t->rules[t->n++] = rules[i];
	pthread_mutex_lock(&admin_lock);
	rc = table_publish(t, err);
	pthread_mutex_unlock(&admin_lock);
	return rc;
}

/* ---- start-up --------------------------------------------------------------------------- */

struct loading {
	struct admin_table *t;
	size_t cap;
	struct tern_err *err;
};

/* One rule as admin_rule_json() wrote it. */
static int
rule_from_span(const struct json_span *v, struct admin_rule *r, struct tern_err *err)
{
	char kind[16];
	struct json_span e;
	size_t k;

	*r = (struct admin_rule){0};
	if (v->type != JSON_OBJECT || parse_selector(v, r, err) < 0 ||
	    get_string(v, "id", r->id, sizeof(r->id), err) < 0 ||
	    get_string(v, "kind", kind, sizeof(kind), err) < 0 ||
	    get_string(v, "name", r->ready_q, sizeof(r->ready_q), err) < 0 ||
	    json_object_get(v, "expires", &e) < 0 || json_number_value(&e, &r->expires) < 0)
		return -EINVAL;
	for (k = 0; k < ADMIN_KINDS && strcmp(kind, kind_names[k]) != 0; k++)
		;
	if (k == ADMIN_KINDS || r->id[0] == '\0')
		return -EINVAL;
	r->kind = (enum admin_kind)k;
	return 0;
}

int
admin_rule_from_json(const char *text, size_t len, struct admin_rule *r, struct tern_err *err)
{
	struct json_span doc;

	if (json_parse_span(text, len, &doc, err) < 0 || rule_from_span(&doc, r, err) < 0) {
		if (err->msg[0] == '\0')
			tern_err_set(err, 0, "", "not an admin rule");
		return -EINVAL;
	}
	return 0;
}

static int
load_rule(void *arg, size_t i, const struct json_span *v)
{
	struct loading *l = arg;
	struct admin_rule r;

	(void)i;
	if (rule_from_span(v, &r, l->err) < 0 || l->t->n >= l->cap)
		return -EINVAL;
	l->t->rules[l->t->n++] = r;
	return 0;
}

static int
table_load(const char *text, size_t len, struct tern_err *err)
{
	struct json_span doc, rules;
	struct loading l = {NULL, len / 16 + 1, err};

	if (json_parse_span(text, len, &doc, err) < 0 || doc.type != JSON_OBJECT ||
	    json_object_get(&doc, "rules", &rules) < 0 || rules.type != JSON_ARRAY)
		return -EINVAL;
	l.t = calloc(1, sizeof(*l.t) + l.cap * sizeof(l.t->rules[0]));
	if (l.t == NULL)
		return -ENOMEM;
	if (json_array_foreach(&rules, load_rule, &l) < 0) {
		free(l.t);
		return -EINVAL;
	}
	admin_current = l.t;
	return 0;
}

int
admin_open(const char *spool_dir, struct tern_err *err)
{
	struct tern_err why = {0};
	struct buf b;
	int rc;

	admin_close();
	if (asprintf(&admin_path, "%s/%s", spool_dir, ADMIN_FILE) < 0) {
		admin_path = NULL;
		return -ENOMEM;
	}
	buf_init(&b);
	rc = util_read_file(admin_path, &b);
	if (rc == -ENOENT)
		rc = 0;
	else if (rc == 0 && table_load(b.data ? b.data : "", b.len, &why) < 0)
		rc = -EINVAL;
	if (rc < 0)
		tern_err_set(err, 0, "", "%s: %s", admin_path,
			     why.msg[0] ? why.msg : "cannot be read or is not a rule list");
	buf_deinit(&b);
	return rc;
}

void
admin_close(void)
{
	struct admin_table *t = admin_current, *next;

	atomic_store(&admin_current, NULL);
	for (; t != NULL; t = next) {
		next = t->retired;
		free(t);
	}
	free(admin_path); admin_path = NULL;
}
