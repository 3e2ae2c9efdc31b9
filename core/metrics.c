// SPDX-License-Identifier: MIT
/*
 * Per-shard metric slots, summed at scrape time (see metrics.h for why).
 *
 * A slot is allocated by its own shard on first use and published with a
 * release store, so a scrape either sees no slot or a whole one. Label
 * values are appended, never moved or reused: a shard writes the value,
 * then publishes the new count with a release store; a scrape reads only
 * the values below the count it loaded with acquire. Cells are _Atomic and
 * touched with relaxed loads and stores, which compile to plain moves: the
 * point is that a reader never sees half a value, not ordering.
 *
 * Queue snapshots, the history ring and the TLS table change once a second
 * or at start-up, off the message path: a mutex each is the simple choice.
 */
#include "tern/metrics.h"
#include "tern/shard.h"
#include "tern/util.h"

#include <ev.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METRICS_TLS_MAX 32

struct metrics_label {
	uint64_t hash;
	char value[METRICS_LABEL_MAX];
	_Atomic uint64_t n[METRICS_OUTCOME_COUNT];
};

struct metrics_family_cells {
	_Atomic unsigned used;
	struct metrics_label labels[METRICS_LABELS_PER_SHARD];
	_Atomic uint64_t other[METRICS_OUTCOME_COUNT];
};

struct metrics_histogram_cells {
	_Atomic uint64_t buckets[METRICS_BUCKETS_MAX + 1];
	_Atomic uint64_t count;
	_Atomic uint64_t sum_micro; /* sum * 1e6, so that it stays an integer cell */
};

struct metrics_queue_snapshot {
	pthread_mutex_t lock;
	struct metrics_queue_top q;
};

struct metrics_slot {
	_Atomic uint64_t counters[METRICS_COUNTER_COUNT];
	_Atomic uint64_t outcomes[METRICS_OUTCOME_COUNT];
	struct metrics_family_cells families[METRICS_FAMILY_COUNT];
	struct metrics_histogram_cells histograms[METRICS_HISTOGRAM_COUNT];
	struct metrics_queue_snapshot queues[METRICS_QUEUE_KIND_COUNT];
};

static const double latency_bounds[] = {1, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400, 259200};
static const double hook_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
				     0.025,  0.05,    0.1,    0.5,   1,	     5};
static const double batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096};

static const struct {
	const double *bounds;
	size_t n;
} histogram_bounds[METRICS_HISTOGRAM_COUNT] = {
    [METRICS_DELIVERY_LATENCY] = {latency_bounds, sizeof(latency_bounds) / sizeof(double)},
    [METRICS_HOOK_TIME] = {hook_bounds, sizeof(hook_bounds) / sizeof(double)},
    [METRICS_SYNC_BATCH] = {batch_bounds, sizeof(batch_bounds) / sizeof(double)},
};

static _Atomic(struct metrics_slot *) slots[SHARD_MAX];
/* Threads that are not shards share this one, with atomic adds. */
static struct metrics_slot shared_slot;
static pthread_once_t shared_once = PTHREAD_ONCE_INIT;

static _Atomic uint64_t reload_failures;
static _Atomic uint64_t policy_epoch = 1;

static pthread_mutex_t tls_lock = PTHREAD_MUTEX_INITIALIZER;
static struct metrics_tls_expiry tls_expiry[METRICS_TLS_MAX];
static size_t n_tls_expiry;

static pthread_mutex_t history_lock = PTHREAD_MUTEX_INITIALIZER;
static struct metrics_history_point history[METRICS_HISTORY_SECONDS];
static size_t history_next, history_len;

/* ---- slots ------------------------------------------------------------------------------- */

static void
slot_init(struct metrics_slot *s)
{
	int k;

	for (k = 0; k < METRICS_QUEUE_KIND_COUNT; k++)
		pthread_mutex_init(&s->queues[k].lock, NULL);
}

static void
shared_slot_init(void)
{
	slot_init(&shared_slot);
}

/* The calling shard's slot (allocated on first use), or NULL off the shards. */
static struct metrics_slot *
own_slot(void)
{
	struct shard *sh = shard_self();
	struct metrics_slot *s;

	if (sh == NULL || sh->id < 0 || sh->id >= SHARD_MAX)
		return NULL;
	s = atomic_load_explicit(&slots[sh->id], memory_order_acquire);
	if (s != NULL)
		return s;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	slot_init(s);
	atomic_store_explicit(&slots[sh->id], s, memory_order_release);
	return s;
}

/* The slot to read, i-th of shards then the shared one; NULL when that shard never counted. */
static struct metrics_slot *
read_slot(int i)
{
	if (i == SHARD_MAX) {
		pthread_once(&shared_once, shared_slot_init);
		return &shared_slot;
	}
	return atomic_load_explicit(&slots[i], memory_order_acquire);
}

/* Own cell: load and store, no read-modify-write. Shared cell: an atomic add. */
static void
cell_add(_Atomic uint64_t *cell, uint64_t n, bool own)
{
	if (own)
		atomic_store_explicit(cell, atomic_load_explicit(cell, memory_order_relaxed) + n,
				      memory_order_relaxed);
	else
		atomic_fetch_add_explicit(cell, n, memory_order_relaxed);
}

static uint64_t
cell_get(_Atomic uint64_t *cell)
{
	return atomic_load_explicit(cell, memory_order_relaxed);
}

/* ---- writing ----------------------------------------------------------------------------- */

void
metrics_add(enum metrics_counter c, uint64_t n)
{
	struct metrics_slot *s = own_slot();

	if (s != NULL)
		cell_add(&s->counters[c], n, true);
	else
		cell_add(&read_slot(SHARD_MAX)->counters[c], n, false);
}

void
metrics_inc(enum metrics_counter c)
{
	metrics_add(c, 1);
}

static uint64_t
label_hash(const char *v)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *v; v++)
		h = (h ^ (unsigned char)*v) * 1099511628211ULL;
	return h;
}

/* The cells of value v in family f of the calling shard's slot: found, added, or NULL when full. */
static _Atomic uint64_t *
label_cells(struct metrics_family_cells *f, const char *v)
{
	unsigned used = atomic_load_explicit(&f->used, memory_order_relaxed);
	char key[METRICS_LABEL_MAX];
	uint64_t h;
	unsigned i;

	snprintf(key, sizeof(key), "%s", v);
	h = label_hash(key);
	for (i = 0; i < used; i++)
		if (f->labels[i].hash == h && strcmp(f->labels[i].value, key) == 0)
			return f->labels[i].n;
	if (used == METRICS_LABELS_PER_SHARD)
		return NULL;
	f->labels[used].hash = h;
	memcpy(f->labels[used].value, key, sizeof(key));
	atomic_store_explicit(&f->used, used + 1, memory_order_release);
	return f->labels[used].n;
}

static void
family_add(enum metrics_family fam, const char *v, enum metrics_outcome o, uint64_t n)
{
	struct metrics_slot *s = own_slot();
	_Atomic uint64_t *cells;

	if (v == NULL || *v == '\0')
		return;
	if (s == NULL) {
		/* Off the shards nothing may append to a table: count it as other. */
		cell_add(&read_slot(SHARD_MAX)->families[fam].other[o], n, false);
		return;
	}
	cells = label_cells(&s->families[fam], v);
	cell_add(cells ? &cells[o] : &s->families[fam].other[o], n, true);
}

void
metrics_received(const char *listener, uint64_t n)
{
	family_add(METRICS_RECEIVED_BY_LISTENER, listener ? listener : "unknown", 0, n);
}

void
metrics_outcome(enum metrics_outcome o, const struct metrics_outcome_labels *l, double latency)
{
	struct metrics_slot *s = own_slot();

	if (s != NULL)
		cell_add(&s->outcomes[o], 1, true);
	else
		cell_add(&read_slot(SHARD_MAX)->outcomes[o], 1, false);
	if (l != NULL) {
		char path[METRICS_LABEL_MAX * 2];

		if (l->source && *l->source && l->site && *l->site) {
			snprintf(path, sizeof(path), "%s\t%s", l->source, l->site);
			family_add(METRICS_OUTCOME_BY_PATH, path, o, 1);
		}
		family_add(METRICS_OUTCOME_BY_SITE, l->site, o, 1);
		family_add(METRICS_OUTCOME_BY_SOURCE, l->source, o, 1);
		family_add(METRICS_OUTCOME_BY_POOL, l->pool, o, 1);
		family_add(METRICS_OUTCOME_BY_TENANT, l->tenant, o, 1);
	}
	if (latency >= 0 && o != METRICS_TRANSIENT)
		metrics_observe(METRICS_DELIVERY_LATENCY, latency);
}

void
metrics_classified(enum metrics_outcome o, const char *source, const char *category)
{
	char key[METRICS_LABEL_MAX * 2];

	if (o == METRICS_DELIVERED)
		return;
	if (category == NULL || *category == '\0')
		category = "unclassified";
	family_add(METRICS_OUTCOME_BY_CATEGORY, category, o, 1);
	if (o != METRICS_BOUNCED || source == NULL || *source == '\0')
		return;
	snprintf(key, sizeof(key), "%s\t%s", source, category);
	family_add(METRICS_BOUNCE_BY_SOURCE_CATEGORY, key, o, 1);
}

void
metrics_complaint(const char *source)
{
	family_add(METRICS_COMPLAINTS_BY_SOURCE, source && *source ? source : "unknown", 0, 1);
}

static size_t
bucket_of(enum metrics_histogram h, double v)
{
	size_t i;

	for (i = 0; i < histogram_bounds[h].n; i++)
		if (v <= histogram_bounds[h].bounds[i])
			return i;
	return histogram_bounds[h].n;
}

void
metrics_observe(enum metrics_histogram h, double v)
{
	struct metrics_slot *s = own_slot();
	bool own = s != NULL;
	struct metrics_histogram_cells *c;

	if (!(v >= 0))
		v = 0;
	c = &(own ? s : read_slot(SHARD_MAX))->histograms[h];
	cell_add(&c->buckets[bucket_of(h, v)], 1, own);
	cell_add(&c->count, 1, own);
	cell_add(&c->sum_micro, (uint64_t)llround(fmin(v, 1e12) * 1e6), own);
}

void
metrics_policy_reload_failed(void)
{
	atomic_fetch_add(&reload_failures, 1);
}

void
metrics_set_policy_epoch(uint64_t epoch)
{
	atomic_store(&policy_epoch, epoch);
}

void
metrics_set_tls_expiry(const char *listener, double not_after)
{
	size_t i;

	pthread_mutex_lock(&tls_lock);
	for (i = 0; i < n_tls_expiry && strcmp(tls_expiry[i].listener, listener) != 0; i++)
		;
	if (i < METRICS_TLS_MAX) {
		snprintf(tls_expiry[i].listener, METRICS_LABEL_MAX, "%s", listener);
		tls_expiry[i].not_after = not_after;
		n_tls_expiry += i == n_tls_expiry;
	}
	pthread_mutex_unlock(&tls_lock);
}

/* ---- reading ----------------------------------------------------------------------------- */

uint64_t
metrics_counter_total(enum metrics_counter c)
{
	struct metrics_slot *s;
	uint64_t sum = 0;
	int i;

	for (i = 0; i <= SHARD_MAX; i++)
		if ((s = read_slot(i)) != NULL)
			sum += cell_get(&s->counters[c]);
	return sum;
}

uint64_t
metrics_outcome_total(enum metrics_outcome o)
{
	struct metrics_slot *s;
	uint64_t sum = 0;
	int i;

	for (i = 0; i <= SHARD_MAX; i++)
		if ((s = read_slot(i)) != NULL)
			sum += cell_get(&s->outcomes[o]);
	return sum;
}

uint64_t
metrics_policy_reload_failures(void)
{
	return atomic_load(&reload_failures);
}

uint64_t
metrics_policy_epoch(void)
{
	return atomic_load(&policy_epoch);
}

static uint64_t
value_total(const struct metrics_label_value *v)
{
	uint64_t t = 0;
	int o;

	for (o = 0; o < METRICS_OUTCOME_COUNT; o++)
		t += v->n[o];
	return t;
}

static int
value_cmp(const void *a, const void *b)
{
	uint64_t x = value_total(a), y = value_total(b);

	if (x != y)
		return x > y ? -1 : 1;
	return strcmp(((const struct metrics_label_value *)a)->value,
		      ((const struct metrics_label_value *)b)->value);
}

/* Add one shard's family into vals (n of them), merging equal values. */
static size_t
merge_family(struct metrics_family_cells *f, struct metrics_label_value *vals, size_t n,
	     uint64_t other[METRICS_OUTCOME_COUNT])
{
	unsigned used = atomic_load_explicit(&f->used, memory_order_acquire), i;
	size_t j;
	int o;

	for (o = 0; o < METRICS_OUTCOME_COUNT; o++)
		other[o] += cell_get(&f->other[o]);
	for (i = 0; i < used; i++) {
		for (j = 0; j < n && strcmp(vals[j].value, f->labels[i].value) != 0; j++)
			;
		if (j == n) {
			memset(&vals[n], 0, sizeof(vals[n]));
			memcpy(vals[n++].value, f->labels[i].value, METRICS_LABEL_MAX);
		}
		for (o = 0; o < METRICS_OUTCOME_COUNT; o++)
			vals[j].n[o] += cell_get(&f->labels[i].n[o]);
	}
	return n;
}

size_t
metrics_family_read(enum metrics_family fam, struct metrics_label_value *out)
{
	/* Values merged over shards: each shard adds at most METRICS_LABELS_PER_SHARD. */
	struct metrics_label_value *vals = NULL;
	uint64_t other[METRICS_OUTCOME_COUNT] = {0};
	struct metrics_slot *s;
	size_t n = 0, cap = 0, k, i;
	int o;

	for (i = 0; i <= SHARD_MAX; i++) {
		if ((s = read_slot((int)i)) == NULL)
			continue;
		if (n + METRICS_LABELS_PER_SHARD > cap) {
			struct metrics_label_value *nv;

			cap = n + METRICS_LABELS_PER_SHARD * 2;
			nv = realloc(vals, cap * sizeof(*vals));
			if (nv == NULL)
				break;
			vals = nv;
		}
		n = merge_family(&s->families[fam], vals, n, other);
	}
	if (n > 0)
		qsort(vals, n, sizeof(*vals), value_cmp);
	k = n < METRICS_TOP_N ? n : METRICS_TOP_N;
	if (k > 0)
		memcpy(out, vals, k * sizeof(*vals));
	for (i = k; i < n; i++)
		for (o = 0; o < METRICS_OUTCOME_COUNT; o++)
			other[o] += vals[i].n[o];
	free(vals); vals = NULL;
	memset(&out[k], 0, sizeof(out[k]));
	snprintf(out[k].value, METRICS_LABEL_MAX, "other");
	memcpy(out[k].n, other, sizeof(other));
	return value_total(&out[k]) > 0 ? k + 1 : k;
}

void
metrics_histogram_read(enum metrics_histogram h, struct metrics_histogram_read *out)
{
	struct metrics_slot *s;
	uint64_t sum = 0;
	size_t b;
	int i;

	memset(out, 0, sizeof(*out));
	out->bounds = histogram_bounds[h].bounds;
	out->n_bounds = histogram_bounds[h].n;
	for (i = 0; i <= SHARD_MAX; i++) {
		if ((s = read_slot(i)) == NULL)
			continue;
		for (b = 0; b <= out->n_bounds; b++)
			out->buckets[b] += cell_get(&s->histograms[h].buckets[b]);
		out->count += cell_get(&s->histograms[h].count);
		sum += cell_get(&s->histograms[h].sum_micro);
	}
	out->sum = (double)sum / 1e6;
}

size_t
metrics_tls_expiry_read(struct metrics_tls_expiry *out, size_t max)
{
	size_t n;

	pthread_mutex_lock(&tls_lock);
	n = n_tls_expiry < max ? n_tls_expiry : max;
	memcpy(out, tls_expiry, n * sizeof(*out));
	pthread_mutex_unlock(&tls_lock);
	return n;
}

/* ---- queue gauges ------------------------------------------------------------------------ */

void
metrics_queue_top_add(struct metrics_queue_top *t, const char *name, uint64_t size)
{
	size_t i, min = 0;

	t->total += size;
	t->count++;
	if (size == 0)
		return;
	if (t->n < METRICS_TOP_N) {
		min = t->n++;
	} else {
		for (i = 1; i < t->n; i++)
			if (t->top[i].size < t->top[min].size)
				min = i;
		if (t->top[min].size >= size)
			return;
	}
	snprintf(t->top[min].name, METRICS_LABEL_MAX, "%s", name);
	t->top[min].size = size;
}

void
metrics_queues_publish(enum metrics_queue_kind k, const struct metrics_queue_top *t)
{
	struct metrics_slot *s = own_slot();

	if (s == NULL)
		return;
	pthread_mutex_lock(&s->queues[k].lock);
	s->queues[k].q = *t;
	pthread_mutex_unlock(&s->queues[k].lock);
}

static int
queue_cmp(const void *a, const void *b)
{
	const struct metrics_queue_size *x = a, *y = b;

	if (x->size != y->size)
		return x->size > y->size ? -1 : 1;
	return strcmp(x->name, y->name);
}

size_t
metrics_queues_read(enum metrics_queue_kind k, struct metrics_queue_size *out, uint64_t *total,
		    uint64_t *count)
{
	struct metrics_queue_size all[METRICS_TOP_N * 2];
	struct metrics_queue_snapshot *q;
	struct metrics_slot *s;
	size_t n = 0;
	int i;

	*total = *count = 0;
	for (i = 0; i < SHARD_MAX; i++) {
		if ((s = read_slot(i)) == NULL)
			continue;
		q = &s->queues[k];
		pthread_mutex_lock(&q->lock);
		memcpy(&all[n], q->q.top, q->q.n * sizeof(*q->q.top));
		n += q->q.n;
		*total += q->q.total;
		*count += q->q.count;
		pthread_mutex_unlock(&q->lock);
		/* A queue lives on one shard, so names do not repeat: keep the largest so far. */
		qsort(all, n, sizeof(*all), queue_cmp);
		n = n < METRICS_TOP_N ? n : METRICS_TOP_N;
	}
	memcpy(out, all, n * sizeof(*all));
	return n;
}

double
metrics_queues_oldest(enum metrics_queue_kind k)
{
	struct metrics_queue_snapshot *q;
	struct metrics_slot *s;
	double oldest = 0;
	int i;

	for (i = 0; i < SHARD_MAX; i++) {
		if ((s = read_slot(i)) == NULL)
			continue;
		q = &s->queues[k];
		pthread_mutex_lock(&q->lock);
		if (q->q.oldest > 0 && (oldest == 0 || q->q.oldest < oldest))
			oldest = q->q.oldest;
		pthread_mutex_unlock(&q->lock);
	}
	return oldest;
}

/* ---- history ----------------------------------------------------------------------------- */

void
metrics_history_sample(double now)
{
	struct metrics_history_point p = {.t = now};
	int o;

	for (o = 0; o < METRICS_OUTCOME_COUNT; o++)
		p.outcomes[o] = metrics_outcome_total(o);
	pthread_mutex_lock(&history_lock);
	history[history_next] = p;
	history_next = (history_next + 1) % METRICS_HISTORY_SECONDS;
	if (history_len < METRICS_HISTORY_SECONDS)
		history_len++;
	pthread_mutex_unlock(&history_lock);
}

size_t
metrics_history_read(struct metrics_history_point *out)
{
	size_t i, n, first;

	pthread_mutex_lock(&history_lock);
	n = history_len;
	first = (history_next + METRICS_HISTORY_SECONDS - n) % METRICS_HISTORY_SECONDS;
	for (i = 0; i < n; i++)
		out[i] = history[(first + i) % METRICS_HISTORY_SECONDS];
	pthread_mutex_unlock(&history_lock);
	return n;
}

/* ---- tick -------------------------------------------------------------------------------- */

#define METRICS_TICKS_MAX 8

/* Appended under the lock, published by the release store of the count: ticks read without it. */
static pthread_mutex_t tick_lock = PTHREAD_MUTEX_INITIALIZER;
static metrics_tick_fn tick_fns[METRICS_TICKS_MAX];
static _Atomic size_t n_tick_fns;
static ev_timer tick_timers[SHARD_MAX];

void
metrics_on_tick(metrics_tick_fn fn)
{
	size_t n;

	pthread_mutex_lock(&tick_lock);
	n = atomic_load_explicit(&n_tick_fns, memory_order_relaxed);
	if (n < METRICS_TICKS_MAX) {
		tick_fns[n] = fn;
		atomic_store_explicit(&n_tick_fns, n + 1, memory_order_release);
	}
	pthread_mutex_unlock(&tick_lock);
}

static void
tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct shard *s = w->data;
	size_t n = atomic_load_explicit(&n_tick_fns, memory_order_acquire), i;

	(void)revents;
	for (i = 0; i < n; i++)
		tick_fns[i](s);
	if (s->id == 0)
		metrics_history_sample(ev_now(loop));
}

static void
tick_stop(struct shard *s, void *arg)
{
	ev_timer_stop(s->loop, arg);
}

static void
tick_start(void *arg)
{
	struct shard *s = arg;
	ev_timer *w = &tick_timers[s->id];

	ev_timer_init(w, tick_cb, 1., 1.);
	w->data = s;
	ev_timer_start(s->loop, w);
	/* A first sample at start, so that the first second's outcomes show as a rate. */
	if (s->id == 0)
		metrics_history_sample(ev_now(s->loop));
	shard_on_stop(s, tick_stop, w);
}

void
metrics_start(void)
{
	int i;

	for (i = 0; i < shard_count() && i < SHARD_MAX; i++)
		shard_post(shard_get(i), tick_start, shard_get(i));
}

void
metrics_free(void)
{
	struct metrics_slot *s;
	int i, k;

	for (i = 0; i < SHARD_MAX; i++) {
		s = atomic_exchange(&slots[i], NULL);
		if (s == NULL)
			continue;
		for (k = 0; k < METRICS_QUEUE_KIND_COUNT; k++)
			pthread_mutex_destroy(&s->queues[k].lock);
		free(s); s = NULL;
	}
}

/* ---- log hook lag ------------------------------------------------------------------------ */

static pthread_mutex_t loghook_lock = PTHREAD_MUTEX_INITIALIZER;
static struct metrics_log_hook_lag loghook_lag[METRICS_LOG_HOOKS_MAX];
static size_t n_loghook_lag;

void
metrics_set_log_hook_lag(const char *hook, uint64_t records, double seconds)
{
	size_t i;

	pthread_mutex_lock(&loghook_lock);
	for (i = 0; i < n_loghook_lag && strcmp(loghook_lag[i].hook, hook) != 0; i++)
		;
	if (i < METRICS_LOG_HOOKS_MAX) {
		snprintf(loghook_lag[i].hook, METRICS_LABEL_MAX, "%s", hook);
		loghook_lag[i].records = records;
		loghook_lag[i].seconds = seconds;
		n_loghook_lag += i == n_loghook_lag;
	}
	pthread_mutex_unlock(&loghook_lock);
}

size_t
metrics_log_hook_lag_read(struct metrics_log_hook_lag *out, size_t max)
{
	size_t n;

	pthread_mutex_lock(&loghook_lock);
	n = n_loghook_lag < max ? n_loghook_lag : max;
	memcpy(out, loghook_lag, n * sizeof(*out));
	pthread_mutex_unlock(&loghook_lock);
	return n;
}
