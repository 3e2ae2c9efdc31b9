/* SPDX-License-Identifier: MIT */
/*
 * The health of one spool partition's device: whether its filesystem is
 * below a free-space floor, and whether a failed write has stopped its
 * database until the writer reopens it. A full disk must cost 4xx replies,
 * never the process: spool.c asks here before it queues a message and on
 * every turn of its writer; the RocksDB reopen itself stays in spool.c,
 * which owns the handles.
 */
#ifndef TERN_SPOOL_HEALTH_H
#define TERN_SPOOL_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

#include "tern/util.h"

/* Seconds between the writer's checks of free space (and reopen attempts) when idle. */
#define SPOOL_HEALTH_CHECK_INTERVAL 1.0

/*
 * A free-space floor on the spool's filesystem: a share of the total when
 * percent > 0, else an absolute amount (bytes, or inodes); zero means none.
 */
struct spool_floor {
	double percent;
	uint64_t amount;
};

/* Parse "5%" (of the total) or an amount ("200M" for bytes, "10000" for inodes). */
int spool_floor_parse(const char *s, struct spool_floor *out);

/* Embedded in a partition. The atomics are read by every shard, written by the writer. */
struct spool_health {
	const char *path; /* the partition's directory (owned by the partition) */
	struct spool_floor floor_space;
	struct spool_floor floor_inodes;
	_Atomic bool low;    /* below a free-space floor at the last check */
	_Atomic bool broken; /* a write failed: reopen before writing again */
	bool reopen_failing; /* writer only: the last reopen failed (log once per run) */
	double next_check;   /* writer only: util_now() of the next idle check */
	_Atomic uint64_t refused;
	_Atomic uint64_t reopens;
};

struct spool_stats;

void spool_health_init(struct spool_health *h, const char *path, const struct spool_floor *space,
		       const struct spool_floor *inodes);
/* Compare the filesystem with the floors; log only the changes. */
void spool_health_check_space(struct spool_health *h);
/* New messages must wait (below the floor, or a failed write not yet recovered): err says why. */
bool spool_health_refusing(struct spool_health *h, struct tern_err *err);
/* A write failed and RocksDB refuses every write from now on: what failed, and why. */
void spool_health_write_failed(struct spool_health *h, const char *what, const char *why);
/* A failed write waits for the reopen. */
bool spool_health_broken(struct spool_health *h);
/*
 * On the writer, before each batch (writing) and once a check interval:
 * look at the disk; true when the partition must be reopened now (broken,
 * and there is room again). Report the reopen's result (0 or the error in
 * err) with spool_health_reopened.
 */
bool spool_health_tick(struct spool_health *h, bool writing);
void spool_health_reopened(struct spool_health *h, int rc, const struct tern_err *err);
/* Fill the health fields of out: refused, reopens, low, broken, free_bytes, size_bytes. */
void spool_health_stats(struct spool_health *h, struct spool_stats *out);

#endif
