// SPDX-License-Identifier: MIT
/*
 * DKIM: canonicalisation against RFC 6376 3.4.5 and fixed cases, header
 * selection, the generated DKIM-Signature field, signers' errors and the key
 * cache. Verification by real verifiers is tests/integration/test_dkim_verify.py.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "tern/dkim.h"

static char tmpdir[] = "/tmp/tern-test-dkim-XXXXXX";
static char rsa_path[128], ed_path[128];

static void
buf_sink(void *arg, const void *p, size_t n)
{
	assert_int_equal(buf_append(arg, p, n), 0);
}

/* Canonical body, fed in pieces of step bytes (0: all at once). */
static char *
canon_body(enum dkim_canon canon, const char *body, size_t step, struct buf *out)
{
	struct dkim_body b;
	size_t off, n, len = strlen(body);

	buf_reset(out);
	buf_append(out, "", 0);
	dkim_body_init(&b, canon, buf_sink, out);
	for (off = 0; off < len; off += n) {
		n = step && len - off > step ? step : len - off;
		dkim_body_update(&b, body + off, n);
	}
	dkim_body_final(&b);
	assert_int_equal(b.length, out->len);
	return out->data;
}

/* The same canonical body whole, byte by byte and in 7-byte pieces. */
static void
check_body(enum dkim_canon canon, const char *body, const char *want)
{
	static const size_t steps[] = {0, 1, 7};
	struct buf out;
	size_t i;

	buf_init(&out);
	for (i = 0; i < TERN_ARRAY_LEN(steps); i++)
		assert_string_equal(canon_body(canon, body, steps[i], &out), want);
	buf_deinit(&out);
}

/* All header fields of msg canonicalised. */
static void
check_headers(enum dkim_canon canon, const char *msg, const char *want, const char *want_body)
{
	struct dkim_hdrs h;
	struct buf out;
	size_t i;

	buf_init(&out);
	assert_int_equal(dkim_hdrs_parse(&h, msg, strlen(msg), NULL), 0);
	for (i = 0; i < h.n; i++)
		assert_int_equal(dkim_canon_header(canon, msg + h.v[i].off, h.v[i].len, true, &out),
				 0);
	assert_string_equal(out.data ? out.data : "", want);
	assert_string_equal(msg + h.body_off, want_body);
	dkim_hdrs_deinit(&h);
	buf_deinit(&out);
}

static const char rfc_msg[] = "A: X\r\nB : Y\t\r\n\tZ  \r\n\r\n C \r\nD \t E\r\n\r\n\r\n";

static void
test_rfc6376_example(void **state)
{
	const char *body = strstr(rfc_msg, "\r\n\r\n") + 4;

	check_headers(DKIM_CANON_RELAXED, rfc_msg, "a:X\r\nb:Y Z\r\n", body);
	check_body(DKIM_CANON_RELAXED, body, " C\r\nD E\r\n");
	check_headers(DKIM_CANON_SIMPLE, rfc_msg, "A: X\r\nB : Y\t\r\n\tZ  \r\n", body);
	check_body(DKIM_CANON_SIMPLE, body, " C \r\nD \t E\r\n");
}

static void
test_body_edges(void **state)
{
	/* empty body: simple is one CRLF, relaxed is empty (RFC 6376 errata 1384) */
	check_body(DKIM_CANON_SIMPLE, "", "\r\n");
	check_body(DKIM_CANON_RELAXED, "", "");
	check_body(DKIM_CANON_SIMPLE, "\r\n\r\n\r\n", "\r\n");
	check_body(DKIM_CANON_RELAXED, "\r\n \r\n\t\r\n", "");
	/* no final CRLF */
	check_body(DKIM_CANON_SIMPLE, "abc", "abc\r\n");
	check_body(DKIM_CANON_RELAXED, "abc  ", "abc\r\n");
	/* trailing WSP and WSP-only lines */
	check_body(DKIM_CANON_RELAXED, "a  \t\r\n  \r\nb\r\n", "a\r\n\r\nb\r\n");
	check_body(DKIM_CANON_SIMPLE, "a  \t\r\n  \r\nb\r\n", "a  \t\r\n  \r\nb\r\n");
	check_body(DKIM_CANON_SIMPLE, "a\r\n \r\n\r\n", "a\r\n \r\n");
	check_body(DKIM_CANON_RELAXED, "a\r\n \r\n\r\n", "a\r\n");
	/* empty lines in the middle stay */
	check_body(DKIM_CANON_RELAXED, "a\r\n\r\n\r\nb", "a\r\n\r\n\r\nb\r\n");
	/* bare CR and LF are content */
	check_body(DKIM_CANON_SIMPLE, "a\rb\nc\r\n", "a\rb\nc\r\n");
	check_body(DKIM_CANON_RELAXED, "a \r b\r", "a \r b\r\r\n");
	/* 8-bit bytes pass through */
	check_body(DKIM_CANON_RELAXED, "gr\xc3\xbc\xc3\x9f  dich\r\n",
		   "gr\xc3\xbc\xc3\x9f dich\r\n");
}

/* Long lines cross the staging buffer and are passed straight through. */
static void
test_body_long_lines(void **state)
{
	struct buf in, want;
	size_t i;

	buf_init(&in);
	buf_init(&want);
	for (i = 0; i < 3000; i++) {
		buf_append_str(&in, "word \t  ");
		buf_append_str(&want, i ? " word" : "word");
	}
	buf_append_str(&in, "\r\n\r\n");
	buf_append_str(&want, "\r\n");
	check_body(DKIM_CANON_RELAXED, in.data, want.data);
	buf_reset(&want);
	buf_append(&want, in.data, in.len - 2); /* simple drops only the trailing empty line */
	check_body(DKIM_CANON_SIMPLE, in.data, want.data);
	buf_deinit(&in);
	buf_deinit(&want);
}

static void
test_header_folding(void **state)
{
	check_headers(
	    DKIM_CANON_RELAXED,
	    "Subject:   hello\r\n  world \t\r\n\tagain\r\nX-Empty:\r\nTo :\r\n b\r\n\r\nbody",
	    "subject:hello world again\r\nx-empty:\r\nto:b\r\n", "body");
	check_headers(DKIM_CANON_RELAXED, "Subject: =?UTF-8?Q?x?= \xc3\xa9t\xc3\xa9\r\n\r\n",
		      "subject:=?UTF-8?Q?x?= \xc3\xa9t\xc3\xa9\r\n", "");
	/* no empty line: all header, no body */
	check_headers(DKIM_CANON_SIMPLE, "A: 1\r\nB: 2", "A: 1\r\nB: 2\r\n", "");
}

static void
test_header_parse_errors(void **state)
{
	static const char *bad[] = {"no colon here\r\n\r\n", " A: leading fold\r\n\r\n",
				    "From foo Mon 12:00\r\n\r\n", ": empty name\r\n\r\n"};
	struct tern_err err = {0};
	struct dkim_hdrs h;
	size_t i;

	for (i = 0; i < TERN_ARRAY_LEN(bad); i++) {
		assert_int_equal(dkim_hdrs_parse(&h, bad[i], strlen(bad[i]), &err), -EINVAL);
		assert_non_null(strstr(err.msg, "malformed header field"));
		dkim_hdrs_deinit(&h);
	}
}

/* RFC 6376 5.4.2: repeated fields are taken from the bottom up. */
static void
test_header_bottom_up(void **state)
{
	const char *msg = "Received: 1\r\nFrom: a\r\nreceived: 2\r\nRECEIVED: 3\r\n\r\n";
	const struct dkim_hdr *f;
	struct dkim_hdrs h;

	assert_int_equal(dkim_hdrs_parse(&h, msg, strlen(msg), NULL), 0);
	assert_int_equal(dkim_hdrs_count(&h, msg, "Received"), 3);
	f = dkim_hdrs_find(&h, msg, "received", 0);
	assert_memory_equal(msg + f->off, "RECEIVED: 3", f->len);
	f = dkim_hdrs_find(&h, msg, "Received", 2);
	assert_memory_equal(msg + f->off, "Received: 1", f->len);
	assert_null(dkim_hdrs_find(&h, msg, "Received", 3));
	dkim_hdrs_deinit(&h);
}

/* More fields than fit inline. */
static void
test_header_many(void **state)
{
	struct dkim_hdrs h;
	struct buf msg;
	size_t i;

	buf_init(&msg);
	for (i = 0; i < 500; i++)
		buf_printf(&msg, "X-N: %zu\r\n", i);
	buf_append_str(&msg, "\r\nbody");
	assert_int_equal(dkim_hdrs_parse(&h, msg.data, msg.len, NULL), 0);
	assert_int_equal(h.n, 500);
	assert_memory_equal(msg.data + dkim_hdrs_find(&h, msg.data, "x-n", 0)->off, "X-N: 499", 8);
	dkim_hdrs_deinit(&h);
	buf_deinit(&msg);
}

static void
write_key(const char *path, EVP_PKEY *pkey)
{
	char tmp[160];
	FILE *fp;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fp = fopen(tmp, "w");
	assert_non_null(fp);
	assert_int_equal(PEM_write_PrivateKey(fp, pkey, NULL, NULL, 0, NULL, NULL), 1);
	fclose(fp);
	assert_int_equal(rename(tmp, path), 0);
	EVP_PKEY_free(pkey);
}

static int
setup(void **state)
{
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(rsa_path, sizeof(rsa_path), "%s/rsa.key", tmpdir);
	snprintf(ed_path, sizeof(ed_path), "%s/ed.key", tmpdir);
	write_key(rsa_path, EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048));
	write_key(ed_path, EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"));
	return 0;
}

static int
teardown(void **state)
{
	char cmd[200];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd);
}

static struct dkim_signer *
make_signer(enum dkim_algo algo, const char *const *headers, size_t n, bool over_sign)
{
	struct dkim_signer_config cfg;
	struct tern_err err = {0};
	struct dkim_signer *s;

	dkim_signer_config_init(&cfg);
	cfg.domain = "example.com";
	cfg.selector = "sel";
	cfg.algo = algo;
	cfg.key_path = algo == DKIM_ALGO_RSA_SHA256 ? rsa_path : ed_path;
	cfg.headers = headers;
	cfg.n_headers = n;
	cfg.over_sign = over_sign;
	s = dkim_signer_new(&cfg, &err);
	if (s == NULL)
		fail_msg("%s", err.msg);
	return s;
}

/* The value of tag in a signature field, unfolded. */
static char *
tag_value(const char *sig, const char *tag, char *out, size_t size)
{
	char want[16];
	const char *p;
	size_t n = 0;

	snprintf(want, sizeof(want), " %s=", tag);
	for (p = sig;
	     (p = strpbrk(p, " \t")) != NULL && strncmp(p + 1, want + 1, strlen(want) - 1);)
		p++;
	assert_non_null(p);
	for (p += strlen(want); *p && *p != ';' && n + 1 < size; p++)
		if (*p != '\r' && *p != '\n' && *p != '\t' && *p != ' ')
			out[n++] = *p;
	out[n] = '\0';
	return out;
}

static const char msg1[] = "From: a@example.com\r\nSubject: s\r\nX: 1\r\n\r\nbody\r\n";

static void
test_over_sign(void **state)
{
	static const char *const names[] = {"From", "Subject", "To"};
	struct tern_err err = {0};
	struct dkim_signer *s;
	struct buf out;
	char v[256];

	buf_init(&out);
	s = make_signer(DKIM_ALGO_ED25519_SHA256, names, 3, true);
	assert_int_equal(dkim_sign(s, msg1, strlen(msg1), 1700000000, &out, &err), 0);
	assert_string_equal(tag_value(out.data, "h", v, sizeof(v)), "From:From:Subject:Subject:To");
	dkim_signer_unref(s);
	buf_reset(&out);
	s = make_signer(DKIM_ALGO_ED25519_SHA256, names, 3, false);
	assert_int_equal(dkim_sign(s, msg1, strlen(msg1), 1700000000, &out, &err), 0);
	assert_string_equal(tag_value(out.data, "h", v, sizeof(v)), "From:Subject");
	dkim_signer_unref(s);
	buf_deinit(&out);
}

static void
check_line_lengths(const char *sig)
{
	const char *p, *nl;

	for (p = sig; (nl = strstr(p, "\r\n")) != NULL; p = nl + 2)
		assert_true(nl - p <= 78);
	assert_string_equal(p, "");
}

static void
test_tags(void **state)
{
	struct dkim_signer_config cfg;
	struct tern_err err = {0};
	struct dkim_signer *s;
	struct buf out;
	char v[512];

	dkim_signer_config_init(&cfg);
	cfg.domain = "example.com";
	cfg.selector = "s2024";
	cfg.key_path = rsa_path;
	cfg.header_canon = DKIM_CANON_SIMPLE;
	cfg.expiration = 3600;
	cfg.identity = "bounces@mail.example.com";
	cfg.body_length = true;
	s = dkim_signer_new(&cfg, &err);
	assert_non_null(s);
	buf_init(&out);
	assert_int_equal(dkim_sign(s, msg1, strlen(msg1), 1700000000.7, &out, &err), 0);
	assert_memory_equal(out.data, "DKIM-Signature: v=1; a=rsa-sha256; c=simple/relaxed; ", 53);
	assert_string_equal(tag_value(out.data, "d", v, sizeof(v)), "example.com");
	assert_string_equal(tag_value(out.data, "s", v, sizeof(v)), "s2024");
	assert_string_equal(tag_value(out.data, "t", v, sizeof(v)), "1700000000");
	assert_string_equal(tag_value(out.data, "x", v, sizeof(v)), "1700003600");
	assert_string_equal(tag_value(out.data, "i", v, sizeof(v)), "bounces@mail.example.com");
	assert_string_equal(tag_value(out.data, "l", v, sizeof(v)), "6");
	/* sha256("body\r\n") */
	assert_string_equal(tag_value(out.data, "bh", v, sizeof(v)),
			    "Ck5SoRNWUpSR4X0COv7R5ub2pUTtl6xz4dTFz++ji4M=");
	assert_int_equal(strlen(tag_value(out.data, "b", v, sizeof(v))), 344); /* 2048 bits */
	check_line_lengths(out.data);
	assert_null(strstr(out.data, "\r\n\r\n"));
	dkim_signer_unref(s);
	buf_deinit(&out);
}

/* Ed25519 signatures are deterministic; a changed body changes bh= only. */
static void
test_ed25519_deterministic(void **state)
{
	struct dkim_signer *s = make_signer(DKIM_ALGO_ED25519_SHA256, NULL, 0, true);
	struct tern_err err = {0};
	struct buf a, b;
	char v[128];

	buf_init(&a);
	buf_init(&b);
	assert_int_equal(dkim_sign(s, msg1, strlen(msg1), 1700000000, &a, &err), 0);
	assert_int_equal(dkim_sign(s, msg1, strlen(msg1), 1700000000, &b, &err), 0);
	assert_string_equal(a.data, b.data);
	assert_int_equal(strlen(tag_value(a.data, "b", v, sizeof(v))), 88); /* 64 bytes */
	check_line_lengths(a.data);
	dkim_signer_unref(s);
	buf_deinit(&a);
	buf_deinit(&b);
}

static void
expect_signer_error(struct dkim_signer_config *cfg, const char *want)
{
	struct tern_err err = {0};

	assert_null(dkim_signer_new(cfg, &err));
	if (strstr(err.msg, want) == NULL)
		fail_msg("error '%s' lacks '%s'", err.msg, want);
}

static void
test_signer_errors(void **state)
{
	static const char *const no_from[] = {"Subject"};
	static const char *const twice[] = {"From", "from"};
	struct dkim_signer_config cfg;
	char bad[160];
	FILE *fp;

	snprintf(bad, sizeof(bad), "%s/garbage.key", tmpdir);
	fp = fopen(bad, "w");
	fputs("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n", fp);
	fclose(fp);
	dkim_signer_config_init(&cfg);
	cfg.domain = "example.com";
	cfg.selector = "s";
	cfg.key_path = "/nonexistent/k.key";
	expect_signer_error(&cfg, "/nonexistent/k.key: No such file");
	cfg.key_path = bad;
	expect_signer_error(&cfg, bad);
	cfg.key_path = ed_path;
	expect_signer_error(&cfg, "is not a key for rsa-sha256");
	cfg.algo = DKIM_ALGO_ED25519_SHA256;
	cfg.identity = "a@example.org";
	expect_signer_error(&cfg, "not within domain");
	cfg.identity = "a@notexample.com";
	expect_signer_error(&cfg, "not within domain");
	cfg.identity = NULL;
	cfg.headers = no_from;
	cfg.n_headers = 1;
	expect_signer_error(&cfg, "must include From");
	cfg.headers = twice;
	cfg.n_headers = 2;
	expect_signer_error(&cfg, "listed twice");
	cfg.headers = NULL;
	cfg.domain = "exa mple.com";
	expect_signer_error(&cfg, "bad domain");
}

static void
test_sign_errors(void **state)
{
	struct dkim_signer *s = make_signer(DKIM_ALGO_ED25519_SHA256, NULL, 0, true);
	const char *nofrom = "Subject: x\r\n\r\nbody\r\n", *broken = "From a\r\n\r\n";
	struct tern_err err = {0};
	struct buf out;

	buf_init(&out);
	assert_int_equal(dkim_sign(s, nofrom, strlen(nofrom), 1, &out, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "no From"));
	assert_int_equal(dkim_sign(s, broken, strlen(broken), 1, &out, &err), -EINVAL);
	assert_int_equal(out.len, 0);
	dkim_signer_unref(s);
	buf_deinit(&out);
}

static void
public_key(struct dkim_key *k, char *out, size_t size)
{
	struct buf b;

	buf_init(&b);
	assert_int_equal(dkim_key_public(k, &b), 0);
	snprintf(out, size, "%s", b.data);
	buf_deinit(&b);
}

/* Loaded once per path; a rewritten file is picked up after the check interval. */
static void
test_key_cache(void **state)
{
	char path[160], before[600], after[600];
	struct tern_err err = {0};
	struct dkim_key *k;

	snprintf(path, sizeof(path), "%s/rotating.key", tmpdir);
	write_key(path, EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"));
	k = dkim_key_load(path, &err);
	assert_non_null(k);
	assert_ptr_equal(dkim_key_load(path, &err), k);
	public_key(k, before, sizeof(before));
	assert_int_equal(strlen(before), 44);
	write_key(path, EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"));
	dkim_key_set_check_interval(3600);
	public_key(k, after, sizeof(after));
	assert_string_equal(before, after); /* not looked at within the interval */
	dkim_key_set_check_interval(0);
	public_key(k, after, sizeof(after));
	assert_string_not_equal(before, after);
	/* a broken rewrite keeps the last good key */
	strcpy(before, after);
	unlink(path);
	public_key(k, after, sizeof(after));
	assert_string_equal(before, after);
	dkim_key_set_check_interval(1);
	k = dkim_key_load(rsa_path, &err);
	assert_int_equal(dkim_key_algo(k), DKIM_ALGO_RSA_SHA256);
	public_key(k, after, sizeof(after));
	assert_int_equal(strlen(after), 392); /* SubjectPublicKeyInfo of RSA-2048 */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc6376_example),
	    cmocka_unit_test(test_body_edges),
	    cmocka_unit_test(test_body_long_lines),
	    cmocka_unit_test(test_header_folding),
	    cmocka_unit_test(test_header_parse_errors),
	    cmocka_unit_test(test_header_bottom_up),
	    cmocka_unit_test(test_header_many),
	    cmocka_unit_test(test_over_sign),
	    cmocka_unit_test(test_tags),
	    cmocka_unit_test(test_ed25519_deterministic),
	    cmocka_unit_test(test_signer_errors),
	    cmocka_unit_test(test_sign_errors),
	    cmocka_unit_test(test_key_cache),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
