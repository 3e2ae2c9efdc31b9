/* SPDX-License-Identifier: MIT */
/*
 * The inject API's request (KumoMTA's schema), decoded from JSON and
 * rendered into one message per recipient. Pure (fuzzed by fuzz_inject_json):
 * the endpoint (api_inject.c) does the hooks, the spool and the reply.
 *
 *   {"envelope_sender": "...", "recipients": [{"email", "name"?, "substitutions"?}],
 *    "substitutions"?: {...}, "content": "full RFC 5322 message" | {
 *      "subject", "from": {"email", "name"?}, "reply_to"?, "headers"?: {...},
 *      "text_body"?, "html_body"?, "attachments"?: [{"data" (base64), "content_type"?,
 *      "file_name"?}]}}
 */
#ifndef TERN_INJECT_H
#define TERN_INJECT_H

#include <stddef.h>

#include "tern/util.h"

struct inject_var {
	char *key;
	char *value; /* strings as they are; numbers and booleans as their JSON text */
};

struct inject_vars {
	struct inject_var *v;
	size_t n;
};

struct inject_recipient {
	char *email;
	char *name; /* or NULL */
	struct inject_vars subs;
};

struct inject_attachment {
	struct buf data; /* decoded */
	char *content_type;
	char *file_name;
};

struct inject_request {
	char *envelope_sender;
	struct inject_recipient *rcpts;
	size_t n_rcpts;
	struct inject_vars subs;
	char *content; /* the full-message form, or NULL for the builder */
	char *subject;
	char *from_email, *from_name;
	char *reply_to_email, *reply_to_name;
	struct inject_vars headers;
	char *text_body, *html_body;
	struct inject_attachment *attachments;
	size_t n_attachments;
};

/*
 * Decode a request. 0, or -EINVAL with err->code the HTTP status (400 for
 * malformed JSON, 422 for a missing or wrong field, err->msg naming it, e.g.
 * "recipients[2].email: required"), -ENOMEM. out is to be freed either way.
 */
int inject_decode(const char *json, size_t len, struct inject_request *out, struct tern_err *err);
void inject_request_free(struct inject_request *r);

/*
 * The message for recipient i, appended to out (CRLF line endings), with
 * the recipient's substitutions over the global ones. message_id (without
 * brackets) and date are used by the builder form. 0, or -EINVAL/-ENOMEM and err.
 */
int inject_render(const struct inject_request *r, size_t i, const char *message_id, double date,
		  struct buf *out, struct tern_err *err);

#endif
