// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the inject API's decoder (core/inject.c) and what it
 * feeds: the templates (core/template.c) and the MIME builder
 * (core/mime_build.c). Any input is decoded; a failure must say why with an
 * HTTP status of 400 or 422. A decoded request is rendered for its first
 * recipients: every message uses CRLF only, and a built one (the builder
 * form, whose text is all encoded by us) has no line over 998 octets.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tern/inject.h"

static void
check(int ok)
{
	if (!ok)
		abort();
}

static void
check_lines(const struct buf *m, int built)
{
	size_t i, col = 0;

	check(m->len >= 2 && memcmp(m->data + m->len - 2, "\r\n", 2) == 0);
	for (i = 0; i < m->len; i++) {
		if (m->data[i] == '\n') {
			check(i > 0 && m->data[i - 1] == '\r');
			col = 0;
			continue;
		}
		check(m->data[i] != '\r' || (i + 1 < m->len && m->data[i + 1] == '\n'));
		col++;
		check(!built || col <= 999);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct inject_request r;
	struct tern_err err;
	size_t i;

	if (inject_decode((const char *)data, size, &r, &err) < 0) {
		check(err.code == 400 || err.code == 422 || err.code == 503);
		check(err.msg[0] != '\0');
		inject_request_free(&r);
		return 0;
	}
	for (i = 0; i < r.n_rcpts && i < 4; i++) {
		struct buf m;

		buf_init(&m);
		if (inject_render(&r, i, "id@example.test", 1.7e9, &m, &err) == 0)
			check_lines(&m, r.content == NULL);
		buf_deinit(&m);
	}
	inject_request_free(&r);
	return 0;
}
