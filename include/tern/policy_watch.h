/* SPDX-License-Identifier: MIT */
/*
 * ternd --watch (core/policy_watch.c): a thread watches the policy files
 * actually loaded (inotify on their directories, filtered by name) and asks
 * for a reload with SIGHUP once they have been quiet for a moment, so that
 * an editor's or a deploy's burst of writes makes one reload.
 */
#ifndef TERN_POLICY_WATCH_H
#define TERN_POLICY_WATCH_H

#include <stddef.h>

#include "tern/util.h"

/* Quiet time after the last change before the reload. */
#define POLICY_WATCH_DEBOUNCE 0.2

/* Watch these files from now on (copied); the set each load or reload produced. */
void policy_watch_set_files(char *const *files, size_t n);
int policy_watch_start(struct tern_err *err);
/* Stop the thread (no-op when it never started). */
void policy_watch_stop(void);

#endif
