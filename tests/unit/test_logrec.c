// SPDX-License-Identifier: MIT
/*
 * Outcome records: logrec_format() emits one valid JSON object with every
 * schema field present (null when absent), escapes strings, filters meta by
 * the configured keys; logrec_write() lands the same line in the log files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tern/json.h"
#include "tern/logrec.h"
#include "tern/message.h"

#include "support.h"

static const char *const schema[] = {
    "type",	 "id",		"sender",	 "recipient",	   "queue",
    "site",	 "egress_pool", "egress_source", "source_address", "peer_address",
    "listener",	 "response",	"num_attempts",	 "size",	   "tls",
    "timestamp", "created",	"meta",		 "nodeid",	   "policy_revision",
};

struct fixture {
	char dir[64];
	struct message *msg;
	struct buf out;
	struct json_span rec;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/test_logrec.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	f->msg = message_new("sender@example.org", "rcpt@example.com");
	buf_append_str(&f->msg->data, "Subject: x\r\n\r\nbody\r\n");
	f->msg->created = 1700000000.123;
	spool_make_id(&f->msg->id, 0, 0);
	buf_init(&f->out);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	logrec_close();
	support_rm_rf(f->dir);
	message_free(f->msg);
	buf_deinit(&f->out);
	free(f);
	return 0;
}

static void
open_records(struct fixture *f, char **keys, size_t n, bool all)
{
	struct logrec_config cfg = {
	    .file = {.dir = f->dir}, .meta_keys = keys, .n_meta_keys = n, .meta_all = all};
	struct tern_err err;

	assert_int_equal(logrec_open(&cfg, &err), 0);
}

/* Format r, check it is one JSON object on one line, and keep its span in f->rec. */
static void
format(struct fixture *f, const struct logrec *r)
{
	struct tern_err err;

	buf_reset(&f->out);
	assert_int_equal(logrec_format(r, &f->out), 0);
	assert_null(memchr(f->out.data, '\n', f->out.len));
	assert_int_equal(json_validate(f->out.data, f->out.len, &err), 0);
	assert_int_equal(json_parse_span(f->out.data, f->out.len, &f->rec, &err), 0);
	assert_int_equal(f->rec.type, JSON_OBJECT);
}

static struct json_span
field(const struct fixture *f, const struct json_span *obj, const char *key)
{
	struct json_span v;

	assert_int_equal(json_object_get(obj ? obj : &f->rec, key, &v), 0);
	return v;
}

static void
has_string(const struct fixture *f, const struct json_span *obj, const char *key, const char *want)
{
	struct json_span v = field(f, obj, key);
	struct buf s;

	assert_int_equal(v.type, JSON_STRING);
	buf_init(&s);
	assert_int_equal(json_string_decode(&v, &s), 0);
	assert_string_equal(s.data ? s.data : "", want);
	buf_deinit(&s);
}

static void
has_number(const struct fixture *f, const struct json_span *obj, const char *key, double want)
{
	struct json_span v = field(f, obj, key);
	double d;

	assert_int_equal(v.type, JSON_NUMBER);
	assert_int_equal(json_number_value(&v, &d), 0);
	assert_true(d == want);
}

static void
has_null(const struct fixture *f, const struct json_span *obj, const char *key)
{
	assert_int_equal(field(f, obj, key).type, JSON_NULL);
}

static int
count_member(void *arg, const char *key, size_t keylen, const struct json_span *val)
{
	(*(int *)arg)++;
	return 0;
}

static int
count_members(const struct json_span *obj)
{
	int n = 0;

	assert_int_equal(json_object_foreach(obj, count_member, &n), 0);
	return n;
}

static void
test_minimal_record_has_every_field(void **state)
{
	struct fixture *f = *state;
	struct logrec r = {.type = "Reception", .msg = f->msg};
	char id[SPOOL_ID_HEX_LEN + 1];
	size_t i;

	format(f, &r);
	for (i = 0; i < TERN_ARRAY_LEN(schema); i++)
		field(f, NULL, schema[i]);
	assert_int_equal(count_members(&f->rec), TERN_ARRAY_LEN(schema));
	spool_id_to_hex(&f->msg->id, id);
	has_string(f, NULL, "type", "Reception");
	has_string(f, NULL, "id", id);
	has_string(f, NULL, "sender", "sender@example.org");
	has_string(f, NULL, "recipient", "rcpt@example.com");
	has_null(f, NULL, "queue");
	has_null(f, NULL, "site");
	has_null(f, NULL, "egress_pool");
	has_null(f, NULL, "egress_source");
	has_null(f, NULL, "source_address");
	has_null(f, NULL, "peer_address");
	has_null(f, NULL, "listener");
	has_null(f, NULL, "response");
	has_null(f, NULL, "tls");
	has_number(f, NULL, "num_attempts", 0);
	has_number(f, NULL, "size", (double)f->msg->data.len);
	has_string(f, NULL, "created", "2023-11-14T22:13:20.123Z");
	assert_int_equal(field(f, NULL, "timestamp").type, JSON_STRING);
	assert_int_equal(field(f, NULL, "meta").type, JSON_OBJECT);
	assert_int_equal(field(f, NULL, "nodeid").type, JSON_STRING);
	has_null(f, NULL, "policy_revision");
}

/* Every record names the revision set last, and null again after close. */
static void
test_policy_revision(void **state)
{
	struct fixture *f = *state;
	struct logrec r = {.type = "Delivery", .msg = f->msg};

	logrec_set_policy_revision("0123456789ab-dirty");
	format(f, &r);
	has_string(f, NULL, "policy_revision", "0123456789ab-dirty");
	logrec_set_policy_revision("sha256:00ff00ff00ff");
	format(f, &r);
	has_string(f, NULL, "policy_revision", "sha256:00ff00ff00ff");
	logrec_close();
	format(f, &r);
	has_null(f, NULL, "policy_revision");
}

static void
test_full_record(void **state)
{
	struct fixture *f = *state;
	struct logrec r = {.type = "Delivery",
			   .msg = f->msg,
			   .queue = "c:t@example.com",
			   .site = "mx1.example.com,mx2.example.com",
			   .egress_pool = "pool-a",
			   .egress_source = "src-1",
			   .source_address = "192.0.2.1:0",
			   .peer_address = "198.51.100.7:25",
			   .listener = "0.0.0.0:2525",
			   .response_code = 250,
			   .response_enhanced = "2.0.0",
			   .response_content = "OK queued as ABC",
			   .response_command = ".",
			   .num_attempts = 3,
			   .tls_version = "TLSv1.3",
			   .tls_cipher = "TLS_AES_256_GCM_SHA384"};
	struct json_span resp, tls;

	format(f, &r);
	has_string(f, NULL, "queue", "c:t@example.com");
	has_string(f, NULL, "site", "mx1.example.com,mx2.example.com");
	has_string(f, NULL, "egress_pool", "pool-a");
	has_string(f, NULL, "egress_source", "src-1");
	has_string(f, NULL, "source_address", "192.0.2.1:0");
	has_string(f, NULL, "peer_address", "198.51.100.7:25");
	has_string(f, NULL, "listener", "0.0.0.0:2525");
	has_number(f, NULL, "num_attempts", 3);
	resp = field(f, NULL, "response");
	assert_int_equal(resp.type, JSON_OBJECT);
	assert_int_equal(count_members(&resp), 4);
	has_number(f, &resp, "code", 250);
	has_string(f, &resp, "enhanced_code", "2.0.0");
	has_string(f, &resp, "content", "OK queued as ABC");
	has_string(f, &resp, "command", ".");
	tls = field(f, NULL, "tls");
	assert_int_equal(tls.type, JSON_OBJECT);
	assert_int_equal(count_members(&tls), 2);
	has_string(f, &tls, "version", "TLSv1.3");
	has_string(f, &tls, "cipher", "TLS_AES_256_GCM_SHA384");
}

static void
test_partial_response_and_tls(void **state)
{
	struct fixture *f = *state;
	struct logrec r = {.type = "TransientFailure",
			   .msg = f->msg,
			   .response_content = "connection refused",
			   .tls_version = "TLSv1.2"};
	struct json_span resp, tls;

	format(f, &r);
	resp = field(f, NULL, "response");
	assert_int_equal(resp.type, JSON_OBJECT);
	has_number(f, &resp, "code", 0);
	has_null(f, &resp, "enhanced_code");
	has_string(f, &resp, "content", "connection refused");
	has_null(f, &resp, "command");
	tls = field(f, NULL, "tls");
	has_string(f, &tls, "version", "TLSv1.2");
	has_null(f, &tls, "cipher");
}

static void
test_strings_escaped(void **state)
{
	struct fixture *f = *state;
	const char nasty[] = "a\"b\\c\r\n\td\x01\x1f \xc3\xa9\xe2\x82\xac";
	struct logrec r = {.type = "Bounce\"\n",
			   .msg = f->msg,
			   .queue = nasty,
			   .response_code = 550,
			   .response_content = nasty};
	struct message *m = message_new(nasty, "\"quoted\\local\"@example.com");

	m->created = 0;
	r.msg = m;
	format(f, &r);
	has_string(f, NULL, "type", "Bounce\"\n");
	has_string(f, NULL, "sender", nasty);
	has_string(f, NULL, "recipient", "\"quoted\\local\"@example.com");
	has_string(f, NULL, "queue", nasty);
	has_string(f, NULL, "created", "1970-01-01T00:00:00.000Z");
	message_free(m);
}

static void
test_null_recipient_and_empty_sender(void **state)
{
	struct fixture *f = *state;
	struct message *m = message_new("", NULL);
	struct logrec r = {.type = "Reception", .msg = m};

	format(f, &r);
	has_string(f, NULL, "sender", "");
	has_null(f, NULL, "recipient");
	has_number(f, NULL, "size", 0);
	/* A message loaded without its data reports the spooled size. */
	m->size = 1234;
	format(f, &r);
	has_number(f, NULL, "size", 1234);
	message_free(m);
}

static void
test_meta_all(void **state)
{
	struct fixture *f = *state;
	struct logrec r = {.type = "Reception", .msg = f->msg};
	struct json_span meta, v;
	char host[256] = "";

	message_set_meta(f->msg, "campaign", "\"spring\"", 8);
	message_set_meta(f->msg, "n", "[1,{\"x\":null}]", 14);
	open_records(f, NULL, 0, true);
	format(f, &r);
	meta = field(f, NULL, "meta");
	assert_int_equal(count_members(&meta), 2);
	has_string(f, &meta, "campaign", "spring");
	v = field(f, &meta, "n");
	assert_int_equal(v.type, JSON_ARRAY);
	assert_memory_equal(v.p, "[1,{\"x\":null}]", 14);
	gethostname(host, sizeof(host) - 1);
	has_string(f, NULL, "nodeid", host);
}

static void
test_meta_filtered_by_keys(void **state)
{
	struct fixture *f = *state;
	struct logrec r = {.type = "Reception", .msg = f->msg};
	char *keys[] = {"tenant", "absent"};
	struct json_span meta;

	message_set_meta(f->msg, "campaign", "\"spring\"", 8);
	message_set_meta(f->msg, "tenant", "\"acme\"", 6);
	message_set_meta(f->msg, "other", "1", 1);
	open_records(f, keys, 2, false);
	format(f, &r);
	meta = field(f, NULL, "meta");
	assert_int_equal(count_members(&meta), 1);
	has_string(f, &meta, "tenant", "acme");
}

static int
read_records(const char *dir, struct buf *out)
{
	struct dirent *e;
	DIR *d = opendir(dir);
	int files = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		char path[256], chunk[4096];
		size_t n;
		FILE *fp;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		fp = fopen(path, "r");
		assert_non_null(fp);
		while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
			buf_append(out, chunk, n);
		fclose(fp);
		files++;
	}
	closedir(d);
	return files;
}

static void
test_write_lands_in_file(void **state)
{
	struct fixture *f = *state;
	struct logrec r = {.type = "Delivery", .msg = f->msg, .num_attempts = 1};
	struct tern_err err;
	struct buf file;

	logrec_write(&r); /* not open yet: a no-op */
	open_records(f, NULL, 0, true);
	logrec_write(&r);
	r.type = "Bounce";
	logrec_write(&r);
	logrec_close();
	buf_init(&file);
	assert_int_equal(read_records(f->dir, &file), 1);
	assert_non_null(file.data);
	assert_int_equal(file.data[file.len - 1], '\n');
	assert_int_equal(json_validate(file.data, strchr(file.data, '\n') - file.data, &err), 0);
	assert_int_equal(strncmp(file.data, "{\"type\":\"Delivery\",", 19), 0);
	assert_non_null(strstr(file.data, "\n{\"type\":\"Bounce\","));
	assert_ptr_equal(strchr(strstr(file.data, "Bounce"), '\n'), file.data + file.len - 1);
	buf_deinit(&file);
}

/* OOB and Feedback records add "report" (nulls where the report said nothing); others do not. */
static void
test_report_records(void **state)
{
	struct fixture *f = *state;
	struct logrec_report rep = {.action = "failed", .ref = "verified", .original_id = "00ab",
				    .tenant = "acme", .campaign = "spring"};
	struct logrec r = {.type = "OOB", .msg = f->msg, .report = &rep, .response_code = 550,
			   .bounce_classification = "bad-mailbox"};
	struct json_span v;

	format(f, &r);
	has_string(f, NULL, "bounce_classification", "bad-mailbox");
	v = field(f, NULL, "report");
	has_string(f, &v, "action", "failed");
	has_string(f, &v, "ref", "verified");
	has_string(f, &v, "original_id", "00ab");
	has_string(f, &v, "tenant", "acme");
	has_null(f, &v, "feedback_type");
	has_null(f, &v, "original_message_id");
	r.type = "Feedback";
	rep = (struct logrec_report){.feedback_type = "abuse", .source_ip = "192.0.2.1"};
	format(f, &r);
	assert_int_equal(json_object_get(&f->rec, "bounce_classification", &v), -ENOENT);
	v = field(f, NULL, "report");
	has_null(f, &v, "action");
	has_string(f, &v, "feedback_type", "abuse");
	has_string(f, &v, "source_ip", "192.0.2.1");
	r.type = "Delivery";
	format(f, &r);
	assert_int_equal(json_object_get(&f->rec, "report", &v), -ENOENT);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_minimal_record_has_every_field, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_full_record, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_policy_revision, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_partial_response_and_tls, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_strings_escaped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_null_recipient_and_empty_sender, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_meta_all, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_meta_filtered_by_keys, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_write_lands_in_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_report_records, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
