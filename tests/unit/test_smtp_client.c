// SPDX-License-Identifier: MIT
/*
 * The outbound session against scripted peers on loopback: each peer is a
 * thread that sends and expects lines in order, so the test states the whole
 * conversation. With nothing to send (take() gives no message) a session
 * greets, says EHLO (HELO when EHLO is refused), stays idle and says QUIT
 * when its idle time is up; a refused banner moves on to the site's next
 * address; a site where nothing listens ends the client as unreachable.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
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
#include <ev.h>

#include "tern/smtp_client.h"

/* A step: "> text" is sent (CRLF added), "< text" must be the next line received. */
struct peer {
	const char *const *script;
	int listen_fd;
	int port;
	pthread_t thread;
	char failure[256]; /* empty when the script ran to its end */
};

static int
read_line(int fd, char *out, size_t n)
{
	size_t len = 0;
	char c;

	while (len + 1 < n && read(fd, &c, 1) == 1) {
		if (c == '\n') {
			if (len > 0 && out[len - 1] == '\r')
				len--;
			out[len] = '\0';
			return 0;
		}
		out[len++] = c;
	}
	out[len] = '\0';
	return -1;
}

static void
peer_run_script(struct peer *p, int fd)
{
	const char *const *step;
	char line[512];

	for (step = p->script; *step; step++) {
		const char *text = *step + 2;

		if (**step == '>') {
			dprintf(fd, "%s\r\n", text);
			continue;
		}
		if (read_line(fd, line, sizeof(line)) < 0) {
			snprintf(p->failure, sizeof(p->failure), "expected \"%s\", got a close", text);
			return;
		}
		if (strcmp(line, text) != 0) {
			snprintf(p->failure, sizeof(p->failure), "expected \"%s\", got \"%s\"", text,
				 line);
			return;
		}
	}
}

static void *
peer_main(void *arg)
{
	struct peer *p = arg;
	int fd = accept(p->listen_fd, NULL, NULL);

	if (fd < 0) {
		snprintf(p->failure, sizeof(p->failure), "accept: %s", strerror(errno));
		return NULL;
	}
	peer_run_script(p, fd);
	close(fd);
	return NULL;
}

static void
peer_start(struct peer *p, const char *const *script)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);

	p->script = script;
	p->failure[0] = '\0';
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	p->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(p->listen_fd >= 0);
	assert_int_equal(bind(p->listen_fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(p->listen_fd, 4), 0);
	assert_int_equal(getsockname(p->listen_fd, (struct sockaddr *)&sin, &len), 0);
	p->port = ntohs(sin.sin_port);
	assert_int_equal(pthread_create(&p->thread, NULL, peer_main, p), 0);
}

static void
peer_finish(struct peer *p)
{
	/* A peer the client never reached is blocked in accept(): this wakes it. */
	shutdown(p->listen_fd, SHUT_RDWR);
	pthread_join(p->thread, NULL);
	close(p->listen_fd);
	if (p->failure[0])
		fail_msg("peer on port %d: %s", p->port, p->failure);
}

/* A port nothing listens on: bound, never listening, closed after the test. */
static int
closed_port(int *fd)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);

	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	*fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(*fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(*fd, (struct sockaddr *)&sin, &len), 0);
	return ntohs(sin.sin_port);
}

static void
route_add(struct egress_route *r, int port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&r->hops[r->n_addrs].addr;

	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, "127.0.0.1", &sin->sin_addr);
	snprintf(r->hops[r->n_addrs].host, sizeof(r->hops[0].host), "mx%zu.peer.test", r->n_addrs + 1);
	r->n_addrs++;
}

struct owner_state {
	int takes;
	bool ended, tls_failed, unreachable;
};

static struct queue_msg *
take_nothing(void *arg, struct smtp_client *c)
{
	((struct owner_state *)arg)->takes++;
	return NULL;
}

static void
ended(void *arg, struct smtp_client *c, bool tls_failed, bool unreachable)
{
	struct owner_state *o = arg;

	o->ended = true;
	o->tls_failed = tls_failed;
	o->unreachable = unreachable;
}

static void
guard_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	ev_break(loop, EVBREAK_ALL);
}

/* Start a client for route and run a loop until it ended (or 10 s). */
static void
run_client(const struct egress_route *route, struct owner_state *o)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct smtp_client_config cfg = {
		.pool = "pool",
		.source = "src",
		.ehlo = "out.test",
		.route = route,
		.tls = SMTP_TLS_DISABLED,
		.max_deliveries = 10,
		.connect_timeout = 5, .banner_timeout = 5, .ehlo_timeout = 5, .mail_timeout = 5,
		.rcpt_timeout = 5, .data_timeout = 5,
		.idle_timeout = 0.2,
	};
	struct smtp_client_owner owner = {.take = take_nothing, .ended = ended, .arg = o};
	ev_timer guard;

	ev_timer_init(&guard, guard_cb, 10.0, 0.);
	ev_timer_start(loop, &guard);
	assert_non_null(smtp_client_start(loop, &cfg, &owner));
	while (!o->ended && ev_is_active(&guard))
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &guard);
	ev_loop_destroy(loop);
	assert_true(o->ended);
}

static void
test_ehlo_refused_falls_back_to_helo_and_quits_when_idle(void **state)
{
	static const char *const script[] = {
		"> 220 peer.test ESMTP", "< EHLO out.test", "> 502 5.5.2 Error: command not recognized",
		"< HELO out.test",	   "> 250 peer.test", "< QUIT",
		"> 221 2.0.0 Bye",	   NULL};
	union egress_route_space space = {.route = {.domain = "peer.test", .site = "mx1.peer.test"}};
	struct egress_route *route = &space.route;
	struct owner_state o = {0};
	struct peer p;

	peer_start(&p, script);
	route_add(route, p.port);
	run_client(route, &o);
	peer_finish(&p);
	assert_false(o.unreachable);
	assert_false(o.tls_failed);
	assert_true(o.takes >= 1); /* it asked for work before going idle */
}

static void
test_refused_banner_moves_to_the_next_address_and_no_starttls_when_disabled(void **state)
{
	static const char *const refusing[] = {"> 554 5.3.2 not now", NULL};
	static const char *const second[] = {
		"> 220 mx2.peer.test ESMTP", "< EHLO out.test",
		"> 250-mx2.peer.test",	     "> 250-STARTTLS",
		"> 250 PIPELINING",	     "< QUIT",
		"> 221 2.0.0 Bye",	     NULL};
	union egress_route_space space = {.route = {.domain = "peer.test", .site = "mx1.peer.test mx2.peer.test"}};
	struct egress_route *route = &space.route;
	struct owner_state o = {0};
	struct peer p1, p2;

	peer_start(&p1, refusing);
	peer_start(&p2, second);
	route_add(route, p1.port);
	route_add(route, p2.port);
	run_client(route, &o);
	peer_finish(&p1);
	peer_finish(&p2);
	assert_false(o.unreachable);
}

static void
test_no_address_listening_is_unreachable(void **state)
{
	union egress_route_space space = {.route = {.domain = "down.test", .site = "mx1.down.test mx2.down.test"}};
	struct egress_route *route = &space.route;
	struct owner_state o = {0};
	int fd1, fd2;

	route_add(route, closed_port(&fd1));
	route_add(route, closed_port(&fd2));
	run_client(route, &o);
	close(fd1);
	close(fd2);
	assert_true(o.unreachable);
	assert_int_equal(o.takes, 1); /* the message that would have gone first fails */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ehlo_refused_falls_back_to_helo_and_quits_when_idle),
		cmocka_unit_test(
			test_refused_banner_moves_to_the_next_address_and_no_starttls_when_disabled),
		cmocka_unit_test(test_no_address_listening_is_unreachable),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
