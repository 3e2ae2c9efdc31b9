// SPDX-License-Identifier: MIT
/*
 * DKIM signing. The body is canonicalised and hashed in one streaming pass
 * with only a small staging buffer (the body is the bulk of the bytes and
 * this is the MTA's hottest path); header fields are located by offset, never
 * copied, and only the few that are signed are canonicalised into a buffer.
 *
 * Keys are expensive to parse (an RSA PEM costs more than a signature), so
 * they live in one process-wide cache by path; a signer holds a cache entry
 * and the entry re-checks its file at most once per interval, so a rotated
 * key is picked up without a restart.
 */
#include "tern/dkim.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "tern/log.h"
#include "tern/metrics.h"

#define DKIM_LINE_MAX 78

const char *const dkim_default_headers[] = {
    "From",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Feedback-ID",
    "MIME-Version",
    "Content-Type",
    "Reply-To",
};
const size_t dkim_n_default_headers = TERN_ARRAY_LEN(dkim_default_headers);

const char *
dkim_algo_name(enum dkim_algo algo)
{
	return algo == DKIM_ALGO_ED25519_SHA256 ? "ed25519-sha256" : "rsa-sha256";
}

const char *
dkim_canon_name(enum dkim_canon canon)
{
	return canon == DKIM_CANON_RELAXED ? "relaxed" : "simple";
}

int
dkim_canon_parse(const char *s, enum dkim_canon *out)
{
	if (strcmp(s, "simple") == 0)
		*out = DKIM_CANON_SIMPLE;
	else if (strcmp(s, "relaxed") == 0)
		*out = DKIM_CANON_RELAXED;
	else
		return -EINVAL;
	return 0;
}

static inline bool
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* ---- header fields ---- */

static int
hdrs_push(struct dkim_hdrs *h, size_t off, size_t name_len, size_t len)
{
	struct dkim_hdr *v;
	size_t cap;

	if (h->n == h->cap) {
		cap = h->cap * 2;
		v = h->v == h->inline_v ? malloc(cap * sizeof(*v))
					: realloc(h->v, cap * sizeof(*v));
		if (v == NULL)
			return -ENOMEM;
		if (h->v == h->inline_v)
			memcpy(v, h->inline_v, sizeof(h->inline_v));
		h->v = v;
		h->cap = cap;
	}
	h->v[h->n++] = (struct dkim_hdr){off, name_len, len};
	return 0;
}

/* End of the field starting at p: the first CRLF not followed by WSP, or end. */
static const char *
field_end(const char *p, const char *end)
{
	const char *nl;

	for (;;) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			return end;
		if (nl > p && nl[-1] == '\r' && (nl + 1 == end || !is_wsp(nl[1])))
			return nl - 1;
		p = nl + 1;
	}
}

/* Length of the field name (printable, no colon, WSP allowed before the colon); 0 if invalid. */
static size_t
field_name_len(const char *p, size_t len)
{
	const char *colon = memchr(p, ':', len);
	size_t n, i;

	if (colon == NULL)
		return 0;
	n = (size_t)(colon - p);
	while (n > 0 && is_wsp(p[n - 1]))
		n--;
	for (i = 0; i < n; i++)
		if ((unsigned char)p[i] <= 32 || (unsigned char)p[i] >= 127)
			return 0;
	return n;
}

int
dkim_hdrs_parse(struct dkim_hdrs *h, const char *msg, size_t len, struct tern_err *err)
{
	const char *p = msg, *end = msg + len, *fe;
	size_t name_len;

	h->v = h->inline_v;
	h->n = 0;
	h->cap = TERN_ARRAY_LEN(h->inline_v);
	h->body_off = len;
	while (p < end) {
		if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') {
			h->body_off = (size_t)(p + 2 - msg);
			return 0;
		}
		fe = field_end(p, end);
		name_len = field_name_len(p, (size_t)(fe - p));
		if (name_len == 0) {
			tern_err_set(err, 554, "5.6.0", "malformed header field at byte %zu",
				     (size_t)(p - msg));
			return -EINVAL;
		}
		if (hdrs_push(h, (size_t)(p - msg), name_len, (size_t)(fe - p)) < 0) {
			tern_err_set(err, 451, "4.3.0", "out of memory parsing header");
			return -ENOMEM;
		}
		p = fe + (fe < end ? 2 : 0);
	}
	return 0;
}

void
dkim_hdrs_deinit(struct dkim_hdrs *h)
{
	if (h->v != h->inline_v)
		free(h->v);
	h->v = h->inline_v;
	h->n = 0;
}

static bool
hdr_is(const struct dkim_hdr *f, const char *msg, const char *name, size_t name_len)
{
	return f->name_len == name_len && util_strncaseeq(msg + f->off, name, name_len);
}

size_t
dkim_hdrs_count(const struct dkim_hdrs *h, const char *msg, const char *name)
{
	size_t i, n = 0, name_len = strlen(name);

	for (i = 0; i < h->n; i++)
		n += hdr_is(&h->v[i], msg, name, name_len);
	return n;
}

const struct dkim_hdr *
dkim_hdrs_find(const struct dkim_hdrs *h, const char *msg, const char *name, size_t nth)
{
	size_t i, name_len = strlen(name);

	for (i = h->n; i-- > 0;)
		if (hdr_is(&h->v[i], msg, name, name_len) && nth-- == 0)
			return &h->v[i];
	return NULL;
}

/* ---- header canonicalisation ---- */

static void
lower_copy(char *dst, const char *src, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		dst[i] = (src[i] >= 'A' && src[i] <= 'Z') ? (char)(src[i] + 32) : src[i];
}

/* WSP, or the CRLF of a fold (inside a field every CRLF is one). */
static inline bool
is_fws(const char *p, const char *end)
{
	return is_wsp(*p) || (*p == '\r' && p + 1 < end && p[1] == '\n');
}

/*
 * Relaxed (RFC 6376 3.4.2): lowercase name, no WSP around the colon, folds
 * removed, WSP runs as one SP, none at the end. A CRLF inside a field is
 * always a fold here, since the parser ends a field at any other CRLF.
 */
static int
canon_relaxed(const char *f, size_t len, struct buf *out)
{
	const char *colon = memchr(f, ':', len), *p, *end = f + len;
	size_t name_len = (size_t)(colon - f);
	bool wsp = false;
	char *o;

	while (name_len > 0 && is_wsp(f[name_len - 1]))
		name_len--;
	if (buf_reserve(out, len + 3) < 0)
		return -ENOMEM;
	o = out->data + out->len;
	lower_copy(o, f, name_len);
	o += name_len;
	*o++ = ':';
	for (p = colon + 1; p < end && is_fws(p, end); p++)
		p += *p == '\r';
	for (; p < end; p++) {
		if (is_fws(p, end)) {
			wsp = true;
			p += *p == '\r';
			continue;
		}
		if (wsp)
			*o++ = ' ';
		wsp = false;
		*o++ = *p;
	}
	out->len = (size_t)(o - out->data);
	return 0;
}

int
dkim_canon_header(enum dkim_canon canon, const char *field, size_t len, bool crlf, struct buf *out)
{
	int rc;

	if (canon == DKIM_CANON_RELAXED && memchr(field, ':', len) != NULL)
		rc = canon_relaxed(field, len, out);
	else
		rc = buf_append(out, field, len);
	if (rc == 0 && crlf)
		rc = buf_append(out, "\r\n", 2);
	if (rc == 0)
		out->data[out->len] = '\0';
	return rc;
}

/* ---- body canonicalisation ---- */

void
dkim_body_init(struct dkim_body *b, enum dkim_canon canon, dkim_sink_fn sink, void *arg)
{
	memset(b, 0, offsetof(struct dkim_body, stage));
	b->canon = canon;
	b->sink = sink;
	b->arg = arg;
}

static void
stage_flush(struct dkim_body *b)
{
	if (b->stage_len > 0)
		b->sink(b->arg, b->stage, b->stage_len);
	b->stage_len = 0;
}

static void
emit(struct dkim_body *b, const void *p, size_t n)
{
	b->length += n;
	if (n > sizeof(b->stage) / 2) {
		stage_flush(b);
		b->sink(b->arg, p, n);
		return;
	}
	if (b->stage_len + n > sizeof(b->stage))
		stage_flush(b);
	memcpy(b->stage + b->stage_len, p, n);
	b->stage_len += n;
}

/* Content makes the held-back empty lines and WSP real. */
static void
emit_content(struct dkim_body *b, const char *p, size_t n)
{
	for (; b->empty > 0; b->empty--)
		emit(b, "\r\n", 2);
	if (b->wsp)
		emit(b, " ", 1);
	b->wsp = false;
	emit(b, p, n);
	b->mid = true;
}

/* A line's CRLF: written at once after content, held back after an empty line. */
static void
line_end(struct dkim_body *b)
{
	b->wsp = false;
	if (b->mid)
		emit(b, "\r\n", 2);
	else
		b->empty++;
	b->mid = false;
}

/*
 * Bytes from p that pass unchanged: anything but CR; for relaxed also no
 * tab, and a space only when a non-WSP, non-CR byte follows it, so that
 * ordinary text goes out a line at a time rather than a word at a time.
 */
static size_t
plain_run(const struct dkim_body *b, const char *p, const char *end)
{
	const char *q;

	if (b->canon == DKIM_CANON_SIMPLE) {
		q = memchr(p, '\r', (size_t)(end - p));
		return q ? (size_t)(q - p) : (size_t)(end - p);
	}
	for (q = p; q < end && *q != '\r' && *q != '\t'; q++)
		if (*q == ' ' && (q + 1 == end || is_wsp(q[1]) || q[1] == '\r'))
			break;
	return (size_t)(q - p);
}

void
dkim_body_update(struct dkim_body *b, const char *p, size_t n)
{
	const char *end = p + n;
	size_t run;

	while (p < end) {
		if (b->cr) {
			b->cr = false;
			if (*p == '\n') {
				line_end(b);
				p++;
				continue;
			}
			emit_content(b, "\r", 1); /* a bare CR is content */
		}
		if (*p == '\r') {
			b->cr = true;
			p++;
		} else if (b->canon == DKIM_CANON_RELAXED && is_wsp(*p)) {
			b->wsp = true;
			p++;
		} else {
			run = plain_run(b, p, end);
			emit_content(b, p, run);
			p += run;
		}
	}
}

/* Trailing empty lines and WSP are dropped; a last line gets its CRLF; simple never ends empty. */
void
dkim_body_final(struct dkim_body *b)
{
	if (b->cr)
		emit_content(b, "\r", 1);
	b->cr = false;
	b->wsp = false;
	if (b->mid)
		emit(b, "\r\n", 2);
	b->mid = false;
	b->empty = 0;
	if (b->canon == DKIM_CANON_SIMPLE && b->length == 0)
		emit(b, "\r\n", 2);
	stage_flush(b);
}

/* ---- key cache ---- */

/*
 * A cache slot per key file. Slots live as long as the process: a policy
 * that builds a signer per message must still parse each key only once, and
 * there are only as many slots as key files in the configuration. The
 * EVP_PKEY in a slot is refcounted: a signature in flight keeps its key while
 * a reload swaps in the new one.
 */
struct dkim_key {
	struct dkim_key *next;
	EVP_PKEY *pkey; /* under cache_lock */
	enum dkim_algo algo;
	struct stat st; /* of the file pkey came from */
	double checked; /* util_now() of the last look at the file */
	char path[];
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dkim_key *cache;
static double check_interval = 1.0;

void
dkim_key_set_check_interval(double seconds)
{
	pthread_mutex_lock(&cache_lock);
	check_interval = seconds;
	pthread_mutex_unlock(&cache_lock);
}

/* An encrypted key must not make OpenSSL prompt on a terminal: refuse it. */
static int
no_passphrase(char *buf, int size, int rwflag, void *arg)
{
	return 0;
}

static int
pkey_algo(EVP_PKEY *pkey, const char *path, enum dkim_algo *algo, struct tern_err *err)
{
	switch (EVP_PKEY_get_base_id(pkey)) {
	case EVP_PKEY_RSA:
		if (EVP_PKEY_get_bits(pkey) < 1024) {
			tern_err_set(err, 451, "4.3.0",
				     "dkim key %s: RSA key of %d bits, need >= 1024", path,
				     EVP_PKEY_get_bits(pkey));
			return -EINVAL;
		}
		*algo = DKIM_ALGO_RSA_SHA256;
		return 0;
	case EVP_PKEY_ED25519:
		*algo = DKIM_ALGO_ED25519_SHA256;
		return 0;
	}
	tern_err_set(err, 451, "4.3.0", "dkim key %s: not an RSA or Ed25519 key", path);
	return -EINVAL;
}

/* Read and parse the key file; st is the file the key came from. */
static EVP_PKEY *
key_read(const char *path, struct stat *st, enum dkim_algo *algo, struct tern_err *err)
{
	EVP_PKEY *pkey;
	FILE *fp;

	fp = fopen(path, "r");
	if (fp == NULL) {
		tern_err_set(err, 451, "4.3.0", "dkim key %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fileno(fp), st) < 0) {
		tern_err_set(err, 451, "4.3.0", "dkim key %s: %s", path, strerror(errno));
		fclose(fp);
		return NULL;
	}
	pkey = PEM_read_PrivateKey(fp, NULL, no_passphrase, NULL);
	fclose(fp);
	ERR_clear_error();
	if (pkey == NULL) {
		tern_err_set(err, 451, "4.3.0", "dkim key %s: not a PEM private key", path);
		return NULL;
	}
	if (pkey_algo(pkey, path, algo, err) < 0) {
		EVP_PKEY_free(pkey);
		return NULL;
	}
	return pkey;
}

static bool
same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Under cache_lock: at most once per interval, re-read the file if it changed. */
static void
key_refresh(struct dkim_key *k)
{
	struct tern_err err;
	struct stat st;
	enum dkim_algo algo;
	EVP_PKEY *pkey;
	double now = util_now();

	if (now - k->checked < check_interval)
		return;
	k->checked = now;
	if (stat(k->path, &st) == 0 && same_file(&st, &k->st))
		return;
	pkey = key_read(k->path, &st, &algo, &err);
	if (pkey == NULL) {
		log_warn("dkim", "%s; still signing with the previous key", err.msg);
		return;
	}
	if (algo != k->algo) {
		log_warn("dkim",
			 "dkim key %s: now a %s key, was %s; still signing with the previous key",
			 k->path, dkim_algo_name(algo), dkim_algo_name(k->algo));
		EVP_PKEY_free(pkey);
		k->st = st; /* warn once per change, not once per interval */
		return;
	}
	EVP_PKEY_free(k->pkey);
	k->pkey = pkey;
	k->st = st;
	log_info("dkim", "dkim key %s reloaded", k->path);
}

static struct dkim_key *
key_new(const char *path, struct tern_err *err)
{
	struct dkim_key *k;
	size_t n = strlen(path) + 1;

	k = calloc(1, sizeof(*k) + n);
	if (k == NULL) {
		tern_err_set(err, 451, "4.3.0", "out of memory");
		return NULL;
	}
	memcpy(k->path, path, n);
	k->pkey = key_read(path, &k->st, &k->algo, err);
	if (k->pkey == NULL) {
		free(k);
		k = NULL;
		return NULL;
	}
	k->checked = util_now();
	return k;
}

struct dkim_key *
dkim_key_load(const char *path, struct tern_err *err)
{
	struct dkim_key *k;

	pthread_mutex_lock(&cache_lock);
	for (k = cache; k != NULL; k = k->next)
		if (strcmp(k->path, path) == 0)
			break;
	if (k != NULL) {
		key_refresh(k);
	} else if ((k = key_new(path, err)) != NULL) {
		k->next = cache;
		cache = k;
	}
	pthread_mutex_unlock(&cache_lock);
	return k;
}

/* The current key, with a reference the caller drops with EVP_PKEY_free. */
static EVP_PKEY *
key_acquire(struct dkim_key *k, enum dkim_algo *algo)
{
	EVP_PKEY *pkey;

	pthread_mutex_lock(&cache_lock);
	key_refresh(k);
	pkey = k->pkey;
	EVP_PKEY_up_ref(pkey);
	*algo = k->algo;
	pthread_mutex_unlock(&cache_lock);
	return pkey;
}

enum dkim_algo
dkim_key_algo(struct dkim_key *k)
{
	enum dkim_algo algo;

	EVP_PKEY_free(key_acquire(k, &algo));
	return algo;
}

static int
append_base64(struct buf *out, const unsigned char *p, size_t n)
{
	int len;

	if (buf_reserve(out, 4 * ((n + 2) / 3)) < 0)
		return -ENOMEM;
	len = EVP_EncodeBlock((unsigned char *)out->data + out->len, p, (int)n);
	out->len += (size_t)len;
	return 0;
}

int
dkim_key_public(struct dkim_key *k, struct buf *out)
{
	unsigned char raw[32], *der = NULL;
	size_t raw_len = sizeof(raw);
	enum dkim_algo algo;
	EVP_PKEY *pkey = key_acquire(k, &algo);
	int n, rc = -EIO;

	if (algo == DKIM_ALGO_ED25519_SHA256) {
		if (EVP_PKEY_get_raw_public_key(pkey, raw, &raw_len) == 1)
			rc = append_base64(out, raw, raw_len);
	} else if ((n = i2d_PUBKEY(pkey, &der)) > 0) {
		rc = append_base64(out, der, (size_t)n);
	}
	OPENSSL_free(der);
	EVP_PKEY_free(pkey);
	return rc;
}

/* ---- signers ---- */

struct dkim_signer {
	atomic_int refs;
	struct dkim_key *key;
	enum dkim_algo algo;
	enum dkim_canon header_canon, body_canon;
	bool over_sign, body_length;
	double expiration;
	char *domain, *selector, *identity;
	size_t n_headers;
	char **headers;
};

void
dkim_signer_config_init(struct dkim_signer_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->algo = DKIM_ALGO_RSA_SHA256;
	cfg->header_canon = DKIM_CANON_RELAXED;
	cfg->body_canon = DKIM_CANON_RELAXED;
	cfg->over_sign = true;
}

/* Tag values go into the header as they are: keep out what would break it. */
static bool
tag_value_ok(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if ((unsigned char)*s <= 32 || *s == ';' || (unsigned char)*s >= 127)
			return false;
	return true;
}

/* i= must be within d= (RFC 6376 3.5): local@domain or local@sub.domain. */
static bool
identity_ok(const char *identity, const char *domain)
{
	const char *at = strrchr(identity, '@');
	size_t n, dn = strlen(domain);

	if (at == NULL || !tag_value_ok(identity))
		return false;
	n = strlen(++at);
	if (n == dn)
		return util_strncaseeq(at, domain, dn);
	return n > dn && at[n - dn - 1] == '.' && util_strncaseeq(at + n - dn, domain, dn);
}

static int
check_headers(const char *const *h, size_t n, struct tern_err *err)
{
	bool from = false;
	size_t i, j;

	for (i = 0; i < n; i++) {
		if (!tag_value_ok(h[i]) || strchr(h[i], ':') != NULL) {
			tern_err_set(err, 451, "4.3.0", "dkim: bad header name '%s'", h[i]);
			return -EINVAL;
		}
		for (j = 0; j < i; j++)
			if (strlen(h[j]) == strlen(h[i]) &&
			    util_strncaseeq(h[i], h[j], strlen(h[i]))) {
				tern_err_set(err, 451, "4.3.0", "dkim: header '%s' listed twice",
					     h[i]);
				return -EINVAL;
			}
		from = from || (strlen(h[i]) == 4 && util_strncaseeq(h[i], "from", 4));
	}
	if (!from)
		tern_err_set(err, 451, "4.3.0", "dkim: the headers to sign must include From");
	return from ? 0 : -EINVAL;
}

static int
check_config(const struct dkim_signer_config *c, struct tern_err *err)
{
	if (c->domain == NULL || !tag_value_ok(c->domain)) {
		tern_err_set(err, 451, "4.3.0", "dkim: missing or bad domain");
		return -EINVAL;
	}
	if (c->selector == NULL || !tag_value_ok(c->selector)) {
		tern_err_set(err, 451, "4.3.0", "dkim: missing or bad selector");
		return -EINVAL;
	}
	if (c->key_path == NULL) {
		tern_err_set(err, 451, "4.3.0", "dkim: missing key");
		return -EINVAL;
	}
	if (c->identity != NULL && !identity_ok(c->identity, c->domain)) {
		tern_err_set(err, 451, "4.3.0", "dkim: identity '%s' is not within domain %s",
			     c->identity, c->domain);
		return -EINVAL;
	}
	if (c->expiration < 0) {
		tern_err_set(err, 451, "4.3.0", "dkim: negative expiration");
		return -EINVAL;
	}
	return c->headers ? check_headers(c->headers, c->n_headers, err) : 0;
}

static void
signer_free(struct dkim_signer *s)
{
	size_t i;

	for (i = 0; i < s->n_headers; i++)
		free(s->headers[i]);
	free(s->headers);
	free(s->domain);
	free(s->selector);
	free(s->identity);
	free(s);
}

static int
signer_copy_strings(struct dkim_signer *s, const struct dkim_signer_config *c)
{
	const char *const *h = c->headers ? c->headers : dkim_default_headers;
	size_t n = c->headers ? c->n_headers : dkim_n_default_headers;

	s->domain = strdup(c->domain);
	s->selector = strdup(c->selector);
	s->identity = c->identity ? strdup(c->identity) : NULL;
	s->headers = calloc(n, sizeof(*s->headers));
	if (!s->domain || !s->selector || (c->identity && !s->identity) || !s->headers)
		return -ENOMEM;
	for (s->n_headers = 0; s->n_headers < n; s->n_headers++) {
		s->headers[s->n_headers] = strdup(h[s->n_headers]);
		if (s->headers[s->n_headers] == NULL)
			return -ENOMEM;
	}
	return 0;
}

struct dkim_signer *
dkim_signer_new(const struct dkim_signer_config *c, struct tern_err *err)
{
	struct dkim_signer *s;

	if (check_config(c, err) < 0)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (s == NULL || signer_copy_strings(s, c) < 0) {
		tern_err_set(err, 451, "4.3.0", "out of memory");
		goto fail;
	}
	s->key = dkim_key_load(c->key_path, err);
	if (s->key == NULL)
		goto fail;
	if (dkim_key_algo(s->key) != c->algo) {
		tern_err_set(err, 451, "4.3.0", "dkim key %s: is not a key for %s", c->key_path,
			     dkim_algo_name(c->algo));
		goto fail;
	}
	atomic_init(&s->refs, 1);
	s->algo = c->algo;
	s->header_canon = c->header_canon;
	s->body_canon = c->body_canon;
	s->over_sign = c->over_sign;
	s->body_length = c->body_length;
	s->expiration = c->expiration;
	return s;
fail:
	if (s)
		signer_free(s);
	return NULL;
}

void
dkim_signer_unref(struct dkim_signer *s)
{
	if (s != NULL && atomic_fetch_sub(&s->refs, 1) == 1)
		signer_free(s);
}

const char *
dkim_signer_domain(const struct dkim_signer *s)
{
	return s->domain;
}

const char *
dkim_signer_selector(const struct dkim_signer *s)
{
	return s->selector;
}

/* ---- the signature ---- */

static EVP_MD *sha256;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

/* Fetch once: an implicit EVP_sha256() fetch on every init is measurable in OpenSSL 3. */
static void
sha256_fetch(void)
{
	sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static void
digest_sink(void *arg, const void *p, size_t n)
{
	EVP_DigestUpdate(arg, p, n);
}

static int
body_hash(struct dkim_signer *s, EVP_MD_CTX *md, const char *body, size_t n, unsigned char bh[32],
	  uint64_t *length)
{
	struct dkim_body b;

	if (EVP_DigestInit_ex2(md, sha256, NULL) != 1)
		return -EIO;
	dkim_body_init(&b, s->body_canon, digest_sink, md);
	dkim_body_update(&b, body, n);
	dkim_body_final(&b);
	*length = b.length;
	return EVP_DigestFinal_ex(md, bh, NULL) == 1 ? 0 : -EIO;
}

/* Builds the folded header: each token goes on the current line if it fits. */
struct fold {
	struct buf *b;
	size_t col;
};

/* Start a new line unless need more bytes fit on this one. */
static int
fold_break(struct fold *f, size_t need)
{
	if (f->col + need <= DKIM_LINE_MAX)
		return 0;
	f->col = 1;
	return buf_append(f->b, "\r\n\t", 3);
}

/* A tag with a space (or a fold) before it. */
static int
fold_tag(struct fold *f, const char *fmt, ...)
{
	char tag[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tag, sizeof(tag), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tag))
		return -EINVAL;
	if (f->col + 1 + (size_t)n > DKIM_LINE_MAX) {
		f->col = 1;
		if (buf_append(f->b, "\r\n\t", 3) < 0)
			return -ENOMEM;
	} else if (buf_append_char(f->b, ' ') == 0) {
		f->col++;
	}
	f->col += (size_t)n;
	return buf_append(f->b, tag, (size_t)n);
}

/* h=: FWS is allowed around each colon, so long lists break after one. */
static int
fold_h(struct fold *f, const char *const *names, size_t n)
{
	size_t i, len;
	int rc = 0;

	for (i = 0; i < n && rc == 0; i++) {
		len = strlen(names[i]) + 1; /* with the ':' or ';' after it */
		if (i == 0) {
			rc = fold_tag(f, "h=%s%s", names[0], n == 1 ? ";" : ":");
			continue;
		}
		rc = fold_break(f, len);
		if (rc == 0)
			rc = buf_append_str(f->b, names[i]);
		if (rc == 0)
			rc = buf_append_char(f->b, i + 1 == n ? ';' : ':');
		f->col += len;
	}
	return rc;
}

/* b=: base64 may hold FWS anywhere; fill every line to the limit. */
static int
fold_b64(struct fold *f, const char *p, size_t n)
{
	size_t take;
	int rc = 0;

	while (n > 0 && rc == 0) {
		rc = fold_break(f, 1);
		take = DKIM_LINE_MAX - f->col < n ? DKIM_LINE_MAX - f->col : n;
		if (rc == 0)
			rc = buf_append(f->b, p, take);
		f->col += take;
		p += take;
		n -= take;
	}
	return rc;
}

/* The h= list: each configured header as often as it occurs, plus once if over-signing. */
static int
signed_names(struct dkim_signer *s, const struct dkim_hdrs *h, const char *msg, const char ***names,
	     size_t *n)
{
	size_t i, j, c, cap = 0;
	const char **v;

	for (i = 0; i < s->n_headers; i++)
		cap += dkim_hdrs_count(h, msg, s->headers[i]) + s->over_sign;
	v = malloc((cap ? cap : 1) * sizeof(*v));
	if (v == NULL)
		return -ENOMEM;
	*n = 0;
	for (i = 0; i < s->n_headers; i++) {
		c = dkim_hdrs_count(h, msg, s->headers[i]) + s->over_sign;
		for (j = 0; j < c; j++)
			v[(*n)++] = s->headers[i];
	}
	*names = v;
	return 0;
}

static int
build_tags(struct dkim_signer *s, struct fold *f, double now, const char *const *names,
	   size_t n_names, const unsigned char bh[32], uint64_t length)
{
	long long t = (long long)now;
	char bh64[48];
	int rc;

	EVP_EncodeBlock((unsigned char *)bh64, bh, 32);
	f->col = strlen("DKIM-Signature:");
	rc = buf_append_str(f->b, "DKIM-Signature:");
	rc = rc ?: fold_tag(f, "v=1;");
	rc = rc ?: fold_tag(f, "a=%s;", dkim_algo_name(s->algo));
	rc = rc
		 ?: fold_tag(f, "c=%s/%s;", dkim_canon_name(s->header_canon),
			     dkim_canon_name(s->body_canon));
	rc = rc ?: fold_tag(f, "d=%s;", s->domain);
	rc = rc ?: fold_tag(f, "s=%s;", s->selector);
	rc = rc ?: fold_tag(f, "t=%lld;", t);
	if (s->expiration > 0)
		rc = rc
			 ?: fold_tag(f, "x=%lld;",
				     t + (s->expiration < 1 ? 1 : (long long)s->expiration));
	if (s->identity)
		rc = rc ?: fold_tag(f, "i=%s;", s->identity);
	if (s->body_length)
		rc = rc ?: fold_tag(f, "l=%llu;", (unsigned long long)length);
	rc = rc ?: fold_h(f, names, n_names);
	rc = rc ?: fold_tag(f, "bh=%s;", bh64);
	return rc ?: fold_tag(f, "b=");
}

/* The data signed: the chosen fields bottom-up, then this signature with b= empty, no CRLF. */
static int
header_hash(struct dkim_signer *s, EVP_MD_CTX *md, const char *msg, const struct dkim_hdrs *h,
	    const char *const *names, size_t n, const struct buf *sig, unsigned char out[32])
{
	const struct dkim_hdr *f;
	struct buf c;
	size_t i, nth;
	int rc = 0;

	buf_init(&c);
	for (i = 0; i < n && rc == 0; i++) {
		/* names repeat in a row, so the occurrence is the distance to the first */
		for (nth = 0; nth < i && names[i - nth - 1] == names[i]; nth++)
			;
		f = dkim_hdrs_find(h, msg, names[i], nth);
		if (f != NULL)
			rc = dkim_canon_header(s->header_canon, msg + f->off, f->len, true, &c);
	}
	rc = rc ?: dkim_canon_header(s->header_canon, sig->data, sig->len, false, &c);
	if (rc == 0 &&
	    (EVP_DigestInit_ex2(md, sha256, NULL) != 1 ||
	     EVP_DigestUpdate(md, c.data, c.len) != 1 || EVP_DigestFinal_ex(md, out, NULL) != 1))
		rc = -EIO;
	buf_deinit(&c);
	return rc;
}

/*
 * Prepared RSA signing contexts, per thread: setting one up (provider
 * fetch, padding, digest) costs about 7% of an RSA-2048 signature, so each
 * thread keeps one per key it signs with. An entry holds a reference to its
 * EVP_PKEY, so a reloaded key simply gets a new entry.
 */
#define DKIM_CTX_CACHE 4

struct ctx_cache {
	EVP_PKEY *pkey[DKIM_CTX_CACHE];
	EVP_PKEY_CTX *ctx[DKIM_CTX_CACHE];
	unsigned next;
};

static pthread_key_t ctx_cache_key;
static pthread_once_t ctx_cache_once = PTHREAD_ONCE_INIT;

static void
ctx_cache_free(void *p)
{
	struct ctx_cache *c = p;
	int i;

	for (i = 0; i < DKIM_CTX_CACHE; i++)
		EVP_PKEY_CTX_free(c->ctx[i]);
	free(c);
}

static void
ctx_cache_init(void)
{
	pthread_key_create(&ctx_cache_key, ctx_cache_free);
}

static EVP_PKEY_CTX *
rsa_ctx_new(EVP_PKEY *pkey)
{
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);

	if (pc != NULL && EVP_PKEY_sign_init(pc) == 1 &&
	    EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) == 1 &&
	    EVP_PKEY_CTX_set_signature_md(pc, sha256) == 1)
		return pc;
	EVP_PKEY_CTX_free(pc);
	return NULL;
}

/* This thread's prepared context for pkey (NULL on allocation failure). */
static EVP_PKEY_CTX *
rsa_ctx_for(EVP_PKEY *pkey)
{
	struct ctx_cache *c;
	unsigned i;

	pthread_once(&ctx_cache_once, ctx_cache_init);
	c = pthread_getspecific(ctx_cache_key);
	if (c == NULL) {
		c = calloc(1, sizeof(*c));
		if (c == NULL || pthread_setspecific(ctx_cache_key, c) != 0) {
			free(c);
			return NULL;
		}
	}
	for (i = 0; i < DKIM_CTX_CACHE; i++)
		if (c->pkey[i] == pkey && c->ctx[i] != NULL)
			return c->ctx[i];
	i = c->next++ % DKIM_CTX_CACHE;
	EVP_PKEY_CTX_free(c->ctx[i]);
	c->ctx[i] = rsa_ctx_new(pkey);
	c->pkey[i] = c->ctx[i] ? pkey : NULL;
	return c->ctx[i];
}

/*
 * RSA signs the digest as PKCS#1 v1.5 with SHA-256; Ed25519 (RFC 8463) signs
 * the 32-byte digest itself as its message (PureEdDSA).
 */
static int
pkey_sign(EVP_PKEY *pkey, enum dkim_algo algo, EVP_MD_CTX *md, const unsigned char dg[32],
	  unsigned char *sig, size_t *sig_len)
{
	EVP_PKEY_CTX *pc;

	if (algo == DKIM_ALGO_ED25519_SHA256)
		return EVP_DigestSignInit_ex(md, NULL, NULL, NULL, NULL, pkey, NULL) == 1 &&
			       EVP_DigestSign(md, sig, sig_len, dg, 32) == 1
			   ? 0
			   : -EIO;
	pc = rsa_ctx_for(pkey);
	return pc != NULL && EVP_PKEY_sign(pc, sig, sig_len, dg, 32) == 1 ? 0 : -EIO;
}

static int
sign_fields(struct dkim_signer *s, EVP_MD_CTX *md, const char *msg, size_t len,
	    const struct dkim_hdrs *h, double now, struct buf *sig)
{
	unsigned char bh[32], dg[32], raw[1024];
	const char **names = NULL;
	size_t n = 0, raw_len = sizeof(raw);
	struct fold f = {sig, 0};
	enum dkim_algo algo;
	EVP_PKEY *pkey;
	uint64_t length;
	char b64[1400];
	int rc;

	rc = body_hash(s, md, msg + h->body_off, len - h->body_off, bh, &length);
	rc = rc ?: signed_names(s, h, msg, &names, &n);
	rc = rc ?: build_tags(s, &f, now, names, n, bh, length);
	rc = rc ?: header_hash(s, md, msg, h, names, n, sig, dg);
	free(names);
	if (rc < 0)
		return rc;
	pkey = key_acquire(s->key, &algo);
	rc = EVP_PKEY_get_size(pkey) <= (int)sizeof(raw)
		 ? pkey_sign(pkey, algo, md, dg, raw, &raw_len)
		 : -EINVAL;
	EVP_PKEY_free(pkey);
	if (rc < 0)
		return rc;
	EVP_EncodeBlock((unsigned char *)b64, raw, (int)raw_len);
	rc = fold_b64(&f, b64, strlen(b64));
	return rc ?: buf_append(sig, "\r\n", 2);
}

int
dkim_sign(struct dkim_signer *s, const char *msg, size_t len, double now, struct buf *out,
	  struct tern_err *err)
{
	struct dkim_hdrs h;
	struct buf sig;
	EVP_MD_CTX *md;
	int rc;

	pthread_once(&sha256_once, sha256_fetch);
	if (dkim_hdrs_parse(&h, msg, len, err) < 0) {
		dkim_hdrs_deinit(&h);
		return -EINVAL;
	}
	if (dkim_hdrs_count(&h, msg, "From") == 0) {
		dkim_hdrs_deinit(&h);
		tern_err_set(err, 554, "5.6.0", "dkim: message has no From header");
		return -EINVAL;
	}
	buf_init(&sig);
	md = EVP_MD_CTX_new();
	rc = md && sha256 ? sign_fields(s, md, msg, len, &h, now, &sig) : -ENOMEM;
	if (rc == 0)
		rc = buf_append(out, sig.data, sig.len);
	if (rc == 0)
		metrics_inc(METRICS_DKIM_SIGNATURES);
	if (rc < 0) {
		ERR_clear_error();
		tern_err_set(err, 451, "4.3.0", "dkim: signing for %s failed (%s)", s->domain,
			     rc == -ENOMEM ? "out of memory" : "OpenSSL error");
	}
	EVP_MD_CTX_free(md);
	buf_deinit(&sig);
	dkim_hdrs_deinit(&h);
	return rc;
}
