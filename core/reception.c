// SPDX-License-Identifier: MIT
/*
 * Reception batches. The spool writer thread completes a batch; the
 * completion is posted back to the submitting shard's mailbox, so replies
 * and queue insertion happen on the shard that owns the session.
 *
 * The Reception records are written on the writer thread, as part of the
 * group commit: each synced request's records are appended, then once per
 * commit (spool_set_batch_end) they are handed to the kernel, and only then
 * are the submitters told. So a record is in the log file before its 250
 * is sent, and a kill -9 after a 250 cannot lose it; one write(2) (and one
 * fdatasync with synced logs) serves the whole commit.
 */
#include "tern/reception.h"
#include "tern/log.h"
#include "tern/logrec.h"
#include "tern/metrics.h"
#include "tern/message.h"
#include "tern/queue.h"
#include "tern/shard.h"
#include "tern/spool.h"
#include "tern/suppress.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct reception {
	struct shard *shard;
	struct message **msgs;
	size_t n;
	struct reception_origin origin;
	char *strings; /* one allocation backing the origin's strings */
	reception_done_fn done;
	void *arg;
	int status;
	bool logged;
	struct tern_err err;
	struct reception *next; /* in the writer thread's synced list */
};

/* On each spool writer thread: the requests of the running group commit, in order. */
static __thread struct reception *synced_head, *synced_last;

static struct spool *reception_spool;

static void reception_batch_end(void);

void
reception_set_spool(struct spool *sp)
{
	reception_spool = sp;
	if (sp != NULL)
		spool_set_batch_end(sp, reception_batch_end);
}

struct spool *
reception_get_spool(void)
{
	return reception_spool;
}

static void free_messages(struct message **msgs, size_t n);

static void
reception_free(struct reception *r)
{
	free_messages(r->msgs, r->n);
	free(r->strings);
	free(r);
}

static bool
is_null_queued(const struct message *m)
{
	struct buf q;
	bool yes;

	buf_init(&q);
	yes = message_meta_string(m, "queue", &q) == 0 && strcmp(q.data, "null") == 0;
	buf_deinit(&q);
	return yes;
}

static void
free_kept_message(void *m)
{
	message_free(m);
}

/*
 * The spool keeps the message for its first attempt, before the queue can
 * ask for it; the reception lets go of it.
 */
static void
keep_for_first_attempt(struct spool *sp, struct reception *r, size_t i)
{
	struct message *m = r->msgs[i];

	message_unbind(m);
	r->msgs[i] = NULL;
	spool_keep(sp, &m->id, m, message_footprint(m), free_kept_message);
}

/* Message i joins its scheduled queue, kept by sp (when open) for its first attempt. */
static int
enqueue_one(struct reception *r, struct spool *sp, size_t i, struct buf *queue)
{
	struct spool_id id = r->msgs[i]->id;
	double created = r->msgs[i]->created;
	int rc;

	buf_reset(queue);
	rc = message_queue_name(r->msgs[i], queue);
	if (rc < 0)
		return rc;
	if (sp != NULL)
		keep_for_first_attempt(sp, r, i);
	rc = queue_insert(&id, queue->data ? queue->data : "", created, 0, util_wallclock());
	if (rc < 0 && sp != NULL)
		r->msgs[i] = spool_take_kept(sp, &id);
	return rc;
}

/* Durable now: each spooled message joins its scheduled queue. */
static void
enqueue_all(struct reception *r)
{
	/* NULL once a stopping daemon has closed it: nothing is kept then. */
	struct spool *sp = reception_spool;
	struct buf queue;
	size_t i;
	int rc;

	buf_init(&queue);
	for (i = 0; i < r->n; i++) {
		if (is_null_queued(r->msgs[i]))
			continue;
		rc = enqueue_one(r, sp, i, &queue);
		if (rc < 0)
			log_error("reception", "a spooled message could not join its queue (%s); it "
					       "waits in the spool for the next start", strerror(-rc));
	}
	buf_deinit(&queue);
}

static void
log_receptions(struct reception *r)
{
	struct logrec rec = {
		.type = "Reception",
		.peer_address = r->origin.peer_address,
		.listener = r->origin.listener,
		.tls_version = r->origin.tls_version,
		.tls_cipher = r->origin.tls_cipher,
	};
	struct buf queue;
	size_t i;

	buf_init(&queue);
	for (i = 0; i < r->n; i++) {
		buf_reset(&queue);
		message_queue_name(r->msgs[i], &queue);
		rec.msg = r->msgs[i];
		rec.queue = queue.data ? queue.data : "";
		logrec_write(&rec);
	}
	buf_deinit(&queue);
	r->logged = true;
}

/* On the submitting shard: log, answer, release. */
static void
reception_complete(void *arg)
{
	struct reception *r = arg;

	/* Only a batch that needed no spooling reaches here unlogged. */
	if (r->status == 0 && !r->logged) {
		log_receptions(r);
		logrec_commit();
	}
	if (r->status == 0) {
		metrics_received(r->origin.listener, r->n);
		enqueue_all(r);
	}
	if (r->done)
		r->done(r->arg, r->status, &r->err);
	shard_busy_dec(r->shard);
	reception_free(r);
}

static void
reception_post(struct reception *r)
{
	if (shard_post(r->shard, reception_complete, r) < 0)
		log_error("reception", "shard %d is gone; %zu durable messages not queued",
			  r->shard->id, r->n);
}

/*
 * On the spool writer thread, for each request of a group commit: write the
 * records of a durable batch; the submitter hears of it at the commit's end.
 * The shard leaves r alone until then.
 */
static void
reception_synced(void *arg, int status, const struct tern_err *err)
{
	struct reception *r = arg;

	r->status = status;
	if (status < 0)
		r->err = *err;
	else
		log_receptions(r);
	r->next = NULL;
	if (synced_last != NULL)
		synced_last->next = r;
	else
		synced_head = r;
	synced_last = r;
}

/* On the spool writer thread, once per group commit: records to the kernel, then the replies. */
static void
reception_batch_end(void)
{
	struct reception *r, *next;

	if (synced_head == NULL)
		return;
	logrec_commit();
	for (r = synced_head; r; r = next) {
		next = r->next;
		reception_post(r);
	}
	synced_head = synced_last = NULL;
}

static int
copy_origin(struct reception *r, const struct reception_origin *o)
{
	const char *src[4] = {o->peer_address, o->listener, o->tls_version, o->tls_cipher};
	const char **dst[4] = {&r->origin.peer_address, &r->origin.listener, &r->origin.tls_version,
			       &r->origin.tls_cipher};
	size_t total = 0, i;
	char *p;

	for (i = 0; i < 4; i++)
		total += src[i] ? strlen(src[i]) + 1 : 0;
	p = r->strings = malloc(total + 1);
	if (p == NULL)
		return -ENOMEM;
	for (i = 0; i < 4; i++) {
		*dst[i] = NULL;
		if (src[i]) {
			*dst[i] = strcpy(p, src[i]);
			p += strlen(src[i]) + 1;
		}
	}
	return 0;
}

/* Spool every message not null-queued; 0 when nothing needs spooling (completion posted directly). */
static int
spool_batch(struct reception *r, struct tern_err *err)
{
	struct spool_record *recs = calloc(r->n, sizeof(*recs));
	struct buf *metas = calloc(r->n, sizeof(*metas));
	size_t i, n = 0;
	int rc = 0;

	if (recs == NULL || metas == NULL) {
		tern_err_set(err, 451, "4.3.0", "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; i < r->n && rc == 0; i++) {
		if (is_null_queued(r->msgs[i]))
			continue;
		buf_init(&metas[n]);
		if (message_encode_spool_meta(r->msgs[i], &metas[n]) < 0) {
			tern_err_set(err, 451, "4.3.0", "out of memory");
			rc = -ENOMEM;
			n++;
			break;
		}
		recs[n] = (struct spool_record){r->msgs[i]->id, r->msgs[i]->data.data,
						r->msgs[i]->data.len, metas[n].data, metas[n].len};
		n++;
	}
	if (rc == 0 && n > 0)
		rc = spool_put(reception_spool, recs, n, reception_synced, r, err);
	else if (rc == 0)
		rc = shard_post(r->shard, reception_complete, r);
out:
	for (i = 0; metas && i < n; i++)
		buf_deinit(&metas[i]);
	free(metas);
	free(recs);
	return rc;
}

/* A suppressed recipient's message: its Suppressed record, in place of a Reception. */
static void
log_suppressed(struct reception *r, struct message *m, const struct suppress_entry *e)
{
	char text[SUPPRESS_TEXT_MAX];
	struct logrec rec = {
		.type = "Suppressed",
		.msg = m,
		.peer_address = r->origin.peer_address,
		.listener = r->origin.listener,
		.tls_version = r->origin.tls_version,
		.tls_cipher = r->origin.tls_cipher,
		.response_code = 550,
		.response_enhanced = "5.7.1",
		.response_content = text,
	};
	struct buf queue, entry;

	suppress_reject_text(text, sizeof(text));
	buf_init(&queue);
	buf_init(&entry);
	message_queue_name(m, &queue);
	rec.queue = queue.data ? queue.data : "";
	if (suppress_entry_json(e, &entry) == 0)
		rec.suppression = entry.data;
	logrec_write(&rec);
	buf_deinit(&entry);
	buf_deinit(&queue);
}

/*
 * Drop the messages whose recipient is suppressed for their tenant (known
 * only now, after the hooks that set it): each gets a Suppressed record and
 * is not spooled, while the submitter's answer is a success for it, as the
 * policy chose "drop" (or the tenant was not known when "reject" could
 * still refuse the recipient).
 */
static void
drop_suppressed(struct reception *r)
{
	struct suppress_entry e;
	struct buf tenant;
	size_t i, kept = 0;

	buf_init(&tenant);
	for (i = 0; i < r->n; i++) {
		struct message *m = r->msgs[i];

		buf_reset(&tenant);
		if (message_meta_string(m, "tenant", &tenant) < 0)
			buf_reset(&tenant);
		if (suppress_check(tenant.len ? tenant.data : "", m->recipient, &e) == 1) {
			log_suppressed(r, m, &e);
			message_free(m);
			continue;
		}
		r->msgs[kept++] = m;
	}
	buf_deinit(&tenant);
	r->n = kept;
}

static void
free_messages(struct message **msgs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		message_free(msgs[i]);
	free(msgs);
}

struct reception *
reception_submit(struct shard *shard, struct message **msgs, size_t n,
		 const struct reception_origin *origin, reception_done_fn done, void *arg,
		 struct tern_err *err)
{
	struct reception *r;

	if (reception_spool == NULL) {
		tern_err_set(err, 451, "4.3.0", "no spool is defined");
		free_messages(msgs, n);
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL || copy_origin(r, origin) < 0) {
		tern_err_set(err, 451, "4.3.0", "out of memory");
		free(r);
		free_messages(msgs, n);
		return NULL;
	}
	r->shard = shard;
	r->msgs = msgs;
	r->n = n;
	r->done = done;
	r->arg = arg;
	shard_busy_inc(shard);
	drop_suppressed(r);
	if (spool_batch(r, err) < 0) {
		shard_busy_dec(shard);
		reception_free(r);
		return NULL;
	}
	return r;
}

void
reception_detach(struct reception *r)
{
	r->done = NULL;
	r->arg = NULL;
}
