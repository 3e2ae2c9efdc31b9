/* SPDX-License-Identifier: MIT */
/*
 * What `init` asked the daemon to open: the spool, log files, listeners.
 * Bindings called in init (tern.define_spool, tern.start_esmtp_listener, ...)
 * validate their options and register a service here; ternd opens them all
 * after init succeeds (in rank order), and never in --check mode, so a
 * checked policy binds nothing. The list is written only at start-up, before
 * the shard threads exist, and read-only afterwards.
 */
#ifndef TERN_DAEMON_H
#define TERN_DAEMON_H

#include "tern/util.h"

enum daemon_rank { DAEMON_RANK_STORAGE, DAEMON_RANK_LOGS, DAEMON_RANK_LISTENERS };

struct daemon_service {
	const char *name; /* for messages: "spool", "esmtp listener 127.0.0.1:25" */
	enum daemon_rank rank;
	int (*open)(void *cfg, struct tern_err *err);
	void (*close)(void *cfg); /* after the shards stopped */
	void (*free)(void *cfg);
	void *cfg;
};

/* Copy svc into the list. Returns -EEXIST with err when name is already registered. */
int daemon_add_service(const struct daemon_service *svc, struct tern_err *err);
/* Find a registered service's cfg by name (e.g. the spool, for listeners). */
void *daemon_find_service(const char *name);
/* Open the services of one rank not yet open (listeners before a privilege drop). */
int daemon_open_rank(enum daemon_rank rank, struct tern_err *err);
/* Open every service not yet open, in rank order. */
int daemon_open_services(struct tern_err *err);
void daemon_close_services(void);
void daemon_free_config(void);

#endif
