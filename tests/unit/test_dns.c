// SPDX-License-Identifier: MIT
/*
 * DNS: the answer parser on hand-built messages, configuration checks, and
 * MX resolution end to end against tests/integration/dnsserver.py started as
 * a subprocess on a loopback port (it answers only its own zones).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>

#include "tern/dns.h"

/* ---- the parser ---- */

struct pkt {
	uint8_t b[512];
	size_t n;
};

static void
put(struct pkt *p, const void *d, size_t n)
{
	memcpy(p->b + p->n, d, n);
	p->n += n;
}

static void
put16(struct pkt *p, unsigned v)
{
	uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};

	put(p, b, 2);
}

static void
put32(struct pkt *p, uint32_t v)
{
	put16(p, v >> 16);
	put16(p, v & 0xffff);
}

static void
put_name(struct pkt *p, const char *name)
{
	while (*name) {
		const char *dot = strchr(name, '.');
		size_t n = dot ? (size_t)(dot - name) : strlen(name);
		uint8_t len = (uint8_t)n;

		put(p, &len, 1);
		put(p, name, n);
		name += n + (dot ? 1 : 0);
	}
	put(p, "", 1);
}

static void
header(struct pkt *p, int rcode, unsigned qd, unsigned an, unsigned ns)
{
	p->n = 0;
	put16(p, 0x1234);
	put16(p, 0x8400 | (unsigned)rcode);
	put16(p, qd);
	put16(p, an);
	put16(p, ns);
	put16(p, 0);
}

static void
question(struct pkt *p, const char *name, unsigned type)
{
	put_name(p, name);
	put16(p, type);
	put16(p, 1);
}

/* An RR owned by the question's name, by a compression pointer to offset 12. */
static void
rr_head(struct pkt *p, unsigned type, uint32_t ttl, unsigned rdlen)
{
	put16(p, 0xc00c);
	put16(p, type);
	put16(p, 1);
	put32(p, ttl);
	put16(p, rdlen);
}

static void
test_parse_mx(void **state)
{
	struct dns_answer a;
	struct pkt p;

	header(&p, 0, 1, 3, 0);
	question(&p, "example.com", DNS_TYPE_MX);
	rr_head(&p, DNS_TYPE_MX, 3600, 2 + 6);
	put16(&p, 10);
	put(&p, "\x03mx1\xc0\x0c", 6); /* mx1.example.com, compressed */
	rr_head(&p, 5 /* CNAME: skipped */, 60, 2);
	put16(&p, 0xc00c);
	rr_head(&p, DNS_TYPE_MX, 0x80000000u, 2 + 1);
	put16(&p, 0);
	put(&p, "", 1); /* "." */
	assert_int_equal(dns_answer_parse(p.b, p.n, DNS_TYPE_MX, &a), 0);
	assert_int_equal(a.rcode, 0);
	assert_int_equal(a.n_rrs, 2);
	assert_int_equal(a.rrs[0].preference, 10);
	assert_string_equal(a.rrs[0].name, "mx1.example.com");
	assert_int_equal(a.rrs[0].ttl, 3600);
	assert_string_equal(a.rrs[1].name, "");
	assert_int_equal(a.rrs[1].ttl, 0); /* above 2^31: zero (RFC 2181) */
	assert_int_equal(a.negative_ttl, -1);
	dns_answer_deinit(&a);
}

static void
test_parse_addresses(void **state)
{
	static const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
	struct dns_answer a;
	struct pkt p;

	header(&p, 0, 1, 2, 0);
	question(&p, "mx.example.com", DNS_TYPE_AAAA);
	rr_head(&p, DNS_TYPE_AAAA, 30, 16);
	put(&p, v6, 16);
	rr_head(&p, DNS_TYPE_A, 30, 4); /* not the asked type */
	put(&p, "\x7f\0\0\x01", 4);
	assert_int_equal(dns_answer_parse(p.b, p.n, DNS_TYPE_AAAA, &a), 0);
	assert_int_equal(a.n_rrs, 1);
	assert_memory_equal(a.rrs[0].addr, v6, 16);
	dns_answer_deinit(&a);

	header(&p, 0, 1, 1, 0);
	question(&p, "mx.example.com", DNS_TYPE_A);
	rr_head(&p, DNS_TYPE_A, 30, 5); /* wrong length for A */
	put(&p, "\x7f\0\0\x01\0", 5);
	assert_int_equal(dns_answer_parse(p.b, p.n, DNS_TYPE_A, &a), -EINVAL);
}

static void
soa(struct pkt *p, uint32_t ttl, uint32_t minimum)
{
	rr_head(p, DNS_TYPE_SOA, ttl, 2 + 2 + 20);
	put16(p, 0xc00c);
	put16(p, 0xc00c);
	put32(p, 1);
	put32(p, 3600);
	put32(p, 600);
	put32(p, 86400);
	put32(p, minimum);
}

static void
test_parse_negative_ttl(void **state)
{
	struct dns_answer a;
	struct pkt p;

	header(&p, 3, 1, 0, 1);
	question(&p, "nope.example.com", DNS_TYPE_MX);
	soa(&p, 900, 120);
	assert_int_equal(dns_answer_parse(p.b, p.n, DNS_TYPE_MX, &a), 0);
	assert_int_equal(a.rcode, 3);
	assert_int_equal(a.n_rrs, 0);
	assert_int_equal(a.negative_ttl, 120);
	dns_answer_deinit(&a);

	header(&p, 0, 1, 0, 1);
	question(&p, "example.com", DNS_TYPE_MX);
	soa(&p, 45, 120); /* RFC 2308: the smaller of the SOA's TTL and minimum */
	assert_int_equal(dns_answer_parse(p.b, p.n, DNS_TYPE_MX, &a), 0);
	assert_int_equal(a.negative_ttl, 45);
	dns_answer_deinit(&a);
}

static void
test_parse_malformed(void **state)
{
	struct dns_answer a;
	struct pkt p = {.n = 0};
	size_t full, n;

	assert_int_equal(dns_answer_parse(p.b, 5, DNS_TYPE_MX, &a), -EINVAL);
	header(&p, 0, 1, 1, 0);
	question(&p, "example.com", DNS_TYPE_MX);
	rr_head(&p, DNS_TYPE_MX, 60, 2 + 6);
	put16(&p, 10);
	put(&p, "\x03mx1\xc0\x0c", 6);
	full = p.n;
	for (n = 12; n < full; n++)
		assert_int_equal(dns_answer_parse(p.b, n, DNS_TYPE_MX, &a), -EINVAL);
	/* A compression loop: the owner name points at itself. */
	header(&p, 0, 0, 1, 0);
	put16(&p, 0xc00c);
	put16(&p, DNS_TYPE_A);
	assert_int_equal(dns_answer_parse(p.b, p.n, DNS_TYPE_A, &a), -EINVAL);
}

static void
test_configure_checks_servers(void **state)
{
	struct dns_config c = {.n_servers = 1};
	struct tern_err err;
	static const char *const good[] = {"127.0.0.1", "127.0.0.1:5353", "::1", "[::1]:53"};
	static const char *const bad[] = {"localhost", "127.0.0.1:",  "127.0.0.1:99999",
					  "[::1",      "1.2.3.4:53x", ""};
	size_t i;

	for (i = 0; i < TERN_ARRAY_LEN(good); i++) {
		c.servers[0] = good[i];
		assert_int_equal(dns_configure(&c, &err), 0);
	}
	for (i = 0; i < TERN_ARRAY_LEN(bad); i++) {
		c.servers[0] = bad[i];
		assert_int_equal(dns_configure(&c, &err), -EINVAL);
		assert_non_null(strstr(err.msg, "not a server address"));
	}
	c.n_servers = DNS_MAX_SERVERS + 1;
	assert_int_equal(dns_configure(&c, &err), -EINVAL);
}

/* ---- against dnsserver.py ---- */

static const char zones[] =
    "{\"example.test\": {\"MX\": [[20, \"mx2.example.test.\"], [10, \"mx1.example.test.\"],"
    "                     [10, \"gone.example.test.\"], [30, \"noaddr.example.test.\"]], \"ttl\": "
    "60},"
    " \"mx1.example.test\": {\"A\": [\"127.0.0.2\"], \"AAAA\": [\"::2\"], \"ttl\": 40},"
    " \"mx2.example.test\": {\"AAAA\": [\"::3\"], \"A\": [\"127.0.0.3\", \"127.0.0.4\"]},"
    " \"noaddr.example.test\": {\"TXT\": []},"
    " \"plain.test\": {\"A\": [\"127.0.0.9\"]},"
    " \"nullmx.test\": {\"MX\": [[0, \".\"]]},"
    " \"dead.test\": {\"MX\": [[10, \"nowhere.dead.test.\"]]},"
    " \"broken.test\": {\"servfail\": true},"
    " \"halfbroken.test\": {\"MX\": [[10, \"ok.halfbroken.test.\"], [20, "
    "\"bad.halfbroken.test.\"]]},"
    " \"ok.halfbroken.test\": {\"A\": [\"127.0.0.5\"]},"
    " \"bad.halfbroken.test\": {\"servfail\": true},"
    " \"slow.test\": {\"drop\": true},"
    " \"$soa_minimum\": 30}";

static pid_t server_pid;
static int server_port;
static char log_path[64];

static int
start_server(void **state)
{
	char zpath[] = "/tmp/test_dns_zonesXXXXXX", line[64];
	const char *root = getenv("TERN_ROOT");
	char script[512];
	int fd = mkstemp(zpath), out[2];
	FILE *f;

	snprintf(script, sizeof(script), "%s/tests/integration/dnsserver.py", root ? root : ".");
	snprintf(log_path, sizeof(log_path), "%s.log", zpath);
	if (fd < 0 || write(fd, zones, sizeof(zones) - 1) != (ssize_t)sizeof(zones) - 1 ||
	    pipe(out) < 0)
		return -1;
	close(fd);
	server_pid = fork();
	if (server_pid == 0) {
		dup2(out[1], 1);
		close(out[0]);
		execl("/usr/bin/python3", "python3", script, "--port", "0", "--zones", zpath,
		      "--log", log_path, (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	f = fdopen(out[0], "r");
	if (f == NULL || fgets(line, sizeof(line), f) == NULL ||
	    sscanf(line, "ready %d", &server_port) != 1)
		return -1;
	fclose(f);
	unlink(zpath);
	return 0;
}

static int
stop_server(void **state)
{
	if (server_pid > 0) {
		kill(server_pid, SIGTERM);
		waitpid(server_pid, NULL, 0);
	}
	unlink(log_path);
	return 0;
}

/* Questions the server saw for name (any type). */
static int
server_count(const char *name)
{
	FILE *f = fopen(log_path, "r");
	char line[300], want[280];
	int n = 0;

	snprintf(want, sizeof(want), "%s ", name);
	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f))
		n += strncmp(line, want, strlen(want)) == 0;
	fclose(f);
	return n;
}

struct ctx {
	struct ev_loop *loop;
	struct dns_resolver *r;
};

static void
configure(double timeout)
{
	char server[32];
	struct dns_config c = {
	    .servers = {server}, .n_servers = 1, .timeout = timeout, .attempts = 2};
	struct tern_err err;

	snprintf(server, sizeof(server), "127.0.0.1:%d", server_port);
	assert_int_equal(dns_configure(&c, &err), 0);
}

static int
setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));
	struct tern_err err;

	configure(2.0);
	c->loop = ev_loop_new(EVFLAG_AUTO);
	c->r = dns_resolver_new(c->loop, &err);
	if (c->r == NULL)
		return -1;
	*state = c;
	return 0;
}

static int
teardown(void **state)
{
	struct ctx *c = *state;

	dns_resolver_free(c->r);
	ev_loop_destroy(c->loop);
	free(c);
	return 0;
}

struct got {
	int calls;
	double at; /* when the callback ran */
	struct dns_mx_result *res;
};

static void
got_cb(void *arg, struct dns_mx_result *res)
{
	struct got *g = arg;

	g->calls++;
	g->at = util_now();
	dns_mx_result_ref(res);
	g->res = res;
}

static void
got_free(struct got *g)
{
	if (g->res)
		dns_mx_result_unref(g->res);
	memset(g, 0, sizeof(*g));
}

/* Resolve and run the loop until the answer is in. */
static struct dns_mx_result *
resolve(struct ctx *c, const char *domain, struct got *g)
{
	memset(g, 0, sizeof(*g));
	if (dns_resolve_mx(c->r, domain, got_cb, g) != NULL)
		ev_run(c->loop, 0);
	assert_int_equal(g->calls, 1);
	return g->res;
}

static const char *
addr_str(const struct sockaddr_storage *ss, char *buf)
{
	const void *a = ss->ss_family == AF_INET
			    ? (const void *)&((struct sockaddr_in *)ss)->sin_addr
			    : (const void *)&((struct sockaddr_in6 *)ss)->sin6_addr;

	return inet_ntop(ss->ss_family, a, buf, INET6_ADDRSTRLEN);
}

static void
test_mx_sorted_with_addresses(void **state)
{
	struct ctx *c = *state;
	struct got g;
	struct dns_mx_result *res = resolve(c, "Example.TEST.", &g);
	char b[INET6_ADDRSTRLEN];
	double ttl = res->expires - util_now();

	assert_int_equal(res->status, DNS_OK);
	assert_false(res->implicit);
	/* gone.* (NXDOMAIN) and noaddr.* (no A/AAAA) are dropped. */
	assert_int_equal(res->n_hosts, 2);
	assert_string_equal(res->hosts[0].name, "mx1.example.test.");
	assert_int_equal(res->hosts[0].preference, 10);
	assert_int_equal(res->hosts[0].n_addrs, 2);
	assert_string_equal(addr_str(&res->hosts[0].addrs[0], b), "127.0.0.2");
	assert_string_equal(addr_str(&res->hosts[0].addrs[1], b), "::2");
	assert_string_equal(res->hosts[1].name, "mx2.example.test.");
	assert_int_equal(res->hosts[1].n_addrs, 3);
	assert_string_equal(addr_str(&res->hosts[1].addrs[0], b), "127.0.0.3");
	assert_string_equal(addr_str(&res->hosts[1].addrs[1], b), "127.0.0.4");
	assert_string_equal(addr_str(&res->hosts[1].addrs[2], b), "::3");
	/* The smallest TTL: the NXDOMAIN of gone.* per the SOA minimum, 30 s. */
	assert_true(ttl > 25 && ttl <= 30);
	got_free(&g);
}

static void
test_cache_hit_is_synchronous(void **state)
{
	struct ctx *c = *state;
	struct dns_stats st;
	struct got g;
	int asked;

	resolve(c, "example.test", &g);
	got_free(&g);
	asked = server_count("example.test");
	assert_null(dns_resolve_mx(c->r, "EXAMPLE.test", got_cb, &g));
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.res->status, DNS_OK);
	assert_int_equal(g.res->n_hosts, 2);
	assert_int_equal(server_count("example.test"), asked);
	dns_resolver_stats(c->r, &st);
	assert_int_equal(st.cache_hits, 1);
	got_free(&g);
}

static void
test_concurrent_lookups_coalesce(void **state)
{
	struct ctx *c = *state;
	struct got g[3];
	struct dns_stats st;
	int i;

	memset(g, 0, sizeof(g));
	for (i = 0; i < 3; i++)
		assert_non_null(dns_resolve_mx(c->r, "plain.test", got_cb, &g[i]));
	ev_run(c->loop, 0);
	for (i = 0; i < 3; i++) {
		assert_int_equal(g[i].calls, 1);
		assert_ptr_equal(g[i].res, g[0].res);
	}
	for (i = 0; i < 3; i++)
		got_free(&g[i]);
	dns_resolver_stats(c->r, &st);
	assert_int_equal(st.coalesced, 2);
	assert_int_equal(st.ares_queries, 3); /* MX, then A and AAAA of the domain itself */
}

static void
test_implicit_mx(void **state)
{
	struct ctx *c = *state;
	struct got g;
	struct dns_mx_result *res = resolve(c, "plain.test", &g);
	char b[INET6_ADDRSTRLEN];

	assert_int_equal(res->status, DNS_OK);
	assert_true(res->implicit);
	assert_int_equal(res->n_hosts, 1);
	assert_string_equal(res->hosts[0].name, "plain.test.");
	assert_int_equal(res->hosts[0].preference, 0);
	assert_string_equal(addr_str(&res->hosts[0].addrs[0], b), "127.0.0.9");
	got_free(&g);
}

static void
test_null_mx(void **state)
{
	struct ctx *c = *state;
	struct got g;
	struct dns_mx_result *res = resolve(c, "nullmx.test", &g);

	assert_int_equal(res->status, DNS_NULL_MX);
	assert_string_equal(res->error, "null MX");
	assert_int_equal(res->n_hosts, 0);
	got_free(&g);
}

static void
test_nxdomain_is_cached(void **state)
{
	struct ctx *c = *state;
	struct got g;
	struct dns_mx_result *res = resolve(c, "nosuch.example.test", &g);
	double ttl = res->expires - util_now();

	assert_int_equal(res->status, DNS_NXDOMAIN);
	assert_string_equal(res->error, "NXDOMAIN");
	assert_true(ttl > 25 && ttl <= 30); /* the SOA minimum */
	got_free(&g);
	assert_null(dns_resolve_mx(c->r, "nosuch.example.test", got_cb, &g));
	assert_int_equal(g.res->status, DNS_NXDOMAIN);
	assert_int_equal(server_count("nosuch.example.test"), 1);
	got_free(&g);
}

static void
test_no_address(void **state)
{
	struct ctx *c = *state;
	struct got g;
	struct dns_mx_result *res = resolve(c, "dead.test", &g);

	assert_int_equal(res->status, DNS_NO_ADDRESS);
	assert_string_equal(res->error, "no address for any MX host");
	got_free(&g);
}

static void
test_servfail_is_tempfail(void **state)
{
	struct ctx *c = *state;
	struct got g;
	struct dns_mx_result *res = resolve(c, "broken.test", &g);
	double ttl = res->expires - util_now();

	assert_int_equal(res->status, DNS_TEMPFAIL);
	assert_string_equal(res->error, "SERVFAIL");
	assert_true(ttl > 0 && ttl <= 5); /* transient failures are cached only briefly */
	got_free(&g);
}

static void
test_failed_host_is_dropped_and_shortens_ttl(void **state)
{
	struct ctx *c = *state;
	struct got g;
	struct dns_mx_result *res = resolve(c, "halfbroken.test", &g);

	assert_int_equal(res->status, DNS_OK);
	assert_int_equal(res->n_hosts, 1);
	assert_string_equal(res->hosts[0].name, "ok.halfbroken.test.");
	assert_true(res->expires - util_now() <= 5);
	got_free(&g);
}

static void
test_timeout_is_tempfail_within_deadline(void **state)
{
	struct ctx *c = *state;
	struct tern_err err;
	struct got g;
	struct dns_mx_result *res;
	double start;

	configure(0.6);
	assert_int_equal(dns_resolver_reconfigure(c->r, &err), 0);
	start = util_now();
	res = resolve(c, "slow.test", &g);
	assert_int_equal(res->status, DNS_TEMPFAIL);
	assert_string_equal(res->error, "timed out");
	assert_true(g.at - start < 0.75);
	assert_true(g.at - start >= 0.5);
	got_free(&g);
}

static void
test_cancel(void **state)
{
	struct ctx *c = *state;
	struct got a = {0}, b = {0};
	struct dns_query *q = dns_resolve_mx(c->r, "mx1.example.test", got_cb, &a);

	assert_non_null(q);
	assert_non_null(dns_resolve_mx(c->r, "mx1.example.test", got_cb, &b));
	dns_cancel(q);
	ev_run(c->loop, 0);
	assert_int_equal(a.calls, 0);
	assert_int_equal(b.calls, 1);
	got_free(&b);
}

static void
test_invalid_domain(void **state)
{
	struct ctx *c = *state;
	static const char *const bad[] = {"", ".", "a..b", "sp ace.test", "back\\slash.test"};
	struct got g = {0};
	size_t i;

	for (i = 0; i < TERN_ARRAY_LEN(bad); i++) {
		assert_null(dns_resolve_mx(c->r, bad[i], got_cb, &g));
		assert_int_equal(g.res->status, DNS_NXDOMAIN);
		got_free(&g);
	}
}

static void
test_reconfigure_drops_cache(void **state)
{
	struct ctx *c = *state;
	struct tern_err err;
	struct got g;

	resolve(c, "nullmx.test", &g);
	got_free(&g);
	configure(3.0);
	assert_int_equal(dns_resolver_reconfigure(c->r, &err), 0);
	assert_non_null(dns_resolve_mx(c->r, "nullmx.test", got_cb, &g));
	ev_run(c->loop, 0);
	assert_int_equal(g.res->status, DNS_NULL_MX);
	got_free(&g);
}

static void
test_result_outlives_resolver(void **state)
{
	struct ctx *c = *state;
	struct got g;

	resolve(c, "example.test", &g);
	dns_resolver_free(c->r);
	c->r = NULL;
	assert_string_equal(g.res->hosts[0].name, "mx1.example.test.");
	got_free(&g);
}

#define NET(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int
main(void)
{
	const struct CMUnitTest pure[] = {
	    cmocka_unit_test(test_parse_mx),
	    cmocka_unit_test(test_parse_addresses),
	    cmocka_unit_test(test_parse_negative_ttl),
	    cmocka_unit_test(test_parse_malformed),
	    cmocka_unit_test(test_configure_checks_servers),
	};
	const struct CMUnitTest net[] = {
	    NET(test_mx_sorted_with_addresses),
	    NET(test_cache_hit_is_synchronous),
	    NET(test_concurrent_lookups_coalesce),
	    NET(test_implicit_mx),
	    NET(test_null_mx),
	    NET(test_nxdomain_is_cached),
	    NET(test_no_address),
	    NET(test_servfail_is_tempfail),
	    NET(test_failed_host_is_dropped_and_shortens_ttl),
	    NET(test_timeout_is_tempfail_within_deadline),
	    NET(test_cancel),
	    NET(test_invalid_domain),
	    NET(test_reconfigure_drops_cache),
	    NET(test_result_outlives_resolver),
	};
	int failed = cmocka_run_group_tests_name("dns parser", pure, NULL, NULL);

	return failed + cmocka_run_group_tests_name("dns resolver", net, start_server, stop_server);
}
