// SPDX-License-Identifier: MIT
/*
 * io over real sockets: socketpair() for stream behaviour, loopback TCP for
 * connect and source binding. Every test drives one libev loop with a guard
 * timer so that a missing event fails instead of hanging.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "tern/io.h"

#include "support.h"

/* What one io saw, and what the test asks its callback to do. */
struct rec {
	struct io *io;
	int count[IO_ERROR + 1];
	struct buf lines; /* each line followed by '|' */
	char err[256];
	bool done;
	int done_on;  /* event that ends the run, or -1 */
	int free_on;  /* event on which the callback frees the io, or -1 */
	int pause_on; /* event on which the callback pauses reading, or -1 */
};

static bool
not_done(void *done)
{
	return !*(const bool *)done;
}

static void
run_until(struct ev_loop *loop, const bool *done)
{
	assert_true(support_run_while(loop, not_done, (void *)done));
}

static void
rec_init(struct rec *r)
{
	memset(r, 0, sizeof(*r));
	buf_init(&r->lines);
	r->done_on = -1;
	r->free_on = -1;
	r->pause_on = -1;
}

static void
rec_lines(struct rec *r, struct io *io)
{
	const char *line;
	size_t len, used;

	while ((line = io_getline(io, &len, &used)) != NULL) {
		buf_append(&r->lines, line, len);
		buf_append_char(&r->lines, '|');
		io_consume(io, used);
	}
}

static void
rec_cb(struct io *io, enum io_event ev, void *arg)
{
	struct rec *r = arg;

	r->count[ev]++;
	if (ev == IO_DATAIN && r->pause_on != IO_DATAIN)
		rec_lines(r, io);
	if (ev == IO_ERROR)
		snprintf(r->err, sizeof(r->err), "%s", io_error(io));
	if ((int)ev == r->pause_on)
		io_pause_read(io);
	if ((int)ev == r->done_on)
		r->done = true;
	if ((int)ev == r->free_on) {
		io_free(io);
		r->io = NULL;
	}
}

static void
make_pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
}

static void
write_all(int fd, const char *s)
{
	assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

static void
rec_finish(struct rec *r)
{
	io_free(r->io);
	buf_deinit(&r->lines);
}

static void
test_getline_partial_reads(void **state)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct rec r;
	int sv[2];

	make_pair(sv);
	rec_init(&r);
	r.io = io_new(loop, sv[0], rec_cb, &r);
	write_all(sv[1], "HEL");
	support_run_for(loop, 0.02);
	assert_int_equal(r.count[IO_DATAIN], 1);
	assert_int_equal(r.lines.len, 0);
	write_all(sv[1], "LO\r\nWOR");
	support_run_for(loop, 0.02);
	assert_string_equal(r.lines.data, "HELLO|");
	write_all(sv[1], "LD\n\r\nbare\rcr\n");
	support_run_for(loop, 0.02);
	assert_string_equal(r.lines.data, "HELLO|WORLD||bare\rcr|");
	assert_int_equal(io_input(r.io)->len, 0);
	rec_finish(&r);
	close(sv[1]);
	ev_loop_destroy(loop);
}

static void
test_getline_without_newline(void **state)
{
	struct ev_loop *loop = ev_loop_new(0);
	size_t len = 99, used = 99;
	struct io *io;
	int sv[2];

	make_pair(sv);
	io = io_new(loop, sv[0], rec_cb, NULL);
	assert_null(io_getline(io, &len, &used));
	buf_append_str(io_input(io), "no end yet");
	assert_null(io_getline(io, &len, &used));
	buf_append_str(io_input(io), "\r\nrest");
	assert_non_null(io_getline(io, &len, &used));
	assert_int_equal(len, 10);
	assert_int_equal(used, 12);
	io_consume(io, used);
	assert_string_equal(io_input(io)->data, "rest");
	io_free(io);
	close(sv[1]);
	ev_loop_destroy(loop);
}

/* The peer drains a little at a time, so the writer sees many partial writes. */
struct slow_reader {
	int fd;
	size_t got;
	size_t bad; /* offset of the first unexpected byte + 1, or 0 */
	ev_timer t;
};

static char
pattern_at(size_t i)
{
	return (char)('a' + (i * 7 + i / 4096) % 26);
}

static void
slow_read_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct slow_reader *s = t->data;
	char tmp[128 * 1024];
	ssize_t n = read(s->fd, tmp, sizeof(tmp));

	for (ssize_t i = 0; i < n; i++)
		if (s->bad == 0 && tmp[i] != pattern_at(s->got + (size_t)i))
			s->bad = s->got + (size_t)i + 1;
	if (n > 0)
		s->got += (size_t)n;
}

static void
test_large_write_lowat(void **state)
{
	const size_t total = 6 * 1024 * 1024;
	struct ev_loop *loop = ev_loop_new(0);
	struct slow_reader s = {0};
	int small = 64 * 1024;
	struct rec r;
	char *data;
	int sv[2];

	make_pair(sv);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	data = malloc(total);
	for (size_t i = 0; i < total; i++)
		data[i] = pattern_at(i);
	rec_init(&r);
	r.done_on = IO_LOWAT;
	r.io = io_new(loop, sv[0], rec_cb, &r);
	/* Two writes: LOWAT must come once, after both have drained. */
	assert_int_equal(io_write(r.io, data, total / 2), 0);
	assert_int_equal(io_write(r.io, data + total / 2, total - total / 2), 0);
	/* The socket took what fits at once; the rest waits for the reader. */
	assert_true(io_output_pending(r.io) > 0 && io_output_pending(r.io) < total);
	s.fd = sv[1];
	ev_timer_init(&s.t, slow_read_cb, 0.001, 0.001);
	s.t.data = &s;
	ev_timer_start(loop, &s.t);
	run_until(loop, &r.done);
	assert_int_equal(io_output_pending(r.io), 0);
	while (s.got < total)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &s.t);
	assert_int_equal(s.got, total);
	assert_int_equal(s.bad, 0);
	assert_int_equal(r.count[IO_LOWAT], 1);
	assert_int_equal(r.count[IO_ERROR], 0);
	free(data);
	rec_finish(&r);
	close(sv[1]);
	ev_loop_destroy(loop);
}

static void
test_printf_and_lowat_per_burst(void **state)
{
	struct ev_loop *loop = ev_loop_new(0);
	char got[64] = {0};
	struct rec r;
	int sv[2];

	make_pair(sv);
	rec_init(&r);
	r.done_on = IO_LOWAT;
	r.io = io_new(loop, sv[0], rec_cb, &r);
	assert_int_equal(io_printf(r.io, "250 %s %d\r\n", "ok", 42), 0);
	run_until(loop, &r.done);
	r.done = false;
	assert_int_equal(io_printf(r.io, "221 bye\r\n"), 0);
	run_until(loop, &r.done);
	assert_int_equal(r.count[IO_LOWAT], 2);
	assert_int_equal(read(sv[1], got, sizeof(got) - 1), 20);
	assert_string_equal(got, "250 ok 42\r\n221 bye\r\n");
	rec_finish(&r);
	close(sv[1]);
	ev_loop_destroy(loop);
}

static void
test_timeout_fires(void **state)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct rec r;
	double t0;
	int sv[2];

	make_pair(sv);
	rec_init(&r);
	r.done_on = IO_TIMEOUT;
	r.io = io_new(loop, sv[0], rec_cb, &r);
	io_set_timeout(r.io, 1.0);
	/*
	 * Progress within the timeout pushes it back: past the first deadline
	 * nothing fired, and the timeout counts from the input. Wide margins,
	 * so that a loaded machine's late wakeups cannot make it fire early.
	 */
	support_run_for(loop, 0.5);
	t0 = ev_time();
	write_all(sv[1], "x\n");
	support_run_for(loop, 0.7);
	assert_int_equal(r.count[IO_TIMEOUT], 0);
	run_until(loop, &r.done);
	ev_now_update(loop);
	assert_true(ev_now(loop) - t0 >= 0.99);
	assert_int_equal(r.count[IO_TIMEOUT], 1);
	rec_finish(&r);
	close(sv[1]);
	ev_loop_destroy(loop);
}

static void
test_timeout_disabled(void **state)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct rec r;
	int sv[2];

	make_pair(sv);
	rec_init(&r);
	r.io = io_new(loop, sv[0], rec_cb, &r);
	io_set_timeout(r.io, 0.05);
	io_set_timeout(r.io, 0);
	support_run_for(loop, 0.15);
	assert_int_equal(r.count[IO_TIMEOUT], 0);
	rec_finish(&r);
	close(sv[1]);
	ev_loop_destroy(loop);
}

static void
test_eof_disconnected(void **state)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct rec r;
	int sv[2];

	make_pair(sv);
	rec_init(&r);
	r.done_on = IO_DISCONNECTED;
	r.io = io_new(loop, sv[0], rec_cb, &r);
	io_set_timeout(r.io, 5);
	write_all(sv[1], "QUIT\r\n");
	close(sv[1]);
	run_until(loop, &r.done);
	assert_string_equal(r.lines.data, "QUIT|");
	assert_int_equal(r.count[IO_DISCONNECTED], 1);
	/* No more events after the end, not even the timeout. */
	support_run_for(loop, 0.05);
	assert_int_equal(r.count[IO_DISCONNECTED], 1);
	assert_int_equal(r.count[IO_ERROR], 0);
	rec_finish(&r);
	ev_loop_destroy(loop);
}

static void
test_reset_is_error(void **state)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);
	struct linger lg = {1, 0};
	int lfd, cfd, afd;
	struct rec r;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(lfd, 1), 0);
	getsockname(lfd, (struct sockaddr *)&sin, &len);
	cfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(cfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	afd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
	rec_init(&r);
	r.done_on = IO_ERROR;
	r.io = io_new(loop, afd, rec_cb, &r);
	/* SO_LINGER 0 makes close() send RST. */
	setsockopt(cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(cfd);
	run_until(loop, &r.done);
	assert_string_equal(r.err, "read: Connection reset by peer");
	rec_finish(&r);
	close(lfd);
	ev_loop_destroy(loop);
}

static void
run_free_in_callback(enum io_event ev, const char *send, bool close_peer, double timeout)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct rec r;
	int sv[2];

	make_pair(sv);
	rec_init(&r);
	r.done_on = (int)ev;
	r.free_on = (int)ev;
	r.io = io_new(loop, sv[0], rec_cb, &r);
	io_set_timeout(r.io, timeout);
	if (ev == IO_LOWAT)
		io_printf(r.io, "hello\r\n");
	if (send != NULL)
		write_all(sv[1], send);
	if (close_peer)
		close(sv[1]);
	run_until(loop, &r.done);
	assert_null(r.io);
	assert_int_equal(r.count[ev], 1);
	/* The loop must not touch the freed io again (ASan would say). */
	support_run_for(loop, 0.05);
	if (!close_peer)
		close(sv[1]);
	buf_deinit(&r.lines);
	ev_loop_destroy(loop);
}

static void
test_free_in_callback(void **state)
{
	run_free_in_callback(IO_DATAIN, "MAIL FROM:<>\r\nRCPT TO:<a@b>\r\n", false, 0);
	run_free_in_callback(IO_DATAIN, "last words\r\n", true, 0);
	run_free_in_callback(IO_DISCONNECTED, NULL, true, 0);
	run_free_in_callback(IO_LOWAT, NULL, false, 0);
	run_free_in_callback(IO_TIMEOUT, NULL, false, 0.02);
}

static void
test_pause_resume(void **state)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct rec r;
	int sv[2];

	make_pair(sv);
	rec_init(&r);
	r.io = io_new(loop, sv[0], rec_cb, &r);
	r.pause_on = IO_DATAIN;
	write_all(sv[1], "one\r\ntwo\r\n");
	support_run_for(loop, 0.02);
	assert_int_equal(r.count[IO_DATAIN], 1);
	/* Paused: more data and even EOF wait in the kernel. */
	write_all(sv[1], "three\r\n");
	close(sv[1]);
	support_run_for(loop, 0.05);
	assert_int_equal(r.count[IO_DATAIN], 1);
	assert_int_equal(r.count[IO_DISCONNECTED], 0);
	assert_string_equal(io_input(r.io)->data, "one\r\ntwo\r\n");
	/* Writing still works while paused. */
	r.pause_on = -1;
	r.done_on = IO_DISCONNECTED;
	io_resume_read(r.io);
	run_until(loop, &r.done);
	assert_string_equal(r.lines.data, "one|two|three|");
	rec_finish(&r);
	ev_loop_destroy(loop);
}

static void
test_resume_redelivers_buffered(void **state)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct rec r;
	int sv[2];

	make_pair(sv);
	rec_init(&r);
	r.done_on = IO_DATAIN;
	r.io = io_new(loop, sv[0], rec_cb, &r);
	io_pause_read(r.io);
	buf_append_str(io_input(r.io), "pipelined\r\n");
	/* Called outside any callback: the loop must still not sleep on it. */
	io_resume_read(r.io);
	run_until(loop, &r.done);
	assert_int_equal(r.count[IO_DATAIN], 1);
	assert_string_equal(r.lines.data, "pipelined|");
	rec_finish(&r);
	close(sv[1]);
	ev_loop_destroy(loop);
}

static void
test_write_while_paused(void **state)
{
	struct ev_loop *loop = ev_loop_new(0);
	char got[16] = {0};
	struct rec r;
	int sv[2];

	make_pair(sv);
	rec_init(&r);
	r.done_on = IO_LOWAT;
	r.io = io_new(loop, sv[0], rec_cb, &r);
	io_pause_read(r.io);
	write_all(sv[1], "ignored for now\r\n");
	io_printf(r.io, "354 go\r\n");
	run_until(loop, &r.done);
	assert_int_equal(read(sv[1], got, sizeof(got)), 8);
	assert_int_equal(r.count[IO_DATAIN], 0);
	rec_finish(&r);
	close(sv[1]);
	ev_loop_destroy(loop);
}

/*
 * Held output stays queued through loop passes and writes from outside a
 * callback; releasing it sends everything queued in one write, and IO_LOWAT follows.
 */
static void
test_hold_output_until_released(void **state)
{
	struct ev_loop *loop = ev_loop_new(0);
	char got[64] = {0};
	struct rec r;
	int sv[2];

	make_pair(sv);
	rec_init(&r);
	r.done_on = IO_LOWAT;
	r.io = io_new(loop, sv[0], rec_cb, &r);
	io_hold_output(r.io);
	io_printf(r.io, "250 one\r\n");
	support_run_for(loop, 0.05);
	io_printf(r.io, "250 two\r\n");
	support_run_for(loop, 0.05);
	assert_int_equal(read(sv[1], got, sizeof(got)), -1);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(io_output_pending(r.io), 18);
	assert_int_equal(r.count[IO_LOWAT], 0);
	io_release_output(r.io);
	assert_int_equal(read(sv[1], got, sizeof(got)), 18);
	assert_string_equal(got, "250 one\r\n250 two\r\n");
	run_until(loop, &r.done);
	assert_int_equal(r.count[IO_LOWAT], 1);
	rec_finish(&r);
	close(sv[1]);
	ev_loop_destroy(loop);
}

/* A writer io whose peer (sv[1]) does not read, with more than IO_OUT_HIWAT queued. */
static void
backlog_setup(struct ev_loop *loop, struct rec *r, int sv[2], struct slow_reader *s)
{
	const size_t total = 4 * IO_OUT_HIWAT;
	int small = 16 * 1024;
	char *data = malloc(total);

	make_pair(sv);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	memset(data, 'x', total);
	rec_init(r);
	r->io = io_new(loop, sv[0], rec_cb, r);
	assert_int_equal(io_write(r->io, data, total), 0);
	free(data);
	write_all(sv[1], "NOOP\r\n");
	support_run_for(loop, 0.05);
	assert_true(io_output_pending(r->io) > IO_OUT_HIWAT);
	memset(s, 0, sizeof(*s));
	s->fd = sv[1];
	ev_timer_init(&s->t, slow_read_cb, 0.001, 0.001);
	s->t.data = s;
}

/* Regression: a peer pipelining commands without reading replies grew the output without bound. */
static void
test_backlog_stops_reading(void **state)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct slow_reader s;
	struct rec r;
	int sv[2];

	backlog_setup(loop, &r, sv, &s);
	assert_int_equal(r.count[IO_DATAIN], 0);
	/* Draining below the low-water mark lets the waiting input in. */
	r.done_on = IO_DATAIN;
	ev_timer_start(loop, &s.t);
	run_until(loop, &r.done);
	ev_timer_stop(loop, &s.t);
	assert_true(io_output_pending(r.io) < IO_OUT_LOWAT);
	assert_string_equal(r.lines.data, "NOOP|");
	rec_finish(&r);
	close(sv[1]);
	ev_loop_destroy(loop);
}

/* Backlog and io_pause_read() are independent: reading resumes only when both are clear. */
static void
test_backlog_and_pause(void **state)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct slow_reader s;
	struct rec r;
	int sv[2];

	/* Drained while paused: still no input. */
	backlog_setup(loop, &r, sv, &s);
	io_pause_read(r.io);
	ev_timer_start(loop, &s.t);
	while (io_output_pending(r.io) > 0)
		ev_run(loop, EVRUN_ONCE);
	support_run_for(loop, 0.05);
	assert_int_equal(r.count[IO_DATAIN], 0);
	r.done_on = IO_DATAIN;
	io_resume_read(r.io);
	run_until(loop, &r.done);
	ev_timer_stop(loop, &s.t);
	assert_string_equal(r.lines.data, "NOOP|");
	rec_finish(&r);
	close(sv[1]);

	/* Resumed while backlogged: input waits for the drain, and the end after it too. */
	backlog_setup(loop, &r, sv, &s);
	io_pause_read(r.io);
	io_resume_read(r.io);
	shutdown(sv[1], SHUT_WR);
	support_run_for(loop, 0.05);
	assert_int_equal(r.count[IO_DATAIN], 0);
	assert_int_equal(r.count[IO_DISCONNECTED], 0);
	r.done_on = IO_DISCONNECTED;
	ev_timer_start(loop, &s.t);
	run_until(loop, &r.done);
	ev_timer_stop(loop, &s.t);
	assert_string_equal(r.lines.data, "NOOP|");
	rec_finish(&r);
	close(sv[1]);
	ev_loop_destroy(loop);
}

static void
test_write_to_closed_peer(void **state)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct rec r;
	int sv[2];

	make_pair(sv);
	close(sv[1]);
	rec_init(&r);
	r.done_on = IO_ERROR;
	r.io = io_new(loop, sv[0], rec_cb, &r);
	io_pause_read(r.io);
	io_printf(r.io, "250 ok\r\n");
	run_until(loop, &r.done);
	assert_string_equal(r.err, "write: Broken pipe");
	rec_finish(&r);
	ev_loop_destroy(loop);
}

static int
listen_loopback(struct sockaddr_in *sin)
{
	socklen_t len = sizeof(*sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)sin, sizeof(*sin)), 0);
	assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)sin, &len), 0);
	return fd;
}

static void
test_connect_refused(void **state)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct sockaddr_in sin;
	struct tern_err err;
	char want[128];
	struct rec r;

	/* A port that was just listening and is now closed refuses. */
	close(listen_loopback(&sin));
	rec_init(&r);
	r.done_on = IO_ERROR;
	r.io = io_connect(loop, (struct sockaddr *)&sin, sizeof(sin), NULL, 0, rec_cb, &r, &err);
	assert_non_null(r.io);
	run_until(loop, &r.done);
	snprintf(want, sizeof(want), "connect to 127.0.0.1:%u: Connection refused",
		 ntohs(sin.sin_port));
	assert_string_equal(r.err, want);
	assert_int_equal(r.count[IO_CONNECTED], 0);
	rec_finish(&r);
	ev_loop_destroy(loop);
}

/* connect() itself fails (multicast is never a TCP peer): still reported from the loop. */
static void
test_connect_fails_at_once(void **state)
{
	struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons(25)};
	struct ev_loop *loop = ev_loop_new(0);
	struct tern_err err;
	struct rec r;

	inet_pton(AF_INET, "224.0.0.1", &dst.sin_addr);
	rec_init(&r);
	r.done_on = IO_ERROR;
	r.io = io_connect(loop, (struct sockaddr *)&dst, sizeof(dst), NULL, 0, rec_cb, &r, &err);
	assert_non_null(r.io);
	assert_int_equal(r.count[IO_ERROR], 0);
	run_until(loop, &r.done);
	assert_string_equal(r.err, "connect to 224.0.0.1:25: Network is unreachable");
	rec_finish(&r);
	ev_loop_destroy(loop);
}

static void
test_connect_bind_source(void **state)
{
	struct sockaddr_in dst, src = {.sin_family = AF_INET}, peer;
	struct ev_loop *loop = ev_loop_new(0);
	socklen_t len = sizeof(peer);
	struct tern_err err;
	char got[16] = {0};
	int lfd, afd, one = 0;
	socklen_t olen = sizeof(one);
	struct rec r;

	lfd = listen_loopback(&dst);
	inet_pton(AF_INET, "127.0.0.2", &src.sin_addr);
	rec_init(&r);
	r.done_on = IO_LOWAT;
	r.io = io_connect(loop, (struct sockaddr *)&dst, sizeof(dst), (struct sockaddr *)&src,
			  sizeof(src), rec_cb, &r, &err);
	assert_non_null(r.io);
	/* Output queued before the connect completes goes out after it. */
	io_printf(r.io, "EHLO me\r\n");
	run_until(loop, &r.done);
	assert_int_equal(r.count[IO_CONNECTED], 1);
	getsockopt(io_fd(r.io), IPPROTO_TCP, TCP_NODELAY, &one, &olen);
	assert_int_equal(one, 1);
	afd = accept(lfd, (struct sockaddr *)&peer, &len);
	assert_true(afd >= 0);
	assert_string_equal(inet_ntoa(peer.sin_addr), "127.0.0.2");
	assert_int_equal(read(afd, got, sizeof(got)), 9);
	assert_string_equal(got, "EHLO me\r\n");
	rec_finish(&r);
	close(afd);
	close(lfd);
	ev_loop_destroy(loop);
}

static void
test_bind_failure(void **state)
{
	struct sockaddr_in dst, src = {.sin_family = AF_INET};
	struct ev_loop *loop = ev_loop_new(0);
	struct tern_err err;
	int lfd;

	lfd = listen_loopback(&dst);
	/* TEST-NET-1 is never a local address. */
	inet_pton(AF_INET, "192.0.2.1", &src.sin_addr);
	assert_null(io_connect(loop, (struct sockaddr *)&dst, sizeof(dst), (struct sockaddr *)&src,
			       sizeof(src), rec_cb, NULL, &err));
	assert_string_equal(err.msg, "bind to 192.0.2.1:0: Cannot assign requested address");
	close(lfd);
	ev_loop_destroy(loop);
}

static void
test_connect_v6_text(void **state)
{
	struct sockaddr_in6 dst = {.sin6_family = AF_INET6, .sin6_port = htons(1)};
	struct ev_loop *loop = ev_loop_new(0);
	struct tern_err err;
	struct rec r;

	dst.sin6_addr = in6addr_loopback;
	rec_init(&r);
	r.done_on = IO_ERROR;
	r.io = io_connect(loop, (struct sockaddr *)&dst, sizeof(dst), NULL, 0, rec_cb, &r, &err);
	if (r.io == NULL) {
		/* No IPv6 in this sandbox: the failure is still named. */
		assert_true(strncmp(err.msg, "socket: ", 8) == 0);
		ev_loop_destroy(loop);
		return;
	}
	run_until(loop, &r.done);
	assert_true(strncmp(r.err, "connect to [::1]:1: ", 20) == 0);
	rec_finish(&r);
	ev_loop_destroy(loop);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_getline_partial_reads),
	    cmocka_unit_test(test_getline_without_newline),
	    cmocka_unit_test(test_large_write_lowat),
	    cmocka_unit_test(test_printf_and_lowat_per_burst),
	    cmocka_unit_test(test_timeout_fires),
	    cmocka_unit_test(test_timeout_disabled),
	    cmocka_unit_test(test_eof_disconnected),
	    cmocka_unit_test(test_reset_is_error),
	    cmocka_unit_test(test_free_in_callback),
	    cmocka_unit_test(test_pause_resume),
	    cmocka_unit_test(test_resume_redelivers_buffered),
	    cmocka_unit_test(test_write_while_paused), cmocka_unit_test(test_hold_output_until_released),
	    cmocka_unit_test(test_backlog_stops_reading),
	    cmocka_unit_test(test_backlog_and_pause),
	    cmocka_unit_test(test_write_to_closed_peer),
	    cmocka_unit_test(test_connect_refused),
	    cmocka_unit_test(test_connect_fails_at_once),
	    cmocka_unit_test(test_connect_bind_source),
	    cmocka_unit_test(test_bind_failure),
	    cmocka_unit_test(test_connect_v6_text),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
