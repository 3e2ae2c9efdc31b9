/* SPDX-License-Identifier: MIT */
/*
 * A scratch directory for a fuzz target's files (a spool, log segments),
 * made once per process and removed, with everything in it, at exit.
 */
#ifndef FUZZ_TMPDIR_H
#define FUZZ_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char fuzz_tmpdir[64];

static int
fuzz_tmpdir_unlink(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	remove(path);
	return 0;
}

static void
fuzz_tmpdir_remove(void)
{
	nftw(fuzz_tmpdir, fuzz_tmpdir_unlink, 16, FTW_DEPTH | FTW_PHYS);
}

/* Make /tmp/NAME.XXXXXX; returns its path, or aborts. */
static const char *
fuzz_tmpdir_make(const char *name)
{
	snprintf(fuzz_tmpdir, sizeof(fuzz_tmpdir), "/tmp/%s.XXXXXX", name);
	if (mkdtemp(fuzz_tmpdir) == NULL) {
		perror("mkdtemp");
		abort();
	}
	atexit(fuzz_tmpdir_remove);
	return fuzz_tmpdir;
}

#endif
