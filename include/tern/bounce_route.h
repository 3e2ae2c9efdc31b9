/* SPDX-License-Identifier: MIT */
/*
 * Bounce routing: what happens after a Bounce or Expiration record. With a
 * `message_bounced(msg, record)` handler, policy decides (suppress, notify,
 * nothing); without one, a recipient whose reply is classified bad-mailbox,
 * bad-domain or inactive-mailbox is suppressed for the message's tenant.
 * Reputation categories (spam-related, policy-related, rate-limited, ...)
 * say nothing about the address, so the default never suppresses on them.
 */
#ifndef TERN_BOUNCE_ROUTE_H
#define TERN_BOUNCE_ROUTE_H

#include <stdbool.h>

struct logrec;
struct message;

/* Whether the default (no handler) suppresses on this bounce category. */
bool bounce_route_suppresses(const char *category);

/*
 * Route the final failure rec (already written) of msg, queued for tenant
 * ("" for none). Consumes msg: the handler may run past this call (it may
 * yield), and msg is freed when it ends. Runs on the calling shard.
 */
void bounce_route(struct message *msg, const struct logrec *rec, const char *tenant);

#endif
