// SPDX-License-Identifier: MIT
/* PROXY protocol headers: v1 and v2, complete, incomplete and malformed. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tern/proxy_proto.h"

static const uint8_t sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
				0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

static int
parse(const void *p, size_t n, struct proxy_header *h)
{
	struct tern_err err;

	return proxy_proto_parse(p, n, h, &err);
}

static const char *
src_text(const struct proxy_header *h, char *out)
{
	if (h->src.ss_family == AF_INET6)
		return inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&h->src)->sin6_addr, out,
				 64);
	return inet_ntop(AF_INET, &((const struct sockaddr_in *)&h->src)->sin_addr, out, 64);
}

static void
test_v1(void **state)
{
	const char *tcp4 = "PROXY TCP4 203.0.113.5 127.0.0.1 40000 25\r\nEHLO x\r\n";
	const char *tcp6 = "PROXY TCP6 2001:db8::5 ::1 40000 25\r\n";
	struct proxy_header h;
	char a[64];

	assert_int_equal(parse(tcp4, strlen(tcp4), &h), 43);
	assert_int_equal(h.version, 1);
	assert_false(h.local);
	assert_string_equal(src_text(&h, a), "203.0.113.5");
	assert_int_equal(ntohs(((struct sockaddr_in *)&h.src)->sin_port), 40000);
	assert_int_equal(parse(tcp6, strlen(tcp6), &h), (int)strlen(tcp6));
	assert_string_equal(src_text(&h, a), "2001:db8::5");
	assert_int_equal(parse("PROXY UNKNOWN\r\n", 15, &h), 15);
	assert_true(h.local);
}

static void
test_v1_incomplete_and_bad(void **state)
{
	static const char *const bad[] = {"PROXY TCP4 203.0.113.5 127.0.0.1 40000\r\n",
					  "PROXY TCP4 203.0.113.500 127.0.0.1 1 2\r\n",
					  "PROXY TCP4 203.0.113.5 127.0.0.1 65536 25\r\n",
					  "PROXY TCP4 ::1 ::1 1 2\r\n",
					  "PROXY UDP4 203.0.113.5 127.0.0.1 1 2\r\n",
					  "PROXY TCP4 203.0.113.5 127.0.0.1 01 2\r\n",
					  "PROXY TCP4 203.0.113.5 127.0.0.1 1 2\n",
					  "EHLO client.test\r\n",
					  "proxy TCP4\r\n"};
	char longline[200];
	struct proxy_header h;
	size_t i;

	assert_int_equal(parse("PRO", 3, &h), TERN_AGAIN);
	assert_int_equal(parse("PROXY TCP4 203.0", 16, &h), TERN_AGAIN);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(parse(bad[i], strlen(bad[i]), &h), -EINVAL);
	memset(longline, 'x', sizeof(longline));
	memcpy(longline, "PROXY ", 6);
	assert_int_equal(parse(longline, sizeof(longline), &h), -EINVAL);
}

static size_t
v2(uint8_t *out, uint8_t ver_cmd, uint8_t fam, const uint8_t *addrs, uint16_t alen)
{
	memcpy(out, sig, 12);
	out[12] = ver_cmd;
	out[13] = fam;
	out[14] = (uint8_t)(alen >> 8);
	out[15] = (uint8_t)alen;
	memcpy(out + 16, addrs, alen);
	return 16u + alen;
}

static void
test_v2(void **state)
{
	const uint8_t a4[12 + 3] = {203, 0, 113, 5, 127, 0, 0, 1, 0x9c, 0x40, 0, 25, 1, 0, 0};
	uint8_t b[128];
	struct proxy_header h;
	char a[64];
	size_t n;

	n = v2(b, 0x21, 0x11, a4, sizeof(a4)); /* a TLV follows the addresses: skipped */
	assert_int_equal(parse(b, n, &h), (int)n);
	assert_int_equal(h.version, 2);
	assert_string_equal(src_text(&h, a), "203.0.113.5");
	assert_int_equal(ntohs(((struct sockaddr_in *)&h.src)->sin_port), 40000);
	assert_int_equal(parse(b, n - 1, &h), TERN_AGAIN);
	assert_int_equal(parse(b, 5, &h), TERN_AGAIN);
	n = v2(b, 0x20, 0x00, a4, 0); /* LOCAL: the balancer's own health check */
	assert_int_equal(parse(b, n, &h), 16);
	assert_true(h.local);
}

static void
test_v2_bad(void **state)
{
	const uint8_t a4[12] = {0};
	uint8_t b[128];
	struct proxy_header h;

	assert_int_equal(parse(b, v2(b, 0x11, 0x11, a4, 12), &h), -EINVAL); /* version 1 */
	assert_int_equal(parse(b, v2(b, 0x22, 0x11, a4, 12), &h), -EINVAL); /* command 2 */
	assert_int_equal(parse(b, v2(b, 0x21, 0x11, a4, 8), &h), -EINVAL);  /* short IPv4 */
	assert_int_equal(parse(b, v2(b, 0x21, 0x21, a4, 12), &h), -EINVAL); /* short IPv6 */
	v2(b, 0x21, 0x11, a4, 0);
	b[14] = 0xff; /* 65280 octets announced */
	assert_int_equal(parse(b, 16, &h), -EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_v1),
	    cmocka_unit_test(test_v1_incomplete_and_bad),
	    cmocka_unit_test(test_v2),
	    cmocka_unit_test(test_v2_bad),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
