/* SPDX-License-Identifier: MIT */
/*
 * The recovery scan of one spool partition (spool_scan.c). spool.c owns the
 * database and lends its handles for the scan.
 */
#ifndef TERN_SPOOL_SCAN_H
#define TERN_SPOOL_SCAN_H

#include <stdbool.h>

#include <rocksdb/c.h>

#include "tern/spool.h"

struct spool_scan_handles {
	rocksdb_t *db;
	rocksdb_column_family_handle_t *meta;
	rocksdb_column_family_handle_t *data;
	rocksdb_column_family_handle_t *quarantine;
	rocksdb_readoptions_t *ro; /* bulk: bypasses the block cache */
	rocksdb_writeoptions_t *wo; /* unsynced: a quarantine move is redone if lost */
	bool read_only;
};

/*
 * Visit every whole message of the partition, quarantining what cannot be
 * loaded, and log the totals. Returns 0, the visitor's negative value, or
 * negative with err on a RocksDB error.
 */
int spool_scan_partition(const struct spool_scan_handles *h, spool_visit_fn visit, void *arg,
			 struct tern_err *err);

#endif
