// SPDX-License-Identifier: MIT
/*
 * Scheduled queues: a min-heap per shard of every queued message by due
 * time, one ev_timer for the earliest, and a map of queues by name. The
 * scheduler decides when; egress decides where and how fast.
 */
#include "tern/queue.h"
#include "tern/admin.h"
#include "tern/config.h"
#include "tern/coro.h"
#include "tern/egress.h"
#include "tern/egress_route.h"
#include "tern/json.h"
#include "tern/log.h"
#include "tern/metrics.h"
#include "tern/logrec.h"
#include "tern/message.h"
#include "tern/outcome.h"
#include "tern/shard.h"
#include "tern/throttle.h"
#include "tern/util_heap.h"
#include "tern/util_map.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

/* Messages taken from the heap per timer tick, so one shard never stalls on a backlog. */
#define QUEUE_DISPATCH_BATCH 512
/* Seconds between checks whether a suspended queue's messages may go again. */
#define QUEUE_RELEASE_INTERVAL 1.0

struct sched_queue {
	char *name;
	char campaign[128], tenant[128], domain[256];
	struct shard *shard;
	bool have_config;
	uint64_t config_epoch;
	struct queue_config cfg;
	struct throttle rate;
	/* Written once on the owning shard before any message leaves it; read elsewhere after. */
	double retry_interval, max_retry_interval;
	/* Messages held by an admin suspension (linked by next), off the heap until it ends. */
	struct queue_msg *parked;
	size_t n_parked;
	struct util_rate dispatched; /* messages routed on to egress */
	/* Scratch for queue_summary_shard(). */
	size_t sum_count;
	uint32_t sum_oldest;
	uint64_t size; /* messages in the heap now (metrics) */
};

struct sched_shard {
	struct shard *shard;
	struct heap heap;
	struct map queues;
	ev_timer timer;
	ev_timer release; /* runs while some queue has parked messages */
	size_t n_parked;
	bool ready;
	/* The oldest message's creation time, found by a scan every QUEUE_OLDEST_TICKS ticks. */
	double oldest;
	unsigned oldest_tick;
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
static void sched_release_cb(struct ev_loop *loop, ev_timer *w, int revents);

static void
sched_queue_free(void *p)
{
	struct sched_queue *q = p;
	struct queue_msg *m;

	while ((m = q->parked) != NULL) {
		q->parked = m->next;
		free(m);
	}
	queue_config_deinit(&q->cfg);
	free(q->name);
	free(q);
}

static void
sched_exit(struct shard *shard, void *arg)
{
	struct sched_shard *ss = arg;

	ev_timer_stop(shard->loop, &ss->timer);
	ev_timer_stop(shard->loop, &ss->release);
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
		ev_timer_init(&ss->release, sched_release_cb, QUEUE_RELEASE_INTERVAL,
			      QUEUE_RELEASE_INTERVAL);
		ss->release.data = ss;
		shard_on_exit(shard, sched_exit, ss);
		ss->ready = true;
	}
	return ss;
}

static void
add_queue_size(const char *name, void *value, void *arg)
{
	const struct sched_queue *q = value;

	metrics_queue_top_add(arg, name, q->size + q->n_parked);
}

/*
 * The age metric needs the minimum creation time, which the heap (ordered
 * by due time) does not keep: a scan of every message. It runs every 15 s
 * (a scrape interval), not each second, so that a shard holding a million
 * messages spends a fraction of a percent of its time on it.
 */
#define QUEUE_OLDEST_TICKS 15

static void
oldest_of_parked(const char *name, void *value, void *arg)
{
	const struct sched_queue *q = value;
	const struct queue_msg *m;
	uint32_t *oldest = arg;

	(void)name;
	for (m = q->parked; m != NULL; m = m->next)
		if (*oldest == 0 || m->created < *oldest)
			*oldest = m->created;
}

static double
shard_oldest(struct sched_shard *ss)
{
	uint32_t oldest = 0;
	size_t i;

	for (i = 0; i < ss->heap.n; i++) {
		const struct queue_msg *m = ss->heap.v[i];

		if (oldest == 0 || m->created < oldest)
			oldest = m->created;
	}
	map_foreach(&ss->queues, oldest_of_parked, &oldest);
	return (double)oldest;
}

/* Once a second on each shard: publish its scheduled queues' sizes (and the oldest message). */
static void
queue_metrics_tick(struct shard *shard)
{
	struct metrics_queue_top top = {0};
	struct sched_shard *ss;

	if (queue_is_closed() || sched_shards == NULL)
		return;
	ss = &sched_shards[shard->id];
	if (ss->ready) {
		map_foreach(&ss->queues, add_queue_size, &top);
		if (ss->oldest_tick++ % QUEUE_OLDEST_TICKS == 0)
			ss->oldest = shard_oldest(ss);
	}
	top.oldest = ss->oldest;
	metrics_queues_publish(METRICS_QUEUE_SCHEDULED, &top);
}

/* Once per process: a spool may be set again (tests), the tick must not run twice. */
static pthread_once_t metrics_once = PTHREAD_ONCE_INIT;

static void
queue_metrics_register(void)
{
	metrics_on_tick(queue_metrics_tick);
}

const char *
queue_msg_tenant(const struct queue_msg *m)
{
	return m->queue->tenant;
}

const char *
queue_msg_campaign(const struct queue_msg *m)
{
	return m->queue->campaign;
}

const char *
queue_msg_domain(const struct queue_msg *m)
{
	return m->queue->domain;
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
	pthread_once(&metrics_once, queue_metrics_register);
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
	m->queue->size++;
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

void
queue_requeue(struct queue_msg *m)
{
	m->next = NULL;
	if (shard_post(m->queue->shard, requeue_task, m) < 0) {
		free(m);
	}
}

double
queue_retry_due(const struct queue_msg *m)
{
	const struct sched_queue *q = m->queue;

	return util_wallclock() + queue_retry_delay(m->attempts, q->retry_interval,
						    q->max_retry_interval, drand48());
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

/* ---- loading ------------------------------------------------------------------------------- */

static void
finish(struct queue_msg *m, struct message *msg)
{
	message_free(msg);
	free(m);
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
	queue_requeue(m);
}

struct message *
queue_load(struct queue_msg *m, bool with_data)
{
	struct message *msg = spool_take_kept(queue_spool_handle, &m->id);
	struct tern_err err;
	struct buf meta;
	char hex[SPOOL_ID_HEX_LEN + 1];
	int rc;

	/* A first attempt: the copy kept since reception is the spooled message. */
	if (msg != NULL)
		return msg;
	msg = message_new("", NULL);
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

void
queue_config_defaults(struct queue_config *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->egress_pool, sizeof(c->egress_pool), "default");
	c->retry_interval = 20 * 60;
	c->max_retry_interval = 8 * 3600;
	c->max_age = 5 * 86400;
}

void
queue_config_deinit(struct queue_config *c)
{
	free(c->mx_list); c->mx_list = NULL;
	c->n_mx = 0;
}

/* ---- dispatch ----------------------------------------------------------------------------- */

/* The queue's config (get_queue_config), memoised per queue and config epoch. */
static int
load_config(struct sched_queue *q, struct tern_err *err)
{
	int rc;

	if (q->have_config && q->config_epoch == config_epoch(q->shard))
		return 0;
	queue_config_deinit(&q->cfg);
	rc = config_queue(q->shard, q->domain, q->tenant, q->campaign, &q->cfg, err);
	if (rc < 0)
		return rc;
	if (q->have_config)
		throttle_retune(&q->rate, q->cfg.max_message_rate, 1);
	else
		throttle_init(&q->rate, q->cfg.max_message_rate, 1);
	q->retry_interval = q->cfg.retry_interval;
	q->max_retry_interval = q->cfg.max_retry_interval;
	q->have_config = true;
	q->config_epoch = config_epoch(q->shard);
	return 0;
}

/* Routed (egress_route_resolve): on to egress, or settled with the reply routing gave. */
static void
routed(void *arg, const struct egress_route *route, int code, const char *enhanced,
       const char *text)
{
	struct queue_msg *m = arg;

	if (code == 0) {
		util_rate_tick(&m->queue->dispatched, util_now());
		egress_submit(m, m->queue->cfg.egress_pool, route);
	} else
		outcome_here(m, code, enhanced, text, code >= 500 ? outcome_bounced : outcome_transient);
}

/* ---- admin rules --------------------------------------------------------------------------- */

static const struct admin_rule *
queue_rule(const struct sched_queue *q, enum admin_kind kind)
{
	return admin_match(kind, q->name, q->domain, q->tenant, q->campaign);
}

/* An admin bounce settles m now; a suspension parks it in its queue. True when m was taken. */
static bool
admin_hold(struct sched_shard *ss, struct queue_msg *m)
{
	struct sched_queue *q = m->queue;
	const struct admin_rule *r = queue_rule(q, ADMIN_BOUNCE);
	char text[320];

	if (r != NULL) {
		snprintf(text, sizeof(text), "Administrator bounced with reason: %s", r->reason);
		outcome_here(m, 551, "5.7.1", text, outcome_admin_bounced);
		return true;
	}
	if (queue_rule(q, ADMIN_SUSPEND) == NULL)
		return false;
	m->next = q->parked;
	q->parked = m;
	q->n_parked++;
	ss->n_parked++;
	if (!ev_is_active(&ss->release))
		ev_timer_again(ss->shard->loop, &ss->release);
	return true;
}

/* Parked messages whose suspension ended (or that an admin bounce now takes) are due now. */
static void
release_queue(const char *name, void *value, void *arg)
{
	struct sched_queue *q = value;
	struct sched_shard *ss = arg;
	struct queue_msg *m;
	double now = util_wallclock();

	(void)name;
	if (q->parked == NULL ||
	    (queue_rule(q, ADMIN_SUSPEND) != NULL && queue_rule(q, ADMIN_BOUNCE) == NULL))
		return;
	ss->n_parked -= q->n_parked;
	q->n_parked = 0;
	while ((m = q->parked) != NULL) {
		q->parked = m->next;
		m->next = NULL;
		m->due = now;
		sched_add(ss, m);
	}
}

static void
sched_release_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sched_shard *ss = w->data;

	(void)revents;
	map_foreach(&ss->queues, release_queue, ss);
	if (ss->n_parked == 0)
		ev_timer_stop(loop, w);
}

typedef bool (*queue_pick_fn)(const struct sched_queue *q, const void *arg);

struct take {
	queue_pick_fn pick;
	const void *arg;
	struct sched_shard *ss;
	struct queue_msg *chain;
};

static void
take_parked(const char *name, void *value, void *arg)
{
	struct sched_queue *q = value;
	struct take *t = arg;
	struct queue_msg *m;

	(void)name;
	if (q->parked == NULL || !t->pick(q, t->arg))
		return;
	while ((m = q->parked) != NULL) {
		q->parked = m->next;
		m->next = t->chain;
		t->chain = m;
	}
	t->ss->n_parked -= q->n_parked;
	q->n_parked = 0;
}

/* Take the messages of every queue pick accepts, waiting or parked: a chain linked by next. */
static struct queue_msg *
take_matching(struct sched_shard *ss, queue_pick_fn pick, const void *arg)
{
	struct take t = {pick, arg, ss, NULL};
	struct queue_msg *heaped = NULL, *m;
	size_t i;

	for (i = 0; i < ss->heap.n; i++) {
		m = ss->heap.v[i];
		if (pick(m->queue, arg)) {
			m->next = heaped;
			heaped = m;
		}
	}
	/* Removed after the walk: a removal moves other elements around the heap. */
	while ((m = heaped) != NULL) {
		heaped = m->next;
		heap_remove(&ss->heap, m->heap_index);
		m->next = t.chain;
		t.chain = m;
	}
	map_foreach(&ss->queues, take_parked, &t);
	return t.chain;
}

static bool
pick_bounced(const struct sched_queue *q, const void *arg)
{
	(void)arg;
	return queue_rule(q, ADMIN_BOUNCE) != NULL;
}

/* Every message an admin bounce matches is due now (and is bounced when dispatched). */
static void
sweep_task(void *arg)
{
	struct sched_shard *ss;
	struct queue_msg *m, *chain;
	double now = util_wallclock();

	(void)arg;
	if (queue_is_closed())
		return;
	ss = sched_self(shard_self());
	chain = take_matching(ss, pick_bounced, NULL);
	while ((m = chain) != NULL) {
		chain = m->next;
		m->next = NULL;
		m->due = now;
		sched_add(ss, m);
	}
	sched_arm(ss);
}

int
queue_admin_sweep(void)
{
	int i, rc = 0;

	for (i = 0; i < shard_count(); i++)
		if (shard_post(shard_get(i), sweep_task, NULL) < 0)
			rc = -EPIPE;
	return rc;
}

static void
wake_task(void *arg)
{
	double *due = arg, now = util_wallclock();
	struct queue_msg *chain = NULL, *m;
	struct sched_shard *ss;
	size_t i;

	if (queue_is_closed()) {
		free(due);
		return;
	}
	ss = sched_self(shard_self());
	for (i = 0; i < ss->heap.n; i++) {
		m = ss->heap.v[i];
		if (m->due == *due) {
			m->next = chain;
			chain = m;
		}
	}
	free(due);
	/* Removed after the walk: a removal moves other elements around the heap. */
	while ((m = chain) != NULL) {
		chain = m->next;
		heap_remove(&ss->heap, m->heap_index);
		m->queue->size--;
		m->next = NULL;
		m->due = now;
		sched_add(ss, m);
	}
	sched_arm(ss);
}

int
queue_wake_due_at(double due)
{
	int i, rc = 0;

	for (i = 0; i < shard_count(); i++) {
		double *arg = malloc(sizeof(*arg));

		if (arg == NULL)
			return -ENOMEM;
		*arg = due;
		if (shard_post(shard_get(i), wake_task, arg) < 0) {
			free(arg);
			rc = -EPIPE;
		}
	}
	return rc;
}

/* ---- rebind ------------------------------------------------------------------------------- */

struct rebind {
	struct admin_rule sel;
	char *data; /* a JSON object: meta to set */
	size_t data_len;
};

static bool
pick_rebind(const struct sched_queue *q, const void *arg)
{
	const struct rebind *rb = arg;

	return admin_rule_matches(&rb->sel, q->name, q->domain, q->tenant, q->campaign);
}

static int
set_member(void *arg, const char *key, size_t keylen, const struct json_span *val)
{
	if (memchr(key, '\0', keylen) != NULL)
		return 0;
	return message_set_meta(arg, key, val->p, val->len);
}

/* Set m's meta from rb, save it, and queue m again under the queue name its meta now gives. */
static void
rebind_one(struct queue_msg *m, const struct rebind *rb)
{
	struct message *msg = queue_load(m, false);
	struct json_span data = {JSON_OBJECT, rb->data, rb->data_len};
	struct tern_err err;
	struct buf meta, name;

	if (msg == NULL)
		return;
	buf_init(&meta);
	buf_init(&name);
	if (json_object_foreach(&data, set_member, msg) < 0 ||
	    message_encode_spool_meta(msg, &meta) < 0 || message_queue_name(msg, &name) < 0 ||
	    spool_update_meta(queue_spool_handle, &m->id, meta.data, meta.len, &err) < 0 ||
	    queue_insert(&m->id, name.data ? name.data : "", m->created, m->attempts,
			 util_wallclock()) < 0) {
		log_warn("queue", "rebind failed; the message stays in %s", m->queue->name);
		m->due = util_wallclock();
		queue_requeue(m);
	} else {
		queue_msg_drop(m);
	}
	buf_deinit(&meta);
	buf_deinit(&name);
	message_free(msg);
}

static void
rebind_task(void *arg)
{
	struct rebind *rb = arg;
	struct queue_msg *m, *chain;

	if (!queue_is_closed()) {
		chain = take_matching(sched_self(shard_self()), pick_rebind, rb);
		while ((m = chain) != NULL) {
			chain = m->next;
			m->next = NULL;
			rebind_one(m, rb);
		}
		sched_arm(sched_self(shard_self()));
	}
	free(rb->data);
	free(rb);
}

int
queue_rebind(const struct admin_rule *sel, const char *data, size_t len)
{
	int i, rc = 0;

	for (i = 0; i < shard_count(); i++) {
		struct rebind *rb = malloc(sizeof(*rb));

		if (rb == NULL || (rb->data = malloc(len + 1)) == NULL) {
			free(rb);
			return -ENOMEM;
		}
		rb->sel = *sel;
		memcpy(rb->data, data, len);
		rb->data[len] = '\0';
		rb->data_len = len;
		if (shard_post(shard_get(i), rebind_task, rb) < 0) {
			free(rb->data);
			free(rb);
			rc = -EPIPE;
		}
	}
	return rc;
}

static void
summary_count(struct queue_msg *m)
{
	struct sched_queue *q = m->queue;

	if (q->sum_count++ == 0 || m->created < q->sum_oldest)
		q->sum_oldest = m->created;
}

static void
summary_parked(const char *name, void *value, void *arg)
{
	struct sched_queue *q = value;
	struct queue_msg *m;

	(void)name;
	(void)arg;
	for (m = q->parked; m != NULL; m = m->next)
		summary_count(m);
}

static void
summary_queue(const char *name, void *value, void *arg)
{
	struct sched_queue *q = value;
	struct buf *out = arg;
	double now = util_wallclock();

	if (q->sum_count == 0)
		return;
	if (out->len > 0)
		buf_append_char(out, ',');
	buf_append_str(out, "{\"name\":");
	buf_append_json_string(out, name, strlen(name));
	buf_append_str(out, ",\"domain\":");
	buf_append_json_string(out, q->domain, strlen(q->domain));
	buf_printf(out, ",\"count\":%zu,\"suspended_count\":%zu,\"oldest_age\":%.0f,"
		   "\"suspended\":%s,\"max_message_rate\":%g,\"rate\":%.3f}",
		   q->sum_count, q->n_parked, now > q->sum_oldest ? now - q->sum_oldest : 0.0,
		   queue_rule(q, ADMIN_SUSPEND) ? "true" : "false", q->cfg.max_message_rate,
		   util_rate_get(&q->dispatched, util_now()));
	q->sum_count = 0;
}

int
queue_summary_shard(struct buf *out)
{
	struct shard *self = shard_self();
	struct sched_shard *ss;
	size_t i;

	if (self == NULL || sched_shards == NULL || queue_is_closed() ||
	    !sched_shards[self->id].ready)
		return 0;
	ss = &sched_shards[self->id];
	for (i = 0; i < ss->heap.n; i++)
		summary_count(ss->heap.v[i]);
	map_foreach(&ss->queues, summary_parked, NULL);
	map_foreach(&ss->queues, summary_queue, out);
	return 0;
}

static void
dispatch(struct sched_shard *ss, struct queue_msg *m)
{
	struct sched_queue *q = m->queue;
	struct tern_err err;
	double wait;

	if (admin_hold(ss, m))
		return;
	if (load_config(q, &err) < 0) {
		outcome_here(m, 451, "4.3.0", err.msg, outcome_transient);
		return;
	}
	if (util_wallclock() - (double)m->created > q->cfg.max_age) {
		outcome_here(m, 551, "5.4.7", "message expired: too old to deliver",
			     outcome_expired);
		return;
	}
	wait = throttle_take(&q->rate, util_now());
	if (wait > 0) {
		m->due = util_wallclock() + wait;
		sched_add(ss, m);
		return;
	}
	egress_route_resolve(ss->shard, q->domain, q->cfg.mx_list, q->cfg.n_mx, routed, m);
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
		m->queue->size--;
		dispatch(ss, m);
	}
	sched_arm(ss);
}
