/* SPDX-License-Identifier: MIT */
/* The spool directory's layout: its partition count on disk (spool_layout.c). */
#ifndef TERN_SPOOL_LAYOUT_H
#define TERN_SPOOL_LAYOUT_H

#include "tern/spool.h"

/*
 * How many partitions to open into *n: what the spool at cfg->path was
 * created with, else cfg->partitions (recorded, synced, for a new spool).
 */
int spool_layout_choose(const struct spool_config *cfg, unsigned *n, struct tern_err *err);

/*
 * Sync the spool directory and its parent: RocksDB syncs only the directory
 * its own files are in, so the names above them could be lost to a power cut.
 */
int spool_layout_sync(const char *path, struct tern_err *err);

#endif
