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

static struct entry services[DAEMON_MAX_SERVICES];
static int n_services;

static struct entry *
find_entry(const char *name)
{
	int i;

	for (i = 0; i < n_services; i++)
		if (strcmp(services[i].name, name) == 0)
			return &services[i];
	return NULL;
}

int
daemon_add_service(const struct daemon_service *svc, struct tern_err *err)
{
	struct entry *e;

	if (find_entry(svc->name) != NULL) {
		tern_err_set(err, 0, "", "%s is already defined", svc->name);
		return -EEXIST;
	}
	if (n_services == DAEMON_MAX_SERVICES) {
		tern_err_set(err, 0, "", "too many services (at most %d)", DAEMON_MAX_SERVICES);
		return -ENOSPC;
	}
	e = &services[n_services++];
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
daemon_open_rank(enum daemon_rank rank, struct tern_err *err)
{
	int i;

	for (i = 0; i < n_services; i++) {
		struct entry *e = &services[i];

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
	int rank, i;

	for (rank = DAEMON_RANK_LISTENERS; rank >= DAEMON_RANK_STORAGE; rank--) {
		for (i = n_services - 1; i >= 0; i--) {
			struct entry *e = &services[i];

			if ((int)e->svc.rank == rank && e->opened && e->svc.close)
				e->svc.close(e->svc.cfg);
			if ((int)e->svc.rank == rank)
				e->opened = false;
		}
	}
}

void
daemon_free_config(void)
{
	int i;

	for (i = 0; i < n_services; i++) {
		if (services[i].svc.free)
			services[i].svc.free(services[i].svc.cfg);
		free(services[i].name);
	}
	n_services = 0;
}
