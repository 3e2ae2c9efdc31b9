// SPDX-License-Identifier: MIT
/*
 * The inject API's pure half: `{{ name }}` templates, the MIME builder's
 * encodings, and the decoder's errors naming the field.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tern/inject.h"
#include "tern/mime_build.h"
#include "tern/template.h"

static const char *
lookup(void *arg, const char *name, size_t len)
{
	(void)arg;
	if (len == 4 && memcmp(name, "name", 4) == 0)
		return "<Ann>";
	return NULL;
}

static void
render_eq(const char *tpl, bool html, const char *want)
{
	struct buf out;

	buf_init(&out);
	assert_int_equal(template_render(tpl, lookup, NULL, html, &out), 0);
	assert_string_equal(out.data, want);
	buf_deinit(&out);
}

static void
test_template(void **state)
{
	render_eq("Hi {{ name }}!", false, "Hi <Ann>!");
	render_eq("Hi {{name}}{{name }}", false, "Hi <Ann><Ann>");
	render_eq("{{ name }}", true, "&lt;Ann&gt;");
	/* Unknown names render as nothing; anything that is not a plain tag is kept. */
	render_eq("a{{ other }}b", false, "ab");
	render_eq("{{ name | upper }} {% if %} {{ {{name}}", false,
		  "{{ name | upper }} {% if %} {{ <Ann>");
	render_eq("", false, "");
	render_eq("{{", false, "{{");
}

static void
build(const struct mime_message *m, struct buf *out)
{
	struct tern_err err;

	buf_init(out);
	assert_int_equal(mime_build(m, out, &err), 0);
}

static void
test_encoded_headers(void **state)
{
	struct mime_header h[] = {{"X-Line", "a\r\nBcc: evil@x.test"}};
	struct mime_message m = {
	    .from = {"Zoë", "a@b.test"},
	    .to = {"Plain \"Q\"", "c@d.test"},
	    .subject = "Grüße",
	    .headers = h,
	    .n_headers = 1,
	    .text_body = "x",
	    .message_id = "1@b.test",
	    .date = 0,
	};
	struct buf out;

	build(&m, &out);
	assert_non_null(strstr(out.data, "From: =?UTF-8?B?Wm/Dqw==?= <a@b.test>\r\n"));
	assert_non_null(strstr(out.data, "To: \"Plain \\\"Q\\\"\" <c@d.test>\r\n"));
	assert_non_null(strstr(out.data, "Subject: =?UTF-8?B?R3LDvMOfZQ==?=\r\n"));
	assert_null(strstr(out.data, "\r\nBcc:"));
	assert_non_null(strstr(out.data, "Date: Thu, 01 Jan 1970 00:00:00 +0000\r\n"));
	buf_deinit(&out);
}

static void
test_quoted_printable(void **state)
{
	char body[200];
	struct mime_message m = {
	    .from = {NULL, "a@b.test"}, .to = {NULL, "c@d.test"}, .message_id = "1@b.test"};
	struct buf out;
	const char *p;

	memset(body, 'x', sizeof(body));
	memcpy(body + 150, "= é \n", sizeof("= é \n")); /* with its NUL */
	m.text_body = body;
	build(&m, &out);
	p = strstr(out.data, "\r\n\r\n") + 4;
	/* Soft breaks keep lines within 76; '=', non-ASCII and a space before the end are encoded.
	 */
	assert_int_equal(strcspn(p, "\r"), 76);
	assert_non_null(strstr(p, "=3D =C3=A9=20\r\n"));
	assert_null(strstr(p, "\n\n"));
	buf_deinit(&out);
}

static void
test_multipart(void **state)
{
	struct mime_attachment a = {"\x00\x01\x02", 3, "application/x-test", "n.bin"};
	struct mime_message m = {.from = {NULL, "a@b.test"},
				 .to = {NULL, "c@d.test"},
				 .text_body = "t",
				 .html_body = "<p>h</p>",
				 .attachments = &a,
				 .n_attachments = 1,
				 .message_id = "1@b.test"};
	struct buf out;

	build(&m, &out);
	assert_non_null(strstr(out.data, "Content-Type: multipart/mixed; boundary=\"=_tern_mix\""));
	assert_non_null(strstr(out.data, "Content-Type: multipart/alternative"));
	assert_non_null(
	    strstr(out.data, "filename=\"n.bin\"\r\n\r\nAAEC\r\n\r\n--=_tern_mix--\r\n"));
	buf_deinit(&out);
}

static void
test_refused_parts(void **state)
{
	assert_false(mime_header_name_ok("Subject"));
	assert_false(mime_header_name_ok("X Bad"));
	assert_true(mime_header_name_ok("X-Campaign"));
	assert_false(mime_content_type_ok("text"));
	assert_false(mime_content_type_ok("text/plain; charset=x"));
	assert_true(mime_content_type_ok("application/pdf"));
	assert_false(mime_address_ok("a b@c"));
	assert_false(mime_address_ok("<a@b>"));
	assert_true(mime_address_ok("a@b.test"));
}

static void
decode_fails(const char *json, int code, const char *msg)
{
	struct inject_request r;
	struct tern_err err;

	assert_int_equal(inject_decode(json, strlen(json), &r, &err), -EINVAL);
	assert_int_equal(err.code, code);
	if (msg)
		assert_string_equal(err.msg, msg);
	inject_request_free(&r);
}

static void
test_decode_errors(void **state)
{
	decode_fails("{", 400, NULL);
	decode_fails("[1]", 422, "the body must be a JSON object");
	decode_fails("{\"envelope_sender\":\"a@b\",\"recipients\":[{\"email\":\"c@d\"}]}", 422,
		     "content: required");
	decode_fails("{\"envelope_sender\":\"a@b\",\"recipients\":[{\"email\":\"c@d\"},{}],"
		     "\"content\":\"x\"}",
		     422, "recipients[1].email: required");
	decode_fails("{\"envelope_sender\":\"a@b\",\"envelope_sender\":\"a@b\"}", 422,
		     "envelope_sender: given twice");
	decode_fails(
	    "{\"envelope_sender\":\"a@b\",\"recipients\":[{\"email\":\"c@d\"}],"
	    "\"content\":{\"from\":\"a@b\",\"attachments\":[{\"data\":\"%\",\"base64\":true}]}}",
	    422, "content.attachments[0].data: is not valid base64");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_template),	     cmocka_unit_test(test_encoded_headers),
	    cmocka_unit_test(test_quoted_printable), cmocka_unit_test(test_multipart),
	    cmocka_unit_test(test_refused_parts),    cmocka_unit_test(test_decode_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
