// SPDX-License-Identifier: MIT
/*
 * JSON (RFC 8259) as spans of the caller's text rather than a document tree.
 * Metadata and HTTP bodies are small and read a few fields each, so building a
 * tree would cost more than scanning the text again: every function here is
 * one strict recursive-descent scanner started at a different place. Nothing
 * is allocated except what the caller's buf takes (and, rarely, a heap copy of
 * an escaped key or a number longer than any real document uses).
 */
#include "tern/json.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define JSON_STR_(x) #x
#define JSON_STR(x) JSON_STR_(x)

/* A cursor over text that is being checked; err may be NULL when only the verdict matters. */
struct scan {
	const char *p;
	const char *end;
	const char *start;
	int depth;
	bool escaped; /* the last string scanned held a backslash escape */
	struct tern_err *err;
};

/* Bytes that may appear unescaped in a string and need no further look: printable ASCII. */
static const unsigned char json_plain[256] = {
    [0x20] = 1,
    [0x21] = 1,
    [0x23 ... 0x5b] = 1,
    [0x5d ... 0x7f] = 1,
};

static int scan_value(struct scan *s, enum json_type *type);

static void
scan_init(struct scan *s, const char *p, size_t len, int depth, struct tern_err *err)
{
	s->p = p;
	s->end = p + len;
	s->start = p;
	s->depth = depth;
	s->escaped = false;
	s->err = err;
}

static int
scan_fail(struct scan *s, const char *what)
{
	tern_err_set(s->err, 0, NULL, "invalid JSON at byte %zu: %s", (size_t)(s->p - s->start),
		     s->p < s->end ? what : "unexpected end of input");
	return -EINVAL;
}

static void
skip_ws(struct scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
		s->p++;
}

/* Read the four hex digits of a \u escape at s->p. */
static int
scan_hex4(struct scan *s, unsigned *cp)
{
	unsigned v = 0;
	int i, h;

	if (s->end - s->p < 4)
		return scan_fail(s, "truncated \\u escape");
	for (i = 0; i < 4; i++) {
		h = util_hex_value(s->p[i]);
		if (h < 0)
			return scan_fail(s, "expected 4 hex digits after \\u");
		v = v << 4 | (unsigned)h;
	}
	s->p += 4;
	*cp = v;
	return 0;
}

static size_t
utf8_put(char *out, unsigned cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* \uXXXX after the backslash and 'u': a BMP code point or a surrogate pair, never half of one. */
static int
scan_unicode_escape(struct scan *s, unsigned *cp)
{
	const char *esc = s->p - 2;
	unsigned lo;

	if (scan_hex4(s, cp) < 0)
		return -EINVAL;
	if (*cp >= 0xdc00 && *cp <= 0xdfff) {
		s->p = esc;
		return scan_fail(s, "lone low surrogate in \\u escape");
	}
	if (*cp < 0xd800 || *cp > 0xdbff)
		return 0;
	if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u') {
		s->p = esc;
		return scan_fail(s, "lone high surrogate in \\u escape");
	}
	s->p += 2;
	if (scan_hex4(s, &lo) < 0)
		return -EINVAL;
	if (lo < 0xdc00 || lo > 0xdfff) {
		s->p = esc;
		return scan_fail(s, "lone high surrogate in \\u escape");
	}
	*cp = 0x10000 + ((*cp - 0xd800) << 10) + (lo - 0xdc00);
	return 0;
}

/* One escape sequence at s->p (the backslash); appends its UTF-8 to out when out is not NULL. */
static int
scan_escape(struct scan *s, char *out, size_t *n)
{
	static const char simple[256] = {['"'] = '"',  ['\\'] = '\\', ['/'] = '/',  ['b'] = '\b',
					 ['f'] = '\f', ['n'] = '\n',  ['r'] = '\r', ['t'] = '\t'};
	unsigned char c;
	unsigned cp;

	s->escaped = true;
	if (s->end - s->p < 2) {
		s->p = s->end;
		return scan_fail(s, "");
	}
	c = (unsigned char)s->p[1];
	s->p += 2;
	if (simple[c]) {
		if (out)
			out[(*n)++] = simple[c];
		return 0;
	}
	if (c != 'u') {
		s->p--;
		return scan_fail(s, "invalid escape");
	}
	if (scan_unicode_escape(s, &cp) < 0)
		return -EINVAL;
	if (out)
		*n += utf8_put(out + *n, cp);
	return 0;
}

/* Length of the well-formed UTF-8 sequence at p (a byte >= 0x80), or 0 (RFC 3629 table 3-7). */
static size_t
utf8_seq_len(const unsigned char *p, const unsigned char *end)
{
	unsigned char c = p[0], lo = 0x80, hi = 0xbf;
	size_t n, i;

	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	if ((size_t)(end - p) < n)
		return 0;
	if (c == 0xe0)
		lo = 0xa0; /* overlong */
	else if (c == 0xed)
		hi = 0x9f; /* UTF-16 surrogates */
	else if (c == 0xf0)
		lo = 0x90; /* overlong */
	else if (c == 0xf4)
		hi = 0x8f; /* above U+10FFFF */
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

/* A run of bytes needing no decoding, possibly empty: plain ASCII and valid UTF-8. */
static int
scan_string_run(struct scan *s)
{
	const unsigned char *q = (const unsigned char *)s->p;
	const unsigned char *end = (const unsigned char *)s->end;
	size_t n;

	for (;;) {
		while (q < end && json_plain[*q])
			q++;
		if (q == end || *q < 0x80)
			break;
		n = utf8_seq_len(q, end);
		if (n == 0) {
			s->p = (const char *)q;
			return scan_fail(s, "invalid UTF-8 in string");
		}
		q += n;
	}
	s->p = (const char *)q;
	return 0;
}

/*
 * A string from its opening quote through its closing quote. When out is not
 * NULL the decoded UTF-8 is written there and its length to *outlen: it is
 * never longer than the raw text, so the caller sizes out by the span.
 */
static int
scan_string(struct scan *s, char *out, size_t *outlen)
{
	const char *run;
	size_t n = 0;

	s->p++;
	s->escaped = false;
	for (;;) {
		run = s->p;
		if (scan_string_run(s) < 0)
			return -EINVAL;
		if (out) {
			memcpy(out + n, run, (size_t)(s->p - run));
			n += (size_t)(s->p - run);
		}
		if (s->p == s->end)
			return scan_fail(s, "");
		if (*s->p == '"')
			break;
		if (*s->p != '\\')
			return scan_fail(s, "control character in string");
		if (scan_escape(s, out, &n) < 0)
			return -EINVAL;
	}
	s->p++;
	if (outlen)
		*outlen = n;
	return 0;
}

static int
scan_digits(struct scan *s, const char *what)
{
	const char *p = s->p;

	while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
		s->p++;
	return s->p == p ? scan_fail(s, what) : 0;
}

static int
scan_number(struct scan *s)
{
	if (*s->p == '-')
		s->p++;
	if (s->p < s->end && *s->p == '0') {
		s->p++;
		if (s->p < s->end && *s->p >= '0' && *s->p <= '9')
			return scan_fail(s, "leading zero in number");
	} else if (scan_digits(s, "expected a digit") < 0) {
		return -EINVAL;
	}
	if (s->p < s->end && *s->p == '.') {
		s->p++;
		if (scan_digits(s, "expected a digit after '.'") < 0)
			return -EINVAL;
	}
	if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
		s->p++;
		if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
			s->p++;
		if (scan_digits(s, "expected a digit in exponent") < 0)
			return -EINVAL;
	}
	return 0;
}

static int
scan_literal(struct scan *s, const char *word, size_t n)
{
	if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
		return scan_fail(s, "expected a value");
	s->p += n;
	return 0;
}

static int
scan_enter(struct scan *s)
{
	if (++s->depth > JSON_MAX_DEPTH)
		return scan_fail(s, "nesting deeper than " JSON_STR(JSON_MAX_DEPTH));
	s->p++;
	skip_ws(s);
	return 0;
}

/* After a member or element: 1 when another follows, 0 at the closing bracket. */
static int
scan_next(struct scan *s, char close, const char *what)
{
	skip_ws(s);
	if (s->p < s->end && *s->p == ',') {
		s->p++;
		skip_ws(s);
		return 1;
	}
	if (s->p < s->end && *s->p == close) {
		s->p++;
		s->depth--;
		return 0;
	}
	return scan_fail(s, what);
}

static int
scan_array(struct scan *s)
{
	enum json_type t;
	int rc;

	if (scan_enter(s) < 0)
		return -EINVAL;
	if (s->p < s->end && *s->p == ']') {
		s->p++;
		s->depth--;
		return 0;
	}
	do {
		if (scan_value(s, &t) < 0)
			return -EINVAL;
	} while ((rc = scan_next(s, ']', "expected ',' or ']'")) > 0);
	return rc;
}

/* A key (its raw span, quotes included, to key) and its colon; the cursor is left at the value. */
static int
scan_key(struct scan *s, struct json_span *key)
{
	key->type = JSON_STRING;
	key->p = s->p;
	if (s->p == s->end || *s->p != '"')
		return scan_fail(s, "expected a string key");
	if (scan_string(s, NULL, NULL) < 0)
		return -EINVAL;
	key->len = (size_t)(s->p - key->p);
	skip_ws(s);
	if (s->p == s->end || *s->p != ':')
		return scan_fail(s, "expected ':'");
	s->p++;
	skip_ws(s);
	return 0;
}

static int
scan_object(struct scan *s)
{
	struct json_span key;
	enum json_type t;
	int rc;

	if (scan_enter(s) < 0)
		return -EINVAL;
	if (s->p < s->end && *s->p == '}') {
		s->p++;
		s->depth--;
		return 0;
	}
	do {
		if (scan_key(s, &key) < 0 || scan_value(s, &t) < 0)
			return -EINVAL;
	} while ((rc = scan_next(s, '}', "expected ',' or '}'")) > 0);
	return rc;
}

static int
scan_value(struct scan *s, enum json_type *type)
{
	if (s->p == s->end)
		return scan_fail(s, "");
	switch (*s->p) {
	case '{':
		*type = JSON_OBJECT;
		return scan_object(s);
	case '[':
		*type = JSON_ARRAY;
		return scan_array(s);
	case '"':
		*type = JSON_STRING;
		return scan_string(s, NULL, NULL);
	case 't':
		*type = JSON_TRUE;
		return scan_literal(s, "true", 4);
	case 'f':
		*type = JSON_FALSE;
		return scan_literal(s, "false", 5);
	case 'n':
		*type = JSON_NULL;
		return scan_literal(s, "null", 4);
	case '-':
	case '0' ... '9':
		*type = JSON_NUMBER;
		return scan_number(s);
	default:
		return scan_fail(s, "expected a value");
	}
}

/* Scan one value at s->p and describe it as a span. */
static int
scan_span(struct scan *s, struct json_span *out)
{
	const char *p = s->p;

	if (scan_value(s, &out->type) < 0)
		return -EINVAL;
	out->p = p;
	out->len = (size_t)(s->p - p);
	return 0;
}

int
json_parse_span(const char *p, size_t len, struct json_span *out, struct tern_err *err)
{
	struct scan s;

	scan_init(&s, p, len, 0, err);
	skip_ws(&s);
	if (scan_span(&s, out) < 0)
		return -EINVAL;
	skip_ws(&s);
	if (s.p != s.end)
		return scan_fail(&s, "unexpected text after the value");
	return 0;
}

int
json_validate(const char *p, size_t len, struct tern_err *err)
{
	struct json_span span;

	return json_parse_span(p, len, &span, err);
}

/* Walks the members of an object or the elements of an array, checking as it goes. */
struct json_iter {
	struct scan s;
	char close;
	bool started;
};

static int
iter_begin(struct json_iter *it, const struct json_span *c, char open, char close)
{
	if (c->len < 2 || c->p[0] != open)
		return -EINVAL;
	/* Depth restarts at this container: its enclosing text was already checked. */
	scan_init(&it->s, c->p, c->len, 0, NULL);
	it->close = close;
	it->started = false;
	return scan_enter(&it->s);
}

/* 1 when there is another member or element at the cursor, 0 at the end. */
static int
iter_more(struct json_iter *it)
{
	if (!it->started) {
		it->started = true;
		if (it->s.p < it->s.end && *it->s.p == it->close)
			return 0;
		return 1;
	}
	return scan_next(&it->s, it->close, "");
}

/* Next member: its raw key (quotes included) and value; *escaped: the key needs decoding. */
static int
iter_member(struct json_iter *it, struct json_span *key, bool *escaped, struct json_span *val)
{
	int rc = iter_more(it);

	if (rc <= 0)
		return rc;
	if (scan_key(&it->s, key) < 0)
		return -EINVAL;
	*escaped = it->s.escaped;
	return scan_span(&it->s, val) < 0 ? -EINVAL : 1;
}

static int
iter_element(struct json_iter *it, struct json_span *val)
{
	int rc = iter_more(it);

	if (rc <= 0)
		return rc;
	return scan_span(&it->s, val) < 0 ? -EINVAL : 1;
}

int
json_string_decode_to(const struct json_span *s, char *out, size_t *outlen)
{
	struct scan sc;

	if (s->len < 2 || s->p[0] != '"')
		return -EINVAL;
	scan_init(&sc, s->p, s->len, 0, NULL);
	if (scan_string(&sc, out, outlen) < 0 || sc.p != sc.end)
		return -EINVAL;
	return 0;
}

int
json_string_decode(const struct json_span *s, struct buf *out)
{
	size_t n;
	int rc;

	if (buf_reserve(out, s->len) < 0)
		return -ENOMEM;
	rc = json_string_decode_to(s, out->data + out->len, &n);
	if (rc == 0)
		out->len += n;
	out->data[out->len] = '\0';
	return rc;
}

/* A decoded key, on the stack unless it is longer than any real document's keys. */
struct json_key {
	char stack[256];
	char *p;
	size_t len;
};

static int
key_decode(struct json_key *k, const struct json_span *raw)
{
	k->p = k->stack;
	if (raw->len >= sizeof(k->stack)) {
		k->p = malloc(raw->len + 1);
		if (k->p == NULL)
			return -ENOMEM;
	}
	if (json_string_decode_to(raw, k->p, &k->len) < 0)
		return -EINVAL;
	k->p[k->len] = '\0';
	return 0;
}

static void
key_release(struct json_key *k)
{
	if (k->p != k->stack)
		free(k->p);
	k->p = NULL;
}

static bool
key_equals(const struct json_span *raw, bool escaped, const char *key, size_t keylen)
{
	struct json_key k;
	bool eq;

	if (!escaped)
		return raw->len - 2 == keylen && memcmp(raw->p + 1, key, keylen) == 0;
	eq = key_decode(&k, raw) == 0 && k.len == keylen && memcmp(k.p, key, keylen) == 0;
	key_release(&k);
	return eq;
}

int
json_object_get(const struct json_span *obj, const char *key, struct json_span *val)
{
	size_t keylen = strlen(key);
	struct json_span raw;
	struct json_iter it;
	bool escaped;
	int rc;

	if (iter_begin(&it, obj, '{', '}') < 0)
		return -EINVAL;
	while ((rc = iter_member(&it, &raw, &escaped, val)) > 0)
		if (key_equals(&raw, escaped, key, keylen))
			return 0;
	return rc < 0 ? -EINVAL : -ENOENT;
}

int
json_object_foreach(const struct json_span *obj, json_member_fn fn, void *arg)
{
	struct json_span raw, val;
	struct json_iter it;
	struct json_key k;
	bool escaped;
	int rc;

	if (iter_begin(&it, obj, '{', '}') < 0)
		return -EINVAL;
	while ((rc = iter_member(&it, &raw, &escaped, &val)) > 0) {
		rc = key_decode(&k, &raw);
		if (rc == 0)
			rc = fn(arg, k.p, k.len, &val);
		key_release(&k);
		if (rc != 0)
			return rc;
	}
	return rc;
}

int
json_array_foreach(const struct json_span *arr, json_element_fn fn, void *arg)
{
	struct json_span val;
	struct json_iter it;
	size_t i = 0;
	int rc;

	if (iter_begin(&it, arr, '[', ']') < 0)
		return -EINVAL;
	while ((rc = iter_element(&it, &val)) > 0) {
		rc = fn(arg, i++, &val);
		if (rc != 0)
			return rc;
	}
	return rc;
}

/* Integers of up to 15 digits are exact in a double: the common case skips strtod. */
static bool
number_fast(const char *p, size_t len, double *out)
{
	bool neg = p[0] == '-';
	uint64_t v = 0;
	size_t i;

	if (len - neg > 15)
		return false;
	for (i = neg; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	*out = neg ? -(double)v : (double)v;
	return true;
}

/* strtod needs a terminated copy; the span usually sits inside a larger text. */
static int
number_strtod(const char *p, size_t len, double *out)
{
	char stack[64];
	char *copy = stack;

	if (len >= sizeof(stack)) {
		copy = malloc(len + 1);
		if (copy == NULL)
			return -ENOMEM;
	}
	memcpy(copy, p, len);
	copy[len] = '\0';
	*out = strtod(copy, NULL);
	if (copy != stack)
		free(copy);
	return isinf(*out) ? -ERANGE : 0;
}

int
json_number_value(const struct json_span *s, double *out)
{
	struct scan sc;

	if (s->len == 0 || (s->p[0] != '-' && (s->p[0] < '0' || s->p[0] > '9')))
		return -EINVAL;
	scan_init(&sc, s->p, s->len, 0, NULL);
	if (scan_number(&sc) < 0 || sc.p != sc.end)
		return -EINVAL;
	if (number_fast(s->p, s->len, out))
		return 0;
	return number_strtod(s->p, s->len, out);
}

bool
json_utf8_valid(const char *p, size_t len)
{
	const unsigned char *s = (const unsigned char *)p, *end = s + len;
	size_t n;

	while (s < end) {
		if (*s < 0x80) {
			s++;
			continue;
		}
		if ((n = utf8_seq_len(s, end)) == 0)
			return false;
		s += n;
	}
	return true;
}
