// SPDX-License-Identifier: MIT
/*
 * Segmented JSON-lines files for outcome records (see include/tern/logfile.h).
 *
 * Two locks keep appenders off the disk: `lock` guards only the buffer that
 * shards append to; `io_lock` guards the segment, its compressor and the
 * buffer being written. Draining swaps the two buffers under `lock` and does
 * all I/O under `io_lock`, so an appender waits at most for a memcpy or a
 * pointer swap. The flusher thread drains every flush_interval, and at once
 * when an appender has buffered LOGFILE_HANDOVER_BYTES.
 *
 * A segment that fails to write is abandoned and finished the way a crash
 * leftover is, so a full disk costs the records of the failed write and
 * never leaves a torn file behind a final name.
 *
 * Retention scans the directory on the flusher thread only (at open, after a
 * segment is finished, and every LOGFILE_RETENTION_INTERVAL), never on a
 * shard that calls logfile_flush; it looks only at finished segments, so it
 * needs neither lock while it deletes.
 */
#include "tern/logfile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "tern/log.h"

#define LOGFILE_DEFAULT_MAX_BUFFERED (64u << 20)
#define LOGFILE_DEFAULT_ZSTD_LEVEL 3
/* A drained buffer larger than this is freed rather than kept for reuse. */
#define LOGFILE_KEEP_BYTES (4 * LOGFILE_HANDOVER_BYTES)
#define LOGFILE_NAME_MAX 96
#define LOGFILE_OPEN_SUFFIX ".open"
#define LOGFILE_EXT_MAX 16
/* Segments age without being finished: look at max_age this often anyway. */
#define LOGFILE_RETENTION_INTERVAL 10.0

struct segment {
	int fd;                      /* -1 when no segment is open */
	char base[LOGFILE_NAME_MAX]; /* final name: "YYYYMMDD-HHMMSS.ssssss.jsonl[.zst]" */
	double opened;               /* util_now() at open */
	uint64_t bytes;              /* uncompressed record bytes written */
	bool unflushed;              /* zstd input not yet flushed to a block */
};

struct logfile {
	struct logfile_config cfg; /* cfg.dir points at dir */
	char *dir;
	int dirfd;
	char base_ext[LOGFILE_EXT_MAX];  /* cfg.ext points here: ".jsonl", ".csv" */
	char ext[LOGFILE_EXT_MAX + 4];   /* base_ext, + ".zst" when compressed */
	char *header;                    /* cfg.header with its '\n', or NULL */

	pthread_mutex_t lock; /* guards the fields up to io_lock */
	pthread_cond_t wake;
	struct buf cur;
	bool stop;
	bool handover; /* an appender asked for a drain */
	uint64_t records;
	uint64_t dropped;

	pthread_mutex_t io_lock; /* guards the fields below */
	struct buf out;
	struct segment seg;
	ZSTD_CCtx *zc;
	char *zbuf;
	size_t zbuf_size;
	bool failing; /* the last I/O failed: log once, not per tick */
	uint64_t write_errors;
	uint64_t lost;
	uint64_t segments;
	uint64_t removed;
	bool retention_due; /* a segment was finished since retention last ran */

	pthread_t flusher;
};

static int
write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		if (w == 0)
			return -EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static bool
has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static uint64_t
count_lines(const char *p, size_t n)
{
	const char *end = p + n;
	uint64_t lines = 0;

	while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		lines++;
		p++;
	}
	return lines;
}

/* Log the first failure of a run of them; every one is counted. */
static void
io_failed(struct logfile *lf, const char *what, const char *name, int rc)
{
	lf->write_errors++;
	if (!lf->failing)
		log_error("logrec", "cannot %s %s/%s: %s", what, lf->dir, name, strerror(-rc));
	lf->failing = true;
}

static void
io_succeeded(struct logfile *lf)
{
	if (lf->failing)
		log_info("logrec", "writing local logs in %s again", lf->dir);
	lf->failing = false;
}

/*
 * Compress n bytes into fd. ZSTD_e_continue may keep input inside the
 * compressor; ZSTD_e_flush ends a block, ZSTD_e_end the frame.
 */
static int
zstd_write(struct logfile *lf, int fd, const char *p, size_t n, ZSTD_EndDirective mode)
{
	ZSTD_inBuffer in = {p, n, 0};
	ZSTD_outBuffer out;
	size_t left;
	int rc;

	do {
		out = (ZSTD_outBuffer){lf->zbuf, lf->zbuf_size, 0};
		left = ZSTD_compressStream2(lf->zc, &out, &in, mode);
		if (ZSTD_isError(left))
			return -EIO;
		rc = write_all(fd, lf->zbuf, out.pos);
		if (rc < 0)
			return rc;
	} while (mode == ZSTD_e_continue ? in.pos < in.size : left != 0);
	return 0;
}

/* ---- finishing leftovers: crashes and abandoned segments ---- */

/* Length of the prefix of fd's first size bytes that ends in '\n'. */
static off_t
plain_complete_len(int fd, off_t size)
{
	char chunk[65536];
	const char *nl;
	off_t at = size;
	size_t n;
	ssize_t r;

	while (at > 0) {
		n = at < (off_t)sizeof(chunk) ? (size_t)at : sizeof(chunk);
		r = pread(fd, chunk, n, at - (off_t)n);
		if (r != (ssize_t)n)
			return r < 0 ? -errno : -EIO;
		nl = memrchr(chunk, '\n', n);
		if (nl != NULL)
			return at - (off_t)n + (nl - chunk) + 1;
		at -= (off_t)n;
	}
	return 0;
}

/* Cut a plain leftover after its last complete line. */
static int
finish_plain(struct logfile *lf, const char *src, uint64_t *dropped, bool *empty)
{
	off_t size, keep;
	int fd, rc = 0;

	fd = openat(lf->dirfd, src, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size = lseek(fd, 0, SEEK_END);
	keep = size < 0 ? -errno : plain_complete_len(fd, size);
	if (keep < 0)
		rc = (int)keep;
	else if (keep < size && ftruncate(fd, keep) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	*dropped = keep >= 0 ? (uint64_t)(size - keep) : 0;
	*empty = keep == 0;
	return rc;
}

struct salvage {
	struct buf carry; /* decompressed text after the last '\n' so far */
	uint64_t kept;    /* bytes re-compressed */
};

/* Re-compress the complete lines in s->carry, keep the torn rest. */
static int
salvage_lines(struct logfile *lf, int out, struct salvage *s)
{
	const char *nl = memrchr(s->carry.data, '\n', s->carry.len);
	size_t n;
	int rc;

	if (nl == NULL)
		return 0;
	n = (size_t)(nl - s->carry.data) + 1;
	rc = zstd_write(lf, out, s->carry.data, n, ZSTD_e_continue);
	if (rc < 0)
		return rc;
	s->kept += n;
	buf_consume(&s->carry, n);
	return 0;
}

/*
 * Decompress one read's worth of input. A decoding error means the crash tore
 * the data here: what was decoded before it stands, the rest is dropped.
 */
static int
salvage_input(struct logfile *lf, int out, ZSTD_DCtx *dc, ZSTD_inBuffer *in, struct salvage *s,
	      char *obuf, size_t osize)
{
	ZSTD_outBuffer o;
	size_t r;
	int rc;

	while (in->pos < in->size) {
		o = (ZSTD_outBuffer){obuf, osize, 0};
		r = ZSTD_decompressStream(dc, &o, in);
		if (ZSTD_isError(r))
			return TERN_DECLINED;
		if (buf_append(&s->carry, obuf, o.pos) < 0)
			return -ENOMEM;
		rc = salvage_lines(lf, out, s);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int
salvage_stream(struct logfile *lf, int in, int out, ZSTD_DCtx *dc, struct salvage *s)
{
	size_t isize = ZSTD_DStreamInSize(), osize = ZSTD_DStreamOutSize();
	char *ibuf = malloc(isize), *obuf = malloc(osize);
	ZSTD_inBuffer zin;
	ssize_t r;
	int rc = ibuf && obuf ? 0 : -ENOMEM;

	while (rc == 0) {
		r = read(in, ibuf, isize);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = r < 0 ? -errno : 0;
			break;
		}
		zin = (ZSTD_inBuffer){ibuf, (size_t)r, 0};
		rc = salvage_input(lf, out, dc, &zin, s, obuf, osize);
	}
	free(ibuf); ibuf = NULL;
	free(obuf); obuf = NULL;
	if (rc == TERN_DECLINED)
		rc = 0;
	return rc < 0 ? rc : zstd_write(lf, out, NULL, 0, ZSTD_e_end);
}

/*
 * A zstd leftover lacks its frame end and may end inside a block or a record:
 * write its complete lines as a proper frame to a ".tmp" file that then takes
 * the final name. Redoing it after a crash in between gives the same result.
 */
static int
finish_zstd(struct logfile *lf, const char *src, const char *base, uint64_t *dropped, bool *empty)
{
	char tmp[LOGFILE_NAME_MAX + 8];
	struct salvage s = {.kept = 0};
	ZSTD_DCtx *dc = ZSTD_createDCtx();
	int in, out, rc;

	snprintf(tmp, sizeof(tmp), "%s.tmp", base);
	buf_init(&s.carry);
	ZSTD_CCtx_reset(lf->zc, ZSTD_reset_session_only);
	in = openat(lf->dirfd, src, O_RDONLY | O_CLOEXEC);
	rc = in < 0 ? -errno : dc == NULL ? -ENOMEM : 0;
	out = rc < 0 ? -1 : openat(lf->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (rc == 0 && out < 0)
		rc = -errno;
	if (rc == 0)
		rc = salvage_stream(lf, in, out, dc, &s);
	if (out >= 0 && close(out) < 0 && rc == 0)
		rc = -errno;
	if (in >= 0)
		close(in);
	*dropped = s.carry.len;
	*empty = s.kept == 0;
	if (rc == 0 && !*empty && renameat(lf->dirfd, tmp, lf->dirfd, base) < 0)
		rc = -errno;
	if (rc < 0 || *empty)
		unlinkat(lf->dirfd, tmp, 0);
	if (rc < 0)
		ZSTD_CCtx_reset(lf->zc, ZSTD_reset_session_only);
	ZSTD_freeDCtx(dc);
	buf_deinit(&s.carry);
	return rc;
}

/*
 * Give the leftover base+".open" its final name base (a zstd one was rewritten
 * there already), or remove it when no complete record is left.
 */
static int
finish_leftover(struct logfile *lf, const char *base)
{
	char src[LOGFILE_NAME_MAX + 8];
	bool zst = has_suffix(base, ".zst"), empty = false;
	uint64_t dropped = 0;
	int rc;

	snprintf(src, sizeof(src), "%s%s", base, LOGFILE_OPEN_SUFFIX);
	if (zst)
		rc = finish_zstd(lf, src, base, &dropped, &empty);
	else
		rc = finish_plain(lf, src, &dropped, &empty);
	if (rc == 0 && (zst || empty))
		rc = unlinkat(lf->dirfd, src, 0) < 0 ? -errno : 0;
	else if (rc == 0)
		rc = renameat(lf->dirfd, src, lf->dirfd, base) < 0 ? -errno : 0;
	if (rc < 0)
		return rc;
	if (empty)
		log_warn("logrec", "removed %s/%s: no complete record in it", lf->dir, src);
	else if (dropped > 0)
		log_warn("logrec", "finished %s/%s: dropped %llu bytes of a torn record", lf->dir,
			 src, (unsigned long long)dropped);
	return empty ? TERN_DECLINED : 0;
}

/* A segment of this file's extension that a previous process left open. */
static bool
is_leftover(const struct logfile *lf, const char *name)
{
	char plain[LOGFILE_EXT_MAX + 8], zst[LOGFILE_EXT_MAX + 12];

	snprintf(plain, sizeof(plain), "%s%s", lf->base_ext, LOGFILE_OPEN_SUFFIX);
	snprintf(zst, sizeof(zst), "%s.zst%s", lf->base_ext, LOGFILE_OPEN_SUFFIX);
	return has_suffix(name, plain) || has_suffix(name, zst);
}

/* Finish every ".open" segment a previous process left in the directory. */
static int
finish_leftovers(struct logfile *lf, struct tern_err *err)
{
	char base[LOGFILE_NAME_MAX];
	struct dirent *de;
	DIR *d;
	size_t n;
	int fd, rc;

	fd = openat(lf->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	d = fd < 0 ? NULL : fdopendir(fd);
	if (d == NULL) {
		tern_err_set(err, 0, "", "cannot read local log dir %s: %s", lf->dir,
			     strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		n = strlen(de->d_name);
		if (!is_leftover(lf, de->d_name))
			continue;
		if (n - strlen(LOGFILE_OPEN_SUFFIX) >= sizeof(base))
			continue;
		snprintf(base, sizeof(base), "%.*s", (int)(n - strlen(LOGFILE_OPEN_SUFFIX)),
			 de->d_name);
		rc = finish_leftover(lf, base);
		if (rc < 0 && rc != TERN_DECLINED)
			log_error("logrec", "cannot finish %s/%s: %s", lf->dir, de->d_name,
				  strerror(-rc));
	}
	closedir(d);
	return 0;
}

/* ---- segments ---- */

static void
segment_name(struct timespec ts, const char *ext, char out[LOGFILE_NAME_MAX])
{
	struct tm tm;
	char day[32];

	gmtime_r(&ts.tv_sec, &tm);
	strftime(day, sizeof(day), "%Y%m%d-%H%M%S", &tm);
	snprintf(out, LOGFILE_NAME_MAX, "%s.%06ld%s", day, ts.tv_nsec / 1000, ext);
}

/* Create the segment named lf->seg.base; -EEXIST when the name is taken. */
static int
segment_create(struct logfile *lf)
{
	char path[LOGFILE_NAME_MAX + 8];
	int fd;

	if (faccessat(lf->dirfd, lf->seg.base, F_OK, 0) == 0)
		return -EEXIST;
	snprintf(path, sizeof(path), "%s%s", lf->seg.base, LOGFILE_OPEN_SUFFIX);
	fd = openat(lf->dirfd, path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
	return fd < 0 ? -errno : fd;
}

static int segment_write(struct logfile *lf, const char *p, size_t n);
static void segment_abandon(struct logfile *lf);

/* The header line opens the segment; it does not count towards max_file_size. */
static int
segment_write_header(struct logfile *lf)
{
	int rc;

	if (lf->header == NULL)
		return 0;
	rc = segment_write(lf, lf->header, strlen(lf->header));
	if (rc < 0) {
		io_failed(lf, "write", lf->seg.base, rc);
		segment_abandon(lf);
	}
	return rc;
}

/*
 * Start a segment named by the current UTC time. Names must be unique even
 * when segments rotate within a microsecond or the clock steps back, so a
 * taken name moves the time on by a microsecond.
 */
static int
segment_open(struct logfile *lf)
{
	struct timespec ts;
	int tries, fd = -EEXIST;

	clock_gettime(CLOCK_REALTIME, &ts);
	for (tries = 0; tries < 1000 && fd == -EEXIST; tries++) {
		segment_name(ts, lf->ext, lf->seg.base);
		fd = segment_create(lf);
		ts.tv_nsec += 1000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
	}
	if (fd < 0)
		return fd;
	if (lf->cfg.sync && fsync(lf->dirfd) < 0)
		io_failed(lf, "sync the directory of", lf->seg.base, -errno);
	lf->seg.fd = fd;
	lf->seg.opened = util_now();
	lf->seg.bytes = 0;
	lf->seg.unflushed = false;
	return segment_write_header(lf);
}

/* After a failure: close the segment and finish what reached the disk. */
static void
segment_abandon(struct logfile *lf)
{
	int rc;

	if (lf->seg.fd >= 0)
		close(lf->seg.fd);
	lf->seg.fd = -1;
	ZSTD_CCtx_reset(lf->zc, ZSTD_reset_session_only);
	rc = finish_leftover(lf, lf->seg.base);
	if (rc == 0)
		lf->segments++;
	else if (rc != TERN_DECLINED)
		log_warn("logrec", "%s/%s%s is left to be finished at the next start: %s", lf->dir,
			 lf->seg.base, LOGFILE_OPEN_SUFFIX, strerror(-rc));
}

static void
segment_finish(struct logfile *lf)
{
	char path[LOGFILE_NAME_MAX + 8];
	int rc = 0;

	if (lf->seg.fd < 0)
		return;
	if (lf->cfg.compression == LOGFILE_ZSTD)
		rc = zstd_write(lf, lf->seg.fd, NULL, 0, ZSTD_e_end);
	if (rc == 0 && lf->cfg.sync && fdatasync(lf->seg.fd) < 0)
		rc = -errno;
	if (close(lf->seg.fd) < 0 && rc == 0)
		rc = -errno;
	lf->seg.fd = -1;
	snprintf(path, sizeof(path), "%s%s", lf->seg.base, LOGFILE_OPEN_SUFFIX);
	if (rc == 0 && renameat(lf->dirfd, path, lf->dirfd, lf->seg.base) < 0)
		rc = -errno;
	if (rc < 0) {
		io_failed(lf, "finish", path, rc);
		segment_abandon(lf);
		return;
	}
	if (lf->cfg.sync && fsync(lf->dirfd) < 0)
		io_failed(lf, "sync the directory of", lf->seg.base, -errno);
	lf->segments++;
	lf->retention_due = true;
}

static bool
segment_expired(struct logfile *lf)
{
	double max = lf->cfg.max_segment_duration;

	return lf->seg.fd >= 0 && max > 0 && util_now() - lf->seg.opened >= max;
}

/*
 * How much of the n bytes of whole records at p fits in the open segment:
 * whole records only, and at least one record in an empty segment. 0 means
 * the segment must be finished first.
 */
static size_t
segment_room(struct logfile *lf, const char *p, size_t n)
{
	uint64_t max = lf->cfg.max_file_size;
	uint64_t used = lf->seg.fd < 0 ? 0 : lf->seg.bytes;
	const char *nl;

	if (max == 0 || used + n <= max)
		return n;
	if (used < max) {
		nl = memrchr(p, '\n', (size_t)(max - used));
		if (nl != NULL)
			return (size_t)(nl - p) + 1;
	}
	if (used > 0)
		return 0;
	nl = memchr(p, '\n', n);
	return (size_t)(nl - p) + 1;
}

static int
segment_write(struct logfile *lf, const char *p, size_t n)
{
	int rc;

	if (lf->cfg.compression == LOGFILE_NONE)
		return write_all(lf->seg.fd, p, n);
	rc = zstd_write(lf, lf->seg.fd, p, n, ZSTD_e_continue);
	lf->seg.unflushed = true;
	return rc;
}

/* Write whole records, rotating by size and age on the way. */
static void
write_records(struct logfile *lf, const char *p, size_t n)
{
	size_t chunk;
	int rc;

	while (n > 0) {
		if (segment_expired(lf))
			segment_finish(lf);
		chunk = segment_room(lf, p, n);
		if (chunk == 0) {
			segment_finish(lf);
			continue;
		}
		rc = lf->seg.fd < 0 ? segment_open(lf) : 0;
		if (rc < 0) {
			io_failed(lf, "create a segment in", "", rc);
			lf->lost += count_lines(p, n);
			return;
		}
		rc = segment_write(lf, p, chunk);
		if (rc < 0) {
			io_failed(lf, "write", lf->seg.base, rc);
			lf->lost += count_lines(p, chunk);
			segment_abandon(lf);
		} else {
			io_succeeded(lf);
			lf->seg.bytes += chunk;
		}
		p += chunk;
		n -= chunk;
	}
}

/* Make a zstd segment's records decodable from the file now. */
static void
segment_flush(struct logfile *lf)
{
	int rc;

	if (lf->seg.fd < 0 || !lf->seg.unflushed)
		return;
	rc = zstd_write(lf, lf->seg.fd, NULL, 0, ZSTD_e_flush);
	lf->seg.unflushed = false;
	if (rc < 0) {
		io_failed(lf, "write", lf->seg.base, rc);
		segment_abandon(lf);
	}
}

static void
segment_sync(struct logfile *lf)
{
	if (lf->seg.fd >= 0 && fdatasync(lf->seg.fd) < 0)
		io_failed(lf, "sync", lf->seg.base, -errno);
}

/* Take what the appenders buffered and write it; finish an old segment. */
static void
logfile_drain(struct logfile *lf)
{
	struct buf taken;

	pthread_mutex_lock(&lf->io_lock);
	pthread_mutex_lock(&lf->lock);
	taken = lf->cur;
	lf->cur = lf->out;
	lf->handover = false;
	pthread_mutex_unlock(&lf->lock);
	lf->out = taken;

	if (segment_expired(lf))
		segment_finish(lf);
	write_records(lf, lf->out.data, lf->out.len);
	segment_flush(lf);
	if (lf->cfg.sync && lf->out.len > 0)
		segment_sync(lf);
	if (lf->out.cap > LOGFILE_KEEP_BYTES)
		buf_deinit(&lf->out);
	buf_reset(&lf->out);
	pthread_mutex_unlock(&lf->io_lock);
}

/* ---- retention ---- */

struct finished {
	char name[LOGFILE_NAME_MAX];
	uint64_t size;
	double mtime; /* when it was finished: its last write */
};

/* A finished segment of this file's kind: "<time><ext>" or "<time><ext>.zst". */
static bool
is_finished(const struct logfile *lf, const char *name)
{
	char zst[LOGFILE_EXT_MAX + 4];

	snprintf(zst, sizeof(zst), "%s.zst", lf->base_ext);
	return name[0] >= '0' && name[0] <= '9' && strlen(name) < LOGFILE_NAME_MAX &&
	       (has_suffix(name, lf->base_ext) || has_suffix(name, zst));
}

static int
finished_cmp(const void *a, const void *b)
{
	return strcmp(((const struct finished *)a)->name, ((const struct finished *)b)->name);
}

/* The finished segments, oldest first (names are start times); -errno. */
static int
finished_list(struct logfile *lf, struct finished **out, size_t *n_out)
{
	struct finished *v = NULL, *grown;
	struct dirent *de;
	struct stat st;
	size_t n = 0, cap = 0;
	int fd = openat(lf->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);

	if (d == NULL) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	while ((de = readdir(d)) != NULL) {
		if (!is_finished(lf, de->d_name) || fstatat(lf->dirfd, de->d_name, &st, 0) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			grown = realloc(v, cap * sizeof(*v));
			if (grown == NULL)
				break;
			v = grown;
		}
		snprintf(v[n].name, sizeof(v[n].name), "%s", de->d_name);
		v[n].size = (uint64_t)st.st_size;
		v[n++].mtime = (double)st.st_mtim.tv_sec + st.st_mtim.tv_nsec / 1e9;
	}
	closedir(d);
	if (n > 0)
		qsort(v, n, sizeof(*v), finished_cmp);
	*out = v;
	*n_out = n;
	return 0;
}

/* The one question retention asks before deleting a segment. */
static bool
retention_may_delete(const struct logfile_retention *r, const char *dir, const char *name)
{
	return r->force || r->needed == NULL || !r->needed(r->needed_arg, dir, name);
}

static bool
retention_wants(const struct logfile_retention *r, const struct finished *f, uint64_t total,
		double now)
{
	return (r->max_age > 0 && now - f->mtime > r->max_age) ||
	       (r->max_total_size > 0 && total > r->max_total_size);
}

static void
retention_delete(struct logfile *lf, const struct finished *f, double now)
{
	if (unlinkat(lf->dirfd, f->name, 0) < 0) {
		log_error("logrec", "retention: cannot remove %s/%s: %s", lf->dir, f->name,
			  strerror(errno));
		return;
	}
	log_info("logrec", "retention: removed %s/%s (finished %.0f s ago, %llu bytes)", lf->dir,
		 f->name, now - f->mtime, (unsigned long long)f->size);
	pthread_mutex_lock(&lf->io_lock);
	lf->removed++;
	pthread_mutex_unlock(&lf->io_lock);
}

/* Delete the oldest finished segments while they are too old or too many bytes. */
static void
retention_run(struct logfile *lf)
{
	struct logfile_retention r;
	struct finished *v = NULL;
	uint64_t total = 0;
	double now = util_wallclock();
	size_t i, n = 0;

	pthread_mutex_lock(&lf->io_lock);
	r = lf->cfg.retention;
	lf->retention_due = false;
	pthread_mutex_unlock(&lf->io_lock);
	if ((r.max_age <= 0 && r.max_total_size == 0) || finished_list(lf, &v, &n) < 0)
		return;
	for (i = 0; i < n; i++)
		total += v[i].size;
	for (i = 0; i < n && retention_wants(&r, &v[i], total, now); i++) {
		if (!retention_may_delete(&r, lf->dir, v[i].name))
			break;
		retention_delete(lf, &v[i], now);
		total -= v[i].size;
	}
	free(v); v = NULL;
}

static bool
retention_due(struct logfile *lf, double *next)
{
	bool due;

	pthread_mutex_lock(&lf->io_lock);
	due = lf->retention_due || util_now() >= *next;
	pthread_mutex_unlock(&lf->io_lock);
	if (due)
		*next = util_now() + LOGFILE_RETENTION_INTERVAL;
	return due;
}

static void *
logfile_flusher(void *arg)
{
	struct logfile *lf = arg;
	struct timespec deadline;
	double next_retention = util_now() + LOGFILE_RETENTION_INTERVAL;

	pthread_mutex_lock(&lf->lock);
	while (!lf->stop) {
		util_deadline_after(lf->cfg.flush_interval, &deadline);
		while (!lf->stop && !lf->handover)
			if (pthread_cond_timedwait(&lf->wake, &lf->lock, &deadline) == ETIMEDOUT)
				break;
		pthread_mutex_unlock(&lf->lock);
		logfile_drain(lf);
		if (retention_due(lf, &next_retention))
			retention_run(lf);
		pthread_mutex_lock(&lf->lock);
	}
	pthread_mutex_unlock(&lf->lock);
	return NULL;
}

/* ---- public API ---- */

int
logfile_append(struct logfile *lf, const char *line, size_t len)
{
	bool wake;
	int rc = 0;

	if (len == 0 || memchr(line, '\n', len) != NULL)
		return -EINVAL;
	pthread_mutex_lock(&lf->lock);
	if (lf->cur.len + len + 1 > lf->cfg.max_buffered)
		rc = -ENOBUFS;
	else if (buf_reserve(&lf->cur, len + 1) < 0)
		rc = -ENOMEM;
	if (rc == 0) {
		memcpy(lf->cur.data + lf->cur.len, line, len);
		lf->cur.len += len;
		lf->cur.data[lf->cur.len++] = '\n';
		lf->records++;
	} else {
		lf->dropped++;
	}
	wake = !lf->handover && lf->cur.len >= LOGFILE_HANDOVER_BYTES;
	lf->handover |= wake;
	pthread_mutex_unlock(&lf->lock);
	if (wake)
		pthread_cond_signal(&lf->wake);
	return rc;
}

void
logfile_flush(struct logfile *lf)
{
	logfile_drain(lf);
}

void
logfile_stats(struct logfile *lf, struct logfile_stats *out)
{
	pthread_mutex_lock(&lf->lock);
	out->records = lf->records;
	out->dropped = lf->dropped;
	pthread_mutex_unlock(&lf->lock);
	pthread_mutex_lock(&lf->io_lock);
	out->write_errors = lf->write_errors;
	out->lost = lf->lost;
	out->segments = lf->segments;
	out->removed = lf->removed;
	pthread_mutex_unlock(&lf->io_lock);
}

static int
config_check(const struct logfile_config *cfg, struct tern_err *err)
{
	if (cfg->dir == NULL || cfg->dir[0] == '\0') {
		tern_err_set(err, 0, "", "local logs: log_dir is not set");
		return -EINVAL;
	}
	if (!(cfg->max_segment_duration >= 0) || !(cfg->flush_interval >= 0) ||
	    isinf(cfg->max_segment_duration) || isinf(cfg->flush_interval)) {
		tern_err_set(err, 0, "", "local logs %s: durations must be finite and >= 0",
			     cfg->dir);
		return -EINVAL;
	}
	if (cfg->compression != LOGFILE_NONE && cfg->compression != LOGFILE_ZSTD) {
		tern_err_set(err, 0, "", "local logs %s: unknown compression", cfg->dir);
		return -EINVAL;
	}
	if (cfg->ext != NULL && (cfg->ext[0] != '.' || strlen(cfg->ext) >= LOGFILE_EXT_MAX ||
				 strchr(cfg->ext, '/') != NULL)) {
		tern_err_set(err, 0, "", "local logs %s: extension '%s' must start with '.', "
			     "hold no '/' and be shorter than %d bytes", cfg->dir, cfg->ext,
			     LOGFILE_EXT_MAX);
		return -EINVAL;
	}
	if (cfg->header != NULL && strpbrk(cfg->header, "\r\n") != NULL) {
		tern_err_set(err, 0, "", "local logs %s: the header must be one line", cfg->dir);
		return -EINVAL;
	}
	if (!(cfg->retention.max_age >= 0) || isinf(cfg->retention.max_age)) {
		tern_err_set(err, 0, "", "local logs %s: max_age must be finite and >= 0",
			     cfg->dir);
		return -EINVAL;
	}
	if (cfg->zstd_level < ZSTD_minCLevel() || cfg->zstd_level > ZSTD_maxCLevel()) {
		tern_err_set(err, 0, "", "local logs %s: zstd level %d is out of range %d..%d",
			     cfg->dir, cfg->zstd_level, ZSTD_minCLevel(), ZSTD_maxCLevel());
		return -EINVAL;
	}
	return 0;
}

/* mkdir -p: each missing component of dir is created. */
static int
mkdir_parents(const char *dir)
{
	char path[PATH_MAX];
	size_t i, n = strlen(dir);

	if (n >= sizeof(path))
		return -ENAMETOOLONG;
	memcpy(path, dir, n + 1);
	for (i = 1; i <= n; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		path[i] = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			return -errno;
		path[i] = dir[i];
	}
	return 0;
}

static int
dir_open(const char *dir, struct tern_err *err)
{
	int rc, fd;

	rc = mkdir_parents(dir);
	if (rc < 0) {
		tern_err_set(err, 0, "", "cannot create local log dir %s: %s", dir, strerror(-rc));
		return rc;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		tern_err_set(err, 0, "", "cannot open local log dir %s: %s", dir, strerror(-rc));
		return rc;
	}
	if (faccessat(fd, ".", W_OK | X_OK, AT_EACCESS) < 0) {
		rc = -errno;
		tern_err_set(err, 0, "", "local log dir %s is not writable: %s", dir,
			     strerror(-rc));
		close(fd);
		return rc;
	}
	return fd;
}

/* "line" -> "line\n", the form a segment starts with; NULL stays NULL. */
static char *
header_line(const char *header)
{
	char *line;

	if (header == NULL)
		return NULL;
	line = malloc(strlen(header) + 2);
	if (line != NULL)
		sprintf(line, "%s\n", header);
	return line;
}

/*
 * Take cfg's settings (defaults filled in) into lf->cfg; dir, ext and
 * header point at lf's own copies. Caller holds io_lock and lock, or owns lf.
 */
static int
config_take(struct logfile *lf, const struct logfile_config *cfg)
{
	char *header = header_line(cfg->header);

	if (cfg->header != NULL && header == NULL)
		return -ENOMEM;
	free(lf->header);
	lf->header = header;
	lf->cfg = *cfg;
	lf->cfg.dir = lf->dir;
	lf->cfg.header = NULL;
	if (lf->cfg.flush_interval == 0)
		lf->cfg.flush_interval = 1;
	if (lf->cfg.max_buffered == 0)
		lf->cfg.max_buffered = LOGFILE_DEFAULT_MAX_BUFFERED;
	if (lf->cfg.zstd_level == 0)
		lf->cfg.zstd_level = LOGFILE_DEFAULT_ZSTD_LEVEL;
	snprintf(lf->base_ext, sizeof(lf->base_ext), "%s", cfg->ext ? cfg->ext : ".jsonl");
	lf->cfg.ext = lf->base_ext;
	snprintf(lf->ext, sizeof(lf->ext), "%s%s", lf->base_ext,
		 cfg->compression == LOGFILE_ZSTD ? ".zst" : "");
	return 0;
}

static struct logfile *
logfile_new(const struct logfile_config *cfg)
{
	struct logfile *lf = calloc(1, sizeof(*lf));

	if (lf == NULL)
		return NULL;
	lf->dir = strdup(cfg->dir);
	if (config_take(lf, cfg) < 0) {
		free(lf->dir);
		free(lf);
		return NULL;
	}
	lf->dirfd = -1;
	lf->seg.fd = -1;
	buf_init(&lf->cur);
	buf_init(&lf->out);
	lf->zbuf_size = ZSTD_CStreamOutSize();
	lf->zbuf = malloc(lf->zbuf_size);
	lf->zc = ZSTD_createCCtx();
	pthread_mutex_init(&lf->lock, NULL);
	pthread_mutex_init(&lf->io_lock, NULL);
	return lf;
}

static void
logfile_free(struct logfile *lf)
{
	if (lf->dirfd >= 0)
		close(lf->dirfd);
	pthread_mutex_destroy(&lf->lock);
	pthread_mutex_destroy(&lf->io_lock);
	ZSTD_freeCCtx(lf->zc);
	free(lf->zbuf); lf->zbuf = NULL;
	free(lf->dir); lf->dir = NULL;
	free(lf->header); lf->header = NULL;
	buf_deinit(&lf->cur);
	buf_deinit(&lf->out);
	free(lf);
}

/* The flusher waits on the monotonic clock and takes no signals. */
static int
flusher_start(struct logfile *lf)
{
	pthread_condattr_t attr;
	sigset_t all, old;
	int rc;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&lf->wake, &attr);
	pthread_condattr_destroy(&attr);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&lf->flusher, NULL, logfile_flusher, lf);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		pthread_cond_destroy(&lf->wake);
		return -rc;
	}
	return 0;
}

static int
zstd_setup(struct logfile *lf)
{
	size_t r;

	r = ZSTD_CCtx_setParameter(lf->zc, ZSTD_c_compressionLevel, lf->cfg.zstd_level);
	if (!ZSTD_isError(r))
		r = ZSTD_CCtx_setParameter(lf->zc, ZSTD_c_checksumFlag, 1);
	return ZSTD_isError(r) ? -EINVAL : 0;
}

struct logfile *
logfile_open(const struct logfile_config *cfg, struct tern_err *err)
{
	struct logfile *lf;
	int rc;

	if (config_check(cfg, err) < 0)
		return NULL;
	lf = logfile_new(cfg);
	if (lf == NULL || lf->dir == NULL || lf->zbuf == NULL || lf->zc == NULL ||
	    zstd_setup(lf) < 0) {
		tern_err_set(err, 0, "", "local logs %s: out of memory", cfg->dir);
		goto fail;
	}
	lf->dirfd = dir_open(lf->dir, err);
	if (lf->dirfd < 0 || finish_leftovers(lf, err) < 0)
		goto fail;
	retention_run(lf);
	rc = flusher_start(lf);
	if (rc < 0) {
		tern_err_set(err, 0, "", "local logs %s: cannot start flusher: %s", cfg->dir,
			     strerror(-rc));
		goto fail;
	}
	return lf;
fail:
	if (lf != NULL)
		logfile_free(lf);
	return NULL;
}

/* Does cfg change how segments are written (so that the open one must end)? */
static bool
segment_shape_changed(const struct logfile *lf, const struct logfile_config *cfg)
{
	const char *ext = cfg->ext ? cfg->ext : ".jsonl";
	size_t hn = cfg->header ? strlen(cfg->header) : 0;

	int level = cfg->zstd_level ? cfg->zstd_level : LOGFILE_DEFAULT_ZSTD_LEVEL;

	if (cfg->compression != lf->cfg.compression ||
	    (cfg->compression == LOGFILE_ZSTD && level != lf->cfg.zstd_level) ||
	    strcmp(ext, lf->base_ext) != 0 || (cfg->header == NULL) != (lf->header == NULL))
		return true;
	return cfg->header != NULL &&
	       (strlen(lf->header) != hn + 1 || memcmp(cfg->header, lf->header, hn) != 0);
}

int
logfile_reconfigure(struct logfile *lf, const struct logfile_config *cfg, struct tern_err *err)
{
	bool reshape;
	int rc;

	if (config_check(cfg, err) < 0)
		return -EINVAL;
	if (strcmp(cfg->dir, lf->dir) != 0) {
		tern_err_set(err, 0, "", "local logs %s: cannot move to %s", lf->dir, cfg->dir);
		return -EINVAL;
	}
	pthread_mutex_lock(&lf->io_lock);
	/* Between frames only: zstd takes no new checksum setting inside one. */
	reshape = segment_shape_changed(lf, cfg);
	if (reshape)
		segment_finish(lf);
	pthread_mutex_lock(&lf->lock);
	rc = config_take(lf, cfg);
	pthread_mutex_unlock(&lf->lock);
	if (rc == 0 && reshape && zstd_setup(lf) < 0)
		rc = -EINVAL;
	lf->retention_due = true;
	pthread_mutex_unlock(&lf->io_lock);
	if (rc < 0)
		tern_err_set(err, 0, "", "local logs %s: out of memory", lf->dir);
	return rc;
}

void
logfile_close(struct logfile *lf)
{
	if (lf == NULL)
		return;
	pthread_mutex_lock(&lf->lock);
	lf->stop = true;
	pthread_mutex_unlock(&lf->lock);
	pthread_cond_signal(&lf->wake);
	pthread_join(lf->flusher, NULL);
	pthread_cond_destroy(&lf->wake);
	logfile_drain(lf);
	pthread_mutex_lock(&lf->io_lock);
	segment_finish(lf);
	pthread_mutex_unlock(&lf->io_lock);
	logfile_free(lf);
}
