// SPDX-License-Identifier: MIT
/* The pmta.conf parser: blocks, directives, comments, line numbers, and errors naming their line. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tern/pmta_conf.h"

static const char conf[] = "# comment\r\n"
			   "smtp-listener 0/0:25\n"
			   "<virtual-mta mta1>\n"
			   "  smtp-source-host 192.0.2.1  o1.example.com  \n"
			   "  <domain gmail.com>\n"
			   "    max-msg-rate 20/min\n"
			   "  </DOMAIN>\n"
			   "</virtual-mta>\n"
			   "\n"
			   "<domain *>\n"
			   "</domain>\n";

static void
test_tree(void **state)
{
	struct pmta_node root, *vmta, *dom;
	struct tern_err err;

	assert_int_equal(pmta_conf_parse(conf, strlen(conf), &root, &err), 0);
	assert_int_equal(root.n_children, 3);
	assert_string_equal(root.children[0]->name, "smtp-listener");
	assert_string_equal(root.children[0]->value, "0/0:25");
	assert_int_equal(root.children[0]->line, 2);
	vmta = root.children[1];
	assert_true(vmta->block);
	assert_string_equal(vmta->name, "virtual-mta");
	assert_string_equal(vmta->value, "mta1");
	assert_string_equal(vmta->children[0]->value, "192.0.2.1  o1.example.com");
	dom = vmta->children[1];
	assert_string_equal(dom->value, "gmail.com");
	assert_int_equal(dom->children[0]->line, 6);
	assert_string_equal(root.children[2]->value, "*");
	assert_int_equal(root.children[2]->n_children, 0);
	pmta_conf_deinit(&root);
}

static void
expect_error(const char *text, const char *msg)
{
	struct pmta_node root;
	struct tern_err err;

	assert_int_equal(pmta_conf_parse(text, strlen(text), &root, &err), -EINVAL);
	assert_string_equal(err.msg, msg);
	assert_int_equal(root.n_children, 0);
}

static void
test_errors(void **state)
{
	expect_error("<domain a>\nx 1\n</source>\n", "line 3: </source> closes <domain> opened at line 1");
	expect_error("\n<domain a>\n", "line 2: <domain> is never closed");
	expect_error("</domain>\n", "line 1: </domain> closes no open block");
	expect_error("<domain a\n", "line 1: a block line must end with '>'");
	expect_error("< domain>\n", "line 1: a block needs a kind, as in <domain example.com>");
	expect_error("a \xff\n", "line 1: not valid UTF-8");
	expect_error("<a>\n<a>\n<a>\n<a>\n<a>\n<a>\n<a>\n<a>\n<a>\n", "line 9: blocks nested more than 8 deep");
}

static void
test_json(void **state)
{
	struct pmta_node root;
	struct tern_err err;
	struct buf out;
	const char *text = "<domain \"q\">\nx a\\b\n</domain>\n";

	assert_int_equal(pmta_conf_parse(text, strlen(text), &root, &err), 0);
	buf_init(&out);
	assert_int_equal(pmta_conf_to_json(&root, &out), 0);
	assert_int_equal(buf_append_char(&out, '\0'), 0);
	assert_string_equal(out.data,
			    "{\"name\":\"\",\"value\":\"\",\"line\":0,\"block\":true,\"children\":["
			    "{\"name\":\"domain\",\"value\":\"\\\"q\\\"\",\"line\":1,\"block\":true,\"children\":["
			    "{\"name\":\"x\",\"value\":\"a\\\\b\",\"line\":2,\"block\":false}]}]}");
	buf_deinit(&out);
	pmta_conf_deinit(&root);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tree),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_json),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
