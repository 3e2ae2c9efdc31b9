/* SPDX-License-Identifier: MIT */
/*
 * JSON (RFC 8259) without a document tree: validate a text, find a member of
 * an object, walk an object's members or an array's elements as spans of the
 * original text, decode strings and numbers. Pure and fuzzed; used for spool
 * metadata, HTTP bodies and tern.json.
 *
 * Strict: no trailing commas, comments, leading zeros, raw control characters
 * in strings, invalid UTF-8 or lone surrogates (escaped or not).
 */
#ifndef TERN_JSON_H
#define TERN_JSON_H

#include <stddef.h>

#include "tern/util.h"

/* Containers (arrays and objects) may nest this deep; one more is an error. */
#define JSON_MAX_DEPTH 64

enum json_type { JSON_NULL, JSON_FALSE, JSON_TRUE, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

/* A value inside a text: p/len cover the whole value (quotes of a string included). */
struct json_span {
	enum json_type type;
	const char *p;
	size_t len;
};

/*
 * 0 when p holds exactly one JSON value (surrounding whitespace allowed); else -EINVAL and err,
 * e.g. "invalid JSON at byte 17: expected ':'" (bytes counted from 0).
 */
int json_validate(const char *p, size_t len, struct tern_err *err);
/* Parse the single value in p into span (the text is validated: -EINVAL and err when it is not). */
int json_parse_span(const char *p, size_t len, struct json_span *out, struct tern_err *err);

/*
 * Find a top-level member of an object: 0, -ENOENT when absent, -EINVAL when malformed.
 * With duplicate keys the first one wins. The text is checked only as far as it is read.
 */
int json_object_get(const struct json_span *obj, const char *key, struct json_span *val);

/*
 * Visit members in order; key is decoded (UTF-8, NUL-terminated, may contain NULs: use keylen).
 * Stop and return fn's value when non-zero; 0 at the end; -EINVAL when malformed. Keys are
 * decoded on the stack; only a key whose JSON text exceeds 255 bytes costs a malloc (-ENOMEM).
 */
typedef int (*json_member_fn)(void *arg, const char *key, size_t keylen, const struct json_span *val);
int json_object_foreach(const struct json_span *obj, json_member_fn fn, void *arg);
/* The same for an array's elements; index counts from 0. */
typedef int (*json_element_fn)(void *arg, size_t index, const struct json_span *val);
int json_array_foreach(const struct json_span *arr, json_element_fn fn, void *arg);

/* Decode a string span into UTF-8 (appended to out); -EINVAL for bad escapes or lone surrogates. */
int json_string_decode(const struct json_span *s, struct buf *out);
/* The same into caller memory of at least s->len bytes (decoding never grows); *outlen is set. */
int json_string_decode_to(const struct json_span *s, char *out, size_t *outlen);
/* A number span as a double: -EINVAL when not a JSON number, -ERANGE when it overflows a double. */
int json_number_value(const struct json_span *s, double *out);

/* Whether p[0..len) is well-formed UTF-8 (what a JSON string may carry unescaped). */
bool json_utf8_valid(const char *p, size_t len);

#endif
