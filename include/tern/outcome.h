/* SPDX-License-Identifier: MIT */
/*
 * Outcomes: the one place every result of an attempt passes. Each writes its
 * record (rec->type is set here; rec->msg becomes msg), updates the spool
 * (removal, or the attempt count and next due time), and frees m or hands it
 * back to the scheduler. Called on any shard; msg is consumed.
 */
#ifndef TERN_OUTCOME_H
#define TERN_OUTCOME_H

struct logrec;
struct message;
struct queue_msg;

void outcome_delivered(struct queue_msg *m, struct message *msg, struct logrec *rec);
void outcome_bounced(struct queue_msg *m, struct message *msg, struct logrec *rec);
/* Bounced by an operator (admin bounce rule): the record does not count an attempt. */
void outcome_admin_bounced(struct queue_msg *m, struct message *msg, struct logrec *rec);
/* Past the queue's max_age: the record does not count an attempt. */
void outcome_expired(struct queue_msg *m, struct message *msg, struct logrec *rec);
/* Tried again after the queue's backoff. */
void outcome_transient(struct queue_msg *m, struct message *msg, struct logrec *rec);

#endif
