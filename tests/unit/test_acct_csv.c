// SPDX-License-Identifier: MIT
/*
 * Tests for core/acct_csv.c: RFC 4180 quoting, PowerMTA's header and record
 * types, the values of its columns from a record, CR/LF flattened so a line
 * stays one line, templates per record type, and template checking.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tern/acct_csv.h"
#include "tern/logrec.h"
#include "tern/message.h"

static const struct acct_context ctx = {
    .now = 1700000100.5, .nodeid = "node1", .policy_revision = "abc123"};

static struct message *
test_message(void)
{
	struct message *m = message_new("s@origin.test", "r@dest.test");

	buf_append_str(&m->data, "X-Job: a,\"b\"\r\nX-Folded: one\r\n two\r\nSubject: x\r\n\r\nbody\r\n");
	m->created = 1700000000.0;
	message_set_meta(m, "campaign", "\"c1\"", 4);
	message_set_meta(m, "n", "42", 2);
	return m;
}

static struct logrec
bounce_record(const struct message *m)
{
	return (struct logrec){.type = "Bounce",
			       .msg = m,
			       .queue = "dest.test",
			       .site = "mx.dest.test",
			       .egress_pool = "pool1",
			       .egress_source = "ip1",
			       .source_address = "192.0.2.1",
			       .peer_address = "[2001:db8::1]:25",
			       .response_code = 550,
			       .response_enhanced = "5.1.1",
			       .response_content = "no such user,\r\nreally",
			       .bounce_classification = "bad-mailbox"};
}

static void
csv_format(struct acct_format *f, const char *const *fields)
{
	size_t n;

	memset(f, 0, sizeof(*f));
	f->kind = ACCT_PMTA_CSV;
	for (n = 0; fields[n]; n++)
		;
	f->fields = calloc(n, sizeof(char *));
	for (f->n_fields = 0; f->n_fields < n; f->n_fields++)
		f->fields[f->n_fields] = strdup(fields[f->n_fields]);
	acct_select_letter(f, "d");
	acct_select_letter(f, "b");
}

static void
line_is(const struct acct_format *f, const struct logrec *r, const char *want)
{
	struct buf out;

	buf_init(&out);
	assert_int_equal(acct_format_line(f, r, &ctx, &out), 0);
	buf_append(&out, "", 1);
	assert_string_equal(out.data, want);
	buf_deinit(&out);
}

static void
test_quoting(void **state)
{
	struct buf out;

	buf_init(&out);
	acct_csv_append(&out, "plain", 5);
	buf_append_char(&out, '|');
	acct_csv_append(&out, "a,b", 3);
	buf_append_char(&out, '|');
	acct_csv_append(&out, "say \"hi\"", 8);
	buf_append_char(&out, '|');
	acct_csv_append(&out, "x\ny", 3);
	buf_append(&out, "", 1);
	assert_string_equal(out.data, "plain|\"a,b\"|\"say \"\"hi\"\"\"|\"x\ny\"");
	buf_deinit(&out);
}

static void
test_header_and_types(void **state)
{
	struct acct_format f;
	struct buf out;
	size_t n;

	csv_format(&f, acct_default_fields);
	buf_init(&out);
	acct_header(&f, &out);
	assert_string_equal(out.data,
			    "type,timeLogged,timeQueued,orig,rcpt,orcpt,dsnAction,dsnStatus,dsnDiag,"
			    "dsnMta,bounceCat,srcType,srcMta,dlvType,dlvSourceIp,dlvDestinationIp,"
			    "dlvEsmtpAvailable,dlvSize,vmta,jobId,envId,queue,vmtaPool");
	for (n = 0; acct_default_fields[n]; n++)
		assert_true(acct_field_known(acct_default_fields[n], strlen(acct_default_fields[n])));
	assert_false(acct_field_known("nope", 4));
	assert_true(acct_field_known("header_X-Anything", 17));
	assert_false(acct_field_known("header_", 7));
	/* b covers every final failure; t, rb, f, r exist; Suppressed has no PowerMTA type. */
	assert_true(f.types[acct_type_index("Bounce")]);
	assert_true(f.types[acct_type_index("Expiration")]);
	assert_true(f.types[acct_type_index("AdminBounce")]);
	assert_false(f.types[acct_type_index("TransientFailure")]);
	assert_int_equal(acct_select_letter(&f, "rb"), 0);
	assert_string_equal(acct_type_name(acct_type_index("OOB")), "OOB");
	assert_int_equal(acct_select_letter(&f, "x"), -EINVAL);
	assert_null(acct_type_letter(acct_type_index("Suppressed")));
	buf_deinit(&out);
	acct_format_deinit(&f);
}

static void
test_bounce_line(void **state)
{
	static const char *const fields[] = {
	    "timeLogged", "timeQueued", "dsnAction", "dsnStatus", "dsnDiag",  "dsnMta",
	    "bounceCat",  "dlvType",	"dlvSourceIp", "dlvDestinationIp", "vmta", "vmtaPool",
	    "jobId",      "header_X-Folded", "meta.n", "orcpt", NULL};
	struct message *m = test_message();
	struct logrec r = bounce_record(m);
	struct acct_format f;

	csv_format(&f, fields);
	line_is(&f, &r,
		"b,2023-11-14 22:15:00+0000,2023-11-14 22:13:20+0000,failed,5.1.1,"
		"\"smtp;550 5.1.1 no such user, really\",mx.dest.test (2001:db8::1),bad-mailbox,"
		"smtp,192.0.2.1,2001:db8::1,ip1,pool1,\"a,\"\"b\"\"\",one two,42,");
	r.type = "TransientFailure";
	{
		struct buf out;

		buf_init(&out);
		assert_int_equal(acct_format_line(&f, &r, &ctx, &out), TERN_DECLINED);
		buf_deinit(&out);
	}
	acct_format_deinit(&f);
	message_free(m);
}

static void
test_delivery_without_enhanced_code(void **state)
{
	static const char *const fields[] = {"dsnAction", "dsnStatus", "rcpt", "orig", "dlvSize",
					     "jobId", NULL};
	struct message *m = message_new("s@origin.test", "r@dest.test");
	struct logrec r = {.type = "Delivery", .msg = m, .response_code = 250,
			   .peer_address = "192.0.2.9:25"};
	struct acct_format f;

	message_set_meta(m, "campaign", "\"spring\"", 8);
	csv_format(&f, fields);
	line_is(&f, &r, "d,relayed,2.0.0,r@dest.test,s@origin.test,0,spring");
	acct_format_deinit(&f);
	message_free(m);
}

static void
test_template(void **state)
{
	struct message *m = test_message();
	struct logrec r = bounce_record(m);
	struct acct_format f = {.kind = ACCT_TEMPLATE};

	f.types[acct_type_index("Bounce")] = true;
	f.templates[acct_type_index("Bounce")] =
		strdup("{{ type }} {{id}} to={{ recipient }} cat={{ bounce_classification }} "
		       "code={{ response.code }} job={{ header_X-Job }} rev={{ policy_revision }} "
		       "{{ missing_is_nothing }}");
	line_is(&f, &r,
		"Bounce 00000000000000000000000000000000 to=r@dest.test cat=bad-mailbox code=550 "
		"job=a,\"b\" rev=abc123 ");
	r.type = "Delivery";
	{
		struct buf out;

		buf_init(&out);
		assert_int_equal(acct_format_line(&f, &r, &ctx, &out), TERN_DECLINED);
		buf_deinit(&out);
	}
	acct_format_deinit(&f);
	message_free(m);
}

static void
test_template_check(void **state)
{
	struct tern_err err;

	assert_int_equal(acct_template_check("{{ rcpt }},{{ meta.x }},{{ header_X-Y }}", &err), 0);
	assert_int_equal(acct_template_check("{{ rcpt }} {{ rcpnt }}", &err), -EINVAL);
	assert_string_equal(err.msg, "unknown field '{{ rcpnt }}' in template");
	assert_int_equal(acct_template_check("a\nb", &err), -EINVAL);
}

static void
test_copy(void **state)
{
	static const char *const fields[] = {"rcpt", NULL};
	struct acct_format f, g;

	csv_format(&f, fields);
	f.templates[0] = strdup("x");
	acct_format_copy(&g, &f);
	acct_format_deinit(&f);
	assert_int_equal(g.n_fields, 1);
	assert_string_equal(g.fields[0], "rcpt");
	assert_string_equal(g.templates[0], "x");
	assert_true(g.types[acct_type_index("Delivery")]);
	acct_format_deinit(&g);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quoting),
		cmocka_unit_test(test_header_and_types),
		cmocka_unit_test(test_bounce_line),
		cmocka_unit_test(test_delivery_without_enhanced_code),
		cmocka_unit_test(test_template),
		cmocka_unit_test(test_template_check),
		cmocka_unit_test(test_copy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
