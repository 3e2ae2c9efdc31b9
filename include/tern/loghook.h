/* SPDX-License-Identifier: MIT */
/*
 * Log hooks: stream outcome records out of the box from the local log
 * segments (tern.configure_log_hook), never through the mail queues.
 *
 * A hook follows the segments of configure_local_logs (the ".open" one as it
 * grows, then its rename, then the next) on shard 0, hands batches of up to
 * batch_size records (after at most max_latency) to the policy's deliver
 * function, and advances a durable cursor (segment, offset) only when
 * deliver returns true. On failure the same records are offered again after
 * a growing delay. The cursor is a small file per hook in the log directory
 * (".loghook-NAME.cursor", written with fsync and rename), so a restart
 * resumes where the last acknowledged batch ended: delivery is at least
 * once, and duplicates are limited to a batch in flight at a crash or an
 * outage. Reading is bounded per loop turn and never blocks the shards that
 * write the records, so a slow hook falls behind instead of slowing mail;
 * its lag is published as metrics and as a warning line.
 *
 * The deliver function is the policy's handler for the event
 * LOGHOOK_EVENT_PREFIX NAME (registered by the binding), so a reloaded
 * policy brings its own deliver and the cursor carries on.
 */
#ifndef TERN_LOGHOOK_H
#define TERN_LOGHOOK_H

#include <stdbool.h>
#include <stddef.h>

#include "tern/util.h"

#define LOGHOOK_EVENT_PREFIX "log_hook:"
#define LOGHOOK_NAME_MAX 64
#define LOGHOOK_TYPES_MAX 16
#define LOGHOOK_DEFAULT_BATCH 100
#define LOGHOOK_DEFAULT_LATENCY 1.0
/* Segment base names ("YYYYMMDD-HHMMSS.ssssss.jsonl") fit in this. */
#define LOGHOOK_SEGMENT_MAX 96

struct loghook_config {
	const char *name;		      /* [A-Za-z0-9_.-], at most LOGHOOK_NAME_MAX - 1 */
	const char *types[LOGHOOK_TYPES_MAX]; /* record types wanted; none = every type */
	size_t n_types;
	size_t batch_size;  /* >= 1 */
	double max_latency; /* seconds, > 0 */
};

/* Whether name may name a hook (it becomes part of a file name). */
bool loghook_name_valid(const char *name);
/*
 * Add a hook, or update the options of the hook of that name (a reloaded
 * policy configures its hooks again). Thread-safe; the hook starts on shard 0
 * once the local logs are open. -EINVAL/-ENOSPC with err.
 */
int loghook_configure(const struct loghook_config *c, struct tern_err *err);
/*
 * The oldest segment some hook still needs, for retention: out gets its base
 * name ("" when a hook has not read anything yet, so every segment is
 * needed); every later segment is needed too. False when no hook is
 * configured. Thread-safe.
 */
bool loghook_oldest_needed(char *out, size_t n);

#endif
