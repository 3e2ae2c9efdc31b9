// SPDX-License-Identifier: MIT
/*
 * The trace header. The fields travel in the clear (the recipient sees its
 * own address, the tenant and campaign names are the sender's): the mac
 * only proves that tern wrote them, so that a forged complaint cannot name
 * a message or a recipient of its choosing. Comparison is constant-time.
 */
#include "tern/trace_ref.h"

#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define MAC_LEN 32
#define B64_MAX 512

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int
b64_append(struct buf *out, const unsigned char *p, size_t n)
{
	int rc = 0;
	size_t i;

	for (i = 0; i + 2 < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
		char q[4] = {b64url[v >> 18], b64url[(v >> 12) & 63], b64url[(v >> 6) & 63],
			     b64url[v & 63]};

		rc |= buf_append(out, q, 4);
	}
	if (n - i == 1) {
		unsigned v = (unsigned)p[i] << 16;
		char q[2] = {b64url[v >> 18], b64url[(v >> 12) & 63]};

		rc |= buf_append(out, q, 2);
	} else if (n - i == 2) {
		unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
		char q[3] = {b64url[v >> 18], b64url[(v >> 12) & 63], b64url[(v >> 6) & 63]};

		rc |= buf_append(out, q, 3);
	}
	return rc;
}

static int
b64_value(char c)
{
	const char *p = c ? strchr(b64url, c) : NULL;

	return p ? (int)(p - b64url) : -1;
}

/* Decode n characters of s into out (cap bytes, NUL-terminated): the length, or -EINVAL. */
static int
b64_decode(const char *s, size_t n, unsigned char *out, size_t cap)
{
	unsigned acc = 0;
	size_t i, len = 0;
	int bits = 0;

	if (n % 4 == 1)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		int v = b64_value(s[i]);

		if (v < 0)
			return -EINVAL;
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (len + 1 >= cap)
				return -EINVAL;
			out[len++] = (unsigned char)(acc >> bits);
		}
	}
	out[len] = '\0';
	return (int)len;
}

static void
mac_of(const char *secret, size_t secret_len, const char *p, size_t n, unsigned char mac[MAC_LEN])
{
	unsigned int len = MAC_LEN;

	HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)p, n, mac, &len);
}

int
trace_ref_format(const struct trace_ref *r, const char *secret, size_t secret_len, struct buf *out)
{
	const char *fields[3] = {r->tenant, r->campaign, r->recipient};
	unsigned char mac[MAC_LEN];
	size_t start = out->len, i;
	int rc;

	if (strlen(r->id) != SPOOL_ID_HEX_LEN)
		return -EINVAL;
	rc = buf_printf(out, "1.%s", r->id);
	for (i = 0; i < 3; i++) {
		rc |= buf_append_char(out, '.');
		rc |= b64_append(out, (const unsigned char *)fields[i], strlen(fields[i]));
	}
	if (rc < 0)
		return -ENOMEM;
	mac_of(secret, secret_len, out->data + start, out->len - start, mac);
	rc |= buf_append_char(out, '.');
	rc |= b64_append(out, mac, MAC_LEN);
	return rc < 0 ? -ENOMEM : 0;
}

/* value without whitespace into v (cap bytes): false when too long. */
static bool
squeeze(const char *value, char *v, size_t cap)
{
	size_t n = 0;

	for (; *value; value++) {
		if (*value == ' ' || *value == '\t' || *value == '\r' || *value == '\n')
			continue;
		if (n + 1 >= cap)
			return false;
		v[n++] = *value;
	}
	v[n] = '\0';
	return true;
}

static int
decode_field(const char *s, size_t n, char *out, size_t cap)
{
	unsigned char tmp[B64_MAX];
	int len = b64_decode(s, n, tmp, sizeof(tmp));

	if (len < 0 || (size_t)len >= cap || memchr(tmp, '\0', (size_t)len) != NULL)
		return -EINVAL;
	memcpy(out, tmp, (size_t)len + 1);
	return 0;
}

/* Split "1.id.t.c.r.mac" at its dots: dots[i] is the position of the i-th dot. */
static int
split(const char *v, size_t dots[5])
{
	size_t i, k = 0;

	for (i = 0; v[i]; i++)
		if (v[i] == '.') {
			if (k == 5)
				return -EINVAL;
			dots[k++] = i;
		}
	return k == 5 && v[0] == '1' && dots[0] == 1 ? 0 : -EINVAL;
}

static bool
hex_id(const char *p, size_t n)
{
	size_t i;

	if (n != SPOOL_ID_HEX_LEN)
		return false;
	for (i = 0; i < n; i++)
		if (util_hex_value(p[i]) < 0)
			return false;
	return true;
}

int
trace_ref_verify(const char *value, const char *secret, size_t secret_len, struct trace_ref *out)
{
	char *outs[3] = {out->tenant, out->campaign, out->recipient};
	size_t caps[3] = {sizeof(out->tenant), sizeof(out->campaign), sizeof(out->recipient)};
	unsigned char mac[MAC_LEN], got[MAC_LEN + 1];
	char v[3 * B64_MAX];
	size_t dots[5], i;

	memset(out, 0, sizeof(*out));
	if (!squeeze(value, v, sizeof(v)) || split(v, dots) < 0 ||
	    !hex_id(v + dots[0] + 1, dots[1] - dots[0] - 1))
		return -EINVAL;
	memcpy(out->id, v + dots[0] + 1, SPOOL_ID_HEX_LEN);
	for (i = 0; i < 3; i++)
		if (decode_field(v + dots[i + 1] + 1, dots[i + 2] - dots[i + 1] - 1, outs[i],
				 caps[i]) < 0)
			return -EINVAL;
	if (b64_decode(v + dots[4] + 1, strlen(v + dots[4] + 1), got, sizeof(got)) != MAC_LEN)
		return -EINVAL;
	mac_of(secret, secret_len, v, dots[4], mac);
	return CRYPTO_memcmp(mac, got, MAC_LEN) == 0 ? 0 : -EPERM;
}
