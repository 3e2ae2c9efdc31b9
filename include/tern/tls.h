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
 * What a server offers by default: TLS 1.2 with ECDHE key exchange and AEAD
 * ciphers only (no static RSA, no CBC, no SHA-1 MACs), and TLS 1.3.
 */
#define TLS_SERVER_CIPHERS                                                                  \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                        \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                        \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS_SERVER_CIPHERSUITES                                                             \
	"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
/* Resumable sessions kept per server context, and how long one stays valid (seconds). */
#define TLS_SERVER_SESSION_CACHE 16384
#define TLS_SERVER_SESSION_LIFETIME 3600

/* A listener's TLS choices; a NULL or 0 field takes the default above. */
struct tls_server_options {
	const char *ciphers;	  /* TLS 1.2 and older, OpenSSL cipher-list syntax */
	const char *ciphersuites; /* TLS 1.3, OpenSSL ciphersuites syntax */
	int min_version;	  /* TLS1_2_VERSION or TLS1_3_VERSION */
};

/*
 * Server context: the default options, session resumption (tickets and a
 * session-ID cache), the certificate chain and key from PEM files. NULL with
 * err naming the file and OpenSSL's reason on failure.
 */
SSL_CTX *tls_server_ctx_new(const char *cert_file, const char *key_file, struct tern_err *err);

/* Apply a listener's options (NULL: the defaults). 0, or -EINVAL with err naming the option. */
int tls_server_ctx_configure(SSL_CTX *ctx, const struct tls_server_options *opts,
			     struct tern_err *err);

/* Whether opts would configure a server context: for checking policy at load. */
int tls_server_options_check(const struct tls_server_options *opts, struct tern_err *err);

/* "1.2" or "1.3" to TLS1_2_VERSION / TLS1_3_VERSION; -EINVAL for anything else. */
int tls_parse_version(const char *s, int *version);

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

/* A certificate's notAfter as Unix time (metrics); -EINVAL when cert is NULL or unreadable. */
int tls_cert_not_after(const X509 *cert, double *t);
/* The same for the first certificate of a PEM text (the HTTPS listener keeps PEM). */
int tls_pem_not_after(const char *pem, double *t);

/* Days until the certificate in ctx expires (for reporting); negative when expired. */
int tls_cert_days_left(SSL_CTX *ctx, double *days);

#endif
