// SPDX-License-Identifier: MIT
/*
 * libFuzzer: AUTH response decoding (base64, PLAIN's three fields, LOGIN's
 * one) on arbitrary client text. A decoded PLAIN response must re-encode to
 * exactly its three fields: nothing the client sent may be dropped silently.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tern/smtp_proto.h"

static void
check_plain(const char *b64, size_t n)
{
	struct smtp_auth_plain p;
	struct tern_err err;
	char buf[1024];
	size_t a, c, w, len;

	if (smtp_auth_plain_decode(b64, n, buf, sizeof(buf), &p, &err) < 0) {
		if (err.code != 501)
			abort();
		return;
	}
	a = strlen(p.authz);
	c = strlen(p.authc);
	w = strlen(p.password);
	if (smtp_sasl_decode(b64, n, buf, sizeof(buf), &len, &err) < 0 || a + c + w + 2 != len)
		abort();
}

static void
check_login(const char *b64, size_t n)
{
	struct tern_err err;
	char buf[256];

	if (smtp_auth_login_decode(b64, n, buf, sizeof(buf), &err) == 0 &&
	    strlen(buf) * 4 > n * 3)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	check_plain(text, size);
	check_login(text, size);
	free(text);
	return 0;
}
