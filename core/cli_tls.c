// SPDX-License-Identifier: MIT
/*
 * `tern tls check HOST:PORT [--starttls] [--ca-file F]`: the probe an
 * operator can cron. It connects (with SMTP STARTTLS when asked), and prints
 * the certificate the server presents: subject, issuer, SANs, expiry, days
 * left and whether it verifies for HOST. The exit status is the alarm: 0
 * fine, 1 under TLS_EXPIRY_WARN_DAYS days left (or expired), 2 no answer.
 * Plain blocking sockets: one connection, no event loop needed.
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tern/cli.h"
#include "tern/tls.h"
#include "tern/util.h"

#define CLI_TLS_TIMEOUT 15 /* seconds, for each read and write */

static int
usage(void)
{
	fprintf(stderr,
		"usage: tern tls check HOST:PORT [--starttls] [--ca-file FILE]\n"
		"Prints the certificate's subject, issuer, SANs and days left; with --starttls\n"
		"the session starts as SMTP (EHLO, STARTTLS). Exit 0 fine, 1 fewer than %d days\n"
		"left, 2 no TLS answer.\n",
		TLS_EXPIRY_WARN_DAYS);
	return 2;
}

static int
fail(const char *what, const char *why)
{
	fprintf(stderr, "tern tls check: %s: %s\n", what, why);
	return 2;
}

/* "host:port", "[v6]:port" into host and port. */
static int
split_target(char *target, char **host, char **port)
{
	char *colon = strrchr(target, ':');

	if (colon == NULL || colon[1] == '\0')
		return -EINVAL;
	*colon = '\0';
	*port = colon + 1;
	*host = target;
	if (target[0] == '[' && colon[-1] == ']') {
		colon[-1] = '\0';
		*host = target + 1;
	}
	return **host ? 0 : -EINVAL;
}

static int
dial(const char *host, const char *port)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *ai;
	struct timeval tv = {.tv_sec = CLI_TLS_TIMEOUT};
	int fd = -1, rc = getaddrinfo(host, port, &hints, &res);

	if (rc != 0) {
		fail(host, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai && fd < 0; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	if (fd < 0)
		fail(host, "could not connect");
	return fd;
}

/*
 * One SMTP reply, byte by byte so that nothing past it is consumed (the TLS
 * handshake follows the 220). Its code, or -1; *starttls set when a line
 * advertises STARTTLS.
 */
static int
smtp_reply(int fd, bool *starttls)
{
	char line[1024];
	size_t n = 0;

	for (;;) {
		char c;

		if (read(fd, &c, 1) != 1)
			return -1;
		if (n < sizeof(line) - 1)
			line[n++] = c;
		if (c != '\n')
			continue;
		line[n] = '\0';
		if (starttls && n >= 12 && util_strncaseeq(line + 4, "STARTTLS", 8))
			*starttls = true;
		if (n < 4 || line[3] != '-')
			return n >= 3 ? atoi(line) : -1;
		n = 0;
	}
}

static int
smtp_starttls(int fd, const char *host)
{
	bool offered = false;

	if (smtp_reply(fd, NULL) != 220)
		return fail(host, "no 220 greeting");
	if (dprintf(fd, "EHLO tern-tls-check.invalid\r\n") < 0 || smtp_reply(fd, &offered) != 250)
		return fail(host, "EHLO refused");
	if (!offered)
		return fail(host, "STARTTLS not offered");
	if (dprintf(fd, "STARTTLS\r\n") < 0 || smtp_reply(fd, NULL) != 220)
		return fail(host, "STARTTLS refused");
	return 0;
}

static void
print_name(const char *label, const X509_NAME *name)
{
	char buf[512];

	X509_NAME_oneline(name, buf, sizeof(buf));
	printf("%-10s %s\n", label, buf);
}

static void
print_time(const char *label, const ASN1_TIME *t)
{
	BIO *out = BIO_new_fp(stdout, BIO_NOCLOSE);

	printf("%-10s ", label);
	if (out != NULL) {
		ASN1_TIME_print(out, t);
		BIO_free(out);
	}
	printf("\n");
}

static void
print_sans(X509 *cert)
{
	GENERAL_NAMES *sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	int i;

	printf("%-10s", "sans:");
	for (i = 0; sans && i < sk_GENERAL_NAME_num(sans); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);

		if (g->type == GEN_DNS)
			printf(" DNS:%s", (const char *)ASN1_STRING_get0_data(g->d.dNSName));
		else if (g->type == GEN_IPADD)
			printf(" IP:(%d bytes)", ASN1_STRING_length(g->d.iPAddress));
	}
	printf("\n");
	GENERAL_NAMES_free(sans);
}

/* Prints the certificate; the exit status by its days left. */
static int
report(SSL *ssl, const char *host, const char *ca_file)
{
	X509 *cert = SSL_get0_peer_certificate(ssl);
	char why[256];
	int days, secs;

	if (cert == NULL)
		return fail(host, "no certificate presented");
	print_name("subject:", X509_get_subject_name(cert));
	print_name("issuer:", X509_get_issuer_name(cert));
	print_sans(cert);
	if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(cert)) != 1)
		return fail(host, "unreadable notAfter");
	print_time("expires:", X509_get0_notAfter(cert));
	printf("%-10s %d\n", "days left:", days);
	if (tls_verify_peer(ssl, host, ca_file, why, sizeof(why)) == 0)
		printf("%-10s yes\n", "verified:");
	else
		printf("%-10s no (%s)\n", "verified:", why);
	return days < TLS_EXPIRY_WARN_DAYS ? 1 : 0;
}

static int
handshake_and_report(int fd, const char *host, const char *ca_file)
{
	SSL_CTX *ctx;
	SSL *ssl;
	struct tern_err err;
	int rc = 2;

	ctx = tls_client_ctx_new(&err);
	if (ctx == NULL)
		return fail(host, err.msg);
	ssl = SSL_new(ctx);
	if (ssl != NULL && SSL_set_fd(ssl, fd) == 1 && SSL_set_tlsext_host_name(ssl, host) == 1 &&
	    SSL_connect(ssl) == 1)
		rc = report(ssl, host, ca_file);
	else
		fail(host, tls_last_error());
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	return rc;
}

static int
cmd_check(int argc, char **argv)
{
	static const struct option longopts[] = {{"starttls", no_argument, NULL, 's'},
						 {"ca-file", required_argument, NULL, 'c'},
						 {NULL, 0, NULL, 0}};
	const char *ca_file = NULL;
	bool starttls = false;
	char *host, *port;
	int c, fd, rc;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (c == 's')
			starttls = true;
		else if (c == 'c')
			ca_file = optarg;
		else
			return usage();
	}
	if (optind != argc - 1 || split_target(argv[optind], &host, &port) < 0)
		return usage();
	fd = dial(host, port);
	if (fd < 0)
		return 2;
	rc = starttls ? smtp_starttls(fd, host) : 0;
	if (rc == 0)
		rc = handshake_and_report(fd, host, ca_file);
	close(fd);
	return rc;
}

int
cli_tls_main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "check") != 0)
		return usage();
	return cmd_check(argc - 1, argv + 1);
}
