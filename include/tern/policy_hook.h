/* SPDX-License-Identifier: MIT */
/*
 * Hook calls: how the engine (the SMTP server, the daemon's init) runs a
 * policy event without knowing the bindings. The caller begins a call, pushes
 * its arguments (strings, or engine objects through the push functions here,
 * which pick the binding), and starts it; the continuation gets the results.
 * Declared at the engine's level, implemented by policy (core/policy.c).
 */
#ifndef TERN_POLICY_HOOK_H
#define TERN_POLICY_HOOK_H

#include <stdbool.h>

#include <lua.h>

#include "tern/coro.h"

struct conn_info;
struct logrec;
struct message;
struct policy;

bool policy_has_hook(struct policy *p, const char *event);
/*
 * Begin a hook call: returns the coroutine state with the handler pushed,
 * for the caller to push arguments on, or NULL when no handler is registered.
 */
lua_State *policy_hook_begin(struct policy *p, const char *event, struct coro_ref *ref);
/* Start it with nargs arguments and the policy's hook deadline. */
int policy_hook_start(struct policy *p, struct coro_ref *ref, const char *event, int nargs,
		      coro_done_fn done, void *arg);
/* Push an engine object as the binding shows it to Lua (conn, msg). */
void policy_hook_push_conn(lua_State *co, struct conn_info *ci);
void policy_hook_push_message(lua_State *co, struct message *m);
/* Push an outcome record as the table its JSON line decodes to (nil when it cannot be built). */
void policy_hook_push_record(lua_State *co, const struct logrec *rec);

#endif
