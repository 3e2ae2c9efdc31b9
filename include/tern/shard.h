/* SPDX-License-Identifier: MIT */
/*
 * Shards: one thread per core, each with its own libev loop, its own Lua
 * state (the policy the daemon attaches) and a mailbox. Work moves between shards only by posting a
 * task to the target's mailbox. threads=1 runs the very same code.
 */
#ifndef TERN_SHARD_H
#define TERN_SHARD_H

#include <pthread.h>
#include <stdbool.h>

#include <ev.h>

#include "tern/mailbox.h"
#include "tern/util.h"
#include "tern/watchdog.h"

/* At most this many shards (ternd --threads); per-shard tables may be sized by it. */
#define SHARD_MAX 256

struct policy;
struct shard;

typedef void (*shard_stop_fn)(struct shard *shard, void *arg);

struct shard {
	int id;
	struct ev_loop *loop;
	struct mailbox mailbox;
	struct policy *policy;
	pthread_t thread;
	bool started;
	bool exiting; /* its loop has ended and exit hooks run: register nothing new */
	/* Graceful stop: stop hooks run, then the loop ends once busy is 0 or the deadline passes. */
	bool stopping;
	int busy;
	double stop_deadline;
	ev_timer stop_timer;
	struct shard_stop_hook *stop_hooks;
	struct shard_stop_hook *exit_hooks;
	struct shard_stop_hook *free_hooks;
	/* Iteration begins (first check watcher) and ends (last prepare watcher), for the watchdog. */
	struct watchdog_slot watchdog;
	ev_check iter_begin;
	ev_prepare iter_end;
};

/* Create n shards with loops and mailboxes; the daemon then attaches a policy to each. */
int shards_init(int n, struct tern_err *err);
void shards_free(void);
int shard_count(void);
struct shard *shard_get(int i);
/* The shard whose thread is calling, or NULL. */
struct shard *shard_self(void);
/* Make s (NULL: none) the calling thread's shard, for start-up work done for it. */
void shard_enter(struct shard *s);

/* Post fn(arg) to run on shard to's thread. Thread-safe. */
int shard_post(struct shard *to, mailbox_task_fn fn, void *arg);

/* Run shard s's loop on the calling thread until *done is true (start-up work such as init). */
void shard_run_until(struct shard *s, const bool *done);
/* Start one thread per shard running its loop. */
int shards_start(struct tern_err *err);
/* True once shards_start began: before that (init), only shard 0's loop runs, on the main thread. */
bool shards_running(void);
/*
 * Ask every shard to stop within deadline seconds, then join the threads.
 * -ETIMEDOUT when a shard's loop is still stuck a second after the deadline
 * (logged with what it runs): its state cannot be freed, the caller must exit.
 */
int shards_stop(double deadline);

/* Register work to do when a stop begins (close listeners, ...). Shard thread only. */
void shard_on_stop(struct shard *s, shard_stop_fn fn, void *arg);
/* Register cleanup to run on the shard's thread after its loop has ended (free what is left). */
void shard_on_exit(struct shard *s, shard_stop_fn fn, void *arg);
/* Register what shards_free() frees with the shard (its policy), in its context. */
void shard_on_free(struct shard *s, shard_stop_fn fn, void *arg);
/* In-flight work a graceful stop waits for. Shard thread only. */
void shard_busy_inc(struct shard *s);
void shard_busy_dec(struct shard *s);

#endif
