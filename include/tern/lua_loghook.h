/* SPDX-License-Identifier: MIT */
/*
 * tern.configure_log_hook: stream outcome records from the local log
 * segments to a deliver function (core/loghook.c).
 *
 *   tern.configure_log_hook {
 *     name = 'webhook',                  -- names its cursor file; [A-Za-z0-9_.-]
 *     types = { 'Delivery', 'Bounce' },  -- or filter = function(record) return bool end
 *     batch_size = 100,                  -- records per call at most (default 100)
 *     max_latency = '1s',                -- a partial batch waits at most this long
 *     deliver = function(records, lines) ... return true end,
 *   }
 *
 * deliver gets the records as tables and the same records as their JSON
 * lines (to forward without encoding again); it returns true once they are
 * safely delivered, or false/nil (and an error) to have them offered again
 * after a delay. Call it at the policy's top level, so that every reloaded
 * policy brings its deliver function.
 */
#ifndef TERN_LUA_LOGHOOK_H
#define TERN_LUA_LOGHOOK_H

#include <lua.h>

/* With the `tern` table on top of the stack: set tern.configure_log_hook. */
void lua_loghook_open(lua_State *L);

#endif
