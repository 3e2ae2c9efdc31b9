/* SPDX-License-Identifier: MIT */
/*
 * An asynchronous HTTP(S) client on the shard's event loop: libcurl's multi
 * interface with its sockets and timer handed to libev (no thread per
 * request). Each shard has one multi handle, so connections to the same
 * host are reused by every request of that shard. TLS peers are verified
 * unless a request says otherwise.
 *
 * The done callback always runs later, from the shard's loop, never inside
 * http_request_start(); after it the request is gone.
 */
#ifndef TERN_HTTP_CLIENT_H
#define TERN_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "tern/util.h"

struct shard;
struct http_request;

/* Bodies larger than this fail the request rather than grow without bound. */
#define HTTP_CLIENT_MAX_BODY (64u << 20)
#define HTTP_CLIENT_DEFAULT_TIMEOUT 30.0

struct http_request_opts {
	const char *method; /* "GET" when NULL */
	const char *url;
	const char *const *headers; /* "Name: value" lines */
	size_t n_headers;
	const char *body; /* sent as is; NULL = none */
	size_t body_len;
	double timeout; /* seconds for the whole exchange; 0 = default */
	bool insecure;	/* skip TLS peer and host verification */
};

struct http_response {
	long status;
	struct buf
	    headers; /* the final response's header lines, CRLF-separated, status line first */
	struct buf body;
};

/* res is NULL and error set when the exchange failed (timeout, refused, ...). */
typedef void (*http_done_fn)(void *arg, const struct http_response *res, const char *error);

/* Start a request on shard s's loop (the calling thread must be s's). NULL with err. */
struct http_request *http_request_start(struct shard *s, const struct http_request_opts *o,
					http_done_fn done, void *arg, struct tern_err *err);
/* Abandon a request whose done has not run yet: done never runs. */
void http_request_cancel(struct http_request *r);

#endif
