// SPDX-License-Identifier: MIT
/*
 * The watchdog thread. A shard stuck in a loop iteration cannot tell anyone:
 * its timers, its mailbox and its Lua deadline all need the loop it holds.
 * So each shard publishes, at no more cost than two atomic increments and a
 * short copy, when its iteration began and which hook it is resuming, and
 * one thread for the whole process looks every 250 ms.
 *
 * Interrupting uses the only door LuaJIT leaves open: lua_sethook, which
 * Lua documents as safe to call from a signal handler (lua.c stops a script
 * on Ctrl-C this way). The watchdog signals the stuck shard's thread; the
 * handler, running on that thread, sets a count and line hook; the hook
 * raises an error in the interpreter, and the hook call ends like any other
 * failed hook (4xx, the shard goes on). Code running in a compiled trace, or
 * in a C function such as a slow pattern match, never reaches the hook: then
 * the process exits, since a shard that never comes back would hold its
 * sessions and queues hostage while looking alive.
 *
 * The same look feeds the service manager's watchdog (WatchdogSec=): the
 * keep-alive goes out only while every shard's loop is turning, so a shard
 * stuck anywhere, even where no interrupt reaches, lets the manager act.
 */
#include "tern/watchdog.h"
#include "tern/log.h"
#include "tern/notify.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

/* Sent to a stuck shard's thread only; its default action (ignore) makes a stray one harmless. */
#define WATCHDOG_SIGNAL SIGURG
#define WATCHDOG_PERIOD_MS 250

static __thread struct watchdog_slot *current;

static struct watchdog_slot **watched;
static int n_watched;
static pthread_t watchdog_thread;
static bool watchdog_running;
static bool watchdog_stopping;
static pthread_mutex_t watchdog_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t watchdog_cond;

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
watchdog_slot_init(struct watchdog_slot *w, int id)
{
	memset(w, 0, sizeof(*w));
	w->id = id;
	atomic_init(&w->attached, false);
	atomic_init(&w->iter, 0);
	atomic_init(&w->iter_ms, 0);
	atomic_init(&w->interrupt_iter, 0);
	atomic_init(&w->seq, 0);
}

void
watchdog_attach(struct watchdog_slot *w)
{
	sigset_t set;

	current = w;
	w->thread = pthread_self();
	sigemptyset(&set);
	sigaddset(&set, WATCHDOG_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	atomic_store(&w->attached, true);
}

/*
 * Under the lock the watchdog holds while it looks: it never signals a
 * thread that detached (and may be joined and gone by then).
 */
void
watchdog_detach(struct watchdog_slot *w)
{
	watchdog_iteration_end(w);
	pthread_mutex_lock(&watchdog_mu);
	atomic_store(&w->attached, false);
	pthread_mutex_unlock(&watchdog_mu);
	if (current == w)
		current = NULL;
}

bool
watchdog_attached(struct watchdog_slot *w)
{
	return atomic_load(&w->attached);
}

void
watchdog_iteration_begin(struct watchdog_slot *w)
{
	atomic_store_explicit(&w->iter_ms, now_ms(), memory_order_relaxed);
	/* Release: a watchdog that sees the odd count also sees the start time. */
	atomic_fetch_add_explicit(&w->iter, 1, memory_order_release);
}

void
watchdog_iteration_end(struct watchdog_slot *w)
{
	if (atomic_load_explicit(&w->iter, memory_order_relaxed) & 1)
		atomic_fetch_add_explicit(&w->iter, 1, memory_order_release);
}

/* Every hook resume copies these two strings: a plain bounded copy, not snprintf. */
static void
copy_str(char *dst, size_t n, const char *src)
{
	size_t len = strnlen(src, n - 1);

	memcpy(dst, src, len);
	dst[len] = '\0';
}

/* Sequence lock: the watchdog discards a copy made while seq was odd or changed. */
static void
publish_hook(struct watchdog_slot *w, const char *what, const char *where, double deadline,
	     bool active)
{
	atomic_fetch_add_explicit(&w->seq, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	if (active) {
		copy_str(w->hook.what, sizeof(w->hook.what), what);
		copy_str(w->hook.where, sizeof(w->hook.where), where);
		w->hook.deadline = deadline > 0 ? deadline : WATCHDOG_DEFAULT_DEADLINE;
		/*
		 * Time counts from the outermost resume: a hook that loops
		 * starting other coroutines (tern.spawn, config hooks) must not
		 * look fresh each time one of them returns.
		 */
		if (!w->hook.active)
			w->hook.since_ms = now_ms();
	}
	w->hook.active = active;
	atomic_fetch_add_explicit(&w->seq, 1, memory_order_release);
}

void
watchdog_hook_enter(struct lua_State *L, const char *what, const char *where, double deadline)
{
	struct watchdog_slot *w = current;

	if (w == NULL)
		return;
	publish_hook(w, what, where, deadline, true);
	w->L = L;
}

void
watchdog_hook_leave(void)
{
	struct watchdog_slot *w = current;

	if (w == NULL)
		return;
	w->L = NULL;
	publish_hook(w, NULL, NULL, 0, false);
}

/* A copy of what w is resuming; false while the shard is writing it (try at the next look). */
static bool
read_hook(struct watchdog_slot *w, struct watchdog_hook *out)
{
	unsigned s = atomic_load_explicit(&w->seq, memory_order_acquire);

	if (s & 1)
		return false;
	memcpy(out, &w->hook, sizeof(*out));
	atomic_thread_fence(memory_order_acquire);
	out->what[sizeof(out->what) - 1] = '\0';
	out->where[sizeof(out->where) - 1] = '\0';
	return atomic_load_explicit(&w->seq, memory_order_relaxed) == s;
}

/*
 * A hook that loops over nested resumes (tern.spawn) republishes without
 * pause: one try a period could miss it for many periods, so try a few
 * times in a row; each try is a short copy.
 */
#define WATCHDOG_READ_TRIES 1000

static bool
read_hook_retrying(struct watchdog_slot *w, struct watchdog_hook *out)
{
	int i;

	for (i = 0; i < WATCHDOG_READ_TRIES; i++)
		if (read_hook(w, out))
			return true;
	return false;
}

void
watchdog_describe(struct watchdog_slot *w, char *out, size_t n)
{
	struct watchdog_hook h;

	if (!read_hook(w, &h))
		snprintf(out, n, "a hook (being switched)");
	else if (h.active)
		snprintf(out, n, "hook %s at %s", h.what, h.where);
	else
		snprintf(out, n, "no hook (the shard's own code)");
}

/*
 * Runs on the interpreter of the stuck shard. It fires for whatever Lua runs
 * next there, so it acts only if that is still the iteration the watchdog
 * asked to interrupt; otherwise it just removes itself.
 */
static void
watchdog_lua_hook(lua_State *L, lua_Debug *ar)
{
	struct watchdog_slot *w = current;
	lua_Debug here;

	lua_sethook(L, NULL, 0, 0);
	if (w == NULL || atomic_load(&w->interrupt_iter) != atomic_load(&w->iter))
		return;
	if (lua_getstack(L, 0, &here) && lua_getinfo(L, "Sl", &here) && here.currentline > 0)
		lua_pushfstring(L, "%s:%d: ", here.short_src, here.currentline);
	else
		lua_pushliteral(L, "");
	lua_pushfstring(L, "hook %s exceeded its deadline of %fs without yielding", w->hook.what,
			w->hook.deadline);
	lua_concat(L, 2);
	lua_error(L);
}

static void
watchdog_signal_cb(int sig)
{
	struct watchdog_slot *w = current;
	int saved = errno;

	if (w != NULL && w->L != NULL)
		lua_sethook(w->L, watchdog_lua_hook, LUA_MASKCOUNT | LUA_MASKLINE, 1);
	errno = saved;
}

static void
watchdog_interrupt(struct watchdog_slot *w, uint64_t iter, const struct watchdog_hook *h,
		   double elapsed, int64_t now)
{
	log_warn("watchdog",
		 "shard %d has run hook %s at %s for %.1fs without yielding (deadline %gs); "
		 "interrupting it",
		 w->id, h->what, h->where, elapsed, h->deadline);
	atomic_store(&w->interrupt_iter, iter);
	w->interrupted_ms = now;
	pthread_kill(w->thread, WATCHDOG_SIGNAL);
}

/* The shard's own C code has run long: not ours to stop, but never silent. */
static void
watchdog_check_busy(struct watchdog_slot *w, double elapsed)
{
	if (elapsed <= WATCHDOG_DEFAULT_DEADLINE || w->warned)
		return;
	log_warn("watchdog", "shard %d has been busy for %.1fs outside any hook", w->id, elapsed);
	w->warned = true;
}

/* Timed from the outermost resume (see publish_hook), not from the iteration's start. */
static void
watchdog_check_hook(struct watchdog_slot *w, uint64_t iter, const struct watchdog_hook *h,
		    int64_t now)
{
	double elapsed = (double)(now - h->since_ms) / 1000.0;

	if (elapsed < h->deadline + WATCHDOG_GRACE)
		return;
	if (w->interrupted_ms == 0) {
		watchdog_interrupt(w, iter, h, elapsed, now);
		return;
	}
	if (now - w->interrupted_ms < (int64_t)(WATCHDOG_EXIT_GRACE * 1000))
		return;
	log_error("watchdog",
		  "shard %d wedged for %.1fs in hook %s at %s; exiting with status %d "
		  "so the supervisor restarts",
		  w->id, elapsed, h->what, h->where, WATCHDOG_EXIT_STATUS);
	_exit(WATCHDOG_EXIT_STATUS);
}

static void
watchdog_check(struct watchdog_slot *w, int64_t now)
{
	uint64_t iter = atomic_load_explicit(&w->iter, memory_order_acquire);
	int64_t began = atomic_load_explicit(&w->iter_ms, memory_order_relaxed);
	struct watchdog_hook h;

	/* Idle, or a new iteration began while we read: nothing is stuck. */
	if (!atomic_load(&w->attached) || (iter & 1) == 0 || atomic_load(&w->iter) != iter)
		return;
	if (iter != w->seen_iter) {
		w->seen_iter = iter;
		w->interrupted_ms = 0;
		w->warned = false;
	}
	if (!read_hook_retrying(w, &h))
		return;
	if (h.active)
		watchdog_check_hook(w, iter, &h, now);
	else
		watchdog_check_busy(w, (double)(now - began) / 1000.0);
}

/*
 * A loop is turning when it is idle or its iteration began less than a
 * keep-alive period ago: one iteration longer than that already delays the
 * keep-alive as a stuck loop would.
 */
static bool
watchdog_turning(struct watchdog_slot *w, int64_t now, int64_t period_ms)
{
	uint64_t iter = atomic_load_explicit(&w->iter, memory_order_acquire);
	int64_t began = atomic_load_explicit(&w->iter_ms, memory_order_relaxed);

	return !atomic_load(&w->attached) || (iter & 1) == 0 || now - began < period_ms ||
	       atomic_load(&w->iter) != iter;
}

/* WATCHDOG=1 every keep-alive period, unless some shard's loop stands still. */
static void
watchdog_keepalive(int64_t now, int64_t *next_ms)
{
	int64_t period_ms = (int64_t)(notify_watchdog_period_usec() / 1000);
	int i;

	if (period_ms <= 0 || now < *next_ms)
		return;
	for (i = 0; i < n_watched; i++)
		if (!watchdog_turning(watched[i], now, period_ms))
			return;
	notify_watchdog();
	*next_ms = now + period_ms;
}

static void *
watchdog_main(void *arg)
{
	struct timespec until;
	int64_t next_keepalive = 0;
	sigset_t all;
	int i;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_mutex_lock(&watchdog_mu);
	while (!watchdog_stopping) {
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += WATCHDOG_PERIOD_MS * 1000000L;
		until.tv_sec += until.tv_nsec / 1000000000L;
		until.tv_nsec %= 1000000000L;
		if (pthread_cond_timedwait(&watchdog_cond, &watchdog_mu, &until) != ETIMEDOUT)
			continue;
		for (i = 0; i < n_watched; i++)
			watchdog_check(watched[i], now_ms());
		watchdog_keepalive(now_ms(), &next_keepalive);
	}
	pthread_mutex_unlock(&watchdog_mu);
	return NULL;
}

static void
watchdog_install_signal(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = watchdog_signal_cb;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(WATCHDOG_SIGNAL, &sa, NULL);
}

static void
watchdog_init_cond(void)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&watchdog_cond, &attr);
	pthread_condattr_destroy(&attr);
}

int
watchdog_start(struct watchdog_slot *const *slots, int n, struct tern_err *err)
{
	int rc;

	watched = xcalloc((size_t)n, sizeof(*watched));
	memcpy(watched, slots, (size_t)n * sizeof(*watched));
	n_watched = n;
	watchdog_stopping = false;
	watchdog_install_signal();
	watchdog_init_cond();
	rc = pthread_create(&watchdog_thread, NULL, watchdog_main, NULL);
	if (rc != 0) {
		tern_err_set(err, 0, "", "cannot start the watchdog: %s", strerror(rc));
		free(watched); watched = NULL;
		return -rc;
	}
	watchdog_running = true;
	return 0;
}

void
watchdog_stop(void)
{
	if (!watchdog_running)
		return;
	pthread_mutex_lock(&watchdog_mu);
	watchdog_stopping = true;
	pthread_cond_signal(&watchdog_cond);
	pthread_mutex_unlock(&watchdog_mu);
	pthread_join(watchdog_thread, NULL);
	pthread_cond_destroy(&watchdog_cond);
	watchdog_running = false;
	free(watched); watched = NULL;
	n_watched = 0;
}
