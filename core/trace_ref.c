// SPDX-License-Identifier: MIT
/*
 * The trace header. The fields travel in the clear (the recipient sees its
 * own address, the tenant and campaign names are the sender's): the mac
 * only proves that tern wrote them, so that a forged complaint cannot name
 * a message or a recipient of its choosing. Comparison is constant-time.
 */
#include "tern/trace_ref.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
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

/* ---- VERP ---------------------------------------------------------------------------------- */

#define VERP_MAC_LEN 9
#define VERP_RAW_LEN (SPOOL_ID_LEN + VERP_MAC_LEN)
#define LOCAL_PART_MAX 64

static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";

/* The token's mac bytes for (id, recipient). */
static void
verp_mac(const char *secret, size_t secret_len, const char *id_hex, const char *recipient,
	 unsigned char mac[MAC_LEN])
{
	char in[5 + SPOOL_ID_HEX_LEN + 1 + 330];
	size_t n = (size_t)snprintf(in, sizeof(in), "verp.%s.", id_hex), i;

	for (i = 0; recipient[i] && n + 1 < sizeof(in); i++)
		in[n++] = (recipient[i] >= 'A' && recipient[i] <= 'Z') ? (char)(recipient[i] + 32)
								      : recipient[i];
	mac_of(secret, secret_len, in, n, mac);
}

/* 25 bytes as 40 base32 characters (5 bytes make 8). */
static void
b32_encode(const unsigned char raw[VERP_RAW_LEN], char out[TRACE_VERP_TOKEN_LEN])
{
	size_t i, j, k = 0;

	for (i = 0; i < VERP_RAW_LEN; i += 5) {
		uint64_t v = 0;

		for (j = 0; j < 5; j++)
			v = v << 8 | raw[i + j];
		for (j = 0; j < 8; j++)
			out[k++] = b32[(v >> (35 - 5 * j)) & 31];
	}
}

static int
b32_decode(const char *s, unsigned char raw[VERP_RAW_LEN])
{
	size_t i, j;

	for (i = 0; i < TRACE_VERP_TOKEN_LEN; i += 8) {
		uint64_t v = 0;

		for (j = 0; j < 8; j++) {
			char c = s[i + j] >= 'A' && s[i + j] <= 'Z' ? (char)(s[i + j] + 32) : s[i + j];
			const char *p = c ? strchr(b32, c) : NULL;

			if (p == NULL)
				return -EINVAL;
			v = v << 5 | (uint64_t)(p - b32);
		}
		for (j = 0; j < 5; j++)
			raw[i / 8 * 5 + j] = (unsigned char)(v >> (32 - 8 * j));
	}
	return 0;
}

int
trace_verp_sender(const char *sender, const char *id_hex, const char *recipient,
		  const char *secret, size_t secret_len, struct buf *out)
{
	const char *at = strrchr(sender, '@');
	unsigned char raw[VERP_RAW_LEN], mac[MAC_LEN];
	char token[TRACE_VERP_TOKEN_LEN];
	size_t i;

	if (at == NULL || at == sender ||
	    (size_t)(at - sender) + 1 + TRACE_VERP_TOKEN_LEN > LOCAL_PART_MAX ||
	    !hex_id(id_hex, strlen(id_hex)))
		return -EINVAL;
	for (i = 0; i < SPOOL_ID_LEN; i++)
		raw[i] = (unsigned char)(util_hex_value(id_hex[2 * i]) << 4 |
					 util_hex_value(id_hex[2 * i + 1]));
	verp_mac(secret, secret_len, id_hex, recipient, mac);
	memcpy(raw + SPOOL_ID_LEN, mac, VERP_MAC_LEN);
	b32_encode(raw, token);
	if (buf_append(out, sender, (size_t)(at - sender)) < 0 || buf_append_char(out, '+') < 0 ||
	    buf_append(out, token, sizeof(token)) < 0 || buf_append(out, at, strlen(at)) < 0)
		return -ENOMEM;
	return 0;
}

int
trace_verp_verify(const char *address, const char *recipient, const char *secret,
		  size_t secret_len, char id[SPOOL_ID_HEX_LEN + 1])
{
	const char *at = strrchr(address, '@');
	unsigned char raw[VERP_RAW_LEN], mac[MAC_LEN];
	const char *token;
	size_t i;

	id[0] = '\0';
	if (at == NULL || at - address < TRACE_VERP_TOKEN_LEN + 2)
		return -EINVAL;
	token = at - TRACE_VERP_TOKEN_LEN;
	if (token[-1] != '+' || b32_decode(token, raw) < 0)
		return -EINVAL;
	for (i = 0; i < SPOOL_ID_LEN; i++)
		snprintf(id + 2 * i, 3, "%02x", raw[i]);
	verp_mac(secret, secret_len, id, recipient, mac);
	return CRYPTO_memcmp(mac, raw + SPOOL_ID_LEN, VERP_MAC_LEN) == 0 ? 0 : -EPERM;
}
