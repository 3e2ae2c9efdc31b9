/* SPDX-License-Identifier: MIT */
/*
 * Kafka producers on a shard's event loop, through librdkafka. A batch of
 * messages is handed to librdkafka at once and is done when a delivery
 * report has come for each one: acknowledged by the broker (acks=all by
 * default) or failed (message.timeout.ms passed, the topic does not exist,
 * ...). Reports are read on the loop: librdkafka writes to a pipe when its
 * queue of reports stops being empty, an ev_io wakes, and the reports are
 * served without waiting, so no shard ever blocks on a broker.
 */
#ifndef TERN_KAFKA_H
#define TERN_KAFKA_H

#include <stddef.h>

#include "tern/util.h"

struct ev_loop;
struct kafka_producer;
struct kafka_batch;

struct kafka_config {
	const char *brokers; /* "host:port,host:port" (bootstrap.servers) */
	const char *topic;
	/* Further librdkafka settings, as name/value pairs (security.protocol, ...). */
	const char *const *props;
	size_t n_props;
	double timeout; /* seconds until a message not acknowledged fails; 0 = 30 */
};

struct kafka_msg {
	const char *key; /* NULL: no key (the partitioner spreads messages) */
	size_t key_len;
	const char *value;
	size_t value_len;
};

/*
 * Once per batch, on the loop: failed is how many messages were not
 * acknowledged, err the first failure's reason (NULL when none failed).
 */
typedef void (*kafka_done_fn)(void *arg, size_t failed, const char *err);

/* Check cfg's settings without starting a client: -EINVAL with err naming the bad one. */
int kafka_config_check(const struct kafka_config *cfg, struct tern_err *err);
/* A producer whose reports are served on loop; NULL with err naming the bad setting. */
struct kafka_producer *kafka_producer_new(struct ev_loop *loop, const struct kafka_config *cfg,
					  struct tern_err *err);
/*
 * Queue msgs (copied); done runs once when every message has its report,
 * never before this returns. NULL with err when none could be queued (then
 * done never runs); when only some could, the rest count as failed.
 */
struct kafka_batch *kafka_send(struct kafka_producer *p, const struct kafka_msg *msgs, size_t n,
			       kafka_done_fn done, void *arg, struct tern_err *err);
/* The caller went away: done will not run (the messages stay queued). */
void kafka_batch_abandon(struct kafka_batch *b);
/*
 * Drop what is not yet sent and free p. Batches still waiting are freed
 * without their done running.
 */
void kafka_producer_free(struct kafka_producer *p);

#endif
