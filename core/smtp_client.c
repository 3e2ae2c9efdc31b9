// SPDX-License-Identifier: MIT
/*
 * Outbound SMTP. A state machine over the shared io layer: one small
 * function per state and one io callback that switches on events
 * (OpenSMTPD's mta_session shape). Replies are assembled by smtp_proto
 * under fixed limits, so a hostile server costs at most one bounded reply.
 * Each command waits for its reply, except that MAIL, RCPT and DATA go out
 * together when the server offers PIPELINING; when it offers CHUNKING too,
 * MAIL, RCPT and one BDAT LAST with the whole body go out in one write
 * (RFC 3030), which saves the round trip to 354 and a write per message.
 */
#include "tern/smtp_client.h"
#include "tern/config.h"
#include "tern/io.h"
#include "tern/log.h"
#include "tern/logrec.h"
#include "tern/message.h"
#include "tern/metrics.h"
#include "tern/outcome.h"
#include "tern/queue.h"
#include "tern/shard.h"
#include "tern/smtp_proto.h"
#include "tern/tls.h"
#include "tern/trace_ref.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

enum client_state {
	CLIENT_CONNECTING,
	CLIENT_BANNER,
	CLIENT_EHLO,
	CLIENT_HELO,
	CLIENT_STARTTLS,
	CLIENT_TLS,
	CLIENT_IDLE,
	CLIENT_MAIL,
	CLIENT_RCPT,
	CLIENT_DATA,
	CLIENT_BODY,
	CLIENT_BDAT,
	CLIENT_RSET,
	CLIENT_QUIT,
};

struct smtp_client {
	const struct smtp_client_config *cfg;
	struct smtp_client_owner owner;
	struct ev_loop *loop;
	struct io *io;
	enum client_state state;
	size_t addr_index;
	char peer[64];
	bool tls_active;
	bool tls_verified; /* the peer's chain and name verified */
	bool tls_failed;
	bool unreachable;
	char last_error[160];  /* why the last address was left, for the final outcome */
	struct smtp_caps caps; /* from EHLO */
	int deliveries;
	/* the message in flight */
	struct queue_msg *qm;
	struct message *msg;
	enum client_state failed_at; /* the command whose refusal is the outcome */
	bool tx_failed;      /* MAIL or RCPT refused: DATA's reply is not the outcome */
	bool chunked;        /* this message goes as BDAT LAST with the envelope */
	struct smtp_reply failure;
	struct smtp_reply reply;
	/* Freed only when no callback is running: functions deep in a reply may end the client. */
	int busy;
	bool dead;
};

static void client_next_address(struct smtp_client *c, const char *why);
static void append_bdat(struct smtp_client *c, struct buf *out);
static void client_take(struct smtp_client *c);

/* ---- helpers ------------------------------------------------------------------------- */

static void
client_vappend(struct buf *out, const char *fmt, va_list ap)
{
	buf_vprintf(out, fmt, ap);
	buf_append(out, "\r\n", 2);
}

/* A command line onto out, to go out with others in one io_write. */
static void
client_append(struct buf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
client_append(struct buf *out, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	client_vappend(out, fmt, ap);
	va_end(ap);
}

static void
client_send(struct smtp_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
client_send(struct smtp_client *c, const char *fmt, ...)
{
	struct buf line;
	va_list ap;

	buf_init(&line);
	va_start(ap, fmt);
	client_vappend(&line, fmt, ap);
	va_end(ap);
	io_write(c->io, line.data, line.len);
	buf_deinit(&line);
}

static void
client_timeout(struct smtp_client *c, double secs)
{
	io_set_timeout(c->io, secs);
}

static const char *
command_of(enum client_state s)
{
	switch (s) {
	case CLIENT_MAIL: return "MAIL";
	case CLIENT_RCPT: return "RCPT";
	case CLIENT_DATA: return "DATA";
	case CLIENT_BODY: return ".";
	case CLIENT_BDAT: return "BDAT";
	default: return "connect";
	}
}

/* Fill a record with this connection's context and the reply r. */
static void
fill_record(struct smtp_client *c, struct logrec *rec, const struct smtp_reply *r,
	    const char *command)
{
	memset(rec, 0, sizeof(*rec));
	rec->site = c->cfg->route->site;
	rec->egress_pool = c->cfg->pool;
	rec->egress_source = c->cfg->source;
	rec->source_address = c->cfg->source_address_text;
	rec->peer_address = c->peer[0] ? c->peer : NULL;
	rec->response_code = r->code;
	rec->response_enhanced = r->enhanced[0] ? r->enhanced : NULL;
	rec->response_content = r->text.data ? r->text.data : "";
	rec->response_command = command;
	if (c->tls_active) {
		rec->tls_version = io_tls_version(c->io);
		rec->tls_cipher = io_tls_cipher(c->io);
		rec->tls_checked = true;
		rec->tls_verified = c->tls_verified;
	}
}

/*
 * Policy may turn a failure reply into another (smtp_client_rewrite_delivery_status):
 * into into, which the caller deinits. The record then shows the rewritten reply.
 */
static const struct smtp_reply *
rewrite_reply(struct smtp_client *c, const struct smtp_reply *r, struct smtp_reply *into)
{
	struct config_reply out;
	struct buf response;
	int rc;

	if (r->code < 400)
		return r;
	buf_init(&response);
	buf_printf(&response, "%d%s%s %s", r->code, r->enhanced[0] ? " " : "", r->enhanced,
		   r->text.data ? r->text.data : "");
	rc = config_rewrite_reply(shard_self(), response.data ? response.data : "",
				  queue_msg_domain(c->qm), queue_msg_tenant(c->qm),
				  queue_msg_campaign(c->qm), &out);
	buf_deinit(&response);
	if (rc != 1)
		return r;
	into->code = out.code;
	snprintf(into->enhanced, sizeof(into->enhanced), "%s", out.enhanced);
	buf_append_str(&into->text, out.text);
	return into;
}

/* Settle the message in flight by the reply's class. */
static void
settle(struct smtp_client *c, const struct smtp_reply *orig, const char *command)
{
	struct smtp_reply rewritten;
	const struct smtp_reply *r;
	struct logrec rec;
	struct queue_msg *qm = c->qm;
	struct message *msg = c->msg;

	if (qm == NULL)
		return;
	smtp_reply_init(&rewritten);
	r = rewrite_reply(c, orig, &rewritten);
	c->qm = NULL;
	c->msg = NULL;
	fill_record(c, &rec, r, command);
	if (r->code >= 200 && r->code < 300)
		outcome_delivered(qm, msg, &rec);
	else if (r->code >= 500)
		outcome_bounced(qm, msg, &rec);
	else
		outcome_transient(qm, msg, &rec);
	smtp_reply_deinit(&rewritten);
}

/* A local reason (no server reply): transient with the given text. */
static void
settle_local(struct smtp_client *c, int code, const char *enhanced, const char *text,
	     const char *command)
{
	struct smtp_reply r;

	smtp_reply_init(&r);
	r.code = code;
	snprintf(r.enhanced, sizeof(r.enhanced), "%s", enhanced);
	buf_append_str(&r.text, text);
	if (c->qm && c->msg == NULL && (c->msg = queue_load(c->qm, false)) == NULL)
		c->qm = NULL; /* queue_load logged and freed it */
	settle(c, &r, command);
	smtp_reply_deinit(&r);
}

static void
client_release(struct smtp_client *c)
{
	struct smtp_client_owner owner = c->owner;

	smtp_reply_deinit(&c->reply);
	smtp_reply_deinit(&c->failure);
	/* Before free: the owner drops c from its lists, and must not call into it. */
	owner.ended(owner.arg, c, c->tls_failed, c->unreachable);
	free(c);
}

static void
client_free(struct smtp_client *c)
{
	if (c->dead)
		return;
	c->dead = true;
	if (c->qm)
		settle_local(c, 451, "4.4.2", "connection lost", command_of(c->state));
	io_free(c->io);
	c->io = NULL;
	if (c->busy == 0)
		client_release(c);
}

static void
client_quit(struct smtp_client *c)
{
	c->state = CLIENT_QUIT;
	client_send(c, "QUIT");
	client_timeout(c, 5);
}

/* ---- states ------------------------------------------------------------------------------ */

static void
send_ehlo(struct smtp_client *c)
{
	c->state = CLIENT_EHLO;
	memset(&c->caps, 0, sizeof(c->caps));
	client_send(c, "EHLO %s", c->cfg->ehlo);
	client_timeout(c, c->cfg->ehlo_timeout);
}

static bool
tls_required(const struct smtp_client *c)
{
	return c->cfg->tls == SMTP_TLS_REQUIRED || c->cfg->tls == SMTP_TLS_REQUIRED_INSECURE;
}

static bool
want_tls(struct smtp_client *c)
{
	if (c->tls_active || c->cfg->tls == SMTP_TLS_DISABLED || c->cfg->tls_ctx == NULL)
		return false;
	return tls_required(c) || !c->cfg->skip_tls;
}

/* No reply to settle by: the next message fails for a local reason and the session ends. */
static void
refuse_session(struct smtp_client *c, const char *enhanced, const char *why)
{
	c->qm = c->owner.take(c->owner.arg, c);
	c->msg = NULL;
	settle_local(c, 451, enhanced, why, "STARTTLS");
	client_quit(c);
}

/*
 * Every session's certificate is checked so that records tell whether the
 * peer was verified; only 'required' acts on the answer.
 */
static void
tls_ready(struct smtp_client *c)
{
	const char *host = c->cfg->route->hops[c->addr_index].host;
	char why[256];

	c->tls_active = true;
	c->tls_verified = tls_verify_peer(io_ssl(c->io), host, c->cfg->tls_ca_file, why,
					  sizeof(why)) == 0;
	if (!c->tls_verified && c->cfg->tls == SMTP_TLS_REQUIRED) {
		char text[300];

		log_info("smtp_client", "%s: %s", c->peer, why);
		snprintf(text, sizeof(text), "TLS required by policy: %s", why);
		refuse_session(c, "4.7.5", text);
		return;
	}
	send_ehlo(c);
}

static void
after_ehlo(struct smtp_client *c)
{
	smtp_parse_capabilities(c->reply.text.data, c->reply.text.len, &c->caps);
	if (want_tls(c) && c->caps.starttls) {
		c->state = CLIENT_STARTTLS;
		client_send(c, "STARTTLS");
		client_timeout(c, c->cfg->ehlo_timeout);
		return;
	}
	if (tls_required(c) && !c->tls_active) {
		refuse_session(c, "4.7.4", "TLS required by policy but not offered by the server");
		return;
	}
	client_take(c);
}

/* Eight bytes a step, without an early exit: every attempt scans its whole body, nearly always ASCII. */
static bool
has_8bit(const struct buf *b)
{
	const unsigned char *p = (const unsigned char *)b->data;
	uint64_t word, seen = 0;
	size_t i = 0;

	for (; i + sizeof(word) <= b->len; i += sizeof(word)) {
		memcpy(&word, p + i, sizeof(word));
		seen |= word;
	}
	for (; i < b->len; i++)
		seen |= p[i];
	return (seen & 0x8080808080808080ull) != 0;
}

static bool
is_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s & 0x80)
			return false;
	return true;
}

/* Refuse what the server cannot take before sending anything. */
static bool
transportable(struct smtp_client *c, bool eightbit)
{
	bool utf8 = !is_ascii(c->msg->sender) || !is_ascii(c->msg->recipient);

	/* UTF-8 addresses first: their Received header makes the message 8-bit too. */
	if (utf8 && !c->caps.smtputf8) {
		settle_local(c, 553, "5.6.7", "UTF-8 address and the server does not offer SMTPUTF8", "MAIL");
		return false;
	}
	if (eightbit && !c->caps.eightbitmime) {
		settle_local(c, 554, "5.6.3", "message has 8-bit content and the server does not offer 8BITMIME", "MAIL");
		return false;
	}
	return true;
}

/*
 * The copy's return path: the message's sender, or with VERP (trace_ref.h)
 * the sender carrying a token for this copy's recipient, so that a bounce
 * that keeps nothing of the original still names it. A null sender, or one
 * whose local part cannot take the token, leaves as it is.
 */
static const char *
return_path(struct smtp_client *c, struct buf *verp)
{
	char id[SPOOL_ID_HEX_LEN + 1];
	struct trace_config t;

	config_trace(shard_self(), &t);
	if (!t.verp || c->msg->sender[0] == '\0' || c->msg->recipient == NULL)
		return c->msg->sender;
	spool_id_to_hex(&c->msg->id, id);
	if (trace_verp_sender(c->msg->sender, id, c->msg->recipient, t.secret, t.secret_len,
			      verp) < 0)
		return c->msg->sender;
	return verp->data;
}

/*
 * The pipelined group leaves in one io_write: the next message is often
 * taken outside the io's callbacks, where each write goes to the socket at
 * once, and three sends cost three trips through the peer's TCP stack.
 */
static void
send_envelope(struct smtp_client *c)
{
	bool eightbit = has_8bit(&c->msg->data);
	struct buf verp, cmds;

	if (!transportable(c, eightbit)) {
		client_take(c);
		return;
	}
	c->tx_failed = false;
	smtp_reply_reset(&c->failure);
	buf_init(&verp);
	buf_init(&cmds);
	client_append(&cmds, "MAIL FROM:<%s>%s%s", return_path(c, &verp),
		      eightbit ? " BODY=8BITMIME" : "",
		      !is_ascii(c->msg->sender) || !is_ascii(c->msg->recipient) ? " SMTPUTF8" : "");
	buf_deinit(&verp);
	c->chunked = c->caps.pipelining && c->caps.chunking;
	if (c->caps.pipelining)
		client_append(&cmds, "RCPT TO:<%s>", c->msg->recipient);
	if (c->chunked)
		append_bdat(c, &cmds);
	else if (c->caps.pipelining)
		client_append(&cmds, "DATA");
	io_write(c->io, cmds.data, cmds.len);
	buf_deinit(&cmds);
	c->state = CLIENT_MAIL;
	client_timeout(c, c->cfg->mail_timeout);
}

static void
client_take(struct smtp_client *c)
{
	if (c->cfg->max_deliveries > 0 && c->deliveries >= c->cfg->max_deliveries) {
		client_quit(c);
		return;
	}
	c->qm = c->owner.take(c->owner.arg, c);
	if (c->qm == NULL) {
		c->state = CLIENT_IDLE;
		client_timeout(c, c->cfg->idle_timeout);
		return;
	}
	c->msg = queue_load(c->qm, true);
	if (c->msg == NULL) {
		c->qm = NULL;
		client_take(c);
		return;
	}
	c->deliveries++;
	send_envelope(c);
}

/*
 * With a secret from policy, the X-Tern-Ref trace header first (trace_ref.h):
 * added here, as the message leaves, so that it names the recipient of this
 * very copy and never enters the spool; a DKIM signature made at reception
 * does not cover it, so it cannot break one.
 */
static void
add_trace_ref(struct smtp_client *c, struct buf *out)
{
	struct trace_ref ref = {.id = ""};
	struct trace_config t;
	struct buf v;

	config_trace(shard_self(), &t);
	if (t.secret_len == 0)
		return;
	spool_id_to_hex(&c->msg->id, ref.id);
	snprintf(ref.recipient, sizeof(ref.recipient), "%s", c->msg->recipient ? c->msg->recipient : "");
	buf_init(&v);
	if (message_meta_string(c->msg, "tenant", &v) == 0)
		snprintf(ref.tenant, sizeof(ref.tenant), "%s", v.data);
	buf_reset(&v);
	if (message_meta_string(c->msg, "campaign", &v) == 0)
		snprintf(ref.campaign, sizeof(ref.campaign), "%s", v.data);
	buf_reset(&v);
	if (trace_ref_format(&ref, t.secret, t.secret_len, &v) == 0)
		buf_printf(out, TRACE_REF_HEADER ": %s\r\n", v.data);
	buf_deinit(&v);
}

/* The body, dot-stuffed, always ending in CRLF, then the terminating dot. */
static void
send_body(struct smtp_client *c)
{
	const struct buf *d = &c->msg->data;
	const char *p = d->data, *end = d->data + d->len;
	struct buf out;

	buf_init(&out);
	buf_reserve(&out, d->len + d->len / 64 + 8);
	add_trace_ref(c, &out);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *stop = nl ? nl + 1 : end;

		if (*p == '.')
			buf_append_char(&out, '.');
		buf_append(&out, p, (size_t)(stop - p));
		p = stop;
	}
	if (out.len < 2 || out.data[out.len - 2] != '\r' || out.data[out.len - 1] != '\n')
		buf_append(&out, "\r\n", 2);
	buf_append(&out, ".\r\n", 3);
	io_write(c->io, out.data, out.len);
	buf_deinit(&out);
	c->state = CLIENT_BODY;
	client_timeout(c, c->cfg->data_timeout);
}

/* Whether head followed by body ends in CRLF. */
static bool
ends_in_crlf(const struct buf *head, const struct buf *body)
{
	size_t n = head->len + body->len, i;
	char last[2];

	if (n < 2)
		return false;
	for (i = 0; i < 2; i++) {
		size_t at = n - 2 + i;

		last[i] = at < head->len ? head->data[at] : body->data[at - head->len];
	}
	return last[0] == '\r' && last[1] == '\n';
}

/*
 * BDAT LAST with the whole message as its one chunk (trace header first,
 * ending in CRLF, not dot-stuffed), after the envelope in out: its size is
 * known before the bytes, so they are copied once.
 */
static void
append_bdat(struct smtp_client *c, struct buf *out)
{
	const struct buf *d = &c->msg->data;
	struct buf ref;
	bool crlf;

	buf_init(&ref);
	add_trace_ref(c, &ref);
	crlf = ends_in_crlf(&ref, d);
	client_append(out, "BDAT %zu LAST", ref.len + d->len + (crlf ? 0 : 2));
	buf_reserve(out, ref.len + d->len + 2);
	buf_append(out, ref.data, ref.len);
	buf_append(out, d->data, d->len);
	if (!crlf)
		buf_append(out, "\r\n", 2);
	buf_deinit(&ref);
}

/* ---- replies by state ------------------------------------------------------------------------ */

static void
on_banner(struct smtp_client *c)
{
	if (c->reply.code / 100 != 2) {
		client_next_address(c, "banner refused");
		return;
	}
	send_ehlo(c);
}

static void
on_ehlo(struct smtp_client *c)
{
	if (c->reply.code / 100 == 2) {
		after_ehlo(c);
	} else if (c->state == CLIENT_EHLO && c->reply.code / 100 == 5) {
		c->state = CLIENT_HELO;
		client_send(c, "HELO %s", c->cfg->ehlo);
	} else {
		client_next_address(c, "EHLO refused");
	}
}

static void
on_starttls(struct smtp_client *c)
{
	if (c->reply.code != 220) {
		if (tls_required(c)) {
			client_next_address(c, "STARTTLS refused");
			return;
		}
		client_take(c);
		return;
	}
	c->state = CLIENT_TLS;
	if (io_start_tls_client(c->io, c->cfg->tls_ctx, c->cfg->route->hops[c->addr_index].host) < 0)
		client_next_address(c, "TLS could not start");
}

/* One reply of the MAIL/RCPT/DATA (or BDAT) group. */
static void
on_envelope(struct smtp_client *c)
{
	bool ok = c->reply.code / 100 == 2 || (c->state == CLIENT_DATA && c->reply.code == 354);

	if (!ok && !c->tx_failed) {
		c->tx_failed = true;
		smtp_reply_copy(&c->failure, &c->reply);
		c->failed_at = c->state;
	}
	switch (c->state) {
	case CLIENT_MAIL:
		c->state = CLIENT_RCPT;
		client_timeout(c, c->cfg->rcpt_timeout);
		if (!c->caps.pipelining && !c->tx_failed)
			client_send(c, "RCPT TO:<%s>", c->msg->recipient);
		else if (!c->caps.pipelining)
			goto failed;
		return;
	case CLIENT_RCPT:
		c->state = c->chunked ? CLIENT_BDAT : CLIENT_DATA;
		client_timeout(c, c->cfg->data_timeout);
		if (!c->caps.pipelining && !c->tx_failed)
			client_send(c, "DATA");
		else if (!c->caps.pipelining)
			goto failed;
		return;
	case CLIENT_DATA:
		if (c->reply.code == 354 && !c->tx_failed) {
			send_body(c);
			return;
		}
		if (c->reply.code == 354) /* a server that accepted DATA anyway: send nothing */
			io_write(c->io, ".\r\n", 3);
		goto failed;
	case CLIENT_BDAT:
		/* The chunk went with the envelope: its reply ends the transaction. */
		if (!c->tx_failed || c->failed_at == CLIENT_BDAT) {
			settle(c, &c->reply, "BDAT");
			client_take(c);
			return;
		}
		goto failed;
	default:
		return;
	}
failed:
	settle(c, &c->failure, command_of(c->failed_at));
	c->state = CLIENT_RSET;
	client_send(c, "RSET");
}

static void
on_body(struct smtp_client *c)
{
	settle(c, &c->reply, ".");
	client_take(c);
}

static void
dispatch_reply(struct smtp_client *c)
{
	if (c->reply.code == 421 && c->state != CLIENT_QUIT) {
		if (c->qm)
			settle(c, &c->reply, command_of(c->state));
		if (c->state == CLIENT_BANNER || c->state == CLIENT_EHLO)
			client_next_address(c, "421 at greeting");
		else
			client_quit(c);
		return;
	}
	switch (c->state) {
	case CLIENT_BANNER: on_banner(c); break;
	case CLIENT_EHLO:
	case CLIENT_HELO: on_ehlo(c); break;
	case CLIENT_STARTTLS: on_starttls(c); break;
	case CLIENT_MAIL:
	case CLIENT_RCPT:
	case CLIENT_DATA:
	case CLIENT_BDAT: on_envelope(c); break;
	case CLIENT_BODY: on_body(c); break;
	case CLIENT_RSET: client_take(c); break;
	case CLIENT_QUIT: client_free(c); break;
	default: break;
	}
}

/*
 * The server broke the protocol or passed a reply limit: what it says next
 * cannot be trusted, so the connection ends here, as if it had dropped.
 */
static void
bad_reply(struct smtp_client *c, const char *cause)
{
	char why[sizeof(c->last_error)];

	snprintf(why, sizeof(why), "%s from mx %s", cause, c->peer);
	log_warn("smtp_client", "%s, closing the connection", why);
	if (c->state == CLIENT_QUIT || c->state == CLIENT_IDLE)
		client_free(c);
	else
		client_next_address(c, why);
}

/* Read complete replies (multi-line included) from the input. */
static void
read_replies(struct smtp_client *c)
{
	size_t len, used;
	const char *line;
	struct tern_err err;

	while (c->io && (line = io_getline(c->io, &len, &used)) != NULL) {
		enum smtp_reply_status st = smtp_reply_feed(&c->reply, line, len, &err);

		io_consume(c->io, used);
		if (st == SMTP_REPLY_ERROR) {
			bad_reply(c, err.msg);
			return;
		}
		if (st == SMTP_REPLY_MORE)
			continue;
		dispatch_reply(c);
		if (c->dead)
			return;
		smtp_reply_reset(&c->reply);
		if (c->state == CLIENT_CONNECTING || c->state == CLIENT_TLS)
			return;
	}
	/* A line's worth of bytes and no LF yet: whatever follows, the line is too long. */
	if (c->io && io_input(c->io)->len >= SMTP_REPLY_LINE_LIMIT)
		bad_reply(c, "reply line too long");
}

/* ---- connection -------------------------------------------------------------------------- */

static void client_io(struct io *io, enum io_event ev, void *arg);
static void client_event(struct smtp_client *c, struct io *io, enum io_event ev);

static socklen_t
sockaddr_len(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static void
client_connect(struct smtp_client *c)
{
	const struct egress_route *r = c->cfg->route;
	const struct sockaddr_storage *src = c->cfg->source_addr;
	struct tern_err err;
	char text[64 + sizeof(c->last_error)];

	while (c->addr_index < r->n_addrs) {
		const struct sockaddr_storage *dst = &r->hops[c->addr_index].addr;

		util_format_sockaddr((const struct sockaddr *)dst, c->peer, sizeof(c->peer));
		c->state = CLIENT_CONNECTING;
		c->tls_active = c->tls_verified = false;
		/* What the previous host left half-said must not start this host's reply. */
		smtp_reply_reset(&c->reply);
		metrics_inc(METRICS_CONNECTIONS_OUT);
		c->io = io_connect(c->loop, (const struct sockaddr *)dst, sockaddr_len(dst),
				   (const struct sockaddr *)src, src ? sockaddr_len(src) : 0, client_io,
				   c, &err);
		if (c->io != NULL) {
			/* Each reply has its whole timeout, however slowly a hostile MX trickles it. */
			io_set_reads_extend_timeout(c->io, false);
			client_timeout(c, c->cfg->connect_timeout);
			return;
		}
		log_warn("smtp_client", "%s", err.msg);
		c->addr_index++;
	}
	/* No address left: the message that would have gone first fails transiently. */
	c->qm = c->owner.take(c->owner.arg, c);
	c->msg = NULL;
	snprintf(text, sizeof(text), "no MX host of the site accepted a connection%s%s%s",
		 c->last_error[0] ? " (last: " : "", c->last_error, c->last_error[0] ? ")" : "");
	settle_local(c, 451, "4.4.1", text, "connect");
	c->unreachable = true;
	client_free(c);
}

static void
client_next_address(struct smtp_client *c, const char *why)
{
	log_debug("smtp_client", "%s: %s, trying the next address", c->peer, why);
	snprintf(c->last_error, sizeof(c->last_error), "%s", why);
	if (c->state == CLIENT_TLS && c->cfg->tls == SMTP_TLS_OPPORTUNISTIC)
		c->tls_failed = true;
	if (c->qm) {
		/* Mid-transaction: this message fails now; the connection does not move on. */
		settle_local(c, 451, "4.4.2", why, command_of(c->state));
		client_free(c);
		return;
	}
	io_free(c->io);
	c->io = NULL;
	if (c->tls_failed) {
		/* Opportunistic TLS broke: end here so the next connection goes without it. */
		c->dead = true;
		if (c->busy == 0)
			client_release(c);
		return;
	}
	c->addr_index++;
	client_connect(c);
}

static void
client_io(struct io *io, enum io_event ev, void *arg)
{
	struct smtp_client *c = arg;

	c->busy++;
	client_event(c, io, ev);
	if (--c->busy == 0 && c->dead)
		client_release(c);
}

struct smtp_client *
smtp_client_start(struct ev_loop *loop, const struct smtp_client_config *cfg,
		  const struct smtp_client_owner *owner)
{
	struct smtp_client *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->cfg = cfg;
	c->owner = *owner;
	c->loop = loop;
	smtp_reply_init(&c->reply);
	smtp_reply_init(&c->failure);
	c->busy = 1;
	client_connect(c);
	if (--c->busy == 0 && c->dead) {
		client_release(c);
		return NULL;
	}
	return c;
}

static void
client_event(struct smtp_client *c, struct io *io, enum io_event ev)
{
	switch (ev) {
	case IO_CONNECTED:
		c->state = CLIENT_BANNER;
		client_timeout(c, c->cfg->banner_timeout);
		break;
	case IO_TLSREADY:
		tls_ready(c);
		break;
	case IO_DATAIN:
		read_replies(c);
		break;
	case IO_LOWAT:
		break;
	case IO_TIMEOUT:
		if (c->state == CLIENT_IDLE)
			client_quit(c);
		else if (c->state == CLIENT_QUIT)
			client_free(c);
		else
			client_next_address(c, "timeout");
		break;
	case IO_DISCONNECTED:
	case IO_ERROR:
		if (c->state == CLIENT_QUIT || c->state == CLIENT_IDLE) {
			client_free(c);
			break;
		}
		client_next_address(c, ev == IO_ERROR ? io_error(io) : "connection closed");
		break;
	}
}

bool
smtp_client_idle(const struct smtp_client *c)
{
	return c->state == CLIENT_IDLE;
}

void
smtp_client_kick(struct smtp_client *c)
{
	if (c->state == CLIENT_IDLE)
		client_take(c);
}

void
smtp_client_abort(struct smtp_client *c)
{
	client_free(c);
}
