// SPDX-License-Identifier: MIT
/*
 * Naming the revision of a loaded policy. git is asked rather than read
 * (packed refs, worktrees and object formats are git's business), through
 * posix_spawn with a deadline so that a hung filesystem or a huge repository
 * cannot hold up a start: git that fails, is missing or is too slow leaves
 * the content hash, which needs nothing but the files themselves.
 */
#include "tern/policy_revision.h"
#include "tern/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#define REVISION_HEX_DIGITS 12

extern char **environ;

static void
dir_of(const char *path, char *out, size_t n)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		snprintf(out, n, ".");
	else
		snprintf(out, n, "%.*s", (int)(slash - path), path);
}

/* path relative to dir when it lies below it, else path itself. */
static const char *
relative_to(const char *dir, const char *path)
{
	size_t len = strlen(dir);

	if (strncmp(path, dir, len) == 0 && path[len] == '/')
		return path + len + 1;
	return path;
}

/* ---- the content hash ---- */

struct hashed_file {
	const char *rel;
	const char *path;
};

static int
cmp_rel(const void *a, const void *b)
{
	return strcmp(((const struct hashed_file *)a)->rel, ((const struct hashed_file *)b)->rel);
}

static int
hash_file(EVP_MD_CTX *md, const struct hashed_file *f, struct tern_err *err)
{
	char chunk[65536], size[32];
	struct stat st;
	ssize_t got;
	int fd = open(f->path, O_RDONLY | O_CLOEXEC), rc = 0;

	if (fd < 0 || fstat(fd, &st) < 0) {
		rc = -errno;
		tern_err_set(err, 0, "", "%s: %s", f->path, strerror(errno));
		goto done;
	}
	snprintf(size, sizeof(size), "%lld", (long long)st.st_size);
	EVP_DigestUpdate(md, f->rel, strlen(f->rel) + 1);
	EVP_DigestUpdate(md, size, strlen(size) + 1);
	while ((got = read(fd, chunk, sizeof(chunk))) > 0)
		EVP_DigestUpdate(md, chunk, (size_t)got);
	if (got < 0) {
		rc = -errno;
		tern_err_set(err, 0, "", "%s: %s", f->path, strerror(errno));
	}
done:
	if (fd >= 0)
		close(fd);
	return rc;
}

static int
hash_sorted(struct hashed_file *hf, size_t n, char out[POLICY_REVISION_MAX], struct tern_err *err)
{
	unsigned char digest[EVP_MAX_MD_SIZE];
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	size_t i;
	int rc = 0;

	if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		tern_err_set(err, 0, "", "cannot start a SHA-256 digest");
		rc = -ENOMEM;
		goto done;
	}
	for (i = 0; i < n && rc == 0; i++)
		rc = hash_file(md, &hf[i], err);
	if (rc == 0 && EVP_DigestFinal_ex(md, digest, NULL) != 1) {
		tern_err_set(err, 0, "", "cannot finish a SHA-256 digest");
		rc = -EIO;
	}
	if (rc == 0) {
		strcpy(out, "sha256:");
		for (i = 0; i < REVISION_HEX_DIGITS / 2; i++)
			snprintf(out + 7 + 2 * i, 3, "%02x", digest[i]);
	}
done:
	EVP_MD_CTX_free(md);
	return rc;
}

int
policy_revision_hash(const char *base_dir, char *const *files, size_t n,
		     char out[POLICY_REVISION_MAX], struct tern_err *err)
{
	struct hashed_file *hf = calloc(n ? n : 1, sizeof(*hf));
	size_t i;
	int rc;

	if (hf == NULL) {
		tern_err_set(err, 0, "", "out of memory");
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		hf[i].path = files[i];
		hf[i].rel = relative_to(base_dir, files[i]);
	}
	qsort(hf, n, sizeof(*hf), cmp_rel);
	rc = hash_sorted(hf, n, out, err);
	free(hf);
	return rc;
}

/* ---- asking git ---- */

static pid_t
git_spawn(const char *dir, const char *const *args, size_t nargs, int out_fd)
{
	posix_spawn_file_actions_t fa;
	const char **argv = calloc(nargs + 5, sizeof(*argv));
	pid_t pid = -1;

	if (argv == NULL)
		return -1;
	argv[0] = "git";
	argv[1] = "-C";
	argv[2] = dir;
	argv[3] = "--no-optional-locks";
	memcpy(argv + 4, args, nargs * sizeof(*args));
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	if (posix_spawnp(&pid, "git", &fa, NULL, (char *const *)argv, environ) != 0)
		pid = -1;
	posix_spawn_file_actions_destroy(&fa);
	free(argv);
	return pid;
}

/* Read fd to its end into out; false when the deadline passed first. */
static bool
read_until(int fd, double deadline, struct buf *out)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	char chunk[4096];
	ssize_t got;

	for (;;) {
		double left = deadline - util_now();

		if (left <= 0)
			return false;
		if (poll(&pfd, 1, (int)(left * 1000) + 1) < 0 && errno != EINTR)
			return false;
		got = read(fd, chunk, sizeof(chunk));
		if (got == 0)
			return true;
		if (got < 0 && errno != EINTR && errno != EAGAIN)
			return false;
		if (got > 0 && buf_append(out, chunk, (size_t)got) < 0)
			return false;
	}
}

/* Run `git -C dir args...`; its exit status with its output in out, or -1. */
static int
git_run(const char *dir, const char *const *args, size_t nargs, struct buf *out)
{
	int pipefd[2], status;
	pid_t pid;
	bool read_all;

	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -1;
	pid = git_spawn(dir, args, nargs, pipefd[1]);
	close(pipefd[1]);
	read_all = pid > 0 && read_until(pipefd[0], util_now() + POLICY_REVISION_GIT_TIMEOUT, out);
	close(pipefd[0]);
	if (pid <= 0)
		return -1;
	if (!read_all)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (!read_all || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/*
 * Does any loaded file differ from HEAD? A file outside the work tree (a
 * module from elsewhere on package.path) is not in the commit, so it counts
 * as a difference, and so does a status git cannot give.
 */
static bool
git_dirty(const char *dir, const char *top, char *const *files, size_t n)
{
	static const char *const head[] = {"status", "--porcelain", "--untracked-files=all",
					   "--ignored", "--"};
	const size_t nhead = TERN_ARRAY_LEN(head);
	const char **args = calloc(nhead + n, sizeof(*args));
	struct buf o;
	size_t i;
	bool dirty = args == NULL;

	for (i = 0; i < n && !dirty; i++)
		dirty = relative_to(top, files[i]) == files[i];
	if (!dirty) {
		memcpy(args, head, sizeof(head));
		memcpy(args + nhead, files, n * sizeof(*files));
		buf_init(&o);
		dirty = git_run(dir, args, nhead + n, &o) != 0 || o.len > 0;
		buf_deinit(&o);
	}
	free(args);
	return dirty;
}

/* 0 with the commit (and -dirty) in out, or -1 when dir is not in a git checkout. */
static int
git_revision(const char *dir, char *const *files, size_t n, char out[POLICY_REVISION_MAX])
{
	/* --short=12: REVISION_HEX_DIGITS, as the hash form */
	static const char *const args[] = {"rev-parse", "--show-toplevel", "--short=12", "HEAD"};
	char top[PATH_MAX], commit[POLICY_REVISION_MAX];
	struct buf o;
	int rc = -1;

	buf_init(&o);
	if (git_run(dir, args, TERN_ARRAY_LEN(args), &o) == 0 && o.data != NULL &&
	    sscanf(o.data, "%4095[^\n]\n%40[0-9a-f]", top, commit) == 2) {
		snprintf(out, POLICY_REVISION_MAX, "%s%s", commit,
			 git_dirty(dir, top, files, n) ? "-dirty" : "");
		rc = 0;
	}
	buf_deinit(&o);
	return rc;
}

void
policy_revision_compute(const char *main_path, char *const *files, size_t n,
			char out[POLICY_REVISION_MAX])
{
	char real[PATH_MAX], dir[PATH_MAX];
	struct tern_err err;

	if (realpath(main_path, real) == NULL)
		snprintf(real, sizeof(real), "%s", main_path);
	dir_of(real, dir, sizeof(dir));
	if (git_revision(dir, files, n, out) == 0)
		return;
	tern_err_clear(&err);
	if (policy_revision_hash(dir, files, n, out, &err) < 0) {
		log_warn("policy", "policy revision unknown: %s", err.msg);
		snprintf(out, POLICY_REVISION_MAX, "unknown");
	}
}
