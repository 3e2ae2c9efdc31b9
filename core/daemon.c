// SPDX-License-Identifier: MIT
/*
 * Start-up services. Kept apart from ternd.c so that each binding can
 * register what it needs without ternd knowing every module.
 */
#include "tern/daemon.h"
#include "tern/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define DAEMON_MAX_SERVICES 64

struct entry {
	struct daemon_service svc;
	char *name;
	bool opened;
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
	return svc->rank == DAEMON_RANK_STORAGE;
}

/* On reload, a fixed service must be the one running: say so where init defines it. */
static int
check_unchanged(const struct daemon_service *svc, struct tern_err *err)
{
	struct entry *cur = find_entry(svc->name);

	if (target != &pending || !is_fixed(svc))
		return 0;
	if (cur && cur->svc.same && cur->svc.same(cur->svc.cfg, svc->cfg))
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
	e = &target->e[target->n++];
	e->svc = *svc;
	e->name = xstrdup(svc->name);
	e->svc.name = e->name;
	e->opened = false;
	return 0;
}

void *
daemon_find_service(const char *name)
{
	struct entry *e = find_entry(name);

	return e ? e->svc.cfg : NULL;
}

int
daemon_open_services(struct tern_err *err)
{
	int rank, i;

	for (rank = DAEMON_RANK_STORAGE; rank <= DAEMON_RANK_LISTENERS; rank++) {
		for (i = 0; i < live.n; i++) {
			struct entry *e = &live.e[i];

			if ((int)e->svc.rank != rank)
				continue;
			if (e->svc.open(e->svc.cfg, err) < 0)
				return -EINVAL;
			e->opened = true;
			log_info("ternd", "opened %s", e->name);
		}
	}
	return 0;
}

void
daemon_close_services(void)
{
	int rank, i;

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

void
daemon_reload_end(void)
{
	list_free(&pending);
	target = &live;
}
