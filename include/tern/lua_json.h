/* SPDX-License-Identifier: MIT */
/*
 * tern.json for policy: Lua values to JSON text and back. Encoding is
 * deterministic (object keys sorted) so that policy output can be compared
 * and cached; decoding is as strict as core/json.c.
 */
#ifndef TERN_LUA_JSON_H
#define TERN_LUA_JSON_H

#include <lua.h>

#include "tern/util.h"

/* Called while the global `tern` table is on top of the stack: sets tern.json = { encode, decode,
 * null }. */
void lua_json_open(lua_State *L);

/*
 * Encode the Lua value at idx as JSON into out (appended). Tables with keys 1..n (n>=1, no other
 * keys) are arrays; an empty table is {} ; string keys -> object; numbers: integers print without
 * exponent/decimal point when integral and |x| < 2^53, otherwise %.17g; NaN/inf, functions,
 * userdata, threads, cycles, mixed/non-string keys, depth > JSON_MAX_DEPTH -> -EINVAL with err
 * naming the problem ("cannot encode a function as JSON (at .foo[2])", array indices as in Lua,
 * from 1). Out of memory -> -ENOMEM. On error out is left as it was.
 *
 * Strings are escaped with buf_append_json_string: a byte of invalid UTF-8 in a Lua string
 * becomes U+FFFD, so the output is always valid JSON (metadata copied from 8-bit headers
 * must stay readable by the spool's recovery scan). Object keys are emitted in sorted (byte) order so output is
 * deterministic. Tables are read raw: metatables are ignored.
 */
int lua_json_encode(lua_State *L, int idx, struct buf *out, struct tern_err *err);

/*
 * Decode JSON text and push the Lua value (null -> tern.json.null, a unique light userdata
 * sentinel also exposed as tern.json.null). On error push nothing and return -EINVAL with err
 * (also for a number too large for a double, e.g. 1e400).
 */
int lua_json_decode(lua_State *L, const char *p, size_t len, struct tern_err *err);

#endif
