/* SPDX-License-Identifier: MIT */
/*
 * Sending DSNs: after a Bounce or an Expiration, when the message's queue
 * config says dsn = true (per tenant, since get_queue_config is asked with
 * the tenant; off by default), a DSN (core/dsn.c) goes to the envelope
 * sender. It is received like any message (a Reception record, the spool,
 * the sender domain's queue, with the original's tenant), from the null
 * sender, so that it can never cause a DSN itself; none is sent for a
 * message from the null sender or for a message that is a DSN.
 */
#ifndef TERN_DSN_SEND_H
#define TERN_DSN_SEND_H

struct logrec;
struct message;
struct queue_msg;

/* On the shard settling the outcome, after rec (Bounce, Expiration) is written. */
void dsn_send_for(struct queue_msg *m, struct message *msg, const struct logrec *rec);

#endif
