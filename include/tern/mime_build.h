/* SPDX-License-Identifier: MIT */
/*
 * Building a MIME message (RFC 5322, 2045-2047, 2231) from parts: the
 * builder form of the inject API. Headers with non-ASCII text (or line
 * breaks) become RFC 2047 encoded words, text bodies are quoted-printable
 * UTF-8, attachments base64; text plus HTML is multipart/alternative, and
 * attachments wrap the body in multipart/mixed. Pure: the date and the
 * Message-ID are given, so the output depends on the input alone (fuzzed
 * through fuzz_inject_json).
 */
#ifndef TERN_MIME_BUILD_H
#define TERN_MIME_BUILD_H

#include <stdbool.h>
#include <stddef.h>

#include "tern/util.h"

struct mime_address {
	const char *name; /* display name (UTF-8) or NULL */
	const char *email;
};

struct mime_header {
	const char *name;
	const char *value; /* UTF-8 */
};

struct mime_attachment {
	const char *data;
	size_t len;
	const char *content_type; /* NULL: application/octet-stream */
	const char *file_name;	  /* UTF-8 or NULL */
};

struct mime_message {
	struct mime_address from, to;
	const struct mime_address *reply_to; /* or NULL */
	const char *subject;		     /* or NULL */
	const struct mime_header *headers;
	size_t n_headers;
	const char *text_body, *html_body; /* either may be NULL */
	const struct mime_attachment *attachments;
	size_t n_attachments;
	const char *message_id; /* without the angle brackets */
	double date;		/* epoch seconds */
};

/* Append the message (CRLF line endings) to out: 0, -EINVAL with err for bad parts, -ENOMEM. */
int mime_build(const struct mime_message *m, struct buf *out, struct tern_err *err);

/* A field name: printable ASCII without ':', and not one the builder writes itself. */
bool mime_header_name_ok(const char *name);
/* "type/subtype" of RFC 2045 tokens, without parameters. */
bool mime_content_type_ok(const char *ct);
/* An addr-spec we can write between angle brackets: no spaces, controls, '<', '>', and one '@'. */
bool mime_address_ok(const char *email);

#endif
