// SPDX-License-Identifier: MIT
/*
 * Admin endpoints. Rules live in one lock-free table (admin.c) that every
 * shard's scheduler reads, so adding or removing one needs no mailbox; a
 * queue summary does: each queue lives on its shard, so the request visits
 * every shard through its mailbox and the last one posts the answer back.
 * bump-config-epoch asks the main thread for a reload (daemon.h) and answers
 * with its result.
 */
#include "tern/api_admin.h"
#include "tern/admin.h"
#include "tern/daemon.h"
#include "tern/egress.h"
#include "tern/http_server.h"
#include "tern/json.h"
#include "tern/path_state.h"
#include "tern/queue.h"
#include "tern/shard.h"
#include "tern/spool.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Below this share of memory available, the liveness check fails. */
#define ADMIN_MEMORY_FLOOR 0.02

static void
rule_add(struct http_request *req, enum admin_kind kind)
{
	struct admin_rule r;
	struct tern_err err = {0};
	size_t len;
	const char *body = http_request_body(req, &len);
	char out[64];

	if (admin_rule_parse(body, len, kind, &r, &err) < 0 || admin_add(&r, &err) < 0) {
		http_request_reply_error(req, err.code ? (unsigned)err.code : 400, "%s", err.msg);
		return;
	}
	if (kind == ADMIN_BOUNCE)
		queue_admin_sweep();
	snprintf(out, sizeof(out), "{\"id\":\"%s\"}", r.id);
	http_request_reply_json(req, 200, out, strlen(out));
}

static void
rule_list(struct http_request *req, enum admin_kind kind)
{
	struct buf b;

	buf_init(&b);
	admin_list_json(kind, &b);
	http_request_reply_buf(req, 200, &b);
}

static void
rule_remove(struct http_request *req, enum admin_kind kind)
{
	struct tern_err err = {0};
	struct json_span obj, v;
	char id[ADMIN_ID_LEN + 1];
	size_t len;
	const char *body = http_request_body(req, &len);

	if (json_parse_span(body, len, &obj, &err) < 0 || obj.type != JSON_OBJECT) {
		http_request_reply_error(req, 400, "the body must be a JSON object: %s", err.msg);
		return;
	}
	if (json_object_get(&obj, "id", &v) < 0 || admin_json_string(&v, id, sizeof(id)) < 0) {
		http_request_reply_error(req, 422, "field 'id' must be the id a POST returned");
		return;
	}
	if (admin_remove(id, kind, &err) < 0) {
		http_request_reply_error(req, (unsigned)err.code, "%s", err.msg);
		return;
	}
	http_request_reply_json(req, 200, "{}", 2);
}

void
api_admin_suspend_add(struct http_request *req)
{
	rule_add(req, ADMIN_SUSPEND);
}

void
api_admin_suspend_list(struct http_request *req)
{
	rule_list(req, ADMIN_SUSPEND);
}

void
api_admin_suspend_remove(struct http_request *req)
{
	rule_remove(req, ADMIN_SUSPEND);
}

void
api_admin_bounce_add(struct http_request *req)
{
	rule_add(req, ADMIN_BOUNCE);
}

void
api_admin_bounce_list(struct http_request *req)
{
	rule_list(req, ADMIN_BOUNCE);
}

void
api_admin_bounce_remove(struct http_request *req)
{
	rule_remove(req, ADMIN_BOUNCE);
}

void
api_admin_suspend_ready_add(struct http_request *req)
{
	rule_add(req, ADMIN_SUSPEND_READY);
}

void
api_admin_suspend_ready_list(struct http_request *req)
{
	rule_list(req, ADMIN_SUSPEND_READY);
}

void
api_admin_suspend_ready_remove(struct http_request *req)
{
	rule_remove(req, ADMIN_SUSPEND_READY);
}

void
api_admin_rebind(struct http_request *req)
{
	struct admin_rule sel;
	struct json_span data;
	struct tern_err err = {0};
	size_t len;
	const char *body = http_request_body(req, &len);

	if (admin_rebind_parse(body, len, &sel, &data, &err) < 0) {
		http_request_reply_error(req, err.code ? (unsigned)err.code : 400, "%s", err.msg);
		return;
	}
	if (queue_rebind(&sel, data.p, data.len) < 0) {
		http_request_reply_error(req, 503, "out of memory or shutting down");
		return;
	}
	http_request_reply_json(req, 200, "{}", 2);
}

/* ---- queue summary: one visit per shard ---------------------------------------------------- */

struct gather {
	struct http_request *req; /* NULL once the request was dropped */
	bool states;		  /* ready-q-states rather than the queue summary */
	struct shard *origin;
	atomic_int left;
	pthread_mutex_t lock; /* covers sched and ready */
	struct buf sched, ready;
};

static void
gather_abort(void *arg)
{
	((struct gather *)arg)->req = NULL;
}

static void
gather_reply(void *arg)
{
	struct gather *g = arg;
	struct buf b;

	if (g->req != NULL) {
		http_request_on_abort(g->req, NULL, NULL);
		buf_init(&b);
		if (g->states)
			buf_printf(&b, "{\"states_by_ready_queue\":{%.*s}}", (int)g->ready.len,
				   g->ready.data ? g->ready.data : "");
		else
			buf_printf(&b, "{\"scheduled\":[%.*s],\"ready\":[%.*s]}", (int)g->sched.len,
				   g->sched.data ? g->sched.data : "", (int)g->ready.len,
				   g->ready.data ? g->ready.data : "");
		http_request_reply_buf(g->req, 200, &b);
	}
	buf_deinit(&g->sched);
	buf_deinit(&g->ready);
	pthread_mutex_destroy(&g->lock);
	free(g);
}

static void
gather_done_one(struct gather *g)
{
	if (atomic_fetch_sub(&g->left, 1) == 1 && shard_post(g->origin, gather_reply, g) < 0)
		gather_reply(g);
}

/* Caller holds g->lock. */
static void
gather_join(struct buf *to, const struct buf *part)
{
	if (part->len == 0)
		return;
	if (to->len > 0)
		buf_append_char(to, ',');
	buf_append(to, part->data, part->len);
}

static void
gather_visit(void *arg)
{
	struct gather *g = arg;
	struct buf sched, ready;

	buf_init(&sched);
	buf_init(&ready);
	if (g->states) {
		egress_states_shard(&ready);
	} else {
		queue_summary_shard(&sched);
		egress_summary_shard(&ready);
	}
	pthread_mutex_lock(&g->lock);
	gather_join(&g->sched, &sched);
	gather_join(&g->ready, &ready);
	pthread_mutex_unlock(&g->lock);
	buf_deinit(&sched);
	buf_deinit(&ready);
	gather_done_one(g);
}

static void
gather_start(struct http_request *req, bool states)
{
	struct gather *g = calloc(1, sizeof(*g));
	int i, n = shard_count();

	if (g == NULL) {
		http_request_reply_error(req, 503, "out of memory");
		return;
	}
	g->req = req;
	g->states = states;
	g->origin = http_request_shard(req);
	atomic_init(&g->left, n);
	pthread_mutex_init(&g->lock, NULL);
	buf_init(&g->sched);
	buf_init(&g->ready);
	http_request_on_abort(req, gather_abort, g);
	for (i = 0; i < n; i++)
		if (shard_post(shard_get(i), gather_visit, g) < 0)
			gather_done_one(g);
}

void
api_admin_queue_summary(struct http_request *req)
{
	gather_start(req, false);
}

void
api_admin_ready_q_states(struct http_request *req)
{
	gather_start(req, true);
}

/* ---- inspect, liveness ---------------------------------------------------------------------- */

void
api_admin_inspect_message(struct http_request *req)
{
	const char *hex = http_request_arg(req, "id");
	struct spool *sp = queue_spool();
	struct spool_id id;
	struct tern_err err = {0};
	struct buf meta, b;

	if (hex == NULL || spool_id_from_hex(hex, strlen(hex), &id) < 0) {
		http_request_reply_error(req, 422, "argument 'id' must be a message id");
		return;
	}
	buf_init(&meta);
	if (sp == NULL || spool_get_meta(sp, &id, &meta, &err) < 0) {
		buf_deinit(&meta);
		http_request_reply_error(req, 404, "no message %s in the spool", hex);
		return;
	}
	buf_init(&b);
	buf_printf(&b, "{\"id\":\"%s\",\"message\":%.*s}", hex, (int)meta.len, meta.data);
	buf_deinit(&meta);
	http_request_reply_buf(req, 200, &b);
}

/* Share of memory available (MemAvailable / MemTotal), or 1 when it cannot be read. */
static double
memory_available(void)
{
	FILE *f = fopen("/proc/meminfo", "re");
	char line[128];
	double total = 0, avail = 0, v;

	if (f == NULL)
		return 1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "MemTotal: %lf", &v) == 1)
			total = v;
		else if (sscanf(line, "MemAvailable: %lf", &v) == 1)
			avail = v;
	}
	fclose(f);
	return total > 0 ? avail / total : 1;
}

void
api_check_liveness(struct http_request *req)
{
	struct spool *sp = queue_spool();
	struct spool_stats st = {0};

	if (sp != NULL)
		spool_stats(sp, &st);
	if (st.low || st.broken)
		http_request_reply_error(req, 503, "spool %s", st.low ? "disk below its free-space floor"
								       : "partition is reopening");
	else if (memory_available() < ADMIN_MEMORY_FLOOR)
		http_request_reply_error(req, 503, "memory low: under %.0f%% available",
					 ADMIN_MEMORY_FLOOR * 100);
	else
		http_request_reply_json(req, 200, "{\"alive\":true}", 14);
}

void
api_admin_shaping_list(struct http_request *req)
{
	struct buf b;

	buf_init(&b);
	path_state_list_json(&b);
	http_request_reply_buf(req, 200, &b);
}

/* An optional string member of the DELETE body: 0, or -EINVAL naming the field. */
static int
shaping_key(struct http_request *req, const struct json_span *obj, const char *key, char *out,
	    size_t size)
{
	struct json_span v;

	out[0] = '\0';
	if (json_object_get(obj, key, &v) == -ENOENT)
		return 0;
	if (admin_json_string(&v, out, size) == 0)
		return 0;
	http_request_reply_error(req, 422, "field '%s' must be a string of at most %zu bytes", key,
				 size - 1);
	return -EINVAL;
}

void
api_admin_shaping_clear(struct http_request *req)
{
	struct tern_err err = {0};
	struct json_span obj;
	char source[64], site[600], tenant[128], campaign[128], out[64];
	size_t len;
	const char *body = http_request_body(req, &len);
	int n;

	if (json_parse_span(body, len, &obj, &err) < 0 || obj.type != JSON_OBJECT) {
		http_request_reply_error(req, 400, "the body must be a JSON object: %s", err.msg);
		return;
	}
	if (shaping_key(req, &obj, "source", source, sizeof(source)) < 0 ||
	    shaping_key(req, &obj, "site", site, sizeof(site)) < 0 ||
	    shaping_key(req, &obj, "tenant", tenant, sizeof(tenant)) < 0 ||
	    shaping_key(req, &obj, "campaign", campaign, sizeof(campaign)) < 0)
		return;
	n = path_state_clear(source, site, tenant, campaign, &err);
	if (n < 0) {
		http_request_reply_error(req, (unsigned)err.code, "%s", err.msg);
		return;
	}
	snprintf(out, sizeof(out), "{\"cleared\":%d}", n);
	http_request_reply_json(req, 200, out, strlen(out));
}

/* ---- bump-config-epoch: a reload, answered once it has ended ------------------------------- */

/*
 * Shared by the request (its shard) and the reload request (the main thread),
 * each holding one reference: the client may go before the reload ends.
 */
struct bump {
	struct http_request *req; /* NULL once the request was dropped; its shard only */
	struct shard *shard;
	struct daemon_reload_result res;
	atomic_int refs;
};

static void
bump_unref(struct bump *b)
{
	if (atomic_fetch_sub(&b->refs, 1) == 1)
		free(b);
}

static void
bump_abort(void *arg)
{
	struct bump *b = arg;

	b->req = NULL;
	bump_unref(b);
}

static void
bump_reply(struct http_request *req, const struct daemon_reload_result *res)
{
	struct buf b;
	unsigned status = res->status == 0 ? 200 : res->status == -EINVAL ? 422 : 503;

	buf_init(&b);
	buf_printf(&b, "{");
	if (res->status < 0) {
		buf_printf(&b, "\"error\":");
		buf_append_json_string(&b, res->err.msg, strlen(res->err.msg));
		buf_printf(&b, ",");
	}
	buf_printf(&b, "\"epoch\":%llu,\"revision\":", (unsigned long long)res->epoch);
	buf_append_json_string(&b, res->revision, strlen(res->revision));
	buf_printf(&b, "}");
	http_request_reply_buf(req, status, &b);
}

/* On the request's shard. */
static void
bump_done_task(void *arg)
{
	struct bump *b = arg;

	if (b->req != NULL) {
		http_request_on_abort(b->req, NULL, NULL);
		bump_reply(b->req, &b->res);
		bump_unref(b); /* the request's */
	}
	bump_unref(b);
}

/* On the main thread, after the reload. */
static void
bump_done(void *arg, const struct daemon_reload_result *res)
{
	struct bump *b = arg;

	b->res = *res;
	if (shard_post(b->shard, bump_done_task, b) < 0)
		bump_unref(b); /* a stopping shard: the request is dropped with it */
}

void
api_admin_bump_config_epoch(struct http_request *req)
{
	struct bump *b = calloc(1, sizeof(*b));

	if (b == NULL) {
		http_request_reply_error(req, 503, "out of memory");
		return;
	}
	b->req = req;
	b->shard = http_request_shard(req);
	atomic_init(&b->refs, 2);
	http_request_on_abort(req, bump_abort, b);
	if (daemon_request_reload(bump_done, b) < 0) {
		http_request_on_abort(req, NULL, NULL);
		free(b);
		http_request_reply_error(req, 503, "out of memory");
	}
}
