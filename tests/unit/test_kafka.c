// SPDX-License-Identifier: MIT
/*
 * Tests for core/kafka.c against librdkafka's mock cluster (brokers inside
 * the process): a batch is done once every message has its delivery report,
 * served on the loop through the queue's pipe; an unreachable broker fails
 * every message after the timeout; a bad setting is named; an abandoned
 * batch never calls back, even when its producer is freed first.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "tern/kafka.h"

#include "support.h"

static const char *const mock[] = {"test.mock.num.brokers", "1"};

struct result {
	int calls;
	size_t failed;
	char err[256];
};

static void
done(void *arg, size_t failed, const char *err)
{
	struct result *r = arg;

	r->calls++;
	r->failed = failed;
	snprintf(r->err, sizeof(r->err), "%s", err ? err : "");
}

static bool
waiting(void *arg)
{
	return ((struct result *)arg)->calls == 0;
}

static struct kafka_producer *
producer(struct ev_loop *loop, const char *brokers, double timeout, bool with_mock)
{
	struct kafka_config cfg = {.brokers = brokers, .topic = "events", .timeout = timeout};
	struct tern_err err = {0};
	struct kafka_producer *p;

	if (with_mock) {
		cfg.props = mock;
		cfg.n_props = 1;
	}
	p = kafka_producer_new(loop, &cfg, &err);
	assert_non_null(p);
	return p;
}

static void
test_batch_acknowledged(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct kafka_producer *p = producer(loop, NULL, 10, true);
	struct kafka_msg msgs[500];
	struct result r = {0};
	char values[500][16];
	struct tern_err err;
	size_t i;

	for (i = 0; i < 500; i++) {
		snprintf(values[i], sizeof(values[i]), "record %zu", i);
		msgs[i] = (struct kafka_msg){.key = i % 2 ? "k" : NULL, .key_len = 1,
					     .value = values[i], .value_len = strlen(values[i])};
	}
	assert_non_null(kafka_send(p, msgs, 500, done, &r, &err));
	assert_int_equal(r.calls, 0); /* never before kafka_send returns */
	assert_true(support_run_while(loop, waiting, &r));
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.failed, 0);
	assert_string_equal(r.err, "");
	kafka_producer_free(p);
	ev_loop_destroy(loop);
}

static void
test_unreachable_broker_fails(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct kafka_producer *p = producer(loop, "127.0.0.1:1", 0.5, false);
	struct kafka_msg msgs[3] = {{.value = "a", .value_len = 1},
				    {.value = "b", .value_len = 1},
				    {.value = "c", .value_len = 1}};
	struct result r = {0};
	struct tern_err err;

	assert_non_null(kafka_send(p, msgs, 3, done, &r, &err));
	assert_true(support_run_while(loop, waiting, &r));
	assert_int_equal(r.failed, 3);
	assert_non_null(strstr(r.err, "timed out"));
	kafka_producer_free(p);
	ev_loop_destroy(loop);
}

static void
test_bad_setting(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	const char *const props[] = {"acks", "maybe"};
	struct kafka_config cfg = {.brokers = "h:1", .topic = "t", .props = props, .n_props = 1};
	struct tern_err err = {0};

	assert_null(kafka_producer_new(loop, &cfg, &err));
	assert_non_null(strstr(err.msg, "kafka setting 'acks'"));
	ev_loop_destroy(loop);
}

static void
test_abandoned_batch(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct kafka_producer *p = producer(loop, NULL, 10, true);
	struct kafka_msg m = {.value = "x", .value_len = 1};
	struct result r = {0}, r2 = {0};
	struct kafka_batch *b;
	struct tern_err err;

	b = kafka_send(p, &m, 1, done, &r, &err);
	assert_non_null(b);
	kafka_batch_abandon(b);
	assert_non_null(kafka_send(p, &m, 1, done, &r2, &err));
	assert_true(support_run_while(loop, waiting, &r2));
	assert_int_equal(r.calls, 0);
	/* Freed with a batch still waiting: it goes without a call. */
	assert_non_null(kafka_send(p, &m, 1, done, &r, &err));
	kafka_producer_free(p);
	assert_int_equal(r.calls, 0);
	ev_loop_destroy(loop);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_batch_acknowledged),
		cmocka_unit_test(test_unreachable_broker_fails),
		cmocka_unit_test(test_bad_setting),
		cmocka_unit_test(test_abandoned_batch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
