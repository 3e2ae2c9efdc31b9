// SPDX-License-Identifier: MIT
/*
 * Redis client on a shard's loop: connection life (connect, AUTH, backoff,
 * the next server), command deadlines and subscriptions. See redis.h.
 *
 * Deadlines: Redis answers one connection's commands in order, so the
 * pending list is in sending order and only its head can be the oldest. A
 * timer looks at the head (and at a connect in progress) four times per
 * timeout; past the timeout it frees the connection, which fails every
 * pending command at once and starts a reconnect.
 */
#include "tern/redis.h"
#include "tern/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>

#define REDIS_BACKOFF_MIN 0.25
#define REDIS_BACKOFF_MAX 5.0
#define REDIS_MAX_CHANNELS 4

struct redis_pending {
	struct redis_client *c;
	redis_reply_fn cb;
	void *arg;
	double sent;
	struct redis_pending *prev, *next;
};

struct redis_channel {
	char name[128];
	redis_message_fn cb;
	void *arg;
};

struct redis_client {
	struct ev_loop *loop;
	struct redis_config cfg;
	char name[64];
	redis_state_fn on_state;
	void *state_arg;
	redisAsyncContext *ac;
	size_t server; /* the server in use or being tried */
	bool up;       /* connected and authenticated */
	bool warned;   /* the failure to reach any server was logged since the last success */
	bool freeing;
	double backoff;
	double connect_started;
	ev_timer retry;
	ev_timer deadline;
	struct redis_pending *head, *tail;
	struct redis_channel channels[REDIS_MAX_CHANNELS];
	size_t n_channels;
};

static void client_connect(struct redis_client *c);

/* ---- pure ----------------------------------------------------------------------------------- */

int
redis_parse_server(const char *spec, char *host, size_t host_size, int *port,
		   struct tern_err *err)
{
	unsigned char addr[sizeof(struct in6_addr)];
	const char *colon = strrchr(spec, ':');
	const char *h = spec, *h_end = colon;
	char *end;
	long p;

	if (colon == NULL)
		goto bad;
	if (*h == '[') {
		h++;
		if (h_end == NULL || h_end[-1] != ']')
			goto bad;
		h_end--;
	}
	if (h_end <= h || (size_t)(h_end - h) >= host_size)
		goto bad;
	memcpy(host, h, (size_t)(h_end - h));
	host[h_end - h] = '\0';
	p = strtol(colon + 1, &end, 10);
	if (*end != '\0' || end == colon + 1 || p < 1 || p > 65535)
		goto bad;
	if (inet_pton(AF_INET, host, addr) != 1 && inet_pton(AF_INET6, host, addr) != 1)
		goto bad;
	*port = (int)p;
	return 0;
bad:
	tern_err_set(err, 0, "", "redis server '%s' is not IP:port (no name lookups on a shard)",
		     spec);
	return -EINVAL;
}

/* ---- pending commands ----------------------------------------------------------------------- */

static void
pending_unlink(struct redis_client *c, struct redis_pending *p)
{
	if (p->prev)
		p->prev->next = p->next;
	else
		c->head = p->next;
	if (p->next)
		p->next->prev = p->prev;
	else
		c->tail = p->prev;
}

static void
on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct redis_pending *p = privdata;

	pending_unlink(p->c, p);
	p->cb(p->arg, reply);
	free(p);
}

int
redis_client_command(struct redis_client *c, redis_reply_fn cb, void *arg, int argc,
		     const char **argv, const size_t *lens)
{
	struct redis_pending *p;

	if (!c->up)
		return -ENOTCONN;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	*p = (struct redis_pending){.c = c, .cb = cb, .arg = arg, .sent = ev_now(c->loop)};
	if (redisAsyncCommandArgv(c->ac, on_reply, p, argc, argv, lens) != REDIS_OK) {
		free(p);
		return -ENOTCONN;
	}
	p->prev = c->tail;
	if (c->tail)
		c->tail->next = p;
	else
		c->head = p;
	c->tail = p;
	return 0;
}

/* ---- subscriptions -------------------------------------------------------------------------- */

static void
on_message(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct redis_channel *ch = privdata;
	redisReply *r = reply;

	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
	    r->element[0]->type != REDIS_REPLY_STRING || strcmp(r->element[0]->str, "message") != 0 ||
	    r->element[2]->type != REDIS_REPLY_STRING)
		return; /* the subscription's confirmation, or the connection went */
	ch->cb(ch->arg, ch->name, r->element[2]->str, r->element[2]->len);
}

static void
subscribe_all(struct redis_client *c)
{
	size_t i;

	for (i = 0; i < c->n_channels; i++)
		redisAsyncCommand(c->ac, on_message, &c->channels[i], "SUBSCRIBE %s",
				  c->channels[i].name);
}

int
redis_client_subscribe(struct redis_client *c, const char *channel, redis_message_fn cb,
		       void *arg)
{
	struct redis_channel *ch;

	if (c->n_channels == REDIS_MAX_CHANNELS || strlen(channel) >= sizeof(ch->name))
		return -EINVAL;
	ch = &c->channels[c->n_channels++];
	snprintf(ch->name, sizeof(ch->name), "%s", channel);
	ch->cb = cb;
	ch->arg = arg;
	if (c->up)
		redisAsyncCommand(c->ac, on_message, ch, "SUBSCRIBE %s", ch->name);
	return 0;
}

/* ---- connection life ------------------------------------------------------------------------ */

static void
client_retry_later(struct redis_client *c)
{
	ev_timer_stop(c->loop, &c->deadline);
	ev_timer_set(&c->retry, c->backoff, 0.);
	ev_timer_start(c->loop, &c->retry);
	c->backoff = c->backoff * 2 > REDIS_BACKOFF_MAX ? REDIS_BACKOFF_MAX : c->backoff * 2;
}

/* This server failed (refused, timed out, refused AUTH): the next one, after the backoff. */
static void
client_failed(struct redis_client *c, const char *why)
{
	const char *server = c->cfg.servers[c->server];

	if (!c->warned)
		log_warn("redis", "%s: %s: %s; retrying", c->name, server, why);
	else
		log_debug("redis", "%s: %s: %s", c->name, server, why);
	c->warned = true;
	c->server = (c->server + 1) % c->cfg.n_servers;
	client_retry_later(c);
}

static void
client_went_down(struct redis_client *c, const char *why)
{
	bool was_up = c->up;

	c->up = false;
	if (was_up && c->on_state)
		c->on_state(c->state_arg, false);
	client_failed(c, why);
}

static void
client_ready(struct redis_client *c)
{
	c->up = true;
	c->backoff = REDIS_BACKOFF_MIN;
	if (c->warned)
		log_info("redis", "%s: connected to %s", c->name, c->cfg.servers[c->server]);
	c->warned = false;
	subscribe_all(c);
	if (c->on_state)
		c->on_state(c->state_arg, true);
}

static void
on_auth(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct redis_client *c = privdata;
	redisReply *r = reply;

	if (r == NULL)
		return; /* on_disconnect follows */
	if (r->type == REDIS_REPLY_ERROR) {
		log_warn("redis", "%s: %s refused AUTH: %s", c->name, c->cfg.servers[c->server],
			 r->str);
		c->warned = true;
		redisAsyncDisconnect(ac);
		return;
	}
	client_ready(c);
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
	struct redis_client *c = ac->data;

	if (status != REDIS_OK) {
		c->ac = NULL; /* hiredis frees it after this callback */
		client_failed(c, ac->errstr[0] ? ac->errstr : "cannot connect");
		return;
	}
	if (c->cfg.password[0] != '\0') {
		redisAsyncCommand(c->ac, on_auth, c, "AUTH %s", c->cfg.password);
		return;
	}
	client_ready(c);
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
	struct redis_client *c = ac->data;

	c->ac = NULL; /* hiredis frees it after this callback */
	if (c->freeing)
		return;
	client_went_down(c, status == REDIS_OK ? "disconnected" :
				   ac->errstr[0] ? ac->errstr : "connection lost");
}

/* Drop the connection from outside hiredis's callbacks: pending commands fail now. */
static void
client_drop(struct redis_client *c, const char *why)
{
	redisAsyncContext *ac = c->ac;
	bool connected = ac->c.flags & REDIS_CONNECTED;

	/* A connected context reports through on_disconnect; a connecting one does not. */
	if (connected) {
		log_warn("redis", "%s: %s: %s", c->name, c->cfg.servers[c->server], why);
		c->warned = true;
		redisAsyncFree(ac);
		return;
	}
	c->ac = NULL;
	redisAsyncFree(ac);
	client_went_down(c, why);
}

static void
on_deadline(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct redis_client *c = t->data;
	double now = ev_now(loop);

	if (c->ac == NULL)
		return;
	if (!c->up && now - c->connect_started > c->cfg.timeout)
		client_drop(c, "no answer to connect or AUTH in time");
	else if (c->head != NULL && now - c->head->sent > c->cfg.timeout)
		client_drop(c, "no reply in time");
}

static void
on_retry(struct ev_loop *loop, ev_timer *t, int revents)
{
	client_connect(t->data);
}

static void
client_connect(struct redis_client *c)
{
	char host[64];
	int port;
	struct tern_err err;

	if (redis_parse_server(c->cfg.servers[c->server], host, sizeof(host), &port, &err) < 0) {
		client_failed(c, err.msg);
		return;
	}
	c->ac = redisAsyncConnect(host, port);
	if (c->ac == NULL || c->ac->err) {
		const char *why = c->ac ? c->ac->errstr : "out of memory";

		if (c->ac)
			redisAsyncFree(c->ac);
		c->ac = NULL;
		client_failed(c, why);
		return;
	}
	c->ac->data = c;
	redisLibevAttach(c->loop, c->ac);
	redisAsyncSetConnectCallback(c->ac, on_connect);
	redisAsyncSetDisconnectCallback(c->ac, on_disconnect);
	c->connect_started = ev_now(c->loop);
	ev_timer_again(c->loop, &c->deadline);
}

struct redis_client *
redis_client_new(struct ev_loop *loop, const struct redis_config *cfg, const char *name,
		 redis_state_fn on_state, void *arg)
{
	struct redis_client *c = calloc(1, sizeof(*c));
	double tick;

	if (c == NULL)
		return NULL;
	c->loop = loop;
	c->cfg = *cfg;
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->on_state = on_state;
	c->state_arg = arg;
	c->backoff = REDIS_BACKOFF_MIN;
	ev_init(&c->retry, on_retry);
	c->retry.data = c;
	tick = cfg->timeout / 4 > 0.01 ? cfg->timeout / 4 : 0.01;
	ev_init(&c->deadline, on_deadline);
	c->deadline.repeat = tick;
	c->deadline.data = c;
	client_connect(c);
	return c;
}

bool
redis_client_up(const struct redis_client *c)
{
	return c->up;
}

void
redis_client_free(struct redis_client *c)
{
	if (c == NULL)
		return;
	c->freeing = true;
	ev_timer_stop(c->loop, &c->retry);
	ev_timer_stop(c->loop, &c->deadline);
	if (c->ac != NULL)
		redisAsyncFree(c->ac);
	free(c);
}
