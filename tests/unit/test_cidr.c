// SPDX-License-Identifier: MIT
/* Relay ranges: parsing and matching, IPv4, IPv6 and IPv4-mapped peers. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tern/cidr.h"

static bool
matches(const char *range, const char *ip)
{
	struct sockaddr_storage ss;
	struct cidr c;

	memset(&ss, 0, sizeof(ss));
	assert_int_equal(cidr_parse(range, &c), 0);
	if (strchr(ip, ':')) {
		ss.ss_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&ss)->sin6_addr), 1);
	} else {
		ss.ss_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr), 1);
	}
	return cidr_match(&c, (struct sockaddr *)&ss);
}

static void
test_match(void **state)
{
	assert_true(matches("10.0.0.0/8", "10.200.1.1"));
	assert_false(matches("10.0.0.0/8", "11.0.0.1"));
	assert_true(matches("127.0.0.1", "127.0.0.1"));
	assert_false(matches("127.0.0.1", "127.0.0.2"));
	assert_true(matches("192.168.1.128/25", "192.168.1.200"));
	assert_false(matches("192.168.1.128/25", "192.168.1.100"));
	assert_true(matches("0.0.0.0/0", "8.8.8.8"));
	assert_true(matches("::1", "::1"));
	assert_false(matches("::1", "::2"));
	assert_true(matches("2001:db8::/32", "2001:db8:1::5"));
	assert_false(matches("2001:db8::/32", "2001:db9::5"));
	assert_true(matches("127.0.0.0/8", "::ffff:127.0.0.9"));
	assert_false(matches("::1", "127.0.0.1"));
}

static void
test_parse_errors(void **state)
{
	struct cidr c;

	assert_int_equal(cidr_parse("10.0.0.0/33", &c), -EINVAL);
	assert_int_equal(cidr_parse("10.0.0.0/", &c), -EINVAL);
	assert_int_equal(cidr_parse("10.0.0.0/8x", &c), -EINVAL);
	assert_int_equal(cidr_parse("example.com", &c), -EINVAL);
	assert_int_equal(cidr_parse("", &c), -EINVAL);
	assert_int_equal(cidr_parse("::/129", &c), -EINVAL);
	assert_int_equal(cidr_parse("/8", &c), -EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_parse_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
