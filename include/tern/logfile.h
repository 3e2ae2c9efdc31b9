/* SPDX-License-Identifier: MIT */
/*
 * Segmented JSON-lines files for outcome records, shaped like KumoMTA's local
 * logs (tern.configure_local_logs). Shards append whole records into one
 * memory buffer under a mutex; a flusher thread owns the files, so the hot
 * path never waits on the disk.
 *
 * A segment is written as <dir>/YYYYMMDD-HHMMSS.ssssss.jsonl.open (UTC start
 * time, sortable; ".jsonl.zst.open" when compressed) and renamed to the same
 * name without ".open" when it is finished: by age, by size or by close.
 * Readers of the directory therefore see only complete files.
 *
 * After a crash, logfile_open finishes the ".open" files it finds: a plain
 * segment is cut after its last complete line; a zstd segment (which lacks its
 * frame end) is decompressed as far as it is readable and re-compressed up to
 * its last complete line into a proper frame. Both get their final name (or
 * are removed when no complete record is left), and a warning says how many
 * bytes of torn record were dropped. A segment whose write fails at run time
 * is finished the same way. Only one process may write a directory at a time.
 *
 * Other line formats (accounting CSV) use the same segments with their own
 * extension and a header line opening each segment. Retention deletes the
 * oldest finished segments past max_age or max_total_size, but never one a
 * reader (a log hook) still needs, unless forced.
 */
#ifndef TERN_LOGFILE_H
#define TERN_LOGFILE_H

#include <stddef.h>
#include <stdint.h>

#include "tern/util.h"

enum logfile_compression { LOGFILE_NONE, LOGFILE_ZSTD };

/* Appenders wake the flusher when this much is buffered. */
#define LOGFILE_HANDOVER_BYTES (1u << 20)

/*
 * Does a reader still need the finished segment name (in dir)? Retention
 * stops at the first segment, oldest first, for which it says true.
 */
typedef bool (*logfile_needed_fn)(void *arg, const char *dir, const char *name);

struct logfile_retention {
	double max_age;          /* seconds since a segment was finished; 0 = no limit */
	uint64_t max_total_size; /* bytes of finished segments; 0 = no limit */
	bool force;              /* delete even what `needed` says a reader needs */
	logfile_needed_fn needed; /* NULL: no reader */
	void *needed_arg;
};

struct logfile_config {
	const char *dir;             /* created (with parents) when missing */
	double max_segment_duration; /* seconds; 0 = no limit */
	/* Bytes of uncompressed records per segment; 0 = no limit. A segment
	 * ends before the record that would cross it (a single larger record
	 * gets a segment of its own). */
	uint64_t max_file_size;
	enum logfile_compression compression;
	int zstd_level;        /* 0 = 3 */
	double flush_interval; /* seconds between flusher ticks; 0 = 1 */
	/* Records waiting for the flusher beyond this many bytes are dropped
	 * and counted (the disk is slower than the shards); 0 = 64 MiB. */
	uint64_t max_buffered;
	/* fdatasync every write of records (and fsync the directory when a
	 * segment starts or is renamed), so that records survive power loss. */
	bool sync;
	/* Segment extension before ".zst"; NULL = ".jsonl". */
	const char *ext;
	/* A line (without '\n') that opens every segment, e.g. a CSV header; NULL = none. */
	const char *header;
	struct logfile_retention retention;
};

struct logfile_stats {
	uint64_t records;      /* accepted by logfile_append */
	uint64_t dropped;      /* refused: buffer full or out of memory */
	uint64_t write_errors; /* failed writes, opens or renames of segments */
	/* Records in writes that failed; those that reached the disk before
	 * the failure are kept in the finished segment. */
	uint64_t lost;
	uint64_t segments;     /* segments finished (renamed) */
	uint64_t removed;      /* segments deleted by retention */
};

struct logfile;

/* Validate cfg, create the directory, finish crash leftovers, start the
 * flusher. NULL with err naming the path on failure. */
struct logfile *logfile_open(const struct logfile_config *cfg, struct tern_err *err);
/*
 * Append one record: a JSON object without its trailing newline (added
 * here). Thread-safe and cheap: a memcpy under a mutex. Returns 0, -EINVAL
 * for an empty line or one holding '\n', -ENOBUFS when max_buffered is
 * reached, -ENOMEM.
 */
int logfile_append(struct logfile *lf, const char *line, size_t len);
/*
 * Write every record appended before this call to the current segment now
 * (zstd: a flushed block), and sync it when cfg.sync: once it returns, those
 * records survive the process being killed (and, with sync, power loss).
 * Thread-safe; concurrent callers share the writes.
 */
void logfile_flush(struct logfile *lf);
void logfile_stats(struct logfile *lf, struct logfile_stats *out);
/*
 * Apply cfg (same dir) from now on: durations, sizes, sync and retention at
 * once; a change of compression, extension or header finishes the segment
 * so that the next one is written the new way. No record is lost or written
 * twice. -EINVAL with err when cfg is invalid or names another dir.
 */
int logfile_reconfigure(struct logfile *lf, const struct logfile_config *cfg,
			struct tern_err *err);
/* Flush, finish the segment (zstd frame end), rename it, free lf. */
void logfile_close(struct logfile *lf);

#endif
