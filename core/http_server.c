// SPDX-License-Identifier: MIT
/*
 * HTTP listeners on libmicrohttpd, one daemon per shard. Each shard gets
 * its own SO_REUSEPORT socket, as the ESMTP listener does, rather than one
 * shard accepting for all: injection renders MIME and runs a hook per
 * recipient, which is CPU work that must spread over the shards like SMTP
 * reception, and a request stays on one shard from accept to reply, so no
 * request state crosses threads.
 *
 * MHD runs in external-event mode with epoll: its epoll descriptor is one
 * ev_io on the shard's loop, MHD_run() runs on readiness, and an ev_timer
 * follows MHD_get_timeout() (idle connections, and a prompt run after a
 * suspended connection is resumed). A request whose answer comes later (a
 * hook that yields, a synced spool write) suspends its connection; the
 * answer resumes it and MHD calls the access handler again to queue it.
 *
 * Memory per connection is bounded: MHD reads into a fixed pool per
 * connection (MHD_OPTION_CONNECTION_MEMORY_LIMIT), does not read the next
 * request until the answer is sent, and sends the answer as the socket
 * accepts it; bodies are kept only up to request_body_limit (413 past it).
 * A client that does not read holds one answer and its pool until
 * client_timeout closes it.
 *
 * A reload that keeps a listener keeps its daemons and sockets and gives new
 * requests the new init's access rules (trusted_hosts, request_body_limit):
 * each shard switches at a loop boundary, and a request keeps the options it
 * began with. What MHD was started with (address, TLS, timeouts, connection
 * limit) cannot change while it runs: a reload that changes it is refused.
 * PROXY protocol: MHD reads its sockets itself and knows nothing of the
 * header, so a listener with proxy_protocol accepts its connections itself,
 * reads the header (and not one byte more: what follows is MHD's request)
 * and hands the socket to MHD with MHD_add_connection() and the address the
 * header names, which is then what MHD reports as the client's.
 */
#include "tern/http_server.h"
#include "tern/coro.h"
#include "tern/daemon.h"
#include "tern/log.h"
#include "tern/metrics.h"
#include "tern/policy_hook.h"
#include "tern/proxy_proto.h"
#include "tern/shard.h"
#include "tern/smtp_listener.h"
#include "tern/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>
#include <microhttpd.h>

#define HTTP_CONNECTION_MEMORY (64 * 1024)
/* Connections accepted per readiness of a PROXY listener's socket, so that one shard's burst
 * does not starve its loop. */
#define HTTP_ACCEPT_BATCH 64

struct http_listener;
struct http_proxy_conn;

/*
 * A listener's options as one init defined them, shared by reference: the
 * listener (the newest), each shard (for its new requests) and each request.
 */
struct http_options {
	struct http_listener_config cfg;
	atomic_int refs;
};

/* A listener's daemon on one shard. */
struct http_shard {
	struct http_listener *listener;
	struct http_options *opts; /* what new requests get; shard thread once running */
	struct shard *shard;
	int fd;
	struct MHD_Daemon *mhd;
	ev_io epoll_watcher;
	ev_timer timer;
	struct http_request *requests;	 /* live ones, to drop at exit */
	ev_io accept_watcher;		 /* PROXY listeners: we accept, not MHD */
	struct http_proxy_conn *pending; /* accepted, waiting for their PROXY header */
	int n_pending;
};

struct http_listener {
	struct http_options *current; /* main thread */
	char *tls_cert_pem;
	char *tls_key_pem;
	struct http_shard *shards;
	int n_shards;
};

enum http_req_state {
	HTTP_REQ_RECEIVING, /* headers and body arriving */
	HTTP_REQ_WAITING,   /* suspended: a hook or handler will answer */
	HTTP_REQ_ANSWERED,  /* response ready to queue */
	HTTP_REQ_SENT,
};

struct http_request {
	struct http_shard *hs;
	struct http_options *opts;
	struct MHD_Connection *conn;
	const struct http_route *route;
	const char *method, *path;
	char peer[INET6_ADDRSTRLEN];
	struct buf body;
	bool path_known; /* when there is no route: another method has one */
	bool too_large;
	bool suspended;
	enum http_req_state state;
	struct MHD_Response *response;
	unsigned status;
	struct coro_ref hook;
	bool hook_running;
	http_abort_fn abort_fn;
	void *abort_arg;
	bool holds_stop; /* an answer given later is being sent: the shard's stop waits for it */
	struct http_request *prev, *next;
};

static struct http_options *
options_ref(struct http_options *o)
{
	atomic_fetch_add(&o->refs, 1);
	return o;
}

/* The last reference may go on any shard. */
static void
options_unref(struct http_options *o)
{
	if (o == NULL || atomic_fetch_sub(&o->refs, 1) != 1)
		return;
	http_listener_config_free(&o->cfg);
	free(o);
}

/* ---- driving MHD from libev --------------------------------------------------------------- */

static void
http_rearm(struct http_shard *hs)
{
	MHD_UNSIGNED_LONG_LONG ms;
	struct ev_loop *loop = hs->shard->loop;

	ev_timer_stop(loop, &hs->timer);
	if (MHD_get_timeout(hs->mhd, &ms) != MHD_YES)
		return;
	ev_timer_set(&hs->timer, (double)ms / 1000., 0.);
	ev_timer_start(loop, &hs->timer);
}

static void
http_run(struct http_shard *hs)
{
	MHD_run(hs->mhd);
	http_rearm(hs);
}

static void
http_epoll_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	http_run(w->data);
}

static void
http_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	http_run(w->data);
}

/* Run MHD soon (from the loop, never from inside one of MHD's callbacks). */
static void
http_kick(struct http_shard *hs)
{
	ev_timer_stop(hs->shard->loop, &hs->timer);
	ev_timer_set(&hs->timer, 0., 0.);
	ev_timer_start(hs->shard->loop, &hs->timer);
}

/* ---- requests ------------------------------------------------------------------------------- */

const char *
http_request_method(const struct http_request *req)
{
	return req->method;
}

const char *
http_request_path(const struct http_request *req)
{
	return req->path;
}

const char *
http_request_body(const struct http_request *req, size_t *len)
{
	*len = req->body.len;
	return req->body.data ? req->body.data : "";
}

const char *
http_request_arg(const struct http_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *
http_request_peer(const struct http_request *req)
{
	return req->peer;
}

const char *
http_request_listener(const struct http_request *req)
{
	return req->opts->cfg.listen;
}

struct shard *
http_request_shard(const struct http_request *req)
{
	return req->hs->shard;
}

void
http_request_on_abort(struct http_request *req, http_abort_fn fn, void *arg)
{
	req->abort_fn = fn;
	req->abort_arg = arg;
}

static void
request_set_response(struct http_request *req, unsigned status, struct MHD_Response *resp,
		     const char *content_type)
{
	if (resp == NULL) {
		/* Out of memory: MHD closes the connection when nothing is queued. */
		status = 0;
	} else {
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
		if (status == MHD_HTTP_UNAUTHORIZED)
			MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
						"Basic realm=\"tern\", Bearer");
	}
	req->response = resp;
	req->status = status;
	req->state = HTTP_REQ_ANSWERED;
	req->abort_fn = NULL;
	if (req->suspended) {
		/* Without this the loop could end, and MHD close the connection, before it is sent. */
		req->holds_stop = true;
		shard_busy_inc(http_request_shard(req));
		req->suspended = false;
		MHD_resume_connection(req->conn);
		http_kick(req->hs);
	}
}

void
http_request_reply(struct http_request *req, unsigned status, const char *content_type,
		   const char *body, size_t len)
{
	struct MHD_Response *resp;

	if (req->state == HTTP_REQ_ANSWERED || req->state == HTTP_REQ_SENT)
		return;
	metrics_inc(METRICS_HTTP_REQUESTS);
	resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	request_set_response(req, status, resp, content_type);
}

void
http_request_reply_json(struct http_request *req, unsigned status, const char *json, size_t len)
{
	http_request_reply(req, status, "application/json", json, len);
}

void
http_request_reply_buf(struct http_request *req, unsigned status, struct buf *b)
{
	if (b->data == NULL)
		http_request_reply_error(req, 503, "out of memory");
	else
		http_request_reply_json(req, status, b->data, b->len);
	buf_deinit(b);
}

void
http_request_reply_error(struct http_request *req, unsigned status, const char *fmt, ...)
{
	char msg[512];
	struct buf out;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	buf_init(&out);
	if (buf_append_str(&out, "{\"error\":") < 0 ||
	    buf_append_json_string(&out, msg, strlen(msg)) < 0 || buf_append_str(&out, "}\n") < 0) {
		buf_deinit(&out);
		request_set_response(req, status, NULL, NULL);
		return;
	}
	http_request_reply_json(req, status, out.data, out.len);
	buf_deinit(&out);
}

static void
format_peer(const struct sockaddr *sa, char *out, size_t n)
{
	const void *a = sa->sa_family == AF_INET6
			    ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
			    : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;

	if (inet_ntop(sa->sa_family, a, out, (socklen_t)n) == NULL)
		snprintf(out, n, "?");
}

static const struct http_route *
route_find(const char *method, const char *path, bool *path_known)
{
	const struct http_route *r;

	*path_known = false;
	for (r = http_routes; r->method != NULL; r++) {
		if (strcmp(r->path, path) != 0)
			continue;
		*path_known = true;
		if (strcmp(r->method, method) == 0)
			return r;
	}
	return NULL;
}

static struct http_request *
request_new(struct http_shard *hs, struct MHD_Connection *conn, const char *url, const char *method)
{
	struct http_request *req = calloc(1, sizeof(*req));
	const union MHD_ConnectionInfo *ci;

	if (req == NULL)
		return NULL;
	req->hs = hs;
	req->opts = options_ref(hs->opts);
	req->conn = conn;
	req->method = method;
	req->path = url;
	buf_init(&req->body);
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci != NULL && ci->client_addr != NULL)
		format_peer(ci->client_addr, req->peer, sizeof(req->peer));
	req->next = hs->requests;
	if (hs->requests)
		hs->requests->prev = req;
	hs->requests = req;
	return req;
}

static void
request_free(struct http_request *req)
{
	struct http_shard *hs = req->hs;

	if (req->abort_fn)
		req->abort_fn(req->abort_arg);
	if (req->hook_running)
		coro_cancel(&req->hook);
	if (req->response)
		MHD_destroy_response(req->response);
	if (req->holds_stop)
		shard_busy_dec(http_request_shard(req));
	buf_deinit(&req->body);
	options_unref(req->opts);
	if (req->prev)
		req->prev->next = req->next;
	else
		hs->requests = req->next;
	if (req->next)
		req->next->prev = req->prev;
	free(req);
}

/* ---- access: trusted hosts, or credentials a policy hook accepts ----------------------------- */

static bool
peer_trusted(const struct http_request *req)
{
	const struct http_listener_config *c = &req->opts->cfg;
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

	return ci != NULL && ci->client_addr != NULL &&
	       cidr_match_any(c->trusted_hosts, c->n_trusted_hosts, ci->client_addr);
}

static void
request_dispatch(struct http_request *req)
{
	req->route->handler(req);
}

static void
auth_done(void *arg, lua_State *co, int status, int nres, const struct tern_err *err)
{
	struct http_request *req = arg;

	req->hook_running = false;
	if (status == CORO_OK && nres > 0 && lua_toboolean(co, -nres)) {
		request_dispatch(req);
		return;
	}
	if (status == CORO_ERROR || status == CORO_TIMEOUT) {
		log_warn("http", "authentication hook failed: %s", err ? err->msg : "?");
		http_request_reply_error(req, MHD_HTTP_SERVICE_UNAVAILABLE,
					 "authentication hook failed, try again later");
		return;
	}
	http_request_reply_error(req, MHD_HTTP_UNAUTHORIZED, "invalid credentials");
}

/* Call the hook for the credentials given; false when there are none or no hook for them. */
static bool
auth_start(struct http_request *req)
{
	struct policy *p = req->hs->shard->policy;
	const char *authz =
	    MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	char *pass = NULL, *user = NULL;
	lua_State *co;

	if (authz == NULL)
		return false;
	if (strncasecmp(authz, "Bearer ", 7) == 0) {
		co = policy_hook_begin(p, "http_server_validate_auth_bearer", &req->hook);
		if (co == NULL)
			return false;
		lua_pushstring(co, authz + 7);
		req->hook_running = true;
		policy_hook_start(p, &req->hook, "http_server_validate_auth_bearer", 1, auth_done,
				  req);
		return true;
	}
	user = MHD_basic_auth_get_username_password(req->conn, &pass);
	co = user ? policy_hook_begin(p, "http_server_validate_auth_basic", &req->hook) : NULL;
	if (co != NULL) {
		lua_pushstring(co, user);
		lua_pushstring(co, pass ? pass : "");
		req->hook_running = true;
		policy_hook_start(p, &req->hook, "http_server_validate_auth_basic", 2, auth_done,
				  req);
	}
	MHD_free(user);
	MHD_free(pass);
	return co != NULL;
}

static void
request_authorize(struct http_request *req)
{
	if (peer_trusted(req)) {
		request_dispatch(req);
		return;
	}
	if (!auth_start(req))
		http_request_reply_error(req, MHD_HTTP_UNAUTHORIZED,
					 "credentials required (Authorization: Basic or Bearer)");
}

/* ---- MHD callbacks ----------------------------------------------------------------------------
 */

static enum MHD_Result
queue_answer(struct http_request *req)
{
	enum MHD_Result rc;

	req->state = HTTP_REQ_SENT;
	if (req->response == NULL)
		return MHD_NO;
	rc = MHD_queue_response(req->conn, req->status, req->response);
	MHD_destroy_response(req->response);
	req->response = NULL;
	return rc;
}

/* Headers are in: route, declared size. */
static enum MHD_Result
request_begin(struct http_shard *hs, struct MHD_Connection *conn, const char *url,
	      const char *method, void **con_cls)
{
	struct http_request *req = request_new(hs, conn, url, method);
	const char *clen;

	if (req == NULL)
		return MHD_NO;
	*con_cls = req;
	/* No route: read and drop the body, then answer (MHD takes no answer mid-body). */
	req->route = route_find(method, url, &req->path_known);
	if (req->route == NULL)
		return MHD_YES;
	clen = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (clen != NULL && strtoull(clen, NULL, 10) > req->opts->cfg.request_body_limit)
		req->too_large = true;
	return MHD_YES;
}

static void
request_take(struct http_request *req, const char *data, size_t n)
{
	if (req->too_large || req->route == NULL || req->state != HTTP_REQ_RECEIVING)
		return;
	if (req->body.len + n > req->opts->cfg.request_body_limit) {
		req->too_large = true;
		buf_deinit(&req->body);
		buf_init(&req->body);
		return;
	}
	if (buf_append(&req->body, data, n) < 0)
		req->too_large = true;
}

/* The body is complete: answer now, or suspend until the answer comes. */
static void
request_complete(struct http_request *req)
{
	if (req->route == NULL) {
		if (req->path_known)
			http_request_reply_error(req, MHD_HTTP_METHOD_NOT_ALLOWED,
						 "%s is not allowed on %s", req->method, req->path);
		else
			http_request_reply_error(req, MHD_HTTP_NOT_FOUND, "no such endpoint: %s",
						 req->path);
		return;
	}
	if (req->too_large) {
		http_request_reply_error(
		    req, MHD_HTTP_CONTENT_TOO_LARGE, "request body over the limit of %llu bytes",
		    (unsigned long long)req->opts->cfg.request_body_limit);
		return;
	}
	req->state = HTTP_REQ_WAITING;
	request_authorize(req);
	if (req->state == HTTP_REQ_WAITING) {
		req->suspended = true;
		MHD_suspend_connection(req->conn);
	}
}

static enum MHD_Result
http_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
	    const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct http_request *req = *con_cls;

	(void)version;
	if (req == NULL)
		return request_begin(cls, conn, url, method, con_cls);
	if (req->state == HTTP_REQ_ANSWERED) {
		*upload_data_size = 0;
		return queue_answer(req);
	}
	if (*upload_data_size > 0) {
		request_take(req, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (req->state == HTTP_REQ_RECEIVING)
		request_complete(req);
	if (req->state == HTTP_REQ_ANSWERED)
		return queue_answer(req);
	return MHD_YES;
}

static void
http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
	       enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)conn;
	(void)toe;
	if (*con_cls != NULL)
		request_free(*con_cls);
	*con_cls = NULL;
}

static void
http_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	log_debug("http", "libmicrohttpd: %s", msg);
}

/* ---- PROXY protocol in front of MHD ------------------------------------------------------------
 */

/* An accepted connection whose PROXY header is not complete yet. */
struct http_proxy_conn {
	struct http_shard *hs;
	int fd;
	struct sockaddr_storage peer;
	socklen_t peerlen;
	ev_io io;
	ev_timer deadline;
	size_t len;			      /* header bytes consumed into hdr */
	uint8_t hdr[16 + PROXY_PROTO_V2_MAX]; /* a v2 header's fixed part and its longest block */
	struct http_proxy_conn *prev, *next;
};

static void
proxy_conn_free(struct http_proxy_conn *pc)
{
	struct http_shard *hs = pc->hs;

	ev_io_stop(hs->shard->loop, &pc->io);
	ev_timer_stop(hs->shard->loop, &pc->deadline);
	if (pc->fd >= 0)
		close(pc->fd);
	if (pc->prev)
		pc->prev->next = pc->next;
	else
		hs->pending = pc->next;
	if (pc->next)
		pc->next->prev = pc->prev;
	hs->n_pending--;
	free(pc);
}

/* MHD owns fd from here (and closes it if it cannot take it). */
static void
proxy_hand_to_mhd(struct http_shard *hs, int fd, const struct sockaddr *client, socklen_t len)
{
	char addr[INET6_ADDRSTRLEN];

	if (MHD_add_connection(hs->mhd, fd, client, len) != MHD_YES) {
		format_peer(client, addr, sizeof(addr));
		log_info("http", "connection from %s refused by libmicrohttpd: %s", addr,
			 strerror(errno));
	}
	http_kick(hs);
}

static void
proxy_header_done(struct http_proxy_conn *pc, const struct proxy_header *h)
{
	struct http_shard *hs = pc->hs;
	int fd = pc->fd;

	pc->fd = -1;
	log_debug("http", "PROXY v%d header: client %s", h->version,
		  h->local ? "(local)" : "given");
	if (h->local)
		proxy_hand_to_mhd(hs, fd, (const struct sockaddr *)&pc->peer, pc->peerlen);
	else
		proxy_hand_to_mhd(hs, fd, (const struct sockaddr *)&h->src,
				  h->src.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
							       : sizeof(struct sockaddr_in));
	proxy_conn_free(pc);
}

/* Consume exactly n bytes that a peek has shown are there. */
static bool
proxy_consume(struct http_proxy_conn *pc, size_t n)
{
	return n == 0 || recv(pc->fd, pc->hdr + pc->len, n, 0) == (ssize_t)n;
}

/*
 * Peek at what arrived, parse it after what was consumed, and consume only
 * header bytes: all of them while the header is incomplete (a valid prefix
 * is header, so the socket does not stay readable with nothing new), and up
 * to its end once it is complete.
 */
static void
proxy_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct http_proxy_conn *pc = w->data;
	char addr[INET6_ADDRSTRLEN];
	struct proxy_header h;
	struct tern_err err;
	ssize_t n;
	int rc;

	(void)loop;
	(void)revents;
	n = recv(pc->fd, pc->hdr + pc->len, sizeof(pc->hdr) - pc->len, MSG_PEEK);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	format_peer((const struct sockaddr *)&pc->peer, addr, sizeof(addr));
	if (n <= 0) {
		log_debug("http", "connection from %s closed before its PROXY header", addr);
		proxy_conn_free(pc);
		return;
	}
	rc = proxy_proto_parse(pc->hdr, pc->len + (size_t)n, &h, &err);
	if (rc == TERN_AGAIN && pc->len + (size_t)n < sizeof(pc->hdr) &&
	    proxy_consume(pc, (size_t)n)) {
		pc->len += (size_t)n;
		return;
	}
	if (rc > 0 && proxy_consume(pc, (size_t)rc - pc->len)) {
		proxy_header_done(pc, &h);
		return;
	}
	log_info("http", "connection from %s closed: %s", addr,
		 rc < 0 && rc != TERN_AGAIN ? err.msg : "bad PROXY header");
	proxy_conn_free(pc);
}

static void
proxy_deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct http_proxy_conn *pc = w->data;
	char addr[INET6_ADDRSTRLEN];

	(void)loop;
	(void)revents;
	format_peer((const struct sockaddr *)&pc->peer, addr, sizeof(addr));
	log_info("http", "connection from %s closed: no PROXY header within %gs", addr,
		 pc->hs->opts->cfg.client_timeout);
	proxy_conn_free(pc);
}

static void
proxy_conn_start(struct http_shard *hs, int fd, const struct sockaddr_storage *peer,
		 socklen_t peerlen)
{
	struct http_proxy_conn *pc;

	if (hs->n_pending >= hs->opts->cfg.max_connections ||
	    (pc = calloc(1, sizeof(*pc))) == NULL) {
		close(fd);
		return;
	}
	pc->hs = hs;
	pc->fd = fd;
	pc->peer = *peer;
	pc->peerlen = peerlen;
	ev_io_init(&pc->io, proxy_read_cb, fd, EV_READ);
	pc->io.data = pc;
	ev_timer_init(&pc->deadline, proxy_deadline_cb, hs->opts->cfg.client_timeout, 0.);
	pc->deadline.data = pc;
	ev_io_start(hs->shard->loop, &pc->io);
	ev_timer_start(hs->shard->loop, &pc->deadline);
	pc->next = hs->pending;
	if (hs->pending)
		hs->pending->prev = pc;
	hs->pending = pc;
	hs->n_pending++;
}

/* A trusted peer must send a header; anyone else is closed, or served as itself when allowed. */
static void
proxy_accepted(struct http_shard *hs, int fd, const struct sockaddr_storage *peer, socklen_t len)
{
	const struct http_listener_config *c = &hs->opts->cfg;
	char addr[INET6_ADDRSTRLEN];

	if (cidr_match_any(c->proxy_trusted, c->n_proxy_trusted, (const struct sockaddr *)peer)) {
		proxy_conn_start(hs, fd, peer, len);
	} else if (c->proxy_required) {
		format_peer((const struct sockaddr *)peer, addr, sizeof(addr));
		log_info("http", "connection from %s, not a trusted PROXY peer: closed", addr);
		close(fd);
	} else {
		proxy_hand_to_mhd(hs, fd, (const struct sockaddr *)peer, len);
	}
}

static void
proxy_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct http_shard *hs = w->data;
	struct sockaddr_storage peer;
	socklen_t len;
	int i, fd;

	(void)loop;
	(void)revents;
	for (i = 0; i < HTTP_ACCEPT_BATCH; i++) {
		len = sizeof(peer);
		fd = accept4(hs->fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_warn("http", "http listener %s: accept: %s",
					 hs->opts->cfg.listen, strerror(errno));
			return;
		}
		proxy_accepted(hs, fd, &peer, len);
	}
}

/* Stop accepting and drop the connections still owing their header. */
static void
proxy_stop(struct http_shard *hs)
{
	ev_io_stop(hs->shard->loop, &hs->accept_watcher);
	while (hs->pending)
		proxy_conn_free(hs->pending);
	if (hs->fd >= 0)
		close(hs->fd);
	hs->fd = -1;
}

/* ---- listener service ---------------------------------------------------------------------------
 */

static int
open_socket(const struct http_listener_config *c, struct tern_err *err)
{
	int fd = util_listen_reuseport(&c->addr, c->addrlen);

	if (fd < 0)
		tern_err_set(err, 0, "", "http listener %s: %s", c->listen, strerror(-fd));
	return fd;
}

static struct MHD_Daemon *
start_daemon(struct http_shard *hs)
{
	const struct http_listener *l = hs->listener;
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	struct MHD_OptionItem tls[] = {
	    {MHD_OPTION_HTTPS_MEM_CERT, 0, l->tls_cert_pem},
	    {MHD_OPTION_HTTPS_MEM_KEY, 0, l->tls_key_pem},
	    {MHD_OPTION_END, 0, NULL},
	};
	struct MHD_OptionItem listen[] = {
	    {MHD_OPTION_LISTEN_SOCKET, hs->fd, NULL},
	    {MHD_OPTION_END, 0, NULL},
	};

	if (l->tls_cert_pem)
		flags |= MHD_USE_TLS;
	else
		tls[0].option = MHD_OPTION_END;
	/* A PROXY listener accepts itself and hands MHD its connections (proxy_accept_cb). */
	if (l->current->cfg.proxy_protocol) {
		flags |= MHD_USE_NO_LISTEN_SOCKET;
		listen[0].option = MHD_OPTION_END;
	}
	return MHD_start_daemon(flags, 0, NULL, NULL, http_access, hs, MHD_OPTION_ARRAY, listen,
				MHD_OPTION_NOTIFY_COMPLETED, http_completed, hs,
				MHD_OPTION_EXTERNAL_LOGGER, http_mhd_log, hs,
				MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONNECTION_MEMORY,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)l->current->cfg.client_timeout,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned)l->current->cfg.max_connections,
				MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
}

/* Stop accepting; requests in flight finish (the shard's busy count holds the stop for them). */
static void
http_stop_shard(struct shard *shard, void *arg)
{
	struct http_shard *hs = arg;
	int fd;

	(void)shard;
	if (hs->opts->cfg.proxy_protocol) {
		proxy_stop(hs);
		return;
	}
	fd = MHD_quiesce_daemon(hs->mhd);
	if (fd >= 0)
		close(fd);
	hs->fd = -1;
}

/* The loop has ended: drop what is left (a suspended request must be resumed before the stop). */
static void
http_exit_shard(struct shard *shard, void *arg)
{
	struct http_shard *hs = arg;
	struct http_request *req;

	ev_io_stop(shard->loop, &hs->epoll_watcher);
	ev_timer_stop(shard->loop, &hs->timer);
	if (hs->opts->cfg.proxy_protocol)
		proxy_stop(hs);
	for (req = hs->requests; req; req = req->next) {
		if (req->abort_fn)
			req->abort_fn(req->abort_arg);
		req->abort_fn = NULL;
		if (req->suspended) {
			req->suspended = false;
			MHD_resume_connection(req->conn);
		}
	}
	MHD_stop_daemon(hs->mhd);
	hs->mhd = NULL;
}

static int
http_shard_open(struct http_listener *l, struct http_shard *hs, int i, struct tern_err *err)
{
	const union MHD_DaemonInfo *di;

	hs->listener = l;
	hs->opts = options_ref(l->current);
	hs->shard = shard_get(i);
	hs->fd = open_socket(&l->current->cfg, err);
	if (hs->fd < 0)
		return -EINVAL;
	hs->mhd = start_daemon(hs);
	if (hs->mhd == NULL) {
		tern_err_set(err, 0, "", "http listener %s: libmicrohttpd refused to start",
			     l->current->cfg.listen);
		return -EINVAL;
	}
	di = MHD_get_daemon_info(hs->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	ev_io_init(&hs->epoll_watcher, http_epoll_cb, di->epoll_fd, EV_READ);
	hs->epoll_watcher.data = hs;
	ev_timer_init(&hs->timer, http_timer_cb, 0., 0.);
	hs->timer.data = hs;
	/* The shard threads have not started yet: their loops are ours to touch. */
	ev_io_start(hs->shard->loop, &hs->epoll_watcher);
	if (l->current->cfg.proxy_protocol) {
		ev_io_init(&hs->accept_watcher, proxy_accept_cb, hs->fd, EV_READ);
		hs->accept_watcher.data = hs;
		ev_io_start(hs->shard->loop, &hs->accept_watcher);
	}
	shard_on_stop(hs->shard, http_stop_shard, hs);
	shard_on_exit(hs->shard, http_exit_shard, hs);
	return 0;
}

static char *
read_pem(const char *path, struct tern_err *err)
{
	FILE *f = fopen(path, "r");
	struct buf b;
	char chunk[4096];
	size_t n;

	if (f == NULL) {
		tern_err_set(err, 0, "", "cannot read %s: %s", path, strerror(errno));
		return NULL;
	}
	buf_init(&b);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(&b, chunk, n);
	fclose(f);
	return b.data ? b.data : xstrdup("");
}

static void
record_tls_expiry(const struct http_listener *l)
{
	time_t not_after = tls_pem_not_after(l->tls_cert_pem);

	if (not_after != 0)
		metrics_set_tls_expiry(l->current->cfg.listen, (double)not_after);
}

static int
http_listener_open(void *arg, struct tern_err *err)
{
	struct http_listener *l = arg;
	int i;

	if (l->current->cfg.tls_certificate) {
		l->tls_cert_pem = read_pem(l->current->cfg.tls_certificate, err);
		l->tls_key_pem = l->tls_cert_pem ? read_pem(l->current->cfg.tls_private_key, err) : NULL;
		if (l->tls_key_pem == NULL)
			return -EINVAL;
		record_tls_expiry(l);
	}
	if (util_port_in_use(&l->current->cfg.addr, l->current->cfg.addrlen)) {
		tern_err_set(err, 0, "", "http listener %s: port %u is already in use by another process",
			     l->current->cfg.listen, util_sockaddr_port(&l->current->cfg.addr));
		return -EADDRINUSE;
	}
	l->n_shards = shard_count();
	l->shards = xcalloc((size_t)l->n_shards, sizeof(*l->shards));
	for (i = 0; i < l->n_shards; i++)
		l->shards[i].fd = -1;
	for (i = 0; i < l->n_shards; i++)
		if (http_shard_open(l, &l->shards[i], i, err) < 0)
			return -EINVAL;
	return 0;
}

static void
http_listener_close(void *arg)
{
	struct http_listener *l = arg;
	int i;

	for (i = 0; i < l->n_shards; i++) {
		if (l->shards[i].mhd)
			MHD_stop_daemon(l->shards[i].mhd);
		/* MHD closes the socket it listened on; a PROXY listener's is ours. */
		if ((!l->shards[i].mhd || l->current->cfg.proxy_protocol) && l->shards[i].fd >= 0)
			close(l->shards[i].fd);
	}
	for (i = 0; i < l->n_shards; i++)
		options_unref(l->shards[i].opts);
	free(l->shards);
	l->shards = NULL;
	l->n_shards = 0;
	free(l->tls_cert_pem);
	l->tls_cert_pem = NULL;
	free(l->tls_key_pem);
	l->tls_key_pem = NULL;
}

void
http_listener_config_free(struct http_listener_config *cfg)
{
	free(cfg->listen);
	free(cfg->trusted_hosts);
	free(cfg->proxy_trusted);
	free(cfg->tls_certificate);
	free(cfg->tls_private_key);
	memset(cfg, 0, sizeof(*cfg));
}

static bool
same_string(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* What the running daemons were started with must stay: a reload changing it is refused. */
static bool
http_listener_same(const void *cfg, const void *other)
{
	const struct http_listener_config *a = &((const struct http_listener *)cfg)->current->cfg;
	const struct http_listener_config *b = &((const struct http_listener *)other)->current->cfg;

	return same_string(a->tls_certificate, b->tls_certificate) &&
	       same_string(a->tls_private_key, b->tls_private_key) &&
	       a->client_timeout == b->client_timeout && a->max_connections == b->max_connections &&
	       a->proxy_protocol == b->proxy_protocol;
}

struct http_switch {
	struct http_shard *hs;
	struct http_options *next;
};

/* On the shard: new requests get the new options; the shard's reference to the old goes. */
static void
http_switch_shard(void *arg)
{
	struct http_switch *sw = arg;
	struct http_options *old = sw->hs->opts;

	sw->hs->opts = sw->next;
	options_unref(old);
	free(sw);
}

/* After the swap: l takes next's options (trusted_hosts, request_body_limit) for new requests. */
static void
http_listener_update(void *arg, void *next)
{
	struct http_listener *l = arg, *nl = next;
	struct http_options *o = nl->current;
	int i;

	nl->current = NULL; /* nl goes with the rest of the reload's pending services */
	options_unref(l->current);
	l->current = o;
	for (i = 0; i < l->n_shards; i++) {
		struct http_switch *sw = xcalloc(1, sizeof(*sw));

		sw->hs = &l->shards[i];
		sw->next = options_ref(o);
		if (shard_post(sw->hs->shard, http_switch_shard, sw) < 0) {
			/* A stopping shard takes no new request: it keeps what it has. */
			options_unref(o);
			free(sw);
		}
	}
}

static void
http_listener_free(void *arg)
{
	struct http_listener *l = arg;

	options_unref(l->current);
	free(l);
}

int
http_listener_add(struct http_listener_config *cfg, struct tern_err *err)
{
	struct http_listener *l = xcalloc(1, sizeof(*l));
	struct daemon_service svc = {
	    .rank = DAEMON_RANK_LISTENERS,
	    .open = http_listener_open,
	    .close = http_listener_close,
	    .free = http_listener_free,
	    .same = http_listener_same,
	    .update = http_listener_update,
	    .cfg = l,
	};
	char name[160];

	l->current = xcalloc(1, sizeof(*l->current));
	l->current->cfg = *cfg;
	atomic_init(&l->current->refs, 1); /* the listener's */
	memset(cfg, 0, sizeof(*cfg));
	snprintf(name, sizeof(name), "http listener %s", l->current->cfg.listen);
	svc.name = name;
	if (daemon_add_service(&svc, err) < 0) {
		http_listener_free(l);
		return -EEXIST;
	}
	return 0;
}
