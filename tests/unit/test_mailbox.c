// SPDX-License-Identifier: MIT
/* Mailboxes: order, cross-thread posting, closing. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tern/mailbox.h"

struct seen {
	int order[64];
	int n;
};

struct item {
	struct seen *seen;
	int value;
};

static void
record(void *arg)
{
	struct item *it = arg;

	it->seen->order[it->seen->n++] = it->value;
}

static void
test_runs_in_posting_order(void **state)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct mailbox mb;
	struct seen seen = {0};
	struct item items[10];
	int i;

	mailbox_init(&mb, loop);
	for (i = 0; i < 10; i++) {
		items[i] = (struct item){&seen, i};
		assert_int_equal(mailbox_post(&mb, record, &items[i]), 0);
	}
	assert_int_equal(mailbox_drain(&mb), 10);
	for (i = 0; i < 10; i++)
		assert_int_equal(seen.order[i], i);
	mailbox_deinit(&mb);
	ev_loop_destroy(loop);
}

struct cross {
	struct mailbox mb;
	pthread_t owner;
	pthread_t ran_on;
	int count;
};

static void
count_and_stop(void *arg)
{
	struct cross *c = arg;

	c->ran_on = pthread_self();
	if (++c->count == 1000)
		ev_break(c->mb.loop, EVBREAK_ALL);
}

static void *
poster(void *arg)
{
	struct cross *c = arg;
	int i;

	for (i = 0; i < 500; i++)
		mailbox_post(&c->mb, count_and_stop, c);
	return NULL;
}

static void
test_cross_thread_posts_run_on_owner(void **state)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct cross c = {.owner = pthread_self()};
	pthread_t t1, t2;
	ev_timer guard;

	mailbox_init(&c.mb, loop);
	/* The mailbox alone does not keep the loop alive; a guard timer does. */
	ev_timer_init(&guard, NULL, 10, 0);
	ev_timer_start(loop, &guard);
	pthread_create(&t1, NULL, poster, &c);
	pthread_create(&t2, NULL, poster, &c);
	ev_run(loop, 0);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	mailbox_drain(&c.mb);
	assert_int_equal(c.count, 1000);
	assert_true(pthread_equal(c.ran_on, c.owner));
	ev_timer_stop(loop, &guard);
	mailbox_deinit(&c.mb);
	ev_loop_destroy(loop);
}

static void
test_closed_mailbox_refuses(void **state)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct mailbox mb;
	struct seen seen = {0};
	struct item it = {&seen, 1};

	mailbox_init(&mb, loop);
	mailbox_close(&mb);
	assert_int_equal(mailbox_post(&mb, record, &it), -EPIPE);
	mailbox_deinit(&mb);
	assert_int_equal(seen.n, 0);
	ev_loop_destroy(loop);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_runs_in_posting_order),
		cmocka_unit_test(test_cross_thread_posts_run_on_owner),
		cmocka_unit_test(test_closed_mailbox_refuses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
