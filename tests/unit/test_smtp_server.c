// SPDX-License-Identifier: MIT
/*
 * The receiving state machine, one session at a time over a socketpair, on a
 * real shard loop with a real policy and spool: the greeting, EHLO, command
 * order, limits, relay control, RSET, and the end of DATA, whose 250 comes
 * only once the message is in the spool (after the message hook, which may
 * take its time).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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

#include "support.h"
#include "tern/cidr.h"
#include "tern/policy.h"
#include "tern/queue.h"
#include "tern/reception.h"
#include "tern/shard.h"
#include "tern/smtp_server.h"
#include "tern/spool.h"

/*
 * Messages stay in the spool: with no egress set up here, their first attempt
 * would settle them; the failing queue hook makes it a transient failure.
 */
static const char policy_src[] =
	"tern.on('get_queue_config', function() error('hold') end)\n"
	"tern.on('smtp_server_message_received', function(msg)\n"
	"  if msg:get_header('Subject') == 'slow' then tern.sleep(0.3) end\n"
	"  if msg:get_header('Subject') == 'refuse' then tern.reject(550, '5.7.1 no') end\n"
	"end)\n";

struct fixture {
	char dir[64];
	struct spool *spool;
	struct cidr relay;
	struct smtp_listener listener;
	struct listener_port port;
	struct listener_shard ls;
	struct ev_loop *loop;
	int client; /* the test's end of the socketpair */
	char reply[4096];
};

static int
write_policy(const char *path)
{
	FILE *f = fopen(path, "w");

	if (f == NULL)
		return -1;
	fputs(policy_src, f);
	return fclose(f);
}

/*
 * One shard, policy and spool for the whole group (the scheduler keeps
 * per-shard state for the life of the process); a fresh session per test.
 */
static int
group_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char path[128];
	struct policy_options opts = {.policy_path = path};
	struct spool_config scfg = {.path = path};
	struct tern_err err = {0};

	strcpy(f->dir, "/tmp/test_smtp_server.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/policy.lua", f->dir);
	if (write_policy(path) < 0 || shards_init(1, &err) < 0 ||
	    policy_attach_shards(&opts, &err) < 0) {
		fprintf(stderr, "policy: %s\n", err.msg);
		return -1;
	}
	snprintf(path, sizeof(path), "%s/spool", f->dir);
	f->spool = spool_open(&scfg, &err);
	if (f->spool == NULL) {
		fprintf(stderr, "spool: %s\n", err.msg);
		return -1;
	}
	reception_set_spool(f->spool);
	queue_set_spool(f->spool);
	cidr_parse("127.0.0.0/8", &f->relay);
	f->listener.cfg = (struct smtp_listener_config){
		.listen = "127.0.0.1:25",
		.hostname = "mx.test",
		.relay_hosts = &f->relay,
		.n_relay_hosts = 1,
		.max_message_size = 4096,
		.max_recipients = 2,
		.client_timeout = 30,
		.data_timeout = 30,
	};
	f->listener.port = &f->port;
	/*
	 * Sessions here are handed over without accept_one(), which takes each
	 * one's reference; the fixture holds them instead, and its listener is
	 * never freed.
	 */
	atomic_init(&f->listener.refs, 1 << 30);
	f->ls = (struct listener_shard){.listener = &f->listener, .shard = shard_get(0), .fd = -1};
	f->loop = shard_get(0)->loop;
	f->client = -1;
	*state = f;
	return 0;
}

static int
group_teardown(void **state)
{
	struct fixture *f = *state;

	shards_free();
	spool_close(f->spool);
	support_rm_rf(f->dir);
	free(f);
	return 0;
}

/* The test's session and its end of the socketpair go. */
static int
teardown(void **state)
{
	struct fixture *f = *state;

	smtp_sessions_free(&f->ls);
	if (f->client >= 0)
		close(f->client);
	f->client = -1;
	return 0;
}

/* A session on one end of a socketpair, its peer 127.0.0.1:40000; the test holds the other. */
static void
connect_session(struct fixture *f)
{
	struct sockaddr_storage peer = {0};
	struct sockaddr_in *sin = (struct sockaddr_in *)&peer;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	sin->sin_family = AF_INET;
	sin->sin_port = htons(40000);
	inet_pton(AF_INET, "127.0.0.1", &sin->sin_addr);
	f->client = sv[1];
	assert_int_equal(smtp_session_accept(&f->ls, sv[0], &peer), 0);
}

static void
send_text(struct fixture *f, const char *text)
{
	assert_int_equal(write(f->client, text, strlen(text)), (ssize_t)strlen(text));
}

struct reading {
	struct fixture *f;
	size_t len;
	bool closed, done, timed_out;
	ev_io watcher;
	ev_timer guard;
};

/* Read what came; done once a whole reply (a last line "DDD text\r\n") is in, or a close. */
static void
reading_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct reading *r = w->data;
	char *buf = r->f->reply, *line;
	ssize_t n = read(r->f->client, buf + r->len, sizeof(r->f->reply) - 1 - r->len);

	if (n == 0)
		r->closed = r->done = true;
	if (n > 0)
		r->len += (size_t)n;
	buf[r->len] = '\0';
	if (r->done || r->len < 2 || strcmp(buf + r->len - 2, "\r\n") != 0)
		return;
	buf[r->len - 2] = '\0';
	line = strrchr(buf, '\n');
	line = line ? line + 1 : buf;
	r->done = strlen(line) >= 4 && line[3] == ' ';
	buf[r->len - 2] = '\r';
}

static void
reading_guard_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct reading *r = t->data;

	r->timed_out = r->done = true;
}

/*
 * Run the shard's loop (as the shard, so that work posted to it runs) until a
 * whole reply came; it must start with want.
 */
static void
expect(struct fixture *f, const char *want)
{
	struct reading r = {.f = f};

	ev_io_init(&r.watcher, reading_cb, f->client, EV_READ);
	r.watcher.data = &r;
	ev_timer_init(&r.guard, reading_guard_cb, 10.0, 0.);
	r.guard.data = &r;
	ev_io_start(f->loop, &r.watcher);
	ev_timer_start(f->loop, &r.guard);
	shard_run_until(shard_get(0), &r.done);
	ev_io_stop(f->loop, &r.watcher);
	ev_timer_stop(f->loop, &r.guard);
	if (r.timed_out || strncmp(f->reply, want, strlen(want)) != 0)
		fail_msg("expected \"%s\", got \"%s\"%s", want, f->reply,
			 r.closed ? " (closed)" : r.timed_out ? " (nothing more in 10 s)" : "");
}

static void
greet(struct fixture *f)
{
	connect_session(f);
	expect(f, "220 mx.test ESMTP");
	send_text(f, "EHLO client.test\r\n");
	expect(f, "250-mx.test Hello client.test [127.0.0.1]");
}

static void
test_ehlo_lists_the_extensions(void **state)
{
	struct fixture *f = *state;

	greet(f);
	assert_non_null(strstr(f->reply, "250-PIPELINING\r\n"));
	assert_non_null(strstr(f->reply, "250-SIZE 4096\r\n"));
	assert_non_null(strstr(f->reply, "250-8BITMIME\r\n"));
	assert_non_null(strstr(f->reply, "ENHANCEDSTATUSCODES\r\n"));
	assert_null(strstr(f->reply, "STARTTLS")); /* no certificate configured */
}

static void
test_commands_out_of_order_are_refused(void **state)
{
	struct fixture *f = *state;

	connect_session(f);
	expect(f, "220 ");
	send_text(f, "MAIL FROM:<a@b.test>\r\n");
	expect(f, "503 5.5.1");
	send_text(f, "EHLO client.test\r\n");
	expect(f, "250-");
	send_text(f, "RCPT TO:<c@d.test>\r\n");
	expect(f, "503 5.5.1");
	send_text(f, "DATA\r\n");
	expect(f, "503 5.5.1");
	send_text(f, "FROB\r\n");
	expect(f, "500 5.5.");
	send_text(f, "QUIT\r\n");
	expect(f, "221 2.0.0");
}

static void
test_recipient_limit_and_rset(void **state)
{
	struct fixture *f = *state;

	greet(f);
	send_text(f, "MAIL FROM:<a@b.test>\r\n");
	expect(f, "250 2.1.0");
	send_text(f, "RCPT TO:<one@d.test>\r\n");
	expect(f, "250 2.1.5");
	send_text(f, "RCPT TO:<two@d.test>\r\n");
	expect(f, "250 2.1.5");
	send_text(f, "RCPT TO:<three@d.test>\r\n");
	expect(f, "452 4.5.3");
	send_text(f, "RSET\r\n");
	expect(f, "250 2.0.0");
	/* The transaction is gone: RCPT needs a new MAIL. */
	send_text(f, "RCPT TO:<one@d.test>\r\n");
	expect(f, "503 5.5.1");
}

static void
test_size_over_the_limit_is_refused_at_mail(void **state)
{
	struct fixture *f = *state;

	greet(f);
	send_text(f, "MAIL FROM:<a@b.test> SIZE=5000\r\n");
	expect(f, "552 5.3.4");
}

/* The ids of a "250 2.0.0 OK queued as ID ..." reply are each in the spool now. */
static size_t
assert_ids_spooled(struct fixture *f)
{
	static const char head[] = "250 2.0.0 OK queued as ";
	char *save = NULL, *tok;
	size_t n = 0;

	assert_memory_equal(f->reply, head, sizeof(head) - 1);
	for (tok = strtok_r(f->reply + sizeof(head) - 1, " \r\n", &save); tok;
	     tok = strtok_r(NULL, " \r\n", &save)) {
		struct spool_id id;
		struct buf meta;
		struct tern_err err = {0};

		assert_int_equal(spool_id_from_hex(tok, strlen(tok), &id), 0);
		buf_init(&meta);
		if (spool_get_meta(f->spool, &id, &meta, &err) != 0)
			fail_msg("id %s acknowledged but not in the spool: %s", tok, err.msg);
		buf_deinit(&meta);
		n++;
	}
	return n;
}

static void
send_message(struct fixture *f, const char *subject)
{
	char body[256];

	send_text(f, "MAIL FROM:<a@b.test>\r\n");
	expect(f, "250 2.1.0");
	send_text(f, "RCPT TO:<one@d.test>\r\n");
	expect(f, "250 2.1.5");
	send_text(f, "RCPT TO:<two@d.test>\r\n");
	expect(f, "250 2.1.5");
	send_text(f, "DATA\r\n");
	expect(f, "354 ");
	snprintf(body, sizeof(body), "From: a@b.test\r\nSubject: %s\r\n\r\nhello\r\n.\r\n", subject);
	send_text(f, body);
}

static void
test_250_comes_when_the_message_is_in_the_spool(void **state)
{
	struct fixture *f = *state;

	greet(f);
	send_message(f, "fast");
	expect(f, "250 2.0.0 OK queued as ");
	/* Checked at the moment the reply is read, before the loop runs again. */
	assert_int_equal(assert_ids_spooled(f), 2);
}

static void
test_250_waits_for_the_message_hook_then_the_spool(void **state)
{
	struct fixture *f = *state;
	double start;

	greet(f);
	send_message(f, "slow");
	start = ev_time();
	expect(f, "250 2.0.0 OK queued as ");
	/* The hook sleeps 0.3 s; the reply cannot come before it returned. */
	assert_true(ev_time() - start >= 0.29);
	assert_int_equal(assert_ids_spooled(f), 2);
}

static uint64_t
announced(struct fixture *f)
{
	struct spool_stats st;

	spool_stats(f->spool, &st);
	return st.announced;
}

static void
run_done_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	*(bool *)t->data = true;
}

/* Run the shard's loop for a while. */
static void
run_for(struct fixture *f, double seconds)
{
	bool done = false;
	ev_timer t;

	ev_timer_init(&t, run_done_cb, seconds, 0.);
	t.data = &done;
	ev_timer_start(f->loop, &t);
	shard_run_until(shard_get(0), &done);
	ev_timer_stop(f->loop, &t);
}

/*
 * While its hooks run, a message's put is announced to the spool, whose
 * writer may wait for it; the announcement goes with the put, a refusal or
 * the session.
 */
static void
test_the_spool_is_told_of_puts_on_their_way(void **state)
{
	struct fixture *f = *state;

	greet(f);
	send_message(f, "slow");
	run_for(f, 0.15);
	assert_int_equal(announced(f), 1);
	expect(f, "250 2.0.0 OK queued as ");
	assert_int_equal(announced(f), 0);
	send_message(f, "refuse");
	expect(f, "550 5.7.1 no");
	assert_int_equal(announced(f), 0);
	send_message(f, "slow");
	run_for(f, 0.15);
	assert_int_equal(announced(f), 1);
	close(f->client);
	f->client = -1;
	run_for(f, 0.3);
	assert_int_equal(announced(f), 0);
}

/*
 * A client that pipelines MAIL, RCPT and BDAT LAST with its body gets the
 * three replies in one write once the message is spooled, not the first two
 * at once and the last alone: one packet and one wake-up less per message.
 */
static void
test_a_pipelined_bdat_transaction_gets_its_replies_together(void **state)
{
	static const char body[] = "From: a@b.test\r\nSubject: slow\r\n\r\nhello\r\n";
	struct fixture *f = *state;
	char tx[512], early[64];

	greet(f);
	snprintf(tx, sizeof(tx), "MAIL FROM:<a@b.test>\r\nRCPT TO:<one@d.test>\r\nBDAT %zu LAST\r\n%s",
		 sizeof(body) - 1, body);
	send_text(f, tx);
	run_for(f, 0.15);
	/* The message hook sleeps 0.3 s: the MAIL and RCPT replies wait with it. */
	assert_int_equal(read(f->client, early, sizeof(early)), -1);
	assert_int_equal(errno, EAGAIN);
	expect(f, "250 2.1.0");
	assert_non_null(strstr(f->reply, "\r\n250 2.1.5"));
	assert_non_null(strstr(f->reply, "\r\n250 2.0.0 OK queued as "));
	/* The next transaction's replies are not held: its MAIL is answered at once. */
	send_text(f, "MAIL FROM:<a@b.test>\r\n");
	expect(f, "250 2.1.0");
}

static void
test_relay_denied_outside_relay_hosts(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_storage peer = {0};
	struct sockaddr_in *sin = (struct sockaddr_in *)&peer;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	sin->sin_family = AF_INET;
	inet_pton(AF_INET, "192.0.2.7", &sin->sin_addr);
	f->client = sv[1];
	assert_int_equal(smtp_session_accept(&f->ls, sv[0], &peer), 0);
	expect(f, "220 ");
	send_text(f, "EHLO far.test\r\n");
	expect(f, "250-");
	send_text(f, "MAIL FROM:<a@b.test>\r\n");
	expect(f, "250 2.1.0");
	send_text(f, "RCPT TO:<c@d.test>\r\n");
	expect(f, "550 5.7.1 Relaying denied");
}

static void
test_shutdown_tells_an_idle_session(void **state)
{
	struct fixture *f = *state;

	greet(f);
	smtp_sessions_shutdown(&f->ls);
	expect(f, "421 4.3.2 Service shutting down");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_ehlo_lists_the_extensions, teardown),
		cmocka_unit_test_teardown(test_commands_out_of_order_are_refused, teardown),
		cmocka_unit_test_teardown(test_recipient_limit_and_rset, teardown),
		cmocka_unit_test_teardown(test_size_over_the_limit_is_refused_at_mail, teardown),
		cmocka_unit_test_teardown(test_250_comes_when_the_message_is_in_the_spool, teardown),
		cmocka_unit_test_teardown(test_250_waits_for_the_message_hook_then_the_spool, teardown),
		cmocka_unit_test_teardown(test_the_spool_is_told_of_puts_on_their_way, teardown),
		cmocka_unit_test_teardown(test_a_pipelined_bdat_transaction_gets_its_replies_together,
					  teardown),
		cmocka_unit_test_teardown(test_relay_denied_outside_relay_hosts, teardown),
		cmocka_unit_test_teardown(test_shutdown_tells_an_idle_session, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
