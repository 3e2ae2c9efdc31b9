/* SPDX-License-Identifier: MIT */
/*
 * OpenSSL contexts for the two sides of SMTP: the server context a listener
 * offers STARTTLS with, and the client context outbound sessions use for
 * opportunistic TLS. A context is shared by every connection (and shard)
 * using it; io.c creates the per-connection SSL objects from it.
 */
#ifndef TERN_TLS_H
#define TERN_TLS_H

#include <openssl/ssl.h>

#include "tern/util.h"

/*
 * Server context: TLS 1.2 or newer, the certificate chain and key from PEM
 * files. NULL with err naming the file and OpenSSL's reason on failure.
 */
SSL_CTX *tls_server_ctx_new(const char *cert_file, const char *key_file, struct tern_err *err);

/*
 * Client context: TLS 1.2 or newer, no certificate verification (opportunistic
 * SMTP, RFC 7435); SNI is set per connection by io_start_tls_client().
 */
SSL_CTX *tls_client_ctx_new(struct tern_err *err);

/*
 * Reason of the earliest error on this thread's OpenSSL error queue (the most
 * specific one), e.g. "No such file or directory"; clears the queue.
 */
const char *tls_last_error(void);

/* Days until the certificate in ctx expires (for reporting); negative when expired. */
int tls_cert_days_left(SSL_CTX *ctx, double *days);

#endif
