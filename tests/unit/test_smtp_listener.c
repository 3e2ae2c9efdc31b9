// SPDX-License-Identifier: MIT
/*
 * ESMTP listeners: the listen address parser, and a listener registered and
 * opened like ternd does it (a socket per shard), accepting on a real
 * loopback port: the greeting, the connection limit's 421 and the slot
 * given back when a session ends, and a second listener on the same address
 * refused by name.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "tern/daemon.h"
#include "tern/policy.h"
#include "tern/shard.h"
#include "tern/smtp_listener.h"
#include "tern/smtp_server.h"

static void
test_parse_address(void **state)
{
	struct sockaddr_storage ss;
	socklen_t len;
	static const char *const bad[] = {"127.0.0.1",	  "127.0.0.1:",	  "127.0.0.1:70000",
					  "127.0.0.1:-1", "127.0.0.1:2x", ":25",
					  "localhost:25", "[::1]",	  "[]:25",
					  "::1]:25x"};
	size_t i;

	assert_int_equal(smtp_listener_parse_address("127.0.0.1:25", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(len, sizeof(struct sockaddr_in));
	assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 25);
	assert_int_equal(smtp_listener_parse_address("[::1]:2525", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(len, sizeof(struct sockaddr_in6));
	assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 2525);
	/* Without brackets the last colon still separates the port. */
	assert_int_equal(smtp_listener_parse_address("::1:587", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (smtp_listener_parse_address(bad[i], &ss, &len) != -EINVAL)
			fail_msg("accepted '%s'", bad[i]);
}

struct fixture {
	char policy[64];
	struct listener_port *listener; /* the service: sockets and current options */
	int port;
};

static int
add_listener(const char *listen, int max_connections, struct tern_err *err)
{
	struct smtp_listener_config cfg = {
		.listen = strdup(listen),
		.hostname = strdup("mx.test"),
		.max_message_size = 1 << 20,
		.max_recipients = 10,
		.max_connections = max_connections,
		.client_timeout = 30,
		.data_timeout = 30,
	};
	int rc = smtp_listener_parse_address(listen, &cfg.addr, &cfg.addrlen);

	if (rc == 0)
		rc = smtp_listener_add(&cfg, err);
	smtp_listener_config_free(&cfg); /* emptied by a successful add */
	return rc;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct policy_options opts = {.policy_path = f->policy};
	struct tern_err err = {0};
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	FILE *p;
	int fd;

	strcpy(f->policy, "/tmp/test_smtp_listener.XXXXXX");
	fd = mkstemp(f->policy);
	if (fd < 0 || (p = fdopen(fd, "w")) == NULL)
		return -1;
	fputs("tern.on('init', function() end)\n", p);
	fclose(p);
	if (shards_init(1, &err) < 0 || policy_attach_shards(&opts, &err) < 0 ||
	    add_listener("127.0.0.1:0", 1, &err) < 0 ||
	    daemon_open_services(&err) < 0) {
		fprintf(stderr, "setup: %s\n", err.msg);
		return -1;
	}
	f->listener = daemon_find_service("esmtp listener 127.0.0.1:0");
	if (f->listener == NULL || f->listener->n_shards != 1 ||
	    getsockname(f->listener->shards[0].fd, (struct sockaddr *)&sin, &len) < 0)
		return -1;
	f->port = ntohs(sin.sin_port);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	smtp_sessions_free(&f->listener->shards[0]);
	daemon_close_services();
	daemon_free_config();
	shards_free();
	unlink(f->policy);
	free(f);
	return 0;
}

static int
connect_to(int port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	assert_true(fd >= 0);
	assert_true(connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 || errno == EINPROGRESS);
	return fd;
}

struct line_wait {
	int fd;
	char buf[512];
	size_t len;
	bool done;
	ev_io watcher;
	ev_timer guard;
};

static void
line_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct line_wait *lw = w->data;
	ssize_t n = read(lw->fd, lw->buf + lw->len, sizeof(lw->buf) - 1 - lw->len);

	if (n > 0)
		lw->len += (size_t)n;
	lw->buf[lw->len] = '\0';
	lw->done = n == 0 || strstr(lw->buf, "\r\n") != NULL;
}

static void
guard_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	*(bool *)t->data = true;
}

/* Run the shard's loop until fd's first line arrived (or 10 s); that line. */
static const char *
first_line(int fd, struct line_wait *lw)
{
	struct shard *s = shard_get(0);

	memset(lw, 0, sizeof(*lw));
	lw->fd = fd;
	ev_io_init(&lw->watcher, line_cb, fd, EV_READ);
	lw->watcher.data = lw;
	ev_timer_init(&lw->guard, guard_cb, 10.0, 0.);
	lw->guard.data = &lw->done;
	ev_io_start(s->loop, &lw->watcher);
	ev_timer_start(s->loop, &lw->guard);
	shard_run_until(s, &lw->done);
	ev_io_stop(s->loop, &lw->watcher);
	ev_timer_stop(s->loop, &lw->guard);
	return lw->buf;
}

static void
test_accepts_greets_and_limits_connections(void **state)
{
	struct fixture *f = *state;
	struct line_wait lw;
	int first = connect_to(f->port), second, third;

	assert_string_equal(first_line(first, &lw), "220 mx.test ESMTP tern\r\n");
	/* max_connections = 1: the second is refused before any session exists. */
	second = connect_to(f->port);
	assert_string_equal(first_line(second, &lw),
			    "421 4.7.0 Too many connections, try again later\r\n");
	close(second);
	/* The first leaves; its slot is free again. */
	assert_int_equal(write(first, "QUIT\r\n", 6), 6);
	assert_memory_equal(first_line(first, &lw), "221 ", 4);
	close(first);
	third = connect_to(f->port);
	assert_string_equal(first_line(third, &lw), "220 mx.test ESMTP tern\r\n");
	close(third);
}

static void
test_same_address_twice_is_refused_by_name(void **state)
{
	struct tern_err err = {0};

	assert_int_equal(add_listener("127.0.0.1:0", 0, &err), -EEXIST);
	assert_non_null(strstr(err.msg, "esmtp listener 127.0.0.1:0"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_address),
		cmocka_unit_test_setup_teardown(test_accepts_greets_and_limits_connections, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_same_address_twice_is_refused_by_name, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
