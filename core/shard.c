// SPDX-License-Identifier: MIT
/*
 * Shard threads. Everything a shard owns (loop, Lua state, sessions, ready
 * queues) is touched only by its own thread; the mailbox is the door. The
 * shards array itself is built before any thread starts and never changes
 * afterwards, so reading it needs no lock.
 */
#include "tern/shard.h"
#include "tern/log.h"

#include <errno.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

void
shard_enter(struct shard *s)
{
	current_shard = s;
	log_context()->shard = s ? s->id : -1;
}

int
shards_init(int n, struct tern_err *err)
{
	int i;

	shards = xcalloc((size_t)n, sizeof(*shards));
	n_shards = n;
	for (i = 0; i < n; i++) {
		struct shard *s = &shards[i];

		s->id = i;
		watchdog_slot_init(&s->watchdog, i);
		s->loop = ev_loop_new(EVFLAG_AUTO);
		if (s->loop == NULL) {
			tern_err_set(err, 0, "", "cannot create event loop for shard %d", i);
			n_shards = i; /* shards_free() must not touch the ones never set up */
			return -ENOMEM;
		}
		mailbox_init(&s->mailbox, s->loop);
	}
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
		run_hooks(s, s->free_hooks);
		free_hooks(s->stop_hooks);
		free_hooks(s->exit_hooks);
		free_hooks(s->free_hooks);
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

static void
shard_iter_begin_cb(struct ev_loop *loop, ev_check *w, int revents)
{
	watchdog_iteration_begin(w->data);
}

static void
shard_iter_end_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	watchdog_iteration_end(w->data);
}

/*
 * An iteration's work lies between the check watchers (after the poll) and
 * the prepare watchers (before the next one); other modules' prepare
 * watchers still work (batched spool writes), so the end is the last one.
 */
static void
shard_watch_iterations(struct shard *s)
{
	ev_check_init(&s->iter_begin, shard_iter_begin_cb);
	ev_set_priority(&s->iter_begin, EV_MAXPRI);
	s->iter_begin.data = &s->watchdog;
	ev_check_start(s->loop, &s->iter_begin);
	ev_unref(s->loop);
	ev_prepare_init(&s->iter_end, shard_iter_end_cb);
	ev_set_priority(&s->iter_end, EV_MINPRI);
	s->iter_end.data = &s->watchdog;
	ev_prepare_start(s->loop, &s->iter_end);
	ev_unref(s->loop);
}

static void
shard_unwatch_iterations(struct shard *s)
{
	ev_ref(s->loop);
	ev_check_stop(s->loop, &s->iter_begin);
	ev_ref(s->loop);
	ev_prepare_stop(s->loop, &s->iter_end);
	watchdog_detach(&s->watchdog);
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
	watchdog_attach(&s->watchdog);
	shard_watch_iterations(s);
	ev_async_init(&keepalive, shard_keepalive_cb);
	ev_async_start(s->loop, &keepalive);
	ev_run(s->loop, 0);
	ev_async_stop(s->loop, &keepalive);
	shard_unwatch_iterations(s);
	s->exiting = true;
	run_hooks(s, s->exit_hooks);
	return NULL;
}

bool
shards_running(void)
{
	return atomic_load(&running);
}

static int
shards_start_watchdog(struct tern_err *err)
{
	struct watchdog_slot **slots = xcalloc((size_t)n_shards, sizeof(*slots));
	int i, rc;

	for (i = 0; i < n_shards; i++)
		slots[i] = &shards[i].watchdog;
	rc = watchdog_start(slots, n_shards, err);
	free(slots); slots = NULL;
	return rc;
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
	return shards_start_watchdog(err);
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

/*
 * Join s's thread unless its loop is still stuck at until_rt (CLOCK_REALTIME,
 * as pthread_timedjoin_np wants): a shard wedged in a hook never reads its
 * stop request, and waiting for it would make SIGTERM hang too. A shard
 * whose loop has ended is only freeing what it owned, which always ends.
 */
static int
shard_join(struct shard *s, const struct timespec *until_rt, double deadline)
{
	char what[300];
	int rc;

	if (!s->started)
		return 0;
	rc = pthread_timedjoin_np(s->thread, NULL, until_rt);
	if (rc != 0 && watchdog_attached(&s->watchdog)) {
		watchdog_describe(&s->watchdog, what, sizeof(what));
		log_error("shard", "shard %d did not stop within the stop timeout (%gs): its loop is "
			  "stuck in %s", s->id, deadline, what);
		return -ETIMEDOUT;
	}
	if (rc != 0)
		pthread_join(s->thread, NULL);
	s->started = false;
	return 0;
}

/* Slack past the stop deadline for a shard to notice it and end its loop. */
#define SHARD_STOP_SLACK 1.0

int
shards_stop(double deadline)
{
	double until = util_now() + deadline;
	double until_rt = util_wallclock() + deadline + SHARD_STOP_SLACK;
	struct timespec ts = {(time_t)until_rt, (long)((until_rt - (double)(time_t)until_rt) * 1e9)};
	int i, rc = 0;

	for (i = 0; i < n_shards; i++) {
		struct shard_stop_req *req = xmalloc(sizeof(*req));

		req->shard = &shards[i];
		req->deadline = until;
		if (!shards[i].started || shard_post(&shards[i], shard_begin_stop, req) < 0)
			free(req);
	}
	for (i = 0; i < n_shards; i++)
		if (shard_join(&shards[i], &ts, deadline) < 0)
			rc = -ETIMEDOUT;
	if (rc == 0)
		watchdog_stop();
	return rc;
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
shard_on_free(struct shard *s, shard_stop_fn fn, void *arg)
{
	add_hook(&s->free_hooks, fn, arg);
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
