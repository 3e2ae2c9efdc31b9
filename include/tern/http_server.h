/* SPDX-License-Identifier: MIT */
/*
 * HTTP listeners (tern.start_http_listener): HTTP/1.1 parsed by
 * libmicrohttpd, driven from each shard's own libev loop, and the one
 * interface endpoints see. An endpoint is a route (method, path, handler)
 * listed in http_routes.c; its handler runs on the shard that accepted the
 * request, once the body is complete and the client is allowed, and answers
 * exactly once with http_request_reply*(), then or later (after a hook, a
 * synced spool write): the connection waits suspended meanwhile.
 *
 * Access: clients in trusted_hosts (default loopback) are allowed; others
 * must pass Basic or Bearer credentials that the policy hooks
 * http_server_validate_auth_basic(user, password) or
 * http_server_validate_auth_bearer(token) accept; otherwise 401.
 */
#ifndef TERN_HTTP_SERVER_H
#define TERN_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "tern/cidr.h"
#include "tern/util.h"

struct shard;
struct http_request;

struct http_listener_config {
	char *listen; /* "127.0.0.1:8000", "[::1]:8000" */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	struct cidr *trusted_hosts;
	size_t n_trusted_hosts;
	char *tls_certificate;
	char *tls_private_key;
	uint64_t request_body_limit; /* bytes; larger bodies get 413 */
	double client_timeout;	     /* seconds of client silence before the connection is closed */
	int max_connections;	     /* per shard */
	/*
	 * PROXY protocol (v1 and v2), as on ESMTP listeners: peers in
	 * proxy_trusted open with a header naming the client, who is then the
	 * peer trusted_hosts and records judge; a trusted peer without a valid
	 * header within client_timeout is closed, and so is any other peer when
	 * proxy_required (otherwise it is served as itself).
	 */
	bool proxy_protocol;
	bool proxy_required;
	struct cidr *proxy_trusted;
	size_t n_proxy_trusted;
};

/* Register a listener (taking ownership of cfg) to be opened at start-up. */
int http_listener_add(struct http_listener_config *cfg, struct tern_err *err);
void http_listener_config_free(struct http_listener_config *cfg);

/* An endpoint: runs on the request's shard; must answer once, now or later. */
typedef void (*http_handler_fn)(struct http_request *req);
/* Called instead of the answer when the request is dropped first (shutdown): release its work. */
typedef void (*http_abort_fn)(void *arg);

struct http_route {
	const char *method; /* "GET", "POST", "DELETE" */
	const char *path;   /* exact path, without the query string */
	http_handler_fn handler;
};

/* The routes table (http_routes.c): ends with a NULL method. */
extern const struct http_route http_routes[];

const char *http_request_method(const struct http_request *req);
const char *http_request_path(const struct http_request *req);
/* The body received (NUL-terminated; len may be 0). */
const char *http_request_body(const struct http_request *req, size_t *len);
/* A query-string argument, or NULL. */
const char *http_request_arg(const struct http_request *req, const char *name);
const char *http_request_peer(const struct http_request *req);
const char *http_request_listener(const struct http_request *req);
struct shard *http_request_shard(const struct http_request *req);
/* What to call if the request is dropped before its answer; NULL clears. */
void http_request_on_abort(struct http_request *req, http_abort_fn fn, void *arg);

/* Answer with a body (copied) of the given Content-Type. */
void http_request_reply(struct http_request *req, unsigned status, const char *content_type,
			const char *body, size_t len);
/* Answer with a JSON body (copied). */
void http_request_reply_json(struct http_request *req, unsigned status, const char *json,
			     size_t len);
/* Answer with the JSON in b and free it (503 when building b ran out of memory). */
void http_request_reply_buf(struct http_request *req, unsigned status, struct buf *b);
/* Answer {"error": msg}. */
void http_request_reply_error(struct http_request *req, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
