/* SPDX-License-Identifier: MIT */
/*
 * Policy: a shard's Lua state with the operator's policy loaded, the `tern`
 * module, the registered event handlers, and the calling of hooks in pooled
 * coroutines. Errors name the policy file and line.
 *
 * Layers: an include only points down (tests/check-layers.py lists each
 * module's layer; `make check-layers` enforces it).
 *   mains        ternd, tern: what init asked to open, signals, the CLI
 *   policy       policy, policy_config (the config provider), lua_tern,
 *                policy_reload (epochs: hot reload), policy_watch (--watch)
 *   bindings     lua_NAME: Lua tables <-> engine structs, nothing more
 *   engine       smtp_server, reception, spool, queue (when), egress (where),
 *                smtp_client, dkim, dns, throttle; it asks policy through
 *                config.h and calls hooks through policy_hook.h, which policy
 *                implements, and never includes a lua_*.h
 *   foundation   shard, mailbox, coro, io, tls, log, json, util_*
 */
#ifndef TERN_POLICY_H
#define TERN_POLICY_H

#include <stdbool.h>

#include <lua.h>

#include "tern/coro.h"
#include "tern/policy_hook.h"
#include "tern/util.h"

struct config_provider;
struct shard;
struct policy;

struct policy_options {
	const char *policy_path; /* may be NULL in script mode */
	const char *script_path; /* --script FILE, loaded after the policy */
	bool validating;         /* --check: nothing is bound or opened */
};

struct policy *policy_new(struct shard *shard, const struct policy_options *opts,
			  struct tern_err *err);
void policy_free(struct policy *p);
/*
 * Where the Lua half of the library (lua/tern/) lives: $TERN_LUA_DIR, the
 * source tree beside a build, or the installed copy. The CLI runs its Lua
 * tools from the same place as ternd.
 */
void policy_lua_dir(char *out, size_t n);
/* Load a policy into every shard (shards_init first); shards_free() frees them. */
int policy_attach_shards(const struct policy_options *opts, struct tern_err *err);

lua_State *policy_lua(struct policy *p);
struct coro_pool *policy_coros(struct policy *p);
struct shard *policy_shard(struct policy *p);
bool policy_validating(const struct policy *p);
/* The policy of the state L belongs to (set at creation). */
struct policy *policy_from_lua(lua_State *L);

/* Is ev one of the events tern knows? */
bool policy_event_known(const char *ev);
/*
 * Config hooks (get_queue_config, get_egress_*): call event(args...)
 * synchronously, where yielding raises, and read its first result with read.
 * 1 when it ran and filled out, 0 when there is no handler, negative with err
 * when it failed or returned something read refused.
 */
typedef int (*policy_read_fn)(lua_State *L, int idx, void *out, struct tern_err *err);
int policy_call_config(struct policy *p, const char *event, const char *const *args, int nargs,
		       policy_read_fn read, void *out, struct tern_err *err);
/* tern.on(event, fn) */
int policy_register_handler(lua_State *L);

/* The config provider a policy attaches to its shard (core/policy_config.c): the config hooks. */
extern const struct config_provider policy_config_provider;

void policy_set_hook_timeout(struct policy *p, double seconds);

#endif
