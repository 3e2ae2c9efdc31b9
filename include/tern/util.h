/* SPDX-License-Identifier: MIT */
/*
 * Small shared helpers: growable byte buffers, start-up allocators, clocks,
 * durations, and the caller-owned error record every module fills in.
 */
#ifndef TERN_UTIL_H
#define TERN_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define TERN_AGAIN (-1000)    /* non-blocking step: call again later */
#define TERN_DECLINED (-1001) /* the step chose not to act */

#define TERN_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/*
 * An error with an SMTP code, an enhanced status and a message, filled by the
 * failing function without allocating. One place turns it into an SMTP reply,
 * an HTTP JSON error or a policy error.
 */
struct tern_err {
	int code;          /* SMTP-style code, e.g. 451; 0 when unset */
	char enhanced[16]; /* e.g. "4.3.0" */
	char msg[512];
};

void tern_err_set(struct tern_err *err, int code, const char *enhanced, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void tern_err_clear(struct tern_err *err);

/* A growable byte buffer; data is always NUL-terminated for convenience. */
struct buf {
	char *data;
	size_t len;
	size_t cap;
};

void buf_init(struct buf *b);
void buf_deinit(struct buf *b);
int buf_reserve(struct buf *b, size_t extra);
int buf_append(struct buf *b, const void *p, size_t n);
int buf_append_str(struct buf *b, const char *s);
/* Inline: escaping and header folding append a byte at a time. */
static inline int
buf_append_char(struct buf *b, char c)
{
	if (b->len + 2 > b->cap)
		return buf_append(b, &c, 1);
	b->data[b->len++] = c;
	b->data[b->len] = '\0';
	return 0;
}
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Drop the first n bytes. */
void buf_consume(struct buf *b, size_t n);
void buf_reset(struct buf *b);
/*
 * Append s as a JSON string literal, quotes included. Each byte that is not
 * part of well-formed UTF-8 becomes U+FFFD (as Go's encoding/json does), so
 * the output is always valid JSON, whatever bytes a peer or policy supplied.
 */
int buf_append_json_string(struct buf *b, const char *s, size_t n);
/* Decimal digits of v, without printf's parsing of a format on every call. */
int buf_append_uint(struct buf *b, unsigned long long v);
/*
 * v with exactly `decimals` (0-9) digits after the point, as "%.*f" writes it
 * but rounded half away from zero after scaling (so an exact tie may differ
 * from printf in its last digit); values too large for that, and non-finite
 * ones, go through printf.
 */
int buf_append_fixed(struct buf *b, double v, int decimals);
/* Length of the well-formed UTF-8 sequence at p (a byte >= 0x80, before end), or 0. */
size_t util_utf8_len(const unsigned char *p, const unsigned char *end);
/* Whether all of p[0..len) is well-formed UTF-8. */
bool util_utf8_valid(const char *p, size_t len);

/* The directory of the running binary (from /proc/self/exe): 0, or -errno. */
int util_exe_dir(char *out, size_t n);

/* Start-up allocators: abort on failure. Never used on a request path. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
char *xstrdup(const char *s);

/* Monotonic seconds, for timeouts and rates. */
double util_now(void);
/* Wall-clock seconds since the epoch, for records. */
double util_wallclock(void);
/* Format t (epoch seconds) as RFC 3339 UTC with milliseconds into out[32]. */
void util_format_time(double t, char out[32]);
/* Format t (epoch seconds) as an RFC 5322 date in UTC ("Mon, 30 Nov 2026 11:22:33 +0000"). */
void util_format_mail_date(double t, char out[32]);

/*
 * Largest duration a policy may give: 100 years. Anything longer is a typo,
 * and every duration up to it converts to milliseconds in an int64 exactly.
 */
#define UTIL_DURATION_MAX (100.0 * 365 * 86400)
/*
 * Largest size a policy may give: 2^53 bytes (8 PiB), the largest integer a
 * Lua number holds exactly, so a size round-trips through policy unchanged.
 */
#define UTIL_SIZE_MAX ((uint64_t)1 << 53)

/*
 * Parse a duration: a number of seconds, or a number with a unit
 * "ms", "s", "m", "h", "d" ("30s", "5m", "3d", "1.5h"). Returns 0, -EINVAL,
 * or -ERANGE above UTIL_DURATION_MAX.
 */
int util_parse_duration(const char *s, double *out);
/*
 * Parse a byte size: "20MiB", "512k", "1000" (k/m/g are 1024-based). Returns
 * 0, -EINVAL, or -ERANGE above UTIL_SIZE_MAX.
 */
int util_parse_size(const char *s, uint64_t *out);

/* mkdir -p: create path and its missing parents (mode 0755). 0 or -errno. */
int util_mkdir_p(const char *path);

/* The value of a hex digit, or -1. */
int util_hex_value(char c);
/* FNV-1a, 64 bits: hash maps and shard placement. */
uint64_t util_hash(const char *s);
/* Extend hash h with s (for keys made of several parts). */
uint64_t util_hash_more(uint64_t h, const char *s);

/* Case-insensitive ASCII comparison of n bytes. */
bool util_strncaseeq(const char *a, const char *b, size_t n);

/*
 * The CLOCK_MONOTONIC time seconds from now, for pthread_cond_timedwait on a
 * condition variable set to that clock (a wall-clock step must not stretch a wait).
 */
struct timespec;
void util_deadline_after(double seconds, struct timespec *ts);

/*
 * An address with its port as records and diagnostics print it: "192.0.2.1:25",
 * "[2001:db8::1]:25" (brackets, or the port could not be told from the address).
 */
void util_format_sockaddr(const struct sockaddr *sa, char *out, size_t n);
/*
 * A listening TCP socket on addr with SO_REUSEPORT, so that each shard can
 * have its own: a descriptor, or -errno.
 */
int util_listen_reuseport(const struct sockaddr_storage *addr, socklen_t len);
/*
 * Whether something already listens on addr. SO_REUSEPORT would let a second
 * daemon under our uid share the port, the kernel splitting connections
 * between the two without a word, so listeners ask this first.
 */
bool util_port_in_use(const struct sockaddr_storage *addr, socklen_t len);
/* The port of an IPv4 or IPv6 address, in host order. */
unsigned util_sockaddr_port(const struct sockaddr_storage *addr);

/*
 * An event rate (per second) decaying exponentially over about a minute: one
 * multiply per event, no window to keep. Owned by one thread.
 */
struct util_rate {
	double rate, at; /* per second as of at (util_now) */
};
void util_rate_tick(struct util_rate *r, double now);
double util_rate_get(const struct util_rate *r, double now);

/* Append the whole file at path to out: 0, or -errno (-ENOENT when it does not exist). */
int util_read_file(const char *path, struct buf *out);
/*
 * Replace path with data[0..len) so that a crash leaves the old content or
 * the new, never a mix: write path.tmp, fsync it, rename it over path.
 * 0, or -errno (the temporary file removed).
 */
int util_write_file_synced(const char *path, const void *data, size_t len);

#endif
