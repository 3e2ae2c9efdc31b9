// SPDX-License-Identifier: MIT
/*
 * Dropping root: setgroups, then setgid, then setuid, in that order because
 * each earlier step needs the privilege the later one gives up. Saved ids go
 * too (setuid as root sets all three), and a final setuid(0) that succeeds
 * means the drop did not hold: better to stop than to serve as root.
 */
#include "tern/privdrop.h"
#include "tern/log.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Filled at start-up by privdrop_lookup(), on the main thread only. */
static struct {
	bool wanted;
	uid_t uid;
	gid_t gid;
	char name[64];
} target;

int
privdrop_check_root(const char *user, bool allow_root, struct tern_err *err)
{
	if (geteuid() != 0 || user != NULL || allow_root)
		return 0;
	tern_err_set(err, 0, "",
		     "ternd: refusing to run as root: use --user NAME to drop to that user "
		     "after opening the listeners, or --allow-root (or TERN_ALLOW_ROOT=1) "
		     "where root is already confined, as in a container");
	return -EPERM;
}

int
privdrop_lookup(const char *user, struct tern_err *err)
{
	struct passwd *pw;

	errno = 0;
	pw = getpwnam(user);
	if (pw == NULL) {
		tern_err_set(err, 0, "", "ternd: --user %s: %s", user,
			     errno ? strerror(errno) : "no such user");
		return -ENOENT;
	}
	if (pw->pw_uid == 0) {
		tern_err_set(err, 0, "", "ternd: --user %s is root: name an unprivileged user",
			     user);
		return -EINVAL;
	}
	target.wanted = true;
	target.uid = pw->pw_uid;
	target.gid = pw->pw_gid;
	snprintf(target.name, sizeof(target.name), "%s", user);
	return 0;
}

static int
privdrop_fail(struct tern_err *err, const char *step)
{
	int e = errno;

	tern_err_set(err, 0, "", "ternd: cannot become user %s (%s): %s", target.name, step,
		     strerror(e));
	return -e;
}

int
privdrop_drop(struct tern_err *err)
{
	if (!target.wanted || (geteuid() != 0 && getuid() == target.uid))
		return 0; /* already the user, as under systemd's User= */
	if (geteuid() != 0) {
		tern_err_set(err, 0, "", "ternd: --user %s needs ternd to be started as root",
			     target.name);
		return -EPERM;
	}
	if (setgroups(0, NULL) < 0)
		return privdrop_fail(err, "setgroups");
	if (setgid(target.gid) < 0)
		return privdrop_fail(err, "setgid");
	if (setuid(target.uid) < 0)
		return privdrop_fail(err, "setuid");
	if (setuid(0) == 0 || setgid(0) == 0 || geteuid() != target.uid ||
	    getegid() != target.gid) {
		tern_err_set(err, 0, "", "ternd: root could be regained after becoming %s",
			     target.name);
		return -EPERM;
	}
	log_info("ternd", "running as user %s (uid %u, gid %u)", target.name, (unsigned)target.uid,
		 (unsigned)target.gid);
	return 0;
}
