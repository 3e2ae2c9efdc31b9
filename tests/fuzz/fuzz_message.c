// SPDX-License-Identifier: MIT
/*
 * libFuzzer: spool metadata decoding and header access on arbitrary
 * message data. The first byte splits the input into metadata and data.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tern/message.h"

static void
walk_headers(struct message *m)
{
	struct message_field f;
	size_t off = 0;

	while (message_next_header(m, &off, &f) == 0)
		if (f.start + f.len > m->data.len || f.value + f.value_len > m->data.len)
			__builtin_trap();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct message *m;
	struct tern_err err;
	size_t split;
	struct buf out;

	if (size < 1)
		return 0;
	split = data[0] < size ? data[0] : size - 1;
	m = message_new("", NULL);
	if (m == NULL)
		return 0;
	(void)message_decode_spool_meta(m, (const char *)data + 1, split, &err);
	buf_append(&m->data, data + 1 + split, size - 1 - split);
	walk_headers(m);
	message_set_header(m, "Subject", "fuzz\nfolded");
	message_remove_header(m, "Received");
	walk_headers(m);
	buf_init(&out);
	message_encode_spool_meta(m, &out);
	message_queue_name(m, &out);
	buf_deinit(&out);
	message_free(m);
	return 0;
}
