// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the SMTP client's reply assembly and EHLO capability
 * parsing: the input is what a server sends, cut at LF into lines and fed to
 * smtp_reply_feed() reply after reply. Every result is checked against the
 * limits and promises in smtp_proto.h, and every complete reply is read as
 * EHLO capabilities, which must name only keywords its lines hold.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tern/smtp_proto.h"

/* text holds "\nKW" followed by a space, a line end or its end (any case). */
static bool
has_keyword(const char *text, size_t len, const char *kw)
{
	size_t k = strlen(kw), i, j, after;

	for (i = 0; i + 1 + k <= len; i++) {
		if (text[i] != '\n')
			continue;
		for (j = 0; j < k && toupper((unsigned char)text[i + 1 + j]) == kw[j]; j++)
			;
		after = i + 1 + k;
		if (j == k && (after == len || text[after] == ' ' || text[after] == '\n'))
			return true;
	}
	return false;
}

static void
check_capabilities(const struct smtp_reply *r)
{
	struct smtp_caps caps;
	const char *t = r->text.data;
	size_t n = r->text.len;

	smtp_parse_capabilities(t, n, &caps);
	if (caps.pipelining != has_keyword(t, n, "PIPELINING") ||
	    caps.starttls != has_keyword(t, n, "STARTTLS") ||
	    caps.eightbitmime != has_keyword(t, n, "8BITMIME") ||
	    caps.smtputf8 != has_keyword(t, n, "SMTPUTF8"))
		abort();
}

static void
check_reply(struct smtp_reply *r, bool done)
{
	struct smtp_reply copy;
	struct tern_err err;

	if (r->lines == 0 || r->lines > SMTP_REPLY_LINES_LIMIT || r->size > SMTP_REPLY_SIZE_LIMIT)
		abort();
	if (r->text.len >= r->size || r->code < 200 || r->code > 599)
		abort();
	if (r->enhanced[0] != '\0' && r->enhanced[0] != '0' + r->code / 100)
		abort();
	if (!done)
		return;
	check_capabilities(r);
	smtp_reply_init(&copy);
	if (smtp_reply_copy(&copy, r) == 0 &&
	    (copy.code != r->code || copy.text.len != r->text.len ||
	     memcmp(copy.text.data, r->text.data, r->text.len) != 0))
		abort();
	smtp_reply_deinit(&copy);
	if (smtp_reply_feed(r, "250 x", 5, &err) != SMTP_REPLY_ERROR)
		abort();
}

static void
check_error(const struct tern_err *err)
{
	if (err->code != 451 || strcmp(err->enhanced, "4.4.2") != 0 || err->msg[0] == '\0')
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size, *nl;
	struct smtp_reply r;
	struct tern_err err;
	enum smtp_reply_status st;

	smtp_reply_init(&r);
	for (; p < end; p = nl ? nl + 1 : end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		st = smtp_reply_feed(&r, p, (size_t)((nl ? nl : end) - p), &err);
		if (st == SMTP_REPLY_ERROR) {
			check_error(&err);
			smtp_reply_reset(&r);
			continue;
		}
		check_reply(&r, st == SMTP_REPLY_DONE);
		if (st == SMTP_REPLY_DONE)
			smtp_reply_reset(&r);
	}
	smtp_reply_deinit(&r);
	return 0;
}
