// SPDX-License-Identifier: MIT
/* Shards: each has its own thread and Lua state; posted work runs on the target's thread. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tern/policy.h"
#include "tern/shard.h"

struct probe {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool done;
	int shard_id;
	pthread_t thread;
	lua_State *L;
};

static void
probe_task(void *arg)
{
	struct probe *p = arg;

	pthread_mutex_lock(&p->mu);
	p->shard_id = shard_self()->id;
	p->thread = pthread_self();
	p->L = policy_lua(shard_self()->policy);
	p->done = true;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->mu);
}

static void
test_post_runs_on_target_thread(void **state)
{
	char path[] = "/tmp/tern-test-shard-XXXXXX";
	struct policy_options opts = {0};
	struct tern_err err;
	struct probe p = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_true(write(fd, "tern.on('init', function() end)\n", 32) == 32);
	close(fd);
	opts.policy_path = path;
	assert_int_equal(shards_init(2, &err), 0);
	assert_int_equal(policy_attach_shards(&opts, &err), 0);
	assert_int_equal(shards_start(&err), 0);
	assert_int_equal(shard_post(shard_get(1), probe_task, &p), 0);
	pthread_mutex_lock(&p.mu);
	while (!p.done)
		pthread_cond_wait(&p.cond, &p.mu);
	pthread_mutex_unlock(&p.mu);
	assert_int_equal(p.shard_id, 1);
	assert_true(pthread_equal(p.thread, shard_get(1)->thread));
	assert_false(pthread_equal(p.thread, pthread_self()));
	assert_ptr_equal(p.L, policy_lua(shard_get(1)->policy));
	assert_ptr_not_equal(p.L, policy_lua(shard_get(0)->policy));
	shards_stop(1.0);
	shards_free();
	unlink(path);
}

static void
test_bad_policy_names_file_and_line(void **state)
{
	char path[] = "/tmp/tern-test-shard-XXXXXX";
	struct policy_options opts = {0};
	struct tern_err err;
	int fd = mkstemp(path);
	const char *src = "local x = 1\ntern.on('bogus', function() end)\n";

	assert_true(write(fd, src, strlen(src)) == (ssize_t)strlen(src));
	close(fd);
	opts.policy_path = path;
	assert_int_equal(shards_init(1, &err), 0);
	assert_true(policy_attach_shards(&opts, &err) < 0);
	assert_non_null(strstr(err.msg, path));
	assert_non_null(strstr(err.msg, ":2: unknown event 'bogus'"));
	shards_free();
	unlink(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_post_runs_on_target_thread),
		cmocka_unit_test(test_bad_policy_names_file_and_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
