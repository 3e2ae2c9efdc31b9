// SPDX-License-Identifier: MIT
/*
 * Received reports become records. A report is read whole on the shard that
 * received it (the parsers are pure and a report is small), so the records
 * exist before the client hears 250, like a Reception record. The record is
 * the report's: its id is the report's id and its sender the report's
 * sender, while recipient is the recipient the report is about (the failed
 * one, the complainer), and "report" holds the rest. message_complained is
 * started and not waited for: what policy does with a complaint (suppress
 * the recipient) must not hold the reporter's session.
 */
#include "tern/report_intake.h"
#include "tern/arf.h"
#include "tern/config.h"
#include "tern/log.h"
#include "tern/mime_parse.h"
#include "tern/logrec.h"
#include "tern/message.h"
#include "tern/metrics.h"
#include "tern/oob.h"
#include "tern/policy_hook.h"
#include "tern/reception.h"
#include "tern/shard.h"
#include "tern/suppress.h"
#include "tern/trace_ref.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Empty fields of a parsed report are null in its record. */
static const char *
nonempty(const char *s)
{
	return s[0] ? s : NULL;
}

/* What a report's ref says about the original, once checked. */
struct ref_check {
	struct trace_ref ref;
	const char *status; /* logrec_report.ref */
};

static void
check_ref(const struct trace_config *t, const struct message *msg, const char *value,
	  struct ref_check *c)
{
	char hex[SPOOL_ID_HEX_LEN + 1];
	int rc;

	memset(c, 0, sizeof(*c));
	if (value[0] == '\0')
		return;
	if (t->secret_len == 0) {
		c->status = "unchecked";
		return;
	}
	rc = trace_ref_verify(value, t->secret, t->secret_len, &c->ref);
	if (rc == 0) {
		c->status = "verified";
		return;
	}
	c->status = "invalid";
	spool_id_to_hex(&msg->id, hex);
	log_warn("report", "report %s from <%s>: %s X-Tern-Ref ignored", hex, msg->sender,
		 rc == -EPERM ? "forged (or foreign)" : "malformed");
}

/*
 * A bounce without a verified X-Tern-Ref, sent to a VERP return path: the
 * token names the original and must authenticate one of the recipients the
 * bounce reports (tenant and campaign are not in a token: they stay null).
 */
static void
check_verp(const struct trace_config *t, const struct message *msg, const struct oob_report *o,
	   struct ref_check *c)
{
	char id[SPOOL_ID_HEX_LEN + 1];
	int rc = -EINVAL;
	size_t i;

	if (t->secret_len == 0 || msg->recipient == NULL ||
	    (c->status != NULL && strcmp(c->status, "verified") == 0))
		return;
	for (i = 0; i < o->n_rcpts; i++) {
		rc = trace_verp_verify(msg->recipient, o->rcpts[i].address, t->secret,
				       t->secret_len, id);
		if (rc != -EPERM)
			break;
	}
	if (rc == -EINVAL)
		return;
	memset(c, 0, sizeof(*c));
	if (rc < 0) {
		c->status = "invalid";
		log_warn("report", "bounce to <%s>: forged (or foreign) VERP token ignored",
			 msg->recipient);
		return;
	}
	c->status = "verified";
	memcpy(c->ref.id, id, sizeof(c->ref.id));
	snprintf(c->ref.recipient, sizeof(c->ref.recipient), "%s", o->rcpts[i].address);
}

static void
link_original(struct logrec_report *rep, const struct ref_check *c)
{
	rep->ref = c->status;
	if (c->status == NULL || strcmp(c->status, "verified") != 0)
		return;
	rep->original_id = c->ref.id;
	rep->tenant = nonempty(c->ref.tenant);
	rep->campaign = nonempty(c->ref.campaign);
}

/*
 * The record's message: the report's id, sender and size, with recipient
 * the one the report is about (a view: data is borrowed, nothing is freed).
 */
static struct message
record_view(const struct message *msg, const char *recipient)
{
	struct message view = *msg;

	view.recipient = recipient[0] ? (char *)recipient : NULL;
	view.n_meta = 0;
	return view;
}

static void
base_record(struct logrec *rec, const char *type, const struct reception_origin *origin)
{
	memset(rec, 0, sizeof(*rec));
	rec->type = type;
	rec->peer_address = origin->peer_address;
	rec->listener = origin->listener;
	rec->tls_version = origin->tls_version;
	rec->tls_cipher = origin->tls_cipher;
}

/* ---- bounces
 * ------------------------------------------------------------------------------------- */

/*
 * The reply the classifier reads: "code enhanced text", from what the report
 * gives; a report without a code gets the one its status class implies.
 */
static const char *
classify(struct shard *shard, const struct oob_recipient *r)
{
	int code = r->code ? r->code : r->status[0] == '4' ? 450 : 550;
	char reply[1400];
	int n = snprintf(reply, sizeof(reply), "%d %s %s", code, r->status, r->diagnostic);
	size_t len = n < 0 ? 0 : (size_t)n < sizeof(reply) ? (size_t)n : sizeof(reply) - 1;

	return config_classify(shard, reply, len, nonempty(r->remote_mta));
}

static void
write_oob(struct shard *shard, const struct message *msg, const struct oob_report *o,
	  const struct ref_check *c, const struct reception_origin *origin)
{
	struct logrec_report rep = {.reporting_mta = nonempty(o->reporting_mta),
				    .original_message_id = nonempty(o->original_message_id)};
	struct logrec rec;
	size_t i;

	link_original(&rep, c);
	for (i = 0; i < o->n_rcpts; i++) {
		const struct oob_recipient *r = &o->rcpts[i];
		struct message view = record_view(msg, r->address);

		base_record(&rec, "OOB", origin);
		rec.msg = &view;
		rec.report = &rep;
		rep.action = r->action;
		rec.response_code = r->code;
		rec.response_enhanced = nonempty(r->status);
		rec.response_content = r->diagnostic;
		rec.site = nonempty(r->remote_mta);
		rec.bounce_classification = classify(shard, r);
		logrec_write(&rec);
	}
}

/* ---- complaints
 * ---------------------------------------------------------------------------------- */

static void
complained_done(void *arg, lua_State *co, int status, int nres, const struct tern_err *err)
{
	if (status != CORO_OK)
		log_warn("report", "message_complained failed: %s", err ? err->msg : "?");
}

static void
call_complained(struct shard *shard, const struct logrec *rec)
{
	struct coro_ref ref;
	lua_State *co = policy_hook_begin(shard->policy, "message_complained", &ref);

	if (co == NULL)
		return;
	policy_hook_push_record(co, rec);
	policy_hook_start(shard->policy, &ref, "message_complained", 1, complained_done, NULL);
}

/*
 * A complaint about a copy tern sent (its X-Tern-Ref verified) suppresses
 * that recipient for that tenant, unless policy decides in
 * message_complained. An unlinked report names nobody for certain, and a
 * forged one must not suppress anyone: both are only recorded.
 */
static void
suppress_complainer(struct shard *shard, const struct ref_check *c, const char *feedback_type)
{
	struct suppress_entry e;
	struct tern_err err;

	if (c->status == NULL || strcmp(c->status, "verified") != 0 ||
	    (shard->policy != NULL && policy_has_hook(shard->policy, "message_complained")))
		return;
	if (suppress_entry_init(&e, c->ref.tenant, c->ref.recipient, &err) < 0) {
		log_warn("report", "complaint not suppressed: %s", err.msg);
		return;
	}
	snprintf(e.reason, sizeof(e.reason), "complaint: %s",
		 feedback_type && *feedback_type ? feedback_type : "abuse");
	snprintf(e.category, sizeof(e.category), "complaint");
	snprintf(e.source, sizeof(e.source), "%s", c->ref.id);
	if (suppress_add(&e, &err) < 0)
		log_ratelimited(LOG_LEVEL_ERROR, "report", "%s not suppressed: %s", e.address,
				err.msg);
}

static void
write_feedback(struct shard *shard, const struct message *msg, const struct arf_report *a,
	       const struct ref_check *c, const struct reception_origin *origin)
{
	struct logrec_report rep = {
	    .feedback_type = nonempty(a->feedback_type),
	    .user_agent = nonempty(a->user_agent),
	    .source_ip = nonempty(a->source_ip),
	    .arrival_date = nonempty(a->arrival_date),
	    .original_message_id = nonempty(a->original_message_id),
	};
	/* A verified ref names the recipient of the very copy complained about. */
	const char *rcpt =
	    c->status && strcmp(c->status, "verified") == 0 ? c->ref.recipient : a->original_rcpt;
	struct message view = record_view(msg, rcpt);
	struct logrec rec;

	link_original(&rep, c);
	base_record(&rec, "Feedback", origin);
	rec.msg = &view;
	rec.report = &rep;
	logrec_write(&rec);
	metrics_complaint(rec.egress_source);
	suppress_complainer(shard, c, a->feedback_type);
	call_complained(shard, &rec);
}

/*
 * What is read of a report: its own parts come first and are small, and a
 * report is parsed on the shard's loop, so a huge one (the bounce of a large
 * message, or one sent to stall us) is read no further than this.
 */
#define REPORT_READ_MAX (1024 * 1024)

/* Parsed once (GMime's parse is most of the cost), then read as each kind of report allowed. */
static bool
read_report(struct shard *shard, const struct message *msg, unsigned flags,
	    const struct reception_origin *origin)
{
	const char *data = msg->data.data ? msg->data.data : "";
	size_t len = msg->data.len < REPORT_READ_MAX ? msg->data.len : REPORT_READ_MAX;
	GMimeMessage *m = mime_parse_message(data, len);
	struct arf_report arf;
	struct oob_report oob;
	struct trace_config t;
	struct ref_check c;
	bool known = true;

	if (m == NULL)
		return false;
	config_trace(shard, &t);
	if ((flags & REPORT_INTAKE_ARF) && arf_read(m, &arf) == 1) {
		check_ref(&t, msg, arf.ref, &c);
		write_feedback(shard, msg, &arf, &c, origin);
	} else if ((flags & REPORT_INTAKE_OOB) && oob_read(m, data, len, &oob) == 1) {
		check_ref(&t, msg, oob.ref, &c);
		check_verp(&t, msg, &oob, &c);
		write_oob(shard, msg, &oob, &c, origin);
	} else {
		known = false;
	}
	g_object_unref(m);
	return known;
}

void
report_intake(struct shard *shard, const struct message *msg, unsigned flags,
	      const struct reception_origin *origin)
{
	char hex[SPOOL_ID_HEX_LEN + 1];

	if (!read_report(shard, msg, flags, origin)) {
		spool_id_to_hex(&msg->id, hex);
		log_info("report",
			 "message %s from <%s> to <%s> is neither a bounce nor a "
			 "feedback report; dropped",
			 hex, msg->sender, msg->recipient ? msg->recipient : "");
		return;
	}
	logrec_commit();
}
