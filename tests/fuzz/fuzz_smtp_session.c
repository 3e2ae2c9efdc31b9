// SPDX-License-Identifier: MIT
/*
 * libFuzzer: the whole ESMTP server session fed arbitrary byte streams. Once
 * per process, a real ternd (its main, renamed ternd_main, on a thread of its
 * own) starts with a policy that has a spool, a listener with STARTTLS and an
 * AUTH handler on a free loopback port. Each input is one client connection:
 * the first byte's bit 0 asks for STARTTLS first (so that AUTH, offered only
 * inside TLS, is reachable), the rest is sent as is (pipelined commands, DATA,
 * BDAT chunks, AUTH exchanges), the client's write side is shut, and every
 * reply is read until the server closes. A server that crashes, trips a
 * sanitizer, or keeps a finished client waiting past SESSION_DEADLINE fails.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "fuzz_tmpdir.h"
#include "tern/util.h"

#define SESSION_DEADLINE_MS 20000

int ternd_main(int argc, char **argv);

static const char policy_text[] =
	"tern.on('init', function()\n"
	"  tern.define_spool { path = '%s/spool' }\n"
	"  tern.start_esmtp_listener { listen = '127.0.0.1:%d', hostname = 'mx.fuzz',\n"
	"    max_message_size = '64k', client_timeout = '10s', data_timeout = '10s',\n"
	"    tls_certificate = '%s/cert.pem', tls_private_key = '%s/key.pem' }\n"
	"end)\n"
	"tern.on('smtp_server_auth_plain', function(authz, authc, password, conn)\n"
	"  return authc == 'alice' and password == 'secret'\n"
	"end)\n"
	"tern.on('smtp_server_message_received', function(msg, conn)\n"
	"  msg:set_meta('queue', 'null')\n"
	"end)\n";

static const char *dir;
static int port;
static SSL_CTX *client_ctx;

static void
fail(const char *what)
{
	fprintf(stderr, "fuzz_smtp_session: %s: %s\n", what, strerror(errno));
	abort();
}

static int
free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		fail("free port");
	close(fd);
	return ntohs(a.sin_port);
}

static void
write_setup(void)
{
	char path[128], cmd[512];
	FILE *f;

	dir = fuzz_tmpdir_make("fuzz_smtp_session");
	snprintf(cmd, sizeof(cmd),
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
		 "-keyout %s/key.pem -out %s/cert.pem -days 30 -subj /CN=mx.fuzz 2>/dev/null",
		 dir, dir);
	if (system(cmd) != 0)
		fail("openssl req");
	snprintf(path, sizeof(path), "%s/policy.lua", dir);
	f = fopen(path, "w");
	if (f == NULL)
		fail(path);
	fprintf(f, policy_text, dir, port, dir, dir);
	fclose(f);
}

static void *
daemon_thread(void *arg)
{
	char policy[128];
	/* Fuzzing runs as whoever starts it, root in CI containers. */
	char *argv[] = {"ternd", "--policy", policy, "--threads", "1", "--log-level", "error",
			"--allow-root", NULL};

	snprintf(policy, sizeof(policy), "%s/policy.lua", dir);
	exit(ternd_main(8, argv));
	return arg;
}

static int
connect_server(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
		return fd;
	if (fd >= 0)
		close(fd);
	return -1;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	pthread_t t;
	int i, fd = -1;

	signal(SIGPIPE, SIG_IGN);
	setenv("TERN_DNS_SERVERS", "127.0.0.1:9", 1);
	port = free_port();
	write_setup();
	if (pthread_create(&t, NULL, daemon_thread, NULL) != 0)
		fail("pthread_create");
	for (i = 0; i < 300 && (fd = connect_server()) < 0; i++)
		usleep(100000);
	if (fd < 0)
		fail("ternd did not start listening");
	close(fd);
	client_ctx = SSL_CTX_new(TLS_client_method());
	if (client_ctx == NULL)
		fail("SSL_CTX_new");
	SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
	return 0;
}

/* Wait until fd is readable; false past the deadline. */
static bool
wait_readable(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int rc;

	do
		rc = poll(&p, 1, SESSION_DEADLINE_MS);
	while (rc < 0 && errno == EINTR);
	return rc > 0;
}

/* Read one reply line by line into a small buffer until a line "CODE " ends it. */
static bool
read_reply(int fd, const char *code)
{
	char line[1024];
	size_t n = 0;
	ssize_t r;

	while (wait_readable(fd) && (r = read(fd, line + n, 1)) == 1) {
		if (line[n] != '\n' && n + 1 < sizeof(line)) {
			n++;
			continue;
		}
		if (n >= 4 && memcmp(line, code, 3) == 0 && line[3] == ' ')
			return true;
		if (n < 4 || line[3] != '-')
			return false;
		n = 0;
	}
	return false;
}

/* Plain EHLO, STARTTLS, handshake: an SSL on fd, or NULL when the server said no. */
static SSL *
start_tls(int fd)
{
	static const char cmds[] = "EHLO fuzz.client\r\nSTARTTLS\r\n";
	SSL *ssl;

	if (!read_reply(fd, "220") || write(fd, cmds, sizeof(cmds) - 1) < 0 ||
	    !read_reply(fd, "250") || !read_reply(fd, "220"))
		return NULL;
	ssl = SSL_new(client_ctx);
	if (ssl == NULL)
		return NULL;
	SSL_set_fd(ssl, fd);
	if (SSL_connect(ssl) != 1) {
		SSL_free(ssl);
		return NULL;
	}
	return ssl;
}

/* Send everything (the server may close early: that ends the sending), then EOF. */
static void
send_all(int fd, SSL *ssl, const uint8_t *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = ssl ? SSL_write(ssl, p, (int)n) : send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			break;
		p += w;
		n -= (size_t)w;
	}
	shutdown(fd, SHUT_WR);
}

/* Read replies until the server closes; a server that never does is a bug. */
static void
drain(int fd, SSL *ssl)
{
	char buf[16384];
	ssize_t r;

	for (;;) {
		if (!(ssl && SSL_pending(ssl) > 0) && !wait_readable(fd)) {
			fprintf(stderr, "fuzz_smtp_session: the server kept a finished client "
					"waiting for %d ms\n",
				SESSION_DEADLINE_MS);
			abort();
		}
		r = ssl ? SSL_read(ssl, buf, sizeof(buf)) : read(fd, buf, sizeof(buf));
		if (r <= 0)
			return;
		/* FUZZ_SESSION_TRACE=1 shows the replies, to see what an input reached. */
		if (getenv("FUZZ_SESSION_TRACE"))
			fwrite(buf, 1, (size_t)r, stderr);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	SSL *ssl = NULL;
	int fd;

	if (size < 1)
		return 0;
	fd = connect_server();
	if (fd < 0)
		fail("connect");
	if (data[0] & 1) {
		ssl = start_tls(fd);
		if (ssl == NULL) {
			close(fd);
			return 0;
		}
	}
	send_all(fd, ssl, data + 1, size - 1);
	drain(fd, ssl);
	SSL_free(ssl);
	close(fd);
	return 0;
}
