// SPDX-License-Identifier: MIT
/*
 * Unit tests for core/lua_json.c: tern.json.encode/decode run from Lua
 * snippets in a plain LuaJIT state (round trips, key order, numbers, the null
 * sentinel, errors and where they point), then the C API directly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "tern/json.h"
#include "tern/lua_json.h"

static int
setup(void **state)
{
	lua_State *L = luaL_newstate();

	luaL_openlibs(L);
	lua_newtable(L);
	lua_json_open(L);
	lua_setglobal(L, "tern");
	*state = L;
	return 0;
}

static int
teardown(void **state)
{
	lua_close(*state);
	return 0;
}

static void
run(lua_State *L, const char *code)
{
	if (luaL_dostring(L, code) != 0)
		fail_msg("%s", lua_tostring(L, -1));
	lua_settop(L, 0);
}

/* Lua helpers shared by the snippets: eq compares encodings, raises(f, v, want) checks a message.
 */
static const char prelude[] =
    "J = tern.json\n"
    "function eq(v, want)\n"
    "  local got = J.encode(v)\n"
    "  if got ~= want then error('encode: got ' .. got .. ' want ' .. want, 2) end\n"
    "end\n"
    "function rt(text, want)\n"
    "  local v, err = J.decode(text)\n"
    "  if err then error(err, 2) end\n"
    "  eq(v, want or text)\n"
    "end\n"
    "function raises(v, want)\n"
    "  local ok, err = pcall(J.encode, v)\n"
    "  if ok then error('no error for ' .. want, 2) end\n"
    "  if not string.find(err, want, 1, true) then error('got: ' .. err, 2) end\n"
    "end\n";

static void
test_encode_values(void **state)
{
	lua_State *L = *state;

	run(L, prelude);
	run(L,
	    "eq(nil, 'null'); eq(J.null, 'null'); eq(true, 'true'); eq(false, 'false')\n"
	    "eq('hi', '\"hi\"'); eq('', '\"\"')\n"
	    "eq('q\"b\\\\n\\n\\t\\0\\127', '\"q\\\\\"b\\\\\\\\n\\\\n\\\\t\\\\u0000\\\\u007f\"')\n"
	    "eq({}, '{}'); eq({{}}, '[{}]'); eq({1, 2, 3}, '[1,2,3]')\n"
	    "eq({b = 1, a = {d = false, c = true}}, '{\"a\":{\"c\":true,\"d\":false},\"b\":1}')\n"
	    "eq({J.null, J.null}, '[null,null]')\n"
	    "eq({a = {1, {x = 'y'}}}, '{\"a\":[1,{\"x\":\"y\"}]}')\n");
}

static void
test_encode_numbers(void **state)
{
	lua_State *L = *state;

	run(L, prelude);
	run(L, "eq(0, '0'); eq(42, '42'); eq(-3, '-3'); eq(1e15, '1000000000000000')\n"
	       "eq(2^53 - 1, '9007199254740991'); eq(-(2^53 - 1), '-9007199254740991')\n"
	       "eq(2^53, '9007199254740992'); eq(2^60, '1.152921504606847e+18')\n"
	       "eq(0.5, '0.5'); eq(-0.25, '-0.25'); eq(0.1, '0.10000000000000001')\n"
	       "eq(1e300, '1.0000000000000001e+300'); eq(1.5e-300, '1.5000000000000001e-300')\n"
	       "assert(J.decode(J.encode(0.1)) == 0.1)\n"
	       "assert(J.decode(J.encode(math.pi)) == math.pi)\n");
}

static void
test_encode_sorted_keys(void **state)
{
	lua_State *L = *state;

	run(L, prelude);
	run(L, "eq({b = 1, a = 2, ['a b'] = 3, A = 4, ['a\\0'] = 5},"
	       "   '{\"A\":4,\"a\":2,\"a\\\\u0000\":5,\"a b\":3,\"b\":1}')\n"
	       /* More keys than fit the C stack array: the userdata path. */
	       "local t, want = {}, {}\n"
	       "for i = 100, 1, -1 do t['k' .. string.format('%03d', i)] = i end\n"
	       "for i = 1, 100 do want[#want + 1] = string.format('\"k%03d\":%d', i, i) end\n"
	       "eq(t, '{' .. table.concat(want, ',') .. '}')\n");
}

static void
test_round_trips(void **state)
{
	lua_State *L = *state;

	run(L, prelude);
	run(L, "rt('[1,2,{\"a\":null,\"b\":[true,false,\"x\"]}]')\n"
	       "rt('{\"\":{\"\":[]}}', '{\"\":{\"\":{}}}')\n"
	       "rt(' [ 1 , -0.5 , 1e3 , 1E-2 ] ', '[1,-0.5,1000,0.01]')\n"
	       "rt('\"\\\\ud83d\\\\ude00 caf\\\\u00e9 \\\\u20ac\"', '\"\\240\\159\\152\\128 "
	       "caf\\195\\169 "
	       "\\226\\130\\172\"')\n"
	       "rt('\"\\\\/\\\\b\\\\f\"', '\"/\\\\u0008\\\\u000c\"')\n"
	       "local v = J.decode('[1,null,3]')\n"
	       "assert(#v == 3 and v[2] == J.null and type(J.null) == 'userdata')\n"
	       "assert(J.decode('null') == J.null)\n"
	       "v = J.decode('{\"a\":1,\"a\":2}'); assert(v.a == 2)\n"
	       "local s = string.rep('\\\\u00e9', 200)\n"
	       "assert(J.decode('\"' .. s .. '\"') == string.rep('\\195\\169', 200))\n"
	       "assert(J.decode(J.encode(string.rep('x', 1000))) == string.rep('x', 1000))\n");
}

static void
test_depth(void **state)
{
	lua_State *L = *state;

	run(L, prelude);
	run(L, "local deep = string.rep('[', 64) .. string.rep(']', 64)\n"
	       "local v = assert(J.decode(deep))\n"
	       "eq(J.decode(string.rep('[', 63) .. '1' .. string.rep(']', 63)),"
	       "   string.rep('[', 63) .. '1' .. string.rep(']', 63))\n"
	       "local t = {}\n"
	       "local inner = t\n"
	       "for i = 1, 64 do inner[1] = {}; inner = inner[1] end\n"
	       "raises(t, 'cannot encode tables nested deeper than 64 as JSON (at [1][1]')\n"
	       "local v2, err = J.decode('[' .. deep .. ']')\n"
	       "assert(v2 == nil and err:find('nesting deeper than 64', 1, true))\n");
}

static void
test_encode_errors(void **state)
{
	lua_State *L = *state;

	run(L, prelude);
	run(L, "raises(print, 'cannot encode a function as JSON')\n"
	       "raises({foo = {1, print}}, 'cannot encode a function as JSON (at .foo[2])')\n"
	       "raises({['odd key'] = {x = coroutine.create(print)}},"
	       "       'cannot encode a thread as JSON (at [\"odd key\"].x)')\n"
	       "raises({io.stdout}, 'cannot encode a userdata as JSON (at [1])')\n"
	       "raises({n = 0/0}, 'cannot encode NaN as JSON (at .n)')\n"
	       "raises({1/0}, 'cannot encode inf as JSON (at [1])')\n"
	       "raises(-1/0, 'cannot encode -inf as JSON')\n"
	       "local t = {a = {}}; t.a.b = t\n"
	       "raises(t, 'cannot encode a table that contains itself as JSON (at .a.b)')\n"
	       "raises({1, 2, nil, 4}, 'cannot encode a sparse array as JSON')\n"
	       "raises({x = {[3] = 1}}, 'cannot encode a sparse array as JSON (at .x)')\n"
	       "raises({[0] = 1}, 'with mixed or non-string keys')\n"
	       "raises({1, a = 2}, 'cannot encode a table with mixed or non-string keys as JSON')\n"
	       "raises({[true] = 1}, 'with mixed or non-string keys')\n"
	       "raises({[1.5] = 1}, 'with mixed or non-string keys')\n"
	       /* The message carries the policy line that called encode. */
	       "local ok, err = pcall(function() local s = J.encode(print); return s end)\n"
	       "assert(err:match('^%[string .*%]:%d+: cannot encode a function as JSON$'), err)\n"
	       "ok, err = pcall(J.encode)\n"
	       "assert(not ok and err:find('bad argument #1', 1, true))\n"
	       /* The same table twice is not a cycle. */
	       "local shared = {1}\n"
	       "eq({shared, shared}, '[[1],[1]]')\n");
}

static void
test_decode_errors(void **state)
{
	lua_State *L = *state;

	run(L, prelude);
	run(L,
	    "local v, err = J.decode('[1,')\n"
	    "assert(v == nil and err == 'invalid JSON at byte 3: unexpected end of input', err)\n"
	    "v, err = J.decode('{\"a\" 1}')\n"
	    "assert(v == nil and err == 'invalid JSON at byte 5: expected \\':\\'', err)\n"
	    "v, err = J.decode('[1, 1e400]')\n"
	    "assert(v == nil and err == 'JSON number at byte 4 does not fit a double', err)\n"
	    "v, err = J.decode('\"\\255\"')\n"
	    "assert(v == nil and err:find('invalid UTF-8', 1, true))\n"
	    "v, err = J.decode('')\n"
	    "assert(v == nil and err:find('unexpected end of input', 1, true))\n"
	    "assert(J.decode(12) == 12)\n"
	    "local ok = pcall(J.decode, {})\n"
	    "assert(not ok)\n");
}

/*
 * Regression: invalid UTF-8 in a Lua string passed through the encoder byte
 * for byte, so metadata copied from an 8-bit header made spool metadata the
 * recovery scan refused. Each invalid byte becomes U+FFFD; valid UTF-8 stays.
 */
static void
test_encode_invalid_utf8(void **state)
{
	static const char want[] = "\"\\ufffd\xc3\xa9\\ufffd\\ufffd\\ufffd\\ufffd\"";
	lua_State *L = *state;
	struct tern_err err = {0};
	struct buf out;

	buf_init(&out);
	lua_pushlstring(L, "\xff\xc3\xa9\xed\xa0\x80\xc3", 7);
	assert_int_equal(lua_json_encode(L, -1, &out, &err), 0);
	assert_int_equal(out.len, sizeof(want) - 1);
	assert_memory_equal(out.data, want, sizeof(want) - 1);
	assert_int_equal(json_validate(out.data, out.len, &err), 0);
	buf_deinit(&out);
	lua_settop(L, 0);
}

static void
test_c_api(void **state)
{
	lua_State *L = *state;
	struct tern_err err = {0};
	struct buf out;

	buf_init(&out);
	buf_append_str(&out, "prefix:");
	assert_int_equal(lua_json_decode(L, "{\"k\":[1,\"v\"]}", 13, &err), 0);
	assert_int_equal(lua_gettop(L), 1);
	assert_int_equal(lua_json_encode(L, -1, &out, &err), 0);
	assert_string_equal(out.data, "prefix:{\"k\":[1,\"v\"]}");
	assert_int_equal(lua_gettop(L), 1);

	/* Errors: nothing pushed by decode, out unchanged by encode. */
	assert_int_equal(lua_json_decode(L, "{\"k\":", 5, &err), -EINVAL);
	assert_int_equal(lua_gettop(L), 1);
	assert_int_equal(lua_json_decode(L, "[[1e999]]", 9, &err), -EINVAL);
	assert_int_equal(lua_gettop(L), 1);
	lua_getfield(L, 1, "k");
	lua_getglobal(L, "print");
	lua_rawseti(L, -2, 3);
	lua_pop(L, 1);
	assert_int_equal(lua_json_encode(L, 1, &out, &err), -EINVAL);
	assert_string_equal(err.msg, "cannot encode a function as JSON (at .k[3])");
	assert_string_equal(out.data, "prefix:{\"k\":[1,\"v\"]}");
	assert_int_equal(lua_gettop(L), 1);
	buf_deinit(&out);
	lua_settop(L, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_encode_values, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_encode_numbers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_encode_sorted_keys, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_round_trips, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_depth, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_encode_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_decode_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_encode_invalid_utf8, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_c_api, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
