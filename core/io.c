// SPDX-License-Identifier: MIT
/*
 * One buffered, non-blocking stream over a socket, plain or TLS, on libev
 * (after OpenSMTPD's ioev.c). A single ev_io watcher has its interest
 * recomputed from the state after every step (io_update), so read and write
 * wishes of TLS (which may need to write to read, or read to write) and of the
 * protocol above are expressed in one place. An ev_timer restarted on every
 * bit of progress gives the inactivity timeout.
 *
 * Events are delivered from inside the watcher callbacks; the io counts how
 * deep it is in its own callbacks so that io_free() there only marks it dead
 * and the outermost frame destroys it once the user callback has returned.
 *
 * Input is read only while two independent conditions are clear: the
 * protocol has not paused reading (a hook runs), and the output is not
 * backlogged. A peer that pipelines requests without reading the replies
 * would otherwise grow the output buffer without bound; with the high/low
 * water marks its requests wait in the kernel, whose buffers are bounded, and
 * TCP flow control slows the peer down.
 */
#include "tern/io.h"
#include "tern/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>
#include <openssl/err.h>

/* Bytes read per readiness event: bounds the time one busy peer holds the loop. */
#define IO_READ_MAX (64 * 1024)
/* A TLS write never passes more than this, so a retried SSL_write keeps its length. */
#define IO_TLS_WRITE_MAX (1024 * 1024)
/* Buffers larger than this are released when empty, so idle streams stay small. */
#define IO_BUF_KEEP (256 * 1024)
/* "[v6 address]:port" */
#define IO_PEER_MAX (INET6_ADDRSTRLEN + 8)

enum io_state {
	IO_ST_CONNECTING,
	IO_ST_HANDSHAKE,
	IO_ST_OPEN,
	IO_ST_CLOSED, /* after IO_DISCONNECTED or IO_ERROR: no more events */
};

/* Outcome of one read or write step. */
enum io_step {
	IO_STEP_OK,
	IO_STEP_EOF,
	IO_STEP_ERROR,
};

struct io {
	struct ev_loop *loop;
	int fd;
	ev_io w;
	ev_timer timer;
	ev_timer kick; /* see io_kick() */
	int kick_events;
	double timeout;
	io_cb_fn cb;
	void *arg;
	enum io_state state;

	struct buf in;
	struct buf out;
	size_t out_off;	   /* bytes of out already written */
	size_t plain_left; /* plaintext still to flush before the TLS handshake */
	bool had_output;   /* something was queued since the last IO_LOWAT */
	bool holding;	   /* queued output waits for io_release_output */
	bool reads_fixed;  /* input does not restart the timeout (io_set_reads_extend_timeout) */

	bool paused;	   /* the protocol stopped reading (io_pause_read) */
	bool backlogged;   /* output above IO_OUT_HIWAT, not yet drained below IO_OUT_LOWAT */
	bool redeliver;	   /* deliver IO_DATAIN for buffered input on resume */
	int pending_end;   /* IO_DISCONNECTED or IO_ERROR held back while not reading, or -1 */
	int connect_errno; /* connect() failed at once; reported from the loop */

	SSL *ssl;
	bool tls_ready;
	int hs_events;	       /* what the handshake waits for */
	bool read_wants_write; /* SSL_read returned WANT_WRITE */
	bool write_wants_read; /* SSL_write returned WANT_READ */

	int busy; /* depth of our own callbacks on the stack */
	bool dead;

	char peer[IO_PEER_MAX];
	char err[256];
};

static void io_on_ready(struct ev_loop *loop, ev_io *w, int revents);
static void io_on_timeout(struct ev_loop *loop, ev_timer *t, int revents);
static void io_on_kick(struct ev_loop *loop, ev_timer *t, int revents);

static void
io_set_error(struct io *io, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(io->err, sizeof(io->err), fmt, ap);
	va_end(ap);
}

static bool
io_ssl_is_eof(int sslerr)
{
	unsigned long e;

	if (sslerr == SSL_ERROR_ZERO_RETURN)
		return true;
	if (sslerr == SSL_ERROR_SYSCALL)
		return ERR_peek_error() == 0 && errno == 0;
	if (sslerr != SSL_ERROR_SSL)
		return false;
	e = ERR_peek_error();
	return ERR_GET_LIB(e) == ERR_LIB_SSL &&
	       ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
}

/* Turn a failed SSL_* call into an error text; what names the operation. */
static void
io_ssl_error(struct io *io, int sslerr, const char *what)
{
	if (sslerr == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
		io_set_error(io, "%s: %s", what, errno ? strerror(errno) : "unexpected EOF");
		return;
	}
	io_set_error(io, "%s: %s", what, tls_last_error());
}

static void
io_progress(struct io *io)
{
	if (io->timeout > 0)
		ev_timer_again(io->loop, &io->timer);
}

/* Deliver ev to the user; returns true when the io was freed meanwhile. */
static bool
io_emit(struct io *io, enum io_event ev)
{
	io->cb(io, ev, io->arg);
	return io->dead;
}

static bool
io_finish(struct io *io, enum io_event ev)
{
	io->state = IO_ST_CLOSED;
	ev_timer_stop(io->loop, &io->timer);
	return io_emit(io, ev);
}

/* Both conditions that stop reading must be clear. */
static bool
io_reading(const struct io *io)
{
	return !io->paused && !io->backlogged;
}

static int
io_events_open(const struct io *io)
{
	int ev = 0;

	if (io_reading(io) || io->write_wants_read)
		ev |= EV_READ;
	if ((io->out_off < io->out.len && !io->holding) || io->read_wants_write)
		ev |= EV_WRITE;
	return ev;
}

static int
io_events(const struct io *io)
{
	if (io->dead)
		return 0;
	switch (io->state) {
	case IO_ST_CONNECTING:
		return EV_WRITE;
	case IO_ST_HANDSHAKE:
		return io->plain_left ? EV_WRITE : io->hs_events;
	case IO_ST_OPEN:
		return io_events_open(io);
	case IO_ST_CLOSED:
		break;
	}
	return 0;
}

/*
 * Point the watcher at what the current state waits for. Inside our own
 * callback this waits for io_leave(): a reply queued and flushed in the same
 * pass would otherwise arm EV_WRITE and disarm it again, and libev turns that
 * pair into an epoll_ctl that fails with EEXIST, once per reply.
 */
static void
io_update(struct io *io)
{
	int ev = io_events(io);

	if (io->busy > 0)
		return;
	if (ev == (io->w.events & (EV_READ | EV_WRITE)) && ev_is_active(&io->w))
		return;
	if (ev_is_active(&io->w))
		ev_io_stop(io->loop, &io->w);
	if (ev == 0)
		return;
	/* The fd is the one io_new() set: no need to make libev re-register it. */
	ev_io_modify(&io->w, ev);
	ev_io_start(io->loop, &io->w);
}

/*
 * Run a step for revents on the next loop pass although the fd may never
 * report it (input buffered across a pause, records held inside OpenSSL, a
 * connect that failed at once). A zero timer, because ev_feed_event() from
 * outside a callback would wait for the next unrelated wakeup.
 */
static void
io_kick(struct io *io, int revents)
{
	io->kick_events |= revents;
	if (ev_is_active(&io->kick))
		return;
	ev_timer_set(&io->kick, 0., 0.);
	ev_timer_start(io->loop, &io->kick);
}

static void
io_stop_watchers(struct io *io)
{
	ev_io_stop(io->loop, &io->w);
	ev_timer_stop(io->loop, &io->timer);
	ev_timer_stop(io->loop, &io->kick);
}

struct io *
io_new(struct ev_loop *loop, int fd, io_cb_fn cb, void *arg)
{
	struct io *io = calloc(1, sizeof(*io));

	if (io == NULL)
		return NULL;
	io->loop = loop;
	io->fd = fd;
	io->cb = cb;
	io->arg = arg;
	io->state = IO_ST_OPEN;
	io->pending_end = -1;
	buf_init(&io->in);
	buf_init(&io->out);
	ev_io_init(&io->w, io_on_ready, fd, EV_READ);
	io->w.data = io;
	ev_init(&io->timer, io_on_timeout);
	io->timer.data = io;
	ev_init(&io->kick, io_on_kick);
	io->kick.data = io;
	io_update(io);
	return io;
}

static void
io_destroy(struct io *io)
{
	io_stop_watchers(io);
	if (io->ssl != NULL) {
		/* Best-effort close_notify: one non-blocking attempt, never waited for. */
		if (io->tls_ready && io->state == IO_ST_OPEN)
			SSL_shutdown(io->ssl);
		ERR_clear_error();
		SSL_free(io->ssl);
	}
	if (io->fd >= 0)
		close(io->fd);
	buf_deinit(&io->in);
	buf_deinit(&io->out);
	free(io);
}

void
io_free(struct io *io)
{
	if (io == NULL)
		return;
	if (io->busy > 0) {
		io->dead = true;
		io_stop_watchers(io);
		return;
	}
	io_destroy(io);
}

static bool
io_sockaddr_has_port(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ((const struct sockaddr_in *)sa)->sin_port != 0;
	if (sa->sa_family == AF_INET6)
		return ((const struct sockaddr_in6 *)sa)->sin6_port != 0;
	return false;
}

static int
io_bind_source(int fd, const struct sockaddr *src, socklen_t srclen, struct tern_err *err)
{
	char name[IO_PEER_MAX];
	int one = 1;

	/*
	 * Many concurrent connections from one source IP: let connect() pick
	 * the port per destination instead of bind() reserving one per socket,
	 * which would exhaust the ephemeral range long before the 4-tuples.
	 */
	if (!io_sockaddr_has_port(src))
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
	if (bind(fd, src, srclen) == 0)
		return 0;
	util_format_sockaddr(src, name, sizeof(name));
	tern_err_set(err, 451, "4.4.0", "bind to %s: %s", name, strerror(errno));
	return -errno;
}

struct io *
io_connect(struct ev_loop *loop, const struct sockaddr *dst, socklen_t dstlen,
	   const struct sockaddr *src, socklen_t srclen, io_cb_fn cb, void *arg,
	   struct tern_err *err)
{
	int one = 1;
	struct io *io;
	int fd;

	fd = socket(dst->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		tern_err_set(err, 451, "4.4.0", "socket: %s", strerror(errno));
		return NULL;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (src != NULL && io_bind_source(fd, src, srclen, err) < 0)
		goto fail;
	io = io_new(loop, fd, cb, arg);
	if (io == NULL) {
		tern_err_set(err, 451, "4.3.0", "out of memory");
		goto fail;
	}
	util_format_sockaddr(dst, io->peer, sizeof(io->peer));
	io->state = IO_ST_CONNECTING;
	/* An immediate failure is still reported from the loop, like a late one. */
	if (connect(fd, dst, dstlen) < 0 && errno != EINPROGRESS)
		io->connect_errno = errno;
	io_update(io);
	if (io->connect_errno)
		io_kick(io, EV_WRITE);
	return io;
fail:
	close(fd);
	return NULL;
}

void
io_set_timeout(struct io *io, double seconds)
{
	io->timeout = seconds;
	io->timer.repeat = seconds;
	if (seconds > 0 && io->state != IO_ST_CLOSED && !io->dead)
		ev_timer_again(io->loop, &io->timer);
	else
		ev_timer_stop(io->loop, &io->timer);
}

void
io_set_reads_extend_timeout(struct io *io, bool extend)
{
	io->reads_fixed = !extend;
}

void
io_set_callback(struct io *io, io_cb_fn cb, void *arg)
{
	io->cb = cb;
	io->arg = arg;
}

void
io_pause_read(struct io *io)
{
	io->paused = true;
	io_update(io);
}

void
io_resume_read(struct io *io)
{
	if (!io->paused)
		return;
	io->paused = false;
	io_update(io);
	if (io->state != IO_ST_OPEN || io->dead)
		return;
	/*
	 * Input buffered here or inside OpenSSL, and a held-back end, are
	 * delivered from the loop; what waits in the socket, epoll reports.
	 */
	io->redeliver = io->in.len > 0;
	if (io->redeliver || io->pending_end >= 0 || io->tls_ready)
		io_kick(io, EV_READ);
}

struct buf *
io_input(struct io *io)
{
	return &io->in;
}

void
io_consume(struct io *io, size_t n)
{
	buf_consume(&io->in, n);
	if (io->in.len == 0 && io->in.cap > IO_BUF_KEEP)
		buf_deinit(&io->in);
}

const char *
io_getline(struct io *io, size_t *len, size_t *consumed)
{
	const char *p = io->in.data;
	const char *nl;

	if (io->in.len == 0)
		return NULL;
	nl = memchr(p, '\n', io->in.len);
	if (nl == NULL)
		return NULL;
	*consumed = (size_t)(nl - p) + 1;
	*len = (size_t)(nl - p);
	if (*len > 0 && p[*len - 1] == '\r')
		(*len)--;
	return p;
}

size_t
io_output_pending(const struct io *io)
{
	return io->out.len - io->out_off;
}

/* Below the low-water mark again: read on, starting with what waited meanwhile. */
static void
io_out_drained(struct io *io)
{
	if (!io->backlogged || io_output_pending(io) >= IO_OUT_LOWAT)
		return;
	io->backlogged = false;
	if (io_reading(io) && io->state == IO_ST_OPEN && !io->dead)
		io_kick(io, EV_READ);
}

static void
io_out_consumed(struct io *io, size_t n)
{
	io->out_off += n;
	io_out_drained(io);
	if (io->out_off < io->out.len) {
		/* Compact only when the dead prefix dominates, keeping moves O(n). */
		if (io->out_off > io->out.len / 2 && io->out_off > 4096) {
			buf_consume(&io->out, io->out_off);
			io->out_off = 0;
		}
		return;
	}
	io->out_off = 0;
	if (io->out.cap > IO_BUF_KEEP)
		buf_deinit(&io->out);
	else
		buf_reset(&io->out);
}

static enum io_step
io_write_plain(struct io *io, size_t max, size_t *done)
{
	ssize_t n;

	while (max > 0) {
		n = send(io->fd, io->out.data + io->out_off, max, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return IO_STEP_OK;
		if (n < 0) {
			io_set_error(io, "write: %s", strerror(errno));
			return IO_STEP_ERROR;
		}
		max -= (size_t)n;
		*done += (size_t)n;
		io_out_consumed(io, (size_t)n);
		io_progress(io);
	}
	return IO_STEP_OK;
}

/*
 * Output queued from outside our callbacks (a reply after the spool's
 * commit) goes to a plain socket at once: arming EV_WRITE for it costs two
 * epoll_ctl calls and a loop pass. Whatever the socket does not take, an
 * error, and the IO_LOWAT owed once all has gone are left to the loop, so
 * the caller is never called back from inside its own write.
 */
static void
io_write_through(struct io *io)
{
	size_t done = 0;

	if (io->busy > 0 || io->dead || io->state != IO_ST_OPEN || io->tls_ready || io->holding)
		return;
	if (io_write_plain(io, io_output_pending(io), &done) == IO_STEP_ERROR ||
	    io_output_pending(io) == 0)
		io_kick(io, EV_WRITE);
}

static void
io_out_grew(struct io *io)
{
	io->had_output = true;
	if (io_output_pending(io) > IO_OUT_HIWAT)
		io->backlogged = true;
	io_write_through(io);
	io_update(io);
}

int
io_write(struct io *io, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	if (buf_append(&io->out, p, n) < 0)
		return -ENOMEM;
	io_out_grew(io);
	return 0;
}

void
io_hold_output(struct io *io)
{
	io->holding = true;
}

void
io_release_output(struct io *io)
{
	if (!io->holding)
		return;
	io->holding = false;
	if (io_output_pending(io) > 0)
		io_write_through(io);
	io_update(io);
}

int
io_printf(struct io *io, const char *fmt, ...)
{
	size_t before = io->out.len;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = buf_vprintf(&io->out, fmt, ap);
	va_end(ap);
	if (rc < 0)
		return -ENOMEM;
	if (io->out.len > before)
		io_out_grew(io);
	return 0;
}

static enum io_step
io_write_tls(struct io *io)
{
	size_t left;
	int n, e;

	io->write_wants_read = false;
	while ((left = io->out.len - io->out_off) > 0) {
		ERR_clear_error();
		errno = 0;
		n = SSL_write(io->ssl, io->out.data + io->out_off,
			      (int)(left < IO_TLS_WRITE_MAX ? left : IO_TLS_WRITE_MAX));
		if (n > 0) {
			io_out_consumed(io, (size_t)n);
			io_progress(io);
			continue;
		}
		e = SSL_get_error(io->ssl, n);
		if (e == SSL_ERROR_WANT_WRITE)
			return IO_STEP_OK;
		if (e == SSL_ERROR_WANT_READ) {
			io->write_wants_read = true;
			return IO_STEP_OK;
		}
		io_ssl_error(io, e, "TLS write");
		return IO_STEP_ERROR;
	}
	return IO_STEP_OK;
}

/* Write what the socket takes (nothing while holding); IO_LOWAT once it has all gone. */
static bool
io_flush(struct io *io)
{
	enum io_step rc;
	size_t done = 0;

	if (io->holding)
		return false;
	if (io->tls_ready)
		rc = io_write_tls(io);
	else
		rc = io_write_plain(io, io->out.len - io->out_off, &done);
	if (rc == IO_STEP_ERROR)
		return io_finish(io, IO_ERROR);
	if (io->out.len > io->out_off || !io->had_output)
		return false;
	io->had_output = false;
	return io_emit(io, IO_LOWAT);
}

static enum io_step
io_read_plain(struct io *io, char *tmp, size_t *got)
{
	ssize_t n;

	do
		n = read(io->fd, tmp, IO_READ_MAX);
	while (n < 0 && errno == EINTR);
	if (n > 0) {
		*got = (size_t)n;
		return IO_STEP_OK;
	}
	if (n == 0)
		return IO_STEP_EOF;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return IO_STEP_OK;
	io_set_error(io, "read: %s", strerror(errno));
	return IO_STEP_ERROR;
}

static enum io_step
io_read_tls(struct io *io, char *tmp, size_t *got)
{
	int n, e;

	io->read_wants_write = false;
	while (*got < IO_READ_MAX) {
		ERR_clear_error();
		errno = 0;
		n = SSL_read(io->ssl, tmp + *got, (int)(IO_READ_MAX - *got));
		if (n > 0) {
			*got += (size_t)n;
			continue;
		}
		e = SSL_get_error(io->ssl, n);
		if (e == SSL_ERROR_WANT_READ)
			return IO_STEP_OK;
		if (e == SSL_ERROR_WANT_WRITE) {
			io->read_wants_write = true;
			return IO_STEP_OK;
		}
		if (io_ssl_is_eof(e)) {
			ERR_clear_error();
			return IO_STEP_EOF;
		}
		io_ssl_error(io, e, "TLS read");
		return IO_STEP_ERROR;
	}
	/* Stopped at the cap with decrypted data left inside OpenSSL: no fd event will tell. */
	if (SSL_has_pending(io->ssl))
		io_kick(io, EV_READ);
	return IO_STEP_OK;
}

/* End of stream or failure: delivered now, or once reading resumes if it is stopped. */
static bool
io_end(struct io *io, enum io_step rc)
{
	enum io_event ev = rc == IO_STEP_EOF ? IO_DISCONNECTED : IO_ERROR;

	if (!io_reading(io)) {
		io->pending_end = (int)ev;
		return false;
	}
	return io_finish(io, ev);
}

static bool
io_do_read(struct io *io)
{
	char tmp[IO_READ_MAX];
	enum io_step rc;
	size_t got = 0;

	if (io->tls_ready)
		rc = io_read_tls(io, tmp, &got);
	else
		rc = io_read_plain(io, tmp, &got);
	if (got > 0) {
		if (buf_append(&io->in, tmp, got) < 0) {
			io_set_error(io, "read: out of memory");
			return io_finish(io, IO_ERROR);
		}
		if (!io->reads_fixed)
			io_progress(io);
	}
	if (got > 0 || io->redeliver) {
		io->redeliver = false;
		if (io_emit(io, IO_DATAIN))
			return true;
		if (io->state != IO_ST_OPEN)
			return false;
	}
	return rc == IO_STEP_OK ? false : io_end(io, rc);
}

static bool
io_wants_read(const struct io *io, int revents)
{
	if (!io_reading(io))
		return false;
	return (revents & EV_READ) || (io->read_wants_write && (revents & EV_WRITE));
}

/* After a resume: input still buffered goes up before the end that followed it. */
static void
io_deliver_held_end(struct io *io)
{
	enum io_event ev = (enum io_event)io->pending_end;

	if (io->redeliver) {
		io->redeliver = false;
		if (io_emit(io, IO_DATAIN) || !io_reading(io) || io->state != IO_ST_OPEN)
			return;
	}
	io->pending_end = -1;
	io_finish(io, ev);
}

static void
io_step_open(struct io *io, int revents)
{
	if (io->pending_end >= 0 && io_reading(io)) {
		io_deliver_held_end(io);
		return;
	}
	if (io_wants_read(io, revents) && io_do_read(io))
		return;
	/*
	 * Flush here too, so replies queued by IO_DATAIN leave in the same loop
	 * pass; and owe IO_LOWAT for output that io_write_through() sent.
	 */
	if (io->state == IO_ST_OPEN && (io->out.len > io->out_off || io->had_output))
		io_flush(io);
}

static void
io_step_connect(struct io *io)
{
	socklen_t len = sizeof(int);
	int soerr = io->connect_errno;

	if (soerr == 0 && getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		soerr = errno;
	if (soerr == EINPROGRESS)
		return;
	if (soerr != 0) {
		io_set_error(io, "connect to %s: %s", io->peer, strerror(soerr));
		io_finish(io, IO_ERROR);
		return;
	}
	io->state = IO_ST_OPEN;
	io_progress(io);
	if (io_emit(io, IO_CONNECTED))
		return;
	if (io->state == IO_ST_OPEN && io->out.len > io->out_off)
		io_flush(io);
}

static void
io_step_handshake(struct io *io)
{
	int n, e;

	if (io->plain_left > 0) {
		size_t done = 0;

		if (io_write_plain(io, io->plain_left, &done) == IO_STEP_ERROR) {
			io_finish(io, IO_ERROR);
			return;
		}
		io->plain_left -= done;
		if (io->plain_left > 0)
			return;
		if (io->out.len == io->out_off)
			io->had_output = false;
	}
	io_progress(io);
	ERR_clear_error();
	errno = 0;
	n = SSL_do_handshake(io->ssl);
	if (n == 1) {
		io->state = IO_ST_OPEN;
		io->tls_ready = true;
		if (io_emit(io, IO_TLSREADY))
			return;
		if (io->state == IO_ST_OPEN && io->out.len > io->out_off)
			io_flush(io);
		return;
	}
	e = SSL_get_error(io->ssl, n);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		io->hs_events = e == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE;
		return;
	}
	io_ssl_error(io, e, "TLS handshake");
	io_finish(io, IO_ERROR);
}

static void
io_leave(struct io *io)
{
	if (--io->busy > 0)
		return;
	if (io->dead)
		io_destroy(io);
	else
		io_update(io);
}

static void
io_on_ready(struct ev_loop *loop, ev_io *w, int revents)
{
	struct io *io = w->data;

	io->busy++;
	switch (io->state) {
	case IO_ST_CONNECTING:
		io_step_connect(io);
		break;
	case IO_ST_HANDSHAKE:
		io_step_handshake(io);
		break;
	case IO_ST_OPEN:
		io_step_open(io, revents);
		break;
	case IO_ST_CLOSED:
		break;
	}
	io_leave(io);
}

static void
io_on_kick(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct io *io = t->data;
	int ev = io->kick_events;

	io->kick_events = 0;
	io_on_ready(loop, &io->w, ev);
}

static void
io_on_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct io *io = t->data;

	io->busy++;
	io_emit(io, IO_TIMEOUT);
	io_leave(io);
}

static bool
io_is_ip_literal(const char *s)
{
	unsigned char tmp[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, s, tmp) == 1 || inet_pton(AF_INET6, s, tmp) == 1;
}

static int
io_start_tls(struct io *io, SSL_CTX *ctx, bool server, const char *sni)
{
	SSL *ssl;

	if (io->ssl != NULL || io->state != IO_ST_OPEN)
		return -EINVAL;
	ssl = SSL_new(ctx);
	if (ssl == NULL)
		return -ENOMEM;
	if (SSL_set_fd(ssl, io->fd) != 1)
		goto fail;
	SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (server) {
		SSL_set_accept_state(ssl);
	} else {
		SSL_set_connect_state(ssl);
		/* RFC 6066: SNI carries host names only, never address literals. */
		if (sni != NULL && !io_is_ip_literal(sni) &&
		    SSL_set_tlsext_host_name(ssl, sni) != 1)
			goto fail;
	}
	io->ssl = ssl;
	/*
	 * RFC 3207: plaintext that arrived before the handshake must not be
	 * taken as said under TLS (command/response injection), so drop it.
	 */
	buf_reset(&io->in);
	io->redeliver = false;
	io->plain_left = io->out.len - io->out_off;
	io->hs_events = EV_WRITE;
	io->state = IO_ST_HANDSHAKE;
	io_update(io);
	return 0;
fail:
	ERR_clear_error();
	SSL_free(ssl);
	return -EINVAL;
}

int
io_start_tls_server(struct io *io, SSL_CTX *ctx)
{
	return io_start_tls(io, ctx, true, NULL);
}

int
io_start_tls_client(struct io *io, SSL_CTX *ctx, const char *sni)
{
	return io_start_tls(io, ctx, false, sni);
}

bool
io_is_tls(const struct io *io)
{
	return io->tls_ready;
}

SSL *
io_ssl(struct io *io)
{
	return io->tls_ready ? io->ssl : NULL;
}

const char *
io_tls_version(const struct io *io)
{
	return io->tls_ready ? SSL_get_version(io->ssl) : NULL;
}

const char *
io_tls_cipher(const struct io *io)
{
	return io->tls_ready ? SSL_get_cipher_name(io->ssl) : NULL;
}

const char *
io_error(const struct io *io)
{
	return io->err;
}

int
io_fd(const struct io *io)
{
	return io->fd;
}
