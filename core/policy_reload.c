// SPDX-License-Identifier: MIT
/*
 * Hot reload: policy epochs. A reload builds a complete new epoch on the
 * calling (main) thread while the shards keep serving the old one: a fresh
 * Lua state per shard with every policy file read again, then `init` in
 * reload mode on the new state of shard 0, where the start-up bindings
 * register into the daemon's pending list so that a changed spool is
 * refused. Only when all of that succeeded does each shard swap, at a loop
 * boundary (a mailbox task): all shards or none.
 *
 * Hooks already running finish on the state they started in. The swapped-out
 * state is retired: its coroutine pool's running count plus its pins (the
 * sessions and messages that hold a handle in it, lua_ctx.h) are the epoch's
 * reference count, and the state is closed once that has dropped to zero.
 * A session that outlives the swap moves its handle to the new state at its
 * next hook.
 * Config answers are memoised per epoch (config.h): config_attach() starts a
 * new one, so queues and paths ask again at their next use.
 * Whoever asked for the reload through the daemon (the admin API) hears its
 * result once it has ended, either way.
 */
#include "tern/policy_reload.h"
#include "tern/config.h"
#include "tern/daemon.h"
#include "tern/log.h"
#include "tern/logrec.h"
#include "tern/lua_ctx.h"
#include "tern/metrics.h"
#include "tern/policy_files.h"
#include "tern/policy_revision.h"
#include "tern/policy_watch.h"
#include "tern/shard.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

/* How often a shard looks whether a retired epoch's last hook has ended. */
#define RETIRED_CHECK_INTERVAL 0.1

struct retired {
	struct retired *next;
	struct policy *policy;
};

/* Per shard, touched only by its thread (and by its free hook once its loop has ended). */
struct retired_list {
	struct retired *head;
	ev_timer check;
};

static struct retired_list retired[SHARD_MAX];

/* Every revision string ever published: records may still be copying an old one. */
struct kept_revision {
	struct kept_revision *next;
	char rev[POLICY_REVISION_MAX];
};

static struct kept_revision *revisions;
static uint64_t epoch_no = 1;

uint64_t
policy_epoch(void)
{
	return __atomic_load_n(&epoch_no, __ATOMIC_ACQUIRE);
}

const char *
policy_publish_revision(const char *rev)
{
	struct kept_revision *k = xcalloc(1, sizeof(*k));

	snprintf(k->rev, sizeof(k->rev), "%s", rev);
	k->next = revisions;
	revisions = k;
	logrec_set_policy_revision(k->rev);
	return k->rev;
}

/* ---- retiring an old epoch on its shard ------------------------------------------------------ */

/* Hooks still running on the state, or sessions and messages holding references into it. */
static bool
policy_epoch_busy(struct policy *p)
{
	return coro_pool_running(policy_coros(p)) > 0 || lua_ctx_pins(policy_lua(p)) > 0;
}

static void
retired_check_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct retired_list *rl = w->data;
	struct retired **pp = &rl->head, *r;

	(void)revents;
	while ((r = *pp) != NULL) {
		if (policy_epoch_busy(r->policy)) {
			pp = &r->next;
			continue;
		}
		*pp = r->next;
		policy_free(r->policy);
		free(r);
	}
	if (rl->head == NULL)
		ev_timer_stop(loop, w);
}

static void
retire(struct shard *s, struct policy *old)
{
	struct retired_list *rl = &retired[s->id];
	struct retired *r = xcalloc(1, sizeof(*r));

	r->policy = old;
	r->next = rl->head;
	rl->head = r;
	if (!ev_is_active(&rl->check)) {
		ev_timer_init(&rl->check, retired_check_cb, 0., RETIRED_CHECK_INTERVAL);
		rl->check.data = rl;
		ev_timer_again(s->loop, &rl->check);
	}
}

void
policy_epoch_free_retired(struct shard *s)
{
	struct retired_list *rl = &retired[s->id];
	struct retired *r;

	ev_timer_stop(s->loop, &rl->check);
	while ((r = rl->head) != NULL) {
		rl->head = r->next;
		policy_free(r->policy);
		free(r);
	}
}

/* ---- the swap, on each shard ----------------------------------------------------------------- */

struct swap_sync {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int left;
};

struct swap {
	struct policy *next;
	struct swap_sync *sync;
};

static void
swap_sync_done(struct swap_sync *sync)
{
	pthread_mutex_lock(&sync->mu);
	if (--sync->left == 0)
		pthread_cond_signal(&sync->cond);
	pthread_mutex_unlock(&sync->mu);
}

static void
swap_task(void *arg)
{
	struct swap *sw = arg;
	struct shard *s = shard_self();
	struct swap_sync *sync = sw->sync;

	retire(s, s->policy);
	s->policy = sw->next;
	config_attach(s, &policy_config_provider, sw->next);
	free(sw);
	swap_sync_done(sync);
}

/* Hand each shard its new state and wait until every one runs it. */
static void
swap_all(struct policy **next)
{
	struct swap_sync sync = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
				 shard_count()};
	int i;

	for (i = 0; i < shard_count(); i++) {
		struct swap *sw = xcalloc(1, sizeof(*sw));

		sw->next = next[i];
		sw->sync = &sync;
		if (shard_post(shard_get(i), swap_task, sw) < 0) {
			/* A shard that no longer takes tasks is stopping: it keeps what it has. */
			policy_free(next[i]);
			free(sw);
			swap_sync_done(&sync);
		}
	}
	pthread_mutex_lock(&sync.mu);
	while (sync.left > 0)
		pthread_cond_wait(&sync.cond, &sync.mu);
	pthread_mutex_unlock(&sync.mu);
}

/* ---- building and validating the new epoch --------------------------------------------------- */

struct init_result {
	int status;
	struct tern_err err;
};

static void
init_done(void *arg, lua_State *co, int status, int nres, const struct tern_err *err)
{
	struct init_result *r = arg;

	(void)co;
	(void)nres;
	r->status = status;
	if (err)
		r->err = *err;
}

/*
 * init in reload mode, on this thread: it may not yield (no loop runs it
 * here), which the start-up bindings it calls never need.
 */
static int
run_init(struct policy *p, struct tern_err *err)
{
	struct coro_options opts = {.what = "init", .no_yield = true};
	struct init_result r = {CORO_OK, {0}};
	struct coro_ref ref;

	if (policy_hook_begin(p, "init", &ref) == NULL)
		return 0;
	coro_start(&ref, 0, &opts, init_done, &r);
	if (r.status != CORO_OK) {
		*err = r.err;
		return -EINVAL;
	}
	return daemon_reload_check(err);
}

static void
free_all(struct policy **next, int n)
{
	int i;

	for (i = 0; i < n; i++)
		policy_free(next[i]);
}

/*
 * One new state per shard, then init, then the listeners init added: 0 with
 * next[] filled and the daemon's reload pending, or -EINVAL with err and none.
 */
static int
build_epoch(const struct policy_options *opts, struct policy **next, struct tern_err *err)
{
	int i, rc = 0;

	for (i = 0; i < shard_count() && rc == 0; i++) {
		shard_enter(shard_get(i));
		next[i] = policy_new(shard_get(i), opts, err);
		if (next[i] == NULL)
			rc = -EINVAL;
	}
	shard_enter(shard_get(0));
	daemon_reload_begin();
	if (rc == 0)
		rc = run_init(next[0], err);
	if (rc == 0)
		rc = daemon_reload_open(err);
	shard_enter(NULL);
	if (rc < 0) {
		daemon_reload_end();
		free_all(next, i);
	}
	return rc;
}

/* The new epoch's revision; its files are what --watch watches from now on. */
static void
compute_revision(const struct policy_options *opts, struct policy *p, char *out)
{
	size_t n;
	char **files = policy_files_list(policy_lua(p), &n);

	policy_revision_compute(opts->policy_path, files, n, out);
	policy_watch_set_files(files, n);
	policy_files_free(files, n);
}

static int
reload_epoch(const struct policy_options *opts, struct tern_err *err)
{
	struct policy *next[SHARD_MAX] = {0};
	char rev[POLICY_REVISION_MAX];
	double t0 = util_now(), t_built, t_rev;
	uint64_t epoch;

	if (build_epoch(opts, next, err) < 0) {
		log_error("ternd", "policy reload failed: %s; epoch %llu keeps running", err->msg,
			  (unsigned long long)policy_epoch());
		metrics_policy_reload_failed();
		return -EINVAL;
	}
	t_built = util_now();
	compute_revision(opts, next[0], rev);
	t_rev = util_now();
	swap_all(next);
	daemon_reload_retire();
	daemon_reload_end();
	policy_publish_revision(rev);
	epoch = __atomic_add_fetch(&epoch_no, 1, __ATOMIC_ACQ_REL);
	metrics_set_policy_epoch(epoch);
	log_debug("ternd", "policy reload: states and init %.1f ms, revision %.1f ms, swap %.1f ms",
		  (t_built - t0) * 1e3, (t_rev - t_built) * 1e3, (util_now() - t_rev) * 1e3);
	log_info("ternd", "policy reload: epoch %llu loaded in %.1f ms (revision %s)",
		 (unsigned long long)epoch, (util_now() - t0) * 1e3, rev);
	return 0;
}

int
policy_reload(const struct policy_options *opts, struct tern_err *err)
{
	struct daemon_reload_request *asked = daemon_reload_take_requests();
	struct daemon_reload_result res = {0};
	const char *rev;

	res.status = reload_epoch(opts, err);
	res.epoch = policy_epoch();
	rev = logrec_policy_revision();
	snprintf(res.revision, sizeof(res.revision), "%s", rev ? rev : "");
	if (res.status < 0)
		res.err = *err;
	daemon_reload_answer(asked, &res);
	return res.status;
}
