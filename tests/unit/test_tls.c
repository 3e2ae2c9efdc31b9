// SPDX-License-Identifier: MIT
/*
 * TLS contexts and io over TLS: both ends of a socketpair on one libev loop,
 * a server and a client io each, with a throwaway certificate made by the
 * openssl command in a mkdtemp directory for this run.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "tern/io.h"

#include "support.h"
#include "tern/tls.h"

static char dir[64];
static char cert_file[128], key_file[128], other_key[128], junk_file[128];
static SSL_CTX *server_ctx, *client_ctx;

/* One end of a connection: what it saw and what it does in its callback. */
struct end {
	struct io *io;
	int count[IO_ERROR + 1];
	struct buf lines; /* each line followed by '|' */
	char err[256];
	const char *greet;  /* written on IO_TLSREADY */
	int free_on;	    /* event on which the io is freed, or -1 */
	bool pause_on_data; /* pause reading at IO_DATAIN, leaving the input alone */
	void (*on_line)(struct end *e, const char *line, size_t len);
	struct end *peer;
};

static void
run_while(struct ev_loop *loop, bool (*busy)(void *), void *arg)
{
	assert_true(support_run_while(loop, busy, arg));
}

static void
end_lines(struct end *e, struct io *io)
{
	const char *line;
	size_t len, used;

	while (e->io != NULL && (line = io_getline(io, &len, &used)) != NULL) {
		buf_append(&e->lines, line, len);
		buf_append_char(&e->lines, '|');
		/* Consume first: on_line may start TLS, which empties the input. */
		io_consume(io, used);
		if (e->on_line != NULL)
			e->on_line(e, e->lines.data + e->lines.len - len - 1, len);
	}
}

static void
end_cb(struct io *io, enum io_event ev, void *arg)
{
	struct end *e = arg;

	e->count[ev]++;
	if (ev == IO_TLSREADY && e->greet != NULL)
		io_printf(io, "%s\r\n", e->greet);
	if (ev == IO_DATAIN && e->pause_on_data)
		io_pause_read(io);
	else if (ev == IO_DATAIN)
		end_lines(e, io);
	if (ev == IO_ERROR)
		snprintf(e->err, sizeof(e->err), "%s", io_error(io));
	if ((int)ev == e->free_on) {
		io_free(io);
		e->io = NULL;
	}
}

static void
end_init(struct end *e, struct ev_loop *loop, int fd)
{
	memset(e, 0, sizeof(*e));
	buf_init(&e->lines);
	e->free_on = -1;
	e->io = io_new(loop, fd, end_cb, e);
}

static void
end_deinit(struct end *e)
{
	io_free(e->io);
	buf_deinit(&e->lines);
}

static void
make_pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
}

static int
sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

static int
setup(void **state)
{
	struct tern_err err;
	FILE *f;

	snprintf(dir, sizeof(dir), "/tmp/tern-tls-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(cert_file, sizeof(cert_file), "%s/cert.pem", dir);
	snprintf(key_file, sizeof(key_file), "%s/key.pem", dir);
	snprintf(other_key, sizeof(other_key), "%s/other.pem", dir);
	snprintf(junk_file, sizeof(junk_file), "%s/junk.pem", dir);
	if (sh("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost "
	       "-keyout %s -out %s 2>/dev/null",
	       key_file, cert_file) != 0)
		return -1;
	if (sh("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out %s", other_key))
		return -1;
	f = fopen(junk_file, "w");
	fputs("this is not PEM\n", f);
	fclose(f);
	server_ctx = tls_server_ctx_new(cert_file, key_file, &err);
	client_ctx = tls_client_ctx_new(&err);
	return server_ctx && client_ctx ? 0 : -1;
}

static int
teardown(void **state)
{
	SSL_CTX_free(server_ctx);
	SSL_CTX_free(client_ctx);
	sh("rm -rf %s", dir);
	return 0;
}

static void
expect_ctx_error(const char *cert, const char *key, const char *want_fmt, const char *arg1,
		 const char *arg2)
{
	struct tern_err err = {0};
	char want[512];

	snprintf(want, sizeof(want), want_fmt, arg1, arg2);
	assert_null(tls_server_ctx_new(cert, key, &err));
	assert_string_equal(err.msg, want);
}

/* Listener TLS options: checked before any certificate is read, each error naming its option. */
static void
test_server_options(void **state)
{
	struct tls_server_options opts = {.ciphers = "ECDHE-RSA-AES256-GCM-SHA384"};
	struct tern_err err = {0};
	int v = 0;

	assert_int_equal(tls_server_options_check(NULL, &err), 0);
	assert_int_equal(tls_server_options_check(&opts, &err), 0);
	opts.ciphers = "NOSUCHCIPHER";
	assert_int_equal(tls_server_options_check(&opts, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "tls_ciphers 'NOSUCHCIPHER': "));
	opts = (struct tls_server_options){.ciphersuites = "TLS_NOPE"};
	assert_int_equal(tls_server_options_check(&opts, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "tls_ciphersuites 'TLS_NOPE': "));
	assert_int_equal(tls_parse_version("1.3", &v), 0);
	assert_int_equal(v, TLS1_3_VERSION);
	assert_int_equal(tls_parse_version("1.2", &v), 0);
	assert_int_equal(v, TLS1_2_VERSION);
	assert_int_equal(tls_parse_version("1.1", &v), -EINVAL);
}

static void
test_ctx_errors(void **state)
{
	char missing[160];

	snprintf(missing, sizeof(missing), "%s/missing.pem", dir);
	expect_ctx_error(missing, key_file, "tls_certificate %s: No such file or directory",
			 missing, NULL);
	expect_ctx_error(junk_file, key_file, "tls_certificate %s: no start line", junk_file, NULL);
	expect_ctx_error(cert_file, missing, "tls_private_key %s: No such file or directory",
			 missing, NULL);
	expect_ctx_error(cert_file, other_key,
			 "tls_private_key %s does not match tls_certificate %s", other_key,
			 cert_file);
}

static void
test_days_left(void **state)
{
	double days = 0;
	SSL_CTX *plain;

	assert_int_equal(tls_cert_days_left(server_ctx, &days), 0);
	assert_true(days > 1.99 && days <= 2.0);
	plain = tls_client_ctx_new(NULL);
	assert_int_equal(tls_cert_days_left(plain, &days), -ENOENT);
	SSL_CTX_free(plain);
}

static void
count_server(const char *cert, time_t not_after, void *arg)
{
	++*(int *)arg;
}

/* Regression: listener certificates were never re-read once loaded. */
static void
test_server_reload(void **state)
{
	char cert[160], key[160];
	struct tls_server *ts;
	struct tern_err err;
	SSL_CTX *before, *after;
	int n = 0;

	snprintf(cert, sizeof(cert), "%s/reload.pem", dir);
	snprintf(key, sizeof(key), "%s/reload.key", dir);
	assert_int_equal(sh("cp %s %s && cp %s %s", cert_file, cert, key_file, key), 0);
	ts = tls_server_new(cert, key, NULL, &err);
	assert_non_null(ts);
	assert_true(llabs((long long)(tls_server_not_after(ts) - time(NULL) - 2 * 86400)) < 60);
	assert_int_equal(tls_server_check(ts, false, &err), 0);
	tls_server_foreach(count_server, &n);
	assert_int_equal(n, 1);
	before = tls_server_get(ts);

	/* A corrupt replacement keeps the old context, and is not retried until it changes. */
	assert_int_equal(sh("cp %s %s", junk_file, cert), 0);
	assert_true(tls_server_check(ts, false, &err) < 0);
	assert_non_null(strstr(err.msg, "tls_certificate"));
	assert_int_equal(tls_server_check(ts, false, &err), 0);
	after = tls_server_get(ts);
	assert_ptr_equal(before, after);
	SSL_CTX_free(after);

	assert_int_equal(sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
			    "-days 90 -subj /CN=new -keyout %s -out %s 2>/dev/null",
			    key, cert),
			 0);
	assert_int_equal(tls_server_check(ts, false, &err), 1);
	after = tls_server_get(ts);
	assert_ptr_not_equal(before, after);
	assert_true(tls_server_not_after(ts) - time(NULL) > 89 * 86400);
	SSL_CTX_free(after);
	SSL_CTX_free(before); /* still valid: our reference kept it alive across the swap */
	tls_server_free(ts);
}

struct pair {
	struct ev_loop *loop;
	struct end s, c;
	int sv[2];
};

static void
pair_init(struct pair *p)
{
	p->loop = ev_loop_new(0);
	make_pair(p->sv);
	end_init(&p->s, p->loop, p->sv[0]);
	end_init(&p->c, p->loop, p->sv[1]);
	p->s.peer = &p->c;
	p->c.peer = &p->s;
}

static void
pair_deinit(struct pair *p)
{
	end_deinit(&p->s);
	end_deinit(&p->c);
	ev_loop_destroy(p->loop);
}

static bool
both_have_lines(void *arg)
{
	struct pair *p = arg;

	return p->s.lines.len == 0 || p->c.lines.len == 0;
}

static void
test_handshake_exchange(void **state)
{
	struct pair p;

	pair_init(&p);
	p.s.greet = "hello from server";
	p.c.greet = "hello from client";
	assert_int_equal(io_start_tls_server(p.s.io, server_ctx), 0);
	assert_int_equal(io_start_tls_client(p.c.io, client_ctx, "localhost"), 0);
	assert_false(io_is_tls(p.s.io));
	assert_null(io_tls_version(p.s.io));
	run_while(p.loop, both_have_lines, &p);
	assert_string_equal(p.s.lines.data, "hello from client|");
	assert_string_equal(p.c.lines.data, "hello from server|");
	assert_int_equal(p.s.count[IO_TLSREADY], 1);
	assert_int_equal(p.c.count[IO_TLSREADY], 1);
	assert_true(io_is_tls(p.c.io));
	assert_string_equal(io_tls_version(p.s.io), "TLSv1.3");
	assert_string_equal(io_tls_version(p.c.io), "TLSv1.3");
	assert_non_null(io_tls_cipher(p.c.io));
	assert_string_equal(io_tls_cipher(p.s.io), io_tls_cipher(p.c.io));
	/* A second handshake on the same stream is refused. */
	assert_int_equal(io_start_tls_server(p.s.io, server_ctx), -EINVAL);
	pair_deinit(&p);
}

static void
test_tls12(void **state)
{
	SSL_CTX *old = tls_client_ctx_new(NULL);
	struct pair p;

	SSL_CTX_set_max_proto_version(old, TLS1_2_VERSION);
	pair_init(&p);
	p.s.greet = "s";
	p.c.greet = "c";
	io_start_tls_server(p.s.io, server_ctx);
	io_start_tls_client(p.c.io, old, "127.0.0.1");
	run_while(p.loop, both_have_lines, &p);
	assert_string_equal(io_tls_version(p.c.io), "TLSv1.2");
	assert_string_equal(p.s.lines.data, "c|");
	pair_deinit(&p);
	SSL_CTX_free(old);
}

/*
 * Several MB each way at once: partial writes, WANT_* and the 64 KiB read cap.
 * Each side keeps less than IO_OUT_HIWAT queued, topping up at IO_LOWAT: with
 * more, both would stop reading while the other does not read either (the
 * output backpressure a request/response peer never meets).
 */
#define BULK_CHUNK (IO_OUT_HIWAT - 1000)

struct bulk {
	struct pair p;
	const char *data;
	size_t total;
	size_t sent[2];
	size_t got[2];
	size_t bad[2];
};

static char
pattern_at(size_t i)
{
	return (char)('A' + (i * 13 + i / 1000) % 26);
}

static void
bulk_take(struct io *io, size_t *got, size_t *bad)
{
	struct buf *in = io_input(io);

	for (size_t i = 0; i < in->len; i++)
		if (*bad == 0 && in->data[i] != pattern_at(*got + i))
			*bad = *got + i + 1;
	*got += in->len;
	io_consume(io, in->len);
}

static struct bulk *bulk_cur;

static void
bulk_send(struct io *io, struct bulk *b, int side)
{
	size_t n = b->total - b->sent[side];

	if (n > BULK_CHUNK)
		n = BULK_CHUNK;
	assert_int_equal(io_write(io, b->data + b->sent[side], n), 0);
	b->sent[side] += n;
}

static void
bulk_cb(struct io *io, enum io_event ev, void *arg)
{
	struct end *e = arg;
	int side = e == &bulk_cur->p.s ? 0 : 1;

	e->count[ev]++;
	if (ev == IO_LOWAT && bulk_cur->sent[side] < bulk_cur->total)
		bulk_send(io, bulk_cur, side);
	if (ev == IO_DATAIN)
		bulk_take(io, &bulk_cur->got[side], &bulk_cur->bad[side]);
	if (ev == IO_ERROR)
		snprintf(e->err, sizeof(e->err), "%s", io_error(io));
}

static bool
bulk_busy(void *arg)
{
	struct bulk *b = arg;

	return (b->got[0] < b->total || b->got[1] < b->total) && !b->p.s.err[0] && !b->p.c.err[0];
}

static void
test_bulk_both_ways(void **state)
{
	struct bulk b = {.total = 4 * 1024 * 1024 + 17};
	char *data = malloc(b.total);
	int chunks = (int)((b.total + BULK_CHUNK - 1) / BULK_CHUNK);

	for (size_t i = 0; i < b.total; i++)
		data[i] = pattern_at(i);
	b.data = data;
	bulk_cur = &b;
	pair_init(&b.p);
	io_set_callback(b.p.s.io, bulk_cb, &b.p.s);
	io_set_callback(b.p.c.io, bulk_cb, &b.p.c);
	io_start_tls_server(b.p.s.io, server_ctx);
	io_start_tls_client(b.p.c.io, client_ctx, NULL);
	/* Queued during the handshake: goes out encrypted once it completes. */
	bulk_send(b.p.s.io, &b, 0);
	bulk_send(b.p.c.io, &b, 1);
	run_while(b.p.loop, bulk_busy, &b);
	assert_string_equal(b.p.s.err, "");
	assert_int_equal(b.got[0], b.total);
	assert_int_equal(b.got[1], b.total);
	assert_int_equal(b.bad[0], 0);
	assert_int_equal(b.bad[1], 0);
	assert_int_equal(b.p.s.count[IO_LOWAT], chunks);
	assert_int_equal(b.p.c.count[IO_LOWAT], chunks);
	pair_deinit(&b.p);
	free(data);
}

/*
 * STARTTLS after a plaintext exchange. Each side pipelines a line after
 * the STARTTLS command or its 220 reply; RFC 3207 says neither may be
 * taken as said under TLS.
 */
static void
server_line(struct end *e, const char *line, size_t len)
{
	if (len == 6 && memcmp(line, "EHLO a", 6) == 0) {
		io_printf(e->io, "250 a\r\n");
	} else if (len == 8 && memcmp(line, "STARTTLS", 8) == 0) {
		io_printf(e->io, "220 go\r\n250 injected reply\r\n");
		assert_int_equal(io_start_tls_server(e->io, server_ctx), 0);
		assert_int_equal(io_input(e->io)->len, 0);
	} else if (len == 6 && memcmp(line, "EHLO b", 6) == 0) {
		io_printf(e->io, "250 b via %s\r\n", io_tls_version(e->io));
	}
}

static void
client_line(struct end *e, const char *line, size_t len)
{
	if (len == 5 && memcmp(line, "250 a", 5) == 0)
		io_printf(e->io, "STARTTLS\r\nINJECTED command\r\n");
	else if (len == 6 && memcmp(line, "220 go", 6) == 0)
		assert_int_equal(io_start_tls_client(e->io, client_ctx, "localhost"), 0);
}

static bool
upgrade_busy(void *arg)
{
	struct pair *p = arg;

	return strstr(p->c.lines.data ? p->c.lines.data : "", "250 b") == NULL && !p->s.err[0] &&
	       !p->c.err[0];
}

static void
test_starttls_upgrade(void **state)
{
	struct pair p;

	pair_init(&p);
	p.s.on_line = server_line;
	p.c.on_line = client_line;
	p.c.greet = "EHLO b";
	io_printf(p.c.io, "EHLO a\r\n");
	run_while(p.loop, upgrade_busy, &p);
	assert_string_equal(p.s.err, "");
	assert_string_equal(p.s.lines.data, "EHLO a|STARTTLS|EHLO b|");
	assert_string_equal(p.c.lines.data, "250 a|220 go|250 b via TLSv1.3|");
	pair_deinit(&p);
}

static bool
both_ended(void *arg)
{
	struct pair *p = arg;

	return p->s.count[IO_ERROR] + p->s.count[IO_DISCONNECTED] == 0 ||
	       p->c.count[IO_ERROR] + p->c.count[IO_DISCONNECTED] == 0;
}

static void
test_alert_reason(void **state)
{
	SSL_CTX *strict = tls_client_ctx_new(NULL);
	struct pair p;

	/* Verifying against an empty trust store: the client rejects, the server hears why. */
	SSL_CTX_set_verify(strict, SSL_VERIFY_PEER, NULL);
	pair_init(&p);
	io_start_tls_server(p.s.io, server_ctx);
	io_start_tls_client(p.c.io, strict, "localhost");
	run_while(p.loop, both_ended, &p);
	assert_string_equal(p.c.err, "TLS handshake: certificate verify failed");
	assert_string_equal(p.s.err, "TLS handshake: tlsv1 alert unknown ca");
	assert_int_equal(p.s.count[IO_TLSREADY], 0);
	pair_deinit(&p);
	SSL_CTX_free(strict);
}

static bool
server_ended(void *arg)
{
	struct end *s = arg;

	return s->count[IO_ERROR] + s->count[IO_DISCONNECTED] + s->count[IO_TIMEOUT] == 0;
}

static void
test_plaintext_into_handshake(void **state)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct end s;
	int sv[2];

	make_pair(sv);
	end_init(&s, loop, sv[0]);
	io_start_tls_server(s.io, server_ctx);
	assert_int_equal(write(sv[1], "EHLO x\r\n", 8), 8);
	run_while(loop, server_ended, &s);
	assert_string_equal(s.err, "TLS handshake: wrong version number");
	end_deinit(&s);
	close(sv[1]);
	ev_loop_destroy(loop);
}

static void
test_handshake_timeout(void **state)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct end s;
	int sv[2];

	make_pair(sv);
	end_init(&s, loop, sv[0]);
	io_set_timeout(s.io, 0.05);
	io_start_tls_server(s.io, server_ctx);
	run_while(loop, server_ended, &s);
	assert_int_equal(s.count[IO_TIMEOUT], 1);
	end_deinit(&s);
	close(sv[1]);
	ev_loop_destroy(loop);
}

static bool
server_no_data(void *arg)
{
	struct end *s = arg;

	return s->count[IO_DATAIN] == 0;
}

static bool
server_idle(void *arg)
{
	struct pair *p = arg;

	return p->s.lines.len == 0;
}

static void
start_and_greet(struct pair *p)
{
	pair_init(p);
	p->c.greet = "hi";
	io_start_tls_server(p->s.io, server_ctx);
	io_start_tls_client(p->c.io, client_ctx, "localhost");
	run_while(p->loop, server_idle, p);
}

static void
test_close_notify_and_eof(void **state)
{
	struct pair p;

	/* io_free sends close_notify: a clean end. */
	start_and_greet(&p);
	io_free(p.c.io);
	p.c.io = NULL;
	run_while(p.loop, server_ended, &p.s);
	assert_int_equal(p.s.count[IO_DISCONNECTED], 1);
	pair_deinit(&p);

	/* A peer that just closes TCP, as many MTAs do, is an end too, not an error. */
	start_and_greet(&p);
	shutdown(io_fd(p.c.io), SHUT_WR);
	run_while(p.loop, server_ended, &p.s);
	assert_int_equal(p.s.count[IO_DISCONNECTED], 1);
	assert_string_equal(p.s.err, "");
	pair_deinit(&p);
}

/*
 * Data and close_notify read in one step while the reader pauses at the
 * data: the end is held until resume, and comes after the buffered input.
 */
static void
test_end_held_while_paused(void **state)
{
	struct pair p;

	pair_init(&p);
	p.s.pause_on_data = true;
	p.c.greet = "last words";
	p.c.free_on = IO_LOWAT;
	io_start_tls_server(p.s.io, server_ctx);
	io_start_tls_client(p.c.io, client_ctx, NULL);
	run_while(p.loop, server_no_data, &p.s);
	support_run_for(p.loop, 0.05);
	assert_null(p.c.io);
	assert_int_equal(p.s.count[IO_DATAIN], 1);
	assert_int_equal(p.s.count[IO_DISCONNECTED], 0);
	p.s.pause_on_data = false;
	io_resume_read(p.s.io);
	run_while(p.loop, server_ended, &p.s);
	assert_string_equal(p.s.lines.data, "last words|");
	assert_int_equal(p.s.count[IO_DISCONNECTED], 1);
	pair_deinit(&p);
}

static void
test_free_in_tls_callbacks(void **state)
{
	struct pair p;

	pair_init(&p);
	p.s.free_on = IO_TLSREADY;
	p.c.greet = "hi";
	io_start_tls_server(p.s.io, server_ctx);
	io_start_tls_client(p.c.io, client_ctx, NULL);
	run_while(p.loop, server_ended, &p.c);
	assert_null(p.s.io);
	pair_deinit(&p);

	pair_init(&p);
	p.s.free_on = IO_DATAIN;
	p.c.greet = "hi";
	io_start_tls_server(p.s.io, server_ctx);
	io_start_tls_client(p.c.io, client_ctx, NULL);
	run_while(p.loop, server_ended, &p.c);
	assert_null(p.s.io);
	assert_int_equal(p.c.count[IO_DISCONNECTED], 1);
	support_run_for(p.loop, 0.02);
	pair_deinit(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ctx_errors),
	    cmocka_unit_test(test_server_options),
	    cmocka_unit_test(test_days_left),
	    cmocka_unit_test(test_server_reload),
	    cmocka_unit_test(test_handshake_exchange),
	    cmocka_unit_test(test_tls12),
	    cmocka_unit_test(test_bulk_both_ways),
	    cmocka_unit_test(test_starttls_upgrade),
	    cmocka_unit_test(test_alert_reason),
	    cmocka_unit_test(test_plaintext_into_handshake),
	    cmocka_unit_test(test_handshake_timeout),
	    cmocka_unit_test(test_close_notify_and_eof),
	    cmocka_unit_test(test_end_held_while_paused),
	    cmocka_unit_test(test_free_in_tls_callbacks),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
