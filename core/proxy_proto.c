// SPDX-License-Identifier: MIT
/*
 * PROXY protocol header parsing, after HAProxy's proxy-protocol.txt. Version
 * 1 is one text line ("PROXY TCP4 192.0.2.1 198.51.100.2 5678 25\r\n"),
 * version 2 a binary block behind a 12-octet signature. Only the addresses
 * matter to us: v2 TLVs are skipped. Nothing here trusts the sender; the
 * session only calls this for peers the listener trusts.
 */
#include "tern/proxy_proto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
				   0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

static int
refuse(struct tern_err *err, const char *why)
{
	tern_err_set(err, 421, "4.7.0", "invalid PROXY header: %s", why);
	return -EINVAL;
}

/* Whether p so far agrees with the start of want. */
static bool
prefix_of(const uint8_t *p, size_t n, const void *want, size_t wn)
{
	return memcmp(p, want, n < wn ? n : wn) == 0;
}

/* ---- version 1 ---- */

static bool
v1_port(const char *s, uint16_t *port)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9' || (s[0] == '0' && s[1] != '\0'))
		return false;
	v = strtoul(s, &end, 10);
	if (*end != '\0' || v > 65535)
		return false;
	*port = (uint16_t)v;
	return true;
}

static bool
v1_address(int family, const char *addr, const char *port, struct sockaddr_storage *ss)
{
	uint16_t p;

	memset(ss, 0, sizeof(*ss));
	if (!v1_port(port, &p))
		return false;
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;

		a->sin_family = AF_INET;
		a->sin_port = htons(p);
		return inet_pton(AF_INET, addr, &a->sin_addr) == 1;
	}
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;

	a6->sin6_family = AF_INET6;
	a6->sin6_port = htons(p);
	return inet_pton(AF_INET6, addr, &a6->sin6_addr) == 1;
}

/* "TCP4 src dst sport dport" (the line without "PROXY " and CRLF). */
static int
v1_fields(char *line, struct proxy_header *out, struct tern_err *err)
{
	char *f[6], *save = NULL;
	int n = 0, family;

	for (char *t = strtok_r(line, " ", &save); t && n < 6; t = strtok_r(NULL, " ", &save))
		f[n++] = t;
	if (n >= 1 && strcmp(f[0], "UNKNOWN") == 0) {
		out->local = true;
		return 0;
	}
	if (n != 5)
		return refuse(err, "v1 wants protocol, two addresses and two ports");
	if (strcmp(f[0], "TCP4") == 0)
		family = AF_INET;
	else if (strcmp(f[0], "TCP6") == 0)
		family = AF_INET6;
	else
		return refuse(err, "v1 protocol is not TCP4, TCP6 or UNKNOWN");
	if (!v1_address(family, f[1], f[3], &out->src) ||
	    !v1_address(family, f[2], f[4], &out->dst))
		return refuse(err, "v1 address or port does not parse");
	return 0;
}

static int
v1_parse(const uint8_t *p, size_t n, struct proxy_header *out, struct tern_err *err)
{
	char line[PROXY_PROTO_V1_MAX + 1];
	const uint8_t *crlf;
	size_t len;

	crlf = memchr(p, '\n', n < PROXY_PROTO_V1_MAX ? n : PROXY_PROTO_V1_MAX);
	if (crlf == NULL)
		return n < PROXY_PROTO_V1_MAX ? TERN_AGAIN : refuse(err, "v1 line too long");
	len = (size_t)(crlf - p) + 1;
	if (len < 8 || p[len - 2] != '\r')
		return refuse(err, "v1 line does not end in CRLF");
	if (memchr(p, '\0', len) != NULL)
		return refuse(err, "v1 line holds a NUL");
	memcpy(line, p + 6, len - 8);
	line[len - 8] = '\0';
	out->version = 1;
	if (v1_fields(line, out, err) < 0)
		return -EINVAL;
	return (int)len;
}

/* ---- version 2 ---- */

static int
v2_addresses(const uint8_t *a, size_t alen, uint8_t fam, struct proxy_header *out,
	     struct tern_err *err)
{
	if ((fam >> 4) == 1) {
		struct sockaddr_in *s = (struct sockaddr_in *)&out->src,
				   *d = (struct sockaddr_in *)&out->dst;

		if (alen < 12)
			return refuse(err, "v2 IPv4 block too short");
		s->sin_family = d->sin_family = AF_INET;
		memcpy(&s->sin_addr, a, 4);
		memcpy(&d->sin_addr, a + 4, 4);
		memcpy(&s->sin_port, a + 8, 2);
		memcpy(&d->sin_port, a + 10, 2);
	} else if ((fam >> 4) == 2) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&out->src,
				    *d = (struct sockaddr_in6 *)&out->dst;

		if (alen < 36)
			return refuse(err, "v2 IPv6 block too short");
		s->sin6_family = d->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, a, 16);
		memcpy(&d->sin6_addr, a + 16, 16);
		memcpy(&s->sin6_port, a + 32, 2);
		memcpy(&d->sin6_port, a + 34, 2);
	} else {
		/* UNSPEC or AF_UNIX: nothing we can judge relay control by. */
		out->local = true;
	}
	return 0;
}

static int
v2_parse(const uint8_t *p, size_t n, struct proxy_header *out, struct tern_err *err)
{
	size_t alen;

	if (n < 16)
		return TERN_AGAIN;
	if ((p[12] >> 4) != 2)
		return refuse(err, "v2 version is not 2");
	if ((p[12] & 0x0f) > 1)
		return refuse(err, "v2 command is not LOCAL or PROXY");
	alen = ((size_t)p[14] << 8) | p[15];
	if (alen > PROXY_PROTO_V2_MAX)
		return refuse(err, "v2 address block too long");
	if (n < 16 + alen)
		return TERN_AGAIN;
	out->version = 2;
	if ((p[12] & 0x0f) == 0)
		out->local = true;
	else if (v2_addresses(p + 16, alen, p[13], out, err) < 0)
		return -EINVAL;
	return (int)(16 + alen);
}

int
proxy_proto_parse(const uint8_t *p, size_t n, struct proxy_header *out, struct tern_err *err)
{
	memset(out, 0, sizeof(*out));
	if (n == 0)
		return TERN_AGAIN;
	if (prefix_of(p, n, v2_sig, sizeof(v2_sig)))
		return n < sizeof(v2_sig) ? TERN_AGAIN : v2_parse(p, n, out, err);
	if (prefix_of(p, n, "PROXY ", 6))
		return n < 6 ? TERN_AGAIN : v1_parse(p, n, out, err);
	return refuse(err, "no PROXY signature");
}
