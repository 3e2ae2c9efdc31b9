/* SPDX-License-Identifier: MIT */
/*
 * The only place that runs, yields, resumes and cancels Lua coroutines.
 *
 * Every policy hook runs in a pooled coroutine started with lua_resume, so
 * any hook may call a yielding binding (tern.sleep, DNS, HTTP, ...). A
 * binding suspends its coroutine with coro_yield() after registering a
 * cancel function; its completion calls coro_wake() with the saved
 * struct coro_wait, which resumes only if the coroutine's generation still
 * matches (the hook may have timed out or been cancelled meanwhile, and the
 * pooled coroutine may be running something else by then).
 *
 * A call may finish synchronously: the done callback can run before
 * coro_start() returns.
 */
#ifndef TERN_CORO_H
#define TERN_CORO_H

#include <stdbool.h>
#include <stdint.h>

#include <lua.h>

#include "tern/util.h"

struct ev_loop;
struct coro_pool;
struct coro;

enum coro_status {
	CORO_OK = 0,
	CORO_REJECTED = -1, /* the hook called tern.reject(code, text): err holds both */
	CORO_ERROR = -2,    /* the hook raised; err->msg is "file:line: message" */
	CORO_TIMEOUT = -3,  /* the hook's deadline passed; it was cancelled */
};

/* A started coroutine, valid while gen matches (see coro_cancel). */
struct coro_ref {
	struct coro *c;
	uint32_t gen;
};

/* What a suspended binding keeps to resume its coroutine later. */
struct coro_wait {
	struct coro *c;
	uint32_t gen;
};

/*
 * Called once when the call ends. On CORO_OK the nres results are on top of
 * co's stack and stay valid until done returns. err is NULL on CORO_OK.
 */
typedef void (*coro_done_fn)(void *arg, lua_State *co, int status, int nres,
			     const struct tern_err *err);
/* Undo a pending operation of a suspended binding (stop its timer, drop its query, ...). */
typedef void (*coro_cancel_fn)(void *arg);

struct coro_options {
	const char *what; /* hook name for messages: "smtp_server_ehlo" */
	double timeout;   /* seconds; 0 = no deadline */
	bool no_yield;    /* memoized config hooks: yielding APIs raise */
};

struct coro_pool *coro_pool_new(lua_State *L, struct ev_loop *loop);
void coro_pool_free(struct coro_pool *pool);
/* Coroutines currently started and not finished. */
size_t coro_pool_running(const struct coro_pool *pool);

/* Take a coroutine from the pool: push the function and its arguments on the returned state. */
lua_State *coro_acquire(struct coro_pool *pool, struct coro_ref *ref);
/* Start the function with nargs arguments. Returns 0 (done runs once, maybe already). */
int coro_start(struct coro_ref *ref, int nargs, const struct coro_options *opts, coro_done_fn done,
	       void *arg);
/* Give back a coroutine acquired but never started. */
void coro_release(struct coro_ref *ref);
/* Stop a running call without calling done (its owner went away). Stale refs are ignored. */
void coro_cancel(const struct coro_ref *ref);
bool coro_is_running(const struct coro_ref *ref);

/*
 * Bindings. coro_prepare_wait raises a Lua error (naming api) when L is not
 * a pooled coroutine or yielding is not allowed there. Then:
 *     return coro_yield(L, &w, deadline, cancel, arg);
 * If deadline (seconds, 0 = none) passes first, cancel(arg) runs and the
 * coroutine resumes with nil, "<api> timed out".
 */
void coro_prepare_wait(lua_State *L, const char *api, struct coro_wait *w);
int coro_yield(lua_State *L, const struct coro_wait *w, double deadline, coro_cancel_fn cancel,
	       void *arg);
/* The coroutine's state to push results on, or NULL when the wait is stale. */
lua_State *coro_wait_state(const struct coro_wait *w);
/* Resume with the nres values pushed on coro_wait_state(w). No-op when stale. */
void coro_wake(const struct coro_wait *w, int nres);

/* tern.reject(code, text): raise a rejection that callers turn into a protocol reply. */
int coro_raise_reject(lua_State *L, int code, const char *text);

#endif
