// SPDX-License-Identifier: MIT
/*
 * OpenSSL contexts. A context carries everything that is the same for every
 * connection on a listener or for all outbound sessions (versions, ciphers,
 * certificate), so it is built once and shared; failures name the file and
 * OpenSSL's own reason, because an operator fixes them by editing config.
 */
#include "tern/tls.h"

#include "tern/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

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

/* A certificate's notAfter as Unix time; 0 when there is none or it cannot be read. */
static time_t
cert_not_after(const X509 *cert)
{
	struct tm tm;

	if (cert == NULL || ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1)
		return 0;
	return timegm(&tm);
}

time_t
tls_pem_not_after(const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509 *cert = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	time_t t = cert_not_after(cert);

	X509_free(cert);
	BIO_free(bio);
	ERR_clear_error();
	return t;
}

/* ---- peer verification (outbound) ------------------------------------------------------------ */

/*
 * Stores of trusted roots, built once and shared read-only by every shard:
 * the system's, and one per CA file a path names. The handshake itself never
 * verifies (an opportunistic session must not fail over a certificate), so the
 * chain is checked here, after it, against the store the path asks for.
 */
struct tls_store {
	struct tls_store *next;
	char *ca_file; /* NULL: the system store */
	X509_STORE *store;
};

static pthread_mutex_t tls_stores_mu = PTHREAD_MUTEX_INITIALIZER;
static struct tls_store *tls_stores;

static X509_STORE *
tls_store_load(const char *ca_file, char *why, size_t n)
{
	X509_STORE *store = X509_STORE_new();
	int ok;

	if (store == NULL) {
		snprintf(why, n, "out of memory");
		return NULL;
	}
	ERR_clear_error();
	ok = ca_file != NULL ? X509_STORE_load_file(store, ca_file)
			     : X509_STORE_set_default_paths(store);
	if (ok != 1) {
		snprintf(why, n, "tls_ca_file %s: %s", ca_file ? ca_file : "(system)",
			 tls_last_error());
		X509_STORE_free(store);
		return NULL;
	}
	return store;
}

static X509_STORE *
tls_store_get(const char *ca_file, char *why, size_t n)
{
	struct tls_store *t;

	pthread_mutex_lock(&tls_stores_mu);
	for (t = tls_stores; t; t = t->next)
		if ((t->ca_file == NULL) == (ca_file == NULL) &&
		    (ca_file == NULL || strcmp(t->ca_file, ca_file) == 0))
			break;
	if (t == NULL && (t = calloc(1, sizeof(*t))) != NULL) {
		t->store = tls_store_load(ca_file, why, n);
		t->ca_file = ca_file ? strdup(ca_file) : NULL;
		if (t->store == NULL || (ca_file && t->ca_file == NULL)) {
			X509_STORE_free(t->store);
			free(t);
			t = NULL;
		} else {
			t->next = tls_stores;
			tls_stores = t;
		}
	}
	pthread_mutex_unlock(&tls_stores_mu);
	return t ? t->store : NULL;
}

static int
tls_verify_chain(X509_STORE *store, X509 *leaf, STACK_OF(X509) * chain, const char *host, char *why,
		 size_t n)
{
	X509_STORE_CTX *vctx = X509_STORE_CTX_new();
	X509_VERIFY_PARAM *param;
	/* An MX name from DNS ends in the root's dot, which certificates never carry. */
	size_t hlen = strlen(host) - (host[0] != '\0' && host[strlen(host) - 1] == '.');
	int rc = -EACCES;

	if (vctx == NULL || X509_STORE_CTX_init(vctx, store, leaf, chain) != 1) {
		snprintf(why, n, "certificate verify failed: out of memory");
		goto out;
	}
	param = X509_STORE_CTX_get0_param(vctx);
	X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_SERVER);
	X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	X509_VERIFY_PARAM_set1_host(param, host, hlen);
	if (X509_verify_cert(vctx) == 1)
		rc = 0;
	else
		snprintf(why, n, "certificate verify failed for %.*s: %s", (int)hlen, host,
			 X509_verify_cert_error_string(X509_STORE_CTX_get_error(vctx)));
out:
	X509_STORE_CTX_free(vctx);
	ERR_clear_error();
	return rc;
}

int
tls_verify_peer(SSL *ssl, const char *host, const char *ca_file, char *why, size_t n)
{
	X509 *leaf = SSL_get0_peer_certificate(ssl);
	X509_STORE *store;

	if (leaf == NULL) {
		snprintf(why, n, "certificate verify failed: the server sent no certificate");
		return -EACCES;
	}
	store = tls_store_get(ca_file, why, n);
	if (store == NULL)
		return -EACCES;
	return tls_verify_chain(store, leaf, SSL_get_peer_cert_chain(ssl), host, why, n);
}

/* ---- reloadable server certificates ------------------------------------------------------------
 */

/* What identifies a file's content cheaply: a rename, a rewrite or a touch changes it. */
struct tls_file_id {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

struct tls_server {
	struct tls_server *next, *prev; /* in tls_servers, for tls_server_reload_all() */
	pthread_mutex_t mu;		/* ctx, ids, not_after, warned_at */
	SSL_CTX *ctx;
	char *cert_file, *key_file;
	char *ciphers, *ciphersuites;
	int min_version;
	struct tls_file_id cert_id, key_id;
	time_t not_after;
	time_t warned_at; /* last expiry warning */
};

static pthread_mutex_t tls_servers_mu = PTHREAD_MUTEX_INITIALIZER;
static struct tls_server *tls_servers;

static void
tls_file_id_read(const char *path, struct tls_file_id *id)
{
	struct stat st;

	memset(id, 0, sizeof(*id));
	if (stat(path, &st) < 0)
		return;
	id->dev = st.st_dev;
	id->ino = st.st_ino;
	id->size = st.st_size;
	id->mtime = st.st_mtim;
}

static bool
tls_file_id_eq(const struct tls_file_id *a, const struct tls_file_id *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

static time_t
tls_ctx_not_after(SSL_CTX *ctx)
{
	return cert_not_after(SSL_CTX_get0_certificate(ctx));
}

static SSL_CTX *
tls_server_build(const struct tls_server *ts, struct tern_err *err)
{
	const struct tls_server_options opts = {.ciphers = ts->ciphers,
						.ciphersuites = ts->ciphersuites,
						.min_version = ts->min_version};
	SSL_CTX *ctx = tls_server_ctx_new(ts->cert_file, ts->key_file, err);

	if (ctx != NULL && tls_server_ctx_configure(ctx, &opts, err) < 0) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* From TLS_EXPIRY_WARN_DAYS before notAfter, once a day; called with ts->mu held. */
static void
tls_server_warn_expiry(struct tls_server *ts, time_t now)
{
	double days = difftime(ts->not_after, now) / 86400.0;

	if (ts->not_after == 0 || days >= TLS_EXPIRY_WARN_DAYS || now - ts->warned_at < 86400)
		return;
	ts->warned_at = now;
	if (days < 0)
		log_warn("tls", "certificate %s expired %.0f days ago", ts->cert_file, -days);
	else
		log_warn("tls", "certificate %s expires in %.1f days", ts->cert_file, days);
}

static void
tls_server_opts_copy(struct tls_server *ts, const struct tls_server_options *opts)
{
	ts->ciphers = opts && opts->ciphers ? xstrdup(opts->ciphers) : NULL;
	ts->ciphersuites = opts && opts->ciphersuites ? xstrdup(opts->ciphersuites) : NULL;
	ts->min_version = opts ? opts->min_version : 0;
}

struct tls_server *
tls_server_new(const char *cert_file, const char *key_file, const struct tls_server_options *opts,
	       struct tern_err *err)
{
	struct tls_server *ts = xcalloc(1, sizeof(*ts));

	pthread_mutex_init(&ts->mu, NULL);
	ts->cert_file = xstrdup(cert_file);
	ts->key_file = xstrdup(key_file);
	tls_server_opts_copy(ts, opts);
	tls_file_id_read(cert_file, &ts->cert_id);
	tls_file_id_read(key_file, &ts->key_id);
	ts->ctx = tls_server_build(ts, err);
	if (ts->ctx == NULL) {
		tls_server_free(ts);
		return NULL;
	}
	ts->not_after = tls_ctx_not_after(ts->ctx);
	tls_server_warn_expiry(ts, time(NULL));
	pthread_mutex_lock(&tls_servers_mu);
	ts->next = tls_servers;
	if (tls_servers)
		tls_servers->prev = ts;
	tls_servers = ts;
	pthread_mutex_unlock(&tls_servers_mu);
	return ts;
}

void
tls_server_free(struct tls_server *ts)
{
	if (ts == NULL)
		return;
	pthread_mutex_lock(&tls_servers_mu);
	if (ts->prev)
		ts->prev->next = ts->next;
	else if (tls_servers == ts)
		tls_servers = ts->next;
	if (ts->next)
		ts->next->prev = ts->prev;
	pthread_mutex_unlock(&tls_servers_mu);
	SSL_CTX_free(ts->ctx);
	free(ts->cert_file);
	free(ts->key_file);
	free(ts->ciphers);
	free(ts->ciphersuites);
	pthread_mutex_destroy(&ts->mu);
	free(ts);
}

SSL_CTX *
tls_server_get(struct tls_server *ts)
{
	SSL_CTX *ctx;

	pthread_mutex_lock(&ts->mu);
	ctx = ts->ctx;
	SSL_CTX_up_ref(ctx);
	pthread_mutex_unlock(&ts->mu);
	return ctx;
}

/*
 * The files are read with the lock held: a reload is rare and reads two
 * small files, and holding it keeps two reloads from racing each other.
 */
static int
tls_server_swap(struct tls_server *ts, const struct tls_file_id *cert_id,
		const struct tls_file_id *key_id, struct tern_err *err)
{
	SSL_CTX *ctx = tls_server_build(ts, err);

	if (ctx == NULL)
		return -EINVAL;
	SSL_CTX_free(ts->ctx);
	ts->ctx = ctx;
	ts->cert_id = *cert_id;
	ts->key_id = *key_id;
	ts->not_after = tls_ctx_not_after(ctx);
	ts->warned_at = 0;
	return 1;
}

int
tls_server_check(struct tls_server *ts, bool force, struct tern_err *err)
{
	struct tls_file_id cert_id, key_id;
	int rc = 0;

	tls_file_id_read(ts->cert_file, &cert_id);
	tls_file_id_read(ts->key_file, &key_id);
	pthread_mutex_lock(&ts->mu);
	if (force || !tls_file_id_eq(&cert_id, &ts->cert_id) ||
	    !tls_file_id_eq(&key_id, &ts->key_id)) {
		rc = tls_server_swap(ts, &cert_id, &key_id, err);
		if (rc < 0) {
			/* Not again every interval for the same broken files: once they change. */
			ts->cert_id = cert_id;
			ts->key_id = key_id;
		}
	}
	tls_server_warn_expiry(ts, time(NULL));
	pthread_mutex_unlock(&ts->mu);
	if (rc < 0)
		log_warn("tls", "certificate reload failed, keeping the old one: %s", err->msg);
	else if (rc > 0)
		log_info("tls", "certificate %s reloaded", ts->cert_file);
	return rc;
}

void
tls_server_reload_all(void)
{
	struct tls_server *ts;
	struct tern_err err;

	pthread_mutex_lock(&tls_servers_mu);
	for (ts = tls_servers; ts; ts = ts->next)
		tls_server_check(ts, false, &err);
	pthread_mutex_unlock(&tls_servers_mu);
}

time_t
tls_server_not_after(struct tls_server *ts)
{
	time_t t;

	pthread_mutex_lock(&ts->mu);
	t = ts->not_after;
	pthread_mutex_unlock(&ts->mu);
	return t;
}

void
tls_server_foreach(void (*fn)(const char *cert_file, time_t not_after, void *arg), void *arg)
{
	struct tls_server *ts;

	pthread_mutex_lock(&tls_servers_mu);
	for (ts = tls_servers; ts; ts = ts->next)
		fn(ts->cert_file, tls_server_not_after(ts), arg);
	pthread_mutex_unlock(&tls_servers_mu);
}
