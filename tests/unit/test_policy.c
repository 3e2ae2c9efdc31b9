// SPDX-License-Identifier: MIT
/*
 * Policy: loading a policy file into a shard, hook registration and lookup,
 * calling a hook with arguments and getting its results (or its error,
 * rejection or timeout) through the done callback, load errors naming file
 * and line, and package.path (the policy's directory and lua/tern).
 */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <lauxlib.h>

#include "tern/policy.h"
#include "tern/shard.h"

#include "support.h"

static const char policy_src[] =
    "local helper = require 'helper'\n"
    "local t = require 'tern.testing'\n"
    "testing_ok = type(t.ok) == 'function' and type(t.done) == 'function'\n"
    "tern.on('smtp_server_ehlo', function(a, b) return a .. '+' .. b, helper.answer end)\n"
    "tern.on('smtp_server_mail_from', function(x)\n"
    "  error('boom ' .. x)\n" /* line 6 */
    "end)\n"
    "tern.on('smtp_server_rcpt_to', function() tern.reject(550, 'no such user') end)\n"
    "tern.on('smtp_server_data', function() tern.sleep(5) return 'late' end)\n"
    "tern.on('get_queue_config', function(d) tern.sleep(0.01) return 'slept ' .. d end)\n";

struct fixture {
	char dir[64];
	char path[128];
	struct policy *p;
};

struct outcome {
	bool done;
	int calls;
	int status;
	int nres;
	char res[2][128];
	struct tern_err err;
};

static void
write_file(const char *dir, const char *name, const char *src)
{
	char path[192];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fputs(src, fp) >= 0, 1);
	fclose(fp);
}

/* The test binary is build/<mode>/tests/test_policy: lua/ is three levels up. */
static void
point_at_lua_dir(void)
{
	char exe[PATH_MAX], dir[PATH_MAX + 16];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	assert_true(n > 0);
	exe[n] = '\0';
	*strrchr(exe, '/') = '\0';
	snprintf(dir, sizeof(dir), "%s/../../../lua", exe);
	setenv("TERN_LUA_DIR", dir, 1);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/test_policy.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/policy.lua", f->dir);
	write_file(f->dir, "helper.lua", "return {answer = 42}\n");
	point_at_lua_dir();
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	shards_free();
	support_rm_rf(f->dir);
	free(f);
	return 0;
}

/* Load src as the policy of a single shard; 0 or the error from policy_attach_shards. */
static int
load(struct fixture *f, const char *src, const char *script, struct tern_err *err)
{
	struct policy_options opts = {.policy_path = f->path};
	char spath[160];
	int rc;

	write_file(f->dir, "policy.lua", src);
	if (script) {
		snprintf(spath, sizeof(spath), "%s/script.lua", f->dir);
		write_file(f->dir, "script.lua", script);
		opts.script_path = spath;
	}
	tern_err_clear(err);
	rc = shards_init(1, err);
	if (rc == 0)
		rc = policy_attach_shards(&opts, err);
	f->p = rc == 0 ? shard_get(0)->policy : NULL;
	return rc;
}

static void
load_ok(struct fixture *f)
{
	struct tern_err err;

	if (load(f, policy_src, NULL, &err) < 0)
		fail_msg("policy did not load: %s", err.msg);
}

static void
record(void *arg, lua_State *co, int status, int nres, const struct tern_err *err)
{
	struct outcome *o = arg;
	int i;

	o->done = true;
	o->calls++;
	o->status = status;
	o->nres = nres;
	for (i = 0; i < nres && i < 2; i++) {
		const char *s = lua_tostring(co, -nres + i);

		snprintf(o->res[i], sizeof(o->res[i]), "%s", s ? s : "(not a string)");
	}
	if (err)
		o->err = *err;
}

/* Call event's handler with string arguments; the outcome is in o once o->done. */
static int
call(struct policy *p, const char *event, const char *arg1, const char *arg2, struct outcome *o)
{
	struct coro_ref ref;
	lua_State *co = policy_hook_begin(p, event, &ref);
	int nargs = 0;

	memset(o, 0, sizeof(*o));
	if (co == NULL)
		return -ENOENT;
	if (arg1 && ++nargs)
		lua_pushstring(co, arg1);
	if (arg2 && ++nargs)
		lua_pushstring(co, arg2);
	return policy_hook_start(p, &ref, event, nargs, record, o);
}

static void
test_hooks_registered_and_found(void **state)
{
	struct fixture *f = *state;
	lua_State *L;

	load_ok(f);
	assert_ptr_equal(policy_shard(f->p), shard_get(0));
	assert_false(policy_validating(f->p));
	L = policy_lua(f->p);
	assert_ptr_equal(policy_from_lua(L), f->p);
	assert_non_null(policy_coros(f->p));
	assert_true(policy_has_hook(f->p, "smtp_server_ehlo"));
	assert_true(policy_has_hook(f->p, "get_queue_config"));
	assert_false(policy_has_hook(f->p, "smtp_server_auth_plain")); /* known, not registered */
	assert_false(policy_has_hook(f->p, "no_such_event"));
	assert_true(policy_event_known("init"));
	assert_true(policy_event_known("get_egress_pool"));
	assert_false(policy_event_known("Init"));
	assert_false(policy_event_known(""));
	assert_int_equal(lua_gettop(L), 0);
}

static void
test_hook_runs_with_arguments(void **state)
{
	struct fixture *f = *state;
	struct outcome o;
	struct coro_ref ref;

	load_ok(f);
	assert_int_equal(call(f->p, "smtp_server_ehlo", "mx.example", "x", &o), 0);
	assert_true(o.done); /* no yield: done ran before start returned */
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.status, CORO_OK);
	assert_int_equal(o.nres, 2);
	assert_string_equal(o.res[0], "mx.example+x");
	assert_string_equal(o.res[1], "42");
	/* A second call reuses the pool and sees fresh arguments. */
	assert_int_equal(call(f->p, "smtp_server_ehlo", "a", "b", &o), 0);
	assert_string_equal(o.res[0], "a+b");
	assert_null(policy_hook_begin(f->p, "smtp_server_auth_plain", &ref));
	assert_int_equal(coro_pool_running(policy_coros(f->p)), 0);
}

static void
test_hook_error_names_file_and_line(void **state)
{
	struct fixture *f = *state;
	char where[192];
	struct outcome o;

	load_ok(f);
	assert_int_equal(call(f->p, "smtp_server_mail_from", "x1", NULL, &o), 0);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.status, CORO_ERROR);
	snprintf(where, sizeof(where), "policy.lua:6: boom x1");
	assert_non_null(strstr(o.err.msg, where));
	assert_int_equal(o.err.code, 451);
}

static void
test_hook_reject(void **state)
{
	struct fixture *f = *state;
	struct outcome o;

	load_ok(f);
	assert_int_equal(call(f->p, "smtp_server_rcpt_to", NULL, NULL, &o), 0);
	assert_int_equal(o.status, CORO_REJECTED);
	assert_int_equal(o.err.code, 550);
	assert_string_equal(o.err.msg, "no such user");
}

static void
test_yielding_hook_finishes_on_the_loop(void **state)
{
	struct fixture *f = *state;
	struct outcome o;

	load_ok(f);
	assert_int_equal(call(f->p, "get_queue_config", "example.com", NULL, &o), 0);
	assert_false(o.done);
	assert_int_equal(coro_pool_running(policy_coros(f->p)), 1);
	shard_run_until(shard_get(0), &o.done);
	assert_int_equal(o.status, CORO_OK);
	assert_string_equal(o.res[0], "slept example.com");
}

static void
test_hook_timeout(void **state)
{
	struct fixture *f = *state;
	struct outcome o;

	load_ok(f);
	policy_set_hook_timeout(f->p, 0.02);
	assert_int_equal(call(f->p, "smtp_server_data", NULL, NULL, &o), 0);
	shard_run_until(shard_get(0), &o.done);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.status, CORO_TIMEOUT);
	assert_non_null(strstr(o.err.msg, "smtp_server_data timed out"));
	assert_int_equal(coro_pool_running(policy_coros(f->p)), 0);
}

static void
test_package_path(void **state)
{
	struct fixture *f = *state;
	lua_State *L;

	load_ok(f);
	L = policy_lua(f->p);
	lua_getglobal(L, "testing_ok");
	assert_true(lua_toboolean(L, -1));
	lua_pop(L, 1);
	/* Both lua/tern modules resolve, and the policy's directory comes first. */
	assert_int_equal(luaL_dostring(L, "return require('tern.dkim') ~= nil and "
					  "package.path:find('/tmp/test_policy.', 1, true) == 1"),
			 0);
	assert_true(lua_toboolean(L, -1));
	lua_pop(L, 1);
}

static void
test_unknown_event_names_file_and_line(void **state)
{
	struct fixture *f = *state;
	struct tern_err err;
	char want[192];

	assert_true(load(f, "local x = 1\n\ntern.on('smtp_server_helo', function() end)\n", NULL,
			 &err) < 0);
	snprintf(want, sizeof(want), "%s:3: unknown event 'smtp_server_helo'", f->path);
	assert_non_null(strstr(err.msg, want));
}

static void
test_duplicate_handler_and_bad_arguments(void **state)
{
	struct fixture *f = *state;
	struct tern_err err;

	assert_true(load(f, "tern.on('init', function() end)\ntern.on('init', function() end)\n",
			 NULL, &err) < 0);
	assert_non_null(
	    strstr(err.msg, "policy.lua:2: a handler for 'init' is already registered"));
	shards_free();
	assert_true(load(f, "tern.on('init', 'not a function')\n", NULL, &err) < 0);
	assert_non_null(strstr(err.msg, "policy.lua:1:"));
}

static void
test_syntax_error_and_missing_file(void **state)
{
	struct fixture *f = *state;
	struct policy_options opts = {.policy_path = "/nonexistent/policy.lua"};
	struct tern_err err;

	assert_true(load(f, "tern.on('init', function()\n", NULL, &err) < 0);
	assert_non_null(strstr(err.msg, "policy.lua:"));
	shards_free();
	tern_err_clear(&err);
	assert_int_equal(shards_init(1, &err), 0);
	assert_true(policy_attach_shards(&opts, &err) < 0);
	assert_non_null(strstr(err.msg, "/nonexistent/policy.lua"));
}

static void
test_script_loaded_after_policy(void **state)
{
	struct fixture *f = *state;
	struct tern_err err;
	lua_State *L;

	assert_int_equal(load(f, "order = 'policy'\n",
			      "order = order .. ',script'\n"
			      "tern.on('main', function() return order end)\n",
			      &err),
			 0);
	assert_true(policy_has_hook(f->p, "main"));
	L = policy_lua(f->p);
	lua_getglobal(L, "order");
	assert_string_equal(lua_tostring(L, -1), "policy,script");
	lua_pop(L, 1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_hooks_registered_and_found),
	    T(test_hook_runs_with_arguments),
	    T(test_hook_error_names_file_and_line),
	    T(test_hook_reject),
	    T(test_yielding_hook_finishes_on_the_loop),
	    T(test_hook_timeout),
	    T(test_package_path),
	    T(test_unknown_event_names_file_and_line),
	    T(test_duplicate_handler_and_bad_arguments),
	    T(test_syntax_error_and_missing_file),
	    T(test_script_loaded_after_policy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
