// SPDX-License-Identifier: MIT
/*
 * tern.kafka (see include/tern/lua_kafka.h). tern.kafka.producer only checks
 * and keeps the settings: a policy's top level runs under --check (no shard)
 * and, on reload, on the main thread, where no client may start on a shard's
 * loop. The client starts at the first send, on the sending shard, and
 * belongs to it from then on: its delivery reports are served on that
 * shard's loop, where the coroutine waiting for them runs. Messages are
 * copied into librdkafka before send yields, so the Lua values may go at once.
 */
#include "tern/lua_kafka.h"
#include "tern/coro.h"
#include "tern/kafka.h"
#include "tern/lua_ctx.h"
#include "tern/lua_json.h"
#include "tern/lua_options.h"
#include "tern/shard.h"

#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#define PRODUCER_MT "tern.kafka.producer"
/* Beyond this, a batch is better split by the caller than held in memory twice. */
#define LUA_KAFKA_MAX_BATCH 100000

struct lua_kafka_producer {
	struct kafka_producer *p; /* NULL until the first send */
	int shard;
	struct kafka_config cfg; /* its strings are owned here */
};

/* brokers: 'h:p,h:p' or { 'h:p', ... }; pushes the comma-separated form (or nil). */
static void
push_brokers(lua_State *L, const char *fname)
{
	struct buf b;
	size_t i, n;

	lua_getfield(L, 1, "brokers");
	if (lua_isnil(L, -1) || lua_type(L, -1) == LUA_TSTRING)
		return;
	if (!lua_istable(L, -1))
		luaL_error(L, "%s: brokers must be 'host:port,...' or a list of them", fname);
	n = lua_objlen(L, -1);
	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, -1, (int)i);
		if (lua_type(L, -1) != LUA_TSTRING)
			luaL_error(L, "%s: brokers[%d] must be a string", fname, (int)i);
		lua_pop(L, 1);
	}
	buf_init(&b);
	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, -1, (int)i);
		if (i > 1)
			buf_append_char(&b, ',');
		buf_append_str(&b, lua_tostring(L, -1));
		lua_pop(L, 1);
	}
	lua_pushlstring(L, b.data ? b.data : "", b.len);
	buf_deinit(&b);
	lua_remove(L, -2);
}

/* properties = { ['name'] = 'value' }: each pair pushed on the stack and listed in props. */
static size_t
read_properties(lua_State *L, const char *fname, const char ***props)
{
	size_t n = 0;

	lua_getfield(L, 1, "properties");
	*props = NULL;
	if (lua_isnil(L, -1))
		return 0;
	if (!lua_istable(L, -1))
		luaL_error(L, "%s: properties must be a table of librdkafka settings", fname);
	for (lua_pushnil(L); lua_next(L, -2); lua_pop(L, 1))
		n++;
	*props = lua_newuserdata(L, 2 * (n ? n : 1) * sizeof(char *)); /* freed by the GC */
	lua_insert(L, -2);
	n = 0;
	for (lua_pushnil(L); lua_next(L, -2); lua_pop(L, 1)) {
		if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
			luaL_error(L, "%s: properties must map names to strings", fname);
		(*props)[2 * n] = lua_tostring(L, -2);
		(*props)[2 * n + 1] = lua_tostring(L, -1); /* anchored in the table */
		n++;
	}
	return n;
}

static void
producer_config_free(struct kafka_config *cfg)
{
	size_t i;

	for (i = 0; i < 2 * cfg->n_props; i++)
		free((char *)cfg->props[i]);
	free((char **)cfg->props);
	free((char *)cfg->brokers);
	free((char *)cfg->topic);
	memset(cfg, 0, sizeof(*cfg));
}

/* The handle keeps copies: the option table may go once producer() returns. */
static void
producer_config_copy(struct kafka_config *dst, const struct kafka_config *src)
{
	char **props = xcalloc(2 * src->n_props + 1, sizeof(char *));
	size_t i;

	*dst = *src;
	dst->brokers = src->brokers ? xstrdup(src->brokers) : NULL;
	dst->topic = xstrdup(src->topic);
	for (i = 0; i < 2 * src->n_props; i++)
		props[i] = xstrdup(src->props[i]);
	dst->props = (const char *const *)props;
}

/* tern.kafka.producer{ brokers, topic, timeout = '30s', properties = {...} } */
static int
lua_kafka_producer(lua_State *L)
{
	static const char *const opts[] = {"brokers", "topic", "timeout", "properties", NULL};
	const char *fname = "tern.kafka.producer";
	struct kafka_config cfg = {0};
	struct lua_kafka_producer *h;
	struct tern_err err;

	lua_options_check(L, 1, fname, opts);
	cfg.topic = lua_options_string(L, 1, fname, "topic", NULL);
	if (cfg.topic == NULL || *cfg.topic == '\0')
		return luaL_error(L, "%s: option 'topic' is required", fname);
	cfg.timeout = lua_options_duration(L, 1, fname, "timeout", 30);
	if (cfg.timeout <= 0)
		return luaL_error(L, "%s: option 'timeout' must be positive", fname);
	push_brokers(L, fname);
	cfg.brokers = lua_tostring(L, -1);
	cfg.n_props = read_properties(L, fname, (const char ***)&cfg.props);
	if (cfg.brokers == NULL && cfg.n_props == 0)
		return luaL_error(L, "%s: option 'brokers' is required", fname);
	if (kafka_config_check(&cfg, &err) < 0)
		return luaL_error(L, "%s: %s", fname, err.msg);
	h = lua_newuserdata(L, sizeof(*h));
	memset(h, 0, sizeof(*h));
	h->shard = -1;
	producer_config_copy(&h->cfg, &cfg);
	luaL_getmetatable(L, PRODUCER_MT);
	lua_setmetatable(L, -2);
	return 1;
}

static int
producer_gc(lua_State *L)
{
	struct lua_kafka_producer *h = luaL_checkudata(L, 1, PRODUCER_MT);

	kafka_producer_free(h->p);
	h->p = NULL;
	producer_config_free(&h->cfg);
	return 0;
}

/* The client of the calling shard, started at the first send; raises on another shard. */
static struct kafka_producer *
producer_client(lua_State *L, struct lua_kafka_producer *h)
{
	struct shard *s = lua_ctx_shard(L);
	struct tern_err err;

	if (s == NULL)
		luaL_error(L, "producer:send: no shard runs this state");
	if (h->p != NULL && s->id != h->shard)
		luaL_error(L, "a kafka producer is used on the shard that sent first (%d)", h->shard);
	if (h->p == NULL) {
		h->p = kafka_producer_new(s->loop, &h->cfg, &err);
		if (h->p == NULL)
			luaL_error(L, "producer:send: %s", err.msg);
		h->shard = s->id;
	}
	return h->p;
}

/* One message from a string (the value), { key =, value = }, or any other table (as JSON). */
static int
read_message(lua_State *L, int idx, struct buf *value, struct kafka_msg *m, struct tern_err *err)
{
	if (lua_type(L, idx) == LUA_TSTRING) {
		m->value = lua_tolstring(L, idx, &m->value_len);
		return 0;
	}
	if (!lua_istable(L, idx)) {
		tern_err_set(err, 0, "", "a message is a string or a table");
		return -1;
	}
	lua_getfield(L, idx, "value");
	if (lua_type(L, -1) != LUA_TSTRING) {
		lua_pop(L, 1);
		if (lua_json_encode(L, idx, value, err) < 0)
			return -1;
		m->value = value->data;
		m->value_len = value->len;
		return 0;
	}
	m->value = lua_tolstring(L, -1, &m->value_len);
	lua_getfield(L, idx, "key");
	if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER) {
		tern_err_set(err, 0, "", "a message's key is a string");
		return -1;
	}
	m->key = lua_tolstring(L, -1, &m->key_len);
	lua_pop(L, 2); /* value and key stay anchored in the message table */
	return 0;
}

struct send_wait {
	struct coro_wait wait;
	struct kafka_batch *b;
};

static void
send_done(void *arg, size_t failed, const char *why)
{
	struct send_wait *sw = arg;
	struct coro_wait wait = sw->wait;
	lua_State *co;

	free(sw);
	co = coro_wait_state(&wait);
	if (co == NULL)
		return;
	if (failed == 0) {
		lua_pushboolean(co, 1);
		coro_wake(&wait, 1);
		return;
	}
	lua_pushnil(co);
	lua_pushfstring(co, "%d message(s) not acknowledged: %s", (int)failed, why);
	coro_wake(&wait, 2);
}

static void
send_cancel(void *arg)
{
	struct send_wait *sw = arg;

	kafka_batch_abandon(sw->b);
	free(sw);
}

/* Hand the messages to librdkafka: the batch, or NULL with err. */
static struct kafka_batch *
send_batch(lua_State *L, struct kafka_producer *p, size_t n, struct send_wait *sw,
	   struct tern_err *err)
{
	struct kafka_msg *msgs = calloc(n, sizeof(*msgs));
	struct buf *values = calloc(n, sizeof(*values));
	struct kafka_batch *b = NULL;
	size_t i;
	int rc = msgs && values ? 0 : -1;

	if (rc < 0)
		tern_err_set(err, 0, "", "out of memory");
	for (i = 0; i < n && rc == 0; i++) {
		lua_rawgeti(L, 2, (int)i + 1);
		rc = read_message(L, lua_gettop(L), &values[i], &msgs[i], err);
		lua_pop(L, 1); /* strings stay anchored in the list */
	}
	if (rc == 0)
		b = kafka_send(p, msgs, n, send_done, sw, err);
	for (i = 0; values && i < n; i++)
		buf_deinit(&values[i]);
	free(values);
	free(msgs);
	return b;
}

/* producer:send(messages) -> true, or nil, why. Yields until every message has its report. */
static int
lua_kafka_send(lua_State *L)
{
	struct lua_kafka_producer *h = luaL_checkudata(L, 1, PRODUCER_MT);
	struct kafka_producer *p;
	struct send_wait *sw;
	struct coro_wait w;
	struct tern_err err;
	size_t n;

	luaL_checktype(L, 2, LUA_TTABLE);
	n = lua_objlen(L, 2);
	if (n == 0) {
		lua_pushboolean(L, 1);
		return 1;
	}
	if (n > LUA_KAFKA_MAX_BATCH)
		return luaL_error(L, "producer:send: at most %d messages at once",
				  LUA_KAFKA_MAX_BATCH);
	coro_prepare_wait(L, "producer:send", &w); /* raises where yielding is not allowed */
	p = producer_client(L, h);
	sw = calloc(1, sizeof(*sw));
	if (sw == NULL)
		return luaL_error(L, "producer:send: out of memory");
	sw->wait = w;
	sw->b = send_batch(L, p, n, sw, &err);
	if (sw->b == NULL) {
		free(sw);
		lua_pushnil(L);
		lua_pushstring(L, err.msg);
		return 2;
	}
	return coro_yield(L, &sw->wait, 0, send_cancel, sw);
}

void
lua_kafka_open(lua_State *L)
{
	static const luaL_Reg methods[] = {{"send", lua_kafka_send}, {NULL, NULL}};

	luaL_newmetatable(L, PRODUCER_MT);
	lua_pushcfunction(L, producer_gc);
	lua_setfield(L, -2, "__gc");
	lua_newtable(L);
	luaL_register(L, NULL, methods);
	lua_setfield(L, -2, "__index");
	lua_pop(L, 1);
	lua_newtable(L);
	lua_pushcfunction(L, lua_kafka_producer);
	lua_setfield(L, -2, "producer");
	lua_setfield(L, -2, "kafka");
}
