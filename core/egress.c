// SPDX-License-Identifier: MIT
/*
 * Egress. The scheduled queue's shard chooses a source from the pool and
 * posts the message to the shard that owns the ready queue for (source,
 * site). That shard holds the queue's FIFO, its connections and its
 * permits from the limiter (limiter.h: this node's, or the fleet's): a
 * message leaves only when the message rate allows it and a connection is
 * free, and connections never exceed connection_limit.
 *
 * Pools, sources and paths (hooks get_egress_pool, get_egress_source,
 * get_egress_path_config) are asked through config, never Lua, and are
 * memoised per shard.
 */
#include "tern/egress.h"
#include "tern/admin.h"
#include "tern/config.h"
#include "tern/coro.h"
#include "tern/fleet.h"
#include "tern/limiter.h"
#include "tern/log.h"
#include "tern/metrics.h"
#include "tern/logrec.h"
#include "tern/message.h"
#include "tern/outcome.h"
#include "tern/path_state.h"
#include "tern/queue.h"
#include "tern/shard.h"
#include "tern/smtp_client.h"
#include "tern/tls.h"
#include "tern/util_map.h"
#include "tern/warmup.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

/* How long an opportunistic TLS failure sends a path to plain text. */
#define EGRESS_TLS_BROKEN_SECS 600
/* Seconds between looks at whether a suspended path may send again. */
#define EGRESS_SUSPEND_RECHECK_SECS 1.0

struct pool {
	struct egress_pool_cfg cfg;
	struct wrr wrr;
};

struct client_link {
	struct client_link *next;
	struct smtp_client *client;
	uint64_t lease; /* its permit from the limiter, given back when it ends */
};

struct ready_queue {
	struct egress_shard *es;
	char key[600];
	char pool[64];
	struct egress_source_cfg source;
	struct egress_path_cfg path;
	uint64_t path_epoch; /* the config epoch path was asked in */
	struct egress_route *route; /* its own copy */
	struct smtp_client_config ccfg;
	struct queue_msg *head, *tail;
	size_t n_msgs;
	struct limiter_path *limits; /* the path's permits, from egress_limiter() */
	int conn_limit; /* the path's connection_limit as the limiter allows it now */
	int n_conns;
	struct client_link *clients;
	ev_timer wake;
	double tls_broken_until;
	struct util_rate sent; /* messages handed to connections */
};

struct egress_shard {
	struct shard *shard;
	struct map pools;   /* name -> struct pool */
	struct map sources; /* name -> struct egress_source_cfg */
	struct map ready;   /* "source|site" -> struct ready_queue */
	uint64_t cfg_epoch; /* the config epoch pools and sources were asked in */
	SSL_CTX *tls;
	bool ready_state;
	bool closed;
};

/* Sized statically so that no shard has to allocate it first (they start together). */
static struct egress_shard egress_shards[SHARD_MAX];

/* Where suspensions, the limits of paths and their permits come from: this node's, or a fleet's. */
static const struct limiter *
egress_limiter(void)
{
	return fleet_configured() ? limiter_fleet() : limiter_local();
}

/* ---- smooth weighted round-robin ------------------------------------------------------------- */

int
wrr_next(struct wrr *w, const bool *skip)
{
	int total = 0, best = -1;
	size_t i;

	for (i = 0; i < w->n; i++) {
		if (skip && skip[i])
			continue;
		w->current[i] += w->weight[i];
		total += w->weight[i];
		if (best < 0 || w->current[i] > w->current[best])
			best = (int)i;
	}
	if (best >= 0)
		w->current[best] -= total;
	return best;
}

/* ---- per-shard state ------------------------------------------------------------------------- */

static void
pool_free(void *p)
{
	struct pool *pool = p;

	egress_pool_cfg_deinit(&pool->cfg);
	free(pool->wrr.weight);
	free(pool->wrr.current);
	free(pool);
}

static void
ready_queue_free(void *p)
{
	struct ready_queue *rq = p;
	struct queue_msg *m, *next;

	ev_timer_stop(rq->es->shard->loop, &rq->wake);
	egress_limiter()->path_free(rq->limits);
	/* Messages stay in the spool; only their memory goes. */
	for (m = rq->head; m; m = next) {
		next = m->next;
		queue_msg_drop(m);
	}
	free(rq->route);
	free(rq);
}

static void
abort_clients(const char *key, void *value, void *arg)
{
	struct ready_queue *rq = value;

	while (rq->clients)
		smtp_client_abort(rq->clients->client);
}

static void
egress_stop(struct shard *shard, void *arg)
{
	struct egress_shard *es = arg;

	map_foreach(&es->ready, abort_clients, NULL);
}

static void
egress_exit(struct shard *shard, void *arg)
{
	struct egress_shard *es = arg;

	map_foreach(&es->ready, abort_clients, NULL);
	map_deinit(&es->ready, ready_queue_free);
	map_deinit(&es->pools, pool_free);
	map_deinit(&es->sources, free);
	if (es->tls)
		SSL_CTX_free(es->tls);
	es->closed = true;
}

static void
add_ready_size(const char *key, void *value, void *arg)
{
	const struct ready_queue *rq = value;

	metrics_queue_top_add(arg, key, rq->n_msgs);
}

/* Once a second on each shard: publish its ready queues' sizes. */
static void
egress_metrics_tick(struct shard *shard)
{
	struct egress_shard *es = &egress_shards[shard->id];
	struct metrics_queue_top top = {0};

	if (!es->ready_state || es->closed)
		return;
	map_foreach(&es->ready, add_ready_size, &top);
	metrics_queues_publish(METRICS_QUEUE_READY, &top);
}

static void
egress_metrics_register(void)
{
	metrics_on_tick(egress_metrics_tick);
}

static struct egress_shard *
egress_self(struct shard *shard)
{
	static pthread_once_t metrics_once = PTHREAD_ONCE_INIT;
	struct egress_shard *es;
	struct tern_err err;

	es = &egress_shards[shard->id];
	if (!es->ready_state) {
		es->shard = shard;
		map_init(&es->pools);
		map_init(&es->sources);
		map_init(&es->ready);
		es->tls = tls_client_ctx_new(&err);
		if (es->tls == NULL)
			log_warn("egress", "no TLS client context: %s", err.msg);
		shard_on_stop(shard, egress_stop, es);
		shard_on_exit(shard, egress_exit, es);
		es->ready_state = true;
		pthread_once(&metrics_once, egress_metrics_register);
	}
	return es;
}

void
egress_path_defaults(struct egress_path_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->connection_limit = 10;
	c->max_deliveries_per_connection = 100;
	c->tls = SMTP_TLS_OPPORTUNISTIC;
	c->smtp_port = 25;
	c->connect_timeout = 60;
	c->banner_timeout = 60;
	c->ehlo_timeout = 60;
	c->mail_timeout = 60;
	c->rcpt_timeout = 60;
	c->data_timeout = 300;
	c->idle_timeout = 5;
}

void
egress_pool_cfg_deinit(struct egress_pool_cfg *c)
{
	free(c->sources); c->sources = NULL;
	free(c->weights); c->weights = NULL;
	c->n = 0;
}

/* ---- config hooks ---------------------------------------------------------------------------- */

/* Pools and sources are memoised per config epoch: a new epoch asks again. */
static void
forget_stale_config(struct egress_shard *es)
{
	if (es->cfg_epoch == config_epoch(es->shard))
		return;
	map_deinit(&es->pools, pool_free);
	map_deinit(&es->sources, free);
	map_init(&es->pools);
	map_init(&es->sources);
	es->cfg_epoch = config_epoch(es->shard);
}

static struct pool *
get_pool(struct egress_shard *es, const char *name, struct tern_err *err)
{
	struct pool *p;
	int rc;

	forget_stale_config(es);
	p = map_get(&es->pools, name);
	if (p)
		return p;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		goto nomem;
	if (config_pool(es->shard, name, &p->cfg, err) < 0) {
		free(p);
		return NULL;
	}
	p->wrr.n = p->cfg.n;
	p->wrr.weight = p->cfg.weights;
	p->wrr.current = calloc(p->cfg.n, sizeof(int));
	if (p->wrr.current == NULL)
		goto nomem;
	p->cfg.weights = NULL; /* owned by wrr now */
	map_put(&es->pools, name, p, &rc);
	if (rc == 0)
		return p;
nomem:
	if (p)
		pool_free(p);
	tern_err_set(err, 451, "4.3.0", "out of memory");
	return NULL;
}

static struct egress_source_cfg *
get_source(struct egress_shard *es, const char *name, struct tern_err *err)
{
	struct egress_source_cfg *s;
	int rc;

	forget_stale_config(es);
	s = map_get(&es->sources, name);
	if (s)
		return s;
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		tern_err_set(err, 451, "4.3.0", "out of memory");
		return NULL;
	}
	if (config_source(es->shard, name, s, err) < 0) {
		free(s);
		return NULL;
	}
	map_put(&es->sources, name, s, &rc);
	if (rc < 0) {
		free(s);
		tern_err_set(err, 451, "4.3.0", "out of memory");
		return NULL;
	}
	return s;
}

/* ---- outcomes decided here --------------------------------------------------------------------- */

static void
fail_transient(struct queue_msg *m, const char *site, const char *pool, const char *source,
	       const char *text)
{
	struct message *msg = queue_load(m, false);
	struct logrec rec = {.site = site, .egress_pool = pool, .egress_source = source,
			     .response_code = 451, .response_enhanced = "4.4.0",
			     .response_content = text};

	if (msg)
		outcome_transient(m, msg, &rec);
}

/* ---- ready queues ------------------------------------------------------------------------------ */

static void ready_pump(struct ready_queue *rq);

static void
ready_wake_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	ready_pump(w->data);
}

static void
ready_wake_in(struct ready_queue *rq, double secs)
{
	if (ev_is_active(&rq->wake))
		return;
	ev_timer_set(&rq->wake, secs, 0);
	ev_timer_start(rq->es->shard->loop, &rq->wake);
}

static void ready_client_config(struct ready_queue *rq);

/*
 * The path's config, asked again in each new config epoch. Unchanged rates
 * keep their throttles' state, so a reload makes no burst; a changed one
 * starts afresh at once. Connections already open keep their settings.
 */
static void
ready_refresh(struct ready_queue *rq)
{
	struct egress_path_cfg next;
	struct tern_err err;
	uint64_t epoch = config_epoch(rq->es->shard);

	if (rq->path_epoch == epoch)
		return;
	rq->path_epoch = epoch;
	memset(&next, 0, sizeof(next));
	if (config_path(rq->es->shard, rq->route->domain, rq->source.name, rq->route->site, &next,
			&err) < 0) {
		log_warn("egress", "%s: path config: %s; keeping the previous one", rq->key, err.msg);
		return;
	}
	rq->path = next;
	if (rq->n_conns == 0)
		ready_client_config(rq);
}

/*
 * Shaping automation suspended this path: its waiting messages go back to
 * their scheduled queues at once, due now, so that source selection sends
 * them through the pool's other sources (or holds them until the end).
 */
static void
ready_return_all(struct ready_queue *rq)
{
	struct queue_msg *m;
	double now = util_wallclock();

	while ((m = rq->head) != NULL) {
		rq->head = m->next;
		rq->n_msgs--;
		m->due = now;
		queue_requeue(m);
	}
	rq->tail = NULL;
}

/*
 * An operator suspended this path (admin suspend-ready-q): its messages wait;
 * look again each second. Automation suspended it: its messages leave.
 */
static bool
ready_suspended(struct ready_queue *rq)
{
	double until;

	if (egress_limiter()->suspended(rq->source.name, rq->route->site, util_wallclock(), &until)) {
		ready_return_all(rq);
		return true;
	}
	if (admin_match_ready(rq->source.name, rq->route->site) == NULL)
		return false;
	ready_wake_in(rq, EGRESS_SUSPEND_RECHECK_SECS);
	return true;
}

/* The limits the path's config gives (before any override). */
static void
ready_base_limits(const struct egress_path_cfg *path, struct limiter_limits *l)
{
	*l = (struct limiter_limits){
		.max_message_rate = path->max_message_rate,
		.connection_limit = path->connection_limit,
		.max_connection_rate = path->max_connection_rate,
		.max_message_rate_local = path->max_message_rate_local,
		.connection_limit_local = path->connection_limit_local,
		.max_connection_rate_local = path->max_connection_rate_local,
	};
}

/*
 * The path's limits as the limiter allows them now (an override, or the
 * climb back after a suspension): an unchanged rate keeps its state.
 */
static void
ready_apply_limits(struct ready_queue *rq)
{
	struct limiter_limits base, now;

	ready_base_limits(&rq->path, &base);
	egress_limiter()->limits(rq->source.name, rq->route->site, &base, util_wallclock(), &now);
	egress_limiter()->path_tune(rq->limits, &now);
	rq->conn_limit = now.connection_limit;
}

static struct queue_msg *
ready_take(void *arg, struct smtp_client *c)
{
	struct ready_queue *rq = arg;
	struct queue_msg *m = rq->head;
	double wait;

	if (m == NULL || ready_suspended(rq))
		return NULL;
	ready_refresh(rq);
	ready_apply_limits(rq);
	wait = egress_limiter()->take_message(rq->limits, util_now());
	if (wait > 0) {
		ready_wake_in(rq, wait);
		return NULL;
	}
	rq->head = m->next;
	if (rq->head == NULL)
		rq->tail = NULL;
	m->next = NULL;
	rq->n_msgs--;
	util_rate_tick(&rq->sent, util_now());
	return m;
}

/* Nobody could connect: every waiting message goes back to its queue to retry later. */
static void
ready_fail_all(struct ready_queue *rq, const char *why)
{
	struct queue_msg *m;

	while ((m = rq->head) != NULL) {
		rq->head = m->next;
		rq->n_msgs--;
		fail_transient(m, rq->route->site, rq->pool, rq->source.name, why);
	}
	rq->tail = NULL;
}

static void
ready_ended(void *arg, struct smtp_client *c, bool tls_failed, bool unreachable)
{
	struct ready_queue *rq = arg;
	struct client_link **l, *dead;

	/* A client that ends inside smtp_client_start() is still linked as NULL. */
	for (l = &rq->clients; *l && (*l)->client != c; l = &(*l)->next)
		;
	if (*l == NULL)
		for (l = &rq->clients; *l && (*l)->client != NULL; l = &(*l)->next)
			;
	if (*l) {
		dead = *l;
		*l = dead->next;
		egress_limiter()->drop_connection(rq->limits, dead->lease);
		free(dead);
	}
	rq->n_conns--;
	if (tls_failed)
		rq->tls_broken_until = util_now() + EGRESS_TLS_BROKEN_SECS;
	if (unreachable && rq->n_conns == 0)
		ready_fail_all(rq, "no MX host of the site accepted a connection");
	if (!rq->es->shard->stopping)
		ready_wake_in(rq, 0);
}

static void
ready_open_connection(struct ready_queue *rq, uint64_t lease)
{
	struct smtp_client_owner owner = {ready_take, ready_ended, rq};
	struct client_link *link = calloc(1, sizeof(*link));
	struct smtp_client *c;

	if (link == NULL) {
		egress_limiter()->drop_connection(rq->limits, lease);
		return;
	}
	rq->ccfg.skip_tls = util_now() < rq->tls_broken_until;
	rq->n_conns++;
	link->lease = lease;
	link->next = rq->clients;
	rq->clients = link;
	c = smtp_client_start(rq->es->shard->loop, &rq->ccfg, &owner);
	/* NULL: it ended already, and ready_ended() unlinked it. */
	if (c)
		link->client = c;
}

/* Hand waiting messages to idle connections, and open connections while allowed. */
static void
ready_pump(struct ready_queue *rq)
{
	struct client_link *l, *next;

	if (rq->es->shard->stopping || ready_suspended(rq))
		return;
	ready_apply_limits(rq);
	for (l = rq->clients; l && rq->head; l = next) {
		next = l->next;
		if (l->client && smtp_client_idle(l->client))
			smtp_client_kick(l->client);
	}
	/* More waiting than connections to serve them: open another, within the limits. */
	while (rq->head && rq->n_conns < rq->conn_limit &&
	       rq->n_msgs > (size_t)rq->n_conns) {
		uint64_t lease;
		double wait = egress_limiter()->take_connection(rq->limits, rq->n_conns, util_now(),
								&lease);

		if (wait > 0) {
			ready_wake_in(rq, wait);
			return;
		}
		ready_open_connection(rq, lease);
	}
}

static void
ready_client_config(struct ready_queue *rq)
{
	struct smtp_client_config *c = &rq->ccfg;
	size_t i;

	memset(c, 0, sizeof(*c));
	c->pool = rq->pool;
	c->source = rq->source.name;
	c->source_addr = rq->source.has_addr ? &rq->source.addr : NULL;
	c->source_address_text = rq->source.has_addr ? rq->source.addr_text : NULL;
	c->ehlo = rq->path.ehlo[0] ? rq->path.ehlo : rq->source.ehlo;
	c->route = rq->route;
	c->tls = rq->path.tls;
	c->tls_ctx = rq->es->tls;
	c->tls_ca_file = rq->path.tls_ca_file[0] ? rq->path.tls_ca_file : NULL;
	c->max_deliveries = rq->path.max_deliveries_per_connection;
	c->connect_timeout = rq->path.connect_timeout;
	c->banner_timeout = rq->path.banner_timeout;
	c->ehlo_timeout = rq->path.ehlo_timeout;
	c->mail_timeout = rq->path.mail_timeout;
	c->rcpt_timeout = rq->path.rcpt_timeout;
	c->data_timeout = rq->path.data_timeout;
	c->idle_timeout = rq->path.idle_timeout;
	/* MX routes carry port 25; the path may say otherwise (smart hosts keep theirs). */
	for (i = 0; i < rq->route->n_addrs && rq->path.smtp_port != 25; i++) {
		struct sockaddr_storage *a = &rq->route->hops[i].addr;

		if (a->ss_family == AF_INET && ntohs(((struct sockaddr_in *)a)->sin_port) == 25)
			((struct sockaddr_in *)a)->sin_port = htons((uint16_t)rq->path.smtp_port);
		else if (a->ss_family == AF_INET6 && ntohs(((struct sockaddr_in6 *)a)->sin6_port) == 25)
			((struct sockaddr_in6 *)a)->sin6_port = htons((uint16_t)rq->path.smtp_port);
	}
}

static struct ready_queue *
ready_create(struct egress_shard *es, const char *key, const char *source, const char *pool,
	     const struct egress_route *route, struct tern_err *err)
{
	struct egress_source_cfg *src = get_source(es, source, err);
	struct limiter_limits limits;
	struct ready_queue *rq;
	int rc;

	if (src == NULL)
		return NULL;
	rq = calloc(1, sizeof(*rq));
	if (rq == NULL) {
		tern_err_set(err, 451, "4.3.0", "out of memory");
		return NULL;
	}
	rq->es = es;
	snprintf(rq->key, sizeof(rq->key), "%s", key);
	snprintf(rq->pool, sizeof(rq->pool), "%s", pool);
	rq->source = *src;
	rq->route = egress_route_copy(route);
	if (rq->route == NULL) {
		free(rq);
		tern_err_set(err, 451, "4.3.0", "out of memory");
		return NULL;
	}
	/* One path config per (source, site), asked with the first domain that reaches it. */
	if (config_path(es->shard, route->domain, source, route->site, &rq->path, err) < 0) {
		free(rq->route);
		free(rq);
		return NULL;
	}
	rq->path_epoch = config_epoch(es->shard);
	ready_base_limits(&rq->path, &limits);
	rq->limits = egress_limiter()->path_new(key, &limits);
	if (rq->limits == NULL) {
		free(rq->route);
		free(rq);
		tern_err_set(err, 451, "4.3.0", "out of memory");
		return NULL;
	}
	rq->conn_limit = rq->path.connection_limit;
	ev_timer_init(&rq->wake, ready_wake_cb, 0, 0);
	rq->wake.data = rq;
	ready_client_config(rq);
	map_put(&es->ready, key, rq, &rc);
	if (rc < 0) {
		egress_limiter()->path_free(rq->limits);
		free(rq->route);
		free(rq);
		tern_err_set(err, 451, "4.3.0", "out of memory");
		return NULL;
	}
	return rq;
}

/* DNS may have moved: with no connection using the old route, the path takes the new one. */
static void
ready_adopt_route(struct ready_queue *rq, const struct egress_route *route)
{
	struct egress_route *copy = egress_route_copy(route);

	if (copy == NULL)
		return; /* the old route still leads somewhere */
	free(rq->route);
	rq->route = copy;
	ready_client_config(rq);
}

struct submit_req {
	struct queue_msg *m;
	char source[64];
	char pool[64];
	struct egress_route *route; /* in the same allocation, after the request */
};

/* On the ready queue's shard. */
static void
submit_task(void *arg)
{
	struct submit_req *req = arg;
	struct egress_shard *es;
	char key[600];
	struct ready_queue *rq;
	struct tern_err err;

	if (egress_shards[shard_self()->id].closed || queue_is_closed()) {
		queue_msg_drop(req->m);
		free(req);
		return;
	}
	es = egress_self(shard_self());
	snprintf(key, sizeof(key), "%s|%s", req->source, req->route->site);
	rq = map_get(&es->ready, key);
	if (rq == NULL)
		rq = ready_create(es, key, req->source, req->pool, req->route, &err);
	if (rq == NULL) {
		fail_transient(req->m, req->route->site, req->pool, req->source, err.msg);
		free(req);
		return;
	}
	if (rq->n_conns == 0)
		ready_adopt_route(rq, req->route);
	ready_refresh(rq);
	if (rq->tail)
		rq->tail->next = req->m;
	else
		rq->head = req->m;
	rq->tail = req->m;
	rq->n_msgs++;
	free(req);
	ready_pump(rq);
}

static struct shard *
ready_shard_for(const char *source, const char *site)
{
	uint64_t h = util_hash_more(util_hash_more(util_hash(source), "|"), site);

	return shard_get((int)(h % (uint64_t)shard_count()));
}

/*
 * Whether source may take a new message for site. Suspended by automation:
 * no, and *until keeps the earliest end seen. Suspended by an operator: no,
 * but a message may still wait in its ready queue when every source is.
 */
static bool
source_open(const char *source, const char *site, bool *held, double *until)
{
	double end;

	if (egress_limiter()->suspended(source, site, util_wallclock(), &end)) {
		*until = *held && *until < end ? *until : end;
		*held = true;
		return false;
	}
	return admin_match_ready(source, site) == NULL;
}

/*
 * Every source is suspended or skipped for its warm-up cap: the next by weight
 * that may still take a message (a suspended path's ready queue holds it until
 * the suspension ends), or -1 when all are at their cap.
 */
static int
pool_pick_any(struct pool *pool, const char *site)
{
	int pick = wrr_next(&pool->wrr, NULL);
	size_t i;

	if (pick >= 0 && warmup_take(pool->cfg.sources[pick], site))
		return pick;
	for (i = 0; i < pool->cfg.n; i++)
		if (warmup_take(pool->cfg.sources[i], site))
			return (int)i;
	return -1;
}

/*
 * The pool's next source for site, skipping those whose path automation or an
 * operator suspended and warming sources at their cap (a source is counted
 * against its cap only when picked). When none is left: -1 with *until > 0 if
 * automation holds a source (the message waits for the earliest end); else
 * the next source that may still take a message, suspended or not (its ready
 * queue holds it); -1 with *until = 0 when every source is at its cap.
 */
static int
pool_pick(struct pool *pool, const char *site, double *until)
{
	bool *skip = calloc(pool->cfg.n, sizeof(*skip));
	size_t i, n_skip = 0;
	bool held = false;
	int pick = -1;

	*until = 0;
	for (i = 0; skip && i < pool->cfg.n; i++)
		if ((skip[i] = !source_open(pool->cfg.sources[i], site, &held, until)))
			n_skip++;
	while (skip && n_skip < pool->cfg.n) {
		pick = wrr_next(&pool->wrr, skip);
		if (warmup_take(pool->cfg.sources[pick], site))
			break;
		skip[pick] = true;
		n_skip++;
		pick = -1;
	}
	if (pick < 0 && !held)
		pick = pool_pick_any(pool, site);
	free(skip);
	return pick;
}

/* Automation holds m (its tenant or campaign for the site, or every source of its pool): it waits for the end. */
static void
submit_later(struct queue_msg *m, double until)
{
	m->due = until;
	queue_requeue(m);
}

/* Whether automation holds the tenant's or campaign's messages for site: true with *until. */
static bool
queue_held(struct queue_msg *m, const char *site, double *until)
{
	char campaign[128], tenant[128], domain[256];

	queue_name_parse(queue_msg_name(m), campaign, sizeof(campaign), tenant, sizeof(tenant),
			 domain, sizeof(domain));
	return egress_limiter()->held(site, tenant, campaign, util_wallclock(), until);
}

/* Every source of the pool is at its warm-up cap: back to the scheduled queue until one refills. */
static void
wait_for_warmup(struct queue_msg *m, struct pool *pool)
{
	double wait = 0, w;
	size_t i;

	for (i = 0; i < pool->cfg.n; i++) {
		w = warmup_wait(pool->cfg.sources[i]);
		if (i == 0 || w < wait)
			wait = w;
	}
	m->due = util_wallclock() + (wait > 1 ? wait : 1);
	queue_requeue(m);
}

void
egress_submit(struct queue_msg *m, const char *pool_name, const struct egress_route *route)
{
	struct egress_shard *es = egress_self(shard_self());
	struct submit_req *req;
	struct tern_err err;
	struct pool *pool = get_pool(es, pool_name, &err);
	double until;
	int pick;

	if (pool == NULL) {
		fail_transient(m, route->site, pool_name, NULL, err.msg);
		return;
	}
	if (queue_held(m, route->site, &until)) {
		submit_later(m, until);
		return;
	}
	pick = pool_pick(pool, route->site, &until);
	if (pick < 0 && until > 0) {
		submit_later(m, until);
		return;
	}
	if (pick < 0) {
		wait_for_warmup(m, pool);
		return;
	}
	req = malloc(sizeof(*req) + egress_route_size(route));
	if (req == NULL) {
		fail_transient(m, route->site, pool_name, NULL, "out of memory");
		return;
	}
	req->m = m;
	snprintf(req->source, sizeof(req->source), "%s", pool->cfg.sources[pick]);
	snprintf(req->pool, sizeof(req->pool), "%s", pool_name);
	req->route = (struct egress_route *)(req + 1);
	memcpy(req->route, route, egress_route_size(route));
	if (shard_post(ready_shard_for(req->source, route->site), submit_task, req) < 0) {
		free(req);
		fail_transient(m, route->site, pool_name, NULL, "shutting down");
	}
}

static void
summary_ready(const char *key, void *value, void *arg)
{
	struct ready_queue *rq = value;
	struct buf *out = arg;
	char name[700];

	(void)key;
	snprintf(name, sizeof(name), "%s->%s", rq->source.name, rq->route->site);
	if (out->len > 0)
		buf_append_char(out, ',');
	buf_append_str(out, "{\"name\":");
	buf_append_json_string(out, name, strlen(name));
	buf_printf(out, ",\"source\":");
	buf_append_json_string(out, rq->source.name, strlen(rq->source.name));
	buf_printf(out, ",\"site\":");
	buf_append_json_string(out, rq->route->site, strlen(rq->route->site));
	buf_printf(out, ",\"count\":%zu,\"connections\":%d,\"connection_limit\":%d,"
		   "\"max_message_rate\":%g,\"suspended\":%s,\"rate\":%.3f}",
		   rq->n_msgs, rq->n_conns, rq->path.connection_limit, rq->path.max_message_rate,
		   admin_match_ready(rq->source.name, rq->route->site) ||
			   path_state_suspended(rq->source.name, rq->route->site, util_wallclock())
			   ? "true" : "false",
		   util_rate_get(&rq->sent, util_now()));
}

int
egress_summary_shard(struct buf *out)
{
	struct shard *self = shard_self();

	if (self == NULL || egress_shards[self->id].closed || !egress_shards[self->id].ready_state)
		return 0;
	map_foreach(&egress_shards[self->id].ready, summary_ready, out);
	return 0;
}

/* An automation state of a path: "shaping": {action, rule, reply, expires, recovered}. */
static void
states_shaping(const struct path_state *ps, struct buf *out, bool more)
{
	buf_append_str(out, "\"shaping\":{\"action\":");
	buf_append_json_string(out, ps->action, strlen(ps->action));
	buf_append_str(out, ",\"rule\":");
	buf_append_json_string(out, ps->rule, strlen(ps->rule));
	buf_append_str(out, ",\"context\":");
	buf_append_json_string(out, ps->reply, strlen(ps->reply));
	buf_printf(out, ",\"expires\":%.3f,\"recovered\":%.3f}%s", ps->until,
		   ps->until + ps->recovery, more ? "," : "");
}

/* A ready queue's notable states, as KumoMTA's ready-q-states names them. */
static void
states_ready(const char *key, void *value, void *arg)
{
	struct ready_queue *rq = value;
	const struct admin_rule *r = admin_match_ready(rq->source.name, rq->route->site);
	const struct path_state *ps = path_state_find(rq->source.name, rq->route->site,
						      util_wallclock());
	bool limited = rq->head != NULL && rq->n_conns >= rq->conn_limit;
	struct buf *out = arg;
	char name[700];

	(void)key;
	if (r == NULL && ps == NULL && !limited)
		return;
	snprintf(name, sizeof(name), "%s->%s", rq->source.name, rq->route->site);
	if (out->len > 0)
		buf_append_char(out, ',');
	buf_append_json_string(out, name, strlen(name));
	buf_append_str(out, ":{");
	if (r != NULL) {
		buf_append_str(out, "\"suspended\":{\"context\":");
		buf_append_json_string(out, r->reason, strlen(r->reason));
		buf_printf(out, ",\"expires\":%.3f}%s", r->expires, ps || limited ? "," : "");
	}
	if (ps != NULL)
		states_shaping(ps, out, limited);
	if (limited)
		buf_printf(out, "\"connection_limited\":{\"context\":\"%d of %d connections, %zu "
			   "messages waiting\"}", rq->n_conns, rq->conn_limit, rq->n_msgs);
	buf_append_char(out, '}');
}

int
egress_states_shard(struct buf *out)
{
	struct shard *self = shard_self();

	if (self == NULL || egress_shards[self->id].closed || !egress_shards[self->id].ready_state)
		return 0;
	map_foreach(&egress_shards[self->id].ready, states_ready, out);
	return 0;
}

size_t
egress_path_automation(const char *source, const char *site, const uint16_t **ids)
{
	struct shard *self = shard_self();
	struct egress_shard *es;
	struct ready_queue *rq;
	char key[600];

	*ids = NULL;
	if (self == NULL || !egress_shards[self->id].ready_state || egress_shards[self->id].closed)
		return 0;
	es = &egress_shards[self->id];
	snprintf(key, sizeof(key), "%s|%s", source, site);
	rq = map_get(&es->ready, key);
	if (rq == NULL)
		return 0;
	ready_refresh(rq); /* the ids index the rule set of the current epoch */
	*ids = rq->path.automation;
	return rq->path.n_automation;
}
