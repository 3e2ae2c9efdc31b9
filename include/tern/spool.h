/* SPDX-License-Identifier: MIT */
/*
 * The spool: RocksDB with two column families, "data" (id -> RFC 5322
 * message bytes) and "meta" (id -> the message's metadata, JSON text), plus
 * "quarantine" (id -> the raw entry that failed to load at recovery) and
 * "suppression" (the suppression list, see spool_kv_get below).
 *
 * Durability: spool_put() hands records to a writer thread that group-commits
 * everything waiting into one WriteBatch written with sync=true, so one fsync
 * covers every message in the batch. Its completion runs on the writer
 * thread; callers post it back to their own shard. Later state changes
 * (spool_update_meta, spool_remove) are written without sync: a crash can
 * repeat a delivery, never lose one.
 *
 * Message ids are 16 bytes, printed as 32 lowercase hex digits, and sort by
 * creation time: 8 bytes of microseconds since the epoch (big-endian), 2 bytes
 * of node id, 2 bytes of lane, 4 bytes of a per-process sequence. The lane
 * chooses the partition (lane % partitions): a spool may be several RocksDB
 * instances, each with its own WAL and writer thread, so that synced writes
 * run in parallel. The partition count is fixed when the spool is created.
 */
#ifndef TERN_SPOOL_H
#define TERN_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tern/spool_health.h"
#include "tern/util.h"

#define SPOOL_ID_LEN 16
#define SPOOL_ID_HEX_LEN 32

struct spool_id {
	uint8_t b[SPOOL_ID_LEN];
};

struct spool;

struct spool_config {
	const char *path;
	bool read_only; /* offline inspection (tern spool list): no writer thread, no creation */
	/* Upper bound on one group commit, in records (default 4096 when 0). */
	size_t max_batch;
	/*
	 * How long a synced write may wait, from the start of the one before
	 * it, for the puts announced as on their way (spool_announce), so as
	 * to cover them too (0: never). A write after a quiet spell or with
	 * nothing announced, a full batch, and a stop do not wait.
	 */
	double min_sync_interval;
	/* Partitions for a new spool (default 1); an existing spool keeps its own. */
	unsigned partitions;
	/*
	 * Below either floor spool_put refuses new messages (452 4.3.1) while
	 * removals, which free space, go on. Checked before each group commit
	 * and once a second.
	 */
	struct spool_floor min_free_space;  /* bytes */
	struct spool_floor min_free_inodes; /* inodes */
};

#define SPOOL_MAX_PARTITIONS 16

/* One message to write: both values are copied by spool_put before it returns. */
struct spool_record {
	struct spool_id id;
	const void *data;
	size_t data_len;
	const void *meta;
	size_t meta_len;
};

/*
 * status: 0 when every record in the call is durable, negative otherwise (err
 * says why; err is NULL when status is 0).
 */
typedef void (*spool_done_fn)(void *arg, int status, const struct tern_err *err);

struct spool *spool_open(const struct spool_config *cfg, struct tern_err *err);
void spool_close(struct spool *sp); /* drains pending writes, stops the writer, closes */

/* Make a new id in lane (see above); ids are unique whatever the lanes. Thread-safe. */
void spool_make_id(struct spool_id *id, uint16_t node, uint16_t lane);
unsigned spool_partitions(const struct spool *sp);
void spool_id_to_hex(const struct spool_id *id, char out[SPOOL_ID_HEX_LEN + 1]);
int spool_id_from_hex(const char *hex, size_t len, struct spool_id *id);
/* Creation time of an id in epoch seconds. */
double spool_id_time(const struct spool_id *id);
/* The lane an id was made in: its partition is lane % partitions. */
uint16_t spool_id_lane(const struct spool_id *id);

/*
 * Durably write n records (all or none); they must share one lane. done runs exactly once, on the
 * writer thread, after the synced write (or its failure). Returns 0 when
 * queued, negative (with err) when it could not even be queued: among
 * others 452 4.3.1 when the filesystem is below its floor, or while a
 * partition recovers from a failed write.
 *
 * A failed write (a full disk, an I/O error) stops RocksDB from writing
 * until it is reopened: the partition refuses new messages and its writer
 * reopens it once a second until it succeeds with free space above the
 * floor. Reads go on meanwhile.
 */
int spool_put(struct spool *sp, const struct spool_record *recs, size_t n, spool_done_fn done,
	      void *arg, struct tern_err *err);
/*
 * A put on its way: a message received whose hooks still run. A paced
 * writer (min_sync_interval) waits for announced puts and for nothing else,
 * since nobody would join a lone client's sync. Each announcement is
 * withdrawn once, just before its put or when the message is dropped.
 */
void spool_announce(struct spool *sp, const struct spool_id *id);
void spool_withdraw(struct spool *sp, const struct spool_id *id);

/*
 * fn runs on the writer thread after the done callbacks of each group commit,
 * before the writer takes its next batch: a caller that defers its work to
 * there acts once per commit. Set it before the first spool_put.
 */
typedef void (*spool_batch_end_fn)(void);
void spool_set_batch_end(struct spool *sp, spool_batch_end_fn fn);

/* Unsynced state changes, applied in the caller's thread. */
int spool_update_meta(struct spool *sp, const struct spool_id *id, const void *meta, size_t len,
		      struct tern_err *err);
int spool_remove(struct spool *sp, const struct spool_id *id, struct tern_err *err);

/*
 * Deferred unsynced changes: collected (e.g. over one event-loop iteration)
 * and handed by spool_changes_commit to each partition's writer thread, which
 * writes them, one write per partition, before its next synced write: they
 * are applied before any spool_put made after the commit is done, and a
 * group commit then syncs them too. Not thread-safe: one collector per thread.
 */
struct spool_changes;
struct spool_changes *spool_changes_new(void);
void spool_changes_free(struct spool_changes *c);
int spool_changes_update_meta(struct spool_changes *c, struct spool *sp, const struct spool_id *id,
			      const void *meta, size_t len);
int spool_changes_remove(struct spool_changes *c, struct spool *sp, const struct spool_id *id);
size_t spool_changes_pending(const struct spool_changes *c);
int spool_changes_commit(struct spool_changes *c, struct spool *sp, struct tern_err *err);

/* Read one message's data or meta into out (replacing its contents). -ENOENT when absent. */
int spool_get_data(struct spool *sp, const struct spool_id *id, struct buf *out,
		   struct tern_err *err);
int spool_get_meta(struct spool *sp, const struct spool_id *id, struct buf *out,
		   struct tern_err *err);

/*
 * Visit every message, in id order within each partition. The visitor returns 0 to go on, a
 * negative value to stop (returned by spool_scan), or SPOOL_SCAN_QUARANTINE
 * to move this entry (meta and data) into the quarantine column family
 * because it cannot be loaded. Entries whose data or meta is missing are
 * quarantined by the scan itself and logged. Progress is logged once a second
 * on large spools, and the count and rate at the end. Quarantine keys are
 * "meta:" or "data:" followed by the raw key, so that both halves of an entry
 * are kept. A read-only spool cannot move anything: such entries are logged
 * and left in place.
 */
#define SPOOL_SCAN_QUARANTINE 1
typedef int (*spool_visit_fn)(void *arg, const struct spool_id *id, const char *meta,
			      size_t meta_len, size_t data_len);
int spool_scan(struct spool *sp, spool_visit_fn visit, void *arg, struct tern_err *err);

/*
 * Counters since spool_open, for tests and metrics. A batch is one synced
 * WriteBatch (one fsync); records/batches is the group-commit factor.
 */
struct spool_stats {
	uint64_t batches;  /* synced group commits attempted */
	uint64_t records;  /* records in them */
	uint64_t requests; /* spool_put calls completed (done called) */
	uint64_t failed;   /* of those, completed with an error */
	uint64_t pending;  /* records waiting for the writer right now */
	uint64_t announced; /* puts announced and not yet withdrawn (spool_announce) */
	uint64_t refused;  /* spool_put calls refused below the floor or while recovering */
	uint64_t reopens;  /* partitions reopened after a failed write */
	bool low;          /* some partition is below its free-space floor now */
	bool broken;       /* some partition waits to be reopened after a failed write */
	uint64_t free_bytes; /* free space of the fullest partition's filesystem (UINT64_MAX: unknown) */
	uint64_t size_bytes; /* size of that same filesystem (0: unknown) */
	uint64_t kept_bytes;   /* RAM held by objects kept for first attempts (spool_keep) */
	uint64_t kept_taken;   /* kept objects taken back */
	uint64_t kept_dropped; /* kept objects freed unused: the budget was full, or the id changed */
};
void spool_stats(struct spool *sp, struct spool_stats *out);

/*
 * A copy of a message just spooled, kept in RAM for its first attempt so
 * that it need not be read back: obj (bytes of RAM, freed with free_fn) is
 * the caller's until spool_take_kept hands it back. Any change to the id's
 * records (spool_update_meta, spool_remove, their deferred forms) drops it,
 * and so does a full budget (oldest first): then the spool has the message.
 */
void spool_keep(struct spool *sp, const struct spool_id *id, void *obj, size_t bytes,
		void (*free_fn)(void *obj));
/* The object kept for id, now the caller's; NULL when none is. Thread-safe. */
void *spool_take_kept(struct spool *sp, const struct spool_id *id);

/*
 * The key-value column family "suppression" of the first partition: small
 * records that are not messages (core/suppress.c owns their format). Reads
 * work on a read-only spool; a spool created before the column family
 * existed gets it on its next writable open, and until then every call
 * fails with -ENOENT and err set.
 */
/* 0 with the value in out, -ENOENT (err untouched) when absent, other negatives with err. */
int spool_kv_get(struct spool *sp, const void *key, size_t klen, struct buf *out,
		 struct tern_err *err);
/* Puts and deletes collected, then written at once (all or none). Not thread-safe. */
struct spool_kv_batch;
struct spool_kv_batch *spool_kv_batch_new(void);
void spool_kv_batch_free(struct spool_kv_batch *b);
void spool_kv_batch_put(struct spool_kv_batch *b, const void *key, size_t klen, const void *val,
			size_t vlen);
void spool_kv_batch_delete(struct spool_kv_batch *b, const void *key, size_t klen);
size_t spool_kv_batch_count(const struct spool_kv_batch *b);
/*
 * Write and empty the batch; sync makes it, and every unsynced write before
 * it, durable. Thread-safe.
 */
int spool_kv_write(struct spool *sp, struct spool_kv_batch *b, bool sync, struct tern_err *err);
/* Visit the keys starting with prefix, in key order; a negative return stops the scan. */
typedef int (*spool_kv_visit_fn)(void *arg, const char *key, size_t klen, const char *val,
				 size_t vlen);
int spool_kv_scan(struct spool *sp, const void *prefix, size_t plen, spool_kv_visit_fn visit,
		  void *arg, struct tern_err *err);
/* RocksDB's estimate of the number of keys (0 when unknown). */
uint64_t spool_kv_estimate(struct spool *sp);

#endif
