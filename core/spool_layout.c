// SPDX-License-Identifier: MIT
/*
 * The spool directory's layout. One partition is the plain layout: the
 * database sits at the spool path. N > 1 partitions live in p0..p<N-1>
 * beside a PARTITIONS file that records N, fixed when the spool is created,
 * so that every message id keeps finding its partition.
 */
#include "tern/spool_layout.h"
#include "tern/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define SPOOL_PARTITIONS_FILE "PARTITIONS"

/* The partition count of the spool at path: recorded, or 1 for a plain spool, or 0 if new. */
static unsigned
stored_partitions(const char *path)
{
	char file[4096], current[4096];
	unsigned n = 0;
	FILE *f;

	snprintf(file, sizeof(file), "%s/%s", path, SPOOL_PARTITIONS_FILE);
	f = fopen(file, "r");
	if (f != NULL) {
		if (fscanf(f, "%u", &n) != 1 || n == 0 || n > SPOOL_MAX_PARTITIONS)
			n = 0;
		fclose(f);
		return n;
	}
	snprintf(current, sizeof(current), "%s/CURRENT", path);
	return access(current, F_OK) == 0 ? 1 : 0;
}

/* Synced: without it the partitions the messages live in could be forgotten by a power cut. */
static int
record_partitions(const char *path, unsigned n, struct tern_err *err)
{
	char file[4096];
	bool ok;
	FILE *f;

	snprintf(file, sizeof(file), "%s/%s", path, SPOOL_PARTITIONS_FILE);
	f = fopen(file, "w");
	if (f == NULL)
		goto fail;
	ok = fprintf(f, "%u\n", n) >= 0 && fflush(f) == 0 && fsync(fileno(f)) == 0;
	if (fclose(f) != 0 || !ok)
		goto fail;
	return 0;
fail:
	tern_err_set(err, 451, "4.3.0", "cannot write %s: %s", file, strerror(errno));
	return -EIO;
}

static int
sync_dir(const char *path, struct tern_err *err)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = fd >= 0 && fsync(fd) == 0 ? 0 : -errno;

	if (fd >= 0)
		close(fd);
	if (rc < 0)
		tern_err_set(err, 451, "4.3.0", "cannot sync directory %s: %s", path, strerror(-rc));
	return rc;
}

/*
 * RocksDB syncs the directory it keeps its files in, not the names above
 * it: the partitions file and the p<N> directories in the spool directory,
 * the spool directory in its parent. Until those directories are synced a
 * power cut may forget the names, and every message behind them.
 */
int
spool_layout_sync(const char *path, struct tern_err *err)
{
	char parent[4096];
	size_t len = (size_t)snprintf(parent, sizeof(parent), "%s", path);
	char *slash;

	while (len > 1 && parent[len - 1] == '/')
		parent[--len] = '\0';
	slash = strrchr(parent, '/');
	if (slash == NULL)
		snprintf(parent, sizeof(parent), ".");
	else if (slash == parent)
		parent[1] = '\0'; /* the root */
	else
		*slash = '\0';
	return sync_dir(path, err) < 0 ? -EIO : sync_dir(parent, err);
}

int
spool_layout_choose(const struct spool_config *cfg, unsigned *n, struct tern_err *err)
{
	unsigned want = cfg->partitions ? cfg->partitions : 1;
	unsigned have = stored_partitions(cfg->path);

	if (want > SPOOL_MAX_PARTITIONS) {
		tern_err_set(err, 451, "4.3.0", "spool %s: at most %d partitions", cfg->path,
			     SPOOL_MAX_PARTITIONS);
		return -EINVAL;
	}
	if (have == 0 && cfg->read_only) {
		tern_err_set(err, 451, "4.3.0", "cannot open spool %s: not a spool", cfg->path);
		return -ENOENT;
	}
	if (have != 0 && have != want)
		log_warn("spool", "%s was created with %u partitions; using %u, not %u", cfg->path,
			 have, have, want);
	*n = have ? have : want;
	if (have == 0 && *n > 1)
		return record_partitions(cfg->path, *n, err);
	return 0;
}
