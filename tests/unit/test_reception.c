// SPDX-License-Identifier: MIT
/*
 * Reception: a batch handed over is written to the spool and the submitter
 * hears about it later, on its shard, never inside the submit call; by then
 * every message is readable in the spool. Queue "null" discards instead of
 * spooling; a detached submitter is never called back.
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

#include "support.h"
#include "tern/message.h"
#include "tern/policy.h"
#include "tern/queue.h"
#include "tern/reception.h"
#include "tern/shard.h"
#include "tern/spool.h"

/*
 * Messages stay in the spool: with no egress set up here, their first attempt
 * would settle them; the failing hook makes it a transient failure instead.
 */
static const char policy_src[] = "tern.on('get_queue_config', function() error('hold') end)\n";

struct fixture {
	char dir[64];
	struct spool *spool;
};

struct outcome {
	int calls;
	int status;
	struct shard *shard; /* where the callback ran */
};

static const struct reception_origin origin = {.peer_address = "127.0.0.1", .listener = "unit"};

static void
done_cb(void *arg, int status, const struct tern_err *err)
{
	struct outcome *o = arg;

	o->calls++;
	o->status = status;
	o->shard = shard_self();
}

static int
group_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char path[128];
	struct policy_options opts = {.policy_path = path};
	struct spool_config scfg = {.path = path};
	struct tern_err err = {0};
	FILE *p;

	strcpy(f->dir, "/tmp/test_reception.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/policy.lua", f->dir);
	p = fopen(path, "w");
	if (p == NULL || fputs(policy_src, p) < 0 || fclose(p) != 0)
		return -1;
	if (shards_init(1, &err) < 0 || policy_attach_shards(&opts, &err) < 0) {
		fprintf(stderr, "policy: %s\n", err.msg);
		return -1;
	}
	snprintf(path, sizeof(path), "%s/spool", f->dir);
	f->spool = spool_open(&scfg, &err);
	if (f->spool == NULL) {
		fprintf(stderr, "spool: %s\n", err.msg);
		return -1;
	}
	reception_set_spool(f->spool);
	queue_set_spool(f->spool);
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

static struct message *
make_message(const char *recipient, const char *body)
{
	struct message *m = message_new("a@b.test", recipient);

	assert_non_null(m);
	spool_make_id(&m->id, 0, 0);
	assert_int_equal(buf_append_str(&m->data, body), 0);
	return m;
}

static void
timer_done_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	*(bool *)t->data = true;
}

/* Run shard 0's loop, as that shard, until o was called back or seconds passed. */
static void
run_shard(struct outcome *o, double seconds)
{
	bool done = false;
	ev_timer t;
	double end = ev_time() + seconds;
	struct shard *s = shard_get(0);

	ev_timer_init(&t, timer_done_cb, 0.01, 0.01);
	t.data = &done;
	ev_timer_start(s->loop, &t);
	while ((o == NULL || o->calls == 0) && ev_time() < end) {
		done = false;
		shard_run_until(s, &done);
	}
	ev_timer_stop(s->loop, &t);
}

static bool
in_spool(struct fixture *f, const struct spool_id *id, const char *body)
{
	struct buf data;
	struct tern_err err = {0};
	bool found;

	buf_init(&data);
	found = spool_get_data(f->spool, id, &data, &err) == 0;
	if (found && body != NULL)
		assert_memory_equal(data.data, body, strlen(body));
	buf_deinit(&data);
	return found;
}

static void
test_done_comes_later_on_the_shard_with_the_batch_spooled(void **state)
{
	struct fixture *f = *state;
	struct message **msgs = calloc(2, sizeof(*msgs));
	struct spool_id ids[2];
	struct outcome o = {0};
	struct tern_err err = {0};

	msgs[0] = make_message("one@d.test", "Subject: 1\r\n\r\nfirst\r\n");
	msgs[1] = make_message("two@d.test", "Subject: 2\r\n\r\nsecond\r\n");
	ids[0] = msgs[0]->id;
	ids[1] = msgs[1]->id;
	assert_non_null(reception_submit(shard_get(0), msgs, 2, &origin, done_cb, &o, &err));
	assert_int_equal(o.calls, 0); /* never inside the call */
	run_shard(&o, 10);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.status, 0);
	assert_ptr_equal(o.shard, shard_get(0));
	assert_true(in_spool(f, &ids[0], "Subject: 1\r\n\r\nfirst\r\n"));
	assert_true(in_spool(f, &ids[1], "Subject: 2\r\n\r\nsecond\r\n"));
}

static void
test_null_queue_is_acknowledged_without_spooling(void **state)
{
	struct fixture *f = *state;
	struct message **msgs = calloc(1, sizeof(*msgs));
	struct spool_id id;
	struct outcome o = {0};
	struct tern_err err = {0};

	msgs[0] = make_message("one@d.test", "Subject: null\r\n\r\nx\r\n");
	assert_int_equal(message_set_meta(msgs[0], "queue", "\"null\"", 6), 0);
	id = msgs[0]->id;
	assert_non_null(reception_submit(shard_get(0), msgs, 1, &origin, done_cb, &o, &err));
	run_shard(&o, 10);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.status, 0);
	assert_false(in_spool(f, &id, NULL));
}

static void
test_detached_submitter_is_not_called_back(void **state)
{
	struct fixture *f = *state;
	struct message **msgs = calloc(1, sizeof(*msgs));
	struct spool_id id;
	struct outcome o = {0};
	struct tern_err err = {0};
	struct reception *r;
	double end = ev_time() + 10;

	msgs[0] = make_message("one@d.test", "Subject: gone\r\n\r\nx\r\n");
	id = msgs[0]->id;
	r = reception_submit(shard_get(0), msgs, 1, &origin, done_cb, &o, &err);
	assert_non_null(r);
	reception_detach(r);
	while (!in_spool(f, &id, NULL) && ev_time() < end)
		run_shard(NULL, 0.05);
	assert_true(in_spool(f, &id, "Subject: gone\r\n\r\nx\r\n"));
	run_shard(NULL, 0.2); /* the completion, had it called back, has run by now */
	assert_int_equal(o.calls, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_done_comes_later_on_the_shard_with_the_batch_spooled),
		cmocka_unit_test(test_null_queue_is_acknowledged_without_spooling),
		cmocka_unit_test(test_detached_submitter_is_not_called_back),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
