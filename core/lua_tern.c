// SPDX-License-Identifier: MIT
/*
 * The `tern` module's core functions. Each other class lives in its own
 * lua_<class>.c and is opened into the table from here.
 */
#include "tern/lua_tern.h"
#include "tern/coro.h"
#include "tern/log.h"
#include "tern/lua_conn.h"
#include "tern/lua_bounce.h"
#include "tern/lua_fleet.h"
#include "tern/lua_shaping.h"
#include "tern/lua_trace.h"
#include "tern/lua_suppress.h"
#include "tern/lua_dkim.h"
#include "tern/lua_crypto.h"
#include "tern/lua_dns.h"
#include "tern/lua_kafka.h"
#include "tern/lua_http.h"
#include "tern/lua_loghook.h"
#include "tern/lua_egress.h"
#include "tern/lua_queue.h"
#include "tern/lua_init.h"
#include "tern/lua_json.h"
#include "tern/lua_message.h"
#include "tern/lua_options.h"
#include "tern/lua_warmup.h"
#include "tern/policy.h"
#include "tern/shard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <ev.h>
#include <lauxlib.h>

#define SPAWN_MT "tern.task"

/* tern.log.<level>(fmt_or_value, ...) -> one diagnostic line with the policy file:line. */
static int
lua_tern_log_at(lua_State *L, enum log_level level)
{
	int n = lua_gettop(L), i;

	if (!log_enabled(level, "policy"))
		return 0;
	luaL_where(L, 1);
	for (i = 1; i <= n; i++) {
		lua_getglobal(L, "tostring");
		lua_pushvalue(L, i);
		lua_call(L, 1, 1);
		if (i < n)
			lua_pushliteral(L, " ");
	}
	lua_concat(L, n == 0 ? 1 : 2 * n);
	log_write(level, "policy", "%s", lua_tostring(L, -1));
	return 0;
}

static int lua_tern_log_debug(lua_State *L) { return lua_tern_log_at(L, LOG_LEVEL_DEBUG); }
static int lua_tern_log_info(lua_State *L) { return lua_tern_log_at(L, LOG_LEVEL_INFO); }
static int lua_tern_log_warn(lua_State *L) { return lua_tern_log_at(L, LOG_LEVEL_WARN); }
static int lua_tern_log_error(lua_State *L) { return lua_tern_log_at(L, LOG_LEVEL_ERROR); }

struct sleeper {
	ev_timer timer;
	struct ev_loop *loop;
	struct coro_wait wait;
};

static void
sleeper_fire(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sleeper *s = w->data;
	struct coro_wait wait = s->wait;

	free(s);
	coro_wake(&wait, 0);
}

static void
sleeper_cancel(void *arg)
{
	struct sleeper *s = arg;

	ev_timer_stop(s->loop, &s->timer);
	free(s);
}

/* tern.sleep(seconds): suspend the calling hook without blocking the shard. */
static int
lua_tern_sleep(lua_State *L)
{
	double secs = luaL_checknumber(L, 1);
	struct policy *p = policy_from_lua(L);
	struct sleeper *s;
	struct coro_wait w;

	coro_prepare_wait(L, "tern.sleep", &w);
	s = malloc(sizeof(*s));
	if (s == NULL)
		return luaL_error(L, "tern.sleep: out of memory");
	s->loop = policy_shard(p)->loop;
	s->wait = w;
	ev_timer_init(&s->timer, sleeper_fire, secs > 0 ? secs : 0, 0);
	s->timer.data = s;
	ev_timer_start(s->loop, &s->timer);
	return coro_yield(L, &w, 0, sleeper_cancel, s);
}

/* tern.now(): wall-clock seconds since the epoch, with sub-second precision. */
static int
lua_tern_now(lua_State *L)
{
	lua_pushnumber(L, util_wallclock());
	return 1;
}

/* tern.reject(code, text): end the hook and answer the client with this reply. */
static int
lua_tern_reject(lua_State *L)
{
	int code = (int)luaL_checkinteger(L, 1);
	const char *text = luaL_optstring(L, 2, "rejected by policy");

	if (code < 400 || code > 599)
		return luaL_error(L, "tern.reject: code must be 4xx or 5xx, got %d", code);
	return coro_raise_reject(L, code, text);
}

/* tern.set_hook_timeout(duration): the deadline for every hook call in this policy. */
static int
lua_tern_set_hook_timeout(lua_State *L)
{
	double secs;

	lua_settop(L, 1);
	lua_createtable(L, 0, 1);
	lua_pushvalue(L, 1);
	lua_setfield(L, -2, "timeout");
	secs = lua_options_duration(L, 2, "tern.set_hook_timeout", "timeout", -1);
	if (secs <= 0)
		return luaL_error(L, "tern.set_hook_timeout: a positive duration is required");
	policy_set_hook_timeout(policy_from_lua(L), secs);
	return 0;
}

/*
 * tern.spawn(fn, ...) runs fn in its own pooled coroutine; task:join()
 * waits for it and returns true, results... or false, error.
 */
struct task {
	int anchor;  /* registry ref keeping the userdata alive while it runs */
	int results; /* registry ref: table {n=, ...} or error string */
	bool finished;
	bool ok;
	bool has_waiter;
	struct coro_wait waiter;
};

static int
push_task_results(lua_State *L, struct task *t)
{
	int i, n, tbl;

	lua_rawgeti(L, LUA_REGISTRYINDEX, t->results);
	tbl = lua_gettop(L);
	if (!t->ok) {
		lua_pushboolean(L, 0);
		lua_insert(L, tbl);
		return 2;
	}
	lua_pushboolean(L, 1);
	lua_getfield(L, tbl, "n");
	n = (int)lua_tointeger(L, -1);
	lua_pop(L, 1);
	for (i = 1; i <= n; i++)
		lua_rawgeti(L, tbl, i);
	lua_remove(L, tbl);
	return n + 1;
}

static void
task_done(void *arg, lua_State *co, int status, int nres, const struct tern_err *err)
{
	struct task *t = arg;
	int i;

	t->finished = true;
	t->ok = status == CORO_OK;
	if (t->ok) {
		int base = lua_gettop(co) - nres;

		lua_createtable(co, nres, 1);
		for (i = 1; i <= nres; i++) {
			lua_pushvalue(co, base + i);
			lua_rawseti(co, -2, i);
		}
		lua_pushinteger(co, nres);
		lua_setfield(co, -2, "n");
	} else {
		lua_pushstring(co, err->msg);
	}
	t->results = luaL_ref(co, LUA_REGISTRYINDEX);
	if (t->has_waiter) {
		lua_State *w = coro_wait_state(&t->waiter);

		t->has_waiter = false;
		if (w)
			coro_wake(&t->waiter, push_task_results(w, t));
	}
	luaL_unref(co, LUA_REGISTRYINDEX, t->anchor);
}

static int
lua_tern_spawn(lua_State *L)
{
	struct policy *p = policy_from_lua(L);
	int nargs = lua_gettop(L) - 1;
	struct coro_options opts = {.what = "tern.spawn"};
	struct coro_ref ref;
	struct task *t;
	lua_State *co;

	luaL_checktype(L, 1, LUA_TFUNCTION);
	t = lua_newuserdata(L, sizeof(*t));
	memset(t, 0, sizeof(*t));
	t->results = LUA_NOREF;
	luaL_getmetatable(L, SPAWN_MT);
	lua_setmetatable(L, -2);
	lua_pushvalue(L, -1);
	t->anchor = luaL_ref(L, LUA_REGISTRYINDEX);
	co = coro_acquire(policy_coros(p), &ref);
	if (co == NULL)
		return luaL_error(L, "tern.spawn: out of memory");
	lua_insert(L, 1); /* task userdata below fn and args */
	lua_xmove(L, co, nargs + 1);
	coro_start(&ref, nargs, &opts, task_done, t);
	return 1;
}

/* The joining hook timed out or was cancelled: the task may be joined again. */
static void
task_join_cancel(void *arg)
{
	struct task *t = arg;

	t->has_waiter = false;
}

static int
lua_tern_task_join(lua_State *L)
{
	struct task *t = luaL_checkudata(L, 1, SPAWN_MT);

	if (t->finished)
		return push_task_results(L, t);
	if (t->has_waiter)
		return luaL_error(L, "task:join(): another coroutine is already waiting for this task");
	coro_prepare_wait(L, "task:join", &t->waiter);
	t->has_waiter = true;
	return coro_yield(L, &t->waiter, 0, task_join_cancel, t);
}

static int
lua_tern_task_gc(lua_State *L)
{
	struct task *t = luaL_checkudata(L, 1, SPAWN_MT);

	luaL_unref(L, LUA_REGISTRYINDEX, t->results);
	return 0;
}

static int
lua_tern_shard_id(lua_State *L)
{
	lua_pushinteger(L, policy_shard(policy_from_lua(L))->id);
	return 1;
}

static int
lua_tern_shard_count(lua_State *L)
{
	lua_pushinteger(L, shard_count());
	return 1;
}

/* tern.shard.thread_id(): the OS thread id, to see where code runs. */
static int
lua_tern_shard_thread_id(lua_State *L)
{
	lua_pushinteger(L, (lua_Integer)syscall(SYS_gettid));
	return 1;
}

/*
 * tern.shard.call(n, module, function, ...) runs require(module)[function](...)
 * on shard n (in a coroutine there, so it may yield) and returns
 * true, results... or false, error. Arguments and results cross as JSON,
 * since Lua values cannot move between Lua states.
 */
struct shard_call {
	struct shard *origin;
	struct coro_wait wait;
	char module[128];
	char fn[128];
	struct buf args;
	bool ok;
	struct buf results; /* JSON array, or the error message */
};

static void
shard_call_free(struct shard_call *c)
{
	buf_deinit(&c->args);
	buf_deinit(&c->results);
	free(c);
}

/* Back on the calling shard. */
static void
shard_call_reply(void *arg)
{
	struct shard_call *c = arg;
	struct coro_wait wait = c->wait;
	lua_State *co = coro_wait_state(&wait);
	struct tern_err err;
	int n, i;

	if (co == NULL) {
		shard_call_free(c);
		return;
	}
	lua_pushboolean(co, c->ok);
	if (!c->ok || lua_json_decode(co, c->results.data, c->results.len, &err) < 0) {
		lua_pushstring(co, c->ok ? err.msg : c->results.data);
		n = 2;
	} else {
		n = (int)lua_objlen(co, -1);
		for (i = 1; i <= n; i++)
			lua_rawgeti(co, -i, i);
		lua_remove(co, -n - 1);
		n++;
	}
	shard_call_free(c);
	coro_wake(&wait, n);
}

static void
shard_call_finish(struct shard_call *c, bool ok, const char *error)
{
	c->ok = ok;
	if (!ok) {
		buf_reset(&c->results);
		buf_append_str(&c->results, error);
	}
	if (shard_post(c->origin, shard_call_reply, c) < 0)
		shard_call_free(c);
}

static void
shard_call_done(void *arg, lua_State *co, int status, int nres, const struct tern_err *err)
{
	struct shard_call *c = arg;
	struct tern_err enc;
	int i, base = lua_gettop(co) - nres;

	if (status != CORO_OK) {
		shard_call_finish(c, false, err->msg);
		return;
	}
	lua_createtable(co, nres, 0);
	for (i = 1; i <= nres; i++) {
		lua_pushvalue(co, base + i);
		lua_rawseti(co, -2, i);
	}
	if (lua_json_encode(co, -1, &c->results, &enc) < 0) {
		shard_call_finish(c, false, enc.msg);
		return;
	}
	shard_call_finish(c, true, NULL);
}

/* Push require(module)[fn] and the decoded arguments; returns nargs or -1 with the error pushed. */
static int
shard_call_push(lua_State *co, struct shard_call *c)
{
	struct tern_err err;
	int n, i;

	lua_getglobal(co, "require");
	lua_pushstring(co, c->module);
	if (lua_pcall(co, 1, 1, 0) != 0)
		return -1;
	lua_getfield(co, -1, c->fn);
	lua_remove(co, -2);
	if (!lua_isfunction(co, -1)) {
		lua_pushfstring(co, "%s.%s is not a function", c->module, c->fn);
		return -1;
	}
	if (lua_json_decode(co, c->args.data, c->args.len, &err) < 0) {
		lua_pushstring(co, err.msg);
		return -1;
	}
	n = (int)lua_objlen(co, -1);
	for (i = 1; i <= n; i++)
		lua_rawgeti(co, -i, i);
	lua_remove(co, -n - 1);
	return n;
}

/* On the target shard. */
static void
shard_call_run(void *arg)
{
	struct shard_call *c = arg;
	struct policy *p = shard_self()->policy;
	struct coro_options opts = {.what = "tern.shard.call"};
	struct coro_ref ref;
	lua_State *co = coro_acquire(policy_coros(p), &ref);
	int nargs;

	if (co == NULL) {
		shard_call_finish(c, false, "out of memory");
		return;
	}
	nargs = shard_call_push(co, c);
	if (nargs < 0) {
		shard_call_finish(c, false, lua_tostring(co, -1));
		coro_release(&ref);
		return;
	}
	coro_start(&ref, nargs, &opts, shard_call_done, c);
}

static int
lua_tern_shard_call(lua_State *L)
{
	int target = (int)luaL_checkinteger(L, 1);
	const char *module = luaL_checkstring(L, 2);
	const char *fn = luaL_checkstring(L, 3);
	struct shard *self = policy_shard(policy_from_lua(L));
	int nargs = lua_gettop(L) - 3, i;
	struct coro_wait wait;
	struct shard_call *c;
	struct tern_err err;

	if (shard_get(target) == NULL)
		return luaL_error(L, "tern.shard.call: no shard %d (there are %d)", target, shard_count());
	/* Before the shard threads run (init), nothing would ever answer. */
	if (!shards_running() && shard_get(target) != self)
		return luaL_error(L, "tern.shard.call: shard %d is not running yet (in init?)", target);
	coro_prepare_wait(L, "tern.shard.call", &wait);
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return luaL_error(L, "tern.shard.call: out of memory");
	snprintf(c->module, sizeof(c->module), "%s", module);
	snprintf(c->fn, sizeof(c->fn), "%s", fn);
	c->origin = self;
	c->wait = wait;
	lua_createtable(L, nargs, 0);
	for (i = 1; i <= nargs; i++) {
		lua_pushvalue(L, 3 + i);
		lua_rawseti(L, -2, i);
	}
	if (lua_json_encode(L, -1, &c->args, &err) < 0) {
		shard_call_free(c);
		return luaL_error(L, "tern.shard.call: %s", err.msg);
	}
	if (shard_post(shard_get(target), shard_call_run, c) < 0) {
		shard_call_free(c);
		return luaL_error(L, "tern.shard.call: shard %d is stopping", target);
	}
	return coro_yield(L, &c->wait, 0, NULL, NULL);
}

static void
open_log(lua_State *L)
{
	static const luaL_Reg fns[] = {{"debug", lua_tern_log_debug},
				       {"info", lua_tern_log_info},
				       {"warn", lua_tern_log_warn},
				       {"error", lua_tern_log_error},
				       {NULL, NULL}};

	lua_newtable(L);
	luaL_register(L, NULL, fns);
	lua_setfield(L, -2, "log");
}

static void
open_shard(lua_State *L)
{
	static const luaL_Reg fns[] = {
		{"id", lua_tern_shard_id},
		{"count", lua_tern_shard_count},
		{"call", lua_tern_shard_call},
		{"thread_id", lua_tern_shard_thread_id},
		{NULL, NULL}};

	lua_newtable(L);
	luaL_register(L, NULL, fns);
	lua_setfield(L, -2, "shard");
}

static void
open_task_class(lua_State *L)
{
	luaL_newmetatable(L, SPAWN_MT);
	lua_newtable(L);
	lua_pushcfunction(L, lua_tern_task_join);
	lua_setfield(L, -2, "join");
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, lua_tern_task_gc);
	lua_setfield(L, -2, "__gc");
	lua_pop(L, 1);
}

void
lua_tern_open(lua_State *L)
{
	static const luaL_Reg fns[] = {{"on", policy_register_handler},
				       {"sleep", lua_tern_sleep},
				       {"now", lua_tern_now},
				       {"spawn", lua_tern_spawn},
				       {"reject", lua_tern_reject},
				       {"set_hook_timeout", lua_tern_set_hook_timeout},
				       {NULL, NULL}};

	open_task_class(L);
	lua_newtable(L);
	luaL_register(L, NULL, fns);
	lua_pushstring(L, TERN_VERSION);
	lua_setfield(L, -2, "version");
	open_log(L);
	open_shard(L);
	lua_json_open(L);
	lua_dkim_open(L);
	lua_dns_open(L);
	lua_kafka_open(L);
	lua_http_open(L);
	lua_loghook_open(L);
	lua_crypto_open(L);
	lua_init_open(L);
	lua_queue_open(L);
	lua_egress_open(L);
	lua_message_open(L);
	lua_conn_open(L);
	lua_bounce_open(L);
	lua_fleet_open(L);
	lua_shaping_open(L);
	lua_warmup_open(L);
	lua_trace_open(L);
	lua_suppress_open(L);
	lua_setglobal(L, "tern");
}
