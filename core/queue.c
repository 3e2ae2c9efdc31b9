// SPDX-License-Identifier: MIT
/*
 * Scheduled queues: a min-heap per shard of every queued message by due
 * time, one ev_timer for the earliest, and a map of queues by name. The
 * scheduler decides when; egress decides where and how fast.
 */
#include "tern/queue.h"
#include "tern/coro.h"
#include "tern/dns.h"
#include "tern/egress.h"
#include "tern/log.h"
#include "tern/logrec.h"
#include "tern/lua_bounce.h"
#include "tern/lua_queue.h"
#include "tern/message.h"
#include "tern/policy.h"
#include "tern/shard.h"
#include "tern/throttle.h"
#include "tern/util_heap.h"
#include "tern/util_map.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>
#include <lauxlib.h>

/* Messages taken from the heap per timer tick, so one shard never stalls on a backlog. */
#define QUEUE_DISPATCH_BATCH 512

struct sched_queue {
	char *name;
	char campaign[128], tenant[128], domain[256];
	struct shard *shard;
	bool have_config;
	struct queue_config cfg;
	struct throttle rate;
	/* Written once on the owning shard before any message leaves it; read elsewhere after. */
	double retry_interval, max_retry_interval;
};

struct sched_shard {
	struct shard *shard;
	struct heap heap;
	struct map queues;
	ev_timer timer;
	bool ready;
};

static struct spool *queue_spool_handle;
static struct sched_shard *sched_shards;
/*
 * Set once the shards have stopped: messages still travelling between
 * shards (in mailboxes drained at exit) are dropped from memory, not queued;
 * they stay in the spool for the next start.
 */
static atomic_bool queue_closed;

/* ---- pure ---------------------------------------------------------------------------- */

void
queue_name_parse(const char *name, char *campaign, size_t clen, char *tenant, size_t tlen,
		 char *domain, size_t dlen)
{
	const char *colon = strchr(name, ':');
	const char *rest = colon ? colon + 1 : name;
	const char *at = strrchr(rest, '@');

	snprintf(campaign, clen, "%.*s", colon ? (int)(colon - name) : 0, name);
	snprintf(tenant, tlen, "%.*s", at ? (int)(at - rest) : 0, rest);
	snprintf(domain, dlen, "%s", at ? at + 1 : rest);
}

double
queue_retry_delay(unsigned attempts, double base, double max, double jitter01)
{
	double d = base * pow(2.0, attempts > 0 ? (double)(attempts - 1) : 0);

	if (d > max)
		d = max;
	return d * (0.9 + 0.2 * jitter01);
}

/* ---- shard state ------------------------------------------------------------------------ */

static bool
msg_less(const void *a, const void *b)
{
	return ((const struct queue_msg *)a)->due < ((const struct queue_msg *)b)->due;
}

static void
msg_set_index(void *e, size_t i)
{
	((struct queue_msg *)e)->heap_index = (uint32_t)i;
}

static void sched_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);

static void
sched_queue_free(void *p)
{
	struct sched_queue *q = p;

	queue_config_deinit(&q->cfg);
	free(q->name);
	free(q);
}

static void
sched_exit(struct shard *shard, void *arg)
{
	struct sched_shard *ss = arg;

	ev_timer_stop(shard->loop, &ss->timer);
}

/* Queues are freed only after every shard stopped: other shards hold pointers to them. */
static void
sched_free_all(void)
{
	int i;

	for (i = 0; sched_shards && i < shard_count(); i++) {
		struct sched_shard *ss = &sched_shards[i];
		struct queue_msg *m;

		if (!ss->ready)
			continue;
		while ((m = heap_pop(&ss->heap)) != NULL)
			free(m);
		heap_deinit(&ss->heap);
		map_deinit(&ss->queues, sched_queue_free);
		ss->ready = false;
	}
	free(sched_shards);
	sched_shards = NULL;
}

void
queue_msg_drop(struct queue_msg *m)
{
	free(m);
}

/* Lazily set up on the shard's own thread. */
static struct sched_shard *
sched_self(struct shard *shard)
{
	struct sched_shard *ss = &sched_shards[shard->id];

	if (!ss->ready) {
		ss->shard = shard;
		heap_init(&ss->heap, msg_less, msg_set_index);
		map_init(&ss->queues);
		ev_timer_init(&ss->timer, sched_timer_cb, 0, 0);
		ss->timer.data = ss;
		shard_on_exit(shard, sched_exit, ss);
		ss->ready = true;
	}
	return ss;
}

void
queue_set_spool(struct spool *sp)
{
	queue_spool_handle = sp;
	if (sp == NULL) {
		atomic_store(&queue_closed, true);
		sched_free_all();
		return;
	}
	atomic_store(&queue_closed, false);
	if (sched_shards == NULL)
		sched_shards = xcalloc((size_t)shard_count(), sizeof(*sched_shards));
}

bool
queue_is_closed(void)
{
	return atomic_load(&queue_closed);
}

struct spool *
queue_spool(void)
{
	return queue_spool_handle;
}

const char *
queue_msg_name(const struct queue_msg *m)
{
	return m->queue->name;
}

static void
sched_arm(struct sched_shard *ss)
{
	struct queue_msg *top = heap_peek(&ss->heap);
	double wait;

	ev_timer_stop(ss->shard->loop, &ss->timer);
	if (top == NULL)
		return;
	wait = top->due - util_wallclock();
	ev_timer_set(&ss->timer, wait > 0 ? wait : 0, 0);
	ev_timer_start(ss->shard->loop, &ss->timer);
}

static struct sched_queue *
sched_queue_get(struct sched_shard *ss, const char *name)
{
	struct sched_queue *q = map_get(&ss->queues, name);
	int err;

	if (q)
		return q;
	q = calloc(1, sizeof(*q));
	if (q == NULL || (q->name = strdup(name)) == NULL) {
		free(q);
		return NULL;
	}
	q->shard = ss->shard;
	/* Until get_queue_config answers, failures back off with the default schedule. */
	queue_config_defaults(&q->cfg);
	q->retry_interval = q->cfg.retry_interval;
	q->max_retry_interval = q->cfg.max_retry_interval;
	queue_name_parse(name, q->campaign, sizeof(q->campaign), q->tenant, sizeof(q->tenant),
			 q->domain, sizeof(q->domain));
	map_put(&ss->queues, name, q, &err);
	if (err < 0) {
		sched_queue_free(q);
		return NULL;
	}
	return q;
}

/* On the owning shard: put m in the heap. */
static void
sched_add(struct sched_shard *ss, struct queue_msg *m)
{
	struct queue_msg *top = heap_peek(&ss->heap);

	if (heap_push(&ss->heap, m) < 0) {
		log_error("queue", "out of memory: message left in the spool until restart");
		free(m);
		return;
	}
	if (top == NULL || m->due < top->due)
		sched_arm(ss);
}

/* ---- insertion -------------------------------------------------------------------------- */

struct insert_req {
	struct queue_msg *m;
	char name[];
};

static struct shard *
shard_for(const char *name)
{
	return shard_get((int)(util_hash(name) % (uint64_t)shard_count()));
}

static void
insert_task(void *arg)
{
	struct insert_req *req = arg;
	struct sched_shard *ss;
	struct sched_queue *q;

	if (queue_is_closed()) {
		queue_msg_drop(req->m);
		free(req);
		return;
	}
	ss = sched_self(shard_self());
	q = sched_queue_get(ss, req->name);
	if (q == NULL) {
		log_error("queue", "out of memory creating queue %s", req->name);
		free(req->m);
	} else {
		req->m->queue = q;
		sched_add(ss, req->m);
	}
	free(req);
}

int
queue_insert(const struct spool_id *id, const char *queue_name, double created, unsigned attempts,
	     double due)
{
	size_t len = strlen(queue_name) + 1;
	struct insert_req *req = malloc(sizeof(*req) + len);
	struct queue_msg *m = calloc(1, sizeof(*m));

	if (req == NULL || m == NULL) {
		free(req);
		free(m);
		return -ENOMEM;
	}
	memcpy(req->name, queue_name, len);
	m->id = *id;
	/* Rounded up: an age computed from it is never more than the real age. */
	m->created = (uint32_t)ceil(created);
	m->attempts = (uint16_t)attempts;
	m->due = due;
	req->m = m;
	if (shard_post(shard_for(queue_name), insert_task, req) < 0) {
		free(m);
		free(req);
		return -EPIPE;
	}
	return 0;
}

/* Move m back to its queue's shard with its new due time. */
static void
requeue_task(void *arg)
{
	struct queue_msg *m = arg;

	if (queue_is_closed())
		queue_msg_drop(m);
	else
		sched_add(sched_self(shard_self()), m);
}

static void
requeue(struct queue_msg *m)
{
	m->next = NULL;
	if (shard_post(m->queue->shard, requeue_task, m) < 0) {
		free(m);
	}
}

/* ---- recovery ---------------------------------------------------------------------------- */

struct recovery {
	size_t count;
	double now;
};

static int
recover_one(void *arg, const struct spool_id *id, const char *meta, size_t meta_len,
	    size_t data_len)
{
	struct recovery *r = arg;
	struct message *m = message_new("", NULL);
	struct tern_err err;
	struct buf queue;
	int rc = 0;

	if (m == NULL)
		return -ENOMEM;
	buf_init(&queue);
	if (message_decode_spool_meta(m, meta, meta_len, &err) < 0 ||
	    message_queue_name(m, &queue) < 0) {
		rc = SPOOL_SCAN_QUARANTINE;
	} else if (queue_insert(id, queue.data ? queue.data : "", m->created, m->attempts,
				m->due > 0 ? m->due : r->now) < 0) {
		rc = -ENOMEM;
	} else {
		r->count++;
	}
	buf_deinit(&queue);
	message_free(m);
	return rc;
}

int
queue_recover(struct spool *sp, struct tern_err *err)
{
	struct recovery r = {0, util_wallclock()};
	int rc = spool_scan(sp, recover_one, &r, err);

	log_info("queue", "recovered %zu messages into their queues", r.count);
	return rc;
}

/* ---- records and outcomes ------------------------------------------------------------------ */

static void
finish(struct queue_msg *m, struct message *msg)
{
	message_free(msg);
	free(m);
}

/* attempted: the outcome ends a delivery attempt, which counts in num_attempts. */
static void
write_record(struct queue_msg *m, struct message *msg, struct logrec *rec, const char *type,
	     bool attempted)
{
	rec->type = type;
	rec->msg = msg;
	rec->queue = m->queue->name;
	rec->num_attempts = m->attempts + (attempted ? 1 : 0);
	lua_bounce_record(rec);
	logrec_write(rec);
}

/*
 * A spool partition that is reopening after a failed write cannot be read
 * for a moment: the message stays in the spool and in its queue, and is tried
 * again after its queue's retry interval, without counting an attempt.
 */
static void
retry_load_later(struct queue_msg *m, const char *why)
{
	log_ratelimited(LOG_LEVEL_WARN, "queue", "spool not readable (%s); messages wait for it", why);
	m->due = util_wallclock() + m->queue->retry_interval;
	requeue(m);
}

struct message *
queue_load(struct queue_msg *m, bool with_data)
{
	struct message *msg = message_new("", NULL);
	struct tern_err err;
	struct buf meta;
	char hex[SPOOL_ID_HEX_LEN + 1];
	int rc;

	if (msg == NULL) {
		finish(m, NULL);
		return NULL;
	}
	buf_init(&meta);
	msg->id = m->id;
	if ((rc = spool_get_meta(queue_spool_handle, &m->id, &meta, &err)) < 0 ||
	    (rc = message_decode_spool_meta(msg, meta.data, meta.len, &err)) < 0 ||
	    (with_data &&
	     (rc = spool_get_data(queue_spool_handle, &m->id, &msg->data, &err)) < 0)) {
		message_free(msg);
		buf_deinit(&meta);
		if (rc == -EAGAIN) {
			retry_load_later(m, err.msg);
			return NULL;
		}
		spool_id_to_hex(&m->id, hex);
		log_warn("queue", "message %s cannot be loaded (%s); dropped from its queue", hex,
			 err.msg);
		finish(m, NULL);
		return NULL;
	}
	buf_deinit(&meta);
	return msg;
}

/*
 * Outcomes change the spool without syncing (a crash may repeat a
 * delivery, never lose one), so a shard collects its removals and meta
 * rewrites and writes them together just before its loop waits again: one
 * write per partition per loop iteration instead of one per message.
 * The records of those outcomes go to the kernel first (logrec_commit), so
 * that a message gone from the spool always has its final record.
 */
struct shard_changes {
	struct spool_changes *changes;
	ev_prepare flush;
	bool ready;
};

static struct shard_changes shard_changes[SHARD_MAX];

static void
changes_flush(struct shard_changes *sc)
{
	struct tern_err err;

	if (spool_changes_pending(sc->changes) == 0)
		return;
	logrec_commit();
	if (spool_changes_commit(sc->changes, queue_spool_handle, &err) < 0)
		log_ratelimited(LOG_LEVEL_ERROR, "queue", "%s", err.msg);
}

static void
changes_prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	changes_flush(w->data);
}

static void
changes_exit(struct shard *shard, void *arg)
{
	struct shard_changes *sc = arg;

	changes_flush(sc);
	ev_prepare_stop(shard->loop, &sc->flush);
	spool_changes_free(sc->changes);
	sc->changes = NULL;
	sc->ready = false;
}

/* The calling shard's collector (created on first use, on its own thread). */
static struct spool_changes *
changes_here(void)
{
	struct shard *shard = shard_self();
	struct shard_changes *sc = &shard_changes[shard->id];

	/* Outcomes settled while the shard exits are written at once. */
	if (shard->exiting)
		return NULL;
	if (!sc->ready) {
		sc->changes = spool_changes_new();
		if (sc->changes == NULL)
			return NULL;
		ev_prepare_init(&sc->flush, changes_prepare_cb);
		sc->flush.data = sc;
		ev_prepare_start(shard->loop, &sc->flush);
		shard_on_exit(shard, changes_exit, sc);
		sc->ready = true;
	}
	return sc->changes;
}

static void
remove_from_spool(struct queue_msg *m)
{
	struct spool_changes *c = changes_here();
	struct tern_err err;

	if (c != NULL && spool_changes_remove(c, queue_spool_handle, &m->id) == 0)
		return;
	logrec_commit();
	if (spool_remove(queue_spool_handle, &m->id, &err) < 0)
		log_error("queue", "spool remove failed: %s", err.msg);
}

static void
rewrite_meta(struct queue_msg *m, const struct buf *meta)
{
	struct spool_changes *c = changes_here();
	struct tern_err err;

	if (c != NULL &&
	    spool_changes_update_meta(c, queue_spool_handle, &m->id, meta->data, meta->len) == 0)
		return;
	if (spool_update_meta(queue_spool_handle, &m->id, meta->data, meta->len, &err) < 0)
		log_warn("queue", "attempt count not saved: %s", err.msg);
}

/* An outcome that ends the message's life: record, remove from the spool, free. */
static void
final_outcome(struct queue_msg *m, struct message *msg, struct logrec *rec, const char *type,
	      bool attempted)
{
	write_record(m, msg, rec, type, attempted);
	remove_from_spool(m);
	finish(m, msg);
}

void
queue_delivered(struct queue_msg *m, struct message *msg, struct logrec *rec)
{
	final_outcome(m, msg, rec, "Delivery", true);
}

void
queue_bounced(struct queue_msg *m, struct message *msg, struct logrec *rec)
{
	final_outcome(m, msg, rec, "Bounce", true);
}

static void
expire(struct queue_msg *m, struct message *msg, struct logrec *rec)
{
	final_outcome(m, msg, rec, "Expiration", false);
}

void
queue_transient(struct queue_msg *m, struct message *msg, struct logrec *rec)
{
	struct sched_queue *q = m->queue;
	struct buf meta;

	write_record(m, msg, rec, "TransientFailure", true);
	m->attempts++;
	m->due = util_wallclock() + queue_retry_delay(m->attempts, q->retry_interval,
						       q->max_retry_interval, drand48());
	msg->attempts = m->attempts;
	msg->due = m->due;
	buf_init(&meta);
	if (message_encode_spool_meta(msg, &meta) == 0)
		rewrite_meta(m, &meta);
	buf_deinit(&meta);
	message_free(msg);
	requeue(m);
}

/* An outcome decided on the scheduler's side (DNS, config, expiry): load the message first. */
static void
outcome_here(struct queue_msg *m, int code, const char *enhanced, const char *text,
	     void (*outcome)(struct queue_msg *, struct message *, struct logrec *))
{
	struct message *msg = queue_load(m, false);
	struct logrec rec = {.response_code = code, .response_enhanced = enhanced,
			     .response_content = text};

	if (msg != NULL)
		outcome(m, msg, &rec);
}

/* ---- dispatch ----------------------------------------------------------------------------- */

static int
read_queue_config(lua_State *L, int idx, void *out, struct tern_err *err)
{
	return lua_queue_read_config(L, idx, out, err);
}

/* get_queue_config(domain, tenant, campaign, routing_domain), memoized per queue. */
static int
load_config(struct sched_queue *q, struct tern_err *err)
{
	const char *args[4] = {q->domain, q->tenant, q->campaign, q->domain};
	int rc;

	if (q->have_config)
		return 0;
	queue_config_deinit(&q->cfg);
	rc = policy_call_config(q->shard->policy, "get_queue_config", args, 4, read_queue_config,
				&q->cfg, err);
	if (rc < 0) {
		queue_config_deinit(&q->cfg);
		queue_config_defaults(&q->cfg);
		return rc;
	}
	if (rc == 0)
		queue_config_defaults(&q->cfg);
	throttle_init(&q->rate, q->cfg.max_message_rate, 1);
	q->retry_interval = q->cfg.retry_interval;
	q->max_retry_interval = q->cfg.max_retry_interval;
	q->have_config = true;
	return 0;
}

/* "host:port" (host an IP literal or a name resolved like a domain without MX). */
static int
parse_host_port(const char *s, char *host, size_t hlen, int *port)
{
	const char *colon = strrchr(s, ':');
	const char *h = s;
	size_t n;

	*port = 25;
	if (colon && strchr(colon, ']') == NULL && (s[0] == '[' || strchr(s, ':') == colon)) {
		*port = atoi(colon + 1);
		n = (size_t)(colon - s);
	} else {
		n = strlen(s);
	}
	if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
		h++;
		n -= 2;
	}
	snprintf(host, hlen, "%.*s", (int)n, h);
	return *port > 0 && *port < 65536 ? 0 : -EINVAL;
}

static bool
literal_address(const char *host, int port, struct sockaddr_storage *ss)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		return true;
	}
	if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		return true;
	}
	return false;
}

/* Smart hosts from mx_list; literals only (the list names the site). */
static int
route_from_mx_list(struct sched_queue *q, struct egress_route *r)
{
	size_t i;

	memset(r, 0, sizeof(*r));
	snprintf(r->domain, sizeof(r->domain), "%s", q->domain);
	for (i = 0; i < q->cfg.n_mx && r->n_addrs < EGRESS_MAX_ADDRS; i++) {
		char host[256];
		int port;

		if (parse_host_port(q->cfg.mx_list[i], host, sizeof(host), &port) < 0 ||
		    !literal_address(host, port, &r->addrs[r->n_addrs]))
			return -EINVAL;
		snprintf(r->hosts[r->n_addrs], sizeof(r->hosts[0]), "%s", host);
		r->n_addrs++;
		snprintf(r->site + strlen(r->site), sizeof(r->site) - strlen(r->site), "%s%s",
			 i ? "," : "", q->cfg.mx_list[i]);
	}
	return 0;
}

/* The site key: the sorted MX host names (already sorted by preference then name). */
static void
route_from_dns(struct sched_queue *q, const struct dns_mx_result *res, struct egress_route *r)
{
	size_t i, j;

	memset(r, 0, sizeof(*r));
	snprintf(r->domain, sizeof(r->domain), "%s", q->domain);
	for (i = 0; i < res->n_hosts; i++) {
		const struct dns_mx_host *h = &res->hosts[i];
		size_t used = strlen(r->site);

		snprintf(r->site + used, sizeof(r->site) - used, "%s%s", i ? "," : "", h->name);
		for (j = 0; j < h->n_addrs && r->n_addrs < EGRESS_MAX_ADDRS; j++) {
			r->addrs[r->n_addrs] = h->addrs[j];
			if (r->addrs[r->n_addrs].ss_family == AF_INET)
				((struct sockaddr_in *)&r->addrs[r->n_addrs])->sin_port = htons(25);
			else
				((struct sockaddr_in6 *)&r->addrs[r->n_addrs])->sin6_port = htons(25);
			snprintf(r->hosts[r->n_addrs], sizeof(r->hosts[0]), "%s", h->name);
			r->n_addrs++;
		}
	}
}

static void
dns_done(void *arg, struct dns_mx_result *res)
{
	struct queue_msg *m = arg;
	struct sched_queue *q = m->queue;
	struct egress_route route;
	char text[200];

	snprintf(text, sizeof(text), "DNS: %s for %s", res->error, q->domain);
	switch (res->status) {
	case DNS_OK:
		route_from_dns(q, res, &route);
		egress_submit(m, q->cfg.egress_pool, &route);
		break;
	case DNS_NXDOMAIN:
	case DNS_NULL_MX:
		outcome_here(m, 550, res->status == DNS_NULL_MX ? "5.1.10" : "5.1.2", text,
			     queue_bounced);
		break;
	default:
		outcome_here(m, 451, "4.4.3", text, queue_transient);
	}
}

static void
dispatch(struct sched_shard *ss, struct queue_msg *m)
{
	struct sched_queue *q = m->queue;
	struct egress_route route;
	struct tern_err err;
	double wait;

	if (load_config(q, &err) < 0) {
		outcome_here(m, 451, "4.3.0", err.msg, queue_transient);
		return;
	}
	if (util_wallclock() - (double)m->created > q->cfg.max_age) {
		outcome_here(m, 551, "5.4.7", "message expired: too old to deliver", expire);
		return;
	}
	wait = throttle_take(&q->rate, util_now());
	if (wait > 0) {
		m->due = util_wallclock() + wait;
		sched_add(ss, m);
		return;
	}
	if (q->cfg.n_mx > 0) {
		if (route_from_mx_list(q, &route) < 0)
			outcome_here(m, 451, "4.3.5", "mx_list entries must be IP:port", queue_transient);
		else
			egress_submit(m, q->cfg.egress_pool, &route);
		return;
	}
	dns_resolve_mx(dns_for_shard(ss->shard), q->domain, dns_done, m);
}

static void
sched_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sched_shard *ss = w->data;
	double now = util_wallclock();
	struct queue_msg *m;
	int n = 0;

	while (n++ < QUEUE_DISPATCH_BATCH && (m = heap_peek(&ss->heap)) != NULL && m->due <= now) {
		heap_pop(&ss->heap);
		dispatch(ss, m);
	}
	sched_arm(ss);
}
