// SPDX-License-Identifier: MIT
/*
 * Unit tests for core/json.c: a corpus of valid and invalid texts (RFC 8259
 * examples, escapes, surrogates, UTF-8, nesting limits, numbers), then the
 * span functions (object_get, foreach, string and number decoding).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tern/json.h"

/* RFC 8259 section 13, with the scalar texts of the same section. */
static const char rfc_image[] = "{\n"
				"  \"Image\": {\n"
				"    \"Width\":  800,\n"
				"    \"Height\": 600,\n"
				"    \"Title\":  \"View from 15th Floor\",\n"
				"    \"Thumbnail\": {\n"
				"      \"Url\":    \"http://www.example.com/image/481989943\",\n"
				"      \"Height\": 125,\n"
				"      \"Width\":  100\n"
				"    },\n"
				"    \"Animated\" : false,\n"
				"    \"IDs\": [116, 943, 234, 38793]\n"
				"  }\n"
				"}\n";

static const char rfc_places[] = "[\n"
				 "  {\n"
				 "     \"precision\": \"zip\",\n"
				 "     \"Latitude\":  37.7668,\n"
				 "     \"Longitude\": -122.3959,\n"
				 "     \"Address\":   \"\",\n"
				 "     \"City\":      \"SAN FRANCISCO\",\n"
				 "     \"State\":     \"CA\",\n"
				 "     \"Zip\":       \"94107\",\n"
				 "     \"Country\":   \"US\"\n"
				 "  },\n"
				 "  {\n"
				 "     \"precision\": \"zip\",\n"
				 "     \"Latitude\":  37.371991,\n"
				 "     \"Longitude\": -122.026020,\n"
				 "     \"Address\":   \"\",\n"
				 "     \"City\":      \"SUNNYVALE\",\n"
				 "     \"State\":     \"CA\",\n"
				 "     \"Zip\":       \"94085\",\n"
				 "     \"Country\":   \"US\"\n"
				 "  }\n"
				 "]";

static void
expect_valid(const char *text, size_t len)
{
	struct tern_err err = {0};
	int rc = json_validate(text, len, &err);

	if (rc != 0)
		fail_msg("expected valid: %.*s (%s)", (int)len, text, err.msg);
}

static void
expect_invalid(const char *text, size_t len, const char *msg)
{
	struct tern_err err = {0};

	if (json_validate(text, len, &err) != -EINVAL)
		fail_msg("expected invalid: %.*s", (int)len, text);
	if (msg != NULL && strcmp(err.msg, msg) != 0)
		fail_msg("for %.*s: got \"%s\", want \"%s\"", (int)len, text, err.msg, msg);
}

#define VALID(s) expect_valid(s, sizeof(s) - 1)
#define INVALID(s, msg) expect_invalid(s, sizeof(s) - 1, msg)

static void
test_valid_corpus(void **state)
{
	VALID("\"Hello world!\"");
	VALID("42");
	VALID("true");
	VALID("false");
	VALID("null");
	VALID("[]");
	VALID("{}");
	VALID(" \t\r\n{ \"a\" : [ 1 , 2 , { } , [ ] ] } \n\t");
	VALID("[null,true,false,\"\",0,-0,0.5,-1.25e-3,1E+2,1e5,123456789012345678901234567890]");
	VALID("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\u20AC\\ud83d\\ude00\"");
	VALID("\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbf \xf4\x8f\xbf\xbf\"");
	VALID("{\"a\":1,\"a\":2}");
	expect_valid(rfc_image, strlen(rfc_image));
	expect_valid(rfc_places, strlen(rfc_places));
}

static void
test_invalid_corpus(void **state)
{
	INVALID("", "invalid JSON at byte 0: unexpected end of input");
	INVALID("   ", "invalid JSON at byte 3: unexpected end of input");
	INVALID("{\"a\" 1}", "invalid JSON at byte 5: expected ':'");
	INVALID("[1,]", "invalid JSON at byte 3: expected a value");
	INVALID("{\"a\":1,}", "invalid JSON at byte 7: expected a string key");
	INVALID("[1 2]", "invalid JSON at byte 3: expected ',' or ']'");
	INVALID("{\"a\":1 \"b\":2}", "invalid JSON at byte 7: expected ',' or '}'");
	INVALID("{a:1}", "invalid JSON at byte 1: expected a string key");
	INVALID("{1:1}", "invalid JSON at byte 1: expected a string key");
	INVALID("1 2", "invalid JSON at byte 2: unexpected text after the value");
	INVALID("[1]]", "invalid JSON at byte 3: unexpected text after the value");
	INVALID("01", "invalid JSON at byte 1: leading zero in number");
	INVALID("-01", "invalid JSON at byte 2: leading zero in number");
	INVALID("1.", "invalid JSON at byte 2: unexpected end of input");
	INVALID("1.e3", "invalid JSON at byte 2: expected a digit after '.'");
	INVALID("1e", NULL);
	INVALID("1e+", NULL);
	INVALID("[1e]", "invalid JSON at byte 3: expected a digit in exponent");
	INVALID("-", NULL);
	INVALID("-a", "invalid JSON at byte 1: expected a digit");
	INVALID(".5", "invalid JSON at byte 0: expected a value");
	INVALID("+1", NULL);
	INVALID("0x10", NULL);
	INVALID("NaN", NULL);
	INVALID("Infinity", NULL);
	INVALID("-Infinity", NULL);
	INVALID("tru", "invalid JSON at byte 0: expected a value");
	INVALID("nulll", "invalid JSON at byte 4: unexpected text after the value");
	INVALID("True", NULL);
	INVALID("'single'", NULL);
	INVALID("/* c */ 1", NULL);
	INVALID("\xef\xbb\xbf{}", NULL); /* a BOM is not whitespace */
	INVALID("\f1", NULL);
	INVALID("\v1", NULL);
	INVALID("[1]\0", NULL);
	INVALID("\"abc", "invalid JSON at byte 4: unexpected end of input");
	INVALID("\"a\tb\"", "invalid JSON at byte 2: control character in string");
	INVALID("\"a\nb\"", NULL);
	INVALID("\"\0\"", NULL);
	INVALID("\"\\x\"", "invalid JSON at byte 2: invalid escape");
	INVALID("\"\\U0041\"", NULL);
	INVALID("\"\\u12G4\"", "invalid JSON at byte 3: expected 4 hex digits after \\u");
	INVALID("\"\\u12\"", NULL);
	INVALID("\"\\", NULL);
	INVALID("[\"\\ud83d\"]", "invalid JSON at byte 2: lone high surrogate in \\u escape");
	INVALID("\"\\ud83dx\"", "invalid JSON at byte 1: lone high surrogate in \\u escape");
	INVALID("\"\\ud83d\\u0041\"", "invalid JSON at byte 1: lone high surrogate in \\u escape");
	INVALID("\"\\ud83d\\ud83d\"", NULL);
	INVALID("\"\\ude00\"", "invalid JSON at byte 1: lone low surrogate in \\u escape");
	INVALID("\"\\ude00\\ud83d\"", NULL);
	INVALID("\"\xff\"", "invalid JSON at byte 1: invalid UTF-8 in string");
	INVALID("\"\xc0\x80\"", NULL);	       /* overlong NUL */
	INVALID("\"\xc1\xbf\"", NULL);	       /* overlong */
	INVALID("\"\xe0\x80\xaf\"", NULL);     /* overlong '/' */
	INVALID("\"\xed\xa0\x80\"", NULL);     /* UTF-8 encoded surrogate */
	INVALID("\"\xf0\x80\x80\xaf\"", NULL); /* overlong */
	INVALID("\"\xf4\x90\x80\x80\"", NULL); /* above U+10FFFF */
	INVALID("\"\xf5\x80\x80\x80\"", NULL);
	INVALID("\"\xc3\"", NULL);     /* truncated */
	INVALID("\"\xe2\x82\"", NULL); /* truncated */
	INVALID("\"\x80\"", NULL);     /* lone continuation byte */
	INVALID("\xc3\xa9", NULL);     /* UTF-8 outside a string */
}

static void
nested(char *out, int depth, char open, char close)
{
	memset(out, open, (size_t)depth);
	memset(out + depth, close, (size_t)depth);
	out[2 * depth] = '\0';
}

static void
test_depth_limit(void **state)
{
	char text[8 * JSON_MAX_DEPTH + 16];
	struct tern_err err = {0};
	char want[64];

	nested(text, JSON_MAX_DEPTH, '[', ']');
	expect_valid(text, strlen(text));
	nested(text, JSON_MAX_DEPTH + 1, '[', ']');
	assert_int_equal(json_validate(text, strlen(text), &err), -EINVAL);
	snprintf(want, sizeof(want), "invalid JSON at byte %d: nesting deeper than %d",
		 JSON_MAX_DEPTH, JSON_MAX_DEPTH);
	assert_string_equal(err.msg, want);

	/* Objects count the same as arrays: 32 of each, then one more. */
	text[0] = '\0';
	for (int i = 0; i < JSON_MAX_DEPTH / 2; i++)
		strcat(text, "{\"a\":[");
	strcat(text, "1");
	for (int i = 0; i < JSON_MAX_DEPTH / 2; i++)
		strcat(text, "]}");
	expect_valid(text, strlen(text));
	memmove(text + 1, text, strlen(text) + 1);
	text[0] = '[';
	strcat(text, "]");
	expect_invalid(text, strlen(text), NULL);

	/* Siblings do not add up: depth is nesting, not a count of containers. */
	strcpy(text, "[[[]],[[]],[[[]]],{},{\"a\":{}}]");
	expect_valid(text, strlen(text));
}

static struct json_span
parse(const char *text)
{
	struct json_span span;
	struct tern_err err = {0};

	if (json_parse_span(text, strlen(text), &span, &err) != 0)
		fail_msg("parse %s: %s", text, err.msg);
	return span;
}

static void
test_parse_span(void **state)
{
	const char *text = "  \n [1, 2]\t ";
	struct json_span s = parse(text);
	struct tern_err err = {0};

	assert_int_equal(s.type, JSON_ARRAY);
	assert_ptr_equal(s.p, text + 4);
	assert_int_equal(s.len, 6);
	assert_int_equal(parse("\"x\"").type, JSON_STRING);
	assert_int_equal(parse("-1").type, JSON_NUMBER);
	assert_int_equal(parse("true").type, JSON_TRUE);
	assert_int_equal(parse("false").type, JSON_FALSE);
	assert_int_equal(parse("null").type, JSON_NULL);
	assert_int_equal(parse("{}").type, JSON_OBJECT);
	assert_int_equal(json_parse_span("[1,", 3, &s, &err), -EINVAL);
	assert_string_equal(err.msg, "invalid JSON at byte 3: unexpected end of input");
	/* Only len bytes are read: the text need not be NUL-terminated. */
	assert_int_equal(json_parse_span("123456", 3, &s, NULL), 0);
	assert_int_equal(s.len, 3);
}

static void
decode_ok(const char *text, const char *want, size_t wantlen)
{
	struct json_span s = parse(text);
	struct buf b;

	buf_init(&b);
	assert_int_equal(json_string_decode(&s, &b), 0);
	assert_int_equal(b.len, wantlen);
	assert_memory_equal(b.data, want, wantlen);
	assert_int_equal(b.data[b.len], '\0');
	buf_deinit(&b);
}

static void
test_string_decode(void **state)
{
	decode_ok("\"\"", "", 0);
	decode_ok("\"plain\"", "plain", 5);
	decode_ok("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\/\b\f\n\r\t", 8);
	decode_ok("\"\\u0041\\u00e9\\u20AC\"", "A\xc3\xa9\xe2\x82\xac", 6);
	decode_ok("\"\\u0000x\"", "\0x", 2);
	decode_ok("\"\\u007f\\u0080\\u07ff\\u0800\\uffff\"",
		  "\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf", 11);
	/* Surrogate pairs: U+1F600 and the extremes U+10000 and U+10FFFF. */
	decode_ok("\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80", 4);
	decode_ok("\"\\uD800\\uDC00\\uDBFF\\uDFFF\"", "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf", 8);
	decode_ok("\"caf\xc3\xa9\\n\"", "caf\xc3\xa9\n", 6);
}

static void
test_string_decode_errors(void **state)
{
	struct json_span s = {JSON_STRING, "\"\\ud83d\"", 8};
	struct buf b;
	char out[16];
	size_t n;

	buf_init(&b);
	buf_append_str(&b, "keep");
	/* A lone surrogate in a span the caller built is still refused, and b is left as it was. */
	assert_int_equal(json_string_decode(&s, &b), -EINVAL);
	assert_string_equal(b.data, "keep");
	s.p = "\"ab\"cd\"";
	s.len = 7;
	assert_int_equal(json_string_decode(&s, &b), -EINVAL);
	s.p = "\"ab";
	s.len = 3;
	assert_int_equal(json_string_decode(&s, &b), -EINVAL);
	s.p = "12";
	s.len = 2;
	assert_int_equal(json_string_decode(&s, &b), -EINVAL);
	s.p = "\"";
	s.len = 1;
	assert_int_equal(json_string_decode(&s, &b), -EINVAL);
	assert_string_equal(b.data, "keep");
	s.p = "\"x\\ty\"";
	s.len = 6;
	assert_int_equal(json_string_decode(&s, &b), 0);
	assert_string_equal(b.data, "keepx\ty");
	assert_int_equal(json_string_decode_to(&s, out, &n), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(out, "x\ty", 3);
	buf_deinit(&b);
}

static double
number(const char *text)
{
	struct json_span s = parse(text);
	double v;

	assert_int_equal(json_number_value(&s, &v), 0);
	return v;
}

static void
test_numbers(void **state)
{
	struct json_span s;
	char big[200];
	double v;

	assert_true(number("0") == 0.0 && !signbit(number("0")));
	assert_true(number("-0") == 0.0 && signbit(number("-0")));
	assert_true(number("1e5") == 100000.0);
	assert_true(number("1E+2") == 100.0);
	assert_true(number("1e-2") == 0.01);
	assert_true(number("-12.75e1") == -127.5);
	assert_true(number("0.5") == 0.5);
	assert_true(number("999999999999999") == 999999999999999.0);
	assert_true(number("-999999999999999") == -999999999999999.0);
	assert_true(number("9007199254740993") == 9007199254740992.0);
	assert_true(number("1712345678.25") == 1712345678.25);
	assert_true(number("1e-400") == 0.0);
	assert_true(number("1.7976931348623157e308") == 1.7976931348623157e308);
	/* Longer than the stack copy. */
	memset(big, '0', sizeof(big) - 1);
	big[0] = '1';
	big[1] = '.';
	big[sizeof(big) - 2] = '5';
	big[sizeof(big) - 1] = '\0';
	assert_true(number(big) == 1.0);

	s = parse("1e400");
	assert_int_equal(json_number_value(&s, &v), -ERANGE);
	s = parse("-1e400");
	assert_int_equal(json_number_value(&s, &v), -ERANGE);
	s = parse("\"1\"");
	assert_int_equal(json_number_value(&s, &v), -EINVAL);
	s = (struct json_span){JSON_NUMBER, "01", 2};
	assert_int_equal(json_number_value(&s, &v), -EINVAL);
	s = (struct json_span){JSON_NUMBER, "1 ", 2};
	assert_int_equal(json_number_value(&s, &v), -EINVAL);
	s = (struct json_span){JSON_NUMBER, "-", 1};
	assert_int_equal(json_number_value(&s, &v), -EINVAL);
	s = (struct json_span){JSON_NUMBER, "", 0};
	assert_int_equal(json_number_value(&s, &v), -EINVAL);
	/* Only len bytes are read: "12" of "123". */
	s = (struct json_span){JSON_NUMBER, "123", 2};
	assert_int_equal(json_number_value(&s, &v), 0);
	assert_true(v == 12.0);
}

static void
assert_span(const struct json_span *s, enum json_type type, const char *text)
{
	assert_int_equal(s->type, type);
	assert_int_equal(s->len, strlen(text));
	assert_memory_equal(s->p, text, s->len);
}

static void
test_object_get(void **state)
{
	struct json_span doc = parse(rfc_image), image, thumb, v;
	double d;

	assert_int_equal(json_object_get(&doc, "Image", &image), 0);
	assert_int_equal(image.type, JSON_OBJECT);
	assert_int_equal(json_object_get(&image, "Thumbnail", &thumb), 0);
	assert_int_equal(json_object_get(&thumb, "Width", &v), 0);
	assert_int_equal(json_number_value(&v, &d), 0);
	assert_true(d == 100.0);
	/* Only top-level members of the given object: Thumbnail's Url is not Image's. */
	assert_int_equal(json_object_get(&image, "Url", &v), -ENOENT);
	assert_int_equal(json_object_get(&doc, "Width", &v), -ENOENT);
	assert_int_equal(json_object_get(&image, "Animated", &v), 0);
	assert_span(&v, JSON_FALSE, "false");
	assert_int_equal(json_object_get(&image, "IDs", &v), 0);
	assert_span(&v, JSON_ARRAY, "[116, 943, 234, 38793]");
}

static void
test_object_get_keys(void **state)
{
	struct json_span doc, v;
	char text[700], key[101];

	/* Duplicate keys: the first wins. */
	doc = parse("{\"a\":1,\"b\":2,\"a\":3}");
	assert_int_equal(json_object_get(&doc, "a", &v), 0);
	assert_span(&v, JSON_NUMBER, "1");
	/* Escaped keys are compared decoded; a prefix is not a match. */
	doc = parse("{\"k\":0,\"kk\":1,\"k\\u0031\":2,\"\\u00e9\":3,\"\":4}");
	assert_int_equal(json_object_get(&doc, "k1", &v), 0);
	assert_span(&v, JSON_NUMBER, "2");
	assert_int_equal(json_object_get(&doc, "\xc3\xa9", &v), 0);
	assert_span(&v, JSON_NUMBER, "3");
	assert_int_equal(json_object_get(&doc, "", &v), 0);
	assert_span(&v, JSON_NUMBER, "4");
	assert_int_equal(json_object_get(&doc, "k2", &v), -ENOENT);
	/* An escaped key longer than the stack copy. */
	strcpy(text, "{\"");
	for (int i = 0; i < 100; i++)
		strcat(text, "\\u0078");
	strcat(text, "\":true}");
	doc = parse(text);
	memset(key, 'x', 100);
	key[100] = '\0';
	assert_int_equal(json_object_get(&doc, key, &v), 0);
	assert_span(&v, JSON_TRUE, "true");
	key[99] = '\0';
	assert_int_equal(json_object_get(&doc, key, &v), -ENOENT);
}

static void
test_object_get_malformed(void **state)
{
	struct json_span doc = parse("[1,2]"), v;

	assert_int_equal(json_object_get(&doc, "a", &v), -EINVAL);
	doc = (struct json_span){JSON_OBJECT, "{\"a\":1,", 7};
	assert_int_equal(json_object_get(&doc, "b", &v), -EINVAL);
	/* Found before the damage: the text is read only as far as needed. */
	assert_int_equal(json_object_get(&doc, "a", &v), 0);
	doc = (struct json_span){JSON_OBJECT, "{\"a\" 1}", 7};
	assert_int_equal(json_object_get(&doc, "a", &v), -EINVAL);
	doc = (struct json_span){JSON_OBJECT, "{", 1};
	assert_int_equal(json_object_get(&doc, "a", &v), -EINVAL);
	doc = (struct json_span){JSON_OBJECT, "", 0};
	assert_int_equal(json_object_get(&doc, "a", &v), -EINVAL);
	doc = (struct json_span){JSON_OBJECT, "{}", 2};
	assert_int_equal(json_object_get(&doc, "a", &v), -ENOENT);
}

struct seen {
	int count;
	int stop_at;
	char keys[8][16];
	size_t keylens[8];
	struct json_span vals[8];
};

static int
collect_member(void *arg, const char *key, size_t keylen, const struct json_span *val)
{
	struct seen *s = arg;

	assert_int_equal(key[keylen], '\0');
	memcpy(s->keys[s->count], key, keylen + 1);
	s->keylens[s->count] = keylen;
	s->vals[s->count] = *val;
	if (++s->count == s->stop_at)
		return 42;
	return 0;
}

static int
collect_element(void *arg, size_t index, const struct json_span *val)
{
	struct seen *s = arg;

	assert_int_equal(index, (size_t)s->count);
	s->vals[s->count] = *val;
	if (++s->count == s->stop_at)
		return -7;
	return 0;
}

static void
test_object_foreach(void **state)
{
	struct json_span doc =
	    parse("{ \"a\" : 1 , \"b\\u0000c\":[true],\"a\":{\"x\":null}, \"\":\"\" }");
	struct seen s = {0};

	assert_int_equal(json_object_foreach(&doc, collect_member, &s), 0);
	assert_int_equal(s.count, 4);
	assert_string_equal(s.keys[0], "a");
	assert_int_equal(s.keylens[1], 3);
	assert_memory_equal(s.keys[1], "b\0c", 4);
	assert_string_equal(s.keys[2], "a");
	assert_string_equal(s.keys[3], "");
	assert_span(&s.vals[0], JSON_NUMBER, "1");
	assert_span(&s.vals[1], JSON_ARRAY, "[true]");
	assert_span(&s.vals[2], JSON_OBJECT, "{\"x\":null}");
	assert_span(&s.vals[3], JSON_STRING, "\"\"");

	/* Early stop: fn's value comes back and no further member is visited. */
	memset(&s, 0, sizeof(s));
	s.stop_at = 2;
	assert_int_equal(json_object_foreach(&doc, collect_member, &s), 42);
	assert_int_equal(s.count, 2);

	memset(&s, 0, sizeof(s));
	doc = parse(" {  } ");
	assert_int_equal(json_object_foreach(&doc, collect_member, &s), 0);
	assert_int_equal(s.count, 0);

	doc = (struct json_span){JSON_OBJECT, "{\"a\":1,\"b\"}", 11};
	assert_int_equal(json_object_foreach(&doc, collect_member, &s), -EINVAL);
	assert_int_equal(s.count, 1);
	doc = parse("[]");
	assert_int_equal(json_object_foreach(&doc, collect_member, &s), -EINVAL);
}

static void
test_array_foreach(void **state)
{
	struct json_span doc = parse("[ 1, \"two\" ,[3],{\"four\":4} , null ]");
	struct seen s = {0};

	assert_int_equal(json_array_foreach(&doc, collect_element, &s), 0);
	assert_int_equal(s.count, 5);
	assert_span(&s.vals[0], JSON_NUMBER, "1");
	assert_span(&s.vals[1], JSON_STRING, "\"two\"");
	assert_span(&s.vals[2], JSON_ARRAY, "[3]");
	assert_span(&s.vals[3], JSON_OBJECT, "{\"four\":4}");
	assert_span(&s.vals[4], JSON_NULL, "null");

	memset(&s, 0, sizeof(s));
	s.stop_at = 3;
	assert_int_equal(json_array_foreach(&doc, collect_element, &s), -7);
	assert_int_equal(s.count, 3);

	memset(&s, 0, sizeof(s));
	doc = parse("[]");
	assert_int_equal(json_array_foreach(&doc, collect_element, &s), 0);
	assert_int_equal(s.count, 0);
	doc = (struct json_span){JSON_ARRAY, "[1,]", 4};
	assert_int_equal(json_array_foreach(&doc, collect_element, &s), -EINVAL);
	doc = parse("{}");
	assert_int_equal(json_array_foreach(&doc, collect_element, &s), -EINVAL);
}

/* Count every value of a document: foreach composes with itself. */
static int walk(const struct json_span *v, int *count);

static int
walk_member(void *arg, const char *key, size_t keylen, const struct json_span *val)
{
	return walk(val, arg);
}

static int
walk_element(void *arg, size_t index, const struct json_span *val)
{
	return walk(val, arg);
}

static int
walk(const struct json_span *v, int *count)
{
	*count += 1;
	if (v->type == JSON_OBJECT)
		return json_object_foreach(v, walk_member, count);
	if (v->type == JSON_ARRAY)
		return json_array_foreach(v, walk_element, count);
	return 0;
}

static void
test_walk(void **state)
{
	struct json_span doc = parse(rfc_places);
	int count = 0;

	assert_int_equal(walk(&doc, &count), 0);
	assert_int_equal(count, 1 + 2 * (1 + 8));
	doc = parse(rfc_image);
	count = 0;
	assert_int_equal(walk(&doc, &count), 0);
	assert_int_equal(count, 1 + 1 + 6 + 3 + 4);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid_corpus),
	    cmocka_unit_test(test_invalid_corpus),
	    cmocka_unit_test(test_depth_limit),
	    cmocka_unit_test(test_parse_span),
	    cmocka_unit_test(test_string_decode),
	    cmocka_unit_test(test_string_decode_errors),
	    cmocka_unit_test(test_numbers),
	    cmocka_unit_test(test_object_get),
	    cmocka_unit_test(test_object_get_keys),
	    cmocka_unit_test(test_object_get_malformed),
	    cmocka_unit_test(test_object_foreach),
	    cmocka_unit_test(test_array_foreach),
	    cmocka_unit_test(test_walk),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
