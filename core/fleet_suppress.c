// SPDX-License-Identifier: MIT
/*
 * The fleet's suppression list (see fleet_suppress.h). A stream, not a
 * table announced whole: a node that missed a few seconds reads a few
 * changes, not millions of entries. Each node's own changes wait in its
 * spool ("pending") until Redis has taken them, and are pushed in order, a
 * page at a time, so that a long outage's backlog does not outlast the
 * client's command timeout. The stream is read on the command client
 * without BLOCK (Redis answers a connection in order, and the shared limits'
 * commands must not wait behind a blocked read), every FLEET_SUPPRESS_POLL.
 */
#include "tern/fleet_suppress.h"
#include "tern/admin.h"
#include "tern/fleet.h"
#include "tern/json.h"
#include "tern/log.h"
#include "tern/queue.h"
#include "tern/redis.h"
#include "tern/shard.h"
#include "tern/spool.h"
#include "tern/suppress.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STREAM "tern:suppress"
#define HASH "tern:suppress:all"
#define ID_MAX 48

/* Bookkeeping keys: they start with SUPPRESS_KEY_RESERVED, so no listing shows them. */
static const char key_last[] = "\001fleet\0last";
static const char key_pending[] = "\001fleet\0pending\0"; /* then 16 hex digits */
#define KEY_LAST_LEN (sizeof(key_last) - 1)
#define KEY_PENDING_LEN (sizeof(key_pending) - 1)
#define PENDING_KEY_MAX (KEY_PENDING_LEN + 17)

/* One script, so that the stream and the hash never disagree. */
static const char push_script[] =
    "local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'op', ARGV[2],"
    " 'node', ARGV[3], 'key', ARGV[4], 'entry', ARGV[5])\n"
    "if ARGV[2] == 'a' then redis.call('HSET', KEYS[2], ARGV[4], ARGV[5])\n"
    "else redis.call('HDEL', KEYS[2], ARGV[4]) end\n"
    "return id";

static struct {
	bool running;
	bool loaded;   /* the last id and the pending changes' count read from the spool */
	bool checked;  /* the stream's reach checked since the client came up */
	bool busy;     /* a check, a read or a reload page in flight */
	bool flushing; /* pending changes being pushed, a page at a time */
	bool flush_failed;
	int in_flight; /* pushes of the current page without a reply */
	char last[ID_MAX];
	char reload_end[ID_MAX]; /* during a reload: the stream's last id when it began */
	char cursor[32];	 /* HSCAN's cursor during a reload, "" otherwise */
	uint64_t reloaded;
	_Atomic uint64_t seq; /* the last pending key's: microseconds, unique */
	uint64_t first_seq;   /* this process's keys come after it */
	ev_timer poll;
	_Atomic uint64_t applied, pushed, pending;
	_Atomic double caught_up; /* util_now() when the stream was last read to its end */
} fs = {.last = "0-0"};

static void step(void);
static bool load(void);

/* ---- Redis and the spool -------------------------------------------------------------------- */

static struct redis_client *
home_client(void)
{
	struct redis_client *c = fleet_client(shard_get(0));

	return c != NULL && redis_client_up(c) ? c : NULL;
}

/* argv's lengths are lens', or their strlen when lens is NULL. */
static int
command(redis_reply_fn cb, void *arg, int argc, const char **argv, const size_t *lens)
{
	struct redis_client *c = home_client();
	size_t own[8];
	int i;

	if (c == NULL)
		return -ENOTCONN;
	for (i = 0; lens == NULL && i < argc; i++)
		own[i] = strlen(argv[i]);
	return redis_client_command(c, cb, arg, argc, argv, lens ? lens : own);
}

static struct spool *
spool(void)
{
	/* The suppression list's spool: the one the queues use (lua_init.c opens both). */
	return suppress_is_open() ? queue_spool() : NULL;
}

/* Any thread. */
static int
kv_put(const char *key, size_t klen, const char *val, size_t vlen)
{
	struct spool *sp = spool();
	struct spool_kv_batch *b;
	struct tern_err err;
	int rc;

	if (sp == NULL || (b = spool_kv_batch_new()) == NULL)
		return -ENOMEM;
	if (val != NULL)
		spool_kv_batch_put(b, key, klen, val, vlen);
	else
		spool_kv_batch_delete(b, key, klen);
	rc = spool_kv_write(sp, b, false, &err);
	if (rc < 0)
		log_ratelimited(LOG_LEVEL_ERROR, "fleet", "suppression bookkeeping not saved: %s",
				err.msg);
	spool_kv_batch_free(b);
	return rc;
}

static void
save_last(void)
{
	kv_put(key_last, KEY_LAST_LEN, fs.last, strlen(fs.last));
}

/* ---- stream ids ----------------------------------------------------------------------------- */

struct stream_id {
	uint64_t ms, seq;
};

static struct stream_id
id_parse(const char *s)
{
	struct stream_id id = {0, 0};
	char *end;

	id.ms = strtoull(s, &end, 10);
	if (*end == '-')
		id.seq = strtoull(end + 1, NULL, 10);
	return id;
}

static int
id_cmp(const char *a, const char *b)
{
	struct stream_id x = id_parse(a), y = id_parse(b);

	if (x.ms != y.ms)
		return x.ms < y.ms ? -1 : 1;
	return x.seq < y.seq ? -1 : x.seq > y.seq;
}

/* ---- entries as JSON ------------------------------------------------------------------------ */

/* A string member into out; absent or null leaves it empty. */
static int
json_text(const struct json_span *obj, const char *name, char *out, size_t size)
{
	struct json_span v;

	out[0] = '\0';
	if (json_object_get(obj, name, &v) < 0 || v.type == JSON_NULL)
		return 0;
	return admin_json_string(&v, out, size);
}

static double
json_time(const struct json_span *obj, const char *name)
{
	struct json_span v;
	double d;

	if (json_object_get(obj, name, &v) < 0 || json_number_value(&v, &d) < 0)
		return 0;
	return d;
}

static int
entry_from_json(const char *text, size_t len, struct suppress_entry *e, struct tern_err *err)
{
	char tenant[SUPPRESS_TENANT_MAX], address[SUPPRESS_ADDR_MAX];
	struct json_span obj;

	if (json_parse_span(text, len, &obj, err) < 0)
		return -EINVAL;
	if (obj.type != JSON_OBJECT || json_text(&obj, "tenant", tenant, sizeof(tenant)) < 0 ||
	    json_text(&obj, "address", address, sizeof(address)) < 0) {
		tern_err_set(err, 0, "", "not a suppression entry");
		return -EINVAL;
	}
	if (suppress_entry_init(e, tenant, address, err) < 0)
		return -EINVAL;
	if (json_text(&obj, "reason", e->reason, sizeof(e->reason)) < 0 ||
	    json_text(&obj, "category", e->category, sizeof(e->category)) < 0 ||
	    json_text(&obj, "source", e->source, sizeof(e->source)) < 0) {
		tern_err_set(err, 0, "", "a suppression entry's text is not a string");
		return -EINVAL;
	}
	e->time = json_time(&obj, "time");
	e->expires = json_time(&obj, "expires");
	return 0;
}

/* ---- applying the fleet's changes ----------------------------------------------------------- */

static void
apply_add(const char *json, size_t len)
{
	struct suppress_entry e;
	struct tern_err err = {0};

	if (entry_from_json(json, len, &e, &err) < 0 || suppress_apply_add(&e, &err) < 0) {
		log_ratelimited(LOG_LEVEL_WARN, "fleet",
				"a suppression from the fleet not applied: %s", err.msg);
		return;
	}
	atomic_fetch_add(&fs.applied, 1);
}

/* key is "tenant address": a tenant holds no space, and may be empty. */
static void
apply_remove(const char *key)
{
	char tenant[SUPPRESS_TENANT_MAX];
	const char *sp = strchr(key, ' ');
	struct tern_err err = {0};
	int rc;

	if (sp == NULL || (size_t)(sp - key) >= sizeof(tenant))
		return;
	snprintf(tenant, sizeof(tenant), "%.*s", (int)(sp - key), key);
	rc = suppress_apply_remove(tenant, sp + 1, &err);
	if (rc < 0 && rc != -ENOENT) {
		log_ratelimited(LOG_LEVEL_WARN, "fleet", "a removal from the fleet not applied: %s",
				err.msg);
		return;
	}
	atomic_fetch_add(&fs.applied, 1);
}

static const redisReply *
field(const redisReply *fields, const char *name)
{
	size_t i;

	for (i = 0; i + 1 < fields->elements; i += 2)
		if (fields->element[i]->type == REDIS_REPLY_STRING &&
		    strcmp(fields->element[i]->str, name) == 0 &&
		    fields->element[i + 1]->type == REDIS_REPLY_STRING)
			return fields->element[i + 1];
	return NULL;
}

/* One stream entry [id, [field, value, ...]]: another node's change is applied. */
static void
apply_entry(const redisReply *entry)
{
	const redisReply *fields, *op, *node, *key, *json;

	if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 ||
	    entry->element[0]->type != REDIS_REPLY_STRING ||
	    entry->element[1]->type != REDIS_REPLY_ARRAY)
		return;
	snprintf(fs.last, sizeof(fs.last), "%s", entry->element[0]->str);
	fields = entry->element[1];
	op = field(fields, "op");
	node = field(fields, "node");
	key = field(fields, "key");
	json = field(fields, "entry");
	if (op == NULL || node == NULL || key == NULL || json == NULL ||
	    strcmp(node->str, fleet_node_id()) == 0)
		return;
	if (strcmp(op->str, "a") == 0)
		apply_add(json->str, json->len);
	else if (strcmp(op->str, "r") == 0)
		apply_remove(key->str);
}

/* ---- following the stream ------------------------------------------------------------------- */

/* XREAD: nil when nothing is new, else [[stream, [entry, ...]]]. */
static void
read_done(void *arg, const redisReply *r)
{
	const redisReply *entries;
	size_t i;

	fs.busy = false;
	if (r == NULL || r->type == REDIS_REPLY_ERROR)
		return;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 1 ||
	    r->element[0]->type != REDIS_REPLY_ARRAY || r->element[0]->elements != 2) {
		atomic_store(&fs.caught_up, util_now());
		return;
	}
	entries = r->element[0]->element[1];
	for (i = 0; i < entries->elements; i++)
		apply_entry(entries->element[i]);
	save_last();
	if (entries->elements < FLEET_SUPPRESS_PAGE)
		atomic_store(&fs.caught_up, util_now());
	else
		step();
}

static void
read_stream(void)
{
	char count[16];
	const char *argv[] = {"XREAD", "COUNT", count, "STREAMS", STREAM, fs.last};

	snprintf(count, sizeof(count), "%d", FLEET_SUPPRESS_PAGE);
	fs.busy = command(read_done, NULL, 6, argv, NULL) == 0;
}

/* HSCAN: [cursor, [key, json, ...]]; at cursor 0 the stream goes on from where the reload began. */
static void
reload_done(void *arg, const redisReply *r)
{
	const redisReply *kv;
	size_t i;

	fs.busy = false;
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY)
		return;
	kv = r->element[1];
	for (i = 0; i + 1 < kv->elements; i += 2) {
		if (kv->element[i + 1]->type == REDIS_REPLY_STRING)
			apply_add(kv->element[i + 1]->str, kv->element[i + 1]->len);
		fs.reloaded++;
	}
	snprintf(fs.cursor, sizeof(fs.cursor), "%s", r->element[0]->str);
	if (strcmp(fs.cursor, "0") == 0) {
		fs.cursor[0] = '\0';
		snprintf(fs.last, sizeof(fs.last), "%s", fs.reload_end);
		save_last();
		log_info("fleet", "suppression list: %" PRIu64 " entries reloaded from " HASH,
			 fs.reloaded);
	}
	step();
}

static void
reload_page(void)
{
	char count[16];
	const char *argv[] = {"HSCAN", HASH, fs.cursor, "COUNT", count};

	snprintf(count, sizeof(count), "%d", FLEET_SUPPRESS_PAGE);
	fs.busy = command(reload_done, NULL, 5, argv, NULL) == 0;
}

/* A field of XINFO STREAM's reply, or NULL (an older Redis). */
static const redisReply *
info_field(const redisReply *r, const char *name)
{
	size_t i;

	for (i = 0; i + 1 < r->elements; i += 2)
		if (r->element[i]->type == REDIS_REPLY_STRING &&
		    strcmp(r->element[i]->str, name) == 0)
			return r->element[i + 1];
	return NULL;
}

static long long
info_int(const redisReply *r, const char *name, long long otherwise)
{
	const redisReply *v = info_field(r, name);

	return v != NULL && v->type == REDIS_REPLY_INTEGER ? v->integer : otherwise;
}

/*
 * Whether changes after this node's last id may have been trimmed away.
 * Trimming takes the oldest entries: when the stream's first entry is past
 * the last id, what lay between is gone, or may be. A new node (last id
 * 0-0) lacks whatever was ever trimmed.
 */
static bool
trimmed_past(const redisReply *r, const char *end)
{
	const redisReply *first = info_field(r, "first-entry");
	long long length = info_int(r, "length", 0), added = info_int(r, "entries-added", -1);

	if (added >= 0 && added <= length)
		return false; /* nothing was ever trimmed (a Redis 7 stream counts its entries) */
	if (length == 0 || first == NULL || first->type != REDIS_REPLY_ARRAY ||
	    first->elements < 1 || first->element[0]->type != REDIS_REPLY_STRING)
		return id_cmp(end, fs.last) > 0;
	if (strcmp(fs.last, "0-0") == 0)
		return added > length;
	return id_cmp(first->element[0]->str, fs.last) > 0;
}

/* Where this node's last id stands against the stream: behind its trimmed part, or ahead of it. */
static void
check_done(void *arg, const redisReply *r)
{
	const redisReply *last_generated;
	char end[ID_MAX];

	fs.busy = false;
	if (r == NULL)
		return;
	fs.checked = true;
	if (r->type != REDIS_REPLY_ARRAY ||
	    (last_generated = info_field(r, "last-generated-id")) == NULL ||
	    last_generated->type != REDIS_REPLY_STRING)
		return; /* no stream yet: nothing was trimmed */
	snprintf(end, sizeof(end), "%s", last_generated->str);
	if (id_cmp(end, fs.last) < 0) {
		log_warn("fleet",
			 "the suppression stream ends at %s, before this node's %s "
			 "(Redis lost it): reading it from its start",
			 end, fs.last);
		snprintf(fs.last, sizeof(fs.last), "0-0");
	}
	if (trimmed_past(r, end)) {
		log_warn("fleet",
			 "the suppression stream was trimmed past this node's %s: reloading "
			 "the fleet's list from " HASH,
			 fs.last);
		snprintf(fs.reload_end, sizeof(fs.reload_end), "%s", end);
		snprintf(fs.cursor, sizeof(fs.cursor), "0");
		fs.reloaded = 0;
	}
	step();
}

static void
check_stream(void)
{
	const char *argv[] = {"XINFO", "STREAM", STREAM};

	fs.busy = command(check_done, NULL, 3, argv, NULL) == 0;
}

/* The next thing to ask Redis, unless something is asked already. */
static void
step(void)
{
	if (!fs.running || !load() || fs.busy || home_client() == NULL)
		return;
	if (!fs.checked)
		check_stream();
	else if (fs.cursor[0] != '\0')
		reload_page();
	else
		read_stream();
}

static void flush(void);

static void
on_poll(struct ev_loop *loop, ev_timer *t, int revents)
{
	/* Changes left waiting by a push Redis refused are tried again. */
	if (fs.loaded && !fs.flushing && fs.in_flight == 0 && atomic_load(&fs.pending) > 0) {
		fs.flush_failed = false;
		flush();
	}
	step();
}

/* ---- this node's changes -------------------------------------------------------------------- */

/*
 * A pending change's value: the op ('a' or 'r'), a space, the hash's key
 * ("tenant address"), a newline, the entry as JSON.
 */
static int
pending_value(const struct suppress_entry *e, bool removed, struct buf *out)
{
	buf_printf(out, "%c %s %s\n", removed ? 'r' : 'a', e->tenant, e->address);
	return suppress_entry_json(e, out);
}

/* A pending change leaves the spool (pushed, or unreadable). */
static void
pending_drop(const char *key)
{
	struct tern_err err;
	struct buf val;

	buf_init(&val);
	/* The same change may have been pushed twice, across a reconnect: count it once. */
	if (spool() != NULL && spool_kv_get(spool(), key, PENDING_KEY_MAX - 1, &val, &err) == 0) {
		kv_put(key, PENDING_KEY_MAX - 1, NULL, 0);
		atomic_fetch_sub(&fs.pending, 1);
	}
	buf_deinit(&val);
}

static void
push_done(void *arg, const redisReply *r)
{
	char *key = arg;

	fs.in_flight--;
	if (r == NULL || r->type == REDIS_REPLY_ERROR) {
		if (r != NULL)
			log_ratelimited(LOG_LEVEL_WARN, "fleet",
					"Redis refused a suppression change: %s", r->str);
		fs.flush_failed = true;
	} else {
		pending_drop(key);
		atomic_fetch_add(&fs.pushed, 1);
	}
	free(key);
	if (fs.flushing && fs.in_flight == 0)
		flush();
}

/* Send one pending change (its spool key and value); the reply deletes it from the spool. */
static int
push(const char *key, const char *val, size_t vlen)
{
	const char *nl = vlen > 2 ? memchr(val, '\n', vlen) : NULL;
	char maxlen[16], op[2], hkey[SUPPRESS_TENANT_MAX + SUPPRESS_ADDR_MAX];
	const char *argv[10] = {"EVAL", push_script, "2", STREAM, HASH, maxlen, op};
	size_t lens[10];
	char *copy;
	int i;

	if (nl == NULL || nl < val + 2 || (size_t)(nl - val - 2) >= sizeof(hkey))
		return -EINVAL;
	snprintf(op, sizeof(op), "%c", val[0]);
	snprintf(maxlen, sizeof(maxlen), "%d", FLEET_SUPPRESS_STREAM_MAX);
	snprintf(hkey, sizeof(hkey), "%.*s", (int)(nl - val - 2), val + 2);
	argv[7] = fleet_node_id();
	argv[8] = hkey;
	argv[9] = nl + 1;
	for (i = 0; i < 9; i++)
		lens[i] = strlen(argv[i]);
	lens[9] = vlen - (size_t)(nl + 1 - val); /* the JSON runs to the value's end */
	copy = malloc(PENDING_KEY_MAX);		 /* the key holds NULs: no strndup */
	if (copy == NULL)
		return -ENOMEM;
	memcpy(copy, key, PENDING_KEY_MAX - 1);
	copy[PENDING_KEY_MAX - 1] = '\0';
	if (command(push_done, copy, 10, argv, lens) < 0) {
		free(copy);
		return -ENOTCONN;
	}
	fs.in_flight++;
	return 0;
}

static int
flush_visit(void *arg, const char *key, size_t klen, const char *val, size_t vlen)
{
	int *n = arg;

	char copy[PENDING_KEY_MAX];
	int rc;

	if (klen != PENDING_KEY_MAX - 1)
		return 0;
	rc = push(key, val, vlen);
	if (rc == -EINVAL) {
		memcpy(copy, key, klen);
		copy[klen] = '\0';
		log_warn("fleet", "dropping an unreadable pending suppression change of %zu bytes",
			 vlen);
		pending_drop(copy);
		return 0;
	}
	if (rc < 0)
		return rc;
	return ++*n < FLEET_SUPPRESS_PAGE ? 0 : -EAGAIN;
}

/* Push the next page of pending changes, in the order they were made. */
static void
flush(void)
{
	struct tern_err err;
	int n = 0;

	fs.flushing = false;
	if (fs.flush_failed || spool() == NULL || home_client() == NULL)
		return;
	spool_kv_scan(spool(), key_pending, KEY_PENDING_LEN, flush_visit, &n, &err);
	fs.flushing = fs.in_flight > 0;
}

/* The changes an earlier run left waiting (this run counts its own as it writes them). */
static int
count_visit(void *arg, const char *key, size_t klen, const char *val, size_t vlen)
{
	char hex[17];

	if (klen != PENDING_KEY_MAX - 1)
		return 0;
	memcpy(hex, key + KEY_PENDING_LEN, 16);
	hex[16] = '\0';
	if (strtoull(hex, NULL, 16) <= fs.first_seq)
		atomic_fetch_add(&fs.pending, 1);
	return 0;
}

/* Read the last id and count the waiting changes, once the spool is open. Shard 0. */
static bool
load(void)
{
	struct tern_err err;
	struct buf b;

	if (fs.loaded || spool() == NULL)
		return fs.loaded;
	buf_init(&b);
	if (spool_kv_get(spool(), key_last, KEY_LAST_LEN, &b, &err) == 0 && b.len < ID_MAX)
		snprintf(fs.last, sizeof(fs.last), "%.*s", (int)b.len, b.data);
	buf_deinit(&b);
	spool_kv_scan(spool(), key_pending, KEY_PENDING_LEN, count_visit, NULL, &err);
	fs.loaded = true;
	return true;
}

/* A pending key's sequence: the time in microseconds, or one past the last key's. */
static uint64_t
next_seq(void)
{
	uint64_t now = (uint64_t)(util_wallclock() * 1e6), prev = atomic_load(&fs.seq), next;

	do
		next = now > prev ? now : prev + 1;
	while (!atomic_compare_exchange_weak(&fs.seq, &prev, next));
	return next;
}

/* Shard 0: push what waits, unless a page of it is on its way (the next page takes it). */
static void
nudge(void *arg)
{
	if (fs.running && load() && !fs.flushing && !fs.flush_failed)
		flush();
}

/*
 * Any thread: the change is kept in the spool before anything else, so that
 * neither Redis being away nor a stop before shard 0 hears of it loses it.
 */
static void
changed(void *arg, const struct suppress_entry *e, bool removed)
{
	char key[PENDING_KEY_MAX];
	struct buf val;

	memcpy(key, key_pending, KEY_PENDING_LEN);
	snprintf(key + KEY_PENDING_LEN, sizeof(key) - KEY_PENDING_LEN, "%016" PRIx64, next_seq());
	buf_init(&val);
	if (pending_value(e, removed, &val) == 0 &&
	    kv_put(key, sizeof(key) - 1, val.data, val.len) == 0) {
		atomic_fetch_add(&fs.pending, 1);
		shard_post(shard_get(0), nudge, NULL);
	}
	buf_deinit(&val);
}

/* ---- life ----------------------------------------------------------------------------------- */

void
fleet_suppress_joined(void)
{
	if (!fs.running || !load())
		return;
	/* What was in flight on the lost connection has had its NULL reply already. */
	fs.checked = fs.flush_failed = false;
	flush();
	step();
}

void
fleet_suppress_start(void)
{
	fs.running = true;
	fs.checked = fs.busy = fs.flushing = fs.flush_failed = false;
	fs.first_seq = next_seq();
	atomic_store(&fs.caught_up, util_now());
	ev_timer_init(&fs.poll, on_poll, FLEET_SUPPRESS_POLL, FLEET_SUPPRESS_POLL);
	ev_timer_start(shard_get(0)->loop, &fs.poll);
	suppress_set_observer(changed, NULL);
}

void
fleet_suppress_stop(void)
{
	suppress_set_observer(NULL, NULL);
	ev_timer_stop(shard_get(0)->loop, &fs.poll);
	fs.running = false;
}

void
fleet_suppress_stats(struct fleet_suppress_stats *out)
{
	out->applied = atomic_load(&fs.applied);
	out->pushed = atomic_load(&fs.pushed);
	out->pending = atomic_load(&fs.pending);
	out->lag = util_now() - atomic_load(&fs.caught_up);
}
