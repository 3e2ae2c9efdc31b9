/* SPDX-License-Identifier: MIT */
/*
 * ESMTP listeners: the receiving state machine, limits, TLS, relay control
 * and policy hooks. Each listener has one SO_REUSEPORT socket per shard;
 * a session lives entirely on the shard that accepted it.
 */
#ifndef TERN_SMTP_SERVER_H
#define TERN_SMTP_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "tern/cidr.h"
#include "tern/util.h"

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
	bool require_tls;
	bool fix_line_endings; /* invalid_line_endings = 'fix' */
};

/* Parse "addr:port" / "[v6]:port" into cfg->addr. */
int smtp_listener_parse_address(const char *listen, struct sockaddr_storage *ss,
				socklen_t *len);
/* Register a listener (taking ownership of cfg) to be opened at start-up. */
int smtp_server_add_listener(struct smtp_listener_config *cfg, struct tern_err *err);
void smtp_listener_config_free(struct smtp_listener_config *cfg);

#endif
