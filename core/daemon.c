// SPDX-License-Identifier: MIT
/*
 * Start-up services. Kept apart from ternd.c so that each binding can
 * register what it needs without ternd knowing every module.
 */
#include "tern/daemon.h"
#include "tern/log.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DAEMON_MAX_SERVICES 64

struct entry {
	struct daemon_service svc;
	char *name;
	bool opened;
	bool added;   /* pending: opened by this reload */
	bool retired; /* live: removed by a reload, what it started finishes */
};

struct service_list {
	struct entry e[DAEMON_MAX_SERVICES];
	int n;
};

static struct service_list live, pending;
/* Where daemon_add_service registers: live, or pending during a reload's init. */
static struct service_list *target = &live;

static struct entry *
list_find(struct service_list *l, const char *name)
{
	int i;

	for (i = 0; i < l->n; i++)
		if (strcmp(l->e[i].name, name) == 0)
			return &l->e[i];
	return NULL;
}

static struct entry *
find_entry(const char *name)
{
	return list_find(&live, name);
}

static bool
is_fixed(const struct daemon_service *svc)
{
	return svc->rank == DAEMON_RANK_STORAGE ||
	       (svc->rank == DAEMON_RANK_LISTENERS && svc->retire == NULL);
}

/* On reload, a fixed service must be the one running: say so where init defines it. */
static int
check_unchanged(const struct daemon_service *svc, struct tern_err *err)
{
	struct entry *cur = find_entry(svc->name);

	if (target != &pending || !is_fixed(svc))
		return 0;
	if (cur && (cur->svc.same == NULL || cur->svc.same(cur->svc.cfg, svc->cfg)))
		return 0;
	tern_err_set(err, 0, "", "the %s cannot change on reload (restart ternd to change it)",
		     svc->name);
	return -EINVAL;
}

int
daemon_add_service(const struct daemon_service *svc, struct tern_err *err)
{
	struct entry *e;

	if (list_find(target, svc->name) != NULL) {
		tern_err_set(err, 0, "", "%s is already defined", svc->name);
		return -EEXIST;
	}
	if (target->n == DAEMON_MAX_SERVICES) {
		tern_err_set(err, 0, "", "too many services (at most %d)", DAEMON_MAX_SERVICES);
		return -ENOSPC;
	}
	if (check_unchanged(svc, err) < 0)
		return -EINVAL;
	/* A slot freed by list_free() may be reused: none of its flags carries over. */
	e = &target->e[target->n++];
	memset(e, 0, sizeof(*e));
	e->svc = *svc;
	e->name = xstrdup(svc->name);
	e->svc.name = e->name;
	return 0;
}

void *
daemon_find_service(const char *name)
{
	struct entry *e = find_entry(name);

	return e ? e->svc.cfg : NULL;
}

int
daemon_open_rank(enum daemon_rank rank, struct tern_err *err)
{
	int i;

	for (i = 0; i < live.n; i++) {
		struct entry *e = &live.e[i];

		if (e->svc.rank != rank || e->opened)
			continue;
		if (e->svc.open(e->svc.cfg, err) < 0)
			return -EINVAL;
		e->opened = true;
		log_info("ternd", "opened %s", e->name);
	}
	return 0;
}

int
daemon_open_services(struct tern_err *err)
{
	int rank;

	for (rank = DAEMON_RANK_STORAGE; rank <= DAEMON_RANK_LISTENERS; rank++)
		if (daemon_open_rank((enum daemon_rank)rank, err) < 0)
			return -EINVAL;
	return 0;
}

void
daemon_close_services(void)
{
	struct daemon_reload_result stopping = {.status = -ECANCELED};
	int rank, i;

	/* No reload comes any more; the shards still exist to hear so (daemon.h). */
	tern_err_set(&stopping.err, 0, "", "ternd is stopping");
	daemon_reload_answer(daemon_reload_take_requests(), &stopping);

	for (rank = DAEMON_RANK_LISTENERS; rank >= DAEMON_RANK_STORAGE; rank--) {
		for (i = live.n - 1; i >= 0; i--) {
			struct entry *e = &live.e[i];

			if ((int)e->svc.rank == rank && e->opened && e->svc.close)
				e->svc.close(e->svc.cfg);
			if ((int)e->svc.rank == rank)
				e->opened = false;
		}
	}
}

static void
list_free(struct service_list *l)
{
	int i;

	for (i = 0; i < l->n; i++) {
		if (l->e[i].svc.free)
			l->e[i].svc.free(l->e[i].svc.cfg);
		free(l->e[i].name);
	}
	l->n = 0;
}

void
daemon_free_config(void)
{
	list_free(&live);
}

void
daemon_reload_begin(void)
{
	list_free(&pending);
	target = &pending;
}

int
daemon_reload_check(struct tern_err *err)
{
	int i;

	for (i = 0; i < live.n; i++) {
		if (is_fixed(&live.e[i].svc) && list_find(&pending, live.e[i].name) == NULL) {
			tern_err_set(err, 0, "",
				     "init no longer defines the %s, which cannot change on reload "
				     "(restart ternd to change it)",
				     live.e[i].name);
			return -EINVAL;
		}
	}
	return 0;
}

static bool
is_added(const struct entry *e)
{
	return (e->svc.retire != NULL || e->svc.prepare_update != NULL) &&
	       find_entry(e->name) == NULL;
}

static void
close_added(void)
{
	int i;

	for (i = 0; i < pending.n; i++) {
		if (pending.e[i].added) {
			pending.e[i].svc.close(pending.e[i].svc.cfg);
			pending.e[i].added = false;
		}
	}
}

/* The running service that pending entry e defines again, when it takes updates. */
static struct entry *
kept_entry(const struct entry *e)
{
	struct entry *cur;

	if (e->svc.update == NULL && e->svc.prepare_update == NULL)
		return NULL;
	cur = find_entry(e->name);
	return cur != NULL && cur->opened && !cur->retired ? cur : NULL;
}

static int
prepare_updates(struct tern_err *err)
{
	int i;

	for (i = 0; i < pending.n; i++) {
		struct entry *e = &pending.e[i], *cur = kept_entry(e);

		if (cur && e->svc.prepare_update &&
		    e->svc.prepare_update(cur->svc.cfg, e->svc.cfg, err) < 0)
			return -EINVAL;
	}
	return 0;
}

int
daemon_reload_open(struct tern_err *err)
{
	int i, n_new = 0;

	for (i = 0; i < pending.n; i++)
		n_new += is_added(&pending.e[i]);
	if (live.n + n_new > DAEMON_MAX_SERVICES) {
		tern_err_set(err, 0, "", "too many listeners added over reloads (at most %d services)",
			     DAEMON_MAX_SERVICES);
		return -ENOSPC;
	}
	for (i = 0; i < pending.n; i++) {
		struct entry *e = &pending.e[i];

		if (!is_added(e))
			continue;
		e->added = true; /* close() undoes a partial open too */
		if (e->svc.open(e->svc.cfg, err) < 0) {
			close_added();
			return -EINVAL;
		}
		log_info("ternd", "opened %s", e->name);
	}
	if (prepare_updates(err) < 0) {
		close_added();
		return -EINVAL;
	}
	return 0;
}

void
daemon_reload_retire(void)
{
	int i;

	for (i = 0; i < pending.n; i++) {
		struct entry *cur = kept_entry(&pending.e[i]);

		if (cur && cur->svc.update)
			cur->svc.update(cur->svc.cfg, pending.e[i].svc.cfg);
	}

	for (i = 0; i < live.n; i++) {
		struct entry *e = &live.e[i];

		if (e->svc.retire && !e->retired && list_find(&pending, e->name) == NULL) {
			e->svc.retire(e->svc.cfg);
			e->retired = true;
			log_info("ternd", "closed %s (sessions in progress finish)", e->name);
			/* Its name is free again: a later reload may add the address anew. */
			e->name[0] = '\0';
		}
	}
	for (i = 0; i < pending.n; i++) {
		if (pending.e[i].added) {
			live.e[live.n] = pending.e[i];
			live.e[live.n].added = false;
			live.e[live.n++].opened = true;
			pending.e[i].svc.free = NULL; /* live owns it now */
			pending.e[i].name = NULL;
		}
	}
}

void
daemon_reload_end(void)
{
	list_free(&pending);
	target = &live;
}

/* ---- reloads asked for from other threads ------------------------------------------------ */

struct daemon_reload_request {
	struct daemon_reload_request *next;
	daemon_reload_done_fn done;
	void *arg;
};

/* The lock covers the list of requests waiting for the next reload to begin. */
static pthread_mutex_t requests_mu = PTHREAD_MUTEX_INITIALIZER;
static struct daemon_reload_request *requests;

int
daemon_request_reload(daemon_reload_done_fn done, void *arg)
{
	struct daemon_reload_request *r = malloc(sizeof(*r));

	if (r == NULL)
		return -ENOMEM;
	r->done = done;
	r->arg = arg;
	pthread_mutex_lock(&requests_mu);
	r->next = requests;
	requests = r;
	pthread_mutex_unlock(&requests_mu);
	/*
	 * After the request is listed: a reload already running took the list
	 * before it, and this signal, pending meanwhile, starts the one that answers.
	 */
	kill(getpid(), SIGHUP);
	return 0;
}

struct daemon_reload_request *
daemon_reload_take_requests(void)
{
	struct daemon_reload_request *r;

	pthread_mutex_lock(&requests_mu);
	r = requests;
	requests = NULL;
	pthread_mutex_unlock(&requests_mu);
	return r;
}

void
daemon_reload_answer(struct daemon_reload_request *r, const struct daemon_reload_result *res)
{
	struct daemon_reload_request *next;

	for (; r; r = next) {
		next = r->next;
		r->done(r->arg, res);
		free(r);
	}
}
