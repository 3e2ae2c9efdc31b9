/* SPDX-License-Identifier: MIT */
/*
 * ESMTP listeners: their configuration, one SO_REUSEPORT socket per shard,
 * accepting (with the connection limits across shards: in all, and per client
 * address; out of descriptors, a reserve one and a back-off), and the start-up
 * service that opens them. Sessions themselves are smtp_server's.
 */
#ifndef TERN_SMTP_LISTENER_H
#define TERN_SMTP_LISTENER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <ev.h>
#include <openssl/ssl.h>

#include "tern/cidr.h"
#include "tern/penalty.h"
#include "tern/tls.h"
#include "tern/util.h"
#include "tern/util_map.h"

struct shard;
struct session;

/* Message lines over 998 octets (RFC 5322 2.1.1): what the listener does with them. */
enum smtp_long_lines {
	SMTP_LONG_LINES_REJECT, /* 554 5.6.0 at the end of data */
	SMTP_LONG_LINES_WRAP,	/* folded before the hooks see the message */
	SMTP_LONG_LINES_ALLOW,	/* relayed as they are */
};

struct smtp_listener_config {
	char *listen; /* "127.0.0.1:25", "[::1]:25" */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char *hostname;
	char *banner;
	struct cidr *relay_hosts;
	size_t n_relay_hosts;
	uint64_t max_message_size;
	int max_recipients;
	int max_messages_per_connection; /* 0 = unlimited */
	int max_connections;             /* across all shards; 0 = unlimited */
	int max_connections_per_ip;      /* across all shards; 0 = unlimited; relay_hosts exempt */
	double client_timeout;
	double data_timeout; /* deadline for a whole DATA or BDAT payload */
	char *tls_certificate;
	char *tls_private_key;
	char *tls_ciphers;	/* NULL: TLS_SERVER_CIPHERS */
	char *tls_ciphersuites; /* NULL: TLS_SERVER_CIPHERSUITES */
	int tls_min_version;	/* 0: TLS 1.2 */
	double tls_reload_interval; /* seconds between checks of the certificate files */
	bool require_tls;
	bool fix_line_endings; /* invalid_line_endings = 'fix' */
	/* Limits against slow, brute-forcing and erring clients (smtp_limits). */
	double command_timeout; /* deadline for one command line, from its first byte */
	int max_errors;		/* consecutive error replies before 421; 0 = unlimited */
	int max_auth_failures;	/* failed AUTHs on a connection before 421; 0 = unlimited */
	double auth_failure_delay;
	struct penalty_rule auth_failures_per_ip;
	enum smtp_long_lines long_lines;
	/*
	 * PROXY protocol (v1 and v2): peers in proxy_trusted open with a header
	 * naming the client; others are closed when proxy_required, served as
	 * themselves otherwise.
	 */
	bool proxy_protocol;
	bool proxy_required;
	struct cidr *proxy_trusted;
	size_t n_proxy_trusted;
};

/* A listener's presence on one shard: its socket and the sessions it accepted. */
struct listener_shard {
	/* The options new sessions get here; one reference. Shard thread only once running. */
	struct smtp_listener *listener;
	struct shard *shard;
	int fd;
	int reserve_fd; /* /dev/null, given up to refuse a connection when out of descriptors */
	ev_io accept_watcher;
	ev_timer backoff; /* accepting paused after accept() failed for want of resources */
	struct session *sessions;
};

/*
 * One listening address: what stays as it is across reloads (the sockets, their
 * sessions, the connection counts) while its options change. This is the service
 * the daemon keeps; a reload that keeps the address hands it the new init's options.
 */
struct listener_port {
	struct smtp_listener *current; /* the newest options (main thread) */
	struct listener_shard *shards;
	int n_shards;
	ev_timer tls_check; /* on shard 0: the current certificate files changed? */
	atomic_int connections;
	/* Live sessions per client address ("192.0.2.1" -> int *), shared by the shards. */
	pthread_mutex_t per_ip_mu;
	struct map per_ip;
};

/*
 * A listener's options as one init defined them, and the TLS context loaded from
 * them. Shared by reference: the port (current ones), each shard (the ones it
 * gives new sessions) and each session (to its end), so a session keeps the
 * options it began with across reloads.
 */
struct smtp_listener {
	struct smtp_listener_config cfg;
	struct tls_server *tls;
	struct listener_port *port;
	atomic_int refs;
};

/* Parse "addr:port" / "[v6]:port". */
int smtp_listener_parse_address(const char *listen, struct sockaddr_storage *ss,
				socklen_t *len);
/* Register a listener (taking ownership of cfg) to be opened at start-up. */
int smtp_listener_add(struct smtp_listener_config *cfg, struct tern_err *err);
void smtp_listener_config_free(struct smtp_listener_config *cfg);
/* A session accepted on l from peer has ended: release its connection counts. */
void smtp_listener_release(struct smtp_listener *l, const struct sockaddr_storage *peer);
/* max_connections when not set: half the soft RLIMIT_NOFILE (0, unlimited, when infinite). */
int smtp_listener_default_max_connections(void);

#endif
