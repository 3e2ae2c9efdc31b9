// SPDX-License-Identifier: MIT
/*
 * ESMTP listeners. Each listener has one SO_REUSEPORT socket per shard, so
 * the kernel spreads connections over the shards; the sockets are bound
 * from the main thread (at start-up, or by a reload that adds the listener),
 * which is what lets a bind failure stop ternd, or refuse the reload, with a
 * clear error. A reload that removes a listener only stops its accepting:
 * sessions in progress finish, and the listener's memory stays until exit.
 * A reload that keeps the address keeps its sockets (no connection is refused
 * meanwhile) and gives it the new init's options: each shard switches at a
 * loop boundary, and a session holds the options it was accepted with to its
 * end, so one that spans the reload finishes as it began.
 *
 * Out of descriptors, accept() fails while the connection stays in the
 * backlog, so a level-triggered watcher would spin on it forever. Each shard
 * keeps one reserve descriptor: on EMFILE it gives it up to accept the
 * waiting connection and tell it 421, then stops accepting for a short
 * back-off, so the loop keeps serving the sessions it has.
 */
#include "tern/smtp_listener.h"
#include "tern/daemon.h"
#include "tern/log.h"
#include "tern/metrics.h"
#include "tern/shard.h"
#include "tern/smtp_server.h"
#include "tern/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Accepting pauses this long after accept() failed for want of resources. */
#define LISTENER_BACKOFF 0.1
/* Descriptors the default max_connections leaves for everything else: at least this many. */
#define LISTENER_FD_HEADROOM 64

static const char too_many[] = "421 4.7.0 Too many connections, try again later\r\n";
static const char no_fds[] = "421 4.3.2 Too many connections, try again later\r\n";
static const char too_many_from_ip[] = "421 4.7.0 Too many connections from your address\r\n";

/* Over a limit: answer without a session and close. */
static void
refuse_connection(int fd, const char *msg)
{
	if (write(fd, msg, strlen(msg)) < 0)
		log_debug("smtp_listener", "refusal not sent: %s", strerror(errno));
	close(fd);
}

/* ---- connections per client address ----------------------------------------------------- */

/* Trusted injectors (relay_hosts) open many parallel sessions by design. */
static bool
per_ip_counted(const struct smtp_listener *l, const struct sockaddr_storage *peer)
{
	return l->cfg.max_connections_per_ip > 0 &&
	       !cidr_match_any(l->cfg.relay_hosts, l->cfg.n_relay_hosts,
			       (const struct sockaddr *)peer);
}

static void
per_ip_key(const struct sockaddr_storage *peer, char key[INET6_ADDRSTRLEN])
{
	const void *addr = peer->ss_family == AF_INET6
			       ? (const void *)&((const struct sockaddr_in6 *)peer)->sin6_addr
			       : (const void *)&((const struct sockaddr_in *)peer)->sin_addr;

	if (inet_ntop(peer->ss_family, addr, key, INET6_ADDRSTRLEN) == NULL)
		key[0] = '\0';
}

/* Count one more session from peer; false when that would pass the limit (or on ENOMEM). */
static bool
per_ip_acquire(struct smtp_listener *l, const struct sockaddr_storage *peer)
{
	char key[INET6_ADDRSTRLEN];
	bool ok = true;
	int *count;
	int err;

	if (!per_ip_counted(l, peer))
		return true;
	per_ip_key(peer, key);
	pthread_mutex_lock(&l->port->per_ip_mu);
	count = map_get(&l->port->per_ip, key);
	if (count == NULL && (count = calloc(1, sizeof(*count))) != NULL) {
		map_put(&l->port->per_ip, key, count, &err);
		if (err < 0) {
			free(count); count = NULL;
		}
	}
	if (count == NULL || *count >= l->cfg.max_connections_per_ip)
		ok = false;
	else
		(*count)++;
	pthread_mutex_unlock(&l->port->per_ip_mu);
	return ok;
}

static void
per_ip_release(struct smtp_listener *l, const struct sockaddr_storage *peer)
{
	char key[INET6_ADDRSTRLEN];
	int *count;

	per_ip_key(peer, key);
	pthread_mutex_lock(&l->port->per_ip_mu);
	count = map_get(&l->port->per_ip, key);
	/* The last session of an address takes its entry along: the map holds live peers only. */
	if (count != NULL && --*count <= 0)
		free(map_del(&l->port->per_ip, key));
	pthread_mutex_unlock(&l->port->per_ip_mu);
}

/* ---- options, shared by reference ---------------------------------------------------------- */

static struct smtp_listener *
listener_ref(struct smtp_listener *l)
{
	atomic_fetch_add(&l->refs, 1);
	return l;
}

/* The last reference may go on any thread: the allocator and the TLS list are thread-safe. */
static void
listener_unref(struct smtp_listener *l)
{
	if (l == NULL || atomic_fetch_sub(&l->refs, 1) != 1)
		return;
	smtp_listener_config_free(&l->cfg);
	tls_server_free(l->tls);
	free(l);
}

void
smtp_listener_release(struct smtp_listener *l, const struct sockaddr_storage *peer)
{
	atomic_fetch_sub(&l->port->connections, 1);
	/* The same options counted it at accept: relay_hosts may differ in newer ones. */
	if (per_ip_counted(l, peer))
		per_ip_release(l, peer);
	listener_unref(l);
}

/* ---- accepting ------------------------------------------------------------------------------ */

static void
accept_one(struct listener_shard *ls, int fd, const struct sockaddr_storage *peer)
{
	struct smtp_listener *l = ls->listener;
	int one = 1;

	if (atomic_fetch_add(&l->port->connections, 1) >= l->cfg.max_connections &&
	    l->cfg.max_connections > 0) {
		atomic_fetch_sub(&l->port->connections, 1);
		refuse_connection(fd, too_many);
		return;
	}
	if (!per_ip_acquire(l, peer)) {
		atomic_fetch_sub(&l->port->connections, 1);
		log_ratelimited(LOG_LEVEL_INFO, "smtp_listener",
				"refused a connection on %s: over max_connections_per_ip (%d)",
				l->cfg.listen, l->cfg.max_connections_per_ip);
		refuse_connection(fd, too_many_from_ip);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	listener_ref(l); /* the session's, dropped by smtp_listener_release() */
	if (smtp_session_accept(ls, fd, peer) < 0) {
		smtp_listener_release(l, peer);
		close(fd);
	}
}

static int
reserve_open(void)
{
	return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/*
 * Out of descriptors: spend the reserve on the connection at the head of the
 * backlog, so that it hears 421 instead of waiting, then take the reserve back.
 */
static void
shed_one(struct listener_shard *ls)
{
	int fd;

	if (ls->reserve_fd < 0)
		return;
	close(ls->reserve_fd);
	fd = accept4(ls->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd >= 0)
		refuse_connection(fd, no_fds);
	ls->reserve_fd = reserve_open();
}

/* Stop accepting for a while; the backlog holds what arrives meanwhile. */
static void
accept_backoff(struct listener_shard *ls)
{
	ev_io_stop(ls->shard->loop, &ls->accept_watcher);
	ev_timer_set(&ls->backoff, LISTENER_BACKOFF, 0.);
	ev_timer_start(ls->shard->loop, &ls->backoff);
}

static void
backoff_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct listener_shard *ls = t->data;

	/* Another thread may have taken the descriptor the reserve gave up. */
	if (ls->reserve_fd < 0)
		ls->reserve_fd = reserve_open();
	if (ls->fd >= 0)
		ev_io_start(loop, &ls->accept_watcher);
}

/*
 * Errors that belong to the one connection being accepted, not to us: the
 * peer gave up, or (accept(2), Linux) a network error pending on it.
 */
static bool
accept_error_is_peers(int err)
{
	switch (err) {
	case EINTR:
	case ECONNABORTED:
	case EPROTO:
	case ENETDOWN:
	case ENETUNREACH:
	case EHOSTDOWN:
	case EHOSTUNREACH:
	case ENONET:
	case ENOPROTOOPT:
	case EOPNOTSUPP:
		return true;
	}
	return false;
}

/* Returns true when the accept loop should go on. */
static bool
accept_failed(struct listener_shard *ls, int err)
{
	if (err == EAGAIN || err == EWOULDBLOCK)
		return false;
	if (accept_error_is_peers(err))
		return true;
	if (err == EMFILE || err == ENFILE)
		shed_one(ls);
	log_ratelimited(LOG_LEVEL_WARN, "smtp_listener", "accept on %s: %s; pausing %gs",
			ls->listener->cfg.listen, strerror(err), LISTENER_BACKOFF);
	accept_backoff(ls);
	return false;
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

		if (fd >= 0)
			accept_one(ls, fd, &peer);
		else if (!accept_failed(ls, errno))
			return;
	}
}

int
smtp_listener_default_max_connections(void)
{
	struct rlimit rl;
	rlim_t n;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return 0;
	/* Half for inbound sessions: outbound connections, the spool and DNS need the rest. */
	n = rl.rlim_cur / 2;
	if (rl.rlim_cur - n < LISTENER_FD_HEADROOM)
		n = rl.rlim_cur > LISTENER_FD_HEADROOM ? rl.rlim_cur - LISTENER_FD_HEADROOM : 1;
	return n > 1000000000 ? 1000000000 : (int)n;
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
	int fd = util_listen_reuseport(&c->addr, c->addrlen);

	if (fd < 0)
		tern_err_set(err, 0, "", "esmtp listener %s: %s", c->listen, strerror(-fd));
	return fd;
}

static int
probe_port_free(const struct smtp_listener_config *c, struct tern_err *err)
{
	if (!util_port_in_use(&c->addr, c->addrlen))
		return 0;
	tern_err_set(err, 0, "", "esmtp listener %s: port %u is already in use by another process",
		     c->listen, util_sockaddr_port(&c->addr));
	return -EADDRINUSE;
}

static bool
is_first_shard(const struct listener_shard *ls)
{
	return ls == &ls->listener->port->shards[0];
}

static void
listener_stop_shard(struct shard *shard, void *arg)
{
	struct listener_shard *ls = arg;

	ev_io_stop(shard->loop, &ls->accept_watcher);
	ev_timer_stop(shard->loop, &ls->backoff);
	if (is_first_shard(ls))
		ev_timer_stop(shard->loop, &ls->listener->port->tls_check);
	close(ls->fd);
	ls->fd = -1;
	smtp_sessions_shutdown(ls);
}

static void
listener_exit_shard(struct shard *shard, void *arg)
{
	smtp_sessions_free(arg);
}

/* ---- TLS: loaded with the options, the files watched from shard 0 ------------------------- */

static int
listener_tls_load(struct smtp_listener *l, struct tern_err *err)
{
	const struct tls_server_options opts = {.ciphers = l->cfg.tls_ciphers,
						.ciphersuites = l->cfg.tls_ciphersuites,
						.min_version = l->cfg.tls_min_version};

	if (l->cfg.tls_certificate == NULL)
		return 0;
	l->tls = tls_server_new(l->cfg.tls_certificate, l->cfg.tls_private_key, &opts, err);
	if (l->tls == NULL)
		return -EINVAL;
	metrics_set_tls_expiry(l->cfg.listen, (double)tls_server_not_after(l->tls));
	return 0;
}

static void
port_tls_check_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct listener_port *p = w->data;
	struct smtp_listener *l = p->shards[0].listener;
	struct tern_err err;

	tls_server_check(l->tls, false, &err);
	metrics_set_tls_expiry(l->cfg.listen, (double)tls_server_not_after(l->tls));
}

/* On shard 0: one check per listener, not one per shard, of the files its options name. */
static void
port_tls_arm(struct listener_shard *ls)
{
	const struct smtp_listener *l = ls->listener;
	ev_timer *check = &l->port->tls_check;
	double every = l->cfg.tls_reload_interval > 0 ? l->cfg.tls_reload_interval
						      : TLS_SERVER_CHECK_INTERVAL;

	ev_timer_stop(ls->shard->loop, check);
	if (l->tls == NULL)
		return;
	ev_timer_set(check, every, every);
	ev_timer_start(ls->shard->loop, check);
}

/* ---- the listener service: open, retire, update, close ------------------------------------- */

static void
listener_start_shard(void *arg)
{
	struct listener_shard *ls = arg;

	ev_io_start(ls->shard->loop, &ls->accept_watcher);
	if (is_first_shard(ls))
		port_tls_arm(ls);
	shard_on_stop(ls->shard, listener_stop_shard, ls);
	shard_on_exit(ls->shard, listener_exit_shard, ls);
}

static int
listener_shard_open(struct listener_port *p, int i, struct tern_err *err)
{
	struct listener_shard *ls = &p->shards[i];
	struct smtp_listener *l = p->current;

	ls->listener = listener_ref(l);
	ls->shard = shard_get(i);
	ls->fd = open_socket(&l->cfg, err);
	if (ls->fd < 0)
		return -EINVAL;
	ls->reserve_fd = reserve_open();
	if (ls->reserve_fd < 0) {
		tern_err_set(err, 0, "", "esmtp listener %s: reserve descriptor: %s", l->cfg.listen,
			     strerror(errno));
		return -EMFILE;
	}
	ev_io_init(&ls->accept_watcher, accept_cb, ls->fd, EV_READ);
	ls->accept_watcher.data = ls;
	ev_timer_init(&ls->backoff, backoff_cb, LISTENER_BACKOFF, 0.);
	ls->backoff.data = ls;
	return 0;
}

static int
listener_open(void *arg, struct tern_err *err)
{
	struct listener_port *p = arg;
	int i;

	if (listener_tls_load(p->current, err) < 0)
		return -EINVAL;
	if (probe_port_free(&p->current->cfg, err) < 0)
		return -EADDRINUSE;
	ev_timer_init(&p->tls_check, port_tls_check_cb, 0., 0.);
	p->tls_check.data = p;
	p->n_shards = shard_count();
	p->shards = xcalloc((size_t)p->n_shards, sizeof(*p->shards));
	/* listener_close() after a failure part-way must not close descriptor 0. */
	for (i = 0; i < p->n_shards; i++)
		p->shards[i].fd = p->shards[i].reserve_fd = -1;
	for (i = 0; i < p->n_shards; i++)
		if (listener_shard_open(p, i, err) < 0)
			return -EINVAL;
	/* Before the shard threads start their loops are ours to touch; after, each starts its own. */
	for (i = 0; i < p->n_shards; i++) {
		if (!shards_running())
			listener_start_shard(&p->shards[i]);
		else if (shard_post(p->shards[i].shard, listener_start_shard, &p->shards[i]) < 0)
			log_warn("smtp", "esmtp listener %s: shard %d is stopping",
				 p->current->cfg.listen, i);
	}
	return 0;
}

/* Stop accepting on this shard; its sessions in progress finish. */
static void
listener_retire_shard(void *arg)
{
	struct listener_shard *ls = arg;

	ev_io_stop(ls->shard->loop, &ls->accept_watcher);
	ev_timer_stop(ls->shard->loop, &ls->backoff);
	if (is_first_shard(ls))
		ev_timer_stop(ls->shard->loop, &ls->listener->port->tls_check);
	if (ls->fd >= 0)
		close(ls->fd);
	ls->fd = -1;
}

static void
listener_retire(void *arg)
{
	struct listener_port *p = arg;
	int i;

	for (i = 0; i < p->n_shards; i++)
		shard_post(p->shards[i].shard, listener_retire_shard, &p->shards[i]);
}

/* A reload keeps this address: load what the new options need before anything swaps. */
static int
listener_prepare_update(void *arg, const void *next, struct tern_err *err)
{
	const struct listener_port *np = next;

	(void)arg;
	return listener_tls_load(np->current, err);
}

struct listener_switch {
	struct listener_shard *ls;
	struct smtp_listener *next;
};

/* On the shard: new sessions get the new options; the shard's reference to the old goes. */
static void
listener_switch_shard(void *arg)
{
	struct listener_switch *sw = arg;
	struct listener_shard *ls = sw->ls;
	struct smtp_listener *old = ls->listener;

	ls->listener = sw->next;
	if (is_first_shard(ls) && ls->fd >= 0)
		port_tls_arm(ls);
	listener_unref(old);
	free(sw);
}

/* After the swap: p takes next's options, and each shard switches at its loop boundary. */
static void
listener_update(void *arg, void *next)
{
	struct listener_port *p = arg, *np = next;
	struct smtp_listener *l = np->current;
	int i;

	np->current = NULL; /* np goes with the rest of the reload's pending services */
	l->port = p;
	listener_unref(p->current);
	p->current = l;
	for (i = 0; i < p->n_shards; i++) {
		struct listener_switch *sw = xcalloc(1, sizeof(*sw));

		sw->ls = &p->shards[i];
		sw->next = listener_ref(l);
		if (shard_post(sw->ls->shard, listener_switch_shard, sw) < 0) {
			/* A stopping shard accepts nothing more: it keeps what it has. */
			listener_unref(l);
			free(sw);
		}
	}
}

static void
listener_close(void *arg)
{
	struct listener_port *p = arg;
	int i;

	for (i = 0; i < p->n_shards; i++) {
		if (p->shards[i].fd >= 0)
			close(p->shards[i].fd);
		if (p->shards[i].reserve_fd >= 0)
			close(p->shards[i].reserve_fd);
		listener_unref(p->shards[i].listener);
		p->shards[i].listener = NULL;
	}
	free(p->shards); p->shards = NULL;
	p->n_shards = 0;
}

void
smtp_listener_config_free(struct smtp_listener_config *cfg)
{
	free(cfg->listen);
	free(cfg->hostname);
	free(cfg->banner);
	free(cfg->relay_hosts);
	free(cfg->proxy_trusted);
	free(cfg->tls_certificate);
	free(cfg->tls_private_key);
	free(cfg->tls_ciphers);
	free(cfg->tls_ciphersuites);
	memset(cfg, 0, sizeof(*cfg));
}

static void
listener_free(void *arg)
{
	struct listener_port *p = arg;

	listener_unref(p->current);
	map_deinit(&p->per_ip, free);
	pthread_mutex_destroy(&p->per_ip_mu);
	free(p);
}

int
smtp_listener_add(struct smtp_listener_config *cfg, struct tern_err *err)
{
	struct listener_port *p = xcalloc(1, sizeof(*p));
	struct smtp_listener *l = xcalloc(1, sizeof(*l));
	struct daemon_service svc = {
		.rank = DAEMON_RANK_LISTENERS,
		.open = listener_open,
		.close = listener_close,
		.free = listener_free,
		.retire = listener_retire,
		.prepare_update = listener_prepare_update,
		.update = listener_update,
		.cfg = p,
	};
	char name[160];

	l->cfg = *cfg;
	memset(cfg, 0, sizeof(*cfg));
	atomic_init(&l->refs, 1); /* the port's */
	l->port = p;
	p->current = l;
	atomic_init(&p->connections, 0);
	pthread_mutex_init(&p->per_ip_mu, NULL);
	map_init(&p->per_ip);
	snprintf(name, sizeof(name), "esmtp listener %s", l->cfg.listen);
	svc.name = name;
	if (daemon_add_service(&svc, err) < 0) {
		listener_free(p);
		return -EEXIST;
	}
	return 0;
}
