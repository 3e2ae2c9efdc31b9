/* SPDX-License-Identifier: MIT */
/*
 * DKIM signing (RFC 6376, RFC 8463). Three layers, each usable alone:
 * header field parsing and canonicalisation (pure, fuzzed), the streaming
 * body canonicaliser, and signers that put them together with a cached key.
 *
 * Messages are header fields, an empty line, then the body, with CRLF line
 * endings; a bare CR or LF is ordinary content, as it is for verifiers.
 */
#ifndef TERN_DKIM_H
#define TERN_DKIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tern/util.h"

enum dkim_algo { DKIM_ALGO_RSA_SHA256, DKIM_ALGO_ED25519_SHA256 };
enum dkim_canon { DKIM_CANON_SIMPLE, DKIM_CANON_RELAXED };

/* "rsa-sha256", "ed25519-sha256"; "simple", "relaxed". */
const char *dkim_algo_name(enum dkim_algo algo);
const char *dkim_canon_name(enum dkim_canon canon);
/* Parse "simple" or "relaxed"; returns 0 or -EINVAL. */
int dkim_canon_parse(const char *s, enum dkim_canon *out);

/* One header field: msg[off .. off+len) is the whole field without its final CRLF. */
struct dkim_hdr {
	size_t off;
	size_t name_len; /* the name, without WSP before the colon */
	size_t len;
};

/* The header fields of a message, top to bottom; small messages need no allocation. */
struct dkim_hdrs {
	struct dkim_hdr *v;
	size_t n;
	size_t cap;
	size_t body_off; /* first byte of the body (== message length when there is none) */
	struct dkim_hdr inline_v[48];
};

/*
 * Split msg into header fields (folded lines joined) and find the body.
 * Returns 0, -EINVAL for a field that is not "name:value" (err says where),
 * or -ENOMEM. Always call dkim_hdrs_deinit afterwards.
 */
int dkim_hdrs_parse(struct dkim_hdrs *h, const char *msg, size_t len, struct tern_err *err);
void dkim_hdrs_deinit(struct dkim_hdrs *h);
/* Number of fields named name (case-insensitive). */
size_t dkim_hdrs_count(const struct dkim_hdrs *h, const char *msg, const char *name);
/*
 * The nth occurrence of name counted from the bottom (nth = 0 is the last
 * one), as RFC 6376 5.4.2 picks repeated fields; NULL when there is none.
 */
const struct dkim_hdr *dkim_hdrs_find(const struct dkim_hdrs *h, const char *msg, const char *name,
				      size_t nth);

/* Append field (len bytes, no final CRLF) canonicalised, with a CRLF when crlf. */
int dkim_canon_header(enum dkim_canon canon, const char *field, size_t len, bool crlf,
		      struct buf *out);

/*
 * Streaming body canonicaliser: feed the body in any number of pieces and
 * the canonical form comes out through sink in pieces, via a small staging
 * buffer (large clean runs go straight through). Empty lines are held back
 * as a count until content follows, so trailing ones vanish.
 */
typedef void (*dkim_sink_fn)(void *arg, const void *p, size_t n);

struct dkim_body {
	enum dkim_canon canon;
	dkim_sink_fn sink;
	void *arg;
	uint64_t length; /* canonical bytes produced so far (the l= value) */
	size_t empty;	 /* empty lines held back */
	bool cr;	 /* the last byte was a CR not yet known to end a line */
	bool wsp;	 /* relaxed: WSP seen and not yet written */
	bool mid;	 /* content written on the current line */
	size_t stage_len;
	unsigned char stage[512];
};

void dkim_body_init(struct dkim_body *b, enum dkim_canon canon, dkim_sink_fn sink, void *arg);
void dkim_body_update(struct dkim_body *b, const char *p, size_t n);
void dkim_body_final(struct dkim_body *b);

/*
 * A private key, parsed once per path and shared by every signer and thread.
 * The file is checked (mtime, size, inode) at most once per check interval
 * when the key is used, and re-read when it changed; if the new file cannot
 * be used the old key stays and a warning is logged.
 */
struct dkim_key;

/* Load (or find in the cache) the key at path. Errors name the file. */
struct dkim_key *dkim_key_load(const char *path, struct tern_err *err);
/* Which algorithm the key is for (as of the last (re)load). */
enum dkim_algo dkim_key_algo(struct dkim_key *key);
/* Append the p= value of the DNS record: base64 SubjectPublicKeyInfo (RSA) or raw key (Ed25519). */
int dkim_key_public(struct dkim_key *key, struct buf *out);
/* Seconds between file checks; 1 by default. For tests, which set 0. */
void dkim_key_set_check_interval(double seconds);

struct dkim_signer_config {
	const char *domain;
	const char *selector;
	const char *key_path;
	enum dkim_algo algo;
	const char *const *headers; /* NULL: dkim_default_headers */
	size_t n_headers;
	enum dkim_canon header_canon;
	enum dkim_canon body_canon;
	bool over_sign;	      /* sign each listed header once more than it occurs */
	double expiration;    /* x= is t= plus this many seconds; 0 = no x= */
	const char *identity; /* i=, NULL for none; must be within domain */
	bool body_length;     /* add l= */
};

extern const char *const dkim_default_headers[];
extern const size_t dkim_n_default_headers;

/* Fill defaults: relaxed/relaxed, rsa-sha256, default headers, over_sign. */
void dkim_signer_config_init(struct dkim_signer_config *cfg);

struct dkim_signer;

/* Validate cfg, load the key (cached) and check it fits cfg->algo. */
struct dkim_signer *dkim_signer_new(const struct dkim_signer_config *cfg, struct tern_err *err);
void dkim_signer_unref(struct dkim_signer *s);
const char *dkim_signer_domain(const struct dkim_signer *s);
const char *dkim_signer_selector(const struct dkim_signer *s);

/*
 * Sign msg (header fields, empty line, body; CRLF line endings) and append
 * the complete folded "DKIM-Signature: ...\r\n" field, to be put in front of
 * the message, to out. now is the signing time (t=), epoch seconds.
 * Thread-safe. Returns 0, -EINVAL (message without From), -ENOMEM or -EIO.
 */
int dkim_sign(struct dkim_signer *s, const char *msg, size_t len, double now, struct buf *out,
	      struct tern_err *err);

#endif
