/* SPDX-License-Identifier: MIT */
/*
 * tern.warmup: the warm-up plans from policy (core/warmup.c does the work).
 * lua/tern/warmup.lua turns the operator's schedules ('200/day', dates,
 * growth rules) into the plain numbers read here.
 *
 *   tern.warmup.configure { plans = { { source = 'ip-4', start = EPOCH, period = SECS,
 *                                       caps = { 200, 500 } | first = N, growth = X, max = N,
 *                                       providers = { { name = 'google', suffix = '.google.com',
 *                                                       cap = N }, ... } }, ... },
 *                           max_bounce_rate = 0.015, max_complaint_rate = 0.0015,
 *                           window = SECS, min_messages = N }
 *   tern.warmup.resume(source)  -- true, or nil and an error when source is not warming
 *   tern.warmup.state(source)   -- { stage, cap, sent, next_refill, paused, reason,
 *                               --   bounce_rate, complaint_rate, window_messages } or nil
 */
#ifndef TERN_LUA_WARMUP_H
#define TERN_LUA_WARMUP_H

#include <lua.h>

/* With the `tern` table on top of the stack: set tern.warmup = {...}. */
void lua_warmup_open(lua_State *L);

#endif
