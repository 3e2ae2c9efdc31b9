// SPDX-License-Identifier: MIT
/*
 * libFuzzer: log segment recovery. A crash leaves a segment ending in ".open"
 * that may stop inside a record (plain) or inside a zstd block (compressed);
 * logfile_open finishes it. The first input byte picks the leftover:
 *   0: the rest of the input as a plain segment,
 *   1: the rest as a compressed segment (arbitrary bytes, not zstd at all),
 *   2: the rest compressed as the writer does (a flush per line), cut where
 *      the second byte says, as a crash would cut it.
 * The finished segment must hold only complete lines, and for 0 and 2 exactly
 * a prefix of the text; a leftover without a complete line is removed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "fuzz_tmpdir.h"
#include "tern/log.h"
#include "tern/logfile.h"

#define BASE "20261130-000000.000000.jsonl"

static const char *dir;

static void
check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_logfile: %s\n", what);
		abort();
	}
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	dir = fuzz_tmpdir_make("fuzz_logfile");
	/* Recovery warns about every torn record: that is its job, not news here. */
	log_set_level(LOG_LEVEL_ERROR);
	return 0;
}

static void
write_file(const char *name, const void *p, size_t n)
{
	char path[160];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	check(fd >= 0 && write(fd, p, n) == (ssize_t)n && close(fd) == 0, "write leftover");
}

/* The file's contents, or -ENOENT. */
static int
read_file(const char *name, struct buf *out)
{
	char path[160], chunk[4096];
	ssize_t r;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	while ((r = read(fd, chunk, sizeof(chunk))) > 0)
		check(buf_append(out, chunk, (size_t)r) == 0, "out of memory");
	close(fd);
	return 0;
}

static void
clear_dir(void)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	char path[320];

	check(d != NULL, "opendir");
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		unlink(path);
	}
	closedir(d);
}

/* Compress text one line at a time with a flush after each, as the writer does. */
static void
compress_lines(const uint8_t *p, size_t n, struct buf *out)
{
	ZSTD_CCtx *zc = ZSTD_createCCtx();
	size_t cap = ZSTD_compressBound(n) + 64 * (n + 1);
	const uint8_t *nl;
	size_t len;

	check(zc != NULL && buf_reserve(out, cap) == 0, "out of memory");
	while (n > 0) {
		nl = memchr(p, '\n', n);
		len = nl ? (size_t)(nl - p) + 1 : n;
		ZSTD_inBuffer in = {p, len, 0};
		ZSTD_outBuffer o = {out->data + out->len, cap - out->len, 0};
		check(!ZSTD_isError(ZSTD_compressStream2(zc, &o, &in, ZSTD_e_flush)) &&
			      in.pos == len,
		      "compress");
		out->len += o.pos;
		p += len;
		n -= len;
	}
	ZSTD_freeCCtx(zc);
}

/* The recovered segment must be one well-formed zstd frame. */
static void
decompress(const struct buf *z, struct buf *out)
{
	ZSTD_DCtx *dc = ZSTD_createDCtx();
	ZSTD_inBuffer in = {z->data, z->len, 0};
	char chunk[4096];
	size_t r = 1;

	check(dc != NULL, "out of memory");
	while (r != 0) {
		ZSTD_outBuffer o = {chunk, sizeof(chunk), 0};

		r = ZSTD_decompressStream(dc, &o, &in);
		check(!ZSTD_isError(r), "recovered segment does not decompress");
		check(buf_append(out, chunk, o.pos) == 0, "out of memory");
		check(r == 0 || o.pos > 0 || in.pos < in.size, "recovered segment lacks its frame end");
	}
	check(in.pos == in.size, "bytes after the recovered frame");
	ZSTD_freeDCtx(dc);
}

/* Finished text: only complete lines; for a known text, its longest such prefix at most. */
static void
check_recovered(const struct buf *got, const uint8_t *text, size_t n, int mode)
{
	const uint8_t *last = n > 0 ? memrchr(text, '\n', n) : NULL;
	size_t whole = last ? (size_t)(last - text) + 1 : 0;

	check(got->len > 0 && got->data[got->len - 1] == '\n', "recovered a torn line");
	if (mode == 1)
		return;
	check(got->len <= whole && memcmp(got->data, text, got->len) == 0,
	      "recovered text is not a prefix of what was written");
	check(mode == 2 || got->len == whole, "a complete plain line was dropped");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct logfile_config cfg = {.dir = dir};
	const uint8_t *text = data + 2;
	struct buf leftover, got, plain;
	struct logfile *lf;
	struct tern_err err;
	size_t n = size - 2;
	int mode;

	if (size < 2)
		return 0;
	mode = data[0] % 3;
	buf_init(&leftover);
	buf_init(&got);
	buf_init(&plain);
	if (mode == 2) {
		compress_lines(text, n, &leftover);
		leftover.len = leftover.len * data[1] / 255;
	} else {
		check(buf_append(&leftover, text, n) == 0, "out of memory");
	}
	cfg.compression = mode == 0 ? LOGFILE_NONE : LOGFILE_ZSTD;
	write_file(mode == 0 ? BASE ".open" : BASE ".zst.open", leftover.data ? leftover.data : "",
		   leftover.len);
	lf = logfile_open(&cfg, &err);
	check(lf != NULL, "logfile_open failed");
	logfile_close(lf);
	if (read_file(mode == 0 ? BASE : BASE ".zst", &got) == 0) {
		if (mode != 0)
			decompress(&got, &plain);
		check_recovered(mode != 0 ? &plain : &got, text, n, mode);
	} else {
		check(mode != 0 || memchr(text, '\n', n) == NULL,
		      "a plain leftover with complete lines was removed");
	}
	check(read_file(mode == 0 ? BASE ".open" : BASE ".zst.open", &plain) == -ENOENT,
	      "leftover still there");
	clear_dir();
	buf_deinit(&leftover);
	buf_deinit(&got);
	buf_deinit(&plain);
	return 0;
}
