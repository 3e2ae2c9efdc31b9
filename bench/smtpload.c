// SPDX-License-Identifier: MIT
/*
 * smtpload: an SMTP load generator for benchmarks. N threads, each with one
 * blocking connection, take messages from a shared counter until M have been
 * tried. With PIPELINING, MAIL/RCPT/DATA leave in one write, then the body;
 * the latency measured is from the end of the body to the end-of-data reply,
 * which for tern is the spool's synced group commit.
 *
 * --mode chooses the client: `pipelined` (the default) pipelines when the
 * server offers PIPELINING and reuses its connection; `chatty` waits for each
 * reply before the next command; `oneconn` is chatty and sends one message
 * per connection (connect, EHLO, one transaction, QUIT), as many
 * applications do.
 *
 * With --rate R, message k is not sent before start + k/R: an open-loop
 * schedule shared by all connections, so latency can be measured at a fixed
 * offered load (e.g. half the rate a full-speed run reached) instead of at
 * whatever rate the server sustains.
 *
 * It never retries a message: a failure is counted (by reply code, or as
 * "timeout", "connect", "io") and the next message is taken, so the total is
 * always M attempts and the run always ends. A 421 or a broken connection
 * makes the thread reconnect.
 *
 * Standalone on purpose (libc and pthreads only), so it can be built on any
 * load machine:  cc -O2 -o smtpload bench/smtpload.c -lpthread
 * Prints one JSON object on stdout; progress lines on stderr with --progress.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_DOMAINS 64
#define MAX_CODES 64
#define LINE_MAX_LEN 1024

struct domain {
	char name[128];
	unsigned weight;
};

enum load_mode { MODE_PIPELINED, MODE_CHATTY, MODE_ONECONN };

struct options {
	const char *host;
	int port;
	int connections;
	long messages;
	size_t size;
	int rcpts_per_msg;
	const char *from;
	const char *helo;
	const char *ids_path;
	const char *times_path;
	double timeout;
	double progress;
	double rate; /* messages per second offered; 0: as fast as replies come */
	enum load_mode mode;
	struct domain domains[MAX_DOMAINS];
	int n_domains;
	unsigned total_weight;
};

/* Failures by reason: an SMTP code ("451") or a word ("timeout"). */
struct failures {
	char reason[MAX_CODES][16];
	long count[MAX_CODES];
	int n;
};

/* A growable text a thread appends to, written out at the end. */
struct text {
	char *data;
	size_t len, cap;
};

struct worker {
	int index;
	pthread_t thread;
	int fd;
	bool pipelining;
	char in[16384];
	size_t in_len, in_off;
	uint64_t rng;
	char *out;
	size_t out_cap;
	double *latencies;
	long n_latencies, latency_cap;
	struct failures fail;
	long reconnects;
	struct text ids;
	struct text times;
};

static struct options opt = {
	.host = "127.0.0.1",
	.port = 2525,
	.connections = 20,
	.messages = 1000,
	.size = 4096,
	.rcpts_per_msg = 1,
	.from = "bench@sender.test",
	.helo = "smtpload.test",
	.timeout = 30,
};

static atomic_long next_message;
static double run_start;
static atomic_long n_sent, n_accepted, n_failed;
static char *filler;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static _Noreturn void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("smtpload: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static void *
xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (p == NULL)
		die("out of memory");
	return p;
}

/* ---- options ---- */

static void
parse_domains(const char *spec)
{
	char *copy = strdup(spec), *save = NULL, *item;

	for (item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		struct domain *d = &opt.domains[opt.n_domains];
		char *colon = strchr(item, ':');

		if (opt.n_domains == MAX_DOMAINS)
			die("at most %d domains", MAX_DOMAINS);
		d->weight = colon ? (unsigned)atoi(colon + 1) : 1;
		if (colon)
			*colon = '\0';
		if (*item == '\0' || strlen(item) >= sizeof(d->name) || d->weight == 0)
			die("bad domain '%s' in --domains (want name:weight,...)", item);
		strcpy(d->name, item);
		opt.total_weight += d->weight;
		opt.n_domains++;
	}
	free(copy);
}

static enum load_mode
parse_mode(const char *name)
{
	if (strcmp(name, "pipelined") == 0)
		return MODE_PIPELINED;
	if (strcmp(name, "chatty") == 0)
		return MODE_CHATTY;
	if (strcmp(name, "oneconn") == 0)
		return MODE_ONECONN;
	die("bad --mode '%s' (want pipelined, chatty or oneconn)", name);
}

static void
usage(void)
{
	fprintf(stderr,
		"usage: smtpload [--host H] [--port P] [--connections N] [--messages M]\n"
		"                [--size BYTES] [--domains d1:w1,d2:w2,...] [--rcpts-per-msg K]\n"
		"                [--from ADDR] [--helo NAME] [--ids FILE] [--timeout SECS]\n"
		"                [--progress SECS] [--times FILE] [--rate MSGS_PER_SEC]\n"
		"                [--mode pipelined|chatty|oneconn]\n");
	exit(2);
}

static void
parse_options(int argc, char **argv)
{
	static const struct option longs[] = {
		{"host", 1, 0, 'H'},	 {"port", 1, 0, 'p'},	     {"connections", 1, 0, 'c'},
		{"messages", 1, 0, 'm'}, {"size", 1, 0, 's'},	     {"domains", 1, 0, 'd'},
		{"from", 1, 0, 'f'},	 {"rcpts-per-msg", 1, 0, 'r'}, {"helo", 1, 0, 'e'},
		{"ids", 1, 0, 'i'},	 {"timeout", 1, 0, 't'},     {"progress", 1, 0, 'P'},
		{"times", 1, 0, 'T'},	 {"rate", 1, 0, 'R'},	     {"mode", 1, 0, 'M'},
		{0, 0, 0, 0}};
	int c;

	while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		switch (c) {
		case 'H': opt.host = optarg; break;
		case 'p': opt.port = atoi(optarg); break;
		case 'c': opt.connections = atoi(optarg); break;
		case 'm': opt.messages = atol(optarg); break;
		case 's': opt.size = (size_t)atol(optarg); break;
		case 'd': parse_domains(optarg); break;
		case 'f': opt.from = optarg; break;
		case 'r': opt.rcpts_per_msg = atoi(optarg); break;
		case 'e': opt.helo = optarg; break;
		case 'i': opt.ids_path = optarg; break;
		case 'T': opt.times_path = optarg; break;
		case 't': opt.timeout = atof(optarg); break;
		case 'P': opt.progress = atof(optarg); break;
		case 'R': opt.rate = atof(optarg); break;
		case 'M': opt.mode = parse_mode(optarg); break;
		default: usage();
		}
	}
	if (optind != argc || opt.connections < 1 || opt.messages < 0 || opt.rcpts_per_msg < 1 ||
	    opt.port <= 0 || opt.timeout <= 0 || opt.rate < 0)
		usage();
	if (opt.n_domains == 0)
		parse_domains("example.test:1");
}

/* ---- results ---- */

static void
fail_count(struct failures *f, const char *reason)
{
	int i;

	atomic_fetch_add(&n_failed, 1);
	for (i = 0; i < f->n; i++) {
		if (strcmp(f->reason[i], reason) == 0) {
			f->count[i]++;
			return;
		}
	}
	if (f->n == MAX_CODES)
		reason = "other";
	i = f->n < MAX_CODES ? f->n++ : MAX_CODES - 1;
	snprintf(f->reason[i], sizeof(f->reason[i]), "%s", reason);
	f->count[i]++;
}

static void
fail_code(struct worker *w, int code)
{
	char reason[16];

	snprintf(reason, sizeof(reason), "%d", code);
	fail_count(&w->fail, reason);
}

static void
add_latency(struct worker *w, double secs)
{
	if (w->n_latencies == w->latency_cap) {
		w->latency_cap = w->latency_cap ? w->latency_cap * 2 : 1024;
		w->latencies = xrealloc(w->latencies, w->latency_cap * sizeof(double));
	}
	w->latencies[w->n_latencies++] = secs;
}

static void
text_append(struct text *t, const char *p, size_t n)
{
	if (t->len + n > t->cap) {
		t->cap = (t->len + n) * 2;
		t->data = xrealloc(t->data, t->cap);
	}
	memcpy(t->data + t->len, p, n);
	t->len += n;
}

/* Keep "ID1 ID2" from "250 2.0.0 OK queued as ID1 ID2", one id a line. */
static void
add_ids(struct worker *w, const char *line)
{
	const char *p = strstr(line, "queued as ");
	size_t n;

	if (p == NULL || opt.ids_path == NULL)
		return;
	p += strlen("queued as ");
	while (*p) {
		n = strcspn(p, " \r\n");
		if (n > 0) {
			text_append(&w->ids, p, n);
			text_append(&w->ids, "\n", 1);
		}
		p += n;
		p += strspn(p, " \r\n");
	}
}

/* "user<seq>.0 <unix time of the 250>": matched later to the sink's records. */
static void
add_time(struct worker *w, long seq)
{
	struct timespec ts;
	char line[64];
	int n;

	if (opt.times_path == NULL)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	n = snprintf(line, sizeof(line), "user%ld.0 %ld.%06ld\n", seq, (long)ts.tv_sec,
		     ts.tv_nsec / 1000);
	text_append(&w->times, line, (size_t)n);
}

/* ---- connection ---- */

static int
set_timeouts(int fd)
{
	struct timeval tv = {.tv_sec = (time_t)opt.timeout,
			     .tv_usec = (suseconds_t)((opt.timeout - (time_t)opt.timeout) * 1e6)};
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	return 0;
}

static int
tcp_connect(void)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;
	int fd;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, opt.host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons(opt.port);
		len = sizeof(*v4);
	} else if (inet_pton(AF_INET6, opt.host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons(opt.port);
		len = sizeof(*v6);
	} else {
		die("--host must be an IP address (no DNS): %s", opt.host);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (set_timeouts(fd) < 0 || connect(fd, (struct sockaddr *)&ss, len) < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	return fd;
}

static int
send_all(struct worker *w, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = send(w->fd, p, n, MSG_NOSIGNAL);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -EIO;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* One line (without CRLF) into line; -ETIMEDOUT or -EIO when none comes. */
static int
read_line(struct worker *w, char *line, size_t cap)
{
	for (;;) {
		char *nl = memchr(w->in + w->in_off, '\n', w->in_len - w->in_off);
		ssize_t k;

		if (nl != NULL) {
			size_t n = (size_t)(nl - (w->in + w->in_off));
			size_t copy = n < cap - 1 ? n : cap - 1;

			memcpy(line, w->in + w->in_off, copy);
			if (copy > 0 && line[copy - 1] == '\r')
				copy--;
			line[copy] = '\0';
			w->in_off += n + 1;
			return 0;
		}
		if (w->in_off > 0) {
			memmove(w->in, w->in + w->in_off, w->in_len - w->in_off);
			w->in_len -= w->in_off;
			w->in_off = 0;
		}
		if (w->in_len == sizeof(w->in))
			return -EIO; /* a line longer than the buffer is not SMTP */
		k = recv(w->fd, w->in + w->in_len, sizeof(w->in) - w->in_len, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -EIO;
		if (k == 0)
			return -EIO;
		w->in_len += (size_t)k;
	}
}

/*
 * One reply, possibly multi-line: its code, or a negative errno. last gets
 * the final line; the EHLO caller also looks at every line through caps.
 */
static int
read_reply(struct worker *w, char *last, size_t cap, bool *pipelining)
{
	char line[LINE_MAX_LEN];
	int rc;

	for (;;) {
		rc = read_line(w, line, sizeof(line));
		if (rc < 0)
			return rc;
		if (strlen(line) < 3 || line[0] < '1' || line[0] > '5')
			return -EIO;
		if (pipelining && strncasecmp(line + 4, "PIPELINING", 10) == 0)
			*pipelining = true;
		if (line[3] != '-')
			break;
	}
	snprintf(last, cap, "%s", line);
	return atoi(line);
}

static void
disconnect(struct worker *w)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	w->in_len = w->in_off = 0;
}

static const char *
errno_reason(int rc)
{
	return rc == -ETIMEDOUT ? "timeout" : "io";
}

/* Connect, greeting, EHLO: 0, or the reason it failed. */
static const char *
session_open(struct worker *w)
{
	char line[LINE_MAX_LEN], cmd[300];
	int rc;

	rc = tcp_connect();
	if (rc < 0)
		return "connect";
	w->fd = rc;
	w->pipelining = false;
	rc = read_reply(w, line, sizeof(line), NULL);
	if (rc == 220) {
		snprintf(cmd, sizeof(cmd), "EHLO %s\r\n", opt.helo);
		rc = send_all(w, cmd, strlen(cmd));
		if (rc == 0)
			rc = read_reply(w, line, sizeof(line),
					opt.mode == MODE_PIPELINED ? &w->pipelining : NULL);
	}
	if (rc == 250)
		return NULL;
	disconnect(w);
	if (rc < 0)
		return errno_reason(rc);
	return rc == 421 ? "421" : "greeting";
}

/* ---- messages ---- */

static uint64_t
rng_next(struct worker *w)
{
	uint64_t x = w->rng;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return w->rng = x;
}

static const char *
pick_domain(struct worker *w)
{
	unsigned r = (unsigned)(rng_next(w) % opt.total_weight);
	int i;

	for (i = 0; i < opt.n_domains - 1; i++) {
		if (r < opt.domains[i].weight)
			break;
		r -= opt.domains[i].weight;
	}
	return opt.domains[i].name;
}

static void
out_reserve(struct worker *w, size_t n)
{
	if (n > w->out_cap) {
		w->out_cap = n * 2;
		w->out = xrealloc(w->out, w->out_cap);
	}
}

/* Envelope commands for message seq into w->out; returns their length. */
static size_t
format_envelope(struct worker *w, long seq, char rcpts[][160])
{
	size_t len;
	int i;

	out_reserve(w, 512 + (size_t)opt.rcpts_per_msg * 200);
	len = (size_t)sprintf(w->out, "MAIL FROM:<%s> SIZE=%zu\r\n", opt.from, opt.size);
	for (i = 0; i < opt.rcpts_per_msg; i++) {
		snprintf(rcpts[i], 160, "user%ld.%d@%s", seq, i, pick_domain(w));
		len += (size_t)sprintf(w->out + len, "RCPT TO:<%s>\r\n", rcpts[i]);
	}
	return len;
}

/*
 * Headers, filler to opt.size, and the final dot, into w->out. Filler lines
 * never start with '.', so no dot-stuffing is needed.
 */
static size_t
format_body(struct worker *w, long seq, char rcpts[][160])
{
	char date[64];
	time_t t = time(NULL);
	struct tm tm;
	size_t len, fill;

	out_reserve(w, opt.size + 1024 + (size_t)opt.rcpts_per_msg * 170);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", gmtime_r(&t, &tm));
	len = (size_t)sprintf(w->out,
			      "From: Bench <%s>\r\nTo: <%s>\r\nSubject: smtpload message %ld\r\n"
			      "Date: %s\r\nMessage-ID: <%ld.%d.%ld@smtpload.test>\r\n"
			      "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n",
			      opt.from, rcpts[0], seq, date, seq, w->index, (long)t);
	fill = opt.size > len ? opt.size - len : 0;
	memcpy(w->out + len, filler, fill);
	len += fill;
	/* A cut between CR and LF must not leave a bare CR (550 5.6.11). */
	if (len > 0 && w->out[len - 1] == '\r')
		len--;
	if (len < 2 || memcmp(w->out + len - 2, "\r\n", 2) != 0) {
		memcpy(w->out + len, "\r\n", 2);
		len += 2;
	}
	memcpy(w->out + len, ".\r\n", 3);
	return len + 3;
}

/* Filler text: 76-character lines, enough for the largest body. */
static void
make_filler(void)
{
	static const char words[] = "lorem ipsum dolor sit amet consectetur adipiscing elit sed "
				    "do eiusmod tempor incididunt ut labore et dolore magna ";
	size_t i, col = 0;

	filler = xrealloc(NULL, opt.size + 2);
	for (i = 0; i < opt.size; i++) {
		if (col == 76) {
			filler[i] = '\r';
			if (i + 1 < opt.size)
				filler[++i] = '\n';
			col = 0;
			continue;
		}
		filler[i] = words[(i + col) % (sizeof(words) - 1)];
		col++;
	}
}

enum tx_result { TX_DONE, TX_RESET, TX_RECONNECT };

/* Outcome of a failed reply: what to count and whether the session survives. */
static enum tx_result
tx_fail(struct worker *w, int rc)
{
	if (rc < 0) {
		fail_count(&w->fail, errno_reason(rc));
		return TX_RECONNECT;
	}
	fail_code(w, rc);
	return rc == 421 ? TX_RECONNECT : TX_RESET;
}

/* Replies to MAIL, each RCPT and DATA, read in order even if one failed. */
static int
read_envelope_replies(struct worker *w, int *n_rcpt_ok, int *first_bad)
{
	char line[LINE_MAX_LEN];
	int i, rc;

	*n_rcpt_ok = 0;
	*first_bad = 0;
	for (i = 0; i < opt.rcpts_per_msg + 2; i++) {
		rc = read_reply(w, line, sizeof(line), NULL);
		if (rc < 0 || rc == 421)
			return rc; /* after a 421 the server closes: no more replies */
		if (i == opt.rcpts_per_msg + 1)
			return rc; /* DATA */
		if (i > 0 && rc / 100 == 2)
			(*n_rcpt_ok)++;
		else if (rc / 100 != 2 && *first_bad == 0)
			*first_bad = rc;
	}
	return -EIO;
}

/* Unpipelined: each command waits for its reply. */
static int
send_envelope_stepwise(struct worker *w, size_t len, int *n_rcpt_ok, int *first_bad)
{
	char line[LINE_MAX_LEN];
	char *p = w->out, *end = w->out + len;
	int rc, i = 0;

	*n_rcpt_ok = 0;
	*first_bad = 0;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));

		rc = send_all(w, p, (size_t)(nl + 1 - p));
		if (rc == 0)
			rc = read_reply(w, line, sizeof(line), NULL);
		if (rc < 0)
			return rc;
		if (i > 0 && rc / 100 == 2)
			(*n_rcpt_ok)++;
		else if (rc / 100 != 2 && *first_bad == 0)
			*first_bad = rc;
		if ((i == 0 && rc / 100 != 2) || rc == 421)
			return rc;
		p = nl + 1;
		i++;
	}
	rc = send_all(w, "DATA\r\n", 6);
	return rc < 0 ? rc : read_reply(w, line, sizeof(line), NULL);
}

static enum tx_result
send_data(struct worker *w, long seq, char rcpts[][160])
{
	char line[LINE_MAX_LEN];
	size_t len = format_body(w, seq, rcpts);
	double t0;
	int rc;

	t0 = now();
	rc = send_all(w, w->out, len);
	if (rc == 0)
		rc = read_reply(w, line, sizeof(line), NULL);
	if (rc != 250)
		return tx_fail(w, rc);
	add_latency(w, now() - t0);
	add_ids(w, line);
	add_time(w, seq);
	atomic_fetch_add(&n_accepted, 1);
	return TX_DONE;
}

/* A server that takes DATA without any recipient gets an empty body. */
static void
end_empty_data(struct worker *w)
{
	char line[LINE_MAX_LEN];

	if (send_all(w, ".\r\n", 3) < 0 || read_reply(w, line, sizeof(line), NULL) < 0)
		disconnect(w);
}

static enum tx_result
transaction(struct worker *w, long seq)
{
	char rcpts[opt.rcpts_per_msg][160];
	size_t len = format_envelope(w, seq, rcpts);
	int rc, n_ok, first_bad;

	atomic_fetch_add(&n_sent, 1);
	if (w->pipelining) {
		memcpy(w->out + len, "DATA\r\n", 6);
		rc = send_all(w, w->out, len + 6);
		if (rc == 0)
			rc = read_envelope_replies(w, &n_ok, &first_bad);
	} else {
		rc = send_envelope_stepwise(w, len, &n_ok, &first_bad);
	}
	if (rc == 354 && n_ok > 0)
		return send_data(w, seq, rcpts);
	if (rc == 354)
		end_empty_data(w);
	if (rc >= 0 && first_bad != 0 && first_bad != 421 && rc != 421)
		rc = first_bad;
	return tx_fail(w, rc == 354 ? 554 : rc);
}

static void
session_reset(struct worker *w)
{
	char line[LINE_MAX_LEN];

	if (send_all(w, "RSET\r\n", 6) < 0 || read_reply(w, line, sizeof(line), NULL) != 250)
		disconnect(w);
}

static void
session_quit(struct worker *w)
{
	char line[LINE_MAX_LEN];

	if (w->fd < 0)
		return;
	if (send_all(w, "QUIT\r\n", 6) == 0)
		read_reply(w, line, sizeof(line), NULL);
	disconnect(w);
}

/* With --rate, wait for message seq's slot in the schedule. */
static void
pace(long seq)
{
	double wait;

	if (opt.rate <= 0)
		return;
	wait = run_start + (double)seq / opt.rate - now();
	if (wait > 0)
		usleep((useconds_t)(wait * 1e6));
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	long seq;

	while ((seq = atomic_fetch_add(&next_message, 1)) < opt.messages) {
		pace(seq);
		if (w->fd < 0) {
			const char *why = session_open(w);

			if (why != NULL) {
				atomic_fetch_add(&n_sent, 1);
				fail_count(&w->fail, why);
				usleep(10000); /* do not spin against a server that refuses */
				continue;
			}
		}
		switch (transaction(w, seq)) {
		case TX_DONE:
			if (opt.mode == MODE_ONECONN)
				session_quit(w);
			break;
		case TX_RESET:
			if (opt.mode == MODE_ONECONN)
				session_quit(w);
			else
				session_reset(w);
			break;
		case TX_RECONNECT:
			disconnect(w);
			w->reconnects++;
			break;
		}
	}
	session_quit(w);
	return NULL;
}

/* ---- summary ---- */

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
percentile(const double *v, long n, double p)
{
	long i = (long)(p * (double)(n - 1) + 0.5);

	return n ? v[i] : 0;
}

static void
print_failures(struct worker *ws)
{
	struct failures all = {0};
	int t, i, j;

	for (t = 0; t < opt.connections; t++) {
		for (i = 0; i < ws[t].fail.n; i++) {
			for (j = 0; j < all.n && strcmp(all.reason[j], ws[t].fail.reason[i]); j++)
				;
			if (j == all.n && all.n < MAX_CODES)
				strcpy(all.reason[all.n++], ws[t].fail.reason[i]);
			if (j < MAX_CODES)
				all.count[j] += ws[t].fail.count[i];
		}
	}
	printf("\"failures\":{");
	for (i = 0; i < all.n; i++)
		printf("%s\"%s\":%ld", i ? "," : "", all.reason[i], all.count[i]);
	printf("}");
}

/* Every thread's text at offset off in struct worker, into path. */
static void
write_texts(struct worker *ws, const char *path, size_t off)
{
	FILE *fp = fopen(path, "w");
	int t;

	if (fp == NULL)
		die("%s: %s", path, strerror(errno));
	for (t = 0; t < opt.connections; t++) {
		struct text *x = (struct text *)((char *)&ws[t] + off);

		fwrite(x->data, 1, x->len, fp);
	}
	if (fclose(fp) != 0)
		die("%s: %s", path, strerror(errno));
}

/* The load generator's own CPU time: on a small box it competes with the server. */
static double
cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void
print_summary(struct worker *ws, double elapsed)
{
	long n = 0, reconnects = 0;
	double *all;
	int t;

	for (t = 0; t < opt.connections; t++) {
		n += ws[t].n_latencies;
		reconnects += ws[t].reconnects;
	}
	all = xrealloc(NULL, (size_t)(n ? n : 1) * sizeof(double));
	n = 0;
	for (t = 0; t < opt.connections; t++) {
		memcpy(all + n, ws[t].latencies, (size_t)ws[t].n_latencies * sizeof(double));
		n += ws[t].n_latencies;
	}
	qsort(all, (size_t)n, sizeof(double), cmp_double);
	printf("{\"messages\":%ld,\"sent\":%ld,\"accepted\":%ld,\"failed\":%ld,", opt.messages,
	       atomic_load(&n_sent), atomic_load(&n_accepted), atomic_load(&n_failed));
	print_failures(ws);
	printf(",\"cpu_s\":%.2f", cpu_seconds());
	printf(",\"reconnects\":%ld,\"connections\":%d,\"size\":%zu,\"rcpts_per_msg\":%d,"
	       "\"pipelining\":%s,\"rate\":%.1f,\"elapsed\":%.3f,\"messages_per_s\":%.1f,"
	       "\"latency_ms\":{\"p50\":%.2f,\"p99\":%.2f,\"max\":%.2f}}\n",
	       reconnects, opt.connections, opt.size, opt.rcpts_per_msg,
	       ws[0].pipelining ? "true" : "false", opt.rate, elapsed,
	       elapsed > 0 ? atomic_load(&n_accepted) / elapsed : 0.0,
	       percentile(all, n, 0.50) * 1e3, percentile(all, n, 0.99) * 1e3,
	       n ? all[n - 1] * 1e3 : 0.0);
	free(all);
}

/* Progress on stderr until every worker is done. */
static void
watch_progress(double start, atomic_bool *done)
{
	double next = start + opt.progress, last_t = start;
	long last_ok = 0;

	while (!atomic_load(done)) {
		usleep(50000);
		if (opt.progress <= 0 || now() < next)
			continue;
		long ok = atomic_load(&n_accepted);
		double t = now();

		fprintf(stderr, "progress: %.1fs sent=%ld accepted=%ld failed=%ld rate=%.0f/s\n",
			t - start, atomic_load(&n_sent), ok, atomic_load(&n_failed),
			(ok - last_ok) / (t - last_t));
		last_ok = ok;
		last_t = t;
		next += opt.progress;
	}
}

static atomic_bool all_done;

static void *
joiner(void *arg)
{
	struct worker *ws = arg;
	int t;

	for (t = 0; t < opt.connections; t++)
		pthread_join(ws[t].thread, NULL);
	atomic_store(&all_done, true);
	return NULL;
}

int
main(int argc, char **argv)
{
	struct worker *ws;
	pthread_t join_thread;
	double start;
	int t;

	parse_options(argc, argv);
	make_filler();
	ws = calloc((size_t)opt.connections, sizeof(*ws));
	if (ws == NULL)
		die("out of memory");
	start = run_start = now();
	for (t = 0; t < opt.connections; t++) {
		ws[t].index = t;
		ws[t].fd = -1;
		ws[t].rng = 0x9e3779b97f4a7c15ULL * (uint64_t)(t + 1);
		if (pthread_create(&ws[t].thread, NULL, worker_main, &ws[t]) != 0)
			die("pthread_create failed");
	}
	if (pthread_create(&join_thread, NULL, joiner, ws) != 0)
		die("pthread_create failed");
	watch_progress(start, &all_done);
	pthread_join(join_thread, NULL);
	if (opt.ids_path)
		write_texts(ws, opt.ids_path, offsetof(struct worker, ids));
	if (opt.times_path)
		write_texts(ws, opt.times_path, offsetof(struct worker, times));
	print_summary(ws, now() - start);
	return atomic_load(&n_accepted) == opt.messages ? 0 : 1;
}
