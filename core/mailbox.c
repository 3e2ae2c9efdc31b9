// SPDX-License-Identifier: MIT
/*
 * Mailboxes between shards. Posting takes the lock only to link one node;
 * the owner swaps the whole list out under the lock and runs it unlocked, so
 * a busy poster never waits for tasks to run.
 */
#include "tern/mailbox.h"

#include <errno.h>
#include <stdlib.h>

struct mailbox_task {
	struct mailbox_task *next;
	mailbox_task_fn fn;
	void *arg;
};

static void
mailbox_wake_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	mailbox_drain(w->data);
}

void
mailbox_init(struct mailbox *mb, struct ev_loop *loop)
{
	pthread_mutex_init(&mb->mu, NULL);
	mb->head = mb->tail = NULL;
	mb->loop = loop;
	mb->closed = false;
	ev_async_init(&mb->wake, mailbox_wake_cb);
	mb->wake.data = mb;
	ev_async_start(loop, &mb->wake);
	/* An idle mailbox must not keep a loop running on its own. */
	ev_unref(loop);
}

void
mailbox_deinit(struct mailbox *mb)
{
	mailbox_close(mb);
	mailbox_drain(mb);
	ev_ref(mb->loop);
	ev_async_stop(mb->loop, &mb->wake);
	pthread_mutex_destroy(&mb->mu);
}

int
mailbox_post(struct mailbox *mb, mailbox_task_fn fn, void *arg)
{
	struct mailbox_task *t = malloc(sizeof(*t));

	if (t == NULL)
		return -ENOMEM;
	t->next = NULL;
	t->fn = fn;
	t->arg = arg;
	pthread_mutex_lock(&mb->mu);
	if (mb->closed) {
		pthread_mutex_unlock(&mb->mu);
		free(t); t = NULL;
		return -EPIPE;
	}
	if (mb->tail)
		mb->tail->next = t;
	else
		mb->head = t;
	mb->tail = t;
	pthread_mutex_unlock(&mb->mu);
	ev_async_send(mb->loop, &mb->wake);
	return 0;
}

void
mailbox_close(struct mailbox *mb)
{
	pthread_mutex_lock(&mb->mu);
	mb->closed = true;
	pthread_mutex_unlock(&mb->mu);
}

int
mailbox_drain(struct mailbox *mb)
{
	struct mailbox_task *t, *next;
	int n = 0;

	pthread_mutex_lock(&mb->mu);
	t = mb->head;
	mb->head = mb->tail = NULL;
	pthread_mutex_unlock(&mb->mu);
	for (; t != NULL; t = next) {
		next = t->next;
		t->fn(t->arg);
		free(t);
		n++;
	}
	return n;
}
