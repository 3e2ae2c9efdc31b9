// SPDX-License-Identifier: MIT
/*
 * The inject endpoint. A request becomes a job on the shard that received
 * it: recipients are rendered and hooked one at a time (a hook may yield),
 * the accepted messages go to the reception as one batch (one lane, so one
 * synced write), and the answer waits for that write, as a 250 does.
 */
#include "tern/api_inject.h"
#include "tern/coro.h"
#include "tern/http_server.h"
#include "tern/inject.h"
#include "tern/log.h"
#include "tern/message.h"
#include "tern/policy_hook.h"
#include "tern/reception.h"
#include "tern/shard.h"
#include "tern/spool.h"
#include "tern/suppress.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INJECT_HOOK "http_message_generated"

struct inject_job {
	struct http_request *req;
	struct shard *shard;
	struct inject_request ir;
	uint16_t lane;
	size_t next;	       /* next recipient to render */
	struct message **msgs; /* accepted, for the spool */
	size_t *accepted;      /* their recipients' indexes */
	size_t n_msgs;
	struct message *hooked; /* in the hook now */
	struct coro_ref hook;
	bool hook_running;
	bool in_start; /* inside policy_hook_start: a synchronous end must not recurse */
	bool busy;     /* counted in the shard's busy work: a graceful stop waits for the answer */
	struct reception *reception;
	size_t n_failed;
	struct buf failed, errors; /* JSON array items */
};

static void
job_free(struct inject_job *job)
{
	size_t i;

	/* Once submitted, msgs is NULL: the reception owns the messages. */
	for (i = 0; job->msgs && i < job->n_msgs; i++)
		message_free(job->msgs[i]);
	free(job->msgs);
	free(job->accepted);
	inject_request_free(&job->ir);
	buf_deinit(&job->failed);
	buf_deinit(&job->errors);
	if (job->busy)
		shard_busy_dec(job->shard);
	free(job);
}

/* The request was dropped (shutdown): stop what runs; a spooling batch completes unobserved. */
static void
job_abort(void *arg)
{
	struct inject_job *job = arg;

	if (job->hook_running)
		coro_cancel(&job->hook);
	if (job->hooked)
		message_free(job->hooked);
	if (job->reception)
		reception_detach(job->reception);
	job_free(job);
}

static void
job_fail(struct inject_job *job, size_t i, const char *why)
{
	const char *email = job->ir.rcpts[i].email;
	const char *sep = job->n_failed++ ? "," : "";
	struct buf text;

	buf_init(&text);
	buf_printf(&text, "%s: %s", email, why);
	buf_append_str(&job->failed, sep);
	buf_append_json_string(&job->failed, email, strlen(email));
	buf_append_str(&job->errors, sep);
	buf_append_json_string(&job->errors, text.data ? text.data : "", text.len);
	buf_deinit(&text);
}

static void
job_reply(struct inject_job *job, unsigned status)
{
	struct buf out;

	buf_init(&out);
	buf_printf(&out,
		   "{\"success_count\":%zu,\"fail_count\":%zu,\"failed_recipients\":[%s],"
		   "\"errors\":[%s]}\n",
		   job->n_msgs, job->n_failed, job->failed.data ? job->failed.data : "",
		   job->errors.data ? job->errors.data : "");
	if (out.data == NULL)
		http_request_reply_error(job->req, 503, "out of memory");
	else
		http_request_reply_json(job->req, status, out.data, out.len);
	buf_deinit(&out);
	/* The messages belong to the reception by now. */
	job->n_msgs = 0;
	job_free(job);
}

static void
after_spool(void *arg, int status, const struct tern_err *err)
{
	struct inject_job *job = arg;
	size_t i, n = job->n_msgs;

	job->reception = NULL;
	if (status == 0) {
		job_reply(job, 200);
		return;
	}
	job->n_msgs = 0;
	for (i = 0; i < n; i++)
		job_fail(job, job->accepted[i], err->msg);
	job_reply(job, 503);
}

static void
job_spool(struct inject_job *job)
{
	struct reception_origin origin = {
	    .peer_address = http_request_peer(job->req),
	    .listener = http_request_listener(job->req),
	};
	struct message **msgs = job->msgs;
	struct tern_err err;
	size_t i, n = job->n_msgs;

	if (n == 0) {
		job_reply(job, 200);
		return;
	}
	job->msgs = NULL;
	job->reception = reception_submit(job->shard, msgs, n, &origin, after_spool, job, &err);
	if (job->reception == NULL) {
		/* reception_submit freed the messages */
		job->n_msgs = 0;
		for (i = 0; i < n; i++)
			job_fail(job, job->accepted[i], err.msg);
		job_reply(job, 503);
	}
}

/*
 * Policy chose to refuse suppressed recipients, and after the hook the
 * message's tenant is known: refuse it in the answer, as RCPT would.
 */
static bool
job_suppressed(struct inject_job *job, size_t i, struct message *m)
{
	char text[SUPPRESS_TEXT_MAX], why[SUPPRESS_TEXT_MAX + 16];
	struct buf tenant;
	int rc;

	if (suppress_action() != SUPPRESS_REJECT)
		return false;
	buf_init(&tenant);
	if (message_meta_string(m, "tenant", &tenant) < 0)
		buf_reset(&tenant);
	rc = suppress_check(tenant.len ? tenant.data : "", m->recipient, NULL);
	buf_deinit(&tenant);
	if (rc != 1)
		return false;
	suppress_reject_text(text, sizeof(text));
	snprintf(why, sizeof(why), "550 5.7.1 %s", text);
	job_fail(job, i, why);
	message_free(m);
	return true;
}

static void
job_accept(struct inject_job *job, size_t i, struct message *m)
{
	if (job_suppressed(job, i, m))
		return;
	job->accepted[job->n_msgs] = i;
	job->msgs[job->n_msgs++] = m;
}

/* The message for recipient i, or NULL with the recipient counted as failed. */
static struct message *
job_render(struct inject_job *job, size_t i)
{
	const char *sender = job->ir.envelope_sender, *at = strrchr(sender, '@');
	char hex[SPOOL_ID_HEX_LEN + 1], mid[SPOOL_ID_HEX_LEN + 300];
	struct message *m = message_new(sender, job->ir.rcpts[i].email);
	struct tern_err err;

	if (m == NULL) {
		job_fail(job, i, "out of memory");
		return NULL;
	}
	spool_make_id(&m->id, 0, job->lane);
	m->created = util_wallclock();
	spool_id_to_hex(&m->id, hex);
	snprintf(mid, sizeof(mid), "%s@%s", hex, at ? at + 1 : "tern.invalid");
	if (inject_render(&job->ir, i, mid, m->created, &m->data, &err) < 0) {
		job_fail(job, i, err.msg);
		message_free(m);
		return NULL;
	}
	return m;
}

static void job_generate(struct inject_job *job);

static void
after_hook(void *arg, lua_State *co, int status, int nres, const struct tern_err *err)
{
	struct inject_job *job = arg;
	struct message *m = job->hooked;

	(void)co;
	(void)nres;
	job->hook_running = false;
	job->hooked = NULL;
	if (status == CORO_OK) {
		job_accept(job, job->next - 1, m);
	} else {
		if (status != CORO_REJECTED)
			log_warn("http", INJECT_HOOK " failed: %s", err ? err->msg : "?");
		job_fail(job, job->next - 1,
			 status == CORO_REJECTED ? err->msg : "temporary policy failure");
		message_free(m);
	}
	if (!job->in_start)
		job_generate(job);
}

/* Render and hook each recipient in turn; a yielding hook resumes the loop from after_hook. */
static void
job_generate(struct inject_job *job)
{
	struct policy *p = job->shard->policy;

	while (job->next < job->ir.n_rcpts) {
		struct message *m = job_render(job, job->next);
		lua_State *co;

		job->next++;
		if (m == NULL)
			continue;
		co = policy_hook_begin(p, INJECT_HOOK, &job->hook);
		if (co == NULL) {
			job_accept(job, job->next - 1, m);
			continue;
		}
		policy_hook_push_message(co, m);
		job->hooked = m;
		job->hook_running = job->in_start = true;
		policy_hook_start(p, &job->hook, INJECT_HOOK, 1, after_hook, job);
		job->in_start = false;
		if (job->hook_running)
			return;
	}
	job_spool(job);
}

/* Requests take turns over the spool's partitions, as SMTP transactions do. */
static uint16_t
next_lane(struct shard *shard)
{
	static __thread uint16_t turn;

	return (uint16_t)(shard->id + turn++);
}

void
api_inject_handle(struct http_request *req)
{
	struct inject_job *job = calloc(1, sizeof(*job));
	struct tern_err err;
	const char *body;
	size_t len;

	if (job == NULL) {
		http_request_reply_error(req, 503, "out of memory");
		return;
	}
	body = http_request_body(req, &len);
	if (inject_decode(body, len, &job->ir, &err) < 0) {
		http_request_reply_error(req, err.code ? (unsigned)err.code : 400, "%s", err.msg);
		job_free(job);
		return;
	}
	job->req = req;
	job->shard = http_request_shard(req);
	job->lane = next_lane(job->shard);
	job->msgs = calloc(job->ir.n_rcpts, sizeof(*job->msgs));
	job->accepted = calloc(job->ir.n_rcpts, sizeof(*job->accepted));
	if (job->msgs == NULL || job->accepted == NULL) {
		http_request_reply_error(req, 503, "out of memory");
		job_free(job);
		return;
	}
	shard_busy_inc(job->shard);
	job->busy = true;
	http_request_on_abort(req, job_abort, job);
	job_generate(job);
}
