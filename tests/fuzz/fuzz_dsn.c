// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the reading of incoming bounces (core/oob.c over
 * core/mime_parse.c, GMime underneath) and for the DSN builder fed with what
 * was read. The input is a received message. The parser must keep the
 * promises of oob.h: a 1 has between 1 and OOB_MAX_RCPTS recipients, each
 * with an address and an action, every string NUL-terminated within its
 * field; a 0 leaves no recipient. The first recipient then goes through
 * dsn_build (as if tern were the one reporting it), whose output must hold
 * only 7-bit CRLF lines, whatever the reply and the headers held. Each
 * recipient's address is also read as a VERP return path (trace_ref.h): a
 * token that verifies names a 32-digit hex id, and one made for that id
 * verifies again.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tern/dsn.h"
#include "tern/oob.h"
#include "tern/trace_ref.h"

#define TERMINATED(f) (memchr((f), '\0', sizeof(f)) != NULL)

static void
check_recipient(const struct oob_recipient *r)
{
	if (!TERMINATED(r->address) || !TERMINATED(r->original) || !TERMINATED(r->action) ||
	    !TERMINATED(r->status) || !TERMINATED(r->diagnostic) || !TERMINATED(r->remote_mta))
		abort();
	if (r->address[0] == '\0' || strchr(r->address, '@') == NULL || r->action[0] == '\0')
		abort();
	if (r->code != 0 && (r->code < 400 || r->code > 599))
		abort();
}

static const char secret[] = "fuzz-secret-0123456789";

static void
check_verp(const char *address, const char *recipient)
{
	char id[SPOOL_ID_HEX_LEN + 1], again[SPOOL_ID_HEX_LEN + 1];
	struct buf rp;

	if (trace_verp_verify(address, recipient, secret, sizeof(secret) - 1, id) != 0)
		return;
	if (strlen(id) != SPOOL_ID_HEX_LEN || strspn(id, "0123456789abcdef") != SPOOL_ID_HEX_LEN)
		abort();
	buf_init(&rp);
	if (trace_verp_sender("b@fuzz", id, recipient, secret, sizeof(secret) - 1, &rp) != 0 ||
	    trace_verp_verify(rp.data, recipient, secret, sizeof(secret) - 1, again) != 0 ||
	    strcmp(id, again) != 0)
		abort();
	buf_deinit(&rp);
}

static void
check_dsn_output(const struct buf *b)
{
	size_t i;

	for (i = 0; i < b->len; i++) {
		unsigned char c = (unsigned char)b->data[i];

		if (c > 0x7e || (c == '\n' && (i == 0 || b->data[i - 1] != '\r')) ||
		    (c == '\r' && (i + 1 == b->len || b->data[i + 1] != '\n')))
			abort();
	}
}

static void
build_dsn(const struct oob_recipient *r, const uint8_t *data, size_t size)
{
	struct dsn_report d = {
	    .reporting_mta = "mta.fuzz",
	    .to = r->original[0] ? r->original : "sender@fuzz",
	    .recipient = r->address,
	    .status = r->status[0] ? r->status : "5.0.0",
	    .code = r->code,
	    .diagnostic = r->diagnostic,
	    .remote_mta = r->remote_mta[0] ? r->remote_mta : NULL,
	    .message_id = "fuzz@mta.fuzz",
	    .headers = (const char *)data,
	    .headers_len = size,
	};
	struct tern_err err;
	struct buf out;

	buf_init(&out);
	if (dsn_build(&d, &out, &err) == 0)
		check_dsn_output(&out);
	buf_deinit(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct oob_report o;
	size_t i;
	int rc = oob_parse((const char *)data, size, &o);

	if (rc == 0 && o.n_rcpts != 0)
		abort();
	if (rc == 0)
		return 0;
	if (rc != 1 || o.n_rcpts == 0 || o.n_rcpts > OOB_MAX_RCPTS || !TERMINATED(o.ref) ||
	    !TERMINATED(o.reporting_mta) || !TERMINATED(o.original_message_id))
		abort();
	for (i = 0; i < o.n_rcpts; i++) {
		check_recipient(&o.rcpts[i]);
		check_verp(o.rcpts[i].address, o.rcpts[0].address);
	}
	build_dsn(&o.rcpts[0], data, size);
	return 0;
}
