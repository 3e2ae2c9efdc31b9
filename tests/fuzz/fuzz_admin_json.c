// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the admin API's body readers (core/admin.c): the
 * first byte picks suspend, bounce, suspend-ready-q or rebind, the rest is
 * the body. A failure must say why with 400 or 422; a success must give a
 * rule whose strings are NUL-terminated within their fields, a future expiry,
 * and (rebind) a data span inside the input that is a JSON object.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tern/admin.h"
#include "tern/json.h"

static void
check(int ok)
{
	if (!ok)
		abort();
}

static void
check_rule(const struct admin_rule *r)
{
	size_t i;

	check(memchr(r->domain, '\0', sizeof(r->domain)) != NULL);
	check(memchr(r->tenant, '\0', sizeof(r->tenant)) != NULL);
	check(memchr(r->campaign, '\0', sizeof(r->campaign)) != NULL);
	check(memchr(r->reason, '\0', sizeof(r->reason)) != NULL && r->reason[0] != '\0');
	check(memchr(r->ready_q, '\0', sizeof(r->ready_q)) != NULL);
	check(r->n_queue_names <= ADMIN_MAX_NAMES);
	for (i = 0; i < r->n_queue_names; i++)
		check(memchr(r->queue_names[i], '\0', sizeof(r->queue_names[i])) != NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data + 1;
	struct admin_rule r;
	struct json_span span;
	struct tern_err err = {0};
	int rc;

	if (size < 1)
		return 0;
	size--;
	if (data[0] % 4 == 3) {
		rc = admin_rebind_parse(body, size, &r, &span, &err);
		if (rc == 0)
			check(span.type == JSON_OBJECT && span.p >= body &&
			      span.p + span.len <= body + size);
	} else {
		rc = admin_rule_parse(body, size, (enum admin_kind)(data[0] % 4), &r, &err);
		if (rc == 0)
			check(r.expires > util_wallclock());
	}
	if (rc < 0) {
		check(err.code == 400 || err.code == 422);
		check(err.msg[0] != '\0');
		return 0;
	}
	check_rule(&r);
	return 0;
}
