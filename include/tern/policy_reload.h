/* SPDX-License-Identifier: MIT */
/*
 * Hot reload (core/policy_reload.c): build a new policy epoch on every shard,
 * validate it completely, then swap each shard to it at a loop boundary.
 * A reload that fails changes nothing; the running epoch keeps serving.
 */
#ifndef TERN_POLICY_RELOAD_H
#define TERN_POLICY_RELOAD_H

#include <stdint.h>

#include "tern/policy.h"

/*
 * Reload opts' policy into every running shard. Main thread only, with the
 * shards running. Logs one line either way; -EINVAL with err when refused.
 * Answers the reload requests (daemon.h) that were waiting when it began.
 */
int policy_reload(const struct policy_options *opts, struct tern_err *err);
/* The number of the current epoch: 1 at start, one more for each reload that succeeded. */
uint64_t policy_epoch(void);
/* Make rev the revision records carry; the string is kept for the life of the process. */
const char *policy_publish_revision(const char *rev);
/* Close the epochs shard s retired (its loop has ended). */
void policy_epoch_free_retired(struct shard *s);

#endif
