// SPDX-License-Identifier: MIT
/*
 * fuzz_dkim: header field parsing and both canonicalisations of headers and
 * body on arbitrary bytes (no signing). The body is fed in two pieces split
 * where the first input byte says, and must canonicalise exactly as when fed
 * whole: streaming may not depend on where the chunks fall.
 */
#include <stdlib.h>
#include <string.h>

#include "tern/dkim.h"

static void
sink(void *arg, const void *p, size_t n)
{
	if (buf_append(arg, p, n) < 0)
		abort();
}

static void
canon_body(enum dkim_canon canon, const char *p, size_t n, size_t split, struct buf *out)
{
	struct dkim_body b;

	dkim_body_init(&b, canon, sink, out);
	dkim_body_update(&b, p, split);
	dkim_body_update(&b, p + split, n - split);
	dkim_body_final(&b);
	if (b.length != out->len)
		abort();
}

static void
fuzz_body(const char *body, size_t n, size_t split)
{
	enum dkim_canon c;
	struct buf whole, parts;

	for (c = DKIM_CANON_SIMPLE; c <= DKIM_CANON_RELAXED; c++) {
		buf_init(&whole);
		buf_init(&parts);
		canon_body(c, body, n, 0, &whole);
		canon_body(c, body, n, split, &parts);
		/* An empty canonical body leaves both buffers NULL: memcmp(NULL, ...) is undefined. */
		if (whole.len != parts.len ||
		    (whole.len > 0 && memcmp(whole.data, parts.data, whole.len) != 0))
			abort();
		buf_deinit(&whole);
		buf_deinit(&parts);
	}
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	const char *msg = (const char *)data;
	struct dkim_hdrs h;
	struct buf out;
	size_t i;

	buf_init(&out);
	if (dkim_hdrs_parse(&h, msg, size, NULL) == 0) {
		for (i = 0; i < h.n; i++) {
			dkim_canon_header(DKIM_CANON_SIMPLE, msg + h.v[i].off, h.v[i].len, true, &out);
			dkim_canon_header(DKIM_CANON_RELAXED, msg + h.v[i].off, h.v[i].len, true, &out);
		}
		dkim_hdrs_find(&h, msg, "from", dkim_hdrs_count(&h, msg, "From") / 2);
		fuzz_body(msg + h.body_off, size - h.body_off,
			  size > h.body_off ? data[0] % (size - h.body_off + 1) : 0);
	}
	dkim_hdrs_deinit(&h);
	buf_deinit(&out);
	return 0;
}
