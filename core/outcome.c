// SPDX-License-Identifier: MIT
/*
 * Outcomes: every result of an attempt passes here, whoever decided it (the
 * SMTP client's response, egress, the scheduler's routing, config and expiry
 * checks). Here it becomes its record and its change to the spool; a
 * transient failure goes back to the scheduler, which decides when the next
 * attempt is. Keeping them in one place is what lets classification,
 * suppression and shaping automation see every result.
 */
#include "tern/outcome.h"
#include "tern/automation.h"
#include "tern/bounce.h"
#include "tern/bounce_route.h"
#include "tern/config.h"
#include "tern/dsn_send.h"
#include "tern/log.h"
#include "tern/logrec.h"
#include "tern/message.h"
#include "tern/metrics.h"
#include "tern/queue.h"
#include "tern/shard.h"
#include "tern/spool.h"
#include "tern/warmup.h"

#include <stdio.h>
#include <string.h>

#include <ev.h>

/* Counted where its record is written, so that the metrics and the records agree. */
static void
count_outcome(struct queue_msg *m, struct message *msg, const struct logrec *rec,
	      enum metrics_outcome o)
{
	const struct metrics_outcome_labels l = {
	    .site = rec->site,
	    .source = rec->egress_source,
	    .pool = rec->egress_pool,
	    .tenant = queue_msg_tenant(m),
	};

	metrics_outcome(o, &l, msg->created > 0 ? util_wallclock() - msg->created : -1);
}

/* The record's reply as one line, "code enhanced text", into reply[BOUNCE_REPLY_MAX]: its length. */
static size_t
reply_line(const struct logrec *rec, char *reply)
{
	int n = snprintf(reply, BOUNCE_REPLY_MAX, "%d %s %s", rec->response_code,
			 rec->response_enhanced ? rec->response_enhanced : "",
			 rec->response_content ? rec->response_content : "");

	if (n < 0)
		return 0;
	return (size_t)n < BOUNCE_REPLY_MAX ? (size_t)n : BOUNCE_REPLY_MAX - 1;
}

/* A failure's reply gets its bounce category from the rules of the shard writing the record. */
static void
classify(struct logrec *rec)
{
	char reply[BOUNCE_REPLY_MAX];

	rec->bounce_classification = NULL;
	if (!logrec_is_failure(rec->type))
		return;
	rec->bounce_classification = config_classify(shard_self(), reply, reply_line(rec, reply),
						     rec->site);
}

/*
 * Shaping automation sees every failed attempt on a path (the reply, or
 * egress's words for a connection or TLS failure), on the shard that saw it.
 * Returns whether a rule that fired says to bounce the message.
 */
static bool
shaping_bounces(struct queue_msg *m, struct message *msg, const struct logrec *rec)
{
	const struct automation_rule *rule;
	char reply[BOUNCE_REPLY_MAX];

	if (rec->egress_source == NULL || rec->site == NULL)
		return false;
	rule = automation_observe(m, msg, rec, reply, reply_line(rec, reply));
	return rule != NULL && rule->def.action == AUTOMATION_BOUNCE;
}

/* attempted: the outcome ends a delivery attempt, which counts in num_attempts. */
static void
write_record(struct queue_msg *m, struct message *msg, struct logrec *rec, const char *type,
	     bool attempted, enum metrics_outcome o)
{
	count_outcome(m, msg, rec, o);
	rec->type = type;
	rec->msg = msg;
	rec->queue = queue_msg_name(m);
	rec->num_attempts = m->attempts + (attempted ? 1 : 0);
	classify(rec);
	metrics_classified(o, rec->egress_source, rec->bounce_classification);
	logrec_write(rec);
	warmup_outcome(type, rec->egress_source);
}

/*
 * Outcomes change the spool without syncing (a crash may repeat a
 * delivery, never lose one), so a shard collects its removals and meta
 * rewrites and hands them to the spool's writers just before its loop waits
 * again: one write per partition per loop iteration instead of one per
 * message, and none on the shard's thread.
 * The records of those outcomes go to the kernel first (logrec_commit), so
 * that a message gone from the spool always has its final record.
 */
struct shard_changes {
	struct spool_changes *changes;
	ev_prepare flush;
	bool ready;
};

static struct shard_changes shard_changes[SHARD_MAX];

static void
changes_flush(struct shard_changes *sc)
{
	struct tern_err err;

	if (spool_changes_pending(sc->changes) == 0)
		return;
	logrec_commit();
	if (spool_changes_commit(sc->changes, queue_spool(), &err) < 0)
		log_ratelimited(LOG_LEVEL_ERROR, "outcome", "%s", err.msg);
}

static void
changes_prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	changes_flush(w->data);
}

static void
changes_exit(struct shard *shard, void *arg)
{
	struct shard_changes *sc = arg;

	changes_flush(sc);
	ev_prepare_stop(shard->loop, &sc->flush);
	spool_changes_free(sc->changes);
	sc->changes = NULL;
	sc->ready = false;
}

/* The calling shard's collector (created on first use, on its own thread). */
static struct spool_changes *
changes_here(void)
{
	struct shard *shard = shard_self();
	struct shard_changes *sc = &shard_changes[shard->id];

	/* Outcomes settled while the shard exits are written at once. */
	if (shard->exiting)
		return NULL;
	if (!sc->ready) {
		sc->changes = spool_changes_new();
		if (sc->changes == NULL)
			return NULL;
		ev_prepare_init(&sc->flush, changes_prepare_cb);
		sc->flush.data = sc;
		ev_prepare_start(shard->loop, &sc->flush);
		shard_on_exit(shard, changes_exit, sc);
		sc->ready = true;
	}
	return sc->changes;
}

static void
remove_from_spool(struct queue_msg *m)
{
	struct spool_changes *c = changes_here();
	struct tern_err err;

	if (c != NULL && spool_changes_remove(c, queue_spool(), &m->id) == 0)
		return;
	logrec_commit();
	if (spool_remove(queue_spool(), &m->id, &err) < 0)
		log_error("outcome", "spool remove failed: %s", err.msg);
}

static void
rewrite_meta(struct queue_msg *m, const struct buf *meta)
{
	struct spool_changes *c = changes_here();
	struct tern_err err;

	if (c != NULL &&
	    spool_changes_update_meta(c, queue_spool(), &m->id, meta->data, meta->len) == 0)
		return;
	if (spool_update_meta(queue_spool(), &m->id, meta->data, meta->len, &err) < 0)
		log_warn("outcome", "attempt count not saved: %s", err.msg);
}

/* An outcome that ends the message's life: record, remove from the spool, free. */
static void
final_outcome(struct queue_msg *m, struct message *msg, struct logrec *rec, const char *type,
	      bool attempted, enum metrics_outcome o)
{
	write_record(m, msg, rec, type, attempted, o);
	remove_from_spool(m);
	message_free(msg);
	queue_msg_drop(m);
}

void
outcome_delivered(struct queue_msg *m, struct message *msg, struct logrec *rec)
{
	final_outcome(m, msg, rec, "Delivery", true, METRICS_DELIVERED);
}

/* A final failure: record, a DSN when policy asks, remove, then bounce routing (which frees msg). */
static void
final_failure(struct queue_msg *m, struct message *msg, struct logrec *rec, const char *type,
	      bool attempted, enum metrics_outcome o)
{
	write_record(m, msg, rec, type, attempted, o);
	dsn_send_for(m, msg, rec);
	remove_from_spool(m);
	bounce_route(msg, rec, queue_msg_tenant(m));
	queue_msg_drop(m);
}

void
outcome_bounced(struct queue_msg *m, struct message *msg, struct logrec *rec)
{
	shaping_bounces(m, msg, rec);
	final_failure(m, msg, rec, "Bounce", true, METRICS_BOUNCED);
}

void
outcome_admin_bounced(struct queue_msg *m, struct message *msg, struct logrec *rec)
{
	final_outcome(m, msg, rec, "AdminBounce", false, METRICS_BOUNCED);
}

void
outcome_expired(struct queue_msg *m, struct message *msg, struct logrec *rec)
{
	final_failure(m, msg, rec, "Expiration", false, METRICS_EXPIRED);
}

void
outcome_transient(struct queue_msg *m, struct message *msg, struct logrec *rec)
{
	struct buf meta;

	if (shaping_bounces(m, msg, rec)) {
		final_failure(m, msg, rec, "Bounce", true, METRICS_BOUNCED);
		return;
	}
	write_record(m, msg, rec, "TransientFailure", true, METRICS_TRANSIENT);
	m->attempts++;
	m->due = queue_retry_due(m);
	msg->attempts = m->attempts;
	msg->due = m->due;
	buf_init(&meta);
	if (message_encode_spool_meta(msg, &meta) == 0)
		rewrite_meta(m, &meta);
	buf_deinit(&meta);
	message_free(msg);
	queue_requeue(m);
}
