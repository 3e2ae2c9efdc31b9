// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the DATA reader. Input: a flags byte (bit 0: fix
 * line endings; bit 1: a size limit of the remaining bits), four chunk-size
 * bytes, then the bytes sent after 354. The reader is fed in chunks of those
 * sizes and must agree, byte for byte, with a deliberately naive model of
 * the rules in smtp_proto.h that sees the whole input at once.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tern/smtp_proto.h"

struct outcome {
	struct buf out;
	uint64_t size;
	size_t consumed;
	bool done, bad, big;
};

static void
model_emit(struct outcome *o, size_t max, const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++, o->size++) {
		if (max != 0 && o->size >= max)
			o->big = true;
		else if (buf_append(&o->out, p + i, 1) < 0)
			abort();
	}
}

/* Lines end in CRLF, a bare LF, or a CR followed by anything but LF. */
static void
model(const char *in, size_t len, size_t max, bool fix, struct outcome *o)
{
	size_t i = 0, start;
	bool after_crlf = true, dotted;

	for (;;) {
		start = i;
		while (i < len && in[i] != '\r' && in[i] != '\n')
			i++;
		dotted = i > start && in[start] == '.';
		start += dotted;
		if (after_crlf && dotted && i == start && i + 1 < len && in[i] == '\r' &&
		    in[i + 1] == '\n') {
			o->done = true;
			o->consumed = i + 2;
			return;
		}
		model_emit(o, max, in + start, i - start);
		if (i == len || (in[i] == '\r' && i + 1 == len))
			break; /* a line, or a CR, still open */
		after_crlf = in[i] == '\r' && in[i + 1] == '\n';
		if (after_crlf || fix)
			model_emit(o, max, "\r\n", 2);
		else
			model_emit(o, max, in + i, 1);
		o->bad |= !after_crlf && !fix;
		i += after_crlf ? 2 : 1;
	}
	o->consumed = len;
}

static void
run_reader(const char *in, size_t len, size_t max, bool fix, const uint8_t sizes[4],
	   struct outcome *o)
{
	struct smtp_data_reader r;
	enum smtp_data_status st = SMTP_DATA_MORE;
	size_t pos = 0, n, used, i;
	bool stuck = !(sizes[0] | sizes[1] | sizes[2] | sizes[3]);

	smtp_data_reader_init(&r, max, fix);
	for (i = 0; pos < len && st == SMTP_DATA_MORE; i++) {
		n = stuck ? 1 : sizes[i % 4];
		if (n > len - pos)
			n = len - pos;
		st = smtp_data_feed(&r, in + pos, n, &o->out, &used);
		if (used > n || (st == SMTP_DATA_MORE && used != n))
			abort();
		pos += used;
	}
	o->consumed = pos;
	o->done = st == SMTP_DATA_DONE;
	o->bad = smtp_data_bad_line_ending(&r);
	o->big = smtp_data_too_big(&r);
	o->size = smtp_data_size(&r);
	if (smtp_data_nomem(&r))
		abort();
}

static void
check_no_bare(const struct buf *b)
{
	size_t i;

	for (i = 0; i < b->len; i++) {
		if (b->data[i] == '\r' && (i + 1 == b->len || b->data[i + 1] != '\n'))
			abort();
		if (b->data[i] == '\n' && (i == 0 || b->data[i - 1] != '\r'))
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct outcome want = {0}, got = {0};
	const char *in = (const char *)data + 5;
	size_t len, max;
	bool fix;

	if (size < 5)
		return 0;
	len = size - 5;
	fix = data[0] & 1;
	max = data[0] & 2 ? (size_t)(data[0] >> 2) + 1 : 0;
	model(in, len, max, fix, &want);
	run_reader(in, len, max, fix, data + 1, &got);
	if (got.out.len != want.out.len || got.consumed != want.consumed || got.done != want.done ||
	    got.bad != want.bad || got.big != want.big || got.size != want.size)
		abort();
	if (got.out.len && memcmp(got.out.data, want.out.data, got.out.len) != 0)
		abort();
	if (max != 0 && got.out.len > max)
		abort();
	if (fix && !got.big)
		check_no_bare(&got.out);
	buf_deinit(&want.out);
	buf_deinit(&got.out);
	return 0;
}
