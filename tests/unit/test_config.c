// SPDX-License-Identifier: MIT
/*
 * Config: the engine asks its shard's provider, never Lua. These tests run
 * scheduled queues and egress on a shard that has no Lua state at all: a C
 * provider answers, records what it was asked, and sends the messages to a
 * closed loopback port, so each attempt ends as a transient failure and the
 * message stays in the spool.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support.h"
#include "tern/config.h"
#include "tern/message.h"
#include "tern/queue.h"
#include "tern/reception.h"
#include "tern/shard.h"
#include "tern/spool.h"

struct asked {
	int queue, pool, source, path;
	bool fail_queue;
	char domain[64], tenant[64], campaign[64];
	char pool_name[64], source_name[64], path_source[64], path_domain[64];
};

struct fixture {
	char dir[64];
	struct spool *spool;
	struct asked asked;
};

static int
ask_queue(void *ctx, const char *domain, const char *tenant, const char *campaign,
	  struct queue_config *out, struct tern_err *err)
{
	struct asked *a = ctx;

	a->queue++;
	snprintf(a->domain, sizeof(a->domain), "%s", domain);
	snprintf(a->tenant, sizeof(a->tenant), "%s", tenant);
	snprintf(a->campaign, sizeof(a->campaign), "%s", campaign);
	if (a->fail_queue) {
		tern_err_set(err, 451, "4.3.0", "no config today");
		return -EINVAL;
	}
	queue_config_defaults(out);
	snprintf(out->egress_pool, sizeof(out->egress_pool), "p1");
	out->retry_interval = 3600; /* no second attempt while a test runs */
	out->mx_list = calloc(1, sizeof(*out->mx_list));
	assert_non_null(out->mx_list);
	snprintf(out->mx_list[0], sizeof(out->mx_list[0]), "127.0.0.1:1");
	out->n_mx = 1;
	return 1;
}

static int
ask_pool(void *ctx, const char *name, struct egress_pool_cfg *out, struct tern_err *err)
{
	struct asked *a = ctx;

	a->pool++;
	snprintf(a->pool_name, sizeof(a->pool_name), "%s", name);
	snprintf(out->name, sizeof(out->name), "%s", name);
	out->sources = calloc(1, sizeof(*out->sources));
	out->weights = calloc(1, sizeof(*out->weights));
	assert_true(out->sources && out->weights);
	snprintf(out->sources[0], sizeof(out->sources[0]), "s1");
	out->weights[0] = 1;
	out->n = 1;
	return 1;
}

/* No answer: the engine's defaults apply. */
static int
ask_source(void *ctx, const char *name, struct egress_source_cfg *out, struct tern_err *err)
{
	struct asked *a = ctx;

	a->source++;
	snprintf(a->source_name, sizeof(a->source_name), "%s", name);
	return 0;
}

static int
ask_path(void *ctx, const char *domain, const char *source, const char *site,
	 struct egress_path_cfg *out, struct tern_err *err)
{
	struct asked *a = ctx;

	a->path++;
	snprintf(a->path_domain, sizeof(a->path_domain), "%s", domain);
	snprintf(a->path_source, sizeof(a->path_source), "%s", source);
	egress_path_defaults(out);
	out->connect_timeout = 2;
	return 1;
}

static const struct config_provider provider = {
    .queue = ask_queue,
    .pool = ask_pool,
    .source = ask_source,
    .path = ask_path,
};

static const struct reception_origin origin = {.peer_address = "127.0.0.1", .listener = "unit"};

static int
group_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char path[128];
	struct spool_config scfg = {.path = path};
	struct tern_err err = {0};

	strcpy(f->dir, "/tmp/test_config.XXXXXX");
	if (mkdtemp(f->dir) == NULL || shards_init(1, &err) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/spool", f->dir);
	f->spool = spool_open(&scfg, &err);
	if (f->spool == NULL) {
		fprintf(stderr, "spool: %s\n", err.msg);
		return -1;
	}
	reception_set_spool(f->spool);
	queue_set_spool(f->spool);
	config_attach(shard_get(0), &provider, &f->asked);
	shard_enter(shard_get(0)); /* the test's thread runs shard 0's loop */
	*state = f;
	return 0;
}

static int
group_teardown(void **state)
{
	struct fixture *f = *state;

	shards_free();
	spool_close(f->spool);
	support_rm_rf(f->dir);
	free(f);
	return 0;
}

static void
done_cb(void *arg, int status, const struct tern_err *err)
{
	*(int *)arg = status;
}

/* Spool one message for tenant acme, campaign spring, and run until it is accepted. */
static struct spool_id
submit(const char *recipient)
{
	struct message **msgs = calloc(1, sizeof(*msgs));
	struct tern_err err = {0};
	struct spool_id id;
	int status = 1;

	assert_non_null(msgs);
	msgs[0] = message_new("a@b.test", recipient);
	assert_non_null(msgs[0]);
	spool_make_id(&msgs[0]->id, 0, 0);
	msgs[0]->created = util_wallclock(); /* else it is too old to deliver */
	assert_int_equal(buf_append_str(&msgs[0]->data, "Subject: x\r\n\r\nx\r\n"), 0);
	assert_int_equal(message_set_meta(msgs[0], "tenant", "\"acme\"", 6), 0);
	assert_int_equal(message_set_meta(msgs[0], "campaign", "\"spring\"", 8), 0);
	id = msgs[0]->id;
	assert_non_null(reception_submit(shard_get(0), msgs, 1, &origin, done_cb, &status, &err));
	support_run_for(shard_get(0)->loop, 0.05);
	while (status == 1)
		ev_run(shard_get(0)->loop, EVRUN_ONCE);
	assert_int_equal(status, 0);
	return id;
}

struct wait {
	const int *counter;
	int until;
};

static bool
below(void *arg)
{
	struct wait *w = arg;

	return *w->counter < w->until;
}

/* Run shard 0 until *counter reaches n, then a little more for the attempt to end. */
static void
run_until(const int *counter, int n)
{
	struct wait w = {counter, n};

	assert_true(support_run_while(shard_get(0)->loop, below, &w));
	support_run_for(shard_get(0)->loop, 0.3);
}

static bool
in_spool(struct fixture *f, const struct spool_id *id)
{
	struct buf meta;
	struct tern_err err = {0};
	bool found;

	buf_init(&meta);
	found = spool_get_meta(f->spool, id, &meta, &err) == 0;
	buf_deinit(&meta);
	return found;
}

/* A queue asks the provider with the parts of its name; a failed answer defers the message. */
static void
test_queue_asks_the_provider_without_lua(void **state)
{
	struct fixture *f = *state;
	struct spool_id id;

	f->asked.fail_queue = true;
	id = submit("one@failing.test");
	run_until(&f->asked.queue, 1);
	f->asked.fail_queue = false;
	assert_string_equal(f->asked.domain, "failing.test");
	assert_string_equal(f->asked.tenant, "acme");
	assert_string_equal(f->asked.campaign, "spring");
	assert_int_equal(f->asked.pool, 0);
	assert_true(in_spool(f, &id));
}

/* Egress asks for the queue's pool, its source and the (source, site) path, once each. */
static void
test_egress_asks_pool_source_and_path_once(void **state)
{
	struct fixture *f = *state;
	struct spool_id id;
	int queue0 = f->asked.queue;

	id = submit("one@d.test");
	run_until(&f->asked.path, 1);
	assert_int_equal(f->asked.queue, queue0 + 1);
	assert_string_equal(f->asked.pool_name, "p1");
	assert_string_equal(f->asked.source_name, "s1");
	assert_string_equal(f->asked.path_source, "s1");
	assert_string_equal(f->asked.path_domain, "d.test");
	assert_true(in_spool(f, &id)); /* the closed port deferred it */
	submit("two@d.test");
	support_run_for(shard_get(0)->loop, 0.5);
	assert_int_equal(f->asked.queue, queue0 + 1); /* memoised */
	assert_int_equal(f->asked.pool, 1);
	assert_int_equal(f->asked.source, 1);
	assert_int_equal(f->asked.path, 1);
}

/* A new provider epoch makes a queue ask again at its next use. */
static void
test_queue_asks_again_in_a_new_epoch(void **state)
{
	struct fixture *f = *state;
	int queue0 = f->asked.queue;
	uint64_t epoch = config_epoch(shard_get(0));

	config_attach(shard_get(0), &provider, &f->asked);
	assert_true(config_epoch(shard_get(0)) > epoch);
	submit("three@d.test");
	run_until(&f->asked.queue, queue0 + 1);
	assert_int_equal(f->asked.queue, queue0 + 1);
}

/* Without a provider the engine gets complete defaults. */
static void
test_defaults_without_a_provider(void **state)
{
	struct fixture *f = *state;
	struct shard *s = shard_get(0);
	struct tern_err err = {0};
	struct queue_config q = {0};
	struct egress_pool_cfg p = {0};
	struct egress_source_cfg src = {0};
	struct egress_path_cfg path = {0};

	config_attach(s, NULL, NULL);
	assert_int_equal(config_queue(s, "d.test", "", "", &q, &err), 0);
	assert_string_equal(q.egress_pool, "default");
	assert_true(q.max_age > 0 && q.retry_interval > 0);
	assert_int_equal(config_pool(s, "solo", &p, &err), 0);
	assert_int_equal(p.n, 1);
	assert_string_equal(p.sources[0], "solo");
	assert_int_equal(p.weights[0], 1);
	egress_pool_cfg_deinit(&p);
	assert_int_equal(config_source(s, "solo", &src, &err), 0);
	assert_string_equal(src.ehlo, "localhost");
	assert_false(src.has_addr);
	assert_int_equal(config_path(s, "d.test", "solo", "mx.d.test", &path, &err), 0);
	assert_int_equal(path.connection_limit, 10);
	assert_int_equal(path.smtp_port, 25);
	config_attach(s, &provider, &f->asked);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_queue_asks_the_provider_without_lua),
	    cmocka_unit_test(test_egress_asks_pool_source_and_path_once),
	    cmocka_unit_test(test_queue_asks_again_in_a_new_epoch),
	    cmocka_unit_test(test_defaults_without_a_provider),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
