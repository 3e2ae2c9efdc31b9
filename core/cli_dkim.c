// SPDX-License-Identifier: MIT
/*
 * `tern dkim`: make a DKIM key and the DNS record to publish for it, and sign
 * a message from stdin the way ternd would. Signing goes through the same
 * core/dkim.c signer, so the verifier tests exercise the real code.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "tern/cli.h"
#include "tern/dkim.h"
#include "tern/util.h"

#define CLI_TXT_CHUNK 255 /* a DNS character-string holds at most 255 bytes */

static int
usage(void)
{
	fprintf(
	    stderr,
	    "usage: tern dkim genkey --domain D --selector S [--algo rsa2048|ed25519] --out DIR\n"
	    "       tern dkim sign --domain D --selector S --key FILE [--algo rsa|ed25519]\n"
	    "                      [--canon relaxed|simple|HEADER/BODY] [--headers A:B:C]\n"
	    "                      [--no-over-sign] [--identity I] [--expiration DURATION]\n"
	    "                      [--body-length] < message > signed-message\n"
	    "genkey writes DIR/S.D.key (mode 0600, never overwritten) and prints the TXT record.\n"
	    "sign prepends a DKIM-Signature; LF line endings are turned into CRLF first.\n");
	return 2;
}

static int
fail(const char *fmt, const char *arg)
{
	fprintf(stderr, "tern dkim: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
	return 1;
}

/* ---- genkey ---- */

static EVP_PKEY *
genkey_make(const char *algo)
{
	if (strcmp(algo, "ed25519") == 0)
		return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (strcmp(algo, "rsa2048") == 0)
		return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	if (strcmp(algo, "rsa4096") == 0)
		return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)4096);
	return NULL;
}

/* O_EXCL: an existing key may be published already; never replace it. */
static int
genkey_write(EVP_PKEY *pkey, const char *path)
{
	FILE *fp;
	int fd, ok;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0 && errno == EEXIST)
		return fail("%s exists; refusing to overwrite it", path);
	if (fd < 0)
		return fail("%s: cannot create", path);
	fp = fdopen(fd, "w");
	ok = fp != NULL && PEM_write_PrivateKey(fp, pkey, NULL, NULL, 0, NULL, NULL) == 1;
	if (fp == NULL)
		close(fd);
	if (fp != NULL && fclose(fp) != 0)
		ok = 0;
	if (!ok) {
		unlink(path);
		return fail("%s: cannot write the key", path);
	}
	return 0;
}

static void
genkey_print_txt(const char *domain, const char *selector, const char *k, const char *p)
{
	struct buf rec;
	size_t off, n;

	buf_init(&rec);
	buf_printf(&rec, "v=DKIM1; k=%s; p=%s", k, p);
	printf("%s._domainkey.%s. IN TXT (", selector, domain);
	for (off = 0; off < rec.len; off += n) {
		n = rec.len - off < CLI_TXT_CHUNK ? rec.len - off : CLI_TXT_CHUNK;
		printf("%s\"%.*s\"", off ? "\n\t" : " ", (int)n, rec.data + off);
	}
	printf(" )\n");
	buf_deinit(&rec);
}

static int
genkey_run(const char *domain, const char *selector, const char *algo, const char *dir)
{
	struct tern_err err = {0};
	struct dkim_key *key;
	EVP_PKEY *pkey;
	struct buf path, pub;
	int rc;

	/* The key file itself is 0600; the directory is only created, as mkdir -p would. */
	rc = util_mkdir_p(dir);
	if (rc < 0) {
		errno = -rc;
		return fail("cannot create directory %s: %m", dir);
	}
	pkey = genkey_make(algo);
	if (pkey == NULL)
		return fail("cannot generate a %s key", algo);
	buf_init(&path);
	buf_init(&pub);
	buf_printf(&path, "%s/%s.%s.key", dir, selector, domain);
	rc = genkey_write(pkey, path.data);
	EVP_PKEY_free(pkey);
	if (rc == 0 &&
	    ((key = dkim_key_load(path.data, &err)) == NULL || dkim_key_public(key, &pub) < 0))
		rc = fail("%s", err.msg[0] ? err.msg : "cannot read the public key back");
	if (rc == 0)
		genkey_print_txt(domain, selector, strcmp(algo, "ed25519") == 0 ? "ed25519" : "rsa",
				 pub.data);
	buf_deinit(&path);
	buf_deinit(&pub);
	return rc;
}

static int
cmd_genkey(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"domain", required_argument, NULL, 'd'},
	    {"selector", required_argument, NULL, 's'},
	    {"algo", required_argument, NULL, 'a'},
	    {"out", required_argument, NULL, 'o'},
	    {NULL, 0, NULL, 0},
	};
	const char *domain = NULL, *selector = NULL, *algo = "rsa2048", *dir = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			domain = optarg;
			break;
		case 's':
			selector = optarg;
			break;
		case 'a':
			algo = optarg;
			break;
		case 'o':
			dir = optarg;
			break;
		default:
			return usage();
		}
	}
	if (optind != argc || !domain || !selector || !dir)
		return usage();
	if (strcmp(algo, "ed25519") && strcmp(algo, "rsa2048") && strcmp(algo, "rsa4096")) {
		fprintf(stderr, "tern dkim: --algo must be rsa2048, rsa4096 or ed25519\n");
		return usage();
	}
	return genkey_run(domain, selector, algo, dir);
}

/* ---- sign ---- */

struct sign_opts {
	struct dkim_signer_config cfg;
	char *headers_arg; /* --headers, split in place */
	const char *headers[64];
};

static int
parse_algo(const char *s, enum dkim_algo *algo)
{
	if (!strcmp(s, "rsa") || !strcmp(s, "rsa-sha256") || !strncmp(s, "rsa2048", 7) ||
	    !strcmp(s, "rsa4096"))
		*algo = DKIM_ALGO_RSA_SHA256;
	else if (!strcmp(s, "ed25519") || !strcmp(s, "ed25519-sha256"))
		*algo = DKIM_ALGO_ED25519_SHA256;
	else
		return -EINVAL;
	return 0;
}

/* "relaxed" for both, or "header/body". */
static int
parse_canon(const char *s, struct dkim_signer_config *cfg)
{
	char h[16];
	const char *slash = strchr(s, '/');

	if (slash == NULL)
		return dkim_canon_parse(s, &cfg->header_canon)
			   ?: dkim_canon_parse(s, &cfg->body_canon);
	if ((size_t)(slash - s) >= sizeof(h))
		return -EINVAL;
	memcpy(h, s, (size_t)(slash - s));
	h[slash - s] = '\0';
	return dkim_canon_parse(h, &cfg->header_canon)
		   ?: dkim_canon_parse(slash + 1, &cfg->body_canon);
}

static int
parse_headers(struct sign_opts *o, char *arg)
{
	char *save = NULL, *name;

	o->cfg.n_headers = 0;
	for (name = strtok_r(arg, ":", &save); name; name = strtok_r(NULL, ":", &save)) {
		if (o->cfg.n_headers == TERN_ARRAY_LEN(o->headers))
			return -EINVAL;
		o->headers[o->cfg.n_headers++] = name;
	}
	o->cfg.headers = o->headers;
	return o->cfg.n_headers ? 0 : -EINVAL;
}

static int
sign_option(struct sign_opts *o, int c, char *arg)
{
	switch (c) {
	case 'd':
		o->cfg.domain = arg;
		return 0;
	case 's':
		o->cfg.selector = arg;
		return 0;
	case 'k':
		o->cfg.key_path = arg;
		return 0;
	case 'i':
		o->cfg.identity = arg;
		return 0;
	case 'n':
		o->cfg.over_sign = false;
		return 0;
	case 'l':
		o->cfg.body_length = true;
		return 0;
	case 'a':
		return parse_algo(arg, &o->cfg.algo);
	case 'c':
		return parse_canon(arg, &o->cfg);
	case 'h':
		return parse_headers(o, arg);
	case 'x':
		return util_parse_duration(arg, &o->cfg.expiration);
	}
	return -EINVAL;
}

static int
read_all(FILE *fp, struct buf *b)
{
	size_t n;

	do {
		if (buf_reserve(b, 65536) < 0)
			return -ENOMEM;
		n = fread(b->data + b->len, 1, 65536, fp);
		b->len += n;
	} while (n > 0);
	return ferror(fp) ? -EIO : 0;
}

/* A message saved by an editor has LF endings; DKIM is defined on CRLF. */
static int
to_crlf(const struct buf *in, struct buf *out)
{
	size_t i;

	for (i = 0; i < in->len; i++) {
		if (in->data[i] == '\n' && (i == 0 || in->data[i - 1] != '\r') &&
		    buf_append_char(out, '\r') < 0)
			return -ENOMEM;
		if (buf_append_char(out, in->data[i]) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int
sign_run(const struct dkim_signer_config *cfg)
{
	struct tern_err err = {0};
	struct dkim_signer *s;
	struct buf in, msg, sig;
	int rc = 1;

	s = dkim_signer_new(cfg, &err);
	if (s == NULL)
		return fail("%s", err.msg);
	buf_init(&in);
	buf_init(&msg);
	buf_init(&sig);
	if (read_all(stdin, &in) < 0 || to_crlf(&in, &msg) < 0)
		fail("%s", "cannot read the message from stdin");
	else if (dkim_sign(s, msg.data ? msg.data : "", msg.len, util_wallclock(), &sig, &err) < 0)
		fail("%s", err.msg);
	else if (fwrite(sig.data, 1, sig.len, stdout) == sig.len &&
		 fwrite(msg.data, 1, msg.len, stdout) == msg.len && fflush(stdout) == 0)
		rc = 0;
	dkim_signer_unref(s);
	buf_deinit(&in);
	buf_deinit(&msg);
	buf_deinit(&sig);
	return rc;
}

static int
cmd_sign(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"domain", required_argument, NULL, 'd'},
	    {"selector", required_argument, NULL, 's'},
	    {"key", required_argument, NULL, 'k'},
	    {"algo", required_argument, NULL, 'a'},
	    {"canon", required_argument, NULL, 'c'},
	    {"headers", required_argument, NULL, 'h'},
	    {"no-over-sign", no_argument, NULL, 'n'},
	    {"identity", required_argument, NULL, 'i'},
	    {"expiration", required_argument, NULL, 'x'},
	    {"body-length", no_argument, NULL, 'l'},
	    {NULL, 0, NULL, 0},
	};
	struct sign_opts o;
	int c;

	memset(&o, 0, sizeof(o));
	dkim_signer_config_init(&o.cfg);
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == '?' || sign_option(&o, c, optarg) < 0) {
			if (c != '?')
				fprintf(stderr, "tern dkim: bad value for an option: '%s'\n",
					optarg);
			return usage();
		}
	}
	if (optind != argc || !o.cfg.domain || !o.cfg.selector || !o.cfg.key_path)
		return usage();
	return sign_run(&o.cfg);
}

int
cli_dkim_main(int argc, char **argv)
{
	if (argc < 2)
		return usage();
	optind = 1;
	if (strcmp(argv[1], "genkey") == 0)
		return cmd_genkey(argc - 1, argv + 1);
	if (strcmp(argv[1], "sign") == 0)
		return cmd_sign(argc - 1, argv + 1);
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0)
		return usage() - 2;
	fprintf(stderr, "tern dkim: unknown subcommand '%s'\n", argv[1]);
	return usage();
}
