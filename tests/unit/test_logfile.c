// SPDX-License-Identifier: MIT
/*
 * Tests for core/logfile.c: records from many threads arrive whole and in
 * order, segments rotate by size and age and get their final names, zstd
 * segments decompress to exactly the records, leftovers of a crash are
 * finished, and a failing disk is counted rather than fatal. Other formats
 * get their extension and header, retention deletes by age and total size but
 * not what a reader needs, and a reload's settings apply without loss.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "tern/logfile.h"

#include "support.h"

struct fixture {
	char dir[64];
	struct logfile_config cfg;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/test_logfile.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	f->cfg.dir = f->dir;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	support_rm_rf(f->dir);
	free(f);
	return 0;
}

static int
has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Names in dir ending in suffix, sorted; returns the count. */
static int
list_files(const char *dir, const char *suffix, char names[][128], int max)
{
	struct dirent **ents;
	int i, n, count = 0;

	n = scandir(dir, &ents, NULL, alphasort);
	assert_true(n >= 0);
	for (i = 0; i < n; i++) {
		if (has_suffix(ents[i]->d_name, suffix) && count < max)
			snprintf(names[count++], 128, "%s", ents[i]->d_name);
		free(ents[i]);
	}
	free(ents);
	return count;
}

static int
count_files(const char *dir, const char *suffix)
{
	char names[256][128];

	return list_files(dir, suffix, names, 256);
}

static void
slurp(const char *dir, const char *name, struct buf *out)
{
	char path[256], chunk[4096];
	size_t n;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "r");
	assert_non_null(fp);
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		buf_append(out, chunk, n);
	fclose(fp);
}

/* Decompress with the zstd command line, which must accept the file whole. */
static void
unzstd(const char *dir, const char *name, struct buf *out)
{
	char cmd[512], chunk[4096];
	size_t n;
	FILE *fp;

	snprintf(cmd, sizeof(cmd), "zstd -qdc '%s/%s'", dir, name);
	fp = popen(cmd, "r");
	assert_non_null(fp);
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		buf_append(out, chunk, n);
	assert_int_equal(pclose(fp), 0);
}

/* All finished segments of dir, in name order, concatenated. */
static void
read_all(const char *dir, struct buf *out)
{
	char names[4096][128];
	int i, n;

	n = list_files(dir, "", names, 4096);
	for (i = 0; i < n; i++) {
		if (has_suffix(names[i], ".jsonl"))
			slurp(dir, names[i], out);
		else if (has_suffix(names[i], ".jsonl.zst"))
			unzstd(dir, names[i], out);
	}
}

static void
append_str(struct logfile *lf, const char *s)
{
	assert_int_equal(logfile_append(lf, s, strlen(s)), 0);
}

static void
test_bad_dir(void **state)
{
	struct fixture *f = *state;
	char file[128], bad[160];
	struct tern_err err = {0};
	FILE *fp;

	snprintf(file, sizeof(file), "%s/plainfile", f->dir);
	fp = fopen(file, "w");
	fclose(fp);
	snprintf(bad, sizeof(bad), "%s/sub/logs", file);
	f->cfg.dir = bad;
	assert_null(logfile_open(&f->cfg, &err));
	assert_non_null(strstr(err.msg, bad));
	assert_non_null(strstr(err.msg, "Not a directory"));

	f->cfg.dir = file;
	assert_null(logfile_open(&f->cfg, &err));
	assert_non_null(strstr(err.msg, file));

	f->cfg.dir = NULL;
	assert_null(logfile_open(&f->cfg, &err));
	assert_non_null(strstr(err.msg, "log_dir"));

	f->cfg.dir = f->dir;
	f->cfg.max_segment_duration = -1;
	assert_null(logfile_open(&f->cfg, &err));
	assert_non_null(strstr(err.msg, f->dir));
}

static void
test_creates_dir(void **state)
{
	struct fixture *f = *state;
	char dir[128];
	struct tern_err err = {0};
	struct logfile *lf;
	struct stat st = {0};

	snprintf(dir, sizeof(dir), "%s/a/b/c", f->dir);
	f->cfg.dir = dir;
	lf = logfile_open(&f->cfg, &err);
	assert_non_null(lf);
	assert_int_equal(stat(dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	logfile_close(lf);
	assert_int_equal(count_files(dir, ".jsonl"), 0);
}

static void
test_append_rejects(void **state)
{
	struct fixture *f = *state;
	struct logfile *lf = logfile_open(&f->cfg, NULL);

	assert_int_equal(logfile_append(lf, "", 0), -EINVAL);
	assert_int_equal(logfile_append(lf, "{\"a\":\n1}", 8), -EINVAL);
	logfile_close(lf);
	assert_int_equal(count_files(f->dir, ".jsonl"), 0);
}

#define THREADS 4
#define PER_THREAD 30000

struct writer {
	struct logfile *lf;
	int id;
};

static void *
writer_run(void *arg)
{
	struct writer *w = arg;
	char line[128];
	int i, n;

	for (i = 0; i < PER_THREAD; i++) {
		n = snprintf(line, sizeof(line), "{\"thread\":%d,\"seq\":%d,\"pad\":\"%.*s\"}",
			     w->id, i, i % 40, "0123456789012345678901234567890123456789");
		if (logfile_append(w->lf, line, (size_t)n) != 0)
			abort();
	}
	return NULL;
}

/* Each line must be exactly what some writer wrote, in that writer's order. */
static void
check_thread_lines(struct buf *all)
{
	int next[THREADS] = {0}, id, seq, n;
	char expect[128], *line, *save = NULL;

	for (line = strtok_r(all->data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		assert_int_equal(sscanf(line, "{\"thread\":%d,\"seq\":%d,", &id, &seq), 2);
		assert_true(id >= 0 && id < THREADS);
		assert_int_equal(seq, next[id]);
		n = snprintf(expect, sizeof(expect), "{\"thread\":%d,\"seq\":%d,\"pad\":\"%.*s\"}",
			     id, seq, seq % 40, "0123456789012345678901234567890123456789");
		assert_int_equal(strlen(line), (size_t)n);
		assert_string_equal(line, expect);
		next[id]++;
	}
	for (id = 0; id < THREADS; id++)
		assert_int_equal(next[id], PER_THREAD);
}

static void
run_threads(struct fixture *f)
{
	struct writer w[THREADS];
	pthread_t t[THREADS];
	struct logfile_stats st;
	struct logfile *lf;
	struct buf all;
	int i;

	lf = logfile_open(&f->cfg, NULL);
	assert_non_null(lf);
	for (i = 0; i < THREADS; i++) {
		w[i] = (struct writer){lf, i};
		pthread_create(&t[i], NULL, writer_run, &w[i]);
	}
	for (i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	logfile_stats(lf, &st);
	assert_int_equal(st.records, THREADS * PER_THREAD);
	assert_int_equal(st.dropped, 0);
	logfile_close(lf);
	assert_int_equal(count_files(f->dir, ".open"), 0);
	buf_init(&all);
	read_all(f->dir, &all);
	check_thread_lines(&all);
	buf_deinit(&all);
}

static void
test_threads_plain(void **state)
{
	run_threads(*state);
}

/* With size rotation on too, so records cross segment boundaries. */
static void
test_threads_zstd_rotating(void **state)
{
	struct fixture *f = *state;

	f->cfg.compression = LOGFILE_ZSTD;
	f->cfg.max_file_size = 1 << 20;
	run_threads(f);
	assert_true(count_files(f->dir, ".jsonl.zst") >= 5);
	assert_int_equal(count_files(f->dir, ".tmp"), 0);
}

static void
make_line(char *out, size_t size, int i, size_t len)
{
	int n = snprintf(out, size, "{\"n\":%04d,\"x\":\"", i);

	memset(out + n, 'x', len - (size_t)n - 2);
	memcpy(out + len - 2, "\"}", 3);
}

static void
test_rotate_size(void **state)
{
	struct fixture *f = *state;
	char names[64][128], line[2048], expect[2048];
	struct logfile *lf;
	struct buf b;
	int i, n;

	f->cfg.max_file_size = 1000;
	lf = logfile_open(&f->cfg, NULL);
	for (i = 0; i < 30; i++) {
		make_line(line, sizeof(line), i, 99);
		append_str(lf, line);
	}
	make_line(line, sizeof(line), 30, 300);
	append_str(lf, line); /* the third segment is full: a fourth */
	logfile_flush(lf);
	make_line(line, sizeof(line), 31, 2000);
	append_str(lf, line); /* larger than a whole segment */
	logfile_close(lf);

	n = list_files(f->dir, ".jsonl", names, 64);
	assert_int_equal(n, 5);
	for (i = 0; i < n; i++) {
		buf_init(&b);
		slurp(f->dir, names[i], &b);
		if (i < 3) {
			assert_int_equal(b.len, 1000);
			make_line(expect, sizeof(expect), i * 10, 99);
			assert_memory_equal(b.data, expect, 99);
		} else {
			assert_int_equal(b.len, i == 3 ? 301 : 2001);
		}
		assert_true(has_suffix(names[i], ".jsonl") && strlen(names[i]) == 28);
		buf_deinit(&b);
	}
	assert_int_equal(count_files(f->dir, ".open"), 0);
}

static void
test_rotate_duration(void **state)
{
	struct fixture *f = *state;
	struct logfile_stats st;
	struct logfile *lf;
	struct buf all;

	f->cfg.max_segment_duration = 0.2;
	f->cfg.flush_interval = 0.05;
	lf = logfile_open(&f->cfg, NULL);
	append_str(lf, "{\"first\":1}");
	usleep(150 * 1000);
	/* The flusher wrote it already: no flush call. */
	assert_int_equal(count_files(f->dir, ".jsonl.open"), 1);
	usleep(350 * 1000);
	/* Traffic stopped, and the segment was finished by age anyway. */
	assert_int_equal(count_files(f->dir, ".jsonl.open"), 0);
	assert_int_equal(count_files(f->dir, ".jsonl"), 1);
	append_str(lf, "{\"second\":2}");
	logfile_stats(lf, &st);
	assert_int_equal(st.segments, 1);
	logfile_close(lf);
	assert_int_equal(count_files(f->dir, ".jsonl"), 2);
	buf_init(&all);
	read_all(f->dir, &all);
	assert_string_equal(all.data, "{\"first\":1}\n{\"second\":2}\n");
	buf_deinit(&all);
}

static void
test_zstd_exact(void **state)
{
	struct fixture *f = *state;
	char names[8][128], line[256];
	struct logfile *lf;
	struct buf all, expect;
	int i;

	f->cfg.compression = LOGFILE_ZSTD;
	lf = logfile_open(&f->cfg, NULL);
	buf_init(&expect);
	for (i = 0; i < 5000; i++) {
		snprintf(line, sizeof(line), "{\"type\":\"Delivery\",\"id\":%d}", i);
		append_str(lf, line);
		buf_printf(&expect, "%s\n", line);
		if (i == 2500)
			logfile_flush(lf);
	}
	logfile_close(lf);
	assert_int_equal(list_files(f->dir, "", names, 8), 1 + 2); /* ".", ".." */
	assert_true(has_suffix(names[2], ".jsonl.zst"));
	buf_init(&all);
	read_all(f->dir, &all);
	assert_int_equal(all.len, expect.len);
	assert_memory_equal(all.data, expect.data, expect.len);
	buf_deinit(&all);
	buf_deinit(&expect);
}

/* Records are decodable from the segment before it is finished. */
static void
test_zstd_flush_visible(void **state)
{
	struct fixture *f = *state;
	char names[4][128];
	struct logfile *lf;
	struct buf b;
	size_t n;
	FILE *fp;
	char cmd[256];

	f->cfg.compression = LOGFILE_ZSTD;
	lf = logfile_open(&f->cfg, NULL);
	append_str(lf, "{\"a\":1}");
	logfile_flush(lf);
	assert_int_equal(list_files(f->dir, ".jsonl.zst.open", names, 4), 1);
	snprintf(cmd, sizeof(cmd), "zstd -qdc '%s/%s' 2>/dev/null", f->dir, names[0]);
	fp = popen(cmd, "r");
	buf_init(&b);
	buf_reserve(&b, 64);
	n = fread(b.data, 1, 64, fp);
	pclose(fp);
	assert_int_equal(n, 8);
	assert_memory_equal(b.data, "{\"a\":1}\n", 8);
	buf_deinit(&b);
	logfile_close(lf);
}

static void
write_file(const char *dir, const char *name, const void *p, size_t n)
{
	char path[256];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fwrite(p, 1, n, fp), n);
	fclose(fp);
}

/* A zstd stream flushed but never ended, then torn: what a crash leaves. */
static void
torn_zstd(struct buf *out, const char *text)
{
	ZSTD_CCtx *zc = ZSTD_createCCtx();
	ZSTD_inBuffer in = {text, strlen(text), 0};
	ZSTD_outBuffer o;
	static const char garbage[] = "\x04\x00\x01\xff\xee";

	buf_reserve(out, 4096);
	o = (ZSTD_outBuffer){out->data, out->cap, 0};
	while (ZSTD_compressStream2(zc, &o, &in, ZSTD_e_flush) != 0)
		;
	out->len = o.pos;
	buf_append(out, garbage, sizeof(garbage) - 1);
	ZSTD_freeCCtx(zc);
}

static void
test_crash_leftovers(void **state)
{
	struct fixture *f = *state;
	static const char plain[] = "{\"a\":1}\n{\"a\":2}\n{\"a\":3";
	struct logfile *lf;
	struct buf z, b;

	write_file(f->dir, "20240101-000000.000001.jsonl.open", plain, sizeof(plain) - 1);
	buf_init(&z);
	torn_zstd(&z, "{\"z\":1}\n{\"z\":2}\n{\"z\":");
	write_file(f->dir, "20240101-000000.000002.jsonl.zst.open", z.data, z.len);
	write_file(f->dir, "20240101-000000.000003.jsonl.open", "{\"torn", 6);
	/* A crash while finishing left a stale ".tmp" behind: overwritten. */
	write_file(f->dir, "20240101-000000.000002.jsonl.zst.tmp", "junk", 4);
	buf_deinit(&z);

	f->cfg.compression = LOGFILE_ZSTD;
	lf = logfile_open(&f->cfg, NULL);
	assert_non_null(lf);
	assert_int_equal(count_files(f->dir, ".open"), 0);
	assert_int_equal(count_files(f->dir, ".tmp"), 0);
	assert_int_equal(count_files(f->dir, "000003.jsonl"), 0);
	buf_init(&b);
	slurp(f->dir, "20240101-000000.000001.jsonl", &b);
	assert_string_equal(b.data, "{\"a\":1}\n{\"a\":2}\n");
	buf_reset(&b);
	unzstd(f->dir, "20240101-000000.000002.jsonl.zst", &b);
	assert_string_equal(b.data, "{\"z\":1}\n{\"z\":2}\n");
	buf_deinit(&b);
	logfile_close(lf);
}

/* A real crash: the child writes and exits without logfile_close. */
static void
test_crash_child(void **state)
{
	struct fixture *f = *state;
	struct logfile *lf;
	struct buf all;
	pid_t pid;
	int status;

	f->cfg.compression = LOGFILE_ZSTD;
	f->cfg.flush_interval = 3600; /* no tick while the child exits */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		lf = logfile_open(&f->cfg, NULL);
		logfile_append(lf, "{\"before\":1}", 12);
		logfile_append(lf, "{\"before\":2}", 12);
		logfile_flush(lf);
		logfile_append(lf, "{\"unflushed\":3}", 15);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(count_files(f->dir, ".jsonl.zst.open"), 1);

	lf = logfile_open(&f->cfg, NULL);
	assert_int_equal(count_files(f->dir, ".open"), 0);
	append_str(lf, "{\"after\":4}");
	logfile_close(lf);
	assert_int_equal(count_files(f->dir, ".jsonl.zst"), 2);
	buf_init(&all);
	read_all(f->dir, &all);
	assert_string_equal(all.data, "{\"before\":1}\n{\"before\":2}\n{\"after\":4}\n");
	buf_deinit(&all);
}

/*
 * sync = true: every flush syncs the segment (and the directory when one
 * starts or is renamed); what was flushed is in the file at once, rotation
 * included, and a child killed with SIGKILL right after a flush keeps it.
 */
static void
test_sync(void **state)
{
	struct fixture *f = *state;
	char line[64], names[16][128];
	struct logfile *lf;
	struct buf all, expect;
	pid_t pid;
	int i, status;

	f->cfg.sync = true;
	f->cfg.max_file_size = 100;
	f->cfg.flush_interval = 3600;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		lf = logfile_open(&f->cfg, NULL);
		for (i = 0; i < 10; i++) {
			snprintf(line, sizeof(line), "{\"n\":%d,\"pad\":\"xxxxxxxxxxxxxxxxxxxxx\"}",
				 i);
			logfile_append(lf, line, strlen(line));
			logfile_flush(lf);
		}
		logfile_append(lf, "{\"unflushed\":1}", 15);
		raise(SIGKILL);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	assert_int_equal(list_files(f->dir, ".open", names, 16), 1);

	lf = logfile_open(&f->cfg, NULL);
	logfile_close(lf);
	buf_init(&all);
	buf_init(&expect);
	read_all(f->dir, &all);
	for (i = 0; i < 10; i++)
		buf_printf(&expect, "{\"n\":%d,\"pad\":\"xxxxxxxxxxxxxxxxxxxxx\"}\n", i);
	assert_string_equal(all.data, expect.data);
	assert_true(count_files(f->dir, ".jsonl") >= 4);
	buf_deinit(&all);
	buf_deinit(&expect);
}

/* The flusher is not due for an hour, but 1 MiB buffered wakes it. */
static void
test_handover(void **state)
{
	struct fixture *f = *state;
	char names[4][128], line[1100];
	struct logfile *lf;
	struct stat st = {0};
	char path[256];
	int i;

	f->cfg.flush_interval = 3600;
	lf = logfile_open(&f->cfg, NULL);
	make_line(line, sizeof(line), 0, 999);
	for (i = 0; i < 1100; i++)
		append_str(lf, line);
	for (i = 0; i < 200 && count_files(f->dir, ".jsonl.open") == 0; i++)
		usleep(10 * 1000);
	assert_int_equal(list_files(f->dir, ".jsonl.open", names, 4), 1);
	snprintf(path, sizeof(path), "%s/%s", f->dir, names[0]);
	for (i = 0; i < 200 && (stat(path, &st) < 0 || st.st_size < LOGFILE_HANDOVER_BYTES); i++)
		usleep(10 * 1000);
	/* Written long before the tick; the rest waits for close. */
	assert_true(st.st_size >= LOGFILE_HANDOVER_BYTES);
	logfile_close(lf);
	snprintf(path, sizeof(path), "%s/%.*s", f->dir, (int)strlen(names[0]) - 5, names[0]);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 1100 * 1000);
}

/* The flusher is not due for an hour: the buffer cap refuses, and counts. */
static void
test_buffer_cap(void **state)
{
	struct fixture *f = *state;
	struct logfile_stats st;
	struct logfile *lf;
	struct buf all;
	char line[100];
	int i, ok = 0, refused = 0;

	f->cfg.max_buffered = 1000;
	f->cfg.flush_interval = 3600;
	lf = logfile_open(&f->cfg, NULL);
	for (i = 0; i < 50; i++) {
		make_line(line, sizeof(line), i, 49);
		if (logfile_append(lf, line, 49) == 0)
			ok++;
		else
			refused++;
	}
	assert_int_equal(ok, 20);
	logfile_stats(lf, &st);
	assert_int_equal(st.records, 20);
	assert_int_equal(st.dropped, 30);
	logfile_close(lf);
	buf_init(&all);
	read_all(f->dir, &all);
	assert_int_equal(all.len, 20 * 50);
	buf_deinit(&all);
}

/* A file size limit makes writes fail with EFBIG: counted, never torn. */
static void
test_write_error(void **state)
{
	struct fixture *f = *state;
	struct rlimit old, lim;
	struct logfile_stats st;
	char names[16][128], line[1100];
	struct logfile *lf;
	struct buf b;
	int i, n;

	f->cfg.flush_interval = 3600;
	lf = logfile_open(&f->cfg, NULL);
	signal(SIGXFSZ, SIG_IGN);
	getrlimit(RLIMIT_FSIZE, &old);
	lim = (struct rlimit){10000, old.rlim_max};
	setrlimit(RLIMIT_FSIZE, &lim);
	for (i = 0; i < 30; i++) {
		make_line(line, sizeof(line), i, 999);
		append_str(lf, line);
	}
	logfile_flush(lf);
	setrlimit(RLIMIT_FSIZE, &old);
	logfile_stats(lf, &st);
	assert_true(st.write_errors >= 1);
	assert_true(st.lost >= 20);
	append_str(lf, "{\"later\":1}");
	logfile_close(lf);

	n = list_files(f->dir, ".jsonl", names, 16);
	assert_true(n >= 2);
	assert_int_equal(count_files(f->dir, ".open"), 0);
	for (i = 0; i < n; i++) {
		buf_init(&b);
		slurp(f->dir, names[i], &b);
		assert_true(b.len > 0 && b.data[b.len - 1] == '\n');
		assert_int_equal(b.len % 1000 == 0 || i == n - 1, 1);
		buf_deinit(&b);
	}
}

/* The same with zstd: the torn frame is salvaged or removed, never left. */
static void
test_write_error_zstd(void **state)
{
	struct fixture *f = *state;
	struct rlimit old, lim;
	struct logfile_stats st;
	char line[1100];
	struct logfile *lf;
	struct buf all;
	int i, j;

	f->cfg.compression = LOGFILE_ZSTD;
	f->cfg.flush_interval = 3600;
	lf = logfile_open(&f->cfg, NULL);
	signal(SIGXFSZ, SIG_IGN);
	getrlimit(RLIMIT_FSIZE, &old);
	lim = (struct rlimit){10000, old.rlim_max};
	setrlimit(RLIMIT_FSIZE, &lim);
	srandom(7);
	for (i = 0; i < 30; i++) {
		/* Hex digits compress to about half: 30 records exceed the limit. */
		for (j = 0; j < 998; j++)
			line[j] = "0123456789abcdef"[random() % 16];
		line[998] = '\0';
		append_str(lf, line);
	}
	logfile_flush(lf);
	setrlimit(RLIMIT_FSIZE, &old);
	logfile_stats(lf, &st);
	assert_true(st.write_errors >= 1);
	append_str(lf, "{\"later\":1}");
	logfile_close(lf);
	assert_int_equal(count_files(f->dir, ".open"), 0);
	assert_int_equal(count_files(f->dir, ".tmp"), 0);
	buf_init(&all);
	read_all(f->dir, &all);
	assert_true(has_suffix(all.data, "{\"later\":1}\n"));
	assert_int_equal(all.len % 999, 12 % 999);
	buf_deinit(&all);
}

/* Each segment of another format opens with its header line and has its own extension. */
static void
test_header_and_ext(void **state)
{
	struct fixture *f = *state;
	char names[8][128];
	struct logfile *lf;
	struct buf got;

	f->cfg.ext = ".csv";
	f->cfg.header = "type,rcpt";
	f->cfg.max_file_size = 8;
	lf = logfile_open(&f->cfg, NULL);
	assert_non_null(lf);
	append_str(lf, "d,a@x");
	append_str(lf, "b,b@x");
	logfile_close(lf);
	assert_int_equal(list_files(f->dir, ".csv", names, 8), 2);
	assert_int_equal(count_files(f->dir, ".jsonl"), 0);
	buf_init(&got);
	slurp(f->dir, names[0], &got);
	slurp(f->dir, names[1], &got);
	buf_append(&got, "", 1);
	assert_string_equal(got.data, "type,rcpt\nd,a@x\ntype,rcpt\nb,b@x\n");
	buf_deinit(&got);
}

/* A finished segment whose last write was age seconds ago. */
static void
old_segment(const char *dir, const char *name, double age, size_t size)
{
	char path[256];
	struct timespec times[2];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	while (size-- > 0)
		fputc(size % 64 == 0 ? '\n' : 'x', fp);
	fclose(fp);
	clock_gettime(CLOCK_REALTIME, &times[0]);
	times[0].tv_sec -= (time_t)age;
	times[1] = times[0];
	assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);
}

static const char *needed_from; /* segments from this name on are still needed */

static bool
needed(void *arg, const char *dir, const char *name)
{
	(*(int *)arg)++;
	return needed_from != NULL && strcmp(name, needed_from) >= 0;
}

static void
test_retention_age(void **state)
{
	struct fixture *f = *state;
	char names[8][128];
	struct logfile_stats st;
	struct logfile *lf;

	old_segment(f->dir, "20200101-000000.000000.jsonl", 7200, 10);
	old_segment(f->dir, "20200101-000001.000000.jsonl.zst", 3700, 10);
	old_segment(f->dir, "20200101-000002.000000.jsonl", 3500, 10);
	old_segment(f->dir, "20200101-000003.000000.csv", 9000, 10); /* not this file's kind */
	f->cfg.retention.max_age = 3600;
	lf = logfile_open(&f->cfg, NULL);
	assert_non_null(lf);
	logfile_stats(lf, &st);
	assert_int_equal(st.removed, 2);
	logfile_close(lf);
	assert_int_equal(list_files(f->dir, "", names, 8), 4); /* ".", "..", two left */
	assert_string_equal(names[2], "20200101-000002.000000.jsonl");
	assert_string_equal(names[3], "20200101-000003.000000.csv");
}

/* Oldest first until the total fits; never past a segment a reader needs, unless forced. */
static void
test_retention_size_and_readers(void **state)
{
	struct fixture *f = *state;
	struct logfile *lf;
	int asked = 0;

	old_segment(f->dir, "20200101-000000.000000.jsonl", 10, 1000);
	old_segment(f->dir, "20200101-000001.000000.jsonl", 10, 1000);
	old_segment(f->dir, "20200101-000002.000000.jsonl", 10, 1000);
	old_segment(f->dir, "20200101-000003.000000.jsonl", 10, 1000);
	f->cfg.retention.max_total_size = 2500;
	f->cfg.retention.needed = needed;
	f->cfg.retention.needed_arg = &asked;
	needed_from = "20200101-000001.000000.jsonl";
	lf = logfile_open(&f->cfg, NULL);
	assert_non_null(lf);
	logfile_close(lf);
	assert_int_equal(count_files(f->dir, ".jsonl"), 3);
	assert_int_equal(asked, 2);

	f->cfg.retention.force = true;
	lf = logfile_open(&f->cfg, NULL);
	logfile_close(lf);
	assert_int_equal(count_files(f->dir, ".jsonl"), 2);
	needed_from = NULL;
}

/* A reload's settings: the open segment ends when its shape changes; no record is lost. */
static void
test_reconfigure(void **state)
{
	struct fixture *f = *state;
	struct logfile_config next;
	struct tern_err err;
	struct logfile *lf;
	struct buf got;

	lf = logfile_open(&f->cfg, NULL);
	assert_non_null(lf);
	append_str(lf, "{\"a\":1}");
	logfile_flush(lf);
	next = f->cfg;
	next.max_segment_duration = 3600;
	assert_int_equal(logfile_reconfigure(lf, &next, &err), 0);
	assert_int_equal(count_files(f->dir, ".jsonl"), 0); /* same shape: same segment */
	next.compression = LOGFILE_ZSTD;
	assert_int_equal(logfile_reconfigure(lf, &next, &err), 0);
	assert_int_equal(count_files(f->dir, ".jsonl"), 1);
	append_str(lf, "{\"b\":2}");
	next.dir = "/elsewhere";
	assert_int_equal(logfile_reconfigure(lf, &next, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "cannot move"));
	logfile_close(lf);
	assert_int_equal(count_files(f->dir, ".jsonl.zst"), 1);
	buf_init(&got);
	read_all(f->dir, &got);
	buf_append(&got, "", 1);
	assert_string_equal(got.data, "{\"a\":1}\n{\"b\":2}\n");
	buf_deinit(&got);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bad_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_creates_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_rejects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads_plain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads_zstd_rotating, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotate_size, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotate_duration, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zstd_exact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zstd_flush_visible, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_leftovers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_child, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handover, setup, teardown),
		cmocka_unit_test_setup_teardown(test_buffer_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_error_zstd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_header_and_ext, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention_age, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention_size_and_readers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reconfigure, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
