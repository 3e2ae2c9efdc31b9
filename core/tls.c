// SPDX-License-Identifier: MIT
/*
 * OpenSSL contexts. A context carries everything that is the same for every
 * connection on a listener or for all outbound sessions (versions, ciphers,
 * certificate), so it is built once and shared; failures name the file and
 * OpenSSL's own reason, because an operator fixes them by editing config.
 */
#include "tern/tls.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

/*
 * Outbound mail TLS is opportunistic: a receiver that cannot agree on a
 * cipher gets plaintext instead, so the client's list stays broad and only
 * drops what is broken rather than what is merely old. The server offers
 * the modern list of tls.h: senders that reach us speak it, and one that
 * does not falls back to plaintext rather than to a weak cipher.
 */
#define TLS_CIPHERS_12 "HIGH:!aNULL:!eNULL:!MD5:!RC4:!3DES:!PSK:!SRP:!CAMELLIA:!ARIA"

const char *
tls_last_error(void)
{
	unsigned long e = ERR_get_error();
	const char *r;

	ERR_clear_error();
	if (e == 0)
		return "unknown error";
	/* OpenSSL 3 has no reason string for errno-based errors: use the system's. */
	if (ERR_SYSTEM_ERROR(e))
		return strerror(ERR_GET_REASON(e));
	r = ERR_reason_error_string(e);
	return r != NULL ? r : "unknown error";
}

static SSL_CTX *
tls_ctx_base(const SSL_METHOD *method, struct tern_err *err)
{
	SSL_CTX *ctx = SSL_CTX_new(method);

	if (ctx == NULL) {
		tern_err_set(err, 454, "4.7.0", "TLS context: %s", tls_last_error());
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	if (SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS_12) != 1) {
		tern_err_set(err, 454, "4.7.0", "TLS ciphers: %s", tls_last_error());
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

static int
tls_load_pair(SSL_CTX *ctx, const char *cert_file, const char *key_file, struct tern_err *err)
{
	ERR_clear_error();
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		tern_err_set(err, 454, "4.7.0", "tls_certificate %s: %s", cert_file,
			     tls_last_error());
		return -EINVAL;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		tern_err_set(err, 454, "4.7.0", "tls_private_key %s: %s", key_file,
			     tls_last_error());
		return -EINVAL;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tern_err_set(err, 454, "4.7.0",
			     "tls_private_key %s does not match tls_certificate %s", key_file,
			     cert_file);
		ERR_clear_error();
		return -EINVAL;
	}
	return 0;
}

/*
 * Resumption spares a returning sender the key exchange. Tickets carry the
 * session to the client, so they need no state shared between shards; the
 * ticket key is per context, i.e. per listener and process lifetime, which
 * is enough for a sender reconnecting to the same node. The session-ID cache
 * serves TLS 1.2 clients that do not take tickets; its lock is held only
 * while a handshake looks a session up.
 */
static void
tls_server_resumption(SSL_CTX *ctx)
{
	static const unsigned char sid_ctx[] = "tern-smtp";

	SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	SSL_CTX_sess_set_cache_size(ctx, TLS_SERVER_SESSION_CACHE);
	SSL_CTX_set_timeout(ctx, TLS_SERVER_SESSION_LIFETIME);
	SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_num_tickets(ctx, 1);
}

SSL_CTX *
tls_server_ctx_new(const char *cert_file, const char *key_file, struct tern_err *err)
{
	SSL_CTX *ctx = tls_ctx_base(TLS_server_method(), err);

	if (ctx == NULL)
		return NULL;
	if (tls_server_ctx_configure(ctx, NULL, err) < 0 ||
	    tls_load_pair(ctx, cert_file, key_file, err) < 0) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	tls_server_resumption(ctx);
	return ctx;
}

int
tls_server_ctx_configure(SSL_CTX *ctx, const struct tls_server_options *opts, struct tern_err *err)
{
	static const struct tls_server_options defaults = {0};
	const char *ciphers, *suites;
	int min;

	opts = opts != NULL ? opts : &defaults;
	ciphers = opts->ciphers != NULL ? opts->ciphers : TLS_SERVER_CIPHERS;
	suites = opts->ciphersuites != NULL ? opts->ciphersuites : TLS_SERVER_CIPHERSUITES;
	min = opts->min_version != 0 ? opts->min_version : TLS1_2_VERSION;
	ERR_clear_error();
	if (SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
		tern_err_set(err, 454, "4.7.0", "tls_ciphers '%s': %s", ciphers, tls_last_error());
		return -EINVAL;
	}
	if (SSL_CTX_set_ciphersuites(ctx, suites) != 1) {
		tern_err_set(err, 454, "4.7.0", "tls_ciphersuites '%s': %s", suites,
			     tls_last_error());
		return -EINVAL;
	}
	if (SSL_CTX_set_min_proto_version(ctx, min) != 1) {
		tern_err_set(err, 454, "4.7.0", "tls_min_version: %s", tls_last_error());
		return -EINVAL;
	}
	return 0;
}

int
tls_server_options_check(const struct tls_server_options *opts, struct tern_err *err)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	int rc;

	if (ctx == NULL) {
		tern_err_set(err, 454, "4.7.0", "TLS context: %s", tls_last_error());
		return -ENOMEM;
	}
	rc = tls_server_ctx_configure(ctx, opts, err);
	SSL_CTX_free(ctx);
	return rc;
}

int
tls_parse_version(const char *s, int *version)
{
	if (strcmp(s, "1.2") == 0)
		*version = TLS1_2_VERSION;
	else if (strcmp(s, "1.3") == 0)
		*version = TLS1_3_VERSION;
	else
		return -EINVAL;
	return 0;
}

SSL_CTX *
tls_client_ctx_new(struct tern_err *err)
{
	SSL_CTX *ctx = tls_ctx_base(TLS_client_method(), err);

	if (ctx == NULL)
		return NULL;
	/* RFC 7435: an unverified encrypted session still beats plaintext. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;
}

int
tls_cert_days_left(SSL_CTX *ctx, double *days)
{
	X509 *cert = SSL_CTX_get0_certificate(ctx);
	int d, s;

	if (cert == NULL)
		return -ENOENT;
	if (ASN1_TIME_diff(&d, &s, NULL, X509_get0_notAfter(cert)) != 1)
		return -EINVAL;
	*days = d + s / 86400.0;
	return 0;
}

int
tls_cert_not_after(const X509 *cert, double *t)
{
	struct tm tm;

	if (cert == NULL || ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1)
		return -EINVAL;
	*t = (double)timegm(&tm);
	return 0;
}

int
tls_pem_not_after(const char *pem, double *t)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509 *cert = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	int rc = tls_cert_not_after(cert, t);

	X509_free(cert);
	BIO_free(bio);
	ERR_clear_error();
	return rc;
}
