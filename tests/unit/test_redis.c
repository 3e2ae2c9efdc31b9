// SPDX-License-Identifier: MIT
/*
 * Redis server specs: IP:port only (a name would need a blocking lookup on a
 * shard), IPv6 in brackets, ports in range; every refusal names the spec.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tern/redis.h"

static void
test_parse_server(void **state)
{
	static const char *const bad[] = {"localhost:6379", "127.0.0.1", "127.0.0.1:", ":6379",
					  "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:63x",
					  "[::1:6379", "::1]:6379", "[]:6379"};
	struct tern_err err;
	char host[64];
	int port;
	size_t i;

	(void)state;
	assert_int_equal(redis_parse_server("127.0.0.1:6379", host, sizeof(host), &port, &err), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 6379);
	assert_int_equal(redis_parse_server("[::1]:7000", host, sizeof(host), &port, &err), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 7000);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&err, 0, sizeof(err));
		assert_int_equal(redis_parse_server(bad[i], host, sizeof(host), &port, &err), -EINVAL);
		assert_non_null(strstr(err.msg, bad[i]));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_server),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
