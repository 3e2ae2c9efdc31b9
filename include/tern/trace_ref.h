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

#include <stddef.h>

#include "tern/spool.h"
#include "tern/util.h"

#define TRACE_REF_HEADER "X-Tern-Ref"

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

#endif
