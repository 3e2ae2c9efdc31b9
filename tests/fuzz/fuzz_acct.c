// SPDX-License-Identifier: MIT
/*
 * libFuzzer: accounting lines from records holding arbitrary text (a
 * receiver's reply, the envelope, message headers) and from arbitrary
 * templates. Whatever the values, a line holds no CR or LF (it must stay one
 * line of a segment), and a CSV line reads back, per RFC 4180, as exactly
 * its columns.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tern/acct_csv.h"
#include "tern/logrec.h"
#include "tern/message.h"

static const char *const columns[] = {"rcpt", "dsnDiag", "header_X-Job", "orig", "jobId"};

/* Columns of one RFC 4180 line, or -1 when it is malformed. */
static int
csv_columns(const char *p, size_t n)
{
	size_t i = 0;
	int cols = 1;

	while (i < n) {
		if (p[i] == '"') {
			for (i++; i < n && !(p[i] == '"' && (i + 1 == n || p[i + 1] != '"')); i++)
				i += p[i] == '"';
			if (i == n)
				return -1;
			i++;
			if (i < n && p[i] != ',')
				return -1;
		} else {
			while (i < n && p[i] != ',') {
				if (p[i] == '"')
					return -1;
				i++;
			}
		}
		if (i < n) {
			cols++;
			i++;
			if (i == n)
				break;
		}
	}
	return cols;
}

/* The next NUL-separated part of the input (reply, sender, headers, template), cut to cap. */
static const char *
part(const uint8_t **data, size_t *size, char *out, size_t cap)
{
	const uint8_t *nul = memchr(*data, 0, *size);
	size_t n = nul ? (size_t)(nul - *data) : *size;
	size_t take = n < cap - 1 ? n : cap - 1;

	memcpy(out, *data, take);
	out[take] = '\0';
	n += nul != NULL;
	*data += n;
	*size -= n;
	return out;
}

static void
check_line(const struct buf *b, int want_cols)
{
	if (memchr(b->data, '\n', b->len) || memchr(b->data, '\r', b->len))
		abort();
	if (want_cols > 0 && csv_columns(b->data, b->len) != want_cols)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char reply[512], sender[256], headers[1024], tpl[512];
	const struct acct_context ctx = {.now = 1700000000, .nodeid = "n"};
	struct acct_format csv = {.kind = ACCT_PMTA_CSV, .fields = (char **)columns, .n_fields = 5};
	struct acct_format tf = {.kind = ACCT_TEMPLATE};
	struct message *m;
	struct logrec r = {.type = "Bounce", .response_code = 550};
	struct tern_err err;
	struct buf out;

	r.response_content = part(&data, &size, reply, sizeof(reply));
	part(&data, &size, sender, sizeof(sender));
	part(&data, &size, headers, sizeof(headers));
	part(&data, &size, tpl, sizeof(tpl));
	m = message_new(sender, "r@x.test");
	buf_append_str(&m->data, headers);
	r.msg = m;
	acct_select_letter(&csv, "b");
	buf_init(&out);
	if (acct_format_line(&csv, &r, &ctx, &out) == 0)
		check_line(&out, 6);
	tf.types[acct_type_index("Bounce")] = true;
	tf.templates[acct_type_index("Bounce")] = tpl;
	buf_reset(&out);
	if (acct_template_check(tpl, &err) == 0 && acct_format_line(&tf, &r, &ctx, &out) == 0)
		check_line(&out, 0);
	buf_deinit(&out);
	message_free(m);
	return 0;
}
