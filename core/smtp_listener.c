// SPDX-License-Identifier: MIT
/*
 * ESMTP listeners. Each listener has one SO_REUSEPORT socket per shard, so
 * the kernel spreads connections over the shards; the sockets are bound at
 * start-up from the main thread (before the shard loops run), which is what
 * lets a bind failure stop ternd with a clear error.
 */
#include "tern/smtp_listener.h"
#include "tern/daemon.h"
#include "tern/log.h"
#include "tern/shard.h"
#include "tern/smtp_server.h"
#include "tern/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Over the limit: answer without a session and close. */
static void
refuse_connection(int fd)
{
	static const char msg[] = "421 4.7.0 Too many connections, try again later\r\n";

	if (write(fd, msg, sizeof(msg) - 1) < 0)
		log_debug("smtp_listener", "refusal not sent: %s", strerror(errno));
	close(fd);
}

static void
accept_one(struct listener_shard *ls, int fd, const struct sockaddr_storage *peer)
{
	struct smtp_listener *l = ls->listener;
	int one = 1;

	if (atomic_fetch_add(&l->connections, 1) >= l->cfg.max_connections &&
	    l->cfg.max_connections > 0) {
		atomic_fetch_sub(&l->connections, 1);
		refuse_connection(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (smtp_session_accept(ls, fd, peer) < 0) {
		atomic_fetch_sub(&l->connections, 1);
		close(fd);
	}
}

static void
accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct listener_shard *ls = w->data;
	int i;

	for (i = 0; i < 64; i++) {
		struct sockaddr_storage peer;
		socklen_t len = sizeof(peer);
		int fd = accept4(ls->fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				log_warn("smtp_listener", "accept on %s: %s", ls->listener->cfg.listen,
					 strerror(errno));
			return;
		}
		accept_one(ls, fd, &peer);
	}
}

/* ---- listeners --------------------------------------------------------------------------- */

int
smtp_listener_parse_address(const char *listen, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[128];
	const char *colon = strrchr(listen, ':');
	const char *h = listen;
	size_t hlen;
	char *end;
	long port;

	if (colon == NULL)
		return -EINVAL;
	port = strtol(colon + 1, &end, 10);
	if (*end || colon[1] == '\0' || port < 0 || port > 65535)
		return -EINVAL;
	hlen = (size_t)(colon - listen);
	if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
		h++;
		hlen -= 2;
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return -EINVAL;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
		ss->ss_family = AF_INET;
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
		*len = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
		ss->ss_family = AF_INET6;
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
		*len = sizeof(struct sockaddr_in6);
	} else {
		return -EINVAL;
	}
	return 0;
}

static int
open_socket(const struct smtp_listener_config *c, struct tern_err *err)
{
	int one = 1;
	int fd = socket(c->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto fail;
	if (c->addr.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&c->addr, c->addrlen) < 0 || listen(fd, 1024) < 0)
		goto fail;
	return fd;
fail:
	tern_err_set(err, 0, "", "esmtp listener %s: %s", c->listen, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

static void
listener_stop_shard(struct shard *shard, void *arg)
{
	struct listener_shard *ls = arg;

	ev_io_stop(shard->loop, &ls->accept_watcher);
	close(ls->fd);
	ls->fd = -1;
	smtp_sessions_shutdown(ls);
}

static void
listener_exit_shard(struct shard *shard, void *arg)
{
	smtp_sessions_free(arg);
}

static int
listener_tls_open(struct smtp_listener *l, struct tern_err *err)
{
	const struct tls_server_options opts = {.ciphers = l->cfg.tls_ciphers,
						.ciphersuites = l->cfg.tls_ciphersuites,
						.min_version = l->cfg.tls_min_version};

	l->tls = tls_server_ctx_new(l->cfg.tls_certificate, l->cfg.tls_private_key, err);
	if (l->tls == NULL)
		return -EINVAL;
	return tls_server_ctx_configure(l->tls, &opts, err);
}

static int
listener_open(void *arg, struct tern_err *err)
{
	struct smtp_listener *l = arg;
	int i;

	if (l->cfg.tls_certificate && listener_tls_open(l, err) < 0)
		return -EINVAL;
	l->n_shards = shard_count();
	l->shards = xcalloc((size_t)l->n_shards, sizeof(*l->shards));
	for (i = 0; i < l->n_shards; i++) {
		struct listener_shard *ls = &l->shards[i];

		ls->listener = l;
		ls->shard = shard_get(i);
		ls->fd = open_socket(&l->cfg, err);
		if (ls->fd < 0)
			return -EINVAL;
		ev_io_init(&ls->accept_watcher, accept_cb, ls->fd, EV_READ);
		ls->accept_watcher.data = ls;
		/* The shard threads have not started yet: their loops are ours to touch. */
		ev_io_start(ls->shard->loop, &ls->accept_watcher);
		shard_on_stop(ls->shard, listener_stop_shard, ls);
		shard_on_exit(ls->shard, listener_exit_shard, ls);
	}
	return 0;
}

static void
listener_close(void *arg)
{
	struct smtp_listener *l = arg;
	int i;

	for (i = 0; i < l->n_shards; i++)
		if (l->shards[i].fd >= 0)
			close(l->shards[i].fd);
	free(l->shards); l->shards = NULL;
	l->n_shards = 0;
	if (l->tls)
		SSL_CTX_free(l->tls);
	l->tls = NULL;
}

void
smtp_listener_config_free(struct smtp_listener_config *cfg)
{
	free(cfg->listen);
	free(cfg->hostname);
	free(cfg->banner);
	free(cfg->relay_hosts);
	free(cfg->tls_certificate);
	free(cfg->tls_private_key);
	free(cfg->tls_ciphers);
	free(cfg->tls_ciphersuites);
	memset(cfg, 0, sizeof(*cfg));
}

static void
listener_free(void *arg)
{
	struct smtp_listener *l = arg;

	smtp_listener_config_free(&l->cfg);
	free(l);
}

int
smtp_listener_add(struct smtp_listener_config *cfg, struct tern_err *err)
{
	struct smtp_listener *l = xcalloc(1, sizeof(*l));
	struct daemon_service svc = {
		.rank = DAEMON_RANK_LISTENERS,
		.open = listener_open,
		.close = listener_close,
		.free = listener_free,
		.cfg = l,
	};
	char name[160];

	l->cfg = *cfg;
	memset(cfg, 0, sizeof(*cfg));
	atomic_init(&l->connections, 0);
	snprintf(name, sizeof(name), "esmtp listener %s", l->cfg.listen);
	svc.name = name;
	if (daemon_add_service(&svc, err) < 0) {
		listener_free(l);
		return -EEXIST;
	}
	return 0;
}
