// SPDX-License-Identifier: MIT
/*
 * The config provider of a policy: answers the engine's config questions by
 * calling the config hooks (get_queue_config, get_egress_pool,
 * get_egress_source, get_egress_path_config) synchronously and reading what
 * they return with the bindings' readers. It sits above both, so neither the
 * engine nor the bindings need to know the other.
 */
#include "tern/policy.h"
#include "tern/config.h"
#include "tern/lua_bounce.h"
#include "tern/lua_egress.h"
#include "tern/lua_queue.h"
#include "tern/lua_shaping.h"
#include "tern/lua_trace.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int
read_queue(lua_State *L, int idx, void *out, struct tern_err *err)
{
	return lua_queue_read_config(L, idx, out, err);
}

static int
read_pool(lua_State *L, int idx, void *out, struct tern_err *err)
{
	return lua_egress_read_pool(L, idx, out, err);
}

static int
read_source(lua_State *L, int idx, void *out, struct tern_err *err)
{
	return lua_egress_read_source(L, idx, out, err);
}

static int
read_path(lua_State *L, int idx, void *out, struct tern_err *err)
{
	return lua_egress_read_path(L, idx, out, err);
}

/* get_queue_config(domain, tenant, campaign, routing_domain) */
static int
ask_queue(void *ctx, const char *domain, const char *tenant, const char *campaign,
	  struct queue_config *out, struct tern_err *err)
{
	const char *args[4] = {domain, tenant, campaign, domain};

	return policy_call_config(ctx, "get_queue_config", args, 4, read_queue, out, err);
}

static int
ask_pool(void *ctx, const char *name, struct egress_pool_cfg *out, struct tern_err *err)
{
	return policy_call_config(ctx, "get_egress_pool", &name, 1, read_pool, out, err);
}

static int
ask_source(void *ctx, const char *name, struct egress_source_cfg *out, struct tern_err *err)
{
	return policy_call_config(ctx, "get_egress_source", &name, 1, read_source, out, err);
}

/* get_egress_path_config(domain, source, site) */
static int
ask_path(void *ctx, const char *domain, const char *source, const char *site,
	 struct egress_path_cfg *out, struct tern_err *err)
{
	const char *args[3] = {domain, source, site};

	return policy_call_config(ctx, "get_egress_path_config", args, 3, read_path, out, err);
}

/* The replacement reply: code, enhanced code (or nil), text; nil keeps the reply (code 0). */
static int
read_rewrite(lua_State *L, int idx, void *arg, struct tern_err *err)
{
	struct config_reply *out = arg;
	const char *enh = lua_tostring(L, idx + 1), *text = lua_tostring(L, idx + 2);
	int code = (int)lua_tointeger(L, idx);
	unsigned a, b, c;
	char tail;

	memset(out, 0, sizeof(*out));
	if (lua_isnil(L, idx))
		return 0;
	if (lua_type(L, idx) != LUA_TNUMBER || code < 200 || code > 599 ||
	    (enh != NULL && (sscanf(enh, "%u.%u.%u%c", &a, &b, &c, &tail) != 3 ||
			     a != (unsigned)code / 100 || strlen(enh) >= sizeof(out->enhanced))) ||
	    text == NULL || text[0] == '\0' || strpbrk(text, "\r\n") != NULL) {
		tern_err_set(err, 451, "4.3.0",
			     "smtp_client_rewrite_delivery_status must return nil or code (200-599), "
			     "enhanced code of the same class (or nil), and one line of text");
		return -EINVAL;
	}
	out->code = code;
	snprintf(out->enhanced, sizeof(out->enhanced), "%s", enh ? enh : "");
	snprintf(out->text, sizeof(out->text), "%s", text);
	return 0;
}

/* smtp_client_rewrite_delivery_status(response, domain, tenant, campaign) */
static int
ask_rewrite(void *ctx, const char *response, const char *domain, const char *tenant,
	    const char *campaign, struct config_reply *out, struct tern_err *err)
{
	const char *args[4] = {response, domain, tenant, campaign};
	int rc = policy_call_config(ctx, "smtp_client_rewrite_delivery_status", args, 4,
				    read_rewrite, out, err);

	return rc == 1 && out->code == 0 ? 0 : rc;
}

static const char *
ask_classify(void *ctx, const char *reply, size_t len, const char *site)
{
	return lua_bounce_category(policy_lua(ctx), reply, len, site);
}

static const struct automation_rule *
ask_automation(void *ctx, const uint16_t *ids, size_t n, const char *reply, size_t len)
{
	return lua_shaping_match(policy_lua(ctx), ids, n, reply, len);
}

static void
ask_trace(void *ctx, struct trace_config *out)
{
	lua_trace_config(policy_lua(ctx), out);
}

const struct config_provider policy_config_provider = {
    .queue = ask_queue,
    .pool = ask_pool,
    .source = ask_source,
    .path = ask_path,
    .classify = ask_classify,
    .automation = ask_automation,
    .trace = ask_trace,
    .rewrite = ask_rewrite,
};
