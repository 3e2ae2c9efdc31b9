/* SPDX-License-Identifier: MIT */
/*
 * Outbound SMTP sessions: connect from a source address, banner, EHLO
 * (HELO fallback), STARTTLS per policy, PIPELINING when offered, several
 * messages per connection, QUIT when idle. The owner (an egress ready
 * queue) hands out messages through take() and hears about the end of the
 * connection through ended(); each message's outcome is settled here.
 */
#ifndef TERN_SMTP_CLIENT_H
#define TERN_SMTP_CLIENT_H

#include <stdbool.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "tern/egress_route.h"

struct ev_loop;
struct smtp_client;
struct queue_msg;

/*
 * REQUIRED: STARTTLS and a certificate chain that verifies against the trusted
 * roots and names the MX host, or a transient failure. REQUIRED_INSECURE:
 * STARTTLS, whatever the certificate. OPPORTUNISTIC: STARTTLS when offered,
 * never failing over the certificate (RFC 7435).
 */
enum smtp_tls_mode {
	SMTP_TLS_OPPORTUNISTIC,
	SMTP_TLS_REQUIRED,
	SMTP_TLS_DISABLED,
	SMTP_TLS_REQUIRED_INSECURE,
};

struct smtp_client_config {
	/* identity */
	const char *pool;
	const char *source;
	const struct sockaddr_storage *source_addr; /* NULL: the system picks */
	const char *source_address_text;
	const char *ehlo;
	/* destination */
	const struct egress_route *route;
	/* behaviour */
	enum smtp_tls_mode tls;
	bool skip_tls; /* opportunistic TLS failed recently here: go plain */
	SSL_CTX *tls_ctx;
	const char *tls_ca_file; /* trusted roots for verification; NULL: the system's */
	int max_deliveries;
	double connect_timeout, banner_timeout, ehlo_timeout, mail_timeout, rcpt_timeout,
		data_timeout, idle_timeout;
};

struct smtp_client_owner {
	/* The next message for this connection, or NULL: it waits (idle) until smtp_client_kick(). */
	struct queue_msg *(*take)(void *owner, struct smtp_client *c);
	/*
	 * The connection is gone. tls_failed: an opportunistic TLS handshake
	 * failed. unreachable: no address of the site accepted a connection.
	 */
	void (*ended)(void *owner, struct smtp_client *c, bool tls_failed, bool unreachable);
	void *arg;
};

/* The config (and the route) must outlive the client. */
struct smtp_client *smtp_client_start(struct ev_loop *loop, const struct smtp_client_config *cfg,
				      const struct smtp_client_owner *owner);
/* An idle client asks take() again. */
void smtp_client_kick(struct smtp_client *c);
bool smtp_client_idle(const struct smtp_client *c);
/* Close now (shutdown): a message in flight gets a transient failure. */
void smtp_client_abort(struct smtp_client *c);

#endif
