/* SPDX-License-Identifier: MIT */
/*
 * The trace header tern adds to every message it sends when policy gives a
 * secret (tern.configure_trace_header), so that a bounce or a complaint
 * that comes back can be matched to the message, tenant, campaign and
 * recipient it is about:
 *
 *   X-Tern-Ref: 1.<spool id, hex>.<tenant>.<campaign>.<recipient>.<mac>
 *
 * tenant, campaign and recipient are base64url (no padding), so the value
 * has no space at which a mailer could fold it; mac is base64url of
 * HMAC-SHA256(secret, everything before ".<mac>"). Pure.
 */
#ifndef TERN_TRACE_REF_H
#define TERN_TRACE_REF_H

#include <stdbool.h>
#include <stddef.h>

#include "tern/spool.h"
#include "tern/util.h"

#define TRACE_REF_HEADER "X-Tern-Ref"
#define TRACE_SECRET_MAX 256
/* base32 of the spool id and 9 bytes of mac: 25 bytes, 40 characters */
#define TRACE_VERP_TOKEN_LEN 40

/* What policy configured (tern.configure_trace_header). */
struct trace_config {
	char secret[TRACE_SECRET_MAX];
	size_t secret_len; /* 0: no trace header, no VERP */
	bool verp;
};

struct trace_ref {
	char id[SPOOL_ID_HEX_LEN + 1];
	char tenant[128];
	char campaign[128];
	char recipient[321];
};

/* The header's value for r, appended to out: 0, -EINVAL (a field too long), -ENOMEM. */
int trace_ref_format(const struct trace_ref *r, const char *secret, size_t secret_len,
		     struct buf *out);
/*
 * Read and authenticate a header value (whitespace inside is ignored, as
 * folding may have added some): 0 with out filled, -EINVAL when it is not
 * one, -EPERM when its mac does not match (forged, or another secret).
 */
int trace_ref_verify(const char *value, const char *secret, size_t secret_len,
		     struct trace_ref *out);

/*
 * VERP: with `verp = true`, each copy leaves with the return path
 *
 *   local+<token>@domain
 *
 * for the sender local@domain, where token is lower-case base32 (a mailer
 * may fold the case of a local part) of the spool id and the first 9 bytes
 * of HMAC-SHA256(secret, "verp.<id hex>.<lower-cased recipient>"). A bounce
 * that comes back to that address, with or without the original's headers,
 * names the message and authenticates the recipient it reports.
 */
/* The return path for (id, recipient) appended to out: 0, or -EINVAL when sender cannot
 * carry a token (null, no '@', or a local part that would pass RFC 5321's 64 octets). */
int trace_verp_sender(const char *sender, const char *id_hex, const char *recipient,
		      const char *secret, size_t secret_len, struct buf *out);
/*
 * Whether address (where a bounce was sent) carries a token for recipient:
 * 0 with id filled, -EINVAL when it carries no token, -EPERM when the token
 * is forged, made with another secret, or is about another recipient.
 */
int trace_verp_verify(const char *address, const char *recipient, const char *secret,
		      size_t secret_len, char id[SPOOL_ID_HEX_LEN + 1]);

#endif
