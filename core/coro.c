// SPDX-License-Identifier: MIT
/*
 * Pooled coroutines for hooks. A coroutine that returns normally goes back
 * to the pool with an empty stack; one that raised, timed out or was
 * cancelled is dropped (a suspended or dead Lua thread cannot be reused) and
 * left to the garbage collector. Each coroutine carries a generation that
 * changes whenever its call ends, so a late completion from a cancelled
 * binding finds a different generation and does nothing.
 *
 * A hook that loops without yielding cannot be interrupted here: the
 * deadline is a timer on the very loop the hook holds, so it covers time
 * spent waiting, which is where hooks spend it. Time spent computing is the
 * watchdog's (watchdog.c): every resume tells it which hook runs and where
 * the hook's function is defined.
 */
#include "tern/coro.h"
#include "tern/log.h"
#include "tern/metrics.h"
#include "tern/watchdog.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>
#include <lauxlib.h>

#define CORO_REJECT_MT "tern.reject"

struct coro {
	struct coro_pool *pool;
	lua_State *co;
	int ref; /* registry anchor of the thread */
	uint32_t gen;
	bool running;
	bool waiting;
	double started; /* util_now() at coro_start: hook time counts its waits too */
	struct coro_options opts;
	char what[64];
	char where[192]; /* "file:line" of the hook's function, for the watchdog */
	coro_done_fn done;
	void *done_arg;
	ev_timer deadline;
	coro_cancel_fn cancel;
	void *cancel_arg;
	const char *wait_api;
	ev_timer wait_deadline;
	struct coro *next_free;
	struct coro *prev_all, *next_all; /* every coroutine of the pool, free or not */
};

struct coro_pool {
	lua_State *L;
	struct ev_loop *loop;
	struct coro *free;
	struct coro *all;
	size_t running;
};

/*
 * Structs of freed pools, kept for the next pool to reuse with their
 * generation: a session may still hold a ref into a pool an epoch retired,
 * and that ref must find valid memory and a different generation.
 */
static pthread_mutex_t spare_mu = PTHREAD_MUTEX_INITIALIZER;
static struct coro *spare;

/* The coroutine being resumed on this thread, for bindings to find. */
static __thread struct coro *coro_current;

static void coro_cancel_pending(struct coro *c);

struct coro_pool *
coro_pool_new(lua_State *L, struct ev_loop *loop)
{
	struct coro_pool *pool = calloc(1, sizeof(*pool));

	if (pool == NULL)
		return NULL;
	pool->L = L;
	pool->loop = loop;
	return pool;
}

static void
coro_destroy(struct coro *c)
{
	if (c->prev_all)
		c->prev_all->next_all = c->next_all;
	else
		c->pool->all = c->next_all;
	if (c->next_all)
		c->next_all->prev_all = c->prev_all;
	ev_timer_stop(c->pool->loop, &c->deadline);
	ev_timer_stop(c->pool->loop, &c->wait_deadline);
	luaL_unref(c->pool->L, LUA_REGISTRYINDEX, c->ref);
	c->gen++;
	c->running = false;
	pthread_mutex_lock(&spare_mu);
	c->next_free = spare;
	spare = c;
	pthread_mutex_unlock(&spare_mu);
}

/* A struct for a new coroutine: a spare one (its generation kept) or a new one. */
static struct coro *
coro_alloc(void)
{
	struct coro *c;
	uint32_t gen;

	pthread_mutex_lock(&spare_mu);
	c = spare;
	if (c)
		spare = c->next_free;
	pthread_mutex_unlock(&spare_mu);
	if (c == NULL)
		return calloc(1, sizeof(*c));
	gen = c->gen;
	memset(c, 0, sizeof(*c));
	c->gen = gen;
	return c;
}

/*
 * A thread that raised, timed out or was cancelled cannot run again; drop
 * it but keep the struct (pooled, with a new generation), so that stale
 * refs and waits held elsewhere still point at valid memory and simply
 * find a different generation.
 */
static void
coro_discard(struct coro *c)
{
	luaL_unref(c->pool->L, LUA_REGISTRYINDEX, c->ref);
	c->ref = LUA_NOREF;
	c->co = NULL;
	c->next_free = c->pool->free;
	c->pool->free = c;
}

void
coro_pool_free(struct coro_pool *pool)
{
	if (pool == NULL)
		return;
	/* Suspended calls die with the pool: their pending operations are cancelled first. */
	while (pool->all) {
		coro_cancel_pending(pool->all);
		coro_destroy(pool->all);
	}
	free(pool); pool = NULL;
}

size_t
coro_pool_running(const struct coro_pool *pool)
{
	return pool->running;
}

static void coro_deadline_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void coro_wait_deadline_cb(struct ev_loop *loop, ev_timer *w, int revents);

static struct coro *
coro_create(struct coro_pool *pool)
{
	struct coro *c = coro_alloc();

	if (c == NULL)
		return NULL;
	c->pool = pool;
	c->ref = LUA_NOREF;
	c->next_all = pool->all;
	if (pool->all)
		pool->all->prev_all = c;
	pool->all = c;
	ev_init(&c->deadline, coro_deadline_cb);
	c->deadline.data = c;
	ev_init(&c->wait_deadline, coro_wait_deadline_cb);
	c->wait_deadline.data = c;
	return c;
}

lua_State *
coro_acquire(struct coro_pool *pool, struct coro_ref *ref)
{
	struct coro *c = pool->free;

	if (c != NULL)
		pool->free = c->next_free;
	else if ((c = coro_create(pool)) == NULL)
		return NULL;
	c->next_free = NULL;
	if (c->co == NULL) {
		c->co = lua_newthread(pool->L);
		c->ref = luaL_ref(pool->L, LUA_REGISTRYINDEX);
	}
	ref->c = c;
	ref->gen = c->gen;
	return c->co;
}

void
coro_release(struct coro_ref *ref)
{
	struct coro *c = ref->c;

	lua_settop(c->co, 0);
	c->gen++;
	c->next_free = c->pool->free;
	c->pool->free = c;
}

static bool
coro_live(const struct coro *c, uint32_t gen)
{
	return c != NULL && c->gen == gen && c->running;
}

bool
coro_is_running(const struct coro_ref *ref)
{
	return coro_live(ref->c, ref->gen);
}

/* End the call: stop timers, bump the generation, and forget any pending wait. */
static void
coro_end(struct coro *c)
{
	ev_timer_stop(c->pool->loop, &c->deadline);
	ev_timer_stop(c->pool->loop, &c->wait_deadline);
	metrics_observe(METRICS_HOOK_TIME, util_now() - c->started);
	c->gen++;
	c->running = false;
	c->waiting = false;
	c->cancel = NULL;
	c->pool->running--;
}

static void
coro_cancel_pending(struct coro *c)
{
	coro_cancel_fn cancel = c->cancel;

	c->cancel = NULL;
	if (cancel)
		cancel(c->cancel_arg);
}

/* Parse "5.7.1 text" into the enhanced code and the rest. */
static void
reject_to_err(lua_State *co, int idx, struct tern_err *err)
{
	const char *text, *p;
	int code;

	idx = idx < 0 ? lua_gettop(co) + idx + 1 : idx;
	lua_getfield(co, idx, "code");
	code = (int)lua_tointeger(co, -1);
	lua_getfield(co, idx, "text");
	text = lua_tostring(co, -1);
	text = text ? text : "rejected by policy";
	p = text;
	if (isdigit((unsigned char)p[0]) && p[1] == '.' && strspn(p, "0123456789.") >= 5) {
		size_t n = strspn(p, "0123456789.");

		snprintf(err->enhanced, sizeof(err->enhanced), "%.*s", (int)n, p);
		for (p += n; *p == ' '; p++)
			;
	} else {
		snprintf(err->enhanced, sizeof(err->enhanced), "%d.7.1", code / 100);
	}
	err->code = code;
	snprintf(err->msg, sizeof(err->msg), "%s", p);
	lua_pop(co, 2);
}

static bool
is_reject(lua_State *co, int idx)
{
	bool yes;

	if (!lua_istable(co, idx) || !lua_getmetatable(co, idx))
		return false;
	luaL_getmetatable(co, CORO_REJECT_MT);
	yes = lua_rawequal(co, -1, -2);
	lua_pop(co, 2);
	return yes;
}

static void
log_hook_error(struct coro *c, const char *msg)
{
	lua_State *L = c->pool->L;

	luaL_traceback(L, c->co, msg, 0);
	log_error("policy", "hook %s failed: %s", c->what, lua_tostring(L, -1));
	lua_pop(L, 1);
}

static void
coro_finish_error(struct coro *c, int status, struct tern_err *err)
{
	coro_done_fn done = c->done;
	void *arg = c->done_arg;

	coro_end(c);
	done(arg, c->co, status, 0, err);
	coro_discard(c);
}

static void
coro_finish(struct coro *c, int rc)
{
	struct tern_err err;
	struct coro_ref ref = {c, c->gen};
	coro_done_fn done = c->done;
	void *arg = c->done_arg;

	tern_err_clear(&err);
	if (rc == 0) {
		coro_end(c);
		done(arg, c->co, CORO_OK, lua_gettop(c->co), NULL);
		coro_release(&ref);
		return;
	}
	if (is_reject(c->co, -1)) {
		reject_to_err(c->co, -1, &err);
		coro_finish_error(c, CORO_REJECTED, &err);
		return;
	}
	tern_err_set(&err, 451, "4.3.0", "%s",
		     lua_isstring(c->co, -1) ? lua_tostring(c->co, -1) : "error object is not a string");
	log_hook_error(c, err.msg);
	coro_finish_error(c, CORO_ERROR, &err);
}

static void
coro_resume(struct coro *c, int nargs)
{
	struct coro *prev = coro_current;
	int rc;

	coro_current = c;
	watchdog_hook_enter(c->co, c->what, c->where, c->opts.timeout);
	rc = lua_resume(c->co, nargs);
	coro_current = prev;
	if (prev)
		watchdog_hook_enter(prev->co, prev->what, prev->where, prev->opts.timeout);
	else
		watchdog_hook_leave();
	if (rc == LUA_YIELD && c->waiting)
		return;
	if (rc == LUA_YIELD) {
		lua_settop(c->co, 0);
		lua_pushfstring(c->co, "hook %s yielded outside a tern API (use tern.sleep, not coroutine.yield)",
				c->what);
		rc = LUA_ERRRUN;
	}
	coro_finish(c, rc);
}

/* Where the function about to run (below its nargs arguments) is defined. */
static void
coro_locate(struct coro *c, int nargs)
{
	lua_Debug ar;

	if (!lua_isfunction(c->co, -(nargs + 1))) {
		snprintf(c->where, sizeof(c->where), "?");
		return;
	}
	lua_pushvalue(c->co, -(nargs + 1));
	if (!lua_getinfo(c->co, ">S", &ar))
		snprintf(c->where, sizeof(c->where), "?");
	else if (ar.linedefined > 0)
		snprintf(c->where, sizeof(c->where), "%s:%d", ar.short_src, ar.linedefined);
	else
		snprintf(c->where, sizeof(c->where), "%s", ar.short_src);
}

int
coro_start(struct coro_ref *ref, int nargs, const struct coro_options *opts, coro_done_fn done,
	   void *arg)
{
	struct coro *c = ref->c;

	c->opts = *opts;
	snprintf(c->what, sizeof(c->what), "%s", opts->what ? opts->what : "hook");
	coro_locate(c, nargs);
	c->done = done;
	c->done_arg = arg;
	c->started = util_now();
	c->running = true;
	c->waiting = false;
	c->pool->running++;
	if (opts->timeout > 0) {
		ev_timer_set(&c->deadline, opts->timeout, 0);
		ev_timer_start(c->pool->loop, &c->deadline);
	}
	coro_resume(c, nargs);
	return 0;
}

void
coro_cancel(const struct coro_ref *ref)
{
	struct coro *c = ref->c;

	if (!coro_live(c, ref->gen))
		return;
	coro_cancel_pending(c);
	coro_end(c);
	coro_discard(c);
}

static void
coro_deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct coro *c = w->data;
	struct tern_err err;

	coro_cancel_pending(c);
	tern_err_set(&err, 451, "4.3.0", "hook %s timed out after %.3gs", c->what, c->opts.timeout);
	log_hook_error(c, err.msg);
	coro_finish_error(c, CORO_TIMEOUT, &err);
}

void
coro_prepare_wait(lua_State *L, const char *api, struct coro_wait *w)
{
	struct coro *c = coro_current;

	if (c == NULL || c->co != L)
		luaL_error(L, "%s must be called from a hook or tern.spawn, not a plain Lua coroutine", api);
	if (c->opts.no_yield)
		luaL_error(L, "%s is not allowed in %s", api, c->what);
	w->c = c;
	w->gen = c->gen;
	c->wait_api = api;
}

int
coro_yield(lua_State *L, const struct coro_wait *w, double deadline, coro_cancel_fn cancel,
	   void *arg)
{
	struct coro *c = w->c;

	c->waiting = true;
	c->cancel = cancel;
	c->cancel_arg = arg;
	if (deadline > 0) {
		ev_timer_set(&c->wait_deadline, deadline, 0);
		ev_timer_start(c->pool->loop, &c->wait_deadline);
	}
	return lua_yield(L, 0);
}

lua_State *
coro_wait_state(const struct coro_wait *w)
{
	return coro_live(w->c, w->gen) && w->c->waiting ? w->c->co : NULL;
}

void
coro_wake(const struct coro_wait *w, int nres)
{
	struct coro *c = w->c;

	if (coro_wait_state(w) == NULL)
		return;
	ev_timer_stop(c->pool->loop, &c->wait_deadline);
	c->waiting = false;
	c->cancel = NULL;
	coro_resume(c, nres);
}

static void
coro_wait_deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct coro *c = w->data;

	coro_cancel_pending(c);
	c->waiting = false;
	lua_pushnil(c->co);
	lua_pushfstring(c->co, "%s timed out", c->wait_api);
	coro_resume(c, 2);
}

int
coro_raise_reject(lua_State *L, int code, const char *text)
{
	lua_createtable(L, 0, 2);
	lua_pushinteger(L, code);
	lua_setfield(L, -2, "code");
	lua_pushstring(L, text);
	lua_setfield(L, -2, "text");
	luaL_newmetatable(L, CORO_REJECT_MT);
	lua_setmetatable(L, -2);
	return lua_error(L);
}
