// SPDX-License-Identifier: MIT
/*
 * An SMTP session's limits against slow, brute-forcing and erring clients.
 * The session's state machine only asks "is this over a limit?" and acts
 * on the answer (a 421, a closed connection); the counts, the deadlines and
 * the AUTH penalty live here, so that a limit is read and changed in one
 * place. Every timer is one-shot and runs on the session's shard.
 */
#include "tern/smtp_limits.h"
#include "tern/log.h"
#include "tern/penalty.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static void
limits_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct smtp_limits *lim = w->data;

	lim->expired(lim->arg, (enum smtp_limits_timer)(w - lim->timers));
}

void
smtp_limits_init(struct smtp_limits *lim, struct ev_loop *loop,
		 const struct smtp_listener_config *cfg, smtp_limits_expired_fn expired, void *arg)
{
	int i;

	memset(lim, 0, sizeof(*lim));
	lim->cfg = cfg;
	lim->loop = loop;
	lim->expired = expired;
	lim->arg = arg;
	for (i = 0; i < SMTP_LIMITS_TIMERS; i++) {
		ev_timer_init(&lim->timers[i], limits_timer_cb, 0, 0);
		lim->timers[i].data = lim;
	}
}

void
smtp_limits_stop(struct smtp_limits *lim)
{
	int i;

	for (i = 0; i < SMTP_LIMITS_TIMERS; i++)
		ev_timer_stop(lim->loop, &lim->timers[i]);
}

void
smtp_limits_deadline_start(struct smtp_limits *lim, enum smtp_limits_timer which)
{
	ev_timer *w = &lim->timers[which];
	double secs =
	    which == SMTP_LIMITS_DATA ? lim->cfg->data_timeout : lim->cfg->command_timeout;

	if (secs <= 0 || ev_is_active(w))
		return;
	ev_timer_set(w, secs, 0);
	ev_timer_start(lim->loop, w);
}

void
smtp_limits_deadline_stop(struct smtp_limits *lim, enum smtp_limits_timer which)
{
	ev_timer_stop(lim->loop, &lim->timers[which]);
}

void
smtp_limits_count_reply(struct smtp_limits *lim, int code)
{
	lim->n_errors = code >= 400 ? lim->n_errors + 1 : 0;
}

bool
smtp_limits_errors_exceeded(const struct smtp_limits *lim)
{
	return lim->cfg->max_errors > 0 && lim->n_errors >= lim->cfg->max_errors;
}

/*
 * Whom AUTH failures count against: the address, or for IPv6 its /64, which
 * a single host usually has whole (counting its addresses one by one would
 * give it 2^64 fresh starts).
 */
static void
auth_penalty_key(const struct sockaddr_storage *peer, const char *peer_address, char *out, size_t n)
{
	const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)peer;
	struct in6_addr net;
	char text[INET6_ADDRSTRLEN];

	if (peer->ss_family != AF_INET6 || IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
		snprintf(out, n, "%s", peer_address);
		return;
	}
	net = a->sin6_addr;
	memset(net.s6_addr + 8, 0, 8);
	inet_ntop(AF_INET6, &net, text, sizeof(text));
	snprintf(out, n, "%s/64", text);
}

/*
 * Brute force: every failure counts against the client's address across
 * connections and shards; the max_auth_failures-th on one connection is
 * answered only after auth_failure_delay, with 421, so that guessing costs
 * a connection and the delay.
 */
bool
smtp_limits_auth_failed(struct smtp_limits *lim, const struct sockaddr_storage *peer,
			const char *peer_address)
{
	const struct smtp_listener_config *c = lim->cfg;
	char key[INET6_ADDRSTRLEN + 4];

	lim->n_auth_failures++;
	auth_penalty_key(peer, peer_address, key, sizeof(key));
	penalty_add(&c->auth_failures_per_ip, key, util_now());
	log_info("smtp_server", "AUTH failed (%d on this connection)", lim->n_auth_failures);
	if (c->max_auth_failures == 0 || lim->n_auth_failures < c->max_auth_failures)
		return false;
	log_warn("smtp_server", "%d failed AUTHs: closing the connection after %gs",
		 lim->n_auth_failures, c->auth_failure_delay);
	/* Set even for a delay of 0: the tarpit must always end in the 421. */
	ev_timer_set(&lim->timers[SMTP_LIMITS_TARPIT], c->auth_failure_delay, 0);
	ev_timer_start(lim->loop, &lim->timers[SMTP_LIMITS_TARPIT]);
	return true;
}

bool
smtp_limits_auth_penalised(const struct smtp_limits *lim, const struct sockaddr_storage *peer,
			   const char *peer_address)
{
	char key[INET6_ADDRSTRLEN + 4];

	auth_penalty_key(peer, peer_address, key, sizeof(key));
	return penalty_over(&lim->cfg->auth_failures_per_ip, key, util_now());
}
