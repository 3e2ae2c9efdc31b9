/* SPDX-License-Identifier: MIT */
/*
 * A policy's revision: what an operator greps outcome records for after a
 * deploy. In a git checkout it is the commit of the repository holding the
 * main policy file (`git rev-parse --short=12 HEAD`), with "-dirty" when a
 * loaded file differs from that commit; outside git (or without git) it is
 * "sha256:" and the first 12 hex digits of a SHA-256 over the loaded files.
 * Computed once when a policy is loaded; records copy the string's pointer.
 */
#ifndef TERN_POLICY_REVISION_H
#define TERN_POLICY_REVISION_H

#include <stddef.h>

#include "tern/util.h"

/* "sha256:" + 12 hex, or 12 hex + "-dirty", or "unknown", with room to spare. */
#define POLICY_REVISION_MAX 48
/* How long one git command may take before it is killed and the hash is used. */
#define POLICY_REVISION_GIT_TIMEOUT 5.0

/*
 * The revision of the policy whose main file is main_path and which loaded
 * files[0..n) (absolute paths, the main file among them). Never fails: a
 * policy whose files cannot be read any more is "unknown", with a warning.
 */
void policy_revision_compute(const char *main_path, char *const *files, size_t n,
			     char out[POLICY_REVISION_MAX]);
/*
 * The "sha256:" form alone. The digest covers, for each file in order of
 * its path relative to base_dir (the main file's directory; files outside
 * it by absolute path), the relative path, a NUL, the size in decimal, a
 * NUL and the content: moving the policy directory keeps the revision,
 * renaming or editing a file changes it. -errno with err when a file cannot
 * be read.
 */
int policy_revision_hash(const char *base_dir, char *const *files, size_t n,
			 char out[POLICY_REVISION_MAX], struct tern_err *err);

#endif
