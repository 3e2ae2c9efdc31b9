/* SPDX-License-Identifier: MIT */
/*
 * OpenSSL contexts for the two sides of SMTP: the server context a listener
 * offers STARTTLS with, and the client context outbound sessions use for
 * opportunistic TLS. A context is shared by every connection (and shard)
 * using it; io.c creates the per-connection SSL objects from it.
 */
#ifndef TERN_TLS_H
#define TERN_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

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
 * Client context: TLS 1.2 or newer. The handshake never fails over the
 * peer's certificate (opportunistic SMTP, RFC 7435); whether it is trusted
 * is asked afterwards with tls_verify_peer(). SNI is set per connection by
 * io_start_tls_client().
 */
SSL_CTX *tls_client_ctx_new(struct tern_err *err);

/*
 * Whether the peer of a completed client handshake presented a chain that
 * leads to a trusted root and names host (RFC 6125: SAN DNS names, "*."
 * wildcards in the left-most label). Trusted roots: the system CA store, or
 * the PEM bundle ca_file when not NULL. 0 when verified; -EACCES with why
 * ("certificate verify failed: self-signed certificate") otherwise.
 */
int tls_verify_peer(SSL *ssl, const char *host, const char *ca_file, char *why, size_t n);

/*
 * Reason of the earliest error on this thread's OpenSSL error queue (the most
 * specific one), e.g. "No such file or directory"; clears the queue.
 */
const char *tls_last_error(void);

/* The notAfter (Unix time) of the first certificate of a PEM text, 0 if none (HTTPS listener). */
time_t tls_pem_not_after(const char *pem);

/* Days until the certificate in ctx expires (for reporting); negative when expired. */
int tls_cert_days_left(SSL_CTX *ctx, double *days);

/*
 * A listener's certificate, reloadable. The key pair's files are checked
 * (device, inode, size, mtime) every interval and on tls_server_reload_all();
 * when they changed, a new context is built from them and replaces the old
 * one for the handshakes that start afterwards, while connections already on
 * the old context keep it (OpenSSL reference-counts contexts). A new pair that
 * does not load keeps the old context and logs why. From 30 days before the
 * certificate expires, a warning is logged once a day.
 */
struct tls_server;

#define TLS_SERVER_CHECK_INTERVAL 60.0
#define TLS_EXPIRY_WARN_DAYS 30

/* Load the pair and build the first context. NULL with err when it does not load. */
struct tls_server *tls_server_new(const char *cert_file, const char *key_file,
				  const struct tls_server_options *opts, struct tern_err *err);
void tls_server_free(struct tls_server *ts);
/* The current context, referenced: SSL_CTX_free() it once the SSL is made. Any thread. */
SSL_CTX *tls_server_get(struct tls_server *ts);
/*
 * Reload the pair if its files changed (always, when force). 1 reloaded, 0
 * unchanged, negative with err when the new pair does not load (the old one
 * stays); either is logged, and so is the daily expiry warning. Any thread.
 */
int tls_server_check(struct tls_server *ts, bool force, struct tern_err *err);
/* tls_server_check() on every live tls_server: what a configuration reload (SIGHUP) calls. */
void tls_server_reload_all(void);
/* The notAfter time (Unix seconds) of the certificate now served, for metrics. */
time_t tls_server_not_after(struct tls_server *ts);
/* fn(cert_file, notAfter, arg) for every live tls_server: e.g. an expiry metric. */
void tls_server_foreach(void (*fn)(const char *cert_file, time_t not_after, void *arg), void *arg);

#endif
