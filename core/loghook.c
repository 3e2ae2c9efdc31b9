// SPDX-License-Identifier: MIT
/*
 * Log hooks (see include/tern/loghook.h).
 *
 * Each hook is a small state machine on shard 0: IDLE reads lines from its
 * read position into a batch, DELIVERING waits for the policy's deliver
 * coroutine, BACKOFF waits before offering the same batch again. Reading
 * never goes past a delivery in flight, so when deliver acknowledges, the
 * read position is exactly the end of the acknowledged records and becomes
 * the durable cursor. Lines of other record types are skipped by looking at
 * the "type" key, which logrec.c always writes first.
 *
 * The segment being written may be renamed (finished) at any moment; the
 * open descriptor keeps reading the same file, and a segment is left for the
 * next one only after a read hit its end while it was already finished, so
 * no line written before the rename is missed.
 */
#include "tern/loghook.h"
#include "tern/log.h"
#include "tern/logrec.h"
#include "tern/metrics.h"
#include "tern/policy_hook.h"
#include "tern/shard.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <zstd.h>

#define LOGHOOK_MAX 32
#define LOGHOOK_READ_CHUNK (64u << 10)
/* Lines looked at per loop turn, so a long backlog of skipped types never stalls shard 0. */
#define LOGHOOK_SCAN_PER_TURN 20000
#define LOGHOOK_RETRY_MIN 1.0
#define LOGHOOK_RETRY_MAX 30.0
#define LOGHOOK_WARN_LAG 60.0
#define LOGHOOK_WARN_EVERY 60.0
/* When only skipped lines moved the cursor, it is saved at most this often. */
#define LOGHOOK_SAVE_EVERY 1.0

enum loghook_state { LOGHOOK_IDLE, LOGHOOK_DELIVERING, LOGHOOK_BACKOFF };

struct loghook {
	/* Options: written by loghook_configure under lock, read by shard 0 under lock. */
	char name[LOGHOOK_NAME_MAX];
	char types[LOGHOOK_TYPES_MAX][32];
	size_t n_types;
	size_t batch_size;
	double max_latency;
	char cursor_seg[LOGHOOK_SEGMENT_MAX]; /* durable cursor's segment, read by retention */

	/* The cursor writer: the last position handed over, written by its thread. */
	pthread_t writer;
	pthread_mutex_t wlock;
	pthread_cond_t wcond;
	char wdir[PATH_MAX];
	char wseg[LOGHOOK_SEGMENT_MAX];
	uint64_t woff;
	bool wpending, wstop;

	/* Everything below belongs to shard 0. */
	char event[LOGHOOK_NAME_MAX + sizeof(LOGHOOK_EVENT_PREFIX)];
	struct shard *shard;
	ev_timer timer;
	enum loghook_state state;
	double retry_at, backoff;
	struct coro_ref ref;
	bool started;			     /* logs open, cursor loaded, writer running */
	char saved_seg[LOGHOOK_SEGMENT_MAX]; /* the position last handed to the writer */
	uint64_t saved_off;
	char seg[LOGHOOK_SEGMENT_MAX]; /* read position: the end of the last line consumed */
	uint64_t off;
	int fd;
	ZSTD_DCtx *zd;	  /* for compressed segments ("X.jsonl.zst"), made on first use */
	bool zst;	  /* the open segment is compressed: off counts decompressed bytes */
	uint64_t skip;	  /* decompressed bytes still to drop to reach off after an open */
	struct buf rbuf;  /* bytes read past off */
	struct buf batch; /* the records offered next, each line NUL-terminated */
	size_t n_batch;
	double batch_started; /* util_now() when its first record was read */
	double oldest;	      /* wall-clock time of its first record */
	double last_save, last_warn;
	/* Lag in records: written since start plus the backlog found at start, minus consumed. */
	uint64_t written0, backlog_bytes, consumed, consumed_bytes;
	bool warned_missing;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct loghook *hooks[LOGHOOK_MAX];
static size_t n_hooks;

static void hook_tick(struct ev_loop *loop, ev_timer *w, int revents);

bool
loghook_name_valid(const char *name)
{
	size_t n =
	    strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-");

	return n > 0 && name[n] == '\0' && n < LOGHOOK_NAME_MAX && name[0] != '.';
}

/* ---- files ------------------------------------------------------------------------------- */

static void
cursor_path(const struct loghook *h, const char *dir, const char *suffix, char *out, size_t n)
{
	snprintf(out, n, "%s/.loghook-%s.cursor%s", dir, h->name, suffix);
}

static void
cursor_load(struct loghook *h, const char *dir)
{
	char path[PATH_MAX], seg[LOGHOOK_SEGMENT_MAX];
	unsigned long long off;
	FILE *f;

	cursor_path(h, dir, "", path, sizeof(path));
	f = fopen(path, "r");
	if (f == NULL)
		return; /* a new hook starts at the oldest segment */
	if (fscanf(f, "%95s %llu", seg, &off) == 2) {
		snprintf(h->seg, sizeof(h->seg), "%s", seg);
		h->off = off;
	} else {
		log_warn("loghook",
			 "log hook %s: unreadable cursor %s: starting at the oldest segment",
			 h->name, path);
	}
	fclose(f);
}

static int
write_synced(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, data, len) != (ssize_t)len || fsync(fd) < 0)
		rc = errno ? -errno : -EIO;
	close(fd);
	return rc;
}

static void
fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

/*
 * The cursor file is written by a thread of the hook's own: fsync takes
 * milliseconds, and shard 0 serves mail meanwhile. Only the latest position
 * matters, so positions handed over while a write is under way replace each
 * other. Write, fsync, rename, fsync the directory: after a crash the file
 * holds this position or the previous one, never a torn line.
 */
static void
cursor_write(struct loghook *h, const char *seg, uint64_t off)
{
	char tmp[PATH_MAX], path[PATH_MAX], line[LOGHOOK_SEGMENT_MAX + 32];
	int len = snprintf(line, sizeof(line), "%s %" PRIu64 "\n", seg, off);
	int rc;

	cursor_path(h, h->wdir, ".tmp", tmp, sizeof(tmp));
	cursor_path(h, h->wdir, "", path, sizeof(path));
	rc = write_synced(tmp, line, (size_t)len);
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0) {
		log_warn("loghook", "log hook %s: cannot save cursor %s: %s", h->name, path,
			 strerror(-rc));
		return;
	}
	fsync_dir(h->wdir);
	pthread_mutex_lock(&lock);
	memcpy(h->cursor_seg, seg, sizeof(h->cursor_seg));
	pthread_mutex_unlock(&lock);
}

static void *
writer_main(void *arg)
{
	struct loghook *h = arg;
	char seg[LOGHOOK_SEGMENT_MAX];
	uint64_t off;

	pthread_mutex_lock(&h->wlock);
	for (;;) {
		while (!h->wpending && !h->wstop)
			pthread_cond_wait(&h->wcond, &h->wlock);
		if (!h->wpending)
			break; /* stopped, and the last position is written */
		memcpy(seg, h->wseg, sizeof(seg));
		off = h->woff;
		h->wpending = false;
		pthread_mutex_unlock(&h->wlock);
		cursor_write(h, seg, off);
		pthread_mutex_lock(&h->wlock);
	}
	pthread_mutex_unlock(&h->wlock);
	return NULL;
}

static int
writer_start(struct loghook *h, const char *dir)
{
	snprintf(h->wdir, sizeof(h->wdir), "%s", dir);
	pthread_mutex_init(&h->wlock, NULL);
	pthread_cond_init(&h->wcond, NULL);
	return -pthread_create(&h->writer, NULL, writer_main, h);
}

/* Write what was handed over last, then end the thread. */
static void
writer_stop(struct loghook *h)
{
	pthread_mutex_lock(&h->wlock);
	h->wstop = true;
	pthread_cond_signal(&h->wcond);
	pthread_mutex_unlock(&h->wlock);
	pthread_join(h->writer, NULL);
	pthread_cond_destroy(&h->wcond);
	pthread_mutex_destroy(&h->wlock);
}

/* Make the read position the durable cursor (soon, by the writer). */
static void
cursor_save(struct loghook *h)
{
	pthread_mutex_lock(&h->wlock);
	memcpy(h->wseg, h->seg, sizeof(h->wseg));
	h->woff = h->off;
	h->wpending = true;
	pthread_cond_signal(&h->wcond);
	pthread_mutex_unlock(&h->wlock);
	memcpy(h->saved_seg, h->seg, sizeof(h->saved_seg));
	h->saved_off = h->off;
	h->last_save = util_now();
}

static bool
has_suffix(const char *name, size_t n, const char *suffix)
{
	size_t k = strlen(suffix);

	return n > k && memcmp(name + n - k, suffix, k) == 0;
}

/* The base name of a segment file ("X.jsonl[.zst]" for it and for "X.jsonl[.zst].open"). */
static bool
segment_base(const char *name, char *out)
{
	size_t n = strlen(name);

	if (has_suffix(name, n, ".open"))
		n -= 5;
	if (!has_suffix(name, n, ".jsonl") && !has_suffix(name, n, ".jsonl.zst"))
		return false;
	if (n >= LOGHOOK_SEGMENT_MAX || name[0] == '.')
		return false;
	memcpy(out, name, n);
	out[n] = '\0';
	return true;
}

/* The first segment after `after` ("" = the oldest), or with inclusive, at or after it. */
static bool
segment_next(const char *dir, const char *after, bool inclusive, char *out)
{
	char base[LOGHOOK_SEGMENT_MAX];
	struct dirent *de;
	DIR *d = opendir(dir);
	bool found = false;
	int c;

	if (d == NULL)
		return false;
	while ((de = readdir(d)) != NULL) {
		if (!segment_base(de->d_name, base))
			continue;
		c = strcmp(base, after);
		if ((c > 0 || (inclusive && c == 0)) && (!found || strcmp(base, out) < 0)) {
			memcpy(out, base, sizeof(base));
			found = true;
		}
	}
	closedir(d);
	return found;
}

static bool
segment_finished(const char *dir, const char *base)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dir, base);
	return access(path, F_OK) == 0;
}

/* Open seg (finished or still being written) at off. */
static int
segment_open(struct loghook *h, const char *dir)
{
	char path[PATH_MAX];
	int i;

	/* Twice: a segment may be renamed between the two names being tried. */
	for (i = 0; i < 2 && h->fd < 0; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, h->seg);
		h->fd = open(path, O_RDONLY | O_CLOEXEC);
		if (h->fd < 0) {
			snprintf(path, sizeof(path), "%s/%s.open", dir, h->seg);
			h->fd = open(path, O_RDONLY | O_CLOEXEC);
		}
	}
	if (h->fd < 0)
		return -errno;
	buf_reset(&h->rbuf);
	h->zst = has_suffix(h->seg, strlen(h->seg), ".zst");
	if (!h->zst)
		return lseek(h->fd, (off_t)h->off, SEEK_SET) < 0 ? -errno : 0;
	/* A compressed segment is read from its start; what lies before off is dropped. */
	if (h->zd == NULL && (h->zd = ZSTD_createDCtx()) == NULL)
		return -ENOMEM;
	ZSTD_DCtx_reset(h->zd, ZSTD_reset_session_only);
	h->skip = h->off;
	return 0;
}

/* Decompress n bytes of in onto rbuf, then drop what skip says; -EIO on corrupt data. */
static int
decompress(struct loghook *h, const char *in, size_t n)
{
	ZSTD_inBuffer zin = {in, n, 0};
	ZSTD_outBuffer zout;
	uint64_t drop;
	size_t rc;

	while (zin.pos < zin.size) {
		if (buf_reserve(&h->rbuf, ZSTD_DStreamOutSize()) < 0)
			return -ENOMEM;
		zout = (ZSTD_outBuffer){h->rbuf.data + h->rbuf.len, ZSTD_DStreamOutSize(), 0};
		rc = ZSTD_decompressStream(h->zd, &zout, &zin);
		if (ZSTD_isError(rc))
			return -EIO;
		h->rbuf.len += zout.pos;
		h->rbuf.data[h->rbuf.len] = '\0';
	}
	drop = h->skip < h->rbuf.len ? h->skip : h->rbuf.len;
	buf_consume(&h->rbuf, (size_t)drop);
	h->skip -= drop;
	return 0;
}

/* Append what the segment has beyond what was read: > 0 when something came, 0 at its end. */
static ssize_t
segment_read(struct loghook *h)
{
	char in[LOGHOOK_READ_CHUNK];
	ssize_t n;

	if (!h->zst) {
		if (buf_reserve(&h->rbuf, LOGHOOK_READ_CHUNK) < 0)
			return -ENOMEM;
		n = read(h->fd, h->rbuf.data + h->rbuf.len, LOGHOOK_READ_CHUNK);
		if (n > 0) {
			h->rbuf.len += (size_t)n;
			h->rbuf.data[h->rbuf.len] = '\0';
		}
		return n;
	}
	n = read(h->fd, in, sizeof(in));
	if (n > 0 && decompress(h, in, (size_t)n) < 0) {
		log_warn("loghook",
			 "log hook %s: segment %s does not decompress; going on with the next",
			 h->name, h->seg);
		return 0;
	}
	return n;
}

static void
segment_close(struct loghook *h)
{
	if (h->fd >= 0)
		close(h->fd);
	h->fd = -1;
	buf_reset(&h->rbuf);
}

/* ---- reading ----------------------------------------------------------------------------- */

static bool
type_wanted(const struct loghook *h, const char *line, size_t len)
{
	static const char key[] = "{\"type\":\"";
	const char *t = line + sizeof(key) - 1, *q;
	size_t i;

	if (h->n_types == 0)
		return true;
	if (len < sizeof(key) || memcmp(line, key, sizeof(key) - 1) != 0)
		return false;
	q = memchr(t, '"', len - (sizeof(key) - 1));
	for (i = 0; q && i < h->n_types; i++)
		if (strlen(h->types[i]) == (size_t)(q - t) && memcmp(h->types[i], t, q - t) == 0)
			return true;
	return false;
}

/* The record's "timestamp" (written by util_format_time) as Unix time; now when absent. */
static double
record_time(const char *line)
{
	const char *p = strstr(line, "\"timestamp\":\"");
	struct tm tm = {0};
	double sec;

	if (p == NULL || sscanf(p + 13, "%4d-%2d-%2dT%2d:%2d:%lf", &tm.tm_year, &tm.tm_mon,
				&tm.tm_mday, &tm.tm_hour, &tm.tm_min, &sec) != 6)
		return util_wallclock();
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (double)timegm(&tm) + sec;
}

static void
batch_add(struct loghook *h, const char *line, size_t len)
{
	if (buf_append(&h->batch, line, len) < 0 || buf_append_char(&h->batch, '\0') < 0)
		return; /* out of memory: the record is read again after the next restart */
	if (h->n_batch++ == 0) {
		h->batch_started = util_now();
		h->oldest = record_time(h->batch.data);
	}
}

/* Consume the complete lines in rbuf; returns how many were looked at. */
static size_t
take_lines(struct loghook *h, size_t budget)
{
	size_t used = 0, n = 0, len;
	const char *p, *nl;

	while (n < budget && h->n_batch < h->batch_size && used < h->rbuf.len) {
		p = h->rbuf.data + used;
		nl = memchr(p, '\n', h->rbuf.len - used);
		if (nl == NULL)
			break;
		len = (size_t)(nl - p);
		if (len > 0 && type_wanted(h, p, len))
			batch_add(h, p, len);
		used += len + 1;
		n++;
	}
	buf_consume(&h->rbuf, used);
	h->off += used;
	h->consumed += n;
	h->consumed_bytes += used;
	return n;
}

/* Read more of the current segment, or move to the next one; false when nothing is left now. */
static bool
read_more(struct loghook *h, const char *dir)
{
	char next[LOGHOOK_SEGMENT_MAX];
	bool finished = segment_finished(dir, h->seg);
	ssize_t n = segment_read(h);

	if (n > 0)
		return true;
	if (n < 0 || !finished || !segment_next(dir, h->seg, false, next))
		return false;
	/* Finished and read to its end: a torn tail (never written whole) is not a record. */
	segment_close(h);
	memcpy(h->seg, next, sizeof(next));
	h->off = 0;
	return true;
}

/* Fill the batch from the read position. */
static void
fill(struct loghook *h, const char *dir)
{
	size_t budget = LOGHOOK_SCAN_PER_TURN;
	char first[LOGHOOK_SEGMENT_MAX];

	while (budget > 0 && h->n_batch < h->batch_size) {
		if (h->fd < 0) {
			if (!segment_next(dir, h->seg, true, first))
				return;
			if (strcmp(first, h->seg) != 0) {
				memcpy(h->seg, first, sizeof(first));
				h->off = 0; /* its segment is gone (a crash left no record in it) */
			}
			if (segment_open(h, dir) < 0) {
				segment_close(h);
				return;
			}
		}
		budget -= take_lines(h, budget);
		if (budget > 0 && h->n_batch < h->batch_size && !read_more(h, dir))
			return;
	}
}

/* ---- lag --------------------------------------------------------------------------------- */

/* Bytes of segments from the read position on, measured once at start (compressed
 * segments count their compressed size: the estimate is then low). */
static uint64_t
backlog_bytes(const struct loghook *h, const char *dir)
{
	char seg[LOGHOOK_SEGMENT_MAX], next[LOGHOOK_SEGMENT_MAX], path[PATH_MAX];
	uint64_t total = 0, size;
	struct stat st;
	bool first = true;

	memcpy(seg, h->seg, sizeof(seg));
	while (segment_next(dir, seg, first, next)) {
		snprintf(path, sizeof(path), "%s/%s", dir, next);
		size = stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
		if (size == 0) {
			snprintf(path, sizeof(path), "%s/%s.open", dir, next);
			size = stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
		}
		if (strcmp(next, h->seg) == 0)
			size -= h->off < size ? h->off : size;
		total += size;
		memcpy(seg, next, sizeof(seg));
		first = false;
	}
	return total;
}

static void
publish_lag(struct loghook *h)
{
	double avg = h->consumed ? (double)h->consumed_bytes / (double)h->consumed : 512.0;
	double backlog = (double)h->backlog_bytes / avg;
	double records = (double)(logrec_written() - h->written0) + backlog - (double)h->consumed +
			 (double)h->n_batch;
	double seconds = h->n_batch ? util_wallclock() - h->oldest : 0;
	double now = util_now();

	if (records < (double)h->n_batch)
		records = (double)h->n_batch;
	if (seconds < 0)
		seconds = 0;
	metrics_set_log_hook_lag(h->name, (uint64_t)records, seconds);
	if (seconds >= LOGHOOK_WARN_LAG && now - h->last_warn >= LOGHOOK_WARN_EVERY) {
		h->last_warn = now;
		log_warn("loghook",
			 "log hook %s is %.0f s (about %.0f records) behind the local log", h->name,
			 seconds, records);
	}
}

/* ---- delivering -------------------------------------------------------------------------- */

static void
schedule(struct loghook *h, double after)
{
	ev_timer_stop(h->shard->loop, &h->timer);
	ev_timer_set(&h->timer, after, h->timer.repeat);
	ev_timer_start(h->shard->loop, &h->timer);
}

static void
retry_later(struct loghook *h, const char *why)
{
	h->backoff = h->backoff > 0 ? h->backoff * 2 : LOGHOOK_RETRY_MIN;
	if (h->backoff > LOGHOOK_RETRY_MAX)
		h->backoff = LOGHOOK_RETRY_MAX;
	h->state = LOGHOOK_BACKOFF;
	h->retry_at = util_now() + h->backoff;
	log_warn("loghook", "log hook %s: %zu records not delivered (%s); retrying in %.0f s",
		 h->name, h->n_batch, why, h->backoff);
}

static void
delivered(struct loghook *h)
{
	cursor_save(h);
	buf_reset(&h->batch);
	h->n_batch = 0;
	h->backoff = 0;
	h->state = LOGHOOK_IDLE;
	schedule(h, 0); /* more may be waiting: read on at once, outside this callback */
}

static void
deliver_done(void *arg, lua_State *co, int status, int nres, const struct tern_err *err)
{
	struct loghook *h = arg;
	const char *why = "deliver returned false";

	if (status == CORO_OK && nres >= 1 && lua_toboolean(co, -nres)) {
		delivered(h);
		return;
	}
	if (status != CORO_OK)
		why = err->msg;
	else if (nres >= 2 && lua_isstring(co, -nres + 1))
		why = lua_tostring(co, -nres + 1);
	retry_later(h, why);
}

static void
deliver(struct loghook *h)
{
	struct policy *p = h->shard->policy;
	lua_State *co = p ? policy_hook_begin(p, h->event, &h->ref) : NULL;
	const char *line = h->batch.data;
	size_t i, n;

	if (co == NULL) {
		if (!h->warned_missing)
			log_warn("loghook",
				 "log hook %s has no deliver function in the current policy",
				 h->name);
		h->warned_missing = true;
		h->state = LOGHOOK_BACKOFF;
		h->retry_at = util_now() + LOGHOOK_RETRY_MAX;
		return;
	}
	h->warned_missing = false;
	lua_createtable(co, (int)h->n_batch, 0);
	for (i = 0; i < h->n_batch; i++, line += n + 1) {
		n = strlen(line);
		lua_pushlstring(co, line, n);
		lua_rawseti(co, -2, (int)i + 1);
	}
	h->state = LOGHOOK_DELIVERING; /* before the start: done may run inside it */
	policy_hook_start(p, &h->ref, h->event, 1, deliver_done, h);
}

/* ---- the loop ---------------------------------------------------------------------------- */

static bool
hook_ready(struct loghook *h, const char *dir)
{
	if (h->started)
		return true;
	if (dir == NULL)
		return false; /* the local logs are not open (yet) */
	if (writer_start(h, dir) < 0) {
		log_error("loghook", "log hook %s: cannot start its cursor writer", h->name);
		ev_timer_stop(h->shard->loop, &h->timer);
		return false;
	}
	cursor_load(h, dir);
	memcpy(h->saved_seg, h->seg, sizeof(h->seg));
	h->saved_off = h->off;
	pthread_mutex_lock(&lock);
	memcpy(h->cursor_seg, h->seg, sizeof(h->seg));
	pthread_mutex_unlock(&lock);
	h->written0 = logrec_written();
	h->backlog_bytes = backlog_bytes(h, dir);
	h->started = true;
	return true;
}

static void
hook_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct loghook *h = w->data;
	char dir_buf[PATH_MAX];
	const char *dir = logrec_dir(dir_buf, sizeof(dir_buf)) ? dir_buf : NULL;
	double now = util_now();

	if (h->state == LOGHOOK_DELIVERING || !hook_ready(h, dir))
		return;
	if (h->state == LOGHOOK_BACKOFF && now < h->retry_at)
		return;
	pthread_mutex_lock(&lock);
	fill(h, dir);
	pthread_mutex_unlock(&lock);
	publish_lag(h);
	if (h->n_batch == 0) {
		h->state = LOGHOOK_IDLE;
		if ((h->off != h->saved_off || strcmp(h->seg, h->saved_seg) != 0) &&
		    now - h->last_save >= LOGHOOK_SAVE_EVERY)
			cursor_save(h);
		return;
	}
	if (h->state == LOGHOOK_BACKOFF || h->n_batch >= h->batch_size ||
	    now - h->batch_started >= h->max_latency)
		deliver(h);
}

static void
hook_exit(struct shard *s, void *arg)
{
	struct loghook *h = arg;

	ev_timer_stop(s->loop, &h->timer);
	if (h->state == LOGHOOK_DELIVERING)
		coro_cancel(&h->ref); /* not acknowledged: offered again after the restart */
	if (h->started)
		writer_stop(h);
	segment_close(h);
	ZSTD_freeDCtx(h->zd);
	buf_deinit(&h->rbuf);
	buf_deinit(&h->batch);
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < n_hooks; i++)
		if (hooks[i] == h)
			hooks[i] = hooks[--n_hooks];
	pthread_mutex_unlock(&lock);
	free(h);
}

/* On shard 0: start following the logs. */
static void
hook_start(void *arg)
{
	struct loghook *h = arg;
	double every = h->max_latency / 2;

	h->shard = shard_self();
	ev_timer_init(&h->timer, hook_tick, 0, every < 0.01 ? 0.01 : every > 0.25 ? 0.25 : every);
	h->timer.data = h;
	ev_timer_start(h->shard->loop, &h->timer);
	shard_on_exit(h->shard, hook_exit, h);
}

/* ---- configuration ----------------------------------------------------------------------- */

static void
set_options(struct loghook *h, const struct loghook_config *c)
{
	size_t i;

	for (i = 0; i < c->n_types; i++)
		snprintf(h->types[i], sizeof(h->types[i]), "%s", c->types[i]);
	h->n_types = c->n_types;
	h->batch_size = c->batch_size;
	h->max_latency = c->max_latency;
}

static struct loghook *
hook_new(const struct loghook_config *c)
{
	struct loghook *h = calloc(1, sizeof(*h));

	if (h == NULL)
		return NULL;
	snprintf(h->name, sizeof(h->name), "%s", c->name);
	snprintf(h->event, sizeof(h->event), "%s%s", LOGHOOK_EVENT_PREFIX, c->name);
	h->fd = -1;
	buf_init(&h->rbuf);
	buf_init(&h->batch);
	return h;
}

int
loghook_configure(const struct loghook_config *c, struct tern_err *err)
{
	struct loghook *h = NULL;
	size_t i;

	if (!loghook_name_valid(c->name) || c->batch_size < 1 || c->max_latency <= 0) {
		tern_err_set(err, 0, "", "invalid log hook options");
		return -EINVAL;
	}
	pthread_mutex_lock(&lock);
	for (i = 0; i < n_hooks && h == NULL; i++)
		if (strcmp(hooks[i]->name, c->name) == 0)
			h = hooks[i];
	if (h != NULL) {
		set_options(h, c);
		pthread_mutex_unlock(&lock);
		return 0;
	}
	if (n_hooks == LOGHOOK_MAX || (h = hook_new(c)) == NULL ||
	    shard_post(shard_get(0), hook_start, h) < 0) {
		pthread_mutex_unlock(&lock);
		free(h);
		tern_err_set(err, 0, "", "cannot add log hook '%s' (at most %d)", c->name,
			     LOGHOOK_MAX);
		return -ENOSPC;
	}
	set_options(h, c);
	hooks[n_hooks++] = h;
	pthread_mutex_unlock(&lock);
	return 0;
}

bool
loghook_oldest_needed(char *out, size_t n)
{
	const char *oldest = NULL;
	size_t i;

	pthread_mutex_lock(&lock);
	for (i = 0; i < n_hooks; i++)
		if (oldest == NULL || strcmp(hooks[i]->cursor_seg, oldest) < 0)
			oldest = hooks[i]->cursor_seg;
	if (oldest != NULL)
		snprintf(out, n, "%s", oldest);
	pthread_mutex_unlock(&lock);
	return oldest != NULL;
}
