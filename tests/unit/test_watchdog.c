// SPDX-License-Identifier: MIT
/*
 * Regression: a hook that never yields wedged its shard for good. The
 * watchdog interrupts a loop the interpreter runs (the call fails like any
 * hook error), and ends the process with status 75 when the loop runs in a
 * compiled trace, which no Lua hook reaches.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>
#include <lauxlib.h>
#include <lualib.h>

#include "tern/coro.h"
#include "tern/watchdog.h"

struct outcome {
	int calls;
	int status;
	struct tern_err err;
};

static void
record_done(void *arg, lua_State *co, int status, int nres, const struct tern_err *err)
{
	struct outcome *o = arg;

	o->calls++;
	o->status = status;
	if (err)
		o->err = *err;
}

static void
test_interpreted_loop_is_interrupted(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	lua_State *L = luaL_newstate();
	struct coro_pool *pool = coro_pool_new(L, loop);
	struct coro_options opts = {.what = "smtp_server_rcpt_to", .timeout = 0.2};
	struct watchdog_slot slot, *slots[] = {&slot};
	struct outcome o = {0};
	struct tern_err err;
	struct coro_ref ref;
	lua_State *co;

	luaL_openlibs(L);
	watchdog_slot_init(&slot, 0);
	watchdog_attach(&slot);
	assert_int_equal(watchdog_start(slots, 1, &err), 0);
	co = coro_acquire(pool, &ref);
	luaL_loadstring(co, "jit.off(true, true)\nlocal n = 0\nwhile true do n = n + 1 end");
	watchdog_iteration_begin(&slot);
	coro_start(&ref, 0, &opts, record_done, &o);
	watchdog_stop();
	watchdog_detach(&slot);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.status, CORO_ERROR);
	assert_non_null(strstr(o.err.msg, ":3: hook smtp_server_rcpt_to exceeded its deadline"));
	coro_pool_free(pool);
	lua_close(L);
	ev_loop_destroy(loop);
}

/* In a child: a compiled `while true do end` that only exiting can end. */
static void
child_wedges(const char *log_path)
{
	lua_State *L = luaL_newstate();
	struct watchdog_slot slot, *slots[] = {&slot};
	struct tern_err err;
	int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	dup2(fd, 2);
	luaL_openlibs(L);
	watchdog_slot_init(&slot, 3);
	watchdog_attach(&slot);
	if (watchdog_start(slots, 1, &err) < 0)
		_exit(1);
	watchdog_iteration_begin(&slot);
	watchdog_hook_enter(L, "smtp_server_data", "policy.lua:7", 0.2);
	if (luaL_loadstring(L, "while true do end") == 0)
		lua_pcall(L, 0, 0, 0);
	_exit(0);
}

static void
test_compiled_loop_exits_75(void **state)
{
	char log_path[] = "/tmp/tern-test-watchdog-XXXXXX";
	char text[4096] = "";
	int status = 0, i, fd = mkstemp(log_path);
	pid_t pid;

	assert_true(fd >= 0);
	close(fd);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		child_wedges(log_path);
	/* Deadline 0.2 s + 1 s + 2 s; a loaded host gets twenty. */
	for (i = 0; i < 200 && waitpid(pid, &status, WNOHANG) == 0; i++)
		usleep(100000);
	if (i == 200) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		fail_msg("the watchdog did not end a wedged process");
	}
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), WATCHDOG_EXIT_STATUS);
	fd = open(log_path, O_RDONLY);
	assert_true(read(fd, text, sizeof(text) - 1) > 0);
	close(fd);
	unlink(log_path);
	assert_non_null(strstr(text, "shard 3 has run hook smtp_server_data at policy.lua:7"));
	assert_non_null(strstr(text, "shard 3 wedged for "));
	assert_non_null(
	    strstr(text, "in hook smtp_server_data at policy.lua:7; exiting with status 75"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_compiled_loop_exits_75),
	    cmocka_unit_test(test_interpreted_loop_is_interrupted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
