/* SPDX-License-Identifier: MIT */
/*
 * What `init` asked the daemon to open: the spool, log files, listeners.
 * Bindings called in init (tern.define_spool, tern.start_esmtp_listener, ...)
 * validate their options and register a service here; ternd opens them all
 * after init succeeds (in rank order), and never in --check mode, so a
 * checked policy binds nothing. The list is written only at start-up, before
 * the shard threads exist, and by a reload on the main thread afterwards
 * (shards read the services' configs, never the list).
 *
 * On reload, init runs again and registers into a pending list instead;
 * services of rank STORAGE (the spool) must come out the same, since a
 * running daemon cannot move its spool. Listeners with a retire function
 * are opened when new and retired when gone; other services must stay
 * defined (HTTP listeners). A running service with prepare_update/update
 * that the new init defines again takes the new options from the pending
 * one, so that new connections (or, for local logs, new records) get them,
 * while what it runs (sockets, sessions, open segments) stays; such a
 * service that a reload adds is opened (local logs defined for the first
 * time), and one it no longer defines keeps running.
 */
#ifndef TERN_DAEMON_H
#define TERN_DAEMON_H

#include <stdbool.h>
#include <stdint.h>

#include "tern/util.h"

enum daemon_rank { DAEMON_RANK_STORAGE, DAEMON_RANK_LOGS, DAEMON_RANK_LISTENERS };

struct daemon_service {
	const char *name; /* for messages: "spool", "esmtp listener 127.0.0.1:25" */
	enum daemon_rank rank;
	int (*open)(void *cfg, struct tern_err *err);
	void (*close)(void *cfg); /* after the shards stopped */
	void (*free)(void *cfg);
	/* Does cfg describe the same service as other (same name)? For the reload check. */
	bool (*same)(const void *cfg, const void *other);
	/*
	 * Listeners a reload may add and remove have this: stop taking new work
	 * (what is in progress finishes; cfg lives until exit). The others are
	 * fixed while running, like the spool.
	 */
	void (*retire)(void *cfg);
	/*
	 * A reload defines the running service cfg again as next: check and load
	 * what next needs (certificates) before anything swaps; an error refuses
	 * the reload and next is freed. Optional.
	 */
	int (*prepare_update)(void *cfg, const void *next, struct tern_err *err);
	/*
	 * After the swap: cfg takes next's options for the work it starts from now
	 * on. next is freed afterwards with the reload's pending services.
	 */
	void (*update)(void *cfg, void *next);
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
/* After the shards stopped, before they are freed; answers reload requests still waiting. */
void daemon_close_services(void);
void daemon_free_config(void);

/* From here on, daemon_add_service registers into the pending list of a reload. */
void daemon_reload_begin(void);
/* Refuse a reload whose services cannot change while running: -EINVAL with err. */
int daemon_reload_check(struct tern_err *err);
/*
 * Open the listeners the reload added and prepare the updates of those it kept:
 * -EINVAL with err (and none left open) when one fails.
 */
int daemon_reload_open(struct tern_err *err);
/* After the swap: update the services the reload kept, retire the listeners it removed. */
void daemon_reload_retire(void);
/* Forget the pending list; registrations go to the live list again. */
void daemon_reload_end(void);

/*
 * Reloads asked for from any thread (the admin API). The reload itself stays
 * the main thread's: a request raises SIGHUP, as `tern reload` and --watch do,
 * and a reload answers the requests that were waiting when it began, so that
 * each answer is that of a reload which read the policy after it was asked.
 */
struct daemon_reload_result {
	int status;	   /* 0: loaded; -EINVAL: refused, err says why; -ECANCELED: stopping */
	uint64_t epoch;	   /* the epoch serving afterwards */
	char revision[64]; /* its policy revision */
	struct tern_err err;
};
typedef void (*daemon_reload_done_fn)(void *arg, const struct daemon_reload_result *res);
struct daemon_reload_request;

/* Any thread: ask for a reload; done(arg, result) is called on the main thread. -ENOMEM. */
int daemon_request_reload(daemon_reload_done_fn done, void *arg);
/* Main thread, as a reload begins: the requests it will answer. */
struct daemon_reload_request *daemon_reload_take_requests(void);
/* Main thread, once that reload has ended: call each request's done and free them. */
void daemon_reload_answer(struct daemon_reload_request *r, const struct daemon_reload_result *res);

#endif
