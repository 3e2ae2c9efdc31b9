/* SPDX-License-Identifier: MIT */
/*
 * Limits an SMTP session puts on slow, brute-forcing and erring clients: the
 * command and data deadlines, the count of consecutive error replies, and
 * failed AUTHs (per connection, then a tarpit before the 421; per address
 * across connections and shards, through penalty.h). They are one concept
 * apart from the protocol: the session asks and acts on the answer, this
 * file keeps the counts and the timers.
 */
#ifndef TERN_SMTP_LIMITS_H
#define TERN_SMTP_LIMITS_H

#include <stdbool.h>
#include <sys/socket.h>

#include <ev.h>

#include "tern/smtp_listener.h"

enum smtp_limits_timer {
	SMTP_LIMITS_COMMAND, /* command_timeout: one command line, from its first byte */
	SMTP_LIMITS_DATA,    /* data_timeout: a whole DATA or BDAT payload */
	SMTP_LIMITS_TARPIT,  /* auth_failure_delay before the 421 */
	SMTP_LIMITS_TIMERS,
};

/* A timer of the session ran out; the session decides the reply. */
typedef void (*smtp_limits_expired_fn)(void *arg, enum smtp_limits_timer which);

/* Embedded in the session; lives on its shard's loop. */
struct smtp_limits {
	const struct smtp_listener_config *cfg;
	struct ev_loop *loop;
	ev_timer timers[SMTP_LIMITS_TIMERS];
	smtp_limits_expired_fn expired;
	void *arg;
	int n_errors; /* consecutive 4xx/5xx replies */
	int n_auth_failures;
};

void smtp_limits_init(struct smtp_limits *lim, struct ev_loop *loop,
		      const struct smtp_listener_config *cfg, smtp_limits_expired_fn expired,
		      void *arg);
/* Stop every timer: the session is closing, or being freed. */
void smtp_limits_stop(struct smtp_limits *lim);

/* Start the command or data deadline, unless it runs already or the listener sets none. */
void smtp_limits_deadline_start(struct smtp_limits *lim, enum smtp_limits_timer which);
void smtp_limits_deadline_stop(struct smtp_limits *lim, enum smtp_limits_timer which);

/* Count a reply sent: an error adds one, anything else starts the count over. */
void smtp_limits_count_reply(struct smtp_limits *lim, int code);
/* max_errors consecutive error replies: the session must end (Postfix's hard error limit). */
bool smtp_limits_errors_exceeded(const struct smtp_limits *lim);

/*
 * Count a failed AUTH against the connection and against the client's
 * address (peer; peer_address its text). true when it was the
 * max_auth_failures-th on this connection: the tarpit timer is started,
 * and the session answers 421 when it runs out.
 */
bool smtp_limits_auth_failed(struct smtp_limits *lim, const struct sockaddr_storage *peer,
			     const char *peer_address);
/* The client's address has failed too often lately: refuse AUTH before it starts. */
bool smtp_limits_auth_penalised(const struct smtp_limits *lim, const struct sockaddr_storage *peer,
				const char *peer_address);

#endif
