// SPDX-License-Identifier: MIT
/*
 * Loading policy into a shard's Lua state and calling its hooks. Handlers
 * live in a registry table keyed by event name; tern.on() validates the name
 * so that a typo fails at load time with file and line, not silently at run
 * time.
 */
#include "tern/policy.h"
#include "tern/config.h"
#include "tern/log.h"
#include "tern/loghook.h"
#include "tern/lua_conn.h"
#include "tern/logrec.h"
#include "tern/lua_ctx.h"
#include "tern/lua_json.h"
#include "tern/lua_message.h"
#include "tern/lua_tern.h"
#include "tern/policy_files.h"
#include "tern/policy_reload.h"
#include "tern/shard.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#define POLICY_DEFAULT_HOOK_TIMEOUT 30.0
#define POLICY_REGISTRY_KEY "tern.policy"

struct policy {
	lua_State *L;
	struct coro_pool *coros;
	struct shard *shard;
	bool validating;
	double hook_timeout;
	int handlers_ref;
};

static const char *const known_events[] = {
	"init",
	"main",
	"smtp_server_connection_accepted",
	"smtp_server_ehlo",
	"smtp_server_auth_plain",
	"smtp_server_mail_from",
	"smtp_server_rcpt_to",
	"smtp_server_data",
	"smtp_server_message_received",
	"get_listener_domain",
	"get_queue_config",
	"get_egress_source",
	"get_egress_pool",
	"get_egress_path_config",
	"http_server_validate_auth_basic",
	"http_server_validate_auth_bearer",
	"http_message_generated",
	"message_complained",
	"message_bounced",
	"smtp_client_rewrite_delivery_status",
};

bool
policy_event_known(const char *ev)
{
	size_t i;

	/* A log hook's deliver function (tern.configure_log_hook) is the handler of its own event. */
	if (strncmp(ev, LOGHOOK_EVENT_PREFIX, strlen(LOGHOOK_EVENT_PREFIX)) == 0)
		return loghook_name_valid(ev + strlen(LOGHOOK_EVENT_PREFIX));
	for (i = 0; i < TERN_ARRAY_LEN(known_events); i++)
		if (strcmp(ev, known_events[i]) == 0)
			return true;
	return false;
}

static bool
is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

void
policy_lua_dir(char *out, size_t n)
{
	const char *env = getenv("TERN_LUA_DIR");
	char exe[PATH_MAX], probe[PATH_MAX + 32];

	if (env && *env) {
		snprintf(out, n, "%s", env);
		return;
	}
	if (util_exe_dir(exe, sizeof(exe)) == 0) {
		snprintf(probe, sizeof(probe), "%s/../../lua/tern", exe);
		if (is_dir(probe)) {
			snprintf(out, n, "%s/../../lua", exe);
			return;
		}
	}
	snprintf(out, n, "%s", TERN_LUA_DIR);
}

static void
dir_of(const char *path, char *out, size_t n)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		snprintf(out, n, ".");
	else
		snprintf(out, n, "%.*s", (int)(slash - path), path);
}

/* package.path = <policy dir>/?.lua;<lua dir>/?.lua;...;<default> */
static void
set_package_path(lua_State *L, const struct policy_options *o)
{
	char luadir[PATH_MAX], pdir[PATH_MAX];
	const char *main_file = o->policy_path ? o->policy_path : o->script_path;

	policy_lua_dir(luadir, sizeof(luadir));
	dir_of(main_file ? main_file : ".", pdir, sizeof(pdir));
	lua_getglobal(L, "package");
	lua_getfield(L, -1, "path");
	lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s/?.lua;%s", pdir, pdir, luadir,
			lua_tostring(L, -1));
	lua_setfield(L, -3, "path");
	lua_pop(L, 2);
	policy_files_track(L, luadir);
}

static int
load_file(lua_State *L, const char *path, struct tern_err *err)
{
	if (luaL_loadfile(L, path) != 0 || lua_pcall(L, 0, 0, 0) != 0) {
		tern_err_set(err, 0, "", "%s", lua_tostring(L, -1));
		lua_pop(L, 1);
		return -EINVAL;
	}
	return 0;
}

struct policy *
policy_new(struct shard *shard, const struct policy_options *o, struct tern_err *err)
{
	struct policy *p = xcalloc(1, sizeof(*p));

	p->L = luaL_newstate();
	p->shard = shard;
	p->validating = o->validating;
	p->hook_timeout = POLICY_DEFAULT_HOOK_TIMEOUT;
	p->coros = coro_pool_new(p->L, shard ? shard->loop : NULL);
	if (p->L == NULL || p->coros == NULL) {
		tern_err_set(err, 0, "", "cannot create a Lua state");
		goto fail;
	}
	luaL_openlibs(p->L);
	lua_pushlightuserdata(p->L, p);
	lua_setfield(p->L, LUA_REGISTRYINDEX, POLICY_REGISTRY_KEY);
	lua_ctx_set(p->L, shard);
	lua_newtable(p->L);
	p->handlers_ref = luaL_ref(p->L, LUA_REGISTRYINDEX);
	lua_tern_open(p->L);
	set_package_path(p->L, o);
	if (o->policy_path)
		policy_files_add(p->L, o->policy_path);
	if (o->policy_path && load_file(p->L, o->policy_path, err) < 0)
		goto fail;
	if (o->script_path && load_file(p->L, o->script_path, err) < 0)
		goto fail;
	return p;
fail:
	policy_free(p);
	return NULL;
}

void
policy_free(struct policy *p)
{
	if (p == NULL)
		return;
	coro_pool_free(p->coros); /* before lua_close: it unanchors its threads */
	if (p->L)
		lua_close(p->L);
	free(p); p = NULL;
}

lua_State *
policy_lua(struct policy *p)
{
	return p->L;
}

struct coro_pool *
policy_coros(struct policy *p)
{
	return p->coros;
}

struct shard *
policy_shard(struct policy *p)
{
	return p->shard;
}

bool
policy_validating(const struct policy *p)
{
	return p->validating;
}

struct policy *
policy_from_lua(lua_State *L)
{
	struct policy *p;

	lua_getfield(L, LUA_REGISTRYINDEX, POLICY_REGISTRY_KEY);
	p = lua_touserdata(L, -1);
	lua_pop(L, 1);
	return p;
}

void
policy_set_hook_timeout(struct policy *p, double seconds)
{
	p->hook_timeout = seconds;
}

/* Push handlers[event] onto L (nil when none). */
static void
push_handler(struct policy *p, lua_State *L, const char *event)
{
	lua_rawgeti(L, LUA_REGISTRYINDEX, p->handlers_ref);
	lua_getfield(L, -1, event);
	lua_remove(L, -2);
}

bool
policy_has_hook(struct policy *p, const char *event)
{
	bool has;

	push_handler(p, p->L, event);
	has = lua_isfunction(p->L, -1);
	lua_pop(p->L, 1);
	return has;
}

lua_State *
policy_hook_begin(struct policy *p, const char *event, struct coro_ref *ref)
{
	lua_State *co;

	if (!policy_has_hook(p, event))
		return NULL;
	co = coro_acquire(p->coros, ref);
	if (co != NULL)
		push_handler(p, co, event);
	return co;
}

int
policy_hook_start(struct policy *p, struct coro_ref *ref, const char *event, int nargs,
		  coro_done_fn done, void *arg)
{
	struct coro_options opts = {.what = event, .timeout = p->hook_timeout};

	return coro_start(ref, nargs, &opts, done, arg);
}

struct config_call {
	policy_read_fn read;
	void *out;
	int status;
	struct tern_err err;
};

static void
config_done(void *arg, lua_State *co, int status, int nres, const struct tern_err *err)
{
	struct config_call *c = arg;

	c->status = status;
	if (status != CORO_OK) {
		c->err = *err;
		return;
	}
	/* A handler that returns nothing answered nil: the reader says what it wanted. */
	if (nres < 1) {
		lua_pushnil(co);
		nres = 1;
	}
	if (c->read(co, lua_gettop(co) - nres + 1, c->out, &c->err) < 0)
		c->status = CORO_ERROR;
}

int
policy_call_config(struct policy *p, const char *event, const char *const *args, int nargs,
		   policy_read_fn read, void *out, struct tern_err *err)
{
	struct coro_options opts = {.what = event, .timeout = p->hook_timeout, .no_yield = true};
	struct config_call call = {read, out, CORO_OK, {0}};
	struct coro_ref ref;
	lua_State *co = policy_hook_begin(p, event, &ref);
	int i;

	if (co == NULL)
		return 0;
	for (i = 0; i < nargs; i++)
		lua_pushstring(co, args[i]);
	/* no_yield: the call always completes inside coro_start. */
	coro_start(&ref, nargs, &opts, config_done, &call);
	if (call.status != CORO_OK) {
		*err = call.err;
		return -EINVAL;
	}
	return 1;
}

/* tern.on(event, fn): the registration check lives here, next to the event list. */
int
policy_register_handler(lua_State *L)
{
	struct policy *p = policy_from_lua(L);
	const char *ev = luaL_checkstring(L, 1);

	luaL_checktype(L, 2, LUA_TFUNCTION);
	if (!policy_event_known(ev))
		return luaL_error(L, "unknown event '%s'", ev);
	lua_rawgeti(L, LUA_REGISTRYINDEX, p->handlers_ref);
	lua_getfield(L, -1, ev);
	if (!lua_isnil(L, -1))
		return luaL_error(L, "a handler for '%s' is already registered", ev);
	lua_pop(L, 1);
	lua_pushvalue(L, 2);
	lua_setfield(L, -2, ev);
	return 0;
}

void
policy_hook_push_conn(lua_State *co, struct conn_info *ci)
{
	lua_conn_push(co, ci);
}

void
policy_hook_push_message(lua_State *co, struct message *m)
{
	lua_message_push(co, m);
}

void
policy_hook_push_record(lua_State *co, const struct logrec *rec)
{
	struct tern_err err;
	struct buf json;

	buf_init(&json);
	if (logrec_format(rec, &json) < 0 || lua_json_decode(co, json.data, json.len, &err) < 0)
		lua_pushnil(co);
	buf_deinit(&json);
}

/* The shard's current policy and those earlier epochs left behind, once its loop has ended. */
static void
policy_free_with_shard(struct shard *s, void *arg)
{
	(void)arg;
	config_attach(s, NULL, NULL);
	policy_free(s->policy);
	s->policy = NULL;
	policy_epoch_free_retired(s);
}

int
policy_attach_shards(const struct policy_options *opts, struct tern_err *err)
{
	int i, rc = 0;

	for (i = 0; i < shard_count() && rc == 0; i++) {
		struct shard *s = shard_get(i);

		shard_enter(s);
		s->policy = policy_new(s, opts, err);
		if (s->policy == NULL) {
			rc = -EINVAL;
		} else {
			config_attach(s, &policy_config_provider, s->policy);
			shard_on_free(s, policy_free_with_shard, NULL);
		}
	}
	shard_enter(NULL);
	return rc;
}
