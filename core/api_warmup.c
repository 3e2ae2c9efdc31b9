// SPDX-License-Identifier: MIT
/*
 * Warm-up endpoints: the state lives in one table (warmup.c) that any
 * thread may read under its mutex, so neither endpoint visits the shards.
 */
#include "tern/api_warmup.h"
#include "tern/admin.h"
#include "tern/http_server.h"
#include "tern/json.h"
#include "tern/warmup.h"

#include <string.h>

void
api_warmup_list(struct http_request *req)
{
	struct buf b;

	buf_init(&b);
	if (warmup_list_json(&b) < 0 || b.data == NULL)
		http_request_reply_error(req, 503, "out of memory");
	else
		http_request_reply_json(req, 200, b.data, b.len);
	buf_deinit(&b);
}

void
api_warmup_resume(struct http_request *req)
{
	struct tern_err err = {0};
	struct json_span obj, v;
	char source[64];
	size_t len;
	const char *body = http_request_body(req, &len);

	if (json_parse_span(body, len, &obj, &err) < 0 || obj.type != JSON_OBJECT) {
		http_request_reply_error(req, 400, "the body must be a JSON object: %s", err.msg);
		return;
	}
	if (json_object_get(&obj, "source", &v) < 0 ||
	    admin_json_string(&v, source, sizeof(source)) < 0) {
		http_request_reply_error(req, 422, "field 'source' must name a warming source");
		return;
	}
	if (warmup_resume(source, &err) < 0) {
		http_request_reply_error(req, (unsigned)err.code, "%s", err.msg);
		return;
	}
	http_request_reply_json(req, 200, "{}", 2);
}
