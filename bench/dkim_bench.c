// SPDX-License-Identifier: MIT
/*
 * dkim_bench: DKIM signatures per second of dkim_sign() on one core, for a
 * 4 KiB message, rsa-sha256 (2048-bit) and ed25519-sha256, relaxed/relaxed.
 * Compare with `openssl speed -seconds 3 rsa2048 ed25519` on the same box.
 *
 * Build and run (after `make`):
 *   cc -std=gnu11 -O2 -Iinclude -o build/rel/dkim_bench bench/dkim_bench.c build/rel/libtern.a \
 *      $(pkg-config --libs luajit libcares openssl rocksdb libzstd) -lev -lpthread -lm
 *   build/rel/dkim_bench [seconds per algorithm, default 3]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "tern/dkim.h"

static void
write_key(const char *path, EVP_PKEY *pkey)
{
	FILE *fp = fopen(path, "w");

	if (fp == NULL || PEM_write_PrivateKey(fp, pkey, NULL, NULL, 0, NULL, NULL) != 1) {
		perror(path);
		exit(1);
	}
	fclose(fp);
	EVP_PKEY_free(pkey);
}

/* A typical marketing message: a dozen header fields and text lines to 4 KiB. */
static void
make_message(struct buf *m)
{
	buf_append_str(m, "From: News <news@example.com>\r\nTo: someone@example.org\r\n"
			  "Subject: Our weekly letter\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
			  "Message-ID: <1234567890@example.com>\r\nMIME-Version: 1.0\r\n"
			  "Content-Type: text/plain; charset=utf-8\r\n"
			  "List-Unsubscribe: <https://example.com/u/123>\r\n"
			  "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
			  "Feedback-ID: c1:tenant:esp\r\n\r\n");
	while (m->len < 4096)
		buf_append_str(m, "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do  \r\n");
}

static void
run(const char *name, enum dkim_algo algo, const char *key, const struct buf *msg, double secs)
{
	struct dkim_signer_config cfg;
	struct tern_err err = {0};
	struct dkim_signer *s;
	struct buf out;
	double start, now;
	long n = 0;

	dkim_signer_config_init(&cfg);
	cfg.domain = "example.com";
	cfg.selector = "bench";
	cfg.key_path = key;
	cfg.algo = algo;
	s = dkim_signer_new(&cfg, &err);
	if (s == NULL) {
		fprintf(stderr, "%s\n", err.msg);
		exit(1);
	}
	buf_init(&out);
	start = util_now();
	do {
		buf_reset(&out);
		if (dkim_sign(s, msg->data, msg->len, 1700000000, &out, &err) < 0) {
			fprintf(stderr, "%s\n", err.msg);
			exit(1);
		}
		n++;
		now = util_now();
	} while (now - start < secs);
	printf("%-16s %9.0f signatures/s (%ld in %.2f s, %zu-byte message)\n", name,
	       n / (now - start), n, now - start, msg->len);
	buf_deinit(&out);
	dkim_signer_unref(s);
}

int
main(int argc, char **argv)
{
	char dir[] = "/tmp/dkim-bench-XXXXXX", rsa[64], ed[64];
	double secs = argc > 1 ? atof(argv[1]) : 3;
	struct buf msg;

	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(rsa, sizeof(rsa), "%s/rsa.key", dir);
	snprintf(ed, sizeof(ed), "%s/ed.key", dir);
	write_key(rsa, EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048));
	write_key(ed, EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"));
	buf_init(&msg);
	make_message(&msg);
	run("rsa-sha256", DKIM_ALGO_RSA_SHA256, rsa, &msg, secs);
	run("ed25519-sha256", DKIM_ALGO_ED25519_SHA256, ed, &msg, secs);
	unlink(rsa);
	unlink(ed);
	rmdir(dir);
	buf_deinit(&msg);
	return 0;
}
