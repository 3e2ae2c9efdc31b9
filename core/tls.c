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

#include <openssl/err.h>
#include <openssl/x509.h>

/*
 * Mail TLS is mostly opportunistic: a sender that cannot agree on a cipher
 * falls back to plaintext, so the list stays broad and only drops what is
 * broken rather than what is merely old. TLS 1.3 suites are OpenSSL's default.
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

SSL_CTX *
tls_server_ctx_new(const char *cert_file, const char *key_file, struct tern_err *err)
{
	SSL_CTX *ctx = tls_ctx_base(TLS_server_method(), err);

	if (ctx == NULL)
		return NULL;
	if (tls_load_pair(ctx, cert_file, key_file, err) < 0) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	/*
	 * No resumption: sending MTAs rarely resume, a server-side cache would
	 * be a lock shared by every shard, and tickets would need their keys
	 * rotated in step across the fleet. Full handshakes are the honest cost.
	 */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_num_tickets(ctx, 0);
	return ctx;
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
