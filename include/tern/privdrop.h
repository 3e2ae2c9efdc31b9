/* SPDX-License-Identifier: MIT */
/*
 * Running without root. ternd started as root opens what needs root (ports
 * below 1024, keys only root may read), then becomes an ordinary user for
 * good before any policy hook but `init` runs: supplementary groups cleared,
 * group and user set, and a check that root cannot be taken back. Root
 * without a user to become is refused unless explicitly allowed (containers,
 * where root is already confined).
 */
#ifndef TERN_PRIVDROP_H
#define TERN_PRIVDROP_H

#include "tern/util.h"

/* Whether a daemon running as this process may proceed; err says why not and what to do. */
int privdrop_check_root(const char *user, bool allow_root, struct tern_err *err);
/* Look user up now (before anything is opened) so a typo fails at once. */
int privdrop_lookup(const char *user, struct tern_err *err);
/* Become the user privdrop_lookup() found; nothing to do when already that user. */
int privdrop_drop(struct tern_err *err);

#endif
