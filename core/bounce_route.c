// SPDX-License-Identifier: MIT
/*
 * Bounce routing. The record is copied into a Lua table before the handler
 * starts, since the strings it points to (the reply, the site) belong to
 * the connection that settled the message and are gone once outcome returns;
 * the message itself is handed over and freed when the handler ends.
 */
#include "tern/bounce_route.h"
#include "tern/coro.h"
#include "tern/log.h"
#include "tern/logrec.h"
#include "tern/message.h"
#include "tern/policy_hook.h"
#include "tern/shard.h"
#include "tern/spool.h"
#include "tern/suppress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BOUNCE_ROUTE_HOOK "message_bounced"

struct route_call {
	struct coro_ref ref;
	struct message *msg;
};

bool
bounce_route_suppresses(const char *category)
{
	static const char *const hard[] = {"bad-mailbox", "bad-domain", "inactive-mailbox"};
	size_t i;

	for (i = 0; category != NULL && i < sizeof(hard) / sizeof(hard[0]); i++)
		if (strcmp(category, hard[i]) == 0)
			return true;
	return false;
}

static void
suppress_by_default(const struct message *msg, const struct logrec *rec, const char *tenant)
{
	struct suppress_entry e;
	struct tern_err err;

	if (!bounce_route_suppresses(rec->bounce_classification))
		return;
	if (suppress_entry_init(&e, tenant, msg->recipient, &err) < 0) {
		log_warn("suppress", "%s", err.msg);
		return;
	}
	snprintf(e.reason, sizeof(e.reason), "%d %s %s", rec->response_code,
		 rec->response_enhanced ? rec->response_enhanced : "",
		 rec->response_content ? rec->response_content : "");
	snprintf(e.category, sizeof(e.category), "%s", rec->bounce_classification);
	spool_id_to_hex(&msg->id, e.source);
	if (suppress_add(&e, &err) < 0)
		log_ratelimited(LOG_LEVEL_ERROR, "suppress", "%s not suppressed: %s", e.address,
				err.msg);
}

static void
set_field(lua_State *co, const char *key, const char *v)
{
	if (v == NULL)
		return;
	lua_pushstring(co, v);
	lua_setfield(co, -2, key);
}

static void
push_record(lua_State *co, const struct message *msg, const struct logrec *rec, const char *tenant)
{
	char id[SPOOL_ID_HEX_LEN + 1];

	spool_id_to_hex(&msg->id, id);
	lua_createtable(co, 0, 12);
	set_field(co, "type", rec->type);
	set_field(co, "id", id);
	set_field(co, "sender", msg->sender);
	set_field(co, "recipient", msg->recipient);
	set_field(co, "queue", rec->queue);
	set_field(co, "tenant", tenant);
	set_field(co, "site", rec->site);
	set_field(co, "bounce_classification", rec->bounce_classification);
	lua_pushinteger(co, rec->num_attempts);
	lua_setfield(co, -2, "num_attempts");
	lua_createtable(co, 0, 3);
	lua_pushinteger(co, rec->response_code);
	lua_setfield(co, -2, "code");
	set_field(co, "enhanced_code", rec->response_enhanced);
	set_field(co, "content", rec->response_content);
	lua_setfield(co, -2, "response");
}

static void
route_done(void *arg, lua_State *co, int status, int nres, const struct tern_err *err)
{
	struct route_call *call = arg;

	if (status != CORO_OK)
		log_warn("policy", BOUNCE_ROUTE_HOOK " failed for %s: %s", call->msg->recipient,
			 err ? err->msg : "?");
	message_free(call->msg);
	free(call);
}

void
bounce_route(struct message *msg, const struct logrec *rec, const char *tenant)
{
	struct shard *s = shard_self();
	struct route_call *call;
	lua_State *co = NULL;

	if (s == NULL || s->policy == NULL || !policy_has_hook(s->policy, BOUNCE_ROUTE_HOOK)) {
		suppress_by_default(msg, rec, tenant);
		message_free(msg);
		return;
	}
	/* A handler started now would be cancelled with the loop, and msg never freed. */
	call = s->exiting ? NULL : calloc(1, sizeof(*call));
	if (call != NULL)
		co = policy_hook_begin(s->policy, BOUNCE_ROUTE_HOOK, &call->ref);
	if (co == NULL) {
		log_warn("policy", BOUNCE_ROUTE_HOOK " not run for %s: %s", msg->recipient,
			 s->exiting ? "shutting down" : "out of memory");
		free(call);
		message_free(msg);
		return;
	}
	call->msg = msg;
	policy_hook_push_message(co, msg);
	push_record(co, msg, rec, tenant);
	policy_hook_start(s->policy, &call->ref, BOUNCE_ROUTE_HOOK, 2, route_done, call);
}
