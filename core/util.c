// SPDX-License-Identifier: MIT
/*
 * Shared helpers. Buffers grow geometrically and stay NUL-terminated so that
 * text can be handed to C string functions without a copy.
 */
#include "tern/util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

void
tern_err_set(struct tern_err *err, int code, const char *enhanced, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return;
	err->code = code;
	snprintf(err->enhanced, sizeof(err->enhanced), "%s", enhanced ? enhanced : "");
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

void
tern_err_clear(struct tern_err *err)
{
	err->code = 0;
	err->enhanced[0] = '\0';
	err->msg[0] = '\0';
}

void
buf_init(struct buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void
buf_deinit(struct buf *b)
{
	free(b->data); b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

int
buf_reserve(struct buf *b, size_t extra)
{
	size_t need = b->len + extra + 1;
	size_t cap;
	char *p;

	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap *= 2;
	p = realloc(b->data, cap);
	if (p == NULL)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int
buf_append(struct buf *b, const void *p, size_t n)
{
	if (buf_reserve(b, n) < 0)
		return -ENOMEM;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int
buf_append_str(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int
buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	size_t room = b->cap > b->len ? b->cap - b->len : 0;
	va_list ap2;
	int n;

	/* Into the spare room first: most lines fit, and then one formatting pass is all. */
	va_copy(ap2, ap);
	n = vsnprintf(room ? b->data + b->len : NULL, room, fmt, ap2);
	va_end(ap2);
	if (n >= 0 && (size_t)n < room) {
		b->len += (size_t)n;
		return 0;
	}
	if (room)
		b->data[b->len] = '\0';
	if (n < 0)
		return -EINVAL;
	if (buf_reserve(b, (size_t)n) < 0)
		return -ENOMEM;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
}

void
buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
	} else {
		memmove(b->data, b->data + n, b->len - n);
		b->len -= n;
	}
	if (b->data)
		b->data[b->len] = '\0';
}

void
buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

/* RFC 3629 table 3-7: the second byte's range depends on the first. */
size_t
util_utf8_len(const unsigned char *p, const unsigned char *end)
{
	unsigned char c = p[0], lo = 0x80, hi = 0xbf;
	size_t n, i;

	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	if ((size_t)(end - p) < n)
		return 0;
	if (c == 0xe0)
		lo = 0xa0; /* overlong */
	else if (c == 0xed)
		hi = 0x9f; /* UTF-16 surrogates */
	else if (c == 0xf0)
		lo = 0x90; /* overlong */
	else if (c == 0xf4)
		hi = 0x8f; /* above U+10FFFF */
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

bool
util_utf8_valid(const char *p, size_t len)
{
	const unsigned char *s = (const unsigned char *)p, *end = s + len;
	size_t n;

	while (s < end) {
		if (*s < 0x80) {
			s++;
			continue;
		}
		if ((n = util_utf8_len(s, end)) == 0)
			return false;
		s += n;
	}
	return true;
}

/*
 * The byte of s at i that json_plain_run stopped at: escaped, a UTF-8
 * sequence copied, or (invalid UTF-8) U+FFFD. Returns bytes used or -ENOMEM.
 */
static int
json_string_byte(struct buf *b, const unsigned char *s, size_t i, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char c = s[i];
	char esc[7] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0};
	size_t len;

	switch (c) {
	case '"': return buf_append(b, "\\\"", 2) < 0 ? -ENOMEM : 1;
	case '\\': return buf_append(b, "\\\\", 2) < 0 ? -ENOMEM : 1;
	case '\n': return buf_append(b, "\\n", 2) < 0 ? -ENOMEM : 1;
	case '\r': return buf_append(b, "\\r", 2) < 0 ? -ENOMEM : 1;
	case '\t': return buf_append(b, "\\t", 2) < 0 ? -ENOMEM : 1;
	}
	if (c < 0x20 || c == 0x7f)
		return buf_append(b, esc, 6) < 0 ? -ENOMEM : 1;
	len = util_utf8_len(s + i, s + n);
	if (len == 0)
		return buf_append(b, "\\ufffd", 6) < 0 ? -ENOMEM : 1;
	return buf_append(b, s + i, len) < 0 ? -ENOMEM : (int)len;
}

/* Length of the run at s that JSON takes as it is: printable ASCII but '"' and '\\'. */
static size_t
json_plain_run(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n && s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' && s[i] != '\\')
		i++;
	return i;
}

int
buf_append_json_string(struct buf *b, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i, run;
	int used;

	if (buf_reserve(b, n + 2) < 0)
		return -ENOMEM;
	buf_append_char(b, '"');
	for (i = 0; i < n; i += (size_t)used) {
		run = json_plain_run(u + i, n - i);
		if (run > 0) {
			if (buf_append(b, u + i, run) < 0)
				return -ENOMEM;
			used = (int)run;
			continue;
		}
		used = json_string_byte(b, u, i, n);
		if (used < 0)
			return used;
	}
	return buf_append_char(b, '"');
}

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL) {
		fprintf(stderr, "ternd: out of memory at start-up\n");
		abort();
	}
	return p;
}

void *
xcalloc(size_t n, size_t m)
{
	void *p = calloc(n ? n : 1, m ? m : 1);

	if (p == NULL) {
		fprintf(stderr, "ternd: out of memory at start-up\n");
		abort();
	}
	return p;
}

char *
xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;

	return memcpy(xmalloc(n), s, n);
}

double
util_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double
util_wallclock(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *
put_digits(char *p, int v, int width)
{
	int i;

	for (i = width - 1; i >= 0; i--, v /= 10)
		p[i] = (char)('0' + v % 10);
	return p + width;
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" for a year of four digits and 0 <= ms < 1000. */
static void
format_time_digits(const struct tm *tm, int ms, char out[32])
{
	char *p = out;

	p = put_digits(p, tm->tm_year + 1900, 4);
	*p++ = '-';
	p = put_digits(p, tm->tm_mon + 1, 2);
	*p++ = '-';
	p = put_digits(p, tm->tm_mday, 2);
	*p++ = 'T';
	p = put_digits(p, tm->tm_hour, 2);
	*p++ = ':';
	p = put_digits(p, tm->tm_min, 2);
	*p++ = ':';
	p = put_digits(p, tm->tm_sec, 2);
	*p++ = '.';
	p = put_digits(p, ms, 3);
	*p++ = 'Z';
	*p = '\0';
}

void
util_format_time(double t, char out[32])
{
	int64_t total_ms = (int64_t)(t * 1000.0 + 0.5);
	time_t secs = (time_t)(total_ms / 1000);
	int ms = (int)(total_ms % 1000);
	struct tm tm;
	char tmp[64];

	gmtime_r(&secs, &tm);
	/* Every record carries two stamps: the common case by hand, not through printf. */
	if (ms >= 0 && tm.tm_year >= -1900 && tm.tm_year <= 9999 - 1900) {
		format_time_digits(&tm, ms, out);
		return;
	}
	snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
	memcpy(out, tmp, 31);
	out[31] = '\0';
}

/*
 * Every received message gets one (its Received header): the formatted
 * second is kept per thread.
 */
void
util_format_mail_date(double t, char out[32])
{
	static __thread time_t cached_secs = -1;
	static __thread char cached[32];
	time_t secs = (time_t)t;
	struct tm tm;

	if (secs != cached_secs) {
		gmtime_r(&secs, &tm);
		if (strftime(cached, sizeof(cached), "%a, %d %b %Y %H:%M:%S +0000", &tm) == 0)
			cached[0] = '\0';
		cached_secs = secs;
	}
	memcpy(out, cached, sizeof(cached));
}

/* Parse a non-negative decimal number and return where the unit starts. */
static int
parse_number(const char *s, double *out, const char **unit)
{
	char *end;
	double v;

	while (isspace((unsigned char)*s))
		s++;
	if (!isdigit((unsigned char)*s) && *s != '.')
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || v < 0)
		return -EINVAL;
	while (isspace((unsigned char)*end))
		end++;
	*out = v;
	*unit = end;
	return 0;
}

int
util_parse_duration(const char *s, double *out)
{
	static const struct {
		const char *name;
		double secs;
	} units[] = {{"", 1},	 {"ms", 0.001}, {"s", 1},	  {"sec", 1},	  {"m", 60},
		     {"min", 60}, {"h", 3600},	 {"hour", 3600}, {"d", 86400}, {"day", 86400}};
	const char *unit;
	double v;
	size_t i;

	if (parse_number(s, &v, &unit) < 0)
		return -EINVAL;
	for (i = 0; i < TERN_ARRAY_LEN(units); i++) {
		if (strcmp(unit, units[i].name) != 0)
			continue;
		if (v * units[i].secs > UTIL_DURATION_MAX)
			return -ERANGE;
		*out = v * units[i].secs;
		return 0;
	}
	return -EINVAL;
}

int
util_parse_size(const char *s, uint64_t *out)
{
	static const struct {
		const char *name;
		double mult;
	} units[] = {{"", 1},
		     {"b", 1},
		     {"k", 1024.0},
		     {"kb", 1024.0},
		     {"kib", 1024.0},
		     {"m", 1048576.0},
		     {"mb", 1048576.0},
		     {"mib", 1048576.0},
		     {"g", 1073741824.0},
		     {"gb", 1073741824.0},
		     {"gib", 1073741824.0}};
	const char *unit;
	double v;
	size_t i;

	if (parse_number(s, &v, &unit) < 0)
		return -EINVAL;
	for (i = 0; i < TERN_ARRAY_LEN(units); i++) {
		if (strcasecmp(unit, units[i].name) != 0)
			continue;
		/* Checked in double: converting an out-of-range double is undefined. */
		if (v * units[i].mult > (double)UTIL_SIZE_MAX)
			return -ERANGE;
		*out = (uint64_t)(v * units[i].mult);
		return 0;
	}
	return -EINVAL;
}

int
util_mkdir_p(const char *path)
{
	char tmp[4096];
	char *p;

	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	for (p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int
util_hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

uint64_t
util_hash_more(uint64_t h, const char *s)
{
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

uint64_t
util_hash(const char *s)
{
	return util_hash_more(1469598103934665603ull, s);
}

bool
util_strncaseeq(const char *a, const char *b, size_t n)
{
	return strncasecmp(a, b, n) == 0;
}

void
util_deadline_after(double seconds, struct timespec *ts)
{
	double whole = floor(seconds);

	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += (time_t)whole;
	ts->tv_nsec += (long)((seconds - whole) * 1e9);
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

void
util_format_sockaddr(const struct sockaddr *sa, char *out, size_t n)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(out, n, "%s:%u", host, ntohs(sin->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(out, n, "[%s]:%u", host, ntohs(sin6->sin6_port));
	} else {
		snprintf(out, n, "family %d", sa->sa_family);
	}
}

/* Time constant of struct util_rate: a burst counts for about this many seconds. */
#define UTIL_RATE_TAU 60.0

double
util_rate_get(const struct util_rate *r, double now)
{
	return r->rate * exp(-(now - r->at) / UTIL_RATE_TAU);
}

void
util_rate_tick(struct util_rate *r, double now)
{
	r->rate = util_rate_get(r, now) + 1.0 / UTIL_RATE_TAU;
	r->at = now;
}

int
util_listen_reuseport(const struct sockaddr_storage *addr, socklen_t len)
{
	int one = 1, rc;
	int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (addr->ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    bind(fd, (const struct sockaddr *)addr, len) < 0 || listen(fd, 1024) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

/* A probe bound without SO_REUSEPORT fails while anyone listens; SO_REUSEADDR keeps TIME_WAIT out. */
bool
util_port_in_use(const struct sockaddr_storage *addr, socklen_t len)
{
	int one = 1;
	int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool busy;

	if (fd < 0)
		return false; /* util_listen_reuseport() reports the same failure with its cause */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (addr->ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	busy = bind(fd, (const struct sockaddr *)addr, len) < 0 && errno == EADDRINUSE;
	close(fd);
	return busy;
}

unsigned
util_sockaddr_port(const struct sockaddr_storage *addr)
{
	if (addr->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)addr)->sin6_port);
	return ntohs(((const struct sockaddr_in *)addr)->sin_port);
}

int
util_exe_dir(char *out, size_t n)
{
	ssize_t len = readlink("/proc/self/exe", out, n - 1);
	char *slash;

	if (len <= 0)
		return len < 0 ? -errno : -ENOENT;
	out[len] = '\0';
	slash = strrchr(out, '/');
	if (slash)
		*slash = '\0';
	return 0;
}

int
util_read_file(const char *path, struct buf *out)
{
	char chunk[4096];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		if (buf_append(out, chunk, (size_t)n) < 0)
			break;
	close(fd);
	return n == 0 ? 0 : -EIO;
}

int
util_write_file_synced(const char *path, const void *data, size_t len)
{
	char tmp[4200];
	int fd, rc = 0;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	if (write(fd, data, len) != (ssize_t)len || fsync(fd) < 0)
		rc = errno ? -errno : -EIO;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0)
		unlink(tmp);
	return rc;
}

int
buf_append_uint(struct buf *b, unsigned long long v)
{
	char tmp[24];
	char *p = tmp + sizeof(tmp);

	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return buf_append(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

/* Beyond this the scaled value no longer holds every integer exactly. */
#define BUF_FIXED_MAX 9.0e15

int
buf_append_fixed(struct buf *b, double v, int decimals)
{
	static const double scale[] = {1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};
	unsigned long long whole, frac, unit;
	double scaled;
	char digits[12];
	int i;

	if (decimals < 0 || decimals > 9 || !(fabs(v) * scale[decimals] < BUF_FIXED_MAX))
		return buf_printf(b, "%.*f", decimals < 0 ? 0 : decimals, v);
	scaled = llround(fabs(v) * scale[decimals]);
	unit = (unsigned long long)scale[decimals];
	whole = (unsigned long long)scaled / unit;
	frac = (unsigned long long)scaled % unit;
	if (v < 0 && scaled > 0 && buf_append_char(b, '-') < 0)
		return -ENOMEM;
	if (buf_append_uint(b, whole) < 0)
		return -ENOMEM;
	if (decimals == 0)
		return 0;
	for (i = decimals - 1; i >= 0; i--, frac /= 10)
		digits[i] = (char)('0' + frac % 10);
	return buf_append_char(b, '.') < 0 ? -ENOMEM : buf_append(b, digits, (size_t)decimals);
}
