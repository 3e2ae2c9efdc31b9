// SPDX-License-Identifier: MIT
/*
 * powerloss: an LD_PRELOAD library under which kill -9 loses exactly what a
 * power cut would lose in one directory tree (POWERLOSS_DIR, the spool).
 *
 * kill -9 alone cannot find a missing fsync: the page cache survives the
 * process. So this library keeps, beside the real files, the image the disk
 * would hold after a power cut, and a separate step (powercut.py) replaces
 * the tree with that image once the process is dead. The process itself
 * always works on the real files, so its reads (read, pread, mmap) see what
 * it wrote, as they would on a real machine; nothing but the image depends on
 * the model.
 *
 * The model (POSIX's promise, without any file system's extra kindness):
 *  - A file's bytes and size are durable as of its last fsync or fdatasync,
 *    through any descriptor of the same inode. Writes since then are lost
 *    whole; sync_file_range promises nothing and changes nothing.
 *  - A directory entry (creation, rename, link, unlink, mkdir, rmdir) is
 *    durable once its directory is fsynced; until then the directory keeps
 *    the entries it had at its last fsync. An entry whose inode was never
 *    synced comes back empty.
 *  - What exists under POWERLOSS_DIR when the process starts is durable.
 *
 * The image lives in POWERLOSS_STATE: data/<n> holds inode n's durable bytes
 * (updated at each sync from the range written since the previous one, so a
 * WAL synced a thousand times is not copied a thousand times), and the
 * append-only file "journal" holds, for each directory sync, the directory's
 * whole listing (name -> inode number n). Both are written before the sync
 * returns, with plain writes: the page cache survives kill -9, which is the
 * only crash this library has to outlive.
 *
 * Inodes are named by our own number n, not by st_ino, because a freed inode
 * number is reused: when an unlink or rename removes an inode's last name,
 * its (st_dev, st_ino) stops naming it here, and the next file with that
 * number is a new inode n.
 *
 * Writes through stdio are invisible (glibc calls its own write), so a file
 * opened with fopen or wrapped by fdopen is copied whole at each sync.
 * A writable shared mapping of a tracked file would be invisible too: it
 * aborts the process, loudly, rather than make the model unsound.
 *
 * POWERLOSS_TRACE (optional) names a file that receives, in the order they
 * happen, "S seq n size" when a sync of inode n returns, "W seq n end token"
 * when a write to inode n ending at end contains POWERLOSS_MARK followed by
 * token, and "R seq text" before a write to any other descriptor that starts
 * a line with POWERLOSS_REPLY: enough to check that a reply was sent only
 * after the write that carried its message was synced.
 *
 * Only the process that loaded the library tracks anything: a forked child
 * passes every call straight through.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define PL_MAX_FDS 65536
#define PL_COPY_CHUNK (1 << 20)
#define PL_MAX_TEXT 256

struct pl_inode {
	dev_t dev;
	ino_t ino;
	bool live;   /* (dev, ino) still names this inode */
	bool dirty;  /* written or resized since its last sync */
	bool opaque; /* written through stdio: a sync copies it whole */
	off_t lo, hi; /* the range written since its last sync */
};

static struct {
	pthread_mutex_t lock;
	bool on;
	pid_t pid;
	char dir[PATH_MAX];
	size_t dir_len;
	char state[PATH_MAX];
	int journal;
	int trace;
	char mark[64];
	size_t mark_len;
	char reply[64];
	size_t reply_len;
	unsigned long seq;
	struct pl_inode *inodes;
	size_t n, cap;
	int fd_inode[PL_MAX_FDS]; /* inode number + 1, or 0 when untracked */
	char copy[PL_COPY_CHUNK];
} pl = {.lock = PTHREAD_MUTEX_INITIALIZER, .journal = -1, .trace = -1};

/* The real functions */

/* Each call site looks its function up once. */
#define REAL(name)                                                                   \
	({                                                                           \
		static __typeof__(&name) real_;                                      \
		__typeof__(&name) f_ = __atomic_load_n(&real_, __ATOMIC_RELAXED);    \
		if (f_ == NULL) {                                                    \
			f_ = (__typeof__(&name))pl_real(#name);                      \
			__atomic_store_n(&real_, f_, __ATOMIC_RELAXED);              \
		}                                                                    \
		f_;                                                                  \
	})

/* glibc's fortified opens, which its headers do not declare. */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);

static void *
pl_real(const char *name)
{
	void *f = dlsym(RTLD_NEXT, name);

	if (f == NULL) {
		fprintf(stderr, "powerloss: no real %s\n", name);
		abort();
	}
	return f;
}

static void
pl_die(const char *what)
{
	fprintf(stderr, "powerloss: %s: %s\n", what, strerror(errno));
	abort();
}

static bool
pl_active(void)
{
	return pl.on && getpid() == pl.pid;
}

/* Inodes and descriptors (pl.lock held) */

static long
pl_find(dev_t dev, ino_t ino)
{
	size_t i;

	for (i = 0; i < pl.n; i++)
		if (pl.inodes[i].live && pl.inodes[i].dev == dev && pl.inodes[i].ino == ino)
			return (long)i;
	return -1;
}

static long
pl_intern(const struct stat *st)
{
	long i = pl_find(st->st_dev, st->st_ino);

	if (i >= 0)
		return i;
	if (pl.n == pl.cap) {
		pl.cap = pl.cap ? 2 * pl.cap : 256;
		pl.inodes = realloc(pl.inodes, pl.cap * sizeof(*pl.inodes));
		if (pl.inodes == NULL)
			pl_die("inode table");
	}
	pl.inodes[pl.n] = (struct pl_inode){.dev = st->st_dev, .ino = st->st_ino, .live = true};
	return (long)pl.n++;
}

static long
pl_fd_inode(int fd)
{
	if (fd < 0 || fd >= PL_MAX_FDS)
		return -1;
	return pl.fd_inode[fd] - 1;
}

static void
pl_mark(long i, off_t lo, off_t hi)
{
	struct pl_inode *in = &pl.inodes[i];

	if (!in->dirty || lo < in->lo)
		in->lo = lo;
	if (!in->dirty || hi > in->hi)
		in->hi = hi;
	in->dirty = true;
}

/* The image: inode data, directory listings, trace */

static void
pl_write_all(int fd, const char *p, size_t n, const char *what)
{
	while (n > 0) {
		ssize_t w = REAL(write)(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			pl_die(what);
		p += w;
		n -= (size_t)w;
	}
}

/* One trace line: fmt's first character is the event's letter, the rest formats its fields. */
static void
pl_trace(const char *fmt, ...)
{
	char line[PL_MAX_TEXT + 64];
	va_list ap;
	int n;

	if (pl.trace < 0)
		return;
	n = snprintf(line, sizeof(line), "%c %lu ", fmt[0], ++pl.seq);
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt + 1, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	pl_write_all(pl.trace, line, (size_t)n, "trace");
}

static int
pl_open_data(long i, int flags)
{
	char path[PATH_MAX + 32];
	int fd;

	snprintf(path, sizeof(path), "%s/data/%ld", pl.state, i);
	fd = REAL(open)(path, flags | O_CLOEXEC, 0600);
	if (fd < 0)
		pl_die(path);
	return fd;
}

/* Copies [lo, hi) of the file open as src into inode i's image and sets its size. */
static void
pl_copy_range(int src, long i, off_t lo, off_t hi, off_t size)
{
	int dst = pl_open_data(i, O_WRONLY | O_CREAT);

	if (hi > size)
		hi = size;
	while (lo < hi) {
		size_t want = (size_t)(hi - lo) < sizeof(pl.copy) ? (size_t)(hi - lo) : sizeof(pl.copy);
		ssize_t r = pread(src, pl.copy, want, lo);

		if (r <= 0)
			pl_die("read for image");
		if (REAL(pwrite)(dst, pl.copy, (size_t)r, lo) != r)
			pl_die("write image");
		lo += r;
	}
	if (REAL(ftruncate)(dst, size) < 0)
		pl_die("size image");
	REAL(close)(dst);
}

/*
 * The descriptor being synced may be write-only; /proc/self/fd reopens the
 * same inode for reading even when it has no name any more.
 */
static void
pl_sync_file(int fd, long i)
{
	struct pl_inode *in = &pl.inodes[i];
	char path[64];
	struct stat st;
	int src;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	src = REAL(open)(path, O_RDONLY | O_CLOEXEC);
	if (src < 0 || fstat(src, &st) < 0)
		pl_die("reopen synced file");
	if (in->opaque)
		pl_copy_range(src, i, 0, st.st_size, st.st_size);
	else if (in->dirty)
		pl_copy_range(src, i, in->lo, in->hi, st.st_size);
	else
		pl_copy_range(src, i, 0, 0, st.st_size);
	REAL(close)(src);
	in->dirty = false;
	pl_trace("S%ld %lld", i, (long long)st.st_size);
}

struct pl_buf {
	char *p;
	size_t n, cap;
};

static void
pl_buf_printf(struct pl_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < b->cap - b->n)
			break;
		b->cap = b->cap * 2 + (size_t)n + 64;
		b->p = realloc(b->p, b->cap);
		if (b->p == NULL)
			pl_die("listing");
	}
	b->n += (size_t)n;
}

/* Appends "<kind> <inode> <name>" for one entry of the directory open as dfd. */
static void
pl_list_entry(struct pl_buf *b, int dfd, const char *name)
{
	struct stat st;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return; /* removed while we listed: not there at this sync */
	if (strchr(name, '\n') != NULL) {
		errno = EINVAL;
		pl_die("a file name with a newline");
	}
	if (S_ISDIR(st.st_mode))
		pl_buf_printf(b, "d %ld %s\n", pl_intern(&st), name);
	else if (S_ISREG(st.st_mode))
		pl_buf_printf(b, "f %ld %s\n", pl_intern(&st), name);
}

/* Records the directory open at path as inode i's durable listing. */
static void
pl_sync_dir_path(const char *path, long i)
{
	struct pl_buf b = {0};
	struct dirent *e;
	DIR *d = opendir(path);

	if (d == NULL)
		pl_die("list synced directory");
	pl_buf_printf(&b, "dir %ld\n", i);
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			pl_list_entry(&b, dirfd(d), e->d_name);
	closedir(d);
	pl_buf_printf(&b, "end %ld\n", i);
	pl_write_all(pl.journal, b.p, b.n, "journal");
	free(b.p); b.p = NULL;
	pl_trace("S%ld 0", i);
}

static void
pl_sync(int fd)
{
	char path[64];
	struct stat st;
	long i;

	pthread_mutex_lock(&pl.lock);
	i = pl_fd_inode(fd);
	if (i >= 0 && fstat(fd, &st) == 0) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		if (S_ISDIR(st.st_mode))
			pl_sync_dir_path(path, i);
		else
			pl_sync_file(fd, i);
	}
	pthread_mutex_unlock(&pl.lock);
}

/* Tracking calls */

static bool
pl_under(const char *path)
{
	return strncmp(path, pl.dir, pl.dir_len) == 0 &&
	       (path[pl.dir_len] == '\0' || path[pl.dir_len] == '/');
}

/* A descriptor just opened (or made by stdio): track it when it is in the tree. */
static void
pl_track(int fd, bool truncated, bool opaque)
{
	char link[64], path[PATH_MAX];
	struct stat st;
	ssize_t n;
	long i;

	if (!pl_active() || fd < 0 || fd >= PL_MAX_FDS)
		return;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n <= 0 || fstat(fd, &st) < 0)
		return;
	path[n] = '\0';
	pthread_mutex_lock(&pl.lock);
	if (pl_under(path)) {
		i = pl_intern(&st);
		pl.fd_inode[fd] = (int)i + 1;
		if (truncated)
			pl_mark(i, 0, 0);
		pl.inodes[i].opaque |= opaque;
	} else {
		pl.fd_inode[fd] = 0;
	}
	pthread_mutex_unlock(&pl.lock);
}

static void
pl_untrack(int fd)
{
	if (!pl_active() || fd < 0 || fd >= PL_MAX_FDS)
		return;
	pthread_mutex_lock(&pl.lock);
	pl.fd_inode[fd] = 0;
	pthread_mutex_unlock(&pl.lock);
}

/* Logs each POWERLOSS_MARK in a write to inode i that ended at end. */
static void
pl_trace_marks(long i, off_t end, const char *p, size_t n)
{
	const char *q, *stop = p + n;
	size_t len;

	while (n >= pl.mark_len && (q = memmem(p, n, pl.mark, pl.mark_len)) != NULL) {
		q += pl.mark_len;
		for (len = 0; q + len < stop && len < 64; len++)
			if (!(q[len] == '-' || q[len] == '.' || (q[len] >= '0' && q[len] <= '9') ||
			      (q[len] >= 'a' && q[len] <= 'z') || (q[len] >= 'A' && q[len] <= 'Z')))
				break;
		/*
		 * A token is whole only when something follows it in this buffer: the
		 * WAL cuts records at its block boundaries, and a mark cut off there
		 * would name a shorter token, or none. The message repeats its token,
		 * so another copy of it is whole.
		 */
		if (len > 0 && q + len < stop)
			pl_trace("W%ld %lld %.*s", i, (long long)end, (int)len, q);
		n = (size_t)(stop - q);
		p = q;
	}
}

/* Logs each line of a write to an untracked descriptor that starts with POWERLOSS_REPLY. */
static void
pl_trace_replies(const char *p, size_t n)
{
	const char *stop = p + n, *eol;

	while (p < stop) {
		eol = memchr(p, '\n', (size_t)(stop - p));
		if (eol == NULL)
			eol = stop;
		if ((size_t)(eol - p) >= pl.reply_len && memcmp(p, pl.reply, pl.reply_len) == 0) {
			int len = (int)(eol - p) > PL_MAX_TEXT ? PL_MAX_TEXT : (int)(eol - p);

			while (len > 0 && (p[len - 1] == '\r' || p[len - 1] == '\n'))
				len--;
			pl_trace("R%.*s", len, p);
		}
		p = eol + 1;
	}
}

/* Before a write of iov to fd: replies on untracked descriptors go to the trace. */
static void
pl_before_write(int fd, const struct iovec *iov, int iovcnt)
{
	int k;

	if (!pl_active() || pl.trace < 0 || pl.reply_len == 0)
		return;
	pthread_mutex_lock(&pl.lock);
	if (pl_fd_inode(fd) < 0)
		for (k = 0; k < iovcnt; k++)
			pl_trace_replies(iov[k].iov_base, iov[k].iov_len);
	pthread_mutex_unlock(&pl.lock);
}

/* After n bytes of iov were written to fd at offset off (-1: at its position). */
static void
pl_after_write(int fd, off_t off, const struct iovec *iov, int iovcnt, ssize_t n)
{
	off_t end;
	long i;
	int k;

	if (!pl_active() || n <= 0)
		return;
	pthread_mutex_lock(&pl.lock);
	i = pl_fd_inode(fd);
	if (i >= 0) {
		end = off >= 0 ? off + n : lseek(fd, 0, SEEK_CUR);
		pl_mark(i, end - n, end);
		for (k = 0; pl.mark_len > 0 && pl.trace >= 0 && k < iovcnt; k++)
			pl_trace_marks(i, end, iov[k].iov_base, iov[k].iov_len);
	}
	pthread_mutex_unlock(&pl.lock);
}

/* After [lo, hi) of fd changed size or allocation. */
static void
pl_after_resize(int fd, off_t lo, off_t hi)
{
	long i;

	if (!pl_active())
		return;
	pthread_mutex_lock(&pl.lock);
	i = pl_fd_inode(fd);
	if (i >= 0)
		pl_mark(i, lo, hi);
	pthread_mutex_unlock(&pl.lock);
}

/*
 * Before a call that may remove the last name of the file at path: if it
 * does, its inode number may be reused, so (dev, ino) must stop naming it.
 */
struct pl_victim {
	long i;
};

static struct pl_victim
pl_victim(int dirfd, const char *path)
{
	struct pl_victim v = {-1};
	struct stat st;

	if (!pl_active() || fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return v;
	if (!(S_ISDIR(st.st_mode) || st.st_nlink <= 1))
		return v;
	pthread_mutex_lock(&pl.lock);
	v.i = pl_find(st.st_dev, st.st_ino);
	pthread_mutex_unlock(&pl.lock);
	return v;
}

static void
pl_bury(struct pl_victim v, int rc)
{
	if (v.i < 0 || rc != 0)
		return;
	pthread_mutex_lock(&pl.lock);
	pl.inodes[v.i].live = false;
	pthread_mutex_unlock(&pl.lock);
}

/* Start: what is in the tree now is durable */

static void pl_adopt_dir(const char *path);

static void
pl_adopt_file(const char *path, const struct stat *st)
{
	long i = pl_intern(st);
	int src = REAL(open)(path, O_RDONLY | O_CLOEXEC);

	if (src < 0)
		pl_die(path);
	pl_copy_range(src, i, 0, st->st_size, st->st_size);
	REAL(close)(src);
}

static void
pl_adopt_entry(const char *dir, const char *name)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (lstat(path, &st) < 0)
		pl_die(path);
	if (S_ISDIR(st.st_mode))
		pl_adopt_dir(path);
	else if (S_ISREG(st.st_mode))
		pl_adopt_file(path, &st);
}

static void
pl_adopt_dir(const char *path)
{
	struct dirent *e;
	struct stat st;
	DIR *d = opendir(path);

	if (d == NULL || stat(path, &st) < 0)
		pl_die(path);
	pl_intern(&st);
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			pl_adopt_entry(path, e->d_name);
	closedir(d);
	pl_sync_dir_path(path, pl_find(st.st_dev, st.st_ino));
}

/* A fresh file: inode numbers restart at 0 in each process, so a state is never reused. */
static int
pl_open_state(const char *path)
{
	int fd = REAL(open)(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);

	if (fd < 0)
		pl_die(path);
	return fd;
}

static void
pl_copy_env(const char *name, char *out, size_t cap, size_t *len)
{
	const char *v = getenv(name);

	snprintf(out, cap, "%s", v ? v : "");
	*len = strlen(out);
}

__attribute__((constructor)) static void
pl_start(void)
{
	const char *dir = getenv("POWERLOSS_DIR"), *state = getenv("POWERLOSS_STATE");
	char data[PATH_MAX + 8], journal[PATH_MAX + 8];

	if (dir == NULL || state == NULL)
		return;
	if (realpath(dir, pl.dir) == NULL || realpath(state, pl.state) == NULL)
		pl_die("POWERLOSS_DIR or POWERLOSS_STATE");
	pl.dir_len = strlen(pl.dir);
	snprintf(data, sizeof(data), "%s/data", pl.state);
	if (mkdir(data, 0700) < 0 && errno != EEXIST)
		pl_die(data);
	snprintf(journal, sizeof(journal), "%s/journal", pl.state);
	pl.journal = pl_open_state(journal);
	if (getenv("POWERLOSS_TRACE"))
		pl.trace = pl_open_state(getenv("POWERLOSS_TRACE"));
	pl_copy_env("POWERLOSS_MARK", pl.mark, sizeof(pl.mark), &pl.mark_len);
	pl_copy_env("POWERLOSS_REPLY", pl.reply, sizeof(pl.reply), &pl.reply_len);
	pthread_mutex_lock(&pl.lock);
	pl_adopt_dir(pl.dir);
	pthread_mutex_unlock(&pl.lock);
	pl.pid = getpid();
	pl.on = true;
}

/* The interposed calls */

static int
pl_opened(int fd, int flags)
{
	if (fd >= 0)
		pl_track(fd, (flags & O_TRUNC) != 0, false);
	return fd;
}

static mode_t
pl_mode(int flags, va_list ap)
{
	return (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, mode_t) : 0;
}

/*
 * glibc exports most calls twice, under a plain and a large-file ("64")
 * name: each family's wrappers differ only in name and arguments, so a
 * macro writes them.
 */
#define PL_OPEN(name, params, args)                                 \
	int name params                                             \
	{                                                           \
		va_list ap;                                         \
		mode_t mode;                                        \
                                                                    \
		va_start(ap, flags);                                \
		mode = pl_mode(flags, ap);                          \
		va_end(ap);                                         \
		return pl_opened(REAL(name) args, flags);           \
	}

PL_OPEN(open, (const char *path, int flags, ...), (path, flags, mode))
PL_OPEN(open64, (const char *path, int flags, ...), (path, flags, mode))
PL_OPEN(openat, (int dirfd, const char *path, int flags, ...), (dirfd, path, flags, mode))
PL_OPEN(openat64, (int dirfd, const char *path, int flags, ...), (dirfd, path, flags, mode))

int
__open_2(const char *path, int flags)
{
	return pl_opened(REAL(__open_2)(path, flags), flags);
}

int
__open64_2(const char *path, int flags)
{
	return pl_opened(REAL(__open64_2)(path, flags), flags);
}

int
creat(const char *path, mode_t mode)
{
	return pl_opened(REAL(creat)(path, mode), O_TRUNC);
}

int
creat64(const char *path, mode_t mode)
{
	return pl_opened(REAL(creat64)(path, mode), O_TRUNC);
}

static FILE *
pl_fopened(FILE *f, const char *mode)
{
	if (f != NULL)
		pl_track(fileno(f), mode[0] == 'w', true);
	return f;
}

FILE *
fopen(const char *path, const char *mode)
{
	return pl_fopened(REAL(fopen)(path, mode), mode);
}

FILE *
fopen64(const char *path, const char *mode)
{
	return pl_fopened(REAL(fopen64)(path, mode), mode);
}

FILE *
fdopen(int fd, const char *mode)
{
	FILE *f = REAL(fdopen)(fd, mode);

	if (f != NULL)
		pl_track(fd, false, true);
	return f;
}

int
fclose(FILE *f)
{
	pl_untrack(fileno(f));
	return REAL(fclose)(f);
}

int
close(int fd)
{
	pl_untrack(fd);
	return REAL(close)(fd);
}

int
dup2(int fd, int fd2)
{
	int rc = REAL(dup2)(fd, fd2);

	if (rc >= 0 && fd != fd2)
		pl_untrack(fd2);
	return rc;
}

int
dup3(int fd, int fd2, int flags)
{
	int rc = REAL(dup3)(fd, fd2, flags);

	if (rc >= 0)
		pl_untrack(fd2);
	return rc;
}

ssize_t
write(int fd, const void *p, size_t n)
{
	struct iovec iov = {(void *)p, n};
	ssize_t w;

	pl_before_write(fd, &iov, 1);
	w = REAL(write)(fd, p, n);
	pl_after_write(fd, -1, &iov, 1, w);
	return w;
}

/* A write at a given offset: iov and iovcnt describe the bytes for the trace. */
#define PL_PWRITE(name, params, args, iov, iovcnt)                  \
	ssize_t name params                                         \
	{                                                           \
		ssize_t w = REAL(name) args;                        \
                                                                    \
		pl_after_write(fd, off, iov, iovcnt, w);            \
		return w;                                           \
	}

PL_PWRITE(pwrite, (int fd, const void *p, size_t n, off_t off), (fd, p, n, off),
	  (&(struct iovec){(void *)p, n}), 1)
PL_PWRITE(pwrite64, (int fd, const void *p, size_t n, off_t off), (fd, p, n, off),
	  (&(struct iovec){(void *)p, n}), 1)

ssize_t
writev(int fd, const struct iovec *iov, int iovcnt)
{
	ssize_t w;

	pl_before_write(fd, iov, iovcnt);
	w = REAL(writev)(fd, iov, iovcnt);
	pl_after_write(fd, -1, iov, iovcnt, w);
	return w;
}

PL_PWRITE(pwritev, (int fd, const struct iovec *iov, int iovcnt, off_t off),
	  (fd, iov, iovcnt, off), iov, iovcnt)
PL_PWRITE(pwritev64, (int fd, const struct iovec *iov, int iovcnt, off_t off),
	  (fd, iov, iovcnt, off), iov, iovcnt)
PL_PWRITE(pwritev2, (int fd, const struct iovec *iov, int iovcnt, off_t off, int flags),
	  (fd, iov, iovcnt, off, flags), iov, iovcnt)

ssize_t
send(int fd, const void *p, size_t n, int flags)
{
	struct iovec iov = {(void *)p, n};

	pl_before_write(fd, &iov, 1);
	return REAL(send)(fd, p, n, flags);
}

ssize_t
sendto(int fd, const void *p, size_t n, int flags, const struct sockaddr *to, socklen_t tolen)
{
	struct iovec iov = {(void *)p, n};

	pl_before_write(fd, &iov, 1);
	return REAL(sendto)(fd, p, n, flags, to, tolen);
}

ssize_t
sendmsg(int fd, const struct msghdr *msg, int flags)
{
	pl_before_write(fd, msg->msg_iov, (int)msg->msg_iovlen);
	return REAL(sendmsg)(fd, msg, flags);
}

/* A change of size or allocation, which dirties [lo, hi) of fd's file. */
#define PL_RESIZE(name, params, args, lo, hi)                       \
	int name params                                             \
	{                                                           \
		int rc = REAL(name) args;                           \
                                                                    \
		if (rc == 0)                                        \
			pl_after_resize(fd, lo, hi);                \
		return rc;                                          \
	}

PL_RESIZE(ftruncate, (int fd, off_t len), (fd, len), len, (off_t)LLONG_MAX)
PL_RESIZE(ftruncate64, (int fd, off_t len), (fd, len), len, (off_t)LLONG_MAX)
PL_RESIZE(fallocate, (int fd, int mode, off_t off, off_t len), (fd, mode, off, len), off, off + len)
PL_RESIZE(fallocate64, (int fd, int mode, off_t off, off_t len), (fd, mode, off, len), off,
	  off + len)
PL_RESIZE(posix_fallocate, (int fd, off_t off, off_t len), (fd, off, len), off, off + len)

int
fsync(int fd)
{
	int rc = REAL(fsync)(fd);

	if (rc == 0 && pl_active())
		pl_sync(fd);
	return rc;
}

int
fdatasync(int fd)
{
	int rc = REAL(fdatasync)(fd);

	if (rc == 0 && pl_active())
		pl_sync(fd);
	return rc;
}

void *
mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if (pl_active() && (prot & PROT_WRITE) && (flags & MAP_SHARED) && fd >= 0 &&
	    fd < PL_MAX_FDS && pl.fd_inode[fd] != 0) {
		fprintf(stderr, "powerloss: a writable shared mapping of a spool file: "
				"its writes would escape the model\n");
		abort();
	}
	return REAL(mmap)(addr, len, prot, flags, fd, off);
}

/* A call that may remove the last name of the file at path, relative to dirfd. */
#define PL_REMOVE(name, params, args, dirfd)                        \
	int name params                                             \
	{                                                           \
		struct pl_victim v = pl_victim(dirfd, path);        \
		int rc = REAL(name) args;                           \
                                                                    \
		pl_bury(v, rc);                                     \
		return rc;                                          \
	}

PL_REMOVE(unlink, (const char *path), (path), AT_FDCWD)
PL_REMOVE(unlinkat, (int dirfd, const char *path, int flags), (dirfd, path, flags), dirfd)
PL_REMOVE(remove, (const char *path), (path), AT_FDCWD)
PL_REMOVE(rmdir, (const char *path), (path), AT_FDCWD)

/* A rename onto an existing name removes that name's inode (unless both are one inode). */
static struct pl_victim
pl_rename_victim(int olddirfd, const char *old, int newdirfd, const char *new)
{
	struct pl_victim v = pl_victim(newdirfd, new);
	struct stat a, b;

	if (v.i >= 0 && fstatat(olddirfd, old, &a, AT_SYMLINK_NOFOLLOW) == 0 &&
	    fstatat(newdirfd, new, &b, AT_SYMLINK_NOFOLLOW) == 0 && a.st_dev == b.st_dev &&
	    a.st_ino == b.st_ino)
		v.i = -1;
	return v;
}

int
rename(const char *old, const char *new)
{
	struct pl_victim v = pl_rename_victim(AT_FDCWD, old, AT_FDCWD, new);
	int rc = REAL(rename)(old, new);

	pl_bury(v, rc);
	return rc;
}

int
renameat(int olddirfd, const char *old, int newdirfd, const char *new)
{
	struct pl_victim v = pl_rename_victim(olddirfd, old, newdirfd, new);
	int rc = REAL(renameat)(olddirfd, old, newdirfd, new);

	pl_bury(v, rc);
	return rc;
}

int
renameat2(int olddirfd, const char *old, int newdirfd, const char *new, unsigned flags)
{
	struct pl_victim v = {-1};
	int rc;

	if (!(flags & RENAME_EXCHANGE))
		v = pl_rename_victim(olddirfd, old, newdirfd, new);
	rc = REAL(renameat2)(olddirfd, old, newdirfd, new, flags);
	pl_bury(v, rc);
	return rc;
}
