// SPDX-License-Identifier: MIT
/*
 * An SMTP session's limits (smtp_limits.c): consecutive error replies,
 * deadlines that fire once and only when set, and failed AUTHs counted per
 * connection (then the tarpit) and per address, IPv6 by its /64.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>

#include "tern/penalty.h"
#include "tern/smtp_limits.h"

struct fixture {
	struct ev_loop *loop;
	struct smtp_listener_config cfg;
	struct smtp_limits lim;
	int fired[SMTP_LIMITS_TIMERS];
};

static void
expired(void *arg, enum smtp_limits_timer which)
{
	struct fixture *f = arg;

	f->fired[which]++;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->loop = ev_loop_new(EVFLAG_AUTO);
	f->cfg.max_errors = 3;
	f->cfg.max_auth_failures = 2;
	f->cfg.auth_failures_per_ip = (struct penalty_rule){.limit = 3, .window = 300};
	smtp_limits_init(&f->lim, f->loop, &f->cfg, expired, f);
	penalty_reset();
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	smtp_limits_stop(&f->lim);
	ev_loop_destroy(f->loop);
	free(f);
	return 0;
}

static void
test_errors_in_a_row(void **state)
{
	struct fixture *f = *state;

	smtp_limits_count_reply(&f->lim, 550);
	smtp_limits_count_reply(&f->lim, 451);
	assert_false(smtp_limits_errors_exceeded(&f->lim));
	/* A success starts the count over. */
	smtp_limits_count_reply(&f->lim, 250);
	smtp_limits_count_reply(&f->lim, 500);
	smtp_limits_count_reply(&f->lim, 501);
	assert_false(smtp_limits_errors_exceeded(&f->lim));
	smtp_limits_count_reply(&f->lim, 503);
	assert_true(smtp_limits_errors_exceeded(&f->lim));
	f->cfg.max_errors = 0;
	assert_false(smtp_limits_errors_exceeded(&f->lim));
}

/* A deadline of 0 is none; a running one is not pushed back by starting it again. */
static void
test_deadlines(void **state)
{
	struct fixture *f = *state;

	smtp_limits_deadline_start(&f->lim, SMTP_LIMITS_COMMAND);
	assert_false(ev_is_active(&f->lim.timers[SMTP_LIMITS_COMMAND]));
	f->cfg.command_timeout = 0.01;
	f->cfg.data_timeout = 3600;
	smtp_limits_deadline_start(&f->lim, SMTP_LIMITS_COMMAND);
	smtp_limits_deadline_start(&f->lim, SMTP_LIMITS_DATA);
	f->cfg.command_timeout = 3600;
	smtp_limits_deadline_start(&f->lim, SMTP_LIMITS_COMMAND);
	smtp_limits_deadline_stop(&f->lim, SMTP_LIMITS_DATA);
	ev_run(f->loop, 0);
	assert_int_equal(f->fired[SMTP_LIMITS_COMMAND], 1);
	assert_int_equal(f->fired[SMTP_LIMITS_DATA], 0);
}

static void
test_auth_failures_then_tarpit(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_storage peer = {0};

	peer.ss_family = AF_INET;
	assert_false(smtp_limits_auth_failed(&f->lim, &peer, "192.0.2.1"));
	assert_false(smtp_limits_auth_penalised(&f->lim, &peer, "192.0.2.1"));
	/* The second on this connection: the tarpit, even with no delay, ends in the expiry. */
	assert_true(smtp_limits_auth_failed(&f->lim, &peer, "192.0.2.1"));
	ev_run(f->loop, 0);
	assert_int_equal(f->fired[SMTP_LIMITS_TARPIT], 1);
	/* The third from the address, on a new connection: AUTH is refused before it starts. */
	smtp_limits_init(&f->lim, f->loop, &f->cfg, expired, f);
	assert_false(smtp_limits_auth_failed(&f->lim, &peer, "192.0.2.1"));
	assert_true(smtp_limits_auth_penalised(&f->lim, &peer, "192.0.2.1"));
}

/* Every address of one IPv6 /64 counts as one client. */
static void
test_ipv6_counts_by_64(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_storage peer = {0};
	struct sockaddr_in6 *a = (struct sockaddr_in6 *)&peer;
	char text[INET6_ADDRSTRLEN];
	int i;

	f->cfg.max_auth_failures = 0;
	peer.ss_family = AF_INET6;
	for (i = 1; i <= 3; i++) {
		snprintf(text, sizeof(text), "2001:db8::%d", i);
		assert_int_equal(inet_pton(AF_INET6, text, &a->sin6_addr), 1);
		assert_false(smtp_limits_auth_failed(&f->lim, &peer, text));
	}
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::ffff", &a->sin6_addr), 1);
	assert_true(smtp_limits_auth_penalised(&f->lim, &peer, "2001:db8::ffff"));
	assert_int_equal(inet_pton(AF_INET6, "2001:db8:0:1::1", &a->sin6_addr), 1);
	assert_false(smtp_limits_auth_penalised(&f->lim, &peer, "2001:db8:0:1::1"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_errors_in_a_row, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_deadlines, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_auth_failures_then_tarpit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ipv6_counts_by_64, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
