// SPDX-License-Identifier: MIT
/*
 * The ESMTP server. One session per connection, driven by io events; one
 * small function per command. Commands are taken from the input buffer one
 * line at a time while the session is in SESSION_CMD; a command that needs a
 * policy hook moves the session to SESSION_HOOK and pauses reading until the
 * hook returns, so pipelined commands are answered in order and their
 * replies leave together (io flushes once per loop iteration).
 *
 * The 250 after DATA is sent only from the reception completion, i.e. after
 * the spool's synced group commit.
 *
 * Deadlines, the error count and the AUTH tarpit are smtp_limits.c's: the
 * session asks it and answers the client.
 */
#include "tern/smtp_server.h"
#include "tern/coro.h"
#include "tern/daemon.h"
#include "tern/io.h"
#include "tern/log.h"
#include "tern/conn.h"
#include "tern/message.h"
#include "tern/metrics.h"
#include "tern/policy_hook.h"
#include "tern/proxy_proto.h"
#include "tern/reception.h"
#include "tern/report_intake.h"
#include "tern/shard.h"
#include "tern/smtp_limits.h"
#include "tern/smtp_proto.h"
#include "tern/spool.h"
#include "tern/suppress.h"
#include "tern/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>
#include <lauxlib.h>

enum session_state {
	SESSION_GREETING, /* connection hook running */
	SESSION_PROXY,	  /* waiting for a trusted balancer's PROXY header */
	SESSION_CMD,
	SESSION_HOOK,
	SESSION_DATA,
	SESSION_BDAT,
	SESSION_AUTH,     /* waiting for a SASL continuation line */
	SESSION_SPOOLING, /* waiting for the synced write */
	SESSION_TLS,
	SESSION_TARPIT,	 /* too many failed AUTHs: waiting out the delay before the 421 */
	SESSION_CLOSING, /* last reply queued; close once flushed */
};

struct session;
typedef void (*hook_then_fn)(struct session *s, lua_State *co, int status, int nres,
			     const struct tern_err *err);

struct session {
	struct listener_shard *ls;
	struct smtp_listener *l;
	struct io *io;
	struct session *prev, *next;
	enum session_state state;
	char id[24];
	struct sockaddr_storage peer;	  /* the client: a PROXY header's source replaces it */
	struct sockaddr_storage accepted; /* the socket's peer, which the listener counted */
	struct conn_info conn;
	bool esmtp;
	bool discard_line; /* dropping the rest of an over-long line */
	int n_messages;
	/* transaction */
	bool in_tx;
	char *sender;
	char **rcpts;
	size_t n_rcpts, cap_rcpts;
	/* Per recipient, what get_listener_domain marked its domain for (REPORT_INTAKE_*). */
	unsigned char *rcpt_intake;
	unsigned char pending_intake;
	bool smtputf8;
	struct smtp_data_reader reader;
	struct buf body;
	uint64_t bdat_left;
	bool bdat_last;
	bool bdat_failed; /* a chunk was refused: discard the rest of the transaction's chunks */
	bool bdat_prev_cr;
	bool bdat_bare;
	bool bdat_seen; /* RFC 3030: a transaction that used BDAT (or BINARYMIME) may not DATA */
	char pending_rcpt[SMTP_ADDR_MAX + 1];
	/* messages being built after the end of data */
	struct message *tx_msg;
	struct message **msgs;
	size_t n_msgs, next_hook_msg;
	uint16_t lane; /* the spool partition this transaction's messages go to */
	bool announced; /* this transaction's put is announced to the spool (spool_announce) */
	struct spool_id announced_id; /* of the transaction's first message: its partition's */
	struct reception *reception;
	struct buf queued_ids; /* " id1 id2 ..." for the 250 once the spool write is synced */
	/* hooks */
	struct coro_ref hook;
	bool hook_running;
	bool hook_sync; /* the hook completed inside coro_start */
	hook_then_fn hook_then;
	/* AUTH LOGIN */
	char auth_user[256];
	int auth_step;
	struct smtp_limits limits; /* against slow, brute-forcing and erring clients */
	bool holds_stop; /* shutdown's 421 is being flushed: the shard's stop waits for it */
};

static void read_proxy_header(struct session *s);

/* Per shard: the session id carries the shard number too. */
static __thread unsigned long session_counter;

/* ---- replies -------------------------------------------------------------------------- */

static void
session_reply(struct session *s, int code, const char *enhanced, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
session_reply(struct session *s, int code, const char *enhanced, const char *fmt, ...)
{
	struct buf text, out;
	va_list ap;

	buf_init(&text);
	buf_init(&out);
	va_start(ap, fmt);
	buf_vprintf(&text, fmt, ap);
	va_end(ap);
	if (smtp_format_reply(&out, code, enhanced, text.data ? text.data : "") == 0)
		io_write(s->io, out.data, out.len);
	io_release_output(s->io);
	buf_deinit(&text);
	buf_deinit(&out);
	/* Counted here, acted on between commands: see too_many_errors(). */
	smtp_limits_count_reply(&s->limits, code);
}

static void
session_reply_err(struct session *s, const struct tern_err *err)
{
	session_reply(s, err->code, err->enhanced, "%s", err->msg);
}

/* Reply and close once the reply is flushed. */
static void
session_close_with(struct session *s, int code, const char *enhanced, const char *text)
{
	s->state = SESSION_CLOSING;
	smtp_limits_stop(&s->limits);
	session_reply(s, code, enhanced, "%s", text);
	io_pause_read(s->io);
}

/* Reading resumes after a hook or a spool write, unless the session is on its way out. */
static void
session_resume_read(struct session *s)
{
	if (s->state != SESSION_CLOSING && s->state != SESSION_TARPIT)
		io_resume_read(s->io);
}

/* ---- session lifecycle ------------------------------------------------------------------ */

/* The spool's writer may wait for this transaction's put while its hooks run. */
static void
announce_put(struct session *s)
{
	struct spool *sp = reception_get_spool();

	if (sp == NULL)
		return;
	s->announced_id = s->tx_msg->id;
	spool_announce(sp, &s->announced_id);
	s->announced = true;
}

/* A spool already closed (a stopping daemon) took its count with it. */
static void
withdraw_put(struct session *s)
{
	struct spool *sp = reception_get_spool();

	if (!s->announced)
		return;
	s->announced = false;
	if (sp != NULL)
		spool_withdraw(sp, &s->announced_id);
}

static void
tx_reset(struct session *s)
{
	size_t i;

	withdraw_put(s);
	for (i = 0; i < s->n_rcpts; i++)
		free(s->rcpts[i]);
	s->n_rcpts = 0;
	free(s->sender); s->sender = NULL;
	s->in_tx = false;
	s->smtputf8 = false;
	s->bdat_failed = false;
	s->bdat_prev_cr = false;
	s->bdat_bare = false;
	s->bdat_seen = false;
	buf_reset(&s->body);
	message_free(s->tx_msg); s->tx_msg = NULL;
	for (i = 0; i < s->n_msgs; i++)
		message_free(s->msgs[i]);
	free(s->msgs); s->msgs = NULL;
	s->n_msgs = 0;
}

static void
session_free(struct session *s)
{
	struct listener_shard *ls = s->ls;

	if (s->hook_running)
		coro_cancel(&s->hook);
	smtp_limits_stop(&s->limits);
	if (s->reception) {
		reception_detach(s->reception);
		shard_busy_dec(ls->shard);
	}
	if (s->in_tx)
		shard_busy_dec(ls->shard);
	if (s->holds_stop)
		shard_busy_dec(ls->shard);
	tx_reset(s);
	free(s->rcpts);
	free(s->rcpt_intake);
	buf_deinit(&s->body);
	buf_deinit(&s->queued_ids);
	conn_info_deinit(&s->conn);
	io_free(s->io);
	if (s->prev)
		s->prev->next = s->next;
	else
		ls->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	smtp_listener_release(s->l, &s->accepted);
	log_debug("smtp_server", "session %s closed", s->id);
	free(s);
}

static void
tx_begin(struct session *s)
{
	s->in_tx = true;
	shard_busy_inc(s->ls->shard);
}

static void
tx_end(struct session *s)
{
	smtp_limits_deadline_stop(&s->limits, SMTP_LIMITS_DATA);
	if (s->in_tx)
		shard_busy_dec(s->ls->shard);
	tx_reset(s);
	if (s->ls->shard->stopping && s->state == SESSION_CMD)
		session_close_with(s, 421, "4.3.2", "Service shutting down");
}

/* ---- hooks ------------------------------------------------------------------------------ */

static void session_process(struct session *s);

static void
session_hook_done(void *arg, lua_State *co, int status, int nres, const struct tern_err *err)
{
	struct session *s = arg;
	/* Read before the continuation: it may start the next hook, which sets hook_sync anew. */
	bool was_sync = s->hook_sync;

	s->hook_running = false;
	s->hook_then(s, co, status, nres, err);
	if (!was_sync) {
		session_resume_read(s);
		session_process(s);
	}
}

/*
 * Call event with the arguments pushed by the caller on the returned state
 * (NULL: no handler, nothing to do). The continuation runs when it ends.
 */
static lua_State *
session_hook_begin(struct session *s, const char *event)
{
	return policy_hook_begin(s->ls->shard->policy, event, &s->hook);
}

static void
session_hook_start(struct session *s, const char *event, int nargs, hook_then_fn then)
{
	s->state = SESSION_HOOK;
	s->hook_then = then;
	s->hook_running = true;
	s->hook_sync = true;
	io_pause_read(s->io);
	policy_hook_start(s->ls->shard->policy, &s->hook, event, nargs, session_hook_done, s);
	if (s->hook_running)
		s->hook_sync = false;
	else
		session_resume_read(s);
}

/* A rejected or failed hook answers the client; true when the command may go on. */
static bool
hook_allows(struct session *s, int status, const struct tern_err *err)
{
	if (status == CORO_OK)
		return true;
	if (status == CORO_REJECTED)
		session_reply_err(s, err);
	else
		session_reply(s, 451, "4.3.0", "Temporary policy failure, try again later");
	return false;
}

static void
push_conn(lua_State *co, struct session *s)
{
	policy_hook_push_conn(co, &s->conn);
}

/* ---- greeting, EHLO ----------------------------------------------------------------------- */

static void
send_banner(struct session *s)
{
	session_reply(s, 220, NULL, "%s %s", s->l->cfg.hostname,
		      s->l->cfg.banner ? s->l->cfg.banner : "ESMTP tern");
}

static void
after_connection_hook(struct session *s, lua_State *co, int status, int nres,
		      const struct tern_err *err)
{
	if (status == CORO_OK) {
		s->state = SESSION_CMD;
		send_banner(s);
	} else if (status == CORO_REJECTED) {
		session_close_with(s, err->code, err->enhanced, err->msg);
	} else {
		session_close_with(s, 421, "4.3.0", "Temporary policy failure, try again later");
	}
}

static bool
tls_available(struct session *s)
{
	return s->l->tls != NULL && !io_is_tls(s->io);
}

static bool
auth_available(struct session *s)
{
	return io_is_tls(s->io) && policy_has_hook(s->ls->shard->policy, "smtp_server_auth_plain");
}

static void
send_ehlo_reply(struct session *s)
{
	struct buf caps;

	buf_init(&caps);
	buf_printf(&caps, "%s Hello %s [%s]\n", s->l->cfg.hostname, s->conn.ehlo,
		   s->conn.peer_address);
	buf_append_str(&caps, "PIPELINING\n");
	buf_printf(&caps, "SIZE %llu\n", (unsigned long long)s->l->cfg.max_message_size);
	buf_append_str(&caps, "8BITMIME\nSMTPUTF8\nCHUNKING\nENHANCEDSTATUSCODES\n");
	if (tls_available(s))
		buf_append_str(&caps, "STARTTLS\n");
	if (auth_available(s))
		buf_append_str(&caps, "AUTH PLAIN LOGIN\n");
	buf_append_str(&caps, "HELP");
	session_reply(s, 250, NULL, "%s", caps.data);
	buf_deinit(&caps);
}

static void
after_ehlo_hook(struct session *s, lua_State *co, int status, int nres, const struct tern_err *err)
{
	s->state = SESSION_CMD;
	if (!hook_allows(s, status, err)) {
		s->conn.ehlo[0] = '\0';
		return;
	}
	if (s->esmtp)
		send_ehlo_reply(s);
	else
		session_reply(s, 250, NULL, "%s Hello %s", s->l->cfg.hostname, s->conn.ehlo);
}

static void
cmd_ehlo(struct session *s, const struct smtp_cmd *cmd)
{
	lua_State *co;

	if (s->in_tx)
		tx_end(s);
	s->esmtp = cmd->verb == SMTP_VERB_EHLO;
	snprintf(s->conn.ehlo, sizeof(s->conn.ehlo), "%s", cmd->domain);
	co = session_hook_begin(s, "smtp_server_ehlo");
	if (co == NULL) {
		after_ehlo_hook(s, NULL, CORO_OK, 0, NULL);
		return;
	}
	lua_pushstring(co, cmd->domain);
	push_conn(co, s);
	session_hook_start(s, "smtp_server_ehlo", 2, after_ehlo_hook);
}

/* ---- MAIL, RCPT ----------------------------------------------------------------------------- */

static void
after_mail_hook(struct session *s, lua_State *co, int status, int nres, const struct tern_err *err)
{
	s->state = SESSION_CMD;
	if (!hook_allows(s, status, err)) {
		tx_end(s);
		return;
	}
	session_reply(s, 250, "2.1.0", "Sender OK");
}

static bool
mail_allowed(struct session *s, const struct smtp_cmd *cmd)
{
	const struct smtp_listener_config *c = &s->l->cfg;

	if (s->conn.ehlo[0] == '\0')
		session_reply(s, 503, "5.5.1", "Send EHLO or HELO first");
	else if (s->in_tx)
		session_reply(s, 503, "5.5.1", "Nested MAIL command");
	else if (c->require_tls && !io_is_tls(s->io))
		session_reply(s, 530, "5.7.0", "Must issue a STARTTLS command first");
	else if (c->max_messages_per_connection > 0 && s->n_messages >= c->max_messages_per_connection)
		session_close_with(s, 421, "4.7.0", "Too many messages for this connection");
	else if (cmd->has_size && cmd->size > c->max_message_size)
		session_reply(s, 552, "5.3.4", "Message size exceeds the limit of %llu bytes",
			      (unsigned long long)c->max_message_size);
	else
		return true;
	return false;
}

static void
cmd_mail(struct session *s, const struct smtp_cmd *cmd)
{
	lua_State *co;

	if (!mail_allowed(s, cmd))
		return;
	s->sender = strdup(cmd->addr);
	if (s->sender == NULL) {
		session_reply(s, 451, "4.3.0", "Out of memory");
		return;
	}
	tx_begin(s);
	s->smtputf8 = cmd->smtputf8;
	s->bdat_seen = cmd->body == SMTP_BODY_BINARYMIME;
	co = session_hook_begin(s, "smtp_server_mail_from");
	if (co == NULL) {
		after_mail_hook(s, NULL, CORO_OK, 0, NULL);
		return;
	}
	lua_pushstring(co, cmd->addr);
	push_conn(co, s);
	session_hook_start(s, "smtp_server_mail_from", 2, after_mail_hook);
}

static void
add_pending_rcpt(struct session *s)
{
	if (s->n_rcpts == s->cap_rcpts) {
		size_t cap = s->cap_rcpts ? s->cap_rcpts * 2 : 4;
		char **p = realloc(s->rcpts, cap * sizeof(*p));
		unsigned char *intake;

		if (p == NULL)
			goto nomem;
		s->rcpts = p;
		intake = realloc(s->rcpt_intake, cap);
		if (intake == NULL)
			goto nomem;
		s->rcpt_intake = intake;
		s->cap_rcpts = cap;
	}
	s->rcpt_intake[s->n_rcpts] = s->pending_intake;
	s->rcpts[s->n_rcpts] = strdup(s->pending_rcpt);
	if (s->rcpts[s->n_rcpts] == NULL)
		goto nomem;
	s->n_rcpts++;
	session_reply(s, 250, "2.1.5", "Recipient OK");
	return;
nomem:
	session_reply(s, 451, "4.3.0", "Out of memory");
}

/*
 * Policy chose to refuse suppressed recipients: refuse this one if it is
 * listed for the tenant the connection has by now (conn:set_meta('tenant')),
 * or for every tenant. Recipients whose tenant is set later are dropped at
 * reception instead.
 */
static bool
rcpt_suppressed(struct session *s)
{
	char text[SUPPRESS_TEXT_MAX];

	if (suppress_action() != SUPPRESS_REJECT ||
	    suppress_check(s->conn.tenant, s->pending_rcpt, NULL) != 1)
		return false;
	suppress_reject_text(text, sizeof(text));
	session_reply(s, 550, "5.7.1", "%s", text);
	return true;
}

static void
after_rcpt_hook(struct session *s, lua_State *co, int status, int nres, const struct tern_err *err)
{
	s->state = SESSION_CMD;
	if (hook_allows(s, status, err) && !rcpt_suppressed(s))
		add_pending_rcpt(s);
}

static void
run_rcpt_hook(struct session *s)
{
	lua_State *co = session_hook_begin(s, "smtp_server_rcpt_to");

	if (co == NULL) {
		after_rcpt_hook(s, NULL, CORO_OK, 0, NULL);
		return;
	}
	lua_pushstring(co, s->pending_rcpt);
	push_conn(co, s);
	session_hook_start(s, "smtp_server_rcpt_to", 2, after_rcpt_hook);
}

/* A table answer { oob = true, arf = true }: the domain's messages are reports to read. */
static unsigned char
intake_flags(lua_State *co, int idx)
{
	unsigned char flags = 0;

	if (!lua_istable(co, idx))
		return 0;
	lua_getfield(co, idx, "oob");
	flags |= lua_toboolean(co, -1) ? REPORT_INTAKE_OOB : 0;
	lua_getfield(co, idx, "arf");
	flags |= lua_toboolean(co, -1) ? REPORT_INTAKE_ARF : 0;
	lua_pop(co, 2);
	return flags;
}

static void
after_listener_domain_hook(struct session *s, lua_State *co, int status, int nres,
			   const struct tern_err *err)
{
	s->state = SESSION_CMD;
	if (!hook_allows(s, status, err))
		return;
	if (nres < 1 || !lua_toboolean(co, -nres)) {
		session_reply(s, 550, "5.7.1", "Relaying denied");
		return;
	}
	s->pending_intake = intake_flags(co, lua_gettop(co) - nres + 1);
	run_rcpt_hook(s);
}

/* The recipient's domain in lower case, as policy tables key domains. */
static void
rcpt_domain(const char *addr, char *out, size_t n)
{
	const char *at = strrchr(addr, '@');
	size_t i;

	snprintf(out, n, "%s", at ? at + 1 : "");
	for (i = 0; out[i]; i++)
		if (out[i] >= 'A' && out[i] <= 'Z')
			out[i] = (char)(out[i] - 'A' + 'a');
}

static bool
relay_allowed(struct session *s)
{
	return s->conn.auth_id[0] != '\0' ||
	       cidr_match_any(s->l->cfg.relay_hosts, s->l->cfg.n_relay_hosts,
			      (struct sockaddr *)&s->peer);
}

static void
cmd_rcpt(struct session *s, const struct smtp_cmd *cmd)
{
	char domain[256];
	lua_State *co;

	if (!s->in_tx) {
		session_reply(s, 503, "5.5.1", "Send MAIL first");
		return;
	}
	if ((int)s->n_rcpts >= s->l->cfg.max_recipients) {
		session_reply(s, 452, "4.5.3", "Too many recipients");
		return;
	}
	/*
	 * RFC 5321 4.5.1: <postmaster> without a domain must be accepted from
	 * anyone (the parser lets no other address go without one); it is this
	 * host's postmaster.
	 */
	if (strchr(cmd->addr, '@') == NULL) {
		s->pending_intake = 0;
		snprintf(s->pending_rcpt, sizeof(s->pending_rcpt), "postmaster@%s",
			 s->l->cfg.hostname);
		run_rcpt_hook(s);
		return;
	}
	snprintf(s->pending_rcpt, sizeof(s->pending_rcpt), "%s", cmd->addr);
	s->pending_intake = 0;
	if (relay_allowed(s)) {
		run_rcpt_hook(s);
		return;
	}
	co = session_hook_begin(s, "get_listener_domain");
	if (co == NULL) {
		session_reply(s, 550, "5.7.1", "Relaying denied");
		return;
	}
	rcpt_domain(cmd->addr, domain, sizeof(domain));
	lua_pushstring(co, domain);
	lua_pushstring(co, s->l->cfg.listen);
	push_conn(co, s);
	session_hook_start(s, "get_listener_domain", 3, after_listener_domain_hook);
}

/* ---- end of data: build, hooks, spool -------------------------------------------------------- */

static void run_message_hooks(struct session *s);

static void
after_spool(void *arg, int status, const struct tern_err *err)
{
	struct session *s = arg;

	s->reception = NULL;
	shard_busy_dec(s->ls->shard);
	s->state = SESSION_CMD;
	if (status < 0) {
		session_reply_err(s, err);
	} else {
		s->n_messages++;
		session_reply(s, 250, "2.0.0", "OK queued as%s", s->queued_ids.data);
	}
	tx_end(s);
	session_resume_read(s);
	session_process(s);
}

/* Where the session's messages come from, for their records. */
static struct reception_origin
session_origin(const struct session *s)
{
	return (struct reception_origin){
		.peer_address = s->conn.peer_address,
		.listener = s->l->cfg.listen,
		.tls_version = s->conn.tls_version,
		.tls_cipher = s->conn.tls_cipher,
	};
}

static void
spool_messages(struct session *s)
{
	struct reception_origin origin = session_origin(s);
	struct message **msgs = s->msgs;
	size_t n = s->n_msgs, i;
	struct tern_err err;

	/* The reply names every id; the messages themselves go to the reception. */
	buf_reset(&s->queued_ids);
	for (i = 0; i < n; i++) {
		char hex[SPOOL_ID_HEX_LEN + 1];

		/* Ten ids a line, so that no reply line is ever wrapped inside an id. */
		spool_id_to_hex(&msgs[i]->id, hex);
		buf_printf(&s->queued_ids, "%s%s", i == 0 ? " " : i % 10 == 0 ? "\n" : " ", hex);
	}
	s->msgs = NULL;
	s->n_msgs = 0;
	s->state = SESSION_SPOOLING;
	withdraw_put(s);
	io_pause_read(s->io);
	shard_busy_inc(s->ls->shard);
	s->reception = reception_submit(s->ls->shard, msgs, n, &origin, after_spool, s, &err);
	if (s->reception == NULL) {
		/* reception_submit freed the messages */
		shard_busy_dec(s->ls->shard);
		s->state = SESSION_CMD;
		io_resume_read(s->io);
		session_reply_err(s, &err);
		tx_end(s);
	}
}

static void
after_message_hook(struct session *s, lua_State *co, int status, int nres,
		   const struct tern_err *err)
{
	s->state = SESSION_CMD;
	if (!hook_allows(s, status, err)) {
		tx_end(s);
		return;
	}
	s->next_hook_msg++;
	run_message_hooks(s);
}

/* smtp_server_message_received for each message in turn, then the spool. */
static void
run_message_hooks(struct session *s)
{
	while (s->next_hook_msg < s->n_msgs) {
		struct message *m = s->msgs[s->next_hook_msg];
		lua_State *co = session_hook_begin(s, "smtp_server_message_received");

		if (co == NULL)
			break;
		policy_hook_push_message(co, m);
		push_conn(co, s);
		session_hook_start(s, "smtp_server_message_received", 2, after_message_hook);
		return;
	}
	spool_messages(s);
}

/* One message per recipient: the transaction message becomes the first. */
static int
split_by_recipient(struct session *s)
{
	size_t i;

	s->msgs = calloc(s->n_rcpts, sizeof(*s->msgs));
	if (s->msgs == NULL)
		return -ENOMEM;
	for (i = 1; i < s->n_rcpts; i++) {
		s->msgs[i] = message_clone(s->tx_msg, s->rcpts[i]);
		if (s->msgs[i] == NULL)
			return -ENOMEM;
		s->n_msgs = i + 1;
		/* One lane for the whole transaction: its messages are one synced write. */
		spool_make_id(&s->msgs[i]->id, 0, s->lane);
	}
	s->msgs[0] = s->tx_msg;
	s->tx_msg = NULL;
	s->n_msgs = s->n_rcpts;
	return 0;
}

/*
 * Messages for report domains are read here (report_intake.c) and leave the
 * transaction; the rest go on to be relayed. false when none is left, the
 * transaction answered.
 */
static bool
take_reports(struct session *s)
{
	struct reception_origin origin = session_origin(s);
	size_t i, kept = 0;

	for (i = 0; i < s->n_msgs; i++) {
		if (s->rcpt_intake[i] == 0) {
			s->msgs[kept++] = s->msgs[i];
			continue;
		}
		report_intake(s->ls->shard, s->msgs[i], s->rcpt_intake[i], &origin);
		message_free(s->msgs[i]);
	}
	s->n_msgs = kept;
	if (kept > 0)
		return true;
	s->n_messages++;
	session_reply(s, 250, "2.0.0", "OK report received");
	tx_end(s);
	return false;
}

static void
after_data_hook(struct session *s, lua_State *co, int status, int nres, const struct tern_err *err)
{
	s->state = SESSION_CMD;
	if (!hook_allows(s, status, err)) {
		tx_end(s);
		return;
	}
	if (split_by_recipient(s) < 0) {
		session_reply(s, 451, "4.3.0", "Out of memory");
		tx_end(s);
		return;
	}
	if (!take_reports(s))
		return;
	s->next_hook_msg = 0;
	run_message_hooks(s);
}

static int
add_received_header(struct session *s, struct message *m)
{
	char date[32], hex[SPOOL_ID_HEX_LEN + 1];
	const char *const parts[] = {
		"from ", s->conn.ehlo, " ([", s->conn.peer_address, "])\n by ", s->l->cfg.hostname,
		" (tern) with ", s->smtputf8 ? "UTF8" : "", s->esmtp ? "ESMTP" : "SMTP",
		io_is_tls(s->io) ? (s->conn.auth_id[0] ? "SA" : "S") : (s->conn.auth_id[0] ? "A" : ""),
		"\n id ", hex, s->n_rcpts == 1 ? "\n for <" : "", s->n_rcpts == 1 ? s->rcpts[0] : "",
		s->n_rcpts == 1 ? ">" : "", ";\n ", date};
	struct buf v;
	size_t i;
	int rc = 0;

	/* One per received message: appended, not formatted. */
	util_format_mail_date(util_wallclock(), date);
	spool_id_to_hex(&m->id, hex);
	buf_init(&v);
	for (i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
		rc |= buf_append_str(&v, parts[i]);
	if (rc == 0)
		rc = message_prepend_header(m, "Received", v.data);
	buf_deinit(&v);
	return rc < 0 ? -ENOMEM : rc;
}

/* Transactions take turns over the spool's partitions. */
static uint16_t
next_lane(struct shard *shard)
{
	static __thread uint16_t turn;

	return (uint16_t)(shard->id + turn++);
}

static int
build_tx_message(struct session *s)
{
	struct message *m = message_new(s->sender, s->rcpts[0]);

	if (m == NULL)
		return -ENOMEM;
	s->lane = next_lane(s->ls->shard);
	spool_make_id(&m->id, 0, s->lane);
	m->created = util_wallclock();
	/* Hand the body over instead of copying it. */
	m->data = s->body;
	buf_init(&s->body);
	s->tx_msg = m;
	return add_received_header(s, m);
}

static void
end_of_data(struct session *s)
{
	lua_State *co;

	if (build_tx_message(s) < 0) {
		session_reply(s, 451, "4.3.0", "Out of memory");
		tx_end(s);
		return;
	}
	announce_put(s);
	/*
	 * A client that pipelined MAIL, RCPT and BDAT LAST with its body waits
	 * for every reply: the ones still queued go with the final one, in one
	 * send, as the next reply releases them.
	 */
	io_hold_output(s->io);
	co = session_hook_begin(s, "smtp_server_data");
	if (co == NULL) {
		after_data_hook(s, NULL, CORO_OK, 0, NULL);
		return;
	}
	policy_hook_push_message(co, s->tx_msg);
	push_conn(co, s);
	session_hook_start(s, "smtp_server_data", 2, after_data_hook);
}

/* ---- DATA and BDAT ------------------------------------------------------------------------------ */

static bool
data_allowed(struct session *s)
{
	if (!s->in_tx) {
		session_reply(s, 503, "5.5.1", "Send MAIL first");
		return false;
	}
	if (s->n_rcpts == 0) {
		session_reply(s, 554, "5.5.1", "No valid recipients");
		return false;
	}
	return true;
}

static void
cmd_data(struct session *s, const struct smtp_cmd *cmd)
{
	if (s->in_tx && s->bdat_seen) {
		session_reply(s, 503, "5.5.1", "DATA not allowed after BDAT or with BINARYMIME");
		return;
	}
	if (!data_allowed(s))
		return;
	smtp_data_reader_init(&s->reader, s->l->cfg.max_message_size, s->l->cfg.fix_line_endings);
	buf_reset(&s->body);
	s->state = SESSION_DATA;
	smtp_limits_deadline_start(&s->limits, SMTP_LIMITS_DATA);
	session_reply(s, 354, NULL, "Start mail input; end with <CRLF>.<CRLF>");
}

/* long_lines = 'wrap': the message the hooks see (and DKIM signs) has no over-long line. */
static int
wrap_body(struct session *s)
{
	struct buf wrapped;

	buf_init(&wrapped);
	if (smtp_wrap_long_lines(s->body.data, s->body.len, &wrapped) < 0) {
		buf_deinit(&wrapped);
		return -ENOMEM;
	}
	buf_deinit(&s->body);
	s->body = wrapped;
	return 0;
}

/*
 * NUL bytes and over-long lines are refused after the end of data (554
 * 5.6.0), never spooled: strict receivers bounce them, so relaying them only
 * turns a rejection now into a bounce later.
 */
static bool
content_refused(struct session *s)
{
	int flaws = smtp_content_flaws(s->body.data, s->body.len);
	enum smtp_long_lines mode = s->l->cfg.long_lines;

	if (flaws & SMTP_CONTENT_NUL)
		session_reply(s, 554, "5.6.0", "NUL bytes in message data are not allowed");
	else if ((flaws & SMTP_CONTENT_LONG_LINE) && mode == SMTP_LONG_LINES_REJECT)
		session_reply(s, 554, "5.6.0", "Message lines over %d octets are not allowed",
			      SMTP_TEXT_LINE_MAX);
	else if ((flaws & SMTP_CONTENT_LONG_LINE) && mode == SMTP_LONG_LINES_WRAP &&
		 wrap_body(s) < 0)
		session_reply(s, 451, "4.3.0", "Out of memory");
	else
		return false;
	tx_end(s);
	return true;
}

static void
finish_data(struct session *s)
{
	s->state = SESSION_CMD;
	smtp_limits_deadline_stop(&s->limits, SMTP_LIMITS_DATA);
	if (smtp_data_bad_line_ending(&s->reader)) {
		session_reply(s, 550, "5.6.11", "Bare CR or LF in message data is not allowed");
		tx_end(s);
	} else if (smtp_data_too_big(&s->reader)) {
		session_reply(s, 552, "5.3.4", "Message size exceeds the limit of %llu bytes",
			      (unsigned long long)s->l->cfg.max_message_size);
		tx_end(s);
	} else if (smtp_data_nomem(&s->reader)) {
		session_reply(s, 451, "4.3.0", "Out of memory");
		tx_end(s);
	} else if (!content_refused(s)) {
		end_of_data(s);
	}
}

static void
feed_data(struct session *s)
{
	struct buf *in = io_input(s->io);
	size_t used = 0;
	enum smtp_data_status st;

	st = smtp_data_feed(&s->reader, in->data, in->len, &s->body, &used);
	io_consume(s->io, used);
	if (st == SMTP_DATA_DONE)
		finish_data(s);
}

/* Written so that a chunk size near UINT64_MAX cannot wrap the sum. */
static bool
bdat_too_big(struct session *s, uint64_t chunk_size)
{
	uint64_t max = s->l->cfg.max_message_size;

	return s->body.len > max || chunk_size > max - s->body.len;
}

static void
cmd_bdat(struct session *s, const struct smtp_cmd *cmd)
{
	s->bdat_left = cmd->chunk_size;
	s->bdat_last = cmd->last;
	s->bdat_seen = s->in_tx;
	/* From the first chunk to the last: a client dribbling many small chunks gains nothing. */
	smtp_limits_deadline_start(&s->limits, SMTP_LIMITS_DATA);
	if (!s->bdat_failed && !data_allowed(s))
		s->bdat_failed = true;
	else if (!s->bdat_failed && bdat_too_big(s, cmd->chunk_size)) {
		session_reply(s, 552, "5.3.4", "Message size exceeds the limit of %llu bytes",
			      (unsigned long long)s->l->cfg.max_message_size);
		s->bdat_failed = true;
	} else if (s->bdat_failed) {
		session_reply(s, 503, "5.5.1", "Previous BDAT failed; send RSET");
	}
	s->state = SESSION_BDAT;
}

/* Fix mode: bare CR or LF become CRLF. */
static int
append_normalised(struct buf *out, const char *p, size_t n, bool *prev_cr)
{
	size_t i;
	int rc = 0;

	for (i = 0; i < n && rc == 0; i++) {
		char c = p[i];

		if (*prev_cr && c != '\n')
			rc = buf_append_char(out, '\n');
		if (c == '\n' && !*prev_cr)
			rc |= buf_append_char(out, '\r');
		rc |= buf_append_char(out, c);
		*prev_cr = c == '\r';
	}
	return rc;
}

static int
bdat_take(struct session *s, const char *p, size_t n)
{
	if (s->bdat_failed)
		return 0;
	if (s->l->cfg.fix_line_endings)
		return append_normalised(&s->body, p, n, &s->bdat_prev_cr);
	if (smtp_has_bare_line_ending(p, n, &s->bdat_prev_cr))
		s->bdat_bare = true;
	return buf_append(&s->body, p, n);
}

static void
finish_bdat_chunk(struct session *s)
{
	s->state = SESSION_CMD;
	if (s->bdat_last)
		smtp_limits_deadline_stop(&s->limits, SMTP_LIMITS_DATA);
	if (s->bdat_failed) {
		/* Outside a transaction there is nothing for the failure to spoil. */
		if (s->bdat_last || !s->in_tx)
			tx_end(s);
		return;
	}
	if (!s->bdat_last) {
		session_reply(s, 250, "2.0.0", "%zu octets received", s->body.len);
		return;
	}
	if (s->l->cfg.fix_line_endings && s->bdat_prev_cr)
		buf_append_char(&s->body, '\n');
	if (s->bdat_bare || (!s->l->cfg.fix_line_endings && s->bdat_prev_cr)) {
		session_reply(s, 550, "5.6.11", "Bare CR or LF in message data is not allowed");
		tx_end(s);
		return;
	}
	if (!content_refused(s))
		end_of_data(s);
}

static void
feed_bdat(struct session *s)
{
	struct buf *in = io_input(s->io);
	size_t n = in->len < s->bdat_left ? in->len : (size_t)s->bdat_left;

	if (n > 0 && bdat_take(s, in->data, n) < 0) {
		session_reply(s, 451, "4.3.0", "Out of memory");
		s->bdat_failed = true;
	}
	io_consume(s->io, n);
	s->bdat_left -= n;
	if (s->bdat_left == 0)
		finish_bdat_chunk(s);
}

/* ---- STARTTLS, AUTH -------------------------------------------------------------------------- */

static void
cmd_starttls(struct session *s, const struct smtp_cmd *cmd)
{
	SSL_CTX *ctx;
	int rc;

	if (io_is_tls(s->io)) {
		session_reply(s, 503, "5.5.1", "TLS already active");
		return;
	}
	if (s->l->tls == NULL) {
		session_reply(s, 502, "5.5.1", "STARTTLS not available");
		return;
	}
	session_reply(s, 220, "2.0.0", "Ready to start TLS");
	/* RFC 3207: anything the client pipelined after STARTTLS is discarded. */
	io_consume(s->io, io_input(s->io)->len);
	s->state = SESSION_TLS;
	/* The certificate of this moment: a reload later does not touch this session. */
	ctx = tls_server_get(s->l->tls);
	rc = io_start_tls_server(s->io, ctx);
	SSL_CTX_free(ctx);
	if (rc < 0) {
		session_close_with(s, 454, "4.7.0", "TLS not available due to temporary reason");
		return;
	}
	/* A handshake dribbled a byte at a time is a slow command line too. */
	smtp_limits_deadline_start(&s->limits, SMTP_LIMITS_COMMAND);
}

static void
tls_ready(struct session *s)
{
	/* RFC 3207: the session starts over, as if newly connected. */
	smtp_limits_deadline_stop(&s->limits, SMTP_LIMITS_COMMAND);
	tx_end(s);
	s->conn.ehlo[0] = '\0';
	s->esmtp = false;
	s->conn.tls_version = io_tls_version(s->io);
	s->conn.tls_cipher = io_tls_cipher(s->io);
	s->state = SESSION_CMD;
}

/* Past max_auth_failures: wait out the tarpit, then 421 (session_limit_expired). */
static void
auth_failed(struct session *s)
{
	if (!smtp_limits_auth_failed(&s->limits, &s->peer, s->conn.peer_address)) {
		session_reply(s, 535, "5.7.8", "Authentication credentials invalid");
		return;
	}
	s->state = SESSION_TARPIT;
	io_pause_read(s->io);
}

static void
after_auth_hook(struct session *s, lua_State *co, int status, int nres, const struct tern_err *err)
{
	s->state = SESSION_CMD;
	if (!hook_allows(s, status, err)) {
		s->auth_user[0] = '\0';
		return;
	}
	if (nres >= 1 && lua_toboolean(co, -nres)) {
		snprintf(s->conn.auth_id, sizeof(s->conn.auth_id), "%s", s->auth_user);
		session_reply(s, 235, "2.7.0", "Authentication successful");
	} else {
		auth_failed(s);
	}
}

static void
run_auth_hook(struct session *s, const char *authz, const char *authc, const char *password)
{
	lua_State *co = session_hook_begin(s, "smtp_server_auth_plain");

	if (co == NULL) {
		session_reply(s, 535, "5.7.8", "Authentication credentials invalid");
		return;
	}
	snprintf(s->auth_user, sizeof(s->auth_user), "%s", authc);
	lua_pushstring(co, authz);
	lua_pushstring(co, authc);
	lua_pushstring(co, password);
	push_conn(co, s);
	session_hook_start(s, "smtp_server_auth_plain", 4, after_auth_hook);
}

/* Decode base64 into out (NUL-terminated); -1 when malformed. */
static void
auth_plain_response(struct session *s, const char *b64, size_t n)
{
	struct smtp_auth_plain plain;
	struct tern_err err;
	char raw[1024];

	if (smtp_auth_plain_decode(b64, n, raw, sizeof(raw), &plain, &err) < 0) {
		session_reply_err(s, &err);
		return;
	}
	run_auth_hook(s, plain.authz, plain.authc, plain.password);
}

static void
auth_login_response(struct session *s, const char *b64, size_t n)
{
	struct tern_err err;
	char raw[256];

	if (smtp_auth_login_decode(b64, n, raw, sizeof(raw), &err) < 0) {
		session_reply_err(s, &err);
		return;
	}
	if (s->auth_step == 1) {
		snprintf(s->auth_user, sizeof(s->auth_user), "%s", raw);
		s->auth_step = 2;
		s->state = SESSION_AUTH;
		session_reply(s, 334, NULL, "UGFzc3dvcmQ6");
		return;
	}
	{
		char user[256];

		snprintf(user, sizeof(user), "%s", s->auth_user);
		run_auth_hook(s, "", user, raw);
	}
}

/* A SASL continuation line ("*" cancels). */
static void
auth_continue(struct session *s, const char *line, size_t len)
{
	s->state = SESSION_CMD;
	if (len == 1 && line[0] == '*') {
		session_reply(s, 501, "5.0.0", "Authentication cancelled");
		return;
	}
	if (s->auth_step == 0)
		auth_plain_response(s, line, len);
	else
		auth_login_response(s, line, len);
}

static void
cmd_auth(struct session *s, const struct smtp_cmd *cmd)
{
	if (!io_is_tls(s->io)) {
		session_reply(s, 530, "5.7.0", "Must issue a STARTTLS command first");
	} else if (!auth_available(s)) {
		session_reply(s, 502, "5.5.1", "AUTH not available");
	} else if (s->conn.auth_id[0] || s->in_tx) {
		session_reply(s, 503, "5.5.1", "AUTH not allowed now");
	} else if (smtp_limits_auth_penalised(&s->limits, &s->peer, s->conn.peer_address)) {
		log_warn("smtp_server", "AUTH refused: too many failures from this address");
		session_close_with(s, 421, "4.7.0",
				   "Too many failed authentications from your address, try later");
	} else if (strcmp(cmd->mechanism, "PLAIN") == 0) {
		s->auth_step = 0;
		if (cmd->initial_response[0])
			auth_continue(s, cmd->initial_response, strlen(cmd->initial_response));
		else {
			s->state = SESSION_AUTH;
			session_reply(s, 334, NULL, " ");
		}
	} else if (strcmp(cmd->mechanism, "LOGIN") == 0) {
		s->auth_step = 1;
		if (cmd->initial_response[0])
			auth_continue(s, cmd->initial_response, strlen(cmd->initial_response));
		else {
			s->state = SESSION_AUTH;
			session_reply(s, 334, NULL, "VXNlcm5hbWU6");
		}
	} else {
		session_reply(s, 504, "5.5.4", "Unrecognized authentication type");
	}
}

/* ---- command dispatch ------------------------------------------------------------------------- */

static void
dispatch(struct session *s, const struct smtp_cmd *cmd)
{
	switch (cmd->verb) {
	case SMTP_VERB_HELO:
	case SMTP_VERB_EHLO: cmd_ehlo(s, cmd); break;
	case SMTP_VERB_MAIL: cmd_mail(s, cmd); break;
	case SMTP_VERB_RCPT: cmd_rcpt(s, cmd); break;
	case SMTP_VERB_DATA: cmd_data(s, cmd); break;
	case SMTP_VERB_BDAT: cmd_bdat(s, cmd); break;
	case SMTP_VERB_RSET:
		tx_end(s);
		session_reply(s, 250, "2.0.0", "OK");
		break;
	case SMTP_VERB_NOOP: session_reply(s, 250, "2.0.0", "OK"); break;
	case SMTP_VERB_QUIT: session_close_with(s, 221, "2.0.0", "Bye"); break;
	case SMTP_VERB_VRFY:
		session_reply(s, 252, "2.5.0", "Cannot VRFY user, but will accept message");
		break;
	case SMTP_VERB_HELP:
		session_reply(s, 214, "2.0.0", "See RFC 5321; commands: EHLO HELO MAIL RCPT DATA BDAT "
					       "RSET NOOP QUIT VRFY HELP STARTTLS AUTH");
		break;
	case SMTP_VERB_STARTTLS: cmd_starttls(s, cmd); break;
	case SMTP_VERB_AUTH: cmd_auth(s, cmd); break;
	case SMTP_VERB_UNKNOWN: session_reply(s, 500, "5.5.1", "Command unrecognized"); break;
	}
}

static void
handle_line(struct session *s, const char *line, size_t len)
{
	struct smtp_cmd cmd;
	struct tern_err err;

	if (s->state == SESSION_AUTH) {
		auth_continue(s, line, len);
		return;
	}
	if (s->l->cfg.proxy_protocol && len >= 6 && memcmp(line, "PROXY ", 6) == 0) {
		/* Only a trusted peer's header is read; from anyone else it is a forged address. */
		log_info("smtp_server", "PROXY header from %s, not a trusted peer: closed",
			 s->conn.peer_address);
		session_close_with(s, 421, "4.7.0", "Not a trusted PROXY protocol peer");
		return;
	}
	if (smtp_parse_command_utf8(line, len, s->smtputf8, &cmd, &err) < 0) {
		/* A bad BDAT still announces a chunk we cannot find the end of: give up. */
		if (cmd.verb == SMTP_VERB_BDAT)
			session_close_with(s, err.code, err.enhanced, err.msg);
		else
			session_reply_err(s, &err);
		return;
	}
	dispatch(s, &cmd);
}

/* RFC 4954 lets AUTH lines (and SASL responses) run past the 1000 bytes of other commands. */
static size_t
line_limit(const struct session *s, const char *p, size_t n)
{
	if (s->state == SESSION_AUTH || (n >= 5 && util_strncaseeq(p, "AUTH ", 5)))
		return SMTP_AUTH_LINE_MAX;
	return SMTP_LINE_MAX;
}

/* Command lines: too long ones get 500 5.5.2 and are skipped up to their end. */
static bool
next_command(struct session *s)
{
	struct buf *in = io_input(s->io);
	size_t len, used;
	const char *line = io_getline(s->io, &len, &used);

	if (line == NULL) {
		/* A line's deadline runs from its first byte: idle waits are client_timeout's. */
		if (in->len > 0 || s->discard_line)
			smtp_limits_deadline_start(&s->limits, SMTP_LIMITS_COMMAND);
		if (in->len > line_limit(s, in->data, in->len) && !s->discard_line) {
			session_reply(s, 500, "5.5.2", "Line too long");
			s->discard_line = true;
		}
		if (s->discard_line)
			io_consume(s->io, in->len);
		return false;
	}
	smtp_limits_deadline_stop(&s->limits, SMTP_LIMITS_COMMAND);
	if (s->discard_line) {
		s->discard_line = false;
		io_consume(s->io, used);
		return true;
	}
	if (len + 2 > line_limit(s, line, len)) {
		io_consume(s->io, used);
		session_reply(s, 500, "5.5.2", "Line too long");
		return true;
	}
	handle_line(s, line, len);
	io_consume(s->io, used);
	return true;
}

/* Only where a client's next command is read: a reply already on its way out stands. */
static bool
too_many_errors(struct session *s)
{
	if (!smtp_limits_errors_exceeded(&s->limits))
		return false;
	if (s->state != SESSION_CMD && s->state != SESSION_AUTH && s->state != SESSION_DATA &&
	    s->state != SESSION_BDAT)
		return false;
	log_warn("smtp_server", "%d consecutive error replies: closing the session",
		 s->limits.n_errors);
	session_close_with(s, 421, "4.7.0", "Too many errors, closing connection");
	return true;
}

static void
session_process(struct session *s)
{
	for (;;) {
		if (too_many_errors(s))
			return;
		switch (s->state) {
		case SESSION_PROXY:
			if (io_input(s->io)->len == 0)
				return;
			read_proxy_header(s);
			if (s->state == SESSION_PROXY)
				return;
			break;
		case SESSION_CMD:
		case SESSION_AUTH:
			if (!next_command(s))
				return;
			break;
		case SESSION_DATA:
			if (io_input(s->io)->len == 0)
				return;
			feed_data(s);
			break;
		case SESSION_BDAT:
			if (io_input(s->io)->len == 0 && s->bdat_left > 0)
				return;
			feed_bdat(s);
			break;
		default:
			return;
		}
	}
}

/* ---- I/O events and timers ----------------------------------------------------------------- */

static void
session_expire(struct session *s, const char *text)
{
	/* A hook still running must not bring the session back to life afterwards. */
	if (s->hook_running) {
		coro_cancel(&s->hook);
		s->hook_running = false;
	}
	log_info("smtp_server", "%s", text);
	session_close_with(s, 421, "4.4.2", text);
}

static void
session_limit_expired(void *arg, enum smtp_limits_timer which)
{
	struct session *s = arg;

	log_context()->session = s->id;
	log_context()->peer = s->conn.peer_address;
	if (which == SMTP_LIMITS_COMMAND && s->state == SESSION_TLS) {
		/* No reply can be sent in the middle of a handshake. */
		log_info("smtp_server", "TLS handshake not completed in time, closing connection");
		session_free(s);
	} else if (which == SMTP_LIMITS_COMMAND) {
		session_expire(s, "Command line not completed in time, closing connection");
	} else if (which == SMTP_LIMITS_DATA) {
		session_expire(s, "Message data not completed in time, closing connection");
	} else {
		session_close_with(s, 421, "4.7.0", "Too many failed authentications, goodbye");
	}
	log_context()->session = NULL;
	log_context()->peer = NULL;
}

static void
session_io(struct io *io, enum io_event ev, void *arg)
{
	struct session *s = arg;

	log_context()->session = s->id;
	log_context()->peer = s->conn.peer_address;
	switch (ev) {
	case IO_DATAIN:
		session_process(s);
		break;
	case IO_TLSREADY:
		tls_ready(s);
		session_process(s);
		break;
	case IO_LOWAT:
		if (s->state == SESSION_CLOSING)
			session_free(s);
		break;
	case IO_TIMEOUT:
		if (s->state == SESSION_CLOSING) {
			session_free(s);
			break;
		}
		session_expire(s, "Timeout, closing connection");
		break;
	case IO_CONNECTED:
		break;
	case IO_DISCONNECTED:
	case IO_ERROR:
		log_debug("smtp_server", "connection ended: %s", ev == IO_ERROR ? io_error(io) : "EOF");
		session_free(s);
		break;
	}
	log_context()->session = NULL;
	log_context()->peer = NULL;
}

static void
format_address(const struct sockaddr_storage *ss, char *out, size_t n, int *port)
{
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &a->sin6_addr, out, (socklen_t)n);
		*port = ntohs(a->sin6_port);
	} else {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &a->sin_addr, out, (socklen_t)n);
		*port = ntohs(a->sin_port);
	}
}

static struct session *
session_new(struct listener_shard *ls, int fd, const struct sockaddr_storage *peer)
{
	struct session *s = calloc(1, sizeof(*s));
	struct sockaddr_storage local;
	socklen_t len = sizeof(local);

	if (s == NULL)
		return NULL;
	s->io = io_new(ls->shard->loop, fd, session_io, s);
	if (s->io == NULL) {
		free(s);
		return NULL;
	}
	s->ls = ls;
	s->l = ls->listener;
	s->peer = s->accepted = *peer;
	snprintf(s->id, sizeof(s->id), "%d-%lu", ls->shard->id, ++session_counter);
	conn_info_init(&s->conn);
	format_address(peer, s->conn.peer_address, sizeof(s->conn.peer_address), &s->conn.peer_port);
	if (getsockname(fd, (struct sockaddr *)&local, &len) == 0)
		format_address(&local, s->conn.local_address, sizeof(s->conn.local_address),
			       &s->conn.local_port);
	snprintf(s->conn.listener, sizeof(s->conn.listener), "%s", s->l->cfg.listen);
	buf_init(&s->body);
	buf_init(&s->queued_ids);
	smtp_limits_init(&s->limits, ls->shard->loop, &s->l->cfg, session_limit_expired, s);
	io_set_timeout(s->io, s->l->cfg.client_timeout);
	s->next = ls->sessions;
	if (ls->sessions)
		ls->sessions->prev = s;
	ls->sessions = s;
	return s;
}

static void
session_greet(struct session *s)
{
	lua_State *co = session_hook_begin(s, "smtp_server_connection_accepted");

	if (co == NULL) {
		s->state = SESSION_CMD;
		send_banner(s);
		return;
	}
	s->state = SESSION_GREETING;
	push_conn(co, s);
	session_hook_start(s, "smtp_server_connection_accepted", 1, after_connection_hook);
	if (s->state == SESSION_HOOK)
		s->state = SESSION_GREETING;
}

/*
 * PROXY protocol: a trusted balancer's header comes before anything else, so
 * the connection hook, relay control and records see the client it names.
 * A peer that is not trusted is refused on a listener that requires the
 * header, and served as itself on one that does not.
 */
static void
session_start(struct session *s)
{
	const struct smtp_listener_config *c = &s->l->cfg;

	if (!c->proxy_protocol) {
		session_greet(s);
	} else if (cidr_match_any(c->proxy_trusted, c->n_proxy_trusted,
				  (const struct sockaddr *)&s->peer)) {
		s->state = SESSION_PROXY;
		smtp_limits_deadline_start(&s->limits, SMTP_LIMITS_COMMAND);
	} else if (c->proxy_required) {
		log_info("smtp_server", "connection from %s, not a trusted PROXY peer: closed",
			 s->conn.peer_address);
		session_close_with(s, 421, "4.7.0", "Not a trusted PROXY protocol peer");
	} else {
		session_greet(s);
	}
}

static void
proxy_header_apply(struct session *s, const struct proxy_header *h)
{
	if (h->local)
		return;
	s->peer = h->src;
	format_address(&h->src, s->conn.peer_address, sizeof(s->conn.peer_address),
		       &s->conn.peer_port);
	format_address(&h->dst, s->conn.local_address, sizeof(s->conn.local_address),
		       &s->conn.local_port);
}

static void
read_proxy_header(struct session *s)
{
	struct buf *in = io_input(s->io);
	struct proxy_header h;
	struct tern_err err;
	int n = proxy_proto_parse((const uint8_t *)in->data, in->len, &h, &err);

	if (n == TERN_AGAIN)
		return;
	if (n < 0) {
		log_info("smtp_server", "closing: %s", err.msg);
		session_close_with(s, err.code, err.enhanced, err.msg);
		return;
	}
	io_consume(s->io, (size_t)n);
	smtp_limits_deadline_stop(&s->limits, SMTP_LIMITS_COMMAND);
	log_debug("smtp_server", "PROXY v%d header: client %s", h.version,
		  h.local ? "(local)" : "given");
	proxy_header_apply(s, &h);
	session_greet(s);
}

int
smtp_session_accept(struct listener_shard *ls, int fd, const struct sockaddr_storage *peer)
{
	struct session *s = session_new(ls, fd, peer);

	if (s == NULL)
		return -ENOMEM;
	metrics_inc(METRICS_CONNECTIONS_IN);
	session_start(s);
	return 0;
}

void
smtp_sessions_shutdown(struct listener_shard *ls)
{
	struct session *s, *next;

	for (s = ls->sessions; s; s = next) {
		next = s->next;
		if (s->state == SESSION_CMD && !s->in_tx) {
			/* Without this the loop could end, and free the session, before the reply is sent. */
			s->holds_stop = true;
			shard_busy_inc(ls->shard);
			session_close_with(s, 421, "4.3.2", "Service shutting down");
		}
	}
}

void
smtp_sessions_free(struct listener_shard *ls)
{
	while (ls->sessions)
		session_free(ls->sessions);
}
