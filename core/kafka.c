// SPDX-License-Identifier: MIT
/*
 * Kafka producers on the event loop (see include/tern/kafka.h).
 *
 * librdkafka runs its own threads for the brokers; what reaches us are
 * delivery reports, queued on its main queue and served by rd_kafka_poll().
 * Polling on a timer would add its period to every batch and wake idle
 * shards, so the queue is given a pipe instead: librdkafka writes a byte
 * when the queue stops being empty, and the loop serves every report then,
 * with a zero timeout. Each message carries its batch as opaque, so a report
 * counts down its batch and the last one finishes it. The pipe is written
 * only when the queue goes from empty to not empty, so should a report ever
 * be left behind by a poll, a slow timer serves the queue too while batches
 * wait: a missed wake-up costs KAFKA_POLL_INTERVAL, never a hung batch.
 */
#include "tern/kafka.h"
#include "tern/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>
#include <librdkafka/rdkafka.h>

#define KAFKA_DEFAULT_TIMEOUT 30.0
#define KAFKA_POLL_INTERVAL 0.1

struct kafka_batch {
	struct kafka_batch *prev, *next; /* the producer's waiting batches */
	size_t pending;                  /* messages without a report yet */
	size_t failed;
	char err[256]; /* the first failure */
	kafka_done_fn done; /* NULL once abandoned */
	void *arg;
};

struct kafka_producer {
	rd_kafka_t *rk;
	char *topic;
	struct ev_loop *loop;
	ev_io io;
	ev_timer poll; /* active while batches wait */
	int pipefd[2];
	struct kafka_batch *batches;
	bool closing; /* reports met while destroying are not ours to count */
};

static void
batch_unlink(struct kafka_producer *p, struct kafka_batch *b)
{
	if (b->prev)
		b->prev->next = b->next;
	else
		p->batches = b->next;
	if (b->next)
		b->next->prev = b->prev;
}

static void
batch_fail(struct kafka_batch *b, size_t n, const char *why)
{
	b->failed += n;
	if (b->err[0] == '\0')
		snprintf(b->err, sizeof(b->err), "%s", why);
}

static void
batch_finish(struct kafka_producer *p, struct kafka_batch *b)
{
	batch_unlink(p, b);
	if (b->done)
		b->done(b->arg, b->failed, b->failed ? b->err : NULL);
	free(b);
}

/* librdkafka calls this from rd_kafka_poll(), so on the loop's thread. */
static void
kafka_report(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct kafka_producer *p = opaque;
	struct kafka_batch *b = m->_private;

	if (p->closing || b == NULL)
		return;
	if (m->err)
		batch_fail(b, 1, rd_kafka_err2str(m->err));
	if (--b->pending == 0)
		batch_finish(p, b);
}

/* Client-wide errors (all brokers down, authentication): the reports say which messages failed. */
static void
kafka_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	log_warn("kafka", "%s: %s", rd_kafka_err2name(err), reason);
}

/* From librdkafka's threads: critical only, kafka_error reports errors (log.c is thread-safe). */
static void
kafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	if (level <= 2)
		log_error("kafka", "%s: %s", fac, buf);
}

static void
kafka_serve(struct kafka_producer *p)
{
	while (rd_kafka_poll(p->rk, 0) > 0)
		;
	if (p->batches == NULL)
		ev_timer_stop(p->loop, &p->poll);
}

static void
kafka_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct kafka_producer *p = w->data;
	char drain[64];

	while (read(p->pipefd[0], drain, sizeof(drain)) > 0)
		;
	kafka_serve(p);
}

static void
kafka_poll_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	kafka_serve(w->data);
}

static int
conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, struct tern_err *err)
{
	char why[256];

	if (rd_kafka_conf_set(conf, name, value, why, sizeof(why)) == RD_KAFKA_CONF_OK)
		return 0;
	tern_err_set(err, 0, "", "kafka setting '%s': %s", name, why);
	return -EINVAL;
}

static rd_kafka_conf_t *
conf_build(struct kafka_producer *p, const struct kafka_config *cfg, struct tern_err *err)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char timeout[32];
	size_t i;
	int rc = 0;

	snprintf(timeout, sizeof(timeout), "%.0f",
		 (cfg->timeout > 0 ? cfg->timeout : KAFKA_DEFAULT_TIMEOUT) * 1000);
	if (cfg->brokers != NULL)
		rc = conf_set(conf, "bootstrap.servers", cfg->brokers, err);
	if (rc == 0)
		rc = conf_set(conf, "message.timeout.ms", timeout, err);
	for (i = 0; i < cfg->n_props && rc == 0; i++)
		rc = conf_set(conf, cfg->props[2 * i], cfg->props[2 * i + 1], err);
	if (rc < 0) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	rd_kafka_conf_set_opaque(conf, p);
	rd_kafka_conf_set_dr_msg_cb(conf, kafka_report);
	rd_kafka_conf_set_error_cb(conf, kafka_error);
	rd_kafka_conf_set_log_cb(conf, kafka_log);
	return conf;
}

int
kafka_config_check(const struct kafka_config *cfg, struct tern_err *err)
{
	rd_kafka_conf_t *conf = conf_build(NULL, cfg, err);

	if (conf == NULL)
		return -EINVAL;
	rd_kafka_conf_destroy(conf);
	return 0;
}

struct kafka_producer *
kafka_producer_new(struct ev_loop *loop, const struct kafka_config *cfg, struct tern_err *err)
{
	struct kafka_producer *p = calloc(1, sizeof(*p));
	rd_kafka_conf_t *conf;
	rd_kafka_queue_t *q;
	char why[512];

	if (p == NULL) {
		tern_err_set(err, 0, "", "kafka: out of memory");
		return NULL;
	}
	p->pipefd[0] = p->pipefd[1] = -1;
	p->topic = strdup(cfg->topic);
	if (p->topic == NULL) {
		tern_err_set(err, 0, "", "kafka: out of memory");
		goto fail;
	}
	conf = conf_build(p, cfg, err);
	if (conf == NULL)
		goto fail;
	p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
	if (p->rk == NULL) {
		rd_kafka_conf_destroy(conf);
		tern_err_set(err, 0, "", "kafka: %s", why);
		goto fail;
	}
	if (pipe2(p->pipefd, O_NONBLOCK | O_CLOEXEC) < 0) {
		tern_err_set(err, 0, "", "kafka: pipe: %s", strerror(errno));
		goto fail;
	}
	q = rd_kafka_queue_get_main(p->rk);
	rd_kafka_queue_io_event_enable(q, p->pipefd[1], "1", 1);
	rd_kafka_queue_destroy(q);
	p->loop = loop;
	ev_io_init(&p->io, kafka_io_cb, p->pipefd[0], EV_READ);
	p->io.data = p;
	ev_io_start(loop, &p->io);
	ev_timer_init(&p->poll, kafka_poll_cb, KAFKA_POLL_INTERVAL, KAFKA_POLL_INTERVAL);
	p->poll.data = p;
	return p;
fail:
	kafka_producer_free(p);
	return NULL;
}

/* Queue one message of b; a librdkafka error code. */
static rd_kafka_resp_err_t
produce(struct kafka_producer *p, const struct kafka_msg *m, struct kafka_batch *b)
{
	return rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(p->topic),
				 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
				 RD_KAFKA_V_KEY(m->key, m->key ? m->key_len : 0),
				 RD_KAFKA_V_VALUE((void *)m->value, m->value_len),
				 RD_KAFKA_V_OPAQUE(b), RD_KAFKA_V_END);
}

struct kafka_batch *
kafka_send(struct kafka_producer *p, const struct kafka_msg *msgs, size_t n, kafka_done_fn done,
	   void *arg, struct tern_err *err)
{
	struct kafka_batch *b = calloc(1, sizeof(*b));
	rd_kafka_resp_err_t rc = RD_KAFKA_RESP_ERR_NO_ERROR;
	size_t i;

	if (b == NULL || n == 0) {
		tern_err_set(err, 0, "", b ? "kafka: nothing to send" : "kafka: out of memory");
		free(b);
		return NULL;
	}
	b->done = done;
	b->arg = arg;
	/* Reports are served only on this loop, after we return: none can finish b meanwhile. */
	for (i = 0; i < n && rc == RD_KAFKA_RESP_ERR_NO_ERROR; i++) {
		rc = produce(p, &msgs[i], b);
		b->pending += rc == RD_KAFKA_RESP_ERR_NO_ERROR;
	}
	if (b->pending == 0) {
		tern_err_set(err, 0, "", "kafka: %s", rd_kafka_err2str(rc));
		free(b);
		return NULL;
	}
	if (rc != RD_KAFKA_RESP_ERR_NO_ERROR)
		batch_fail(b, n - b->pending, rd_kafka_err2str(rc));
	b->next = p->batches;
	if (b->next)
		b->next->prev = b;
	p->batches = b;
	ev_timer_start(p->loop, &p->poll);
	return b;
}

void
kafka_batch_abandon(struct kafka_batch *b)
{
	b->done = NULL;
}

void
kafka_producer_free(struct kafka_producer *p)
{
	struct kafka_batch *b;

	if (p == NULL)
		return;
	if (p->rk != NULL) {
		if (p->loop != NULL) {
			ev_io_stop(p->loop, &p->io);
			ev_timer_stop(p->loop, &p->poll);
		}
		p->closing = true;
		/* Nothing left to send means rd_kafka_destroy only joins librdkafka's threads. */
		rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
		rd_kafka_destroy(p->rk);
	}
	while ((b = p->batches) != NULL) {
		p->batches = b->next;
		free(b);
	}
	if (p->pipefd[0] >= 0)
		close(p->pipefd[0]);
	if (p->pipefd[1] >= 0)
		close(p->pipefd[1]);
	free(p->topic);
	free(p);
}
