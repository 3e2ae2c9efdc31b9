/* SPDX-License-Identifier: MIT */
/*
 * One buffered, non-blocking stream over a socket, plain or TLS, driven by a
 * libev loop. Protocol code (smtp_server, smtp_client, http_server) never
 * calls read(), write() or SSL_* itself: it reacts to a small vocabulary of
 * events and reads lines or bytes from the input buffer.
 *
 * Ownership: the io owns the fd (closed by io_free) and its buffers. Events
 * are delivered from the loop; it is safe to call io_free() from inside the
 * callback (the io defers its own destruction until the callback returns).
 */
#ifndef TERN_IO_H
#define TERN_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "tern/util.h"

struct ev_loop;
struct io;

enum io_event {
	IO_CONNECTED, /* outbound connect completed */
	IO_TLSREADY,  /* TLS handshake completed */
	IO_DATAIN,    /* new bytes are in the input buffer */
	IO_LOWAT,     /* the output buffer has drained completely */
	IO_TIMEOUT,   /* no progress within the timeout */
	IO_DISCONNECTED, /* peer closed the connection (EOF) */
	IO_ERROR,     /* I/O or TLS error; io_error() says what */
};

typedef void (*io_cb_fn)(struct io *io, enum io_event ev, void *arg);

/* Wrap an already connected (or connecting) non-blocking fd. */
struct io *io_new(struct ev_loop *loop, int fd, io_cb_fn cb, void *arg);
void io_free(struct io *io);

/*
 * Start a non-blocking connect from src (may be NULL) to dst; IO_CONNECTED or
 * IO_ERROR follows. Returns NULL with err filled when the socket cannot even
 * be created or bound.
 */
struct io *io_connect(struct ev_loop *loop, const struct sockaddr *dst, socklen_t dstlen,
		      const struct sockaddr *src, socklen_t srclen, io_cb_fn cb, void *arg,
		      struct tern_err *err);

/* Inactivity timeout in seconds (0 disables); restarted on every read/write progress. */
void io_set_timeout(struct io *io, double seconds);
/*
 * Whether input restarts the timeout (the default). A peer trickling one byte
 * of a reply just before each timeout would otherwise hold the connection
 * forever: with reads not counting, a reply has its whole timeout from the
 * last io_set_timeout() (or write), however slowly it arrives.
 */
void io_set_reads_extend_timeout(struct io *io, bool extend);
void io_set_callback(struct io *io, io_cb_fn cb, void *arg);

/*
 * Stop/start delivering IO_DATAIN (input stays buffered), e.g. while a hook
 * runs. Independent of the output backpressure below: both must allow reading.
 */
void io_pause_read(struct io *io);
void io_resume_read(struct io *io);

/* Input buffer: bytes received and not yet consumed. */
struct buf *io_input(struct io *io);
void io_consume(struct io *io, size_t n);
/*
 * Return the next line (terminated by LF; the CR before it, if any, is kept
 * out of *len) without consuming it, or NULL when no full line is buffered.
 * *consumed is how many bytes to io_consume() once the line is handled.
 */
const char *io_getline(struct io *io, size_t *len, size_t *consumed);

/*
 * Output backpressure: while more than IO_OUT_HIWAT bytes wait to be written,
 * the io reads no input (no IO_DATAIN; buffered input stays) until they drain
 * below IO_OUT_LOWAT, so a peer that never reads its replies cannot grow our
 * memory. Independent of io_pause_read(): both must be clear to read.
 */
#define IO_OUT_HIWAT (256 * 1024)
#define IO_OUT_LOWAT (64 * 1024)

/* Queue output; it is flushed as the socket allows. Returns 0 or -ENOMEM. */
int io_write(struct io *io, const void *p, size_t n);
int io_printf(struct io *io, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*
 * Keep queued output back (no send, no EV_WRITE) until io_release_output:
 * for replies that can leave in one packet with one that follows shortly.
 * What is held counts toward the backpressure above as usual.
 */
void io_hold_output(struct io *io);
void io_release_output(struct io *io);
size_t io_output_pending(const struct io *io);

/* Begin a TLS handshake as server or client on this stream; IO_TLSREADY or IO_ERROR follows. */
int io_start_tls_server(struct io *io, SSL_CTX *ctx);
int io_start_tls_client(struct io *io, SSL_CTX *ctx, const char *sni);
bool io_is_tls(const struct io *io);
const char *io_tls_version(const struct io *io); /* "TLSv1.3" or NULL */
const char *io_tls_cipher(const struct io *io);
/* The connection's SSL once TLS is up (for tls_verify_peer), else NULL. */
SSL *io_ssl(struct io *io);

/* Text of the last IO_ERROR. */
const char *io_error(const struct io *io);
int io_fd(const struct io *io);

#endif
