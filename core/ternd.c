// SPDX-License-Identifier: MIT
/*
 * ternd: the daemon's main. Parses arguments, loads the policy into every
 * shard, runs `init` once on shard 0, opens what init asked for, starts the
 * shard threads, then waits for signals. --check validates a policy without
 * binding anything; --script runs a file's `main` inside the real runtime.
 */
#include "tern/daemon.h"
#include "tern/log.h"
#include "tern/logrec.h"
#include "tern/notify.h"
#include "tern/policy.h"
#include "tern/policy_files.h"
#include "tern/metrics.h"
#include "tern/policy_reload.h"
#include "tern/policy_revision.h"
#include "tern/policy_watch.h"
#include "tern/privdrop.h"
#include "tern/shard.h"
#include "tern/tls.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <lauxlib.h>

struct args {
	const char *policy;
	const char *script;
	const char *pidfile;
	int threads;
	bool check;
	const char *user;
	bool allow_root;
	bool watch;
	struct policy_options popts;
	double stop_timeout;
	int script_argc;
	char **script_argv;
};

static void
usage(FILE *out)
{
	fprintf(out,
		"usage: ternd --policy FILE [--threads N] [--check] [--log-level LEVEL]\n"
		"             [--debug MODULE] [--log-file FILE] [--stop-timeout SECS]\n"
		"             [--user NAME | --allow-root] [--pidfile FILE] [--watch]\n"
		"       ternd [--policy FILE] --script FILE [-- ARGS...]\n"
		"       ternd --version\n");
}

static int
parse_log_level(const char *v)
{
	int level = log_level_parse(v);

	if (level < 0) {
		fprintf(stderr, "ternd: unknown log level '%s' (error, warn, info, debug)\n", v);
		exit(2);
	}
	return level;
}

static const char *
need_value(int argc, char **argv, int i)
{
	if (i + 1 >= argc) {
		fprintf(stderr, "ternd: %s needs a value\n", argv[i]);
		exit(2);
	}
	return argv[i + 1];
}

static void
parse_args(int argc, char **argv, struct args *a)
{
	int i;

	a->threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
	a->stop_timeout = 1.5;
	for (i = 1; i < argc; i++) {
		const char *o = argv[i];

		if (strcmp(o, "--version") == 0) {
			printf("ternd %s\n", TERN_VERSION);
			exit(0);
		} else if (strcmp(o, "--help") == 0) {
			usage(stdout);
			exit(0);
		} else if (strcmp(o, "--policy") == 0) {
			a->policy = need_value(argc, argv, i++);
		} else if (strcmp(o, "--script") == 0) {
			a->script = need_value(argc, argv, i++);
		} else if (strcmp(o, "--threads") == 0) {
			a->threads = atoi(need_value(argc, argv, i++));
		} else if (strcmp(o, "--user") == 0) {
			a->user = need_value(argc, argv, i++);
		} else if (strcmp(o, "--allow-root") == 0) {
			a->allow_root = true;
		} else if (strcmp(o, "--check") == 0) {
			a->check = true;
		} else if (strcmp(o, "--pidfile") == 0) {
			a->pidfile = need_value(argc, argv, i++);
		} else if (strcmp(o, "--watch") == 0) {
			a->watch = true;
		} else if (strcmp(o, "--stop-timeout") == 0) {
			a->stop_timeout = atof(need_value(argc, argv, i++));
		} else if (strcmp(o, "--log-level") == 0) {
			log_set_level(parse_log_level(need_value(argc, argv, i++)));
		} else if (strcmp(o, "--debug") == 0) {
			log_enable_debug(need_value(argc, argv, i++));
		} else if (strcmp(o, "--log-file") == 0) {
			if (log_init(LOG_LEVEL_INFO, need_value(argc, argv, i++)) < 0) {
				fprintf(stderr, "ternd: cannot open log file %s: %s\n", argv[i],
					strerror(errno));
				exit(2);
			}
		} else if (strcmp(o, "--") == 0) {
			a->script_argc = argc - i - 1;
			a->script_argv = argv + i + 1;
			break;
		} else {
			fprintf(stderr, "ternd: unknown option '%s'\n", o);
			usage(stderr);
			exit(2);
		}
	}
	if ((!a->policy && !a->script) || a->threads < 1 || a->threads > SHARD_MAX) {
		usage(stderr);
		exit(2);
	}
}

/*
 * Stop the shards within timeout seconds. One whose loop is stuck (a hook
 * that never yields) can be neither waited for nor freed, and the rest of
 * the process shares its spool: end at once, like a crash, which the spool
 * is built to survive.
 */
static void
stop_shards(double timeout)
{
	if (shards_stop(timeout) == 0)
		return;
	log_error("ternd", "exiting with status %d without closing the spool", WATCHDOG_EXIT_STATUS);
	_exit(WATCHDOG_EXIT_STATUS);
}

/* Outcome of a hook run to completion at start-up or by the script runner. */
struct run_result {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool done;
	int status;
	int exit_code;
	struct tern_err err;
};

static void
run_result_done(void *arg, lua_State *co, int status, int nres, const struct tern_err *err)
{
	struct run_result *r = arg;

	pthread_mutex_lock(&r->mu);
	r->status = status;
	if (err)
		r->err = *err;
	if (status == CORO_OK && nres > 0) {
		if (lua_isnumber(co, -nres))
			r->exit_code = (int)lua_tointeger(co, -nres);
		else if (lua_isboolean(co, -nres) && !lua_toboolean(co, -nres))
			r->exit_code = 1;
	}
	r->done = true;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->mu);
}

/* Start the hook `event` on shard s; pushes args (a Lua table of strings) when argv given. */
static bool
start_hook(struct shard *s, const char *event, int argc, char **argv, double timeout,
	   struct run_result *r)
{
	struct coro_options opts = {.what = event, .timeout = timeout};
	struct coro_ref ref;
	lua_State *co = policy_hook_begin(s->policy, event, &ref);
	int i, nargs = 0;

	if (co == NULL)
		return false;
	if (argv) {
		lua_createtable(co, argc, 0);
		for (i = 0; i < argc; i++) {
			lua_pushstring(co, argv[i]);
			lua_rawseti(co, -2, i + 1);
		}
		nargs = 1;
	}
	coro_start(&ref, nargs, &opts, run_result_done, r);
	return true;
}

static void
run_result_init(struct run_result *r)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cond, NULL);
}

static void
stop_signal_set(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
}

/* What the main thread takes: the stop signals and SIGHUP (reload), blocked everywhere else. */
static void
main_signal_set(sigset_t *set)
{
	stop_signal_set(set);
	sigaddset(set, SIGHUP);
}

/*
 * Run init on shard 0 from the main thread, before the shard threads exist.
 * Nothing is open yet and no other thread runs, so a stop signal meanwhile
 * may simply end the process, as it would by default: an init that never
 * returns cannot make SIGTERM hang.
 */
static int
run_init(struct tern_err *err)
{
	struct run_result r;
	sigset_t stop;

	run_result_init(&r);
	stop_signal_set(&stop);
	pthread_sigmask(SIG_UNBLOCK, &stop, NULL);
	if (start_hook(shard_get(0), "init", 0, NULL, 0, &r))
		shard_run_until(shard_get(0), &r.done);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	if (!r.done)
		return 0;
	if (r.status != CORO_OK) {
		*err = r.err;
		return -EINVAL;
	}
	return 0;
}

struct script_start {
	struct args *args;
	struct run_result *result;
};

static void
script_start_task(void *arg)
{
	struct script_start *ss = arg;

	if (!start_hook(shard_self(), "main", ss->args->script_argc, ss->args->script_argv, 0,
			ss->result)) {
		struct tern_err err;

		tern_err_set(&err, 0, "", "%s: no tern.on('main', ...) handler", ss->args->script);
		run_result_done(ss->result, NULL, CORO_ERROR, 0, &err);
	}
}

static int
run_script(struct args *a)
{
	struct run_result r;
	struct script_start ss = {a, &r};
	struct tern_err err;

	run_result_init(&r);
	if (shards_start(&err) < 0) {
		fprintf(stderr, "ternd: %s\n", err.msg);
		stop_shards(0);
		return 1;
	}
	shard_post(shard_get(0), script_start_task, &ss);
	pthread_mutex_lock(&r.mu);
	while (!r.done)
		pthread_cond_wait(&r.cond, &r.mu);
	pthread_mutex_unlock(&r.mu);
	stop_shards(a->stop_timeout);
	if (r.status != CORO_OK) {
		fprintf(stderr, "%s\n", r.err.msg);
		return 1;
	}
	return r.exit_code;
}

/* SIGHUP: a new policy epoch and the listeners' certificates read again; systemd hears of both. */
static void
reload(const struct args *a)
{
	struct tern_err err;

	notify_reloading();
	policy_reload(&a->popts, &err);
	tls_server_reload_all();
	notify_ready();
}

/*
 * Wait for SIGTERM/SIGINT, reloading the policy on each SIGHUP (sent by
 * `tern reload` or by the --watch thread). Every few seconds meanwhile, hand
 * freed heap pages back to the system: after a burst (a big injection, a site
 * coming back) the allocator would otherwise keep its high-water mark for
 * good, while steady-state memory is only the queues' small entries.
 */
static int
wait_for_stop_signal(const struct args *a)
{
	struct timespec every = {5, 0};
	sigset_t set;
	int sig;

	main_signal_set(&set);
	for (;;) {
		sig = sigtimedwait(&set, NULL, &every);
		if (sig == SIGHUP) {
			reload(a);
		} else if (sig >= 0) {
			break;
		} else if (errno != EAGAIN && errno != EINTR) {
			return -1;
		} else {
			malloc_trim(0);
		}
	}
	log_info("ternd", "received %s, stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	notify_stopping();
	return 0;
}

/* --pidfile: written once ready, for `tern reload --pidfile` and init systems. */
static void
write_pidfile(const char *path)
{
	FILE *f = fopen(path, "w");

	if (f == NULL || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0)
		log_warn("ternd", "cannot write pid file %s: %s", path, strerror(errno));
}

/* The revision records name: set once, after init, for it may require more files. */
static char policy_revision[POLICY_REVISION_MAX];

static void
compute_policy_revision(struct args *a)
{
	lua_State *L = policy_lua(shard_get(0)->policy);
	size_t n;
	char **files;

	if (a->policy == NULL) /* --check of a script alone */
		return;
	files = policy_files_list(L, &n);
	policy_revision_compute(a->policy, files, n, policy_revision);
	if (a->watch && !a->check)
		policy_watch_set_files(files, n);
	policy_files_free(files, n);
	logrec_set_policy_revision(policy_revision);
}

/*
 * With --user, the listeners open while we are root (ports below 1024), then
 * root goes, and the spool and logs open as the user, so that every file
 * they create is the user's.
 */
static int
open_services(struct args *a, struct tern_err *err)
{
	if (a->user != NULL &&
	    (daemon_open_rank(DAEMON_RANK_LISTENERS, err) < 0 || privdrop_drop(err) < 0))
		return -1;
	return daemon_open_services(err);
}

static int
run_daemon(struct args *a)
{
	struct tern_err err;

	tern_err_clear(&err);
	if (run_init(&err) < 0) {
		log_error("ternd", "init failed: %s", err.msg);
		return 1;
	}
	compute_policy_revision(a);
	if (open_services(a, &err) < 0 || shards_start(&err) < 0) {
		log_error("ternd", "%s", err.msg);
		/* Shards that did start must stop before their state is freed. */
		stop_shards(0);
		daemon_close_services();
		return 1;
	}
	if (a->watch && policy_watch_start(&err) < 0)
		log_warn("ternd", "--watch: %s; reload with SIGHUP instead", err.msg);
	if (a->pidfile)
		write_pidfile(a->pidfile);
	metrics_start();
	log_info("ternd", "ready: %d shards, policy %s (revision %s)", shard_count(), a->policy,
		 policy_revision);
	notify_ready();
	wait_for_stop_signal(a);
	policy_watch_stop();
	if (a->pidfile)
		unlink(a->pidfile);
	stop_shards(a->stop_timeout);
	daemon_close_services();
	log_info("ternd", "stopped");
	return 0;
}

static int
run_check(struct args *a)
{
	struct tern_err err;

	tern_err_clear(&err);
	if (run_init(&err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	compute_policy_revision(a);
	printf("%s: policy OK (revision %s)\n", a->policy, policy_revision);
	return 0;
}

/*
 * Every session and outbound connection is a descriptor, and the soft limit
 * is often a mere 1024 while the hard one allows far more: take what we may,
 * before policy reads it for listeners' default max_connections.
 */
static void
raise_nofile_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		log_warn("ternd", "raising the descriptor limit to %llu: %s",
			 (unsigned long long)rl.rlim_max, strerror(errno));
}

/* Root is refused or dropped before the policy's top level runs; a bad --user fails at once. */
static void
check_user(struct args *a)
{
	struct tern_err err;
	const char *env = getenv("TERN_ALLOW_ROOT");

	if (a->check || a->script)
		return;
	tern_err_clear(&err);
	if (env != NULL && strcmp(env, "1") == 0)
		a->allow_root = true;
	if (privdrop_check_root(a->user, a->allow_root, &err) < 0 ||
	    (a->user != NULL && privdrop_lookup(a->user, &err) < 0)) {
		fprintf(stderr, "%s\n", err.msg);
		exit(2);
	}
}

int
main(int argc, char **argv)
{
	struct args a = {0};
	struct policy_options *popts = &a.popts;
	struct tern_err err;
	sigset_t set;
	int rc;

	parse_args(argc, argv, &a);
	check_user(&a);
	notify_init();
	raise_nofile_limit();
	signal(SIGPIPE, SIG_IGN);

	popts->policy_path = a.policy;
	popts->script_path = a.script;
	popts->validating = a.check;
	tern_err_clear(&err);
	/*
	 * Loading the policy runs its top level, which may never return: until
	 * then nothing is open and no other thread runs, so SIGTERM keeps its
	 * default action and simply ends the process.
	 */
	if (shards_init(a.check ? 1 : a.threads, &err) < 0 ||
	    policy_attach_shards(popts, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		shards_free();
		return 1;
	}
	/* Threads started from here on inherit the blocked set: only the main thread takes them. */
	main_signal_set(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (a.check)
		rc = run_check(&a);
	else if (a.script)
		rc = run_script(&a);
	else
		rc = run_daemon(&a);
	shards_free();
	metrics_free();
	daemon_free_config();
	return rc;
}
