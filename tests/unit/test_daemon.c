// SPDX-License-Identifier: MIT
/*
 * Start-up services: registration, duplicate names, open in rank order,
 * close in reverse, a failing open stops the rest and reports its error,
 * lookup by name, free; on reload, services added, retired and updated (local
 * logs: new settings or a refused reload), and reloads asked for from other
 * threads answered by the reload that follows.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tern/daemon.h"

/* What the services did, in order: "+name" for open, "-name" for close, "~name" for free. */
static char trace[512];

/*
 * A service's cfg. The list outlives each test function until teardown frees
 * it, so every cfg a test registers is static.
 */
struct svc_cfg {
	const char *name;
	bool fail;
};

static void
note(char op, const char *name)
{
	size_t n = strlen(trace);

	snprintf(trace + n, sizeof(trace) - n, "%c%s ", op, name);
}

static int
svc_open(void *arg, struct tern_err *err)
{
	struct svc_cfg *c = arg;

	note('+', c->name);
	if (c->fail) {
		tern_err_set(err, 0, "", "cannot bind %s: Address in use", c->name);
		return -EADDRINUSE;
	}
	return 0;
}

static void
svc_close(void *arg)
{
	note('-', ((struct svc_cfg *)arg)->name);
}

static void
svc_free(void *arg)
{
	note('~', ((struct svc_cfg *)arg)->name);
}

static void
add(struct svc_cfg *c, enum daemon_rank rank)
{
	struct daemon_service svc = {.name = c->name,
				     .rank = rank,
				     .open = svc_open,
				     .close = svc_close,
				     .free = svc_free,
				     .cfg = c};
	struct tern_err err;

	assert_int_equal(daemon_add_service(&svc, &err), 0);
}

static int
reset(void **state)
{
	trace[0] = '\0';
	return 0;
}

static int
teardown(void **state)
{
	daemon_free_config();
	return 0;
}

static void
test_add_and_find(void **state)
{
	static struct svc_cfg spool = {.name = "spool"},
			      lis = {.name = "esmtp listener 127.0.0.1:25"};
	static char name[8];
	static struct svc_cfg other;

	snprintf(name, sizeof(name), "spool2");
	other.name = name;
	assert_null(daemon_find_service("spool"));
	add(&spool, DAEMON_RANK_STORAGE);
	add(&lis, DAEMON_RANK_LISTENERS);
	add(&other, DAEMON_RANK_STORAGE);
	name[0] = 'X'; /* the list keeps its own copy of the name */
	assert_ptr_equal(daemon_find_service("spool"), &spool);
	assert_ptr_equal(daemon_find_service("esmtp listener 127.0.0.1:25"), &lis);
	assert_ptr_equal(daemon_find_service("spool2"), &other);
	assert_null(daemon_find_service("Xpool2"));
	assert_null(daemon_find_service("spoo"));
}

static void
test_duplicate_refused(void **state)
{
	static struct svc_cfg a = {.name = "spool"}, b = {.name = "spool"};
	struct daemon_service svc = {
	    .name = "spool", .rank = DAEMON_RANK_LOGS, .open = svc_open, .cfg = &b};
	struct tern_err err;

	add(&a, DAEMON_RANK_STORAGE);
	tern_err_clear(&err);
	assert_int_equal(daemon_add_service(&svc, &err), -EEXIST);
	assert_string_equal(err.msg, "spool is already defined");
	assert_ptr_equal(daemon_find_service("spool"), &a);
	/* The refused service was not taken: only a is opened and freed. */
	assert_int_equal(daemon_open_services(&err), 0);
	daemon_free_config();
	assert_string_equal(trace, "+spool ~spool ");
}

/*
 * Regression (fixed): daemon_add_service() detects duplicates through daemon_find_service(),
 * which returns the cfg pointer, so a service registered with cfg NULL is
 * invisible: adding "x" (cfg NULL) twice returns 0 the second time, expected
 * -EEXIST.
 */
static void
test_duplicate_refused_without_cfg(void **state)
{
	struct daemon_service svc = {.name = "x", .rank = DAEMON_RANK_LOGS, .open = svc_open};
	struct tern_err err;

	assert_int_equal(daemon_add_service(&svc, &err), 0);
	assert_int_equal(daemon_add_service(&svc, &err), -EEXIST);
}

static void
test_open_by_rank_close_in_reverse(void **state)
{
	static struct svc_cfg l1 = {.name = "l1"}, log = {.name = "log"}, spool = {.name = "spool"},
			      l2 = {.name = "l2"}, dkim = {.name = "dkim"};
	struct tern_err err;

	/* Registered in init's order, which need not be the rank order. */
	add(&l1, DAEMON_RANK_LISTENERS);
	add(&log, DAEMON_RANK_LOGS);
	add(&spool, DAEMON_RANK_STORAGE);
	add(&l2, DAEMON_RANK_LISTENERS);
	add(&dkim, DAEMON_RANK_STORAGE);
	assert_int_equal(daemon_open_services(&err), 0);
	assert_string_equal(trace, "+spool +dkim +log +l1 +l2 ");
	trace[0] = '\0';
	daemon_close_services();
	assert_string_equal(trace, "-l2 -l1 -log -dkim -spool ");
	trace[0] = '\0';
	daemon_close_services(); /* closing twice closes nothing twice */
	assert_string_equal(trace, "");
	daemon_free_config();
	assert_string_equal(trace, "~l1 ~log ~spool ~l2 ~dkim ");
	assert_null(daemon_find_service("spool"));
}

static void
test_failing_open_stops(void **state)
{
	static struct svc_cfg spool = {.name = "spool"}, log = {.name = "log"},
			      bad = {.name = "bad listener", .fail = true}, l2 = {.name = "l2"};
	struct tern_err err;

	add(&bad, DAEMON_RANK_LISTENERS);
	add(&l2, DAEMON_RANK_LISTENERS);
	add(&log, DAEMON_RANK_LOGS);
	add(&spool, DAEMON_RANK_STORAGE);
	tern_err_clear(&err);
	assert_true(daemon_open_services(&err) < 0);
	assert_string_equal(err.msg, "cannot bind bad listener: Address in use");
	assert_string_equal(trace, "+spool +log +bad listener ");
	/* Only what was opened gets closed. */
	trace[0] = '\0';
	daemon_close_services();
	assert_string_equal(trace, "-log -spool ");
}

static void
test_optional_callbacks(void **state)
{
	static struct svc_cfg c = {.name = "bare"};
	struct daemon_service svc = {
	    .name = "bare", .rank = DAEMON_RANK_LOGS, .open = svc_open, .cfg = &c};
	struct tern_err err;

	assert_int_equal(daemon_add_service(&svc, &err), 0);
	assert_int_equal(daemon_open_services(&err), 0);
	daemon_close_services();
	daemon_free_config();
	assert_string_equal(trace, "+bare ");
}

static void
test_capacity(void **state)
{
	static struct svc_cfg cfgs[100];
	static char names[100][16];
	struct daemon_service svc = {.rank = DAEMON_RANK_LOGS, .open = svc_open};
	struct tern_err err;
	int i, rc = 0;

	for (i = 0; i < 100 && rc == 0; i++) {
		snprintf(names[i], sizeof(names[i]), "s%d", i);
		cfgs[i].name = names[i];
		svc.name = names[i];
		svc.cfg = &cfgs[i];
		rc = daemon_add_service(&svc, &err);
	}
	/* A bounded list: the first one over the limit is refused with a reason. */
	assert_int_equal(rc, -ENOSPC);
	assert_true(i > 16);
	assert_null(daemon_find_service(names[i - 1]));
	assert_ptr_equal(daemon_find_service(names[i - 2]), &cfgs[i - 2]);
	assert_non_null(strstr(err.msg, "too many services"));
}

/* ---- reload: init registers into a pending list, compared with what runs ---- */

static bool
same_name(const void *a, const void *b)
{
	return strcmp(((const struct svc_cfg *)a)->name, ((const struct svc_cfg *)b)->name) == 0;
}

static void
svc_retire(void *arg)
{
	note('x', ((struct svc_cfg *)arg)->name);
}

static int
add_full(struct svc_cfg *c, const char *name, enum daemon_rank rank, bool retire,
	 struct tern_err *err)
{
	struct daemon_service svc = {.name = name,
				     .rank = rank,
				     .open = svc_open,
				     .close = svc_close,
				     .free = svc_free,
				     .same = same_name,
				     .retire = retire ? svc_retire : NULL,
				     .cfg = c};

	return daemon_add_service(&svc, err);
}

static void
test_reload_spool_must_not_change(void **state)
{
	static struct svc_cfg live = {.name = "/var/spool"}, same = {.name = "/var/spool"},
			      moved = {.name = "/srv/spool"};
	struct tern_err err;

	assert_int_equal(add_full(&live, "spool", DAEMON_RANK_STORAGE, false, &err), 0);
	assert_int_equal(daemon_open_services(&err), 0);
	daemon_reload_begin();
	assert_int_equal(add_full(&same, "spool", DAEMON_RANK_STORAGE, false, &err), 0);
	assert_int_equal(daemon_reload_check(&err), 0);
	daemon_reload_end();
	daemon_reload_begin();
	assert_int_equal(add_full(&moved, "spool", DAEMON_RANK_STORAGE, false, &err), -EINVAL);
	assert_string_equal(err.msg, "the spool cannot change on reload (restart ternd to change it)");
	daemon_reload_end();
	/* A reload whose init no longer defines it is refused too. */
	daemon_reload_begin();
	assert_int_equal(daemon_reload_check(&err), -EINVAL);
	assert_non_null(strstr(err.msg, "no longer defines the spool"));
	daemon_reload_end();
	/* The pending copies were freed, the running one was never touched. */
	assert_string_equal(trace, "+/var/spool ~/var/spool ");
	assert_ptr_equal(daemon_find_service("spool"), &live);
}

static void
test_reload_adds_and_retires_listeners(void **state)
{
	static struct svc_cfg a = {.name = "a"}, a2 = {.name = "a"}, b = {.name = "b"};
	struct tern_err err;

	assert_int_equal(add_full(&a, "listener a", DAEMON_RANK_LISTENERS, true, &err), 0);
	assert_int_equal(daemon_open_services(&err), 0);
	trace[0] = '\0';
	daemon_reload_begin();
	assert_int_equal(add_full(&b, "listener b", DAEMON_RANK_LISTENERS, true, &err), 0);
	assert_int_equal(daemon_reload_check(&err), 0);
	assert_int_equal(daemon_reload_open(&err), 0);
	daemon_reload_retire();
	daemon_reload_end();
	/* b opened, a stopped accepting; a's cfg lives on until exit. */
	assert_string_equal(trace, "+b xa ");
	assert_ptr_equal(daemon_find_service("listener b"), &b);
	/* a comes back: a new one opens under the old name. */
	trace[0] = '\0';
	daemon_reload_begin();
	assert_int_equal(add_full(&a2, "listener a", DAEMON_RANK_LISTENERS, true, &err), 0);
	assert_int_equal(add_full(&b, "listener b", DAEMON_RANK_LISTENERS, true, &err), 0);
	assert_int_equal(daemon_reload_open(&err), 0);
	daemon_reload_retire();
	daemon_reload_end();
	assert_string_equal(trace, "+a ~b ");
}

static void
test_reload_listener_that_cannot_open_refuses(void **state)
{
	static struct svc_cfg a = {.name = "a"}, b = {.name = "b"}, c = {.name = "c", .fail = true};
	struct tern_err err;

	assert_int_equal(add_full(&a, "listener a", DAEMON_RANK_LISTENERS, true, &err), 0);
	assert_int_equal(daemon_open_services(&err), 0);
	trace[0] = '\0';
	daemon_reload_begin();
	assert_int_equal(add_full(&b, "listener b", DAEMON_RANK_LISTENERS, true, &err), 0);
	assert_int_equal(add_full(&c, "listener c", DAEMON_RANK_LISTENERS, true, &err), 0);
	assert_int_equal(daemon_reload_open(&err), -EINVAL);
	assert_string_equal(err.msg, "cannot bind c: Address in use");
	daemon_reload_end();
	/* All or none: b, opened first, is closed again; a keeps running. */
	assert_string_equal(trace, "+b +c -b -c ~b ~c ");
	assert_ptr_equal(daemon_find_service("listener a"), &a);
	assert_null(daemon_find_service("listener b"));
}

static int
svc_prepare_update(void *arg, const void *next, struct tern_err *err)
{
	const struct svc_cfg *n = next;

	note('p', n->name);
	if (n->fail) {
		tern_err_set(err, 0, "", "cannot load %s's certificate", n->name);
		return -EINVAL;
	}
	return 0;
}

static void
svc_update(void *arg, void *next)
{
	note('u', ((struct svc_cfg *)next)->name);
}

static int
add_updatable(struct svc_cfg *c, const char *name, struct tern_err *err)
{
	struct daemon_service svc = {.name = name,
				     .rank = DAEMON_RANK_LISTENERS,
				     .open = svc_open,
				     .close = svc_close,
				     .free = svc_free,
				     .retire = svc_retire,
				     .prepare_update = svc_prepare_update,
				     .update = svc_update,
				     .cfg = c};

	return daemon_add_service(&svc, err);
}

static void
test_reload_updates_a_kept_listener(void **state)
{
	static struct svc_cfg a = {.name = "a"}, a2 = {.name = "a2"}, b = {.name = "b"};
	struct tern_err err;

	assert_int_equal(add_updatable(&a, "listener a", &err), 0);
	assert_int_equal(daemon_open_services(&err), 0);
	trace[0] = '\0';
	daemon_reload_begin();
	assert_int_equal(add_updatable(&a2, "listener a", &err), 0);
	assert_int_equal(add_updatable(&b, "listener b", &err), 0);
	assert_int_equal(daemon_reload_check(&err), 0);
	assert_int_equal(daemon_reload_open(&err), 0);
	daemon_reload_retire();
	daemon_reload_end();
	/* a is neither opened again nor retired: it takes a2's options, and a2 goes. */
	assert_string_equal(trace, "+b pa2 ua2 ~a2 ");
	assert_ptr_equal(daemon_find_service("listener a"), &a);
	assert_ptr_equal(daemon_find_service("listener b"), &b);
}

static void
test_reload_update_that_cannot_load_refuses(void **state)
{
	static struct svc_cfg a = {.name = "a"}, a2 = {.name = "a2", .fail = true},
			      b = {.name = "b"};
	struct tern_err err;

	assert_int_equal(add_updatable(&a, "listener a", &err), 0);
	assert_int_equal(daemon_open_services(&err), 0);
	trace[0] = '\0';
	daemon_reload_begin();
	assert_int_equal(add_updatable(&a2, "listener a", &err), 0);
	assert_int_equal(add_updatable(&b, "listener b", &err), 0);
	assert_int_equal(daemon_reload_open(&err), -EINVAL);
	assert_string_equal(err.msg, "cannot load a2's certificate");
	daemon_reload_end();
	/* All or none: b, opened first, is closed again; a keeps its options. */
	assert_string_equal(trace, "+b pa2 -b ~a2 ~b ");
	assert_ptr_equal(daemon_find_service("listener a"), &a);
	assert_null(daemon_find_service("listener b"));
}

/*
 * Regression: a pending slot kept its "added" flag after the reload that added
 * a listener there, so the next reload moved whatever init registered in that
 * slot into the running list as if it were new: a second entry, closed at exit
 * although never opened.
 */
static void
test_reload_after_an_add_adds_nothing(void **state)
{
	static struct svc_cfg a = {.name = "a"}, a1 = {.name = "a1"}, b1 = {.name = "b1"},
			      a2 = {.name = "a2"}, b2 = {.name = "b2"};
	struct tern_err err;

	assert_int_equal(add_full(&a, "listener a", DAEMON_RANK_LISTENERS, true, &err), 0);
	assert_int_equal(daemon_open_services(&err), 0);
	daemon_reload_begin();
	assert_int_equal(add_full(&a1, "listener a", DAEMON_RANK_LISTENERS, true, &err), 0);
	assert_int_equal(add_full(&b1, "listener b", DAEMON_RANK_LISTENERS, true, &err), 0);
	assert_int_equal(daemon_reload_open(&err), 0);
	daemon_reload_retire();
	daemon_reload_end();
	trace[0] = '\0';
	daemon_reload_begin();
	assert_int_equal(add_full(&a2, "listener a", DAEMON_RANK_LISTENERS, true, &err), 0);
	assert_int_equal(add_full(&b2, "listener b", DAEMON_RANK_LISTENERS, true, &err), 0);
	assert_int_equal(daemon_reload_open(&err), 0);
	daemon_reload_retire();
	daemon_reload_end();
	daemon_close_services();
	assert_string_equal(trace, "~a2 ~b2 -b1 -a ");
}

/* ---- reloads asked for from other threads ---- */

struct asked {
	int calls;
	struct daemon_reload_result res;
};

static void
asked_done(void *arg, const struct daemon_reload_result *res)
{
	struct asked *a = arg;

	a->calls++;
	a->res = *res;
}

/* The request's SIGHUP, taken here as the main thread's sigtimedwait takes it. */
static void
expect_sighup(void)
{
	struct timespec now = {0, 0};
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	assert_int_equal(sigtimedwait(&set, NULL, &now), SIGHUP);
}

static void
test_reload_requests_answered_by_the_next_reload(void **state)
{
	struct asked one = {0}, two = {0}, late = {0};
	struct daemon_reload_result res = {.status = 0, .epoch = 7, .revision = "sha256:abc"};
	struct daemon_reload_request *taken;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	assert_int_equal(daemon_request_reload(asked_done, &one), 0);
	assert_int_equal(daemon_request_reload(asked_done, &two), 0);
	expect_sighup(); /* one pending signal for both */
	taken = daemon_reload_take_requests();
	/* Asked while that reload runs: left for the next one. */
	assert_int_equal(daemon_request_reload(asked_done, &late), 0);
	expect_sighup();
	daemon_reload_answer(taken, &res);
	assert_int_equal(one.calls, 1);
	assert_int_equal(two.calls, 1);
	assert_int_equal(two.res.epoch, 7);
	assert_string_equal(two.res.revision, "sha256:abc");
	assert_int_equal(late.calls, 0);
	/* Stopping answers what is still waiting. */
	daemon_close_services();
	assert_int_equal(late.calls, 1);
	assert_int_equal(late.res.status, -ECANCELED);
	assert_string_equal(late.res.err.msg, "ternd is stopping");
}

/* Like local logs: settings applied before the swap (prepare_update), nothing after. */
static void
add_logs_like(struct svc_cfg *c)
{
	struct daemon_service svc = {.name = "logs",
				     .rank = DAEMON_RANK_LOGS,
				     .open = svc_open,
				     .close = svc_close,
				     .free = svc_free,
				     .prepare_update = svc_prepare_update,
				     .cfg = c};
	struct tern_err err;

	assert_int_equal(daemon_add_service(&svc, &err), 0);
}

/* Local logs take a reload's settings; a failing one refuses the reload. */
static void
test_reload_updates_running_services(void **state)
{
	static struct svc_cfg v1 = {.name = "v1"}, v2 = {.name = "v2"},
			      bad = {.name = "bad", .fail = true};
	struct tern_err err;

	add_logs_like(&v1);
	assert_int_equal(daemon_open_services(&err), 0);
	daemon_reload_begin();
	add_logs_like(&v2);
	assert_int_equal(daemon_reload_open(&err), 0);
	daemon_reload_retire();
	daemon_reload_end();
	/* v2's settings were applied; its cfg goes with the reload, v1 stays registered. */
	assert_string_equal(trace, "+v1 pv2 ~v2 ");
	assert_ptr_equal(daemon_find_service("logs"), &v1);
	daemon_reload_begin();
	add_logs_like(&bad);
	assert_int_equal(daemon_reload_open(&err), -EINVAL);
	assert_string_equal(err.msg, "cannot load bad's certificate");
	daemon_reload_end();
	assert_ptr_equal(daemon_find_service("logs"), &v1);
}

/* A reload that defines local logs for the first time opens them. */
static void
test_reload_opens_an_added_updatable_service(void **state)
{
	static struct svc_cfg v1 = {.name = "v1"};
	struct tern_err err;

	assert_int_equal(daemon_open_services(&err), 0);
	daemon_reload_begin();
	add_logs_like(&v1);
	assert_int_equal(daemon_reload_open(&err), 0);
	daemon_reload_retire();
	daemon_reload_end();
	assert_string_equal(trace, "+v1 ");
	assert_ptr_equal(daemon_find_service("logs"), &v1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_add_and_find, reset, teardown),
	    cmocka_unit_test_setup_teardown(test_duplicate_refused, reset, teardown),
	    cmocka_unit_test_setup_teardown(test_duplicate_refused_without_cfg, reset, teardown),
	    cmocka_unit_test_setup_teardown(test_open_by_rank_close_in_reverse, reset, teardown),
	    cmocka_unit_test_setup_teardown(test_failing_open_stops, reset, teardown),
	    cmocka_unit_test_setup_teardown(test_optional_callbacks, reset, teardown),
	    cmocka_unit_test_setup_teardown(test_capacity, reset, teardown),
	    cmocka_unit_test_setup_teardown(test_reload_spool_must_not_change, reset, teardown),
	    cmocka_unit_test_setup_teardown(test_reload_adds_and_retires_listeners, reset, teardown),
	    cmocka_unit_test_setup_teardown(test_reload_updates_a_kept_listener, reset, teardown),
	    cmocka_unit_test_setup_teardown(test_reload_after_an_add_adds_nothing, reset, teardown),
	    cmocka_unit_test_setup_teardown(test_reload_update_that_cannot_load_refuses, reset,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_reload_requests_answered_by_the_next_reload, reset,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_reload_listener_that_cannot_open_refuses, reset,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_reload_updates_running_services, reset, teardown),
	    cmocka_unit_test_setup_teardown(test_reload_opens_an_added_updatable_service, reset,
					    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
