/* SPDX-License-Identifier: MIT */
/*
 * A mailbox: the only way work moves between shards. Any thread posts a task
 * (function + argument) into a locked list and wakes the owning loop with an
 * ev_async; the owner runs the tasks in posting order on its own thread.
 */
#ifndef TERN_MAILBOX_H
#define TERN_MAILBOX_H

#include <pthread.h>
#include <stdbool.h>

#include <ev.h>

typedef void (*mailbox_task_fn)(void *arg);

struct mailbox_task;

struct mailbox {
	pthread_mutex_t mu;
	struct mailbox_task *head, *tail;
	struct ev_loop *loop;
	ev_async wake;
	bool closed;
};

/* Attach to loop (the owner's). The async watcher is started but does not keep the loop alive. */
void mailbox_init(struct mailbox *mb, struct ev_loop *loop);
/* Run what is still queued, then release everything. Owner thread only. */
void mailbox_deinit(struct mailbox *mb);
/* Thread-safe. Returns 0, -ENOMEM, or -EPIPE once the mailbox is closed (task not run). */
int mailbox_post(struct mailbox *mb, mailbox_task_fn fn, void *arg);
/* Refuse further posts (e.g. at shutdown). */
void mailbox_close(struct mailbox *mb);
/* Run every task queued now; returns how many ran. Owner thread only. */
int mailbox_drain(struct mailbox *mb);

#endif
