/* SPDX-License-Identifier: MIT */
/*
 * ESMTP listeners: their configuration, one SO_REUSEPORT socket per shard,
 * accepting (with the connection limit across shards), and the start-up
 * service that opens them. Sessions themselves are smtp_server's.
 */
#ifndef TERN_SMTP_LISTENER_H
#define TERN_SMTP_LISTENER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <ev.h>
#include <openssl/ssl.h>

#include "tern/cidr.h"
#include "tern/util.h"

struct shard;
struct session;

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
	double client_timeout;
	double data_timeout;
	char *tls_certificate;
	char *tls_private_key;
	char *tls_ciphers;	/* NULL: TLS_SERVER_CIPHERS */
	char *tls_ciphersuites; /* NULL: TLS_SERVER_CIPHERSUITES */
	int tls_min_version;	/* 0: TLS 1.2 */
	bool require_tls;
	bool fix_line_endings; /* invalid_line_endings = 'fix' */
};

/* A listener's presence on one shard: its socket and the sessions it accepted. */
struct listener_shard {
	struct smtp_listener *listener;
	struct shard *shard;
	int fd;
	ev_io accept_watcher;
	struct session *sessions;
};

struct smtp_listener {
	struct smtp_listener_config cfg;
	SSL_CTX *tls;
	struct listener_shard *shards;
	int n_shards;
	atomic_int connections;
};

/* Parse "addr:port" / "[v6]:port". */
int smtp_listener_parse_address(const char *listen, struct sockaddr_storage *ss,
				socklen_t *len);
/* Register a listener (taking ownership of cfg) to be opened at start-up. */
int smtp_listener_add(struct smtp_listener_config *cfg, struct tern_err *err);
void smtp_listener_config_free(struct smtp_listener_config *cfg);

#endif
