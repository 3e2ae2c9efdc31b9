/* SPDX-License-Identifier: MIT */
/*
 * tern.suppress: the suppression list (core/suppress.c) from policy.
 *
 *   tern.suppress.add { address = 'a@b', tenant = 'acme', reason = '...',
 *                       category = 'bad-mailbox', source = id, expires_in = '30d' }
 *       -- true, or nil and an error (no spool); tenant defaults to '*' (every tenant)
 *   tern.suppress.remove(address [, tenant])  -- true, or nil and why (not listed)
 *   tern.suppress.check(address [, tenant])   -- the entry as a table, or nil; without a
 *       -- tenant, the scope of mail without one (and '*')
 *   tern.suppress.configure { action = 'reject' | 'drop', text = '...' }
 *       -- what a suppressed recipient gets: 550 5.7.1 text at RCPT (or in an
 *       -- injection's answer), or accepted and dropped with a Suppressed record
 */
#ifndef TERN_LUA_SUPPRESS_H
#define TERN_LUA_SUPPRESS_H

#include <lua.h>

struct suppress_entry;

/* With the `tern` table on top of the stack: set tern.suppress = {...}. */
void lua_suppress_open(lua_State *L);
/* Push e as a table { tenant, address, reason, category, source, time, expires }. */
void lua_suppress_push(lua_State *L, const struct suppress_entry *e);

#endif
