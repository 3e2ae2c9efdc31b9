/* SPDX-License-Identifier: MIT */
/*
 * A Redis client on one shard's libev loop (hiredis's async API): commands
 * never block the shard. It connects to the first server that answers,
 * authenticates, and reconnects with backoff (trying the next server) after
 * any failure. A command that has no answer within the timeout takes the
 * connection down with it, so a stalled server looks like a dead one: every
 * pending callback then runs with a NULL reply, and callers fall back.
 *
 * A client is owned by its loop's thread: create, use and free it there.
 * Subscriptions (SUBSCRIBE channel) need a client of their own, since Redis
 * answers nothing else on a subscribed connection; they are renewed on every
 * reconnect, and on_state tells the owner when to resynchronise what it may
 * have missed meanwhile.
 */
#ifndef TERN_REDIS_H
#define TERN_REDIS_H

#include <stdbool.h>
#include <stddef.h>

#include <ev.h>
#include <hiredis/hiredis.h>

#include "tern/util.h"

#define REDIS_MAX_SERVERS 8

struct redis_config {
	char servers[REDIS_MAX_SERVERS][64]; /* "IP:port" ("[v6]:port"): no name lookup on a shard */
	size_t n_servers;
	double timeout; /* seconds to connect, and for any command's reply */
	char password[256];
};

struct redis_client;

/* A command's reply, or NULL when it failed: no connection, timeout, disconnect. */
typedef void (*redis_reply_fn)(void *arg, const redisReply *reply);
/* A message published on a subscribed channel. */
typedef void (*redis_message_fn)(void *arg, const char *channel, const char *payload, size_t len);
/* The connection came up (authenticated) or went down. */
typedef void (*redis_state_fn)(void *arg, bool up);

/* Pure: check one "IP:port" server spec into host and port; -EINVAL with err. */
int redis_parse_server(const char *spec, char *host, size_t host_size, int *port,
		       struct tern_err *err);

/* A client that starts connecting at once; name appears in its log lines. */
struct redis_client *redis_client_new(struct ev_loop *loop, const struct redis_config *cfg,
				      const char *name, redis_state_fn on_state, void *arg);
/* Frees the client; pending callbacks run with NULL first. */
void redis_client_free(struct redis_client *c);
bool redis_client_up(const struct redis_client *c);

/* Send a command (argv, lens as for redisCommandArgv); -ENOTCONN when down: cb is not called. */
int redis_client_command(struct redis_client *c, redis_reply_fn cb, void *arg, int argc,
			 const char **argv, const size_t *lens);
/* Subscribe to channel, now and after every reconnect (a client used for nothing else). */
int redis_client_subscribe(struct redis_client *c, const char *channel, redis_message_fn cb,
			   void *arg);

#endif
