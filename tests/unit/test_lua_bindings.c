// SPDX-License-Identifier: MIT
/*
 * The bindings' argument checking: each tern.* function called with bad
 * arguments in a shard's real lua_State raises an error that names the
 * caller's chunk and line, the function and what was wrong, instead of
 * accepting the value or crashing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <lauxlib.h>
#include <lua.h>

#include "tern/policy.h"
#include "tern/shard.h"

struct bad_call {
	const char *code;
	const char *error; /* expected after the "case:1: " position */
};

static const struct bad_call bad_calls[] = {
	{"tern.make_queue_config { retry_interval = 'soon' }",
	 "tern.make_queue_config: option 'retry_interval': 'soon' is not a duration"},
	{"tern.make_queue_config { bogus = 1 }", "unknown option 'bogus' for tern.make_queue_config"},
	{"tern.make_queue_config('x')",
	 "bad argument #1 to 'make_queue_config' (table expected, got string)"},
	{"tern.make_egress_path { max_message_rate = 'fast' }",
	 "tern.make_egress_path: option 'max_message_rate': 'fast' is not a rate"},
	{"tern.make_egress_path { connection_limit = 'many' }",
	 "tern.make_egress_path: option 'connection_limit' must be a number"},
	{"tern.make_egress_source { name = 'a', source_address = 'not-an-ip' }",
	 "tern.make_egress_source: source_address 'not-an-ip' is not an IP address"},
	{"tern.make_egress_source { source_address = '127.0.0.1' }",
	 "tern.make_egress_source: option 'name' is required"},
	{"tern.make_egress_pool { name = 'p', entries = 'x' }",
	 "tern.make_egress_pool: option 'entries' must be a non-empty list"},
	{"tern.start_esmtp_listener { listen = 'nowhere' }",
	 "tern.start_esmtp_listener: listen: 'nowhere' is not 'address:port'"},
	{"tern.start_esmtp_listener { listen = '127.0.0.1:25', relay_hosts = { '300.0.0.0/8' } }",
	 "tern.start_esmtp_listener: relay_hosts[1]: '300.0.0.0/8' is not an address or CIDR range"},
	{"tern.define_spool {}", "tern.define_spool: option 'path' is required"},
	{"tern.define_spool { path = '/x', min_sync_interval = '2s' }",
	 "tern.define_spool: option 'min_sync_interval' must be at most 1s"},
	{"tern.define_spool { path = '/x', min_sync_interval = 'soon' }",
	 "tern.define_spool: option 'min_sync_interval': 'soon' is not a duration"},
	{"tern.set_hook_timeout('later')",
	 "tern.set_hook_timeout: option 'timeout': 'later' is not a duration"},
	{"tern.dns.configure { servers = { 'x' } }",
	 "tern.dns.configure: 'x' is not a server address"},
	{"tern.on('no_such_event', function() end)", "unknown event 'no_such_event'"},
	{"tern.on('init', 5)", "bad argument #2 to 'on' (function expected, got number)"},
};

static char policy_path[] = "/tmp/tern-test-bindings-XXXXXX";

static int
setup(void **state)
{
	struct policy_options opts = {0};
	struct tern_err err;
	int fd = mkstemp(policy_path);
	static const char src[] = "tern.on('init', function() end)\n";

	if (fd < 0 || write(fd, src, sizeof(src) - 1) != (ssize_t)(sizeof(src) - 1))
		return -1;
	close(fd);
	opts.policy_path = policy_path;
	if (shards_init(1, &err) < 0 || policy_attach_shards(&opts, &err) < 0) {
		fprintf(stderr, "policy: %s\n", err.msg);
		return -1;
	}
	*state = policy_lua(shard_get(0)->policy);
	return 0;
}

static int
teardown(void **state)
{
	shards_free();
	unlink(policy_path);
	return 0;
}

/* Run code as chunk "case"; the error message it raised, or NULL. */
static const char *
run_case(lua_State *L, const char *code)
{
	if (luaL_loadbuffer(L, code, strlen(code), "=case") != 0 || lua_pcall(L, 0, 0, 0) != 0)
		return lua_tostring(L, -1);
	return NULL;
}

static void
test_bad_arguments_raise_named_errors(void **state)
{
	lua_State *L = *state;
	size_t i;

	for (i = 0; i < sizeof(bad_calls) / sizeof(bad_calls[0]); i++) {
		int top = lua_gettop(L);
		const char *msg = run_case(L, bad_calls[i].code);

		if (msg == NULL)
			fail_msg("accepted: %s", bad_calls[i].code);
		if (strncmp(msg, "case:1: ", 8) != 0 || strstr(msg + 8, bad_calls[i].error) != msg + 8)
			fail_msg("%s\n  raised: %s\n  wanted: case:1: %s", bad_calls[i].code, msg,
				 bad_calls[i].error);
		lua_settop(L, top);
	}
}

static void
test_good_arguments_are_accepted(void **state)
{
	lua_State *L = *state;
	const char *msg = run_case(L, "local q = tern.make_queue_config { retry_interval = '5m' }\n"
				      "local p = tern.make_egress_path { max_message_rate = '10/s' }\n"
				      "tern.set_hook_timeout('2s')\n");

	if (msg != NULL)
		fail_msg("raised: %s", msg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_arguments_raise_named_errors),
		cmocka_unit_test(test_good_arguments_are_accepted),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
