// SPDX-License-Identifier: MIT
/*
 * Messages: header find/prepend/set/remove (folded, repeated, no body, no
 * blank line), folding of values with line breaks, header name checks, meta,
 * queue naming, spool metadata round trip and rejection, clone.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tern/json.h"
#include "tern/message.h"

static struct message *
message_with(const char *data)
{
	struct message *m = message_new("from@example.org", "to@example.com");

	assert_non_null(m);
	assert_int_equal(buf_append_str(&m->data, data), 0);
	return m;
}

/* The value of the index-th field named name, copied out as a string. */
static const char *
header_value(const struct message *m, const char *name, size_t index)
{
	static char out[512];
	struct message_field f;

	if (message_find_header(m, name, index, &f) < 0)
		return NULL;
	snprintf(out, sizeof(out), "%.*s", (int)f.value_len, m->data.data + f.value);
	return out;
}

/* Every CR is followed by LF and every LF follows a CR. */
static void
assert_no_bare_line_endings(const struct buf *b)
{
	size_t i;

	for (i = 0; i < b->len; i++) {
		if (b->data[i] == '\r')
			assert_true(i + 1 < b->len && b->data[i + 1] == '\n');
		if (b->data[i] == '\n')
			assert_true(i > 0 && b->data[i - 1] == '\r');
	}
}

static const char folded[] = "Received: from a\r\n"
			     "\tby b; Mon, 1 Jan 2024\r\n"
			     "Subject: hello\r\n"
			     " world\r\n"
			     "received: from c\r\n"
			     "X-Empty:\r\n"
			     "\r\n"
			     "Subject: not a header\r\n";

static void
test_header_len(void **state)
{
	struct message *m = message_with(folded);

	assert_int_equal(message_header_len(m), strstr(folded, "\r\n\r\n") + 4 - folded);
	buf_reset(&m->data);
	buf_append_str(&m->data, "A: 1\r\nB: 2\r\n"); /* no blank line, no body */
	assert_int_equal(message_header_len(m), m->data.len);
	buf_reset(&m->data);
	buf_append_str(&m->data, "\r\nbody only\r\n");
	assert_int_equal(message_header_len(m), 2);
	buf_reset(&m->data);
	assert_int_equal(message_header_len(m), 0);
	message_free(m);
}

static void
test_header_walk_and_find(void **state)
{
	struct message *m = message_with(folded);
	struct message_field f;
	size_t off = 0;
	int n = 0;

	while (message_next_header(m, &off, &f) == 0)
		n++;
	assert_int_equal(n, 4);
	assert_string_equal(header_value(m, "received", 0), "from a\r\n\tby b; Mon, 1 Jan 2024");
	assert_string_equal(header_value(m, "RECEIVED", 1), "from c");
	assert_null(header_value(m, "Received", 2));
	assert_string_equal(header_value(m, "subject", 0), "hello\r\n world");
	assert_null(header_value(m, "subject", 1)); /* the body's "Subject:" is not a header */
	assert_string_equal(header_value(m, "x-empty", 0), "");
	assert_null(header_value(m, "X", 0));
	assert_int_equal(message_find_header(m, "Subject", 0, &f), 0);
	assert_int_equal(f.name_len, 7);
	assert_int_equal(f.len, strlen("Subject: hello\r\n world\r\n"));
	assert_memory_equal(m->data.data + f.start, "Subject: hello\r\n world\r\n", f.len);
	message_free(m);
}

static void
test_header_without_blank_line(void **state)
{
	struct message *m = message_with("A: 1\r\nB: 2\r\n continued");

	assert_string_equal(header_value(m, "A", 0), "1");
	assert_string_equal(header_value(m, "b", 0), "2\r\n continued");
	assert_int_equal(message_set_header(m, "A", "one"), 0);
	assert_string_equal(m->data.data, "A: one\r\nB: 2\r\n continued");
	message_free(m);
}

static void
test_prepend(void **state)
{
	struct message *m = message_with("Subject: x\r\n\r\nbody\r\n");
	const char raw[] = "X-Raw: 1\r\n";

	assert_int_equal(message_prepend_header(m, "X-Tag", "a"), 0);
	assert_int_equal(message_prepend_raw(m, raw, strlen(raw)), 0);
	assert_string_equal(m->data.data, "X-Raw: 1\r\nX-Tag: a\r\nSubject: x\r\n\r\nbody\r\n");
	assert_string_equal(header_value(m, "x-tag", 0), "a");
	message_free(m);

	/* Onto a message with no header section at all the blank line stays first in the body. */
	m = message_with("\r\nbody\r\n");
	assert_int_equal(message_prepend_header(m, "X-Tag", "a"), 0);
	assert_string_equal(m->data.data, "X-Tag: a\r\n\r\nbody\r\n");
	assert_int_equal(message_header_len(m), strlen("X-Tag: a\r\n\r\n"));
	message_free(m);
}

static void
test_set_replaces_first_only(void **state)
{
	struct message *m = message_with(folded);

	assert_int_equal(message_set_header(m, "received", "new"), 0);
	assert_string_equal(header_value(m, "Received", 0), "new");
	assert_string_equal(header_value(m, "Received", 1), "from c");
	assert_int_equal(strncmp(m->data.data, "received: new\r\nSubject: hello\r\n world\r\n", 39),
			 0);
	assert_int_equal(message_set_header(m, "X-New", "v"), 0); /* absent: prepended */
	assert_int_equal(strncmp(m->data.data, "X-New: v\r\n", 10), 0);
	assert_string_equal(strstr(m->data.data, "\r\n\r\n"), "\r\n\r\nSubject: not a header\r\n");
	message_free(m);
}

static void
test_remove_all(void **state)
{
	struct message *m = message_with(folded);

	assert_int_equal(message_remove_header(m, "RECEIVED"), 2);
	assert_string_equal(m->data.data, "Subject: hello\r\n world\r\nX-Empty:\r\n\r\n"
					  "Subject: not a header\r\n");
	assert_int_equal(message_remove_header(m, "Received"), 0);
	assert_int_equal(message_remove_header(m, "Subject"), 1);
	assert_int_equal(message_remove_header(m, "X-Empty"), 1);
	assert_string_equal(m->data.data, "\r\nSubject: not a header\r\n");
	message_free(m);
}

static void
test_values_with_line_breaks_are_folded(void **state)
{
	static const char *const values[] = {"a\nb", "a\r\nb", "a\rb", "a\n\n  b",
					     "\nx",  "x\n",    "a\r",  "\r\n\r\n"};
	struct message *m = message_with("Subject: s\r\n\r\nbody\r\n");
	struct message_field f;
	size_t i, hlen = message_header_len(m);

	for (i = 0; i < TERN_ARRAY_LEN(values); i++) {
		assert_int_equal(message_prepend_header(m, "X-P", values[i]), 0);
		assert_int_equal(message_set_header(m, "Subject", values[i]), 0);
		assert_no_bare_line_endings(&m->data);
		/* The new field is one field: the header section did not end early. */
		assert_int_equal(message_find_header(m, "X-P", 0, &f), 0);
		assert_int_equal(f.start, 0);
		assert_true(message_header_len(m) > hlen);
		assert_string_equal(strstr(m->data.data, "\r\n\r\n"), "\r\n\r\nbody\r\n");
		hlen = message_header_len(m);
	}
	assert_string_equal(header_value(m, "X-P", TERN_ARRAY_LEN(values) - 1), "a\r\n\tb");
	message_free(m);
}

static void
test_headers_on_empty_data(void **state)
{
	struct message *m = message_new("", "r@d");
	struct message *c;
	struct message_field f;
	size_t off = 0;

	assert_int_equal(message_next_header(m, &off, &f), -ENOENT);
	assert_int_equal(message_find_header(m, "Subject", 0, &f), -ENOENT);
	assert_int_equal(message_remove_header(m, "Subject"), 0);
	c = message_clone(m, NULL);
	assert_non_null(c);
	assert_null(c->recipient);
	assert_int_equal(c->data.len, 0);
	assert_int_equal(message_set_header(c, "Subject", "s"), 0);
	assert_string_equal(c->data.data, "Subject: s\r\n");
	message_free(c);
	message_free(m);
}

static void
test_invalid_header_names(void **state)
{
	static const char *const names[] = {"",		"Bad Name", "Bad:Name",		"Tab\tName",
					    "Nl\nName", "Del\x7f",  "\xc3\xa9t\xc3\xa9"};
	struct message *m = message_with("Subject: s\r\n\r\n");
	size_t i, len = m->data.len;

	for (i = 0; i < TERN_ARRAY_LEN(names); i++) {
		assert_int_equal(message_prepend_header(m, names[i], "v"), -EINVAL);
		assert_int_equal(message_set_header(m, names[i], "v"), -EINVAL);
	}
	assert_int_equal(m->data.len, len);
	assert_int_equal(message_set_header(m, "X-Ok_1.2", "v"), 0);
	message_free(m);
}

static void
test_meta(void **state)
{
	struct message *m = message_new("", NULL);
	const char name[] = "\"caf\\u00e9 \\\"x\\\"\"";
	const struct meta_entry *e;
	struct buf s;

	buf_init(&s);
	assert_null(message_get_meta(m, "k"));
	assert_int_equal(message_set_meta(m, "k", "1", 1), 0);
	assert_int_equal(message_set_meta(m, "name", name, strlen(name)), 0);
	e = message_get_meta(m, "k");
	assert_non_null(e);
	assert_string_equal(e->json, "1");
	assert_int_equal(message_set_meta(m, "k", "[1,2]xyz", 5), 0); /* len counts, not NUL */
	e = message_get_meta(m, "k");
	assert_string_equal(e->json, "[1,2]");
	assert_int_equal(e->json_len, 5);
	assert_int_equal(m->n_meta, 2);
	assert_int_equal(message_meta_string(m, "name", &s), 0);
	assert_string_equal(s.data, "caf\xc3\xa9 \"x\"");
	buf_reset(&s);
	assert_int_equal(message_meta_string(m, "k", &s), -ENOENT);
	assert_int_equal(message_meta_string(m, "absent", &s), -ENOENT);
	assert_int_equal(s.len, 0);
	buf_deinit(&s);
	message_free(m);
}

static void
test_many_meta_entries(void **state)
{
	struct message *m = message_new("", "r@d");
	char key[16], val[16];
	int i;

	for (i = 0; i < 50; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		snprintf(val, sizeof(val), "%d", i);
		assert_int_equal(message_set_meta(m, key, val, strlen(val)), 0);
	}
	assert_int_equal(m->n_meta, 50);
	assert_string_equal(message_get_meta(m, "k37")->json, "37");
	message_free(m);
}

static void
expect_queue(struct message *m, const char *want)
{
	struct buf q;

	buf_init(&q);
	assert_int_equal(message_queue_name(m, &q), 0);
	assert_string_equal(q.data ? q.data : "", want);
	buf_deinit(&q);
}

static void
test_queue_name(void **state)
{
	struct message *m = message_new("s@x", "User@Mail.Example.COM");

	expect_queue(m, "mail.example.com");
	message_set_meta(m, "tenant", "\"acme\"", 6);
	expect_queue(m, "acme@mail.example.com");
	message_set_meta(m, "campaign", "\"spring\"", 8);
	expect_queue(m, "spring:acme@mail.example.com");
	message_set_meta(m, "tenant", "42", 2); /* not a string: ignored */
	expect_queue(m, "spring:mail.example.com");
	message_set_meta(m, "queue", "\"Special\"", 9);
	expect_queue(m, "Special");
	message_free(m);

	m = message_new("", "a@b@Two.Example"); /* the domain follows the last '@' */
	expect_queue(m, "two.example");
	message_free(m);
}

/* Encode, check it is JSON with the documented members, decode into a fresh message. */
static struct message *
round_trip(const struct message *m, struct buf *enc)
{
	struct message *out = message_new("placeholder", "placeholder");
	struct json_span obj, v;
	struct tern_err err;

	assert_int_equal(message_encode_spool_meta(m, enc), 0);
	assert_int_equal(json_parse_span(enc->data, enc->len, &obj, &err), 0);
	assert_int_equal(obj.type, JSON_OBJECT);
	assert_int_equal(json_object_get(&obj, "size", &v), 0);
	assert_int_equal(json_object_get(&obj, "queue", &v), 0);
	assert_int_equal(message_decode_spool_meta(out, enc->data, enc->len, &err), 0);
	return out;
}

static void
test_spool_meta_round_trip(void **state)
{
	struct message *m = message_new("\"odd\\ \xc3\xa9\"@example.org", "r@EXAMPLE.net");
	struct message *d;
	struct buf enc;

	buf_init(&enc);
	m->created = 1700000000.25;
	m->attempts = 7;
	m->due = 1700000300.5;
	buf_append_str(&m->data, "Subject: x\r\n\r\nhi\r\n");
	message_set_meta(m, "campaign", "\"c1\"", 4);
	message_set_meta(m, "obj", "{\"a\":[1,2,{\"b\":null}],\"s\":\"\\n\"}", 31);
	message_set_meta(m, "n", "-1.5e3", 6);
	d = round_trip(m, &enc);
	assert_non_null(strstr(enc.data, "\"queue\":\"c1:example.net\""));
	assert_non_null(strstr(enc.data, "\"size\":18"));
	assert_string_equal(d->sender, m->sender);
	assert_string_equal(d->recipient, "r@EXAMPLE.net");
	assert_true(d->created == m->created);
	assert_int_equal(d->attempts, 7);
	/* The data is not loaded, yet the size is known from the metadata. */
	assert_int_equal(d->data.len, 0);
	assert_int_equal(message_size(d), 18);
	assert_int_equal(message_size(m), 18);
	assert_true(d->due == m->due);
	assert_int_equal(d->n_meta, 3);
	assert_string_equal(message_get_meta(d, "campaign")->json, "\"c1\"");
	assert_string_equal(message_get_meta(d, "obj")->json, message_get_meta(m, "obj")->json);
	assert_string_equal(message_get_meta(d, "n")->json, "-1.5e3");
	buf_deinit(&enc);
	message_free(d);
	message_free(m);
}

static void
test_spool_meta_null_sender_no_meta(void **state)
{
	struct message *m = message_new("", "r@d");
	struct message *d;
	struct buf enc;

	buf_init(&enc);
	d = round_trip(m, &enc);
	assert_string_equal(d->sender, "");
	assert_int_equal(d->n_meta, 0);
	assert_int_equal(d->attempts, 0);
	buf_deinit(&enc);
	message_free(d);
	message_free(m);
}

static void
test_spool_meta_rejects_malformed(void **state)
{
	static const char *const bad[] = {
	    "",
	    "not json",
	    "[]",
	    "{\"sender\":\"a\",\"recipient\":\"b\",\"created\":1",
	    "{\"recipient\":\"b\",\"created\":1}",
	    "{\"sender\":\"a\",\"created\":1}",
	    "{\"sender\":\"a\",\"recipient\":\"b\"}",
	    "{\"sender\":1,\"recipient\":\"b\",\"created\":1}",
	    "{\"sender\":\"a\",\"recipient\":null,\"created\":1}",
	    "{\"sender\":\"a\",\"recipient\":\"b\",\"created\":\"1\"}",
	    "{\"sender\":\"a\",\"recipient\":\"b\",\"created\":1,\"meta\":{\"k\":}}",
	    "{\"sender\":\"a\\ud800\",\"recipient\":\"b\",\"created\":1}",
	    "{\"sender\":\"a\",\"recipient\":\"b\",\"created\":1} trailing",
	    /* Regression: numbers out of their integer's range were cast (undefined). */
	    "{\"sender\":\"a\",\"recipient\":\"b\",\"created\":1,\"size\":1e300}",
	    "{\"sender\":\"a\",\"recipient\":\"b\",\"created\":1,\"attempts\":-5}",
	    "{\"sender\":\"a\",\"recipient\":\"b\",\"created\":1,\"attempts\":65536}",
	    "{\"sender\":\"a\",\"recipient\":\"b\",\"created\":-1}",
	    "{\"sender\":\"a\",\"recipient\":\"b\",\"created\":1e10}",
	};
	struct tern_err err;
	size_t i;

	for (i = 0; i < TERN_ARRAY_LEN(bad); i++) {
		struct message *m = message_new("", NULL);

		tern_err_clear(&err);
		assert_int_equal(message_decode_spool_meta(m, bad[i], strlen(bad[i]), &err),
				 -EINVAL);
		assert_string_equal(err.msg, "malformed spool metadata");
		message_free(m);
	}
}

static void
test_clone(void **state)
{
	struct message *m = message_with("Subject: x\r\n\r\nbody\r\n");
	struct message *c;

	spool_make_id(&m->id, 1, 2);
	m->created = 123.5;
	message_set_meta(m, "k", "\"v\"", 3);
	c = message_clone(m, "other@example.com");
	assert_non_null(c);
	assert_string_equal(c->sender, m->sender);
	assert_string_equal(c->recipient, "other@example.com");
	assert_string_equal(m->recipient, "to@example.com");
	assert_true(c->created == 123.5);
	assert_memory_not_equal(&c->id, &m->id, sizeof(m->id));
	assert_int_equal(c->data.len, m->data.len);
	assert_string_equal(c->data.data, m->data.data);
	assert_ptr_not_equal(c->data.data, m->data.data);
	assert_int_equal(c->n_meta, 1);
	assert_string_equal(message_get_meta(c, "k")->json, "\"v\"");
	/* The copies are independent. */
	message_set_header(c, "Subject", "changed");
	message_set_meta(c, "k", "1", 1);
	assert_string_equal(header_value(m, "Subject", 0), "x");
	assert_string_equal(message_get_meta(m, "k")->json, "\"v\"");
	message_free(m);
	message_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_header_len),
	    cmocka_unit_test(test_header_walk_and_find),
	    cmocka_unit_test(test_header_without_blank_line),
	    cmocka_unit_test(test_prepend),
	    cmocka_unit_test(test_set_replaces_first_only),
	    cmocka_unit_test(test_remove_all),
	    cmocka_unit_test(test_values_with_line_breaks_are_folded),
	    cmocka_unit_test(test_headers_on_empty_data),
	    cmocka_unit_test(test_invalid_header_names),
	    cmocka_unit_test(test_meta),
	    cmocka_unit_test(test_many_meta_entries),
	    cmocka_unit_test(test_queue_name),
	    cmocka_unit_test(test_spool_meta_round_trip),
	    cmocka_unit_test(test_spool_meta_null_sender_no_meta),
	    cmocka_unit_test(test_spool_meta_rejects_malformed),
	    cmocka_unit_test(test_clone),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
