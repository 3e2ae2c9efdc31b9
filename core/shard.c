// SPDX-License-Identifier: MIT
/*
 * Shard threads. Everything a shard owns (loop, Lua state, sessions, ready
 * queues) is touched only by its own thread; the mailbox is the door. The
 * shards array itself is built before any thread starts and never changes
 * afterwards, so reading it needs no lock.
 */
#include "tern/shard.h"
#include "tern/log.h"
#include "tern/policy.h"

#include <errno.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

struct shard_stop_hook {
	struct shard_stop_hook *next;
	shard_stop_fn fn;
	void *arg;
};

static void
run_hooks(struct shard *s, struct shard_stop_hook *h)
{
	for (; h; h = h->next)
		h->fn(s, h->arg);
}

static void
free_hooks(struct shard_stop_hook *h)
{
	struct shard_stop_hook *next;

	for (; h; h = next) {
		next = h->next;
		free(h);
	}
}

static struct shard *shards;
static int n_shards;
static atomic_bool running;
static __thread struct shard *current_shard;

static void
shard_enter(struct shard *s)
{
	current_shard = s;
	log_context()->shard = s->id;
}

int
shards_init(int n, const struct policy_options *opts, struct tern_err *err)
{
	int i;

	shards = xcalloc((size_t)n, sizeof(*shards));
	n_shards = n;
	for (i = 0; i < n; i++) {
		struct shard *s = &shards[i];

		s->id = i;
		s->loop = ev_loop_new(EVFLAG_AUTO);
		if (s->loop == NULL) {
			tern_err_set(err, 0, "", "cannot create event loop for shard %d", i);
			return -ENOMEM;
		}
		mailbox_init(&s->mailbox, s->loop);
		shard_enter(s);
		s->policy = policy_new(s, opts, err);
		if (s->policy == NULL)
			return -EINVAL;
	}
	current_shard = NULL;
	log_context()->shard = -1;
	return 0;
}

void
shards_free(void)
{
	int i;

	for (i = 0; i < n_shards; i++) {
		struct shard *s = &shards[i];

		shard_enter(s);
		mailbox_deinit(&s->mailbox);
		policy_free(s->policy);
		free_hooks(s->stop_hooks);
		free_hooks(s->exit_hooks);
		ev_loop_destroy(s->loop);
	}
	current_shard = NULL;
	free(shards); shards = NULL;
	n_shards = 0;
}

int
shard_count(void)
{
	return n_shards;
}

struct shard *
shard_get(int i)
{
	return i >= 0 && i < n_shards ? &shards[i] : NULL;
}

struct shard *
shard_self(void)
{
	return current_shard;
}

int
shard_post(struct shard *to, mailbox_task_fn fn, void *arg)
{
	return mailbox_post(&to->mailbox, fn, arg);
}

void
shard_run_until(struct shard *s, const bool *done)
{
	struct shard *prev = current_shard;

	shard_enter(s);
	while (!*done)
		ev_run(s->loop, EVRUN_ONCE);
	current_shard = prev;
	log_context()->shard = prev ? prev->id : -1;
}

/* Keeps the loop alive while the shard runs: listeners alone may be none. */
static void
shard_keepalive_cb(struct ev_loop *loop, ev_async *w, int revents)
{
}

static void *
shard_main(void *arg)
{
	struct shard *s = arg;
	ev_async keepalive;
	sigset_t all;

	/* Signals are the main thread's business. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	shard_enter(s);
	ev_async_init(&keepalive, shard_keepalive_cb);
	ev_async_start(s->loop, &keepalive);
	ev_run(s->loop, 0);
	ev_async_stop(s->loop, &keepalive);
	s->exiting = true;
	run_hooks(s, s->exit_hooks);
	return NULL;
}

bool
shards_running(void)
{
	return atomic_load(&running);
}

int
shards_start(struct tern_err *err)
{
	int i, rc;

	atomic_store(&running, true);
	for (i = 0; i < n_shards; i++) {
		rc = pthread_create(&shards[i].thread, NULL, shard_main, &shards[i]);
		if (rc != 0) {
			tern_err_set(err, 0, "", "cannot start shard %d: %s", i, strerror(rc));
			return -rc;
		}
		shards[i].started = true;
	}
	return 0;
}

static void
shard_check_stopped(struct shard *s)
{
	if (s->busy > 0 && util_now() < s->stop_deadline)
		return;
	if (s->busy > 0)
		log_warn("shard", "stop deadline passed with %d operations in flight", s->busy);
	ev_timer_stop(s->loop, &s->stop_timer);
	ev_break(s->loop, EVBREAK_ALL);
}

static void
shard_stop_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	shard_check_stopped(w->data);
}

struct shard_stop_req {
	struct shard *shard;
	double deadline;
};

static void
shard_begin_stop(void *arg)
{
	struct shard_stop_req *req = arg;
	struct shard *s = req->shard;
	s->stopping = true;
	s->stop_deadline = req->deadline;
	free(req);
	run_hooks(s, s->stop_hooks);
	ev_timer_init(&s->stop_timer, shard_stop_timer_cb, 0.02, 0.02);
	s->stop_timer.data = s;
	ev_timer_start(s->loop, &s->stop_timer);
	shard_check_stopped(s);
}

void
shards_stop(double deadline)
{
	double until = util_now() + deadline;
	int i;

	for (i = 0; i < n_shards; i++) {
		struct shard_stop_req *req = xmalloc(sizeof(*req));

		req->shard = &shards[i];
		req->deadline = until;
		if (!shards[i].started || shard_post(&shards[i], shard_begin_stop, req) < 0)
			free(req);
	}
	for (i = 0; i < n_shards; i++) {
		if (shards[i].started)
			pthread_join(shards[i].thread, NULL);
		shards[i].started = false;
	}
}

static void
add_hook(struct shard_stop_hook **list, shard_stop_fn fn, void *arg)
{
	struct shard_stop_hook *h = xmalloc(sizeof(*h));

	h->fn = fn;
	h->arg = arg;
	h->next = *list;
	*list = h;
}

void
shard_on_stop(struct shard *s, shard_stop_fn fn, void *arg)
{
	add_hook(&s->stop_hooks, fn, arg);
}

void
shard_on_exit(struct shard *s, shard_stop_fn fn, void *arg)
{
	add_hook(&s->exit_hooks, fn, arg);
}

void
shard_busy_inc(struct shard *s)
{
	s->busy++;
}

void
shard_busy_dec(struct shard *s)
{
	s->busy--;
	if (s->stopping)
		shard_check_stopped(s);
}
