// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the message content checks: smtp_content_flaws() and
 * long_lines = 'wrap' (smtp_wrap_long_lines()). Input: a message body.
 * Wrapping must leave no line over the limit, change nothing in a message
 * that had none, add only line breaks and spaces, and keep NUL bytes (which
 * are refused, not wrapped) where they were.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tern/smtp_proto.h"

/* p without CR, LF and SP: what wrapping must leave unchanged. */
static void
strip_breaks(const char *p, size_t n, struct buf *out)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] != '\r' && p[i] != '\n' && p[i] != ' ' && buf_append_char(out, p[i]) < 0)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	struct buf out, a, b;
	int flaws = smtp_content_flaws(in, size);

	buf_init(&out);
	buf_init(&a);
	buf_init(&b);
	if (smtp_wrap_long_lines(in, size, &out) < 0)
		abort();
	if (smtp_content_flaws(out.data, out.len) != (flaws & SMTP_CONTENT_NUL))
		abort();
	if (!(flaws & SMTP_CONTENT_LONG_LINE) &&
	    (out.len != size || (size && memcmp(out.data, in, size))))
		abort();
	strip_breaks(in, size, &a);
	strip_breaks(out.data, out.len, &b);
	if (a.len != b.len || (a.len && memcmp(a.data, b.data, a.len) != 0))
		abort();
	buf_deinit(&out);
	buf_deinit(&a);
	buf_deinit(&b);
	return 0;
}
