// SPDX-License-Identifier: MIT
/*
 * The health of a spool partition's device. The writer keeps new messages
 * off the filesystem below a free-space floor, so that removals and
 * RocksDB's own flushes still find room; and when a write fails anyway,
 * RocksDB stops the database (a WAL with a torn record cannot take more),
 * so the partition refuses messages until its writer has reopened it.
 * RocksDB 7 has no way back from a failed WAL write but closing and opening
 * the database (its Resume() answers Busy); a failed open is retried at the
 * next check and logged once per run of failures.
 */
#include "tern/spool_health.h"
#include "tern/log.h"
#include "tern/spool.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

int
spool_floor_parse(const char *s, struct spool_floor *out)
{
	char *end;
	double pct;

	*out = (struct spool_floor){0, 0};
	if (s == NULL || *s == '\0')
		return -EINVAL;
	if (s[strlen(s) - 1] != '%')
		return util_parse_size(s, &out->amount);
	pct = strtod(s, &end);
	if (end == s || *end != '%' || !(pct >= 0 && pct < 100))
		return -EINVAL;
	out->percent = pct;
	return 0;
}

void
spool_health_init(struct spool_health *h, const char *path, const struct spool_floor *space,
		  const struct spool_floor *inodes)
{
	memset(h, 0, sizeof(*h));
	h->path = path;
	h->floor_space = *space;
	h->floor_inodes = *inodes;
}

static bool
floor_reached(const struct spool_floor *f, uint64_t avail, uint64_t total)
{
	if (f->percent > 0)
		return (double)avail < f->percent / 100.0 * (double)total;
	return avail < f->amount;
}

void
spool_health_check_space(struct spool_health *h)
{
	struct statvfs st;
	bool low;

	if (statvfs(h->path, &st) < 0)
		return;
	low = floor_reached(&h->floor_space, (uint64_t)st.f_bavail * st.f_frsize,
			    (uint64_t)st.f_blocks * st.f_frsize) ||
	      (st.f_files > 0 && floor_reached(&h->floor_inodes, st.f_favail, st.f_files));
	if (low && !atomic_load(&h->low))
		log_warn("spool",
			 "%s: free space below the floor (%llu bytes, %llu inodes "
			 "free): refusing new messages until there is room",
			 h->path, (unsigned long long)st.f_bavail * st.f_frsize,
			 (unsigned long long)st.f_favail);
	else if (!low && atomic_load(&h->low))
		log_info("spool", "%s: free space above the floor again: accepting messages",
			 h->path);
	atomic_store(&h->low, low);
}

bool
spool_health_refusing(struct spool_health *h, struct tern_err *err)
{
	if (atomic_load(&h->broken)) {
		tern_err_set(err, 452, "4.3.1",
			     "Insufficient system storage (spool recovering from a failed write)");
	} else if (atomic_load(&h->low)) {
		tern_err_set(err, 452, "4.3.1", "Insufficient system storage");
	} else {
		return false;
	}
	atomic_fetch_add(&h->refused, 1);
	return true;
}

void
spool_health_write_failed(struct spool_health *h, const char *what, const char *why)
{
	if (!atomic_exchange(&h->broken, true))
		log_error("spool",
			  "%s: %s failed (%s): refusing new messages until the spool is "
			  "reopened",
			  h->path, what, why);
}

bool
spool_health_broken(struct spool_health *h)
{
	return atomic_load(&h->broken);
}

bool
spool_health_tick(struct spool_health *h, bool writing)
{
	double now = util_now();

	if (!writing && now < h->next_check)
		return false;
	h->next_check = now + SPOOL_HEALTH_CHECK_INTERVAL;
	spool_health_check_space(h);
	return atomic_load(&h->broken) && !atomic_load(&h->low);
}

void
spool_health_reopened(struct spool_health *h, int rc, const struct tern_err *err)
{
	if (rc < 0) {
		if (!h->reopen_failing)
			log_error("spool", "%s (retrying every %.0fs)", err->msg,
				  SPOOL_HEALTH_CHECK_INTERVAL);
		h->reopen_failing = true;
		return;
	}
	h->reopen_failing = false;
	atomic_fetch_add(&h->reopens, 1);
	atomic_store(&h->broken, false);
	log_info("spool", "%s reopened after a failed write: accepting messages", h->path);
}

void
spool_health_stats(struct spool_health *h, struct spool_stats *out)
{
	struct statvfs st;

	out->refused = atomic_load(&h->refused);
	out->reopens = atomic_load(&h->reopens);
	out->low = atomic_load(&h->low);
	out->broken = atomic_load(&h->broken);
	if (statvfs(h->path, &st) == 0) {
		out->free_bytes = (uint64_t)st.f_bavail * st.f_frsize;
		out->size_bytes = (uint64_t)st.f_blocks * st.f_frsize;
	} else {
		out->free_bytes = UINT64_MAX;
		out->size_bytes = 0;
	}
}
