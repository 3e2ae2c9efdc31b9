// SPDX-License-Identifier: MIT
/*
 * Egress, pure part: smooth weighted round-robin (sequence, distribution,
 * skipping), and routing through smart hosts (no DNS, no Lua).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "tern/egress.h"

#define MAXW 8

struct wrr_fixture {
	struct wrr w;
	int weight[MAXW];
	int current[MAXW];
};

static void
wrr_setup(struct wrr_fixture *f, const int *weights, size_t n)
{
	memset(f, 0, sizeof(*f));
	memcpy(f->weight, weights, n * sizeof(*weights));
	f->w.n = n;
	f->w.weight = f->weight;
	f->w.current = f->current;
}

static void
test_nginx_sequence(void **state)
{
	static const int weights[] = {5, 1, 1};
	struct wrr_fixture f;
	char seq[15] = "";
	int i;

	wrr_setup(&f, weights, 3);
	for (i = 0; i < 14; i++)
		seq[i] = (char)('a' + wrr_next(&f.w, NULL));
	/* nginx's documented order for 5,1,1; the cycle then repeats. */
	assert_string_equal(seq, "aabacaaaabacaa");
	for (i = 0; i < 3; i++)
		assert_int_equal(f.current[i], 0);
}

static void
test_distribution_exact_per_cycle(void **state)
{
	static const int weights[] = {7, 3, 2, 1, 1};
	struct wrr_fixture f;
	int count[5] = {0}, cycle, i, run = 0, last = -1, longest = 0;

	wrr_setup(&f, weights, 5);
	for (cycle = 0; cycle < 10; cycle++) {
		memset(count, 0, sizeof(count));
		for (i = 0; i < 14; i++) {
			int p = wrr_next(&f.w, NULL);

			count[p]++;
			run = p == last ? run + 1 : 1;
			last = p;
			if (run > longest)
				longest = run;
		}
		for (i = 0; i < 5; i++)
			assert_int_equal(count[i], weights[i]);
	}
	/* Smooth: the heaviest entry never runs 7 times in a row. */
	assert_true(longest <= 2);
}

static void
test_skip_excludes(void **state)
{
	static const int weights[] = {5, 1, 1};
	bool skip[3] = {true, false, false};
	struct wrr_fixture f;
	int count[3] = {0}, i;

	wrr_setup(&f, weights, 3);
	for (i = 0; i < 100; i++)
		count[wrr_next(&f.w, skip)]++;
	assert_int_equal(count[0], 0);
	assert_int_equal(count[1], 50);
	assert_int_equal(count[2], 50);
	skip[0] = false;
	skip[2] = true;
	for (i = 0; i < 60; i++)
		assert_int_not_equal(wrr_next(&f.w, skip), 2);
}

static void
test_all_skipped_or_empty(void **state)
{
	static const int weights[] = {2, 3};
	bool skip[2] = {true, true};
	struct wrr_fixture f;

	wrr_setup(&f, weights, 2);
	assert_int_equal(wrr_next(&f.w, skip), -1);
	assert_int_equal(f.current[0], 0); /* a refused pick changes nothing */
	assert_int_equal(f.current[1], 0);
	wrr_setup(&f, weights, 0);
	assert_int_equal(wrr_next(&f.w, NULL), -1);
}

static void
test_single_entry(void **state)
{
	static const int weights[] = {3};
	struct wrr_fixture f;
	int i;

	wrr_setup(&f, weights, 1);
	for (i = 0; i < 10; i++)
		assert_int_equal(wrr_next(&f.w, NULL), 0);
}

struct routed {
	int calls, code;
	char enhanced[16], site[512], host0[128];
	size_t n_addrs;
	int port1;
};

static void
routed_cb(void *arg, const struct egress_route *route, int code, const char *enhanced,
	  const char *text)
{
	struct routed *r = arg;

	r->calls++;
	r->code = code;
	snprintf(r->enhanced, sizeof(r->enhanced), "%s", enhanced ? enhanced : "");
	if (route == NULL)
		return;
	snprintf(r->site, sizeof(r->site), "%s", route->site);
	snprintf(r->host0, sizeof(r->host0), "%s", route->hops[0].host);
	r->n_addrs = route->n_addrs;
	r->port1 = ntohs(((const struct sockaddr_in6 *)&route->hops[1].addr)->sin6_port);
}

/* Smart hosts route at once, in order, the list naming the site; a port defaults to 25. */
static void
test_route_through_smart_hosts(void **state)
{
	char mx[2][272] = {"192.0.2.1", "[2001:db8::1]:2525"};
	struct routed r = {0};

	(void)state;
	egress_route_resolve(NULL, "d.test", mx, 2, routed_cb, &r);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.code, 0);
	assert_int_equal(r.n_addrs, 2);
	assert_string_equal(r.host0, "192.0.2.1");
	assert_int_equal(r.port1, 2525);
	assert_string_equal(r.site, "192.0.2.1,[2001:db8::1]:2525");
}

/* A host name in mx_list is not resolved: the attempt fails for now, saying why. */
static void
test_route_refuses_a_name_in_mx_list(void **state)
{
	char mx[1][272] = {"mx.d.test:25"};
	struct routed r = {0};

	(void)state;
	egress_route_resolve(NULL, "d.test", mx, 1, routed_cb, &r);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.code, 451);
	assert_string_equal(r.enhanced, "4.3.5");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_nginx_sequence),
	    cmocka_unit_test(test_distribution_exact_per_cycle),
	    cmocka_unit_test(test_skip_excludes),
	    cmocka_unit_test(test_all_skipped_or_empty),
	    cmocka_unit_test(test_single_entry),
	    cmocka_unit_test(test_route_through_smart_hosts),
	    cmocka_unit_test(test_route_refuses_a_name_in_mx_list),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
