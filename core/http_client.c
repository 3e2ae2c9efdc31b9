// SPDX-License-Identifier: MIT
/*
 * Asynchronous HTTP for policy (see include/tern/http_client.h).
 *
 * libcurl's multi interface asks for two things through callbacks: which
 * sockets to watch for what (CURLMOPT_SOCKETFUNCTION) and when to call it
 * back for timeouts (CURLMOPT_TIMERFUNCTION). Both map one to one onto
 * ev_io and ev_timer on the shard's loop, and every event goes back through
 * curl_multi_socket_action, after which finished transfers are collected.
 * So a slow server costs a watched socket, never a blocked loop, and one
 * multi handle per shard keeps its connections alive for the next request.
 */
#include "tern/http_client.h"
#include "tern/shard.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <ev.h>

/*
 * A shard's client outlives its loop's end while requests remain: their
 * coroutines are cancelled only when the policy is freed, after the exit
 * hooks, and cancelling removes them from the multi handle, so the last of
 * them frees the client (closing).
 */
struct http_client {
	struct shard *shard;
	CURLM *multi;
	ev_timer timer;
	struct http_sock *socks; /* every watched socket, to free those curl never releases */
	size_t n_requests;
	bool closing;
};

/* One socket curl asked us to watch. */
struct http_sock {
	struct http_client *hc;
	curl_socket_t fd;
	ev_io io;
	struct http_sock *prev, *next;
};

struct http_request {
	struct http_client *hc;
	CURL *easy;
	struct curl_slist *headers;
	struct http_response res;
	http_done_fn done;
	void *arg;
	bool too_large;
};

static struct http_client *clients[SHARD_MAX];
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void
curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void
sock_free(struct http_client *hc, struct http_sock *s)
{
	ev_io_stop(hc->shard->loop, &s->io);
	if (s->prev)
		s->prev->next = s->next;
	else
		hc->socks = s->next;
	if (s->next)
		s->next->prev = s->prev;
	free(s);
}

static void
client_destroy(struct http_client *hc)
{
	ev_timer_stop(hc->shard->loop, &hc->timer);
	curl_multi_cleanup(hc->multi);
	while (hc->socks)
		sock_free(hc, hc->socks);
	free(hc);
}

static void
request_free(struct http_request *r)
{
	struct http_client *hc = r->hc;

	curl_multi_remove_handle(hc->multi, r->easy);
	curl_easy_cleanup(r->easy);
	curl_slist_free_all(r->headers);
	buf_deinit(&r->res.headers);
	buf_deinit(&r->res.body);
	free(r);
	if (--hc->n_requests == 0 && hc->closing)
		client_destroy(hc);
}

static void
request_finish(struct http_request *r, CURLcode rc)
{
	const char *error = NULL;

	if (r->too_large)
		error = "response body too large";
	else if (rc != CURLE_OK)
		error = curl_easy_strerror(rc);
	else
		curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->res.status);
	r->done(r->arg, error ? NULL : &r->res, error);
	request_free(r);
}

/* Hand every finished transfer to its owner. */
static void
collect_done(struct http_client *hc)
{
	struct http_request *r;
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(hc->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		request_finish(r, m->data.result);
	}
}

static void
sock_ready(struct ev_loop *loop, ev_io *w, int revents)
{
	struct http_sock *s = w->data;
	struct http_client *hc = s->hc;
	int mask =
	    (revents & EV_READ ? CURL_CSELECT_IN : 0) | (revents & EV_WRITE ? CURL_CSELECT_OUT : 0);
	int running;

	(void)loop;
	curl_multi_socket_action(hc->multi, s->fd, mask, &running);
	collect_done(hc);
}

static void
timer_fired(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct http_client *hc = w->data;
	int running;

	(void)loop;
	(void)revents;
	curl_multi_socket_action(hc->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	collect_done(hc);
}

/* CURLMOPT_SOCKETFUNCTION: watch fd for what curl wants, or stop watching it. */
static int
sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *sockp)
{
	struct http_client *hc = userp;
	struct http_sock *s = sockp;
	int events = (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (s != NULL)
			sock_free(hc, s);
		curl_multi_assign(hc->multi, fd, NULL);
		return 0;
	}
	if (s == NULL) {
		s = calloc(1, sizeof(*s));
		if (s == NULL)
			return -1;
		s->hc = hc;
		s->fd = fd;
		s->io.data = s;
		s->next = hc->socks;
		if (hc->socks)
			hc->socks->prev = s;
		hc->socks = s;
		curl_multi_assign(hc->multi, fd, s);
	} else {
		ev_io_stop(hc->shard->loop, &s->io);
	}
	ev_io_init(&s->io, sock_ready, fd, events);
	ev_io_start(hc->shard->loop, &s->io);
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: -1 stops the timer; 0 means "as soon as possible", from the loop. */
static int
timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct http_client *hc = userp;

	(void)multi;
	ev_timer_stop(hc->shard->loop, &hc->timer);
	if (timeout_ms >= 0 && !hc->closing) {
		ev_timer_set(&hc->timer, (double)timeout_ms / 1000.0, 0);
		ev_timer_start(hc->shard->loop, &hc->timer);
	}
	return 0;
}

static void
client_exit(struct shard *s, void *arg)
{
	struct http_client *hc = arg;

	clients[s->id] = NULL;
	hc->closing = true;
	if (hc->n_requests == 0)
		client_destroy(hc);
	else
		ev_timer_stop(s->loop, &hc->timer);
}

static struct http_client *
client_for(struct shard *s)
{
	struct http_client *hc = clients[s->id];

	if (hc != NULL)
		return hc;
	pthread_once(&curl_once, curl_init_once);
	hc = calloc(1, sizeof(*hc));
	if (hc == NULL || (hc->multi = curl_multi_init()) == NULL) {
		free(hc);
		return NULL;
	}
	hc->shard = s;
	ev_timer_init(&hc->timer, timer_fired, 0, 0);
	hc->timer.data = hc;
	curl_multi_setopt(hc->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
	curl_multi_setopt(hc->multi, CURLMOPT_SOCKETDATA, hc);
	curl_multi_setopt(hc->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(hc->multi, CURLMOPT_TIMERDATA, hc);
	shard_on_exit(s, client_exit, hc);
	clients[s->id] = hc;
	return hc;
}

static size_t
on_body(char *p, size_t size, size_t nmemb, void *arg)
{
	struct http_request *r = arg;
	size_t n = size * nmemb;

	if (r->res.body.len + n > HTTP_CLIENT_MAX_BODY) {
		r->too_large = true;
		return 0;
	}
	return buf_append(&r->res.body, p, n) == 0 ? n : 0;
}

/* Keep only the last response's header block (after 100 Continue or a redirect). */
static size_t
on_header(char *p, size_t size, size_t nmemb, void *arg)
{
	struct http_request *r = arg;
	size_t n = size * nmemb;

	if (n > 5 && strncmp(p, "HTTP/", 5) == 0)
		buf_reset(&r->res.headers);
	return buf_append(&r->res.headers, p, n) == 0 ? n : 0;
}

static int
set_headers(struct http_request *r, const struct http_request_opts *o)
{
	struct curl_slist *l;
	size_t i;

	for (i = 0; i < o->n_headers; i++) {
		l = curl_slist_append(r->headers, o->headers[i]);
		if (l == NULL)
			return -ENOMEM;
		r->headers = l;
	}
	return curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers) == CURLE_OK ? 0 : -EINVAL;
}

static void
set_options(struct http_request *r, const struct http_request_opts *o)
{
	CURL *e = r->easy;
	double t = o->timeout > 0 ? o->timeout : HTTP_CLIENT_DEFAULT_TIMEOUT;

	curl_easy_setopt(e, CURLOPT_URL, o->url);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, o->method ? o->method : "GET");
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(t * 1000));
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, o->insecure ? 0L : 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, o->insecure ? 0L : 2L);
	if (o->body != NULL) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
		curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, o->body);
	}
}

struct http_request *
http_request_start(struct shard *s, const struct http_request_opts *o, http_done_fn done, void *arg,
		   struct tern_err *err)
{
	struct http_client *hc = client_for(s);
	struct http_request *r = hc ? calloc(1, sizeof(*r)) : NULL;
	const char *why = "out of memory";

	if (r == NULL || (r->easy = curl_easy_init()) == NULL)
		goto fail;
	r->hc = hc;
	r->done = done;
	r->arg = arg;
	buf_init(&r->res.headers);
	buf_init(&r->res.body);
	set_options(r, o);
	if (set_headers(r, o) < 0)
		goto fail;
	why = "cannot start the request";
	if (curl_multi_add_handle(hc->multi, r->easy) != CURLM_OK)
		goto fail;
	hc->n_requests++;
	return r;
fail:
	if (r != NULL) {
		if (r->easy != NULL)
			curl_easy_cleanup(r->easy);
		curl_slist_free_all(r->headers);
		free(r);
	}
	tern_err_set(err, 0, "", "%s", why);
	return NULL;
}

void
http_request_cancel(struct http_request *r)
{
	request_free(r);
}
