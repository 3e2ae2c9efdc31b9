// SPDX-License-Identifier: MIT
/* Coroutine pool: yield/resume, cancel, deadlines, stale generations, rejects, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <ev.h>
#include <lauxlib.h>
#include <lualib.h>

#include "tern/coro.h"

struct fixture {
	struct ev_loop *loop;
	lua_State *L;
	struct coro_pool *pool;
};

/* What the test binding `park()` left behind: the wait to complete by hand. */
static struct coro_wait parked;
static int cancels;

static void
park_cancel(void *arg)
{
	cancels++;
}

static int
lua_park(lua_State *L)
{
	coro_prepare_wait(L, "park", &parked);
	return coro_yield(L, &parked, lua_tonumber(L, 1), park_cancel, NULL);
}

struct outcome {
	int calls;
	int status;
	char first[128];
	struct tern_err err;
};

static void
record_done(void *arg, lua_State *co, int status, int nres, const struct tern_err *err)
{
	struct outcome *o = arg;

	o->calls++;
	o->status = status;
	if (nres > 0 && lua_isstring(co, -nres))
		snprintf(o->first, sizeof(o->first), "%s", lua_tostring(co, -nres));
	if (err)
		o->err = *err;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	f->loop = ev_loop_new(EVFLAG_AUTO);
	f->L = luaL_newstate();
	luaL_openlibs(f->L);
	lua_register(f->L, "park", lua_park);
	f->pool = coro_pool_new(f->L, f->loop);
	cancels = 0;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	coro_pool_free(f->pool);
	lua_close(f->L);
	ev_loop_destroy(f->loop);
	free(f);
	return 0;
}

/* Start `return (function(...) <body> end)(...)` with one string argument. */
static struct coro_ref
start(struct fixture *f, const char *body, double timeout, struct outcome *o)
{
	struct coro_options opts = {.what = "test_hook", .timeout = timeout};
	struct coro_ref ref;
	lua_State *co = coro_acquire(f->pool, &ref);

	assert_int_equal(luaL_loadstring(co, body), 0);
	lua_pushstring(co, "arg");
	coro_start(&ref, 1, &opts, record_done, o);
	return ref;
}

static void
test_sync_completion(void **state)
{
	struct outcome o = {0};

	start(*state, "local a = ...; return a .. '!'", 0, &o);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.status, CORO_OK);
	assert_string_equal(o.first, "arg!");
}

static void
test_yield_and_wake(void **state)
{
	struct fixture *f = *state;
	struct outcome o = {0};
	struct coro_ref ref = start(f, "local v = park(0); return 'got ' .. v", 0, &o);
	lua_State *co;

	assert_int_equal(o.calls, 0);
	assert_true(coro_is_running(&ref));
	co = coro_wait_state(&parked);
	assert_non_null(co);
	lua_pushstring(co, "value");
	coro_wake(&parked, 1);
	assert_int_equal(o.calls, 1);
	assert_string_equal(o.first, "got value");
	assert_false(coro_is_running(&ref));
}

static void
test_cancel_runs_cancel_fn_and_not_done(void **state)
{
	struct fixture *f = *state;
	struct outcome o = {0};
	struct coro_ref ref = start(f, "park(0)", 0, &o);
	struct coro_wait stale = parked;

	coro_cancel(&ref);
	assert_int_equal(cancels, 1);
	assert_int_equal(o.calls, 0);
	/* A late completion of the cancelled wait must do nothing. */
	assert_null(coro_wait_state(&stale));
	coro_wake(&stale, 0);
	assert_int_equal(o.calls, 0);
}

static void
test_stale_generation_after_reuse(void **state)
{
	struct fixture *f = *state;
	struct outcome o1 = {0}, o2 = {0};
	struct coro_wait old;

	start(f, "park(0); return 'first'", 0, &o1);
	old = parked;
	lua_pushstring(coro_wait_state(&old), "x");
	coro_wake(&old, 1);
	assert_int_equal(o1.calls, 1);
	/* The pooled coroutine is reused by the next call; the old wait must not resume it. */
	start(f, "park(0); return 'second'", 0, &o2);
	assert_ptr_equal(parked.c, old.c);
	coro_wake(&old, 0);
	assert_int_equal(o2.calls, 0);
	coro_wake(&parked, 0);
	assert_int_equal(o2.calls, 1);
	assert_string_equal(o2.first, "second");
}

static void
test_deadline_cancels(void **state)
{
	struct fixture *f = *state;
	struct outcome o = {0};

	start(f, "park(0)", 0.05, &o);
	ev_run(f->loop, 0);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.status, CORO_TIMEOUT);
	assert_int_equal(cancels, 1);
	assert_non_null(strstr(o.err.msg, "test_hook timed out"));
}

static void
test_wait_deadline_resumes_with_error(void **state)
{
	struct fixture *f = *state;
	struct outcome o = {0};

	start(f, "local v, err = park(0.02); return err", 0, &o);
	ev_run(f->loop, 0);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.status, CORO_OK);
	assert_string_equal(o.first, "park timed out");
	assert_int_equal(cancels, 1);
}

static void
test_error_names_line(void **state)
{
	struct outcome o = {0};

	start(*state, "local x = 1\nerror('broken')", 0, &o);
	assert_int_equal(o.status, CORO_ERROR);
	assert_int_equal(o.err.code, 451);
	assert_string_equal(o.err.enhanced, "4.3.0");
	assert_non_null(strstr(o.err.msg, ":2: broken"));
}

static int
lua_reject(lua_State *L)
{
	return coro_raise_reject(L, (int)luaL_checkinteger(L, 1), luaL_checkstring(L, 2));
}

static void
test_reject(void **state)
{
	struct fixture *f = *state;
	struct outcome o = {0};

	lua_register(f->L, "reject", lua_reject);
	start(f, "reject(550, '5.7.1 not here')", 0, &o);
	assert_int_equal(o.status, CORO_REJECTED);
	assert_int_equal(o.err.code, 550);
	assert_string_equal(o.err.enhanced, "5.7.1");
	assert_string_equal(o.err.msg, "not here");
	start(f, "reject(451, 'later')", 0, &o);
	assert_string_equal(o.err.enhanced, "4.7.1");
}

static void
test_plain_yield_is_an_error(void **state)
{
	struct outcome o = {0};

	start(*state, "coroutine.yield()", 0, &o);
	assert_int_equal(o.status, CORO_ERROR);
	assert_non_null(strstr(o.err.msg, "yielded outside a tern API"));
}

static void
test_no_yield_option(void **state)
{
	struct fixture *f = *state;
	struct coro_options opts = {.what = "get_queue_config", .no_yield = true};
	struct outcome o = {0};
	struct coro_ref ref;
	lua_State *co = coro_acquire(f->pool, &ref);

	luaL_loadstring(co, "park(0)");
	coro_start(&ref, 0, &opts, record_done, &o);
	assert_int_equal(o.status, CORO_ERROR);
	assert_non_null(strstr(o.err.msg, "park is not allowed in get_queue_config"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sync_completion, setup, teardown),
		cmocka_unit_test_setup_teardown(test_yield_and_wake, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_runs_cancel_fn_and_not_done, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_generation_after_reuse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadline_cancels, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wait_deadline_resumes_with_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_names_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reject, setup, teardown),
		cmocka_unit_test_setup_teardown(test_plain_yield_is_an_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_yield_option, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
