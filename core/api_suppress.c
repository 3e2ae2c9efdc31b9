// SPDX-License-Identifier: MIT
/*
 * Suppression endpoints. The list is the spool's, shared by every shard, so
 * a request is served on the shard that received it: a lookup or a change
 * is one RocksDB call. A listing is bounded by its limit, since a list of
 * millions does not fit one answer; the CLI's export is the way to all of it.
 */
#include "tern/api_suppress.h"
#include "tern/admin.h"
#include "tern/http_server.h"
#include "tern/json.h"
#include "tern/suppress.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define API_SUPPRESS_LIMIT 1000
#define API_SUPPRESS_LIMIT_MAX 100000

static void
reply_err(struct http_request *req, int rc, const struct tern_err *err)
{
	unsigned status = rc == -ENOENT && err->code == 550 ? 404 : rc == -EINVAL ? 422 : 503;

	http_request_reply_error(req, status, "%s", err->msg);
}

static void
get_one(struct http_request *req, const char *address, const char *tenant)
{
	struct suppress_entry e;
	struct buf b;

	if (suppress_check(tenant, address, &e) != 1) {
		http_request_reply_error(req, 404, "%s is not suppressed for tenant %s", address,
					 tenant);
		return;
	}
	buf_init(&b);
	suppress_entry_json(&e, &b);
	http_request_reply_buf(req, 200, &b);
}

struct listing {
	struct buf out;
	long left;
	bool first;
	bool truncated;
};

static int
list_visit(void *arg, const struct suppress_entry *e)
{
	struct listing *l = arg;

	if (l->left-- == 0) {
		l->truncated = true;
		return -ECANCELED;
	}
	if (!l->first)
		buf_append_char(&l->out, ',');
	l->first = false;
	return suppress_entry_json(e, &l->out);
}

static void
get_list(struct http_request *req, const char *tenant, const char *limit)
{
	struct listing l = {.left = API_SUPPRESS_LIMIT, .first = true};
	struct tern_err err;
	char *end = NULL;
	int rc;

	if (limit != NULL) {
		l.left = strtol(limit, &end, 10);
		if (*end != '\0' || l.left < 1 || l.left > API_SUPPRESS_LIMIT_MAX) {
			http_request_reply_error(req, 422, "limit must be 1 to %d",
						 API_SUPPRESS_LIMIT_MAX);
			return;
		}
	}
	buf_init(&l.out);
	buf_append_str(&l.out, "{\"entries\":[");
	rc = suppress_list(tenant, list_visit, &l, &err);
	if (rc < 0 && rc != -ECANCELED) {
		buf_deinit(&l.out);
		reply_err(req, rc, &err);
		return;
	}
	buf_printf(&l.out, "],\"truncated\":%s}", l.truncated ? "true" : "false");
	http_request_reply_buf(req, 200, &l.out);
}

void
api_suppress_get(struct http_request *req)
{
	const char *address = http_request_arg(req, "address");
	const char *tenant = http_request_arg(req, "tenant");

	if (address != NULL)
		get_one(req, address, tenant ? tenant : SUPPRESS_ALL_TENANTS);
	else
		get_list(req, tenant, http_request_arg(req, "limit"));
}

/* The body's object, and its address and tenant, into e; an HTTP error when malformed. */
static bool
read_body(struct http_request *req, struct json_span *obj, struct suppress_entry *e)
{
	char address[SUPPRESS_ADDR_MAX], tenant[SUPPRESS_TENANT_MAX] = SUPPRESS_ALL_TENANTS;
	struct tern_err err = {0};
	struct json_span v;
	size_t len;
	const char *body = http_request_body(req, &len);

	if (json_parse_span(body, len, obj, &err) < 0 || obj->type != JSON_OBJECT) {
		http_request_reply_error(req, 400, "the body must be a JSON object: %s", err.msg);
		return false;
	}
	if (json_object_get(obj, "address", &v) < 0 ||
	    admin_json_string(&v, address, sizeof(address)) < 0 ||
	    (json_object_get(obj, "tenant", &v) == 0 &&
	     admin_json_string(&v, tenant, sizeof(tenant)) < 0)) {
		http_request_reply_error(req, 422, "fields 'address' and 'tenant' must be strings");
		return false;
	}
	if (suppress_entry_init(e, tenant, address, &err) < 0) {
		http_request_reply_error(req, 422, "%s", err.msg);
		return false;
	}
	return true;
}

/* Optional string field key into out; false (answered 422) when it is not a string that fits. */
static bool
opt_string(struct http_request *req, const struct json_span *obj, const char *key, char *out,
	   size_t n)
{
	struct json_span v;

	if (json_object_get(obj, key, &v) < 0 || admin_json_string(&v, out, n) == 0)
		return true;
	http_request_reply_error(req, 422, "field '%s' must be a string of at most %zu bytes", key,
				 n - 1);
	return false;
}

/* expires_in: seconds, or a duration string ("30d"). */
static bool
opt_expiry(struct http_request *req, const struct json_span *obj, struct suppress_entry *e)
{
	struct json_span v;
	char s[32];
	double d = 0;

	if (json_object_get(obj, "expires_in", &v) < 0)
		return true;
	if (!(v.type == JSON_NUMBER && json_number_value(&v, &d) == 0) &&
	    !(admin_json_string(&v, s, sizeof(s)) == 0 && util_parse_duration(s, &d) == 0)) {
		d = -1;
	}
	if (d <= 0) {
		http_request_reply_error(req, 422,
					 "expires_in must be a positive number of seconds "
					 "or a duration such as \"30d\"");
		return false;
	}
	e->expires = e->time + d;
	return true;
}

void
api_suppress_add(struct http_request *req)
{
	struct suppress_entry e;
	struct tern_err err;
	struct json_span obj;
	int rc;

	if (!read_body(req, &obj, &e) ||
	    !opt_string(req, &obj, "reason", e.reason, sizeof(e.reason)) ||
	    !opt_string(req, &obj, "category", e.category, sizeof(e.category)) ||
	    !opt_expiry(req, &obj, &e))
		return;
	rc = suppress_add(&e, &err);
	if (rc < 0) {
		reply_err(req, rc, &err);
		return;
	}
	http_request_reply_json(req, 200, "{}", 2);
}

void
api_suppress_remove(struct http_request *req)
{
	struct suppress_entry e;
	struct tern_err err;
	struct json_span obj;
	int rc;

	if (!read_body(req, &obj, &e))
		return;
	rc = suppress_remove(e.tenant, e.address, &err);
	if (rc < 0) {
		reply_err(req, rc, &err);
		return;
	}
	http_request_reply_json(req, 200, "{}", 2);
}
