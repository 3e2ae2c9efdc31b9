// SPDX-License-Identifier: MIT
/*
 * `tern policy ...`: work on a policy offline, as a policy repository's CI
 * does. Each subcommand runs the policy inside the real runtime by running
 * ternd (found next to tern, or $TERND): `check` is `ternd --check`, and
 * `test` runs each *_test.lua file in its own `ternd --script` process, so
 * that one test file's policy (its init, its loaded modules) cannot leak
 * into the next. tern.testing prints one line per test; this file adds the
 * files' counts into the closing `N passed, N failed`.
 */
#include "tern/cli.h"
#include "tern/util.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CLI_POLICY_MAX_FILES 1024
#define CHECK_USAGE "policy check FILE                       validate as ternd --check does"
#define EXPLAIN_USAGE "policy explain --policy FILE --domain D [...]  the effective decisions for D"
#define DIFF_USAGE "policy diff [--policy FILE] REV1 [REV2]  what changes between two revisions"
#define TEST_USAGE "policy test [--policy FILE] [PATH...]  run *_test.lua (default: POLICY_DIR/tests)"

struct cli_policy_cmd {
	const char *name;
	int (*main)(int argc, char **argv);
	const char *usage;
};

static int policy_check_main(int argc, char **argv);
static int policy_test_main(int argc, char **argv);

/* One line per subcommand: a new one is one more entry. */
static const struct cli_policy_cmd cmds[] = {
	{"check", policy_check_main, CHECK_USAGE},
	{"test", policy_test_main, TEST_USAGE},
	{"explain", cli_review_explain_main, EXPLAIN_USAGE},
	{"diff", cli_review_diff_main, DIFF_USAGE},
};

void
cli_policy_ternd_path(char *out, size_t n)
{
	const char *env = getenv("TERND");
	char exe[PATH_MAX + 8];

	if (env && *env) {
		snprintf(out, n, "%s", env);
		return;
	}
	if (util_exe_dir(exe, PATH_MAX) == 0) {
		strcat(exe, "/ternd");
		if (access(exe, X_OK) == 0) {
			snprintf(out, n, "%s", exe);
			return;
		}
	}
	snprintf(out, n, "ternd");
}

/* The exit status of a child, or 128+signal, as a shell reports it. */
static int
child_status(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return 127;
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + WTERMSIG(st);
}

static void
exec_ternd(char **argv)
{
	char ternd[PATH_MAX];

	cli_policy_ternd_path(ternd, sizeof(ternd));
	argv[0] = ternd;
	execvp(ternd, argv);
	fprintf(stderr, "tern: cannot run %s: %s (set TERND to ternd's path)\n", ternd,
		strerror(errno));
	_exit(127);
}

static int
policy_check_main(int argc, char **argv)
{
	char *args[] = {NULL, "--check", "--log-level", "error", "--policy", NULL, NULL};
	pid_t pid;

	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: tern %s\n", CHECK_USAGE);
		return 2;
	}
	args[5] = argv[1];
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "tern: fork: %s\n", strerror(errno));
		return 2;
	}
	if (pid == 0)
		exec_ternd(args);
	return child_status(pid);
}

/* ---- tern policy test ---- */

struct test_run {
	const char *policy; /* as given, or NULL */
	char *files[CLI_POLICY_MAX_FILES];
	size_t n_files;
	unsigned passed, failed;
};

static bool
is_test_file(const char *name)
{
	size_t n = strlen(name);

	return n > 9 && strcmp(name + n - 9, "_test.lua") == 0;
}

static int
add_file(struct test_run *r, const char *path)
{
	if (r->n_files == CLI_POLICY_MAX_FILES) {
		fprintf(stderr, "tern: more than %d test files\n", CLI_POLICY_MAX_FILES);
		return -ENOSPC;
	}
	r->files[r->n_files] = strdup(path);
	if (r->files[r->n_files] == NULL)
		return -ENOMEM;
	r->n_files++;
	return 0;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A directory's *_test.lua files in name order (not recursive), or a file named as such. */
static int
add_path(struct test_run *r, const char *path)
{
	struct dirent *de;
	struct stat st;
	size_t first = r->n_files;
	char buf[PATH_MAX];
	DIR *d;
	int rc = 0;

	if (stat(path, &st) < 0) {
		fprintf(stderr, "tern: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	if (!S_ISDIR(st.st_mode))
		return add_file(r, path);
	if ((d = opendir(path)) == NULL) {
		fprintf(stderr, "tern: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (!is_test_file(de->d_name))
			continue;
		snprintf(buf, sizeof(buf), "%s/%s", path, de->d_name);
		rc = add_file(r, buf);
	}
	closedir(d);
	qsort(r->files + first, r->n_files - first, sizeof(r->files[0]), cmp_str);
	return rc;
}

/* Pass the child's lines through, counting tern.testing's `ok`/`not ok` lines. */
static void
relay_output(FILE *in, unsigned *passed, unsigned *failed)
{
	char line[4096];

	while (fgets(line, sizeof(line), in)) {
		if (strncmp(line, "ok ", 3) == 0)
			(*passed)++;
		else if (strncmp(line, "not ok ", 7) == 0)
			(*failed)++;
		fputs(line, stdout);
	}
	fflush(stdout);
}

static void
run_test_child(const struct test_run *r, const char *file, int out)
{
	char *args[] = {NULL, "--threads", "1", "--log-level", "error", "--script", (char *)file,
			NULL};

	dup2(out, STDOUT_FILENO);
	close(out);
	setenv("TERN_POLICY_TEST", "1", 1);
	if (r->policy)
		setenv("TERN_POLICY", r->policy, 1);
	exec_ternd(args);
}

/* One test file in its own ternd. A file that dies outside any test counts as one failure. */
static void
run_test_file(struct test_run *r, const char *file)
{
	unsigned passed = 0, failed = 0;
	int fds[2], status;
	FILE *in;
	pid_t pid;

	fflush(stdout);
	if (pipe(fds) < 0 || (pid = fork()) < 0) {
		printf("not ok - %s: cannot start ternd: %s\n", file, strerror(errno));
		r->failed++;
		return;
	}
	if (pid == 0) {
		close(fds[0]);
		run_test_child(r, file, fds[1]);
	}
	close(fds[1]);
	in = fdopen(fds[0], "r");
	if (in) {
		relay_output(in, &passed, &failed);
		fclose(in);
	} else {
		close(fds[0]);
	}
	status = child_status(pid);
	if (status != 0 && failed == 0) {
		printf("not ok - %s: ternd exited with status %d (its error is above)\n", file, status);
		failed++;
	}
	r->passed += passed;
	r->failed += failed;
}

/*
 * tests/ in the policy's directory, or ./tests. Paths stay as the user gave
 * them (relative to the same working directory for ternd): Lua shortens long
 * chunk names in its error messages, and CI logs read best relative anyway.
 */
static int
default_tests_dir(struct test_run *r)
{
	const char *slash = r->policy ? strrchr(r->policy, '/') : NULL;
	char dir[PATH_MAX];

	if (slash == NULL)
		return add_path(r, "tests");
	snprintf(dir, sizeof(dir), "%.*s/tests", (int)(slash - r->policy), r->policy);
	return add_path(r, dir);
}

static int
parse_test_args(struct test_run *r, int argc, char **argv)
{
	bool paths = false;
	int i, rc = 0;

	for (i = 1; i < argc && rc == 0; i++) {
		if (strcmp(argv[i], "--policy") == 0 && i + 1 < argc) {
			r->policy = argv[++i];
			if (access(r->policy, R_OK) < 0) {
				fprintf(stderr, "tern: %s: %s\n", r->policy, strerror(errno));
				return -errno;
			}
		} else if (argv[i][0] == '-') {
			fprintf(stderr, "usage: tern %s\n", TEST_USAGE);
			return -EINVAL;
		} else {
			paths = true;
			rc = add_path(r, argv[i]);
		}
	}
	if (rc == 0 && !paths)
		rc = default_tests_dir(r);
	return rc;
}

static int
policy_test_main(int argc, char **argv)
{
	struct test_run r;
	size_t i;
	int rc;

	memset(&r, 0, sizeof(r));
	rc = parse_test_args(&r, argc, argv);
	if (rc == 0 && r.n_files == 0) {
		fprintf(stderr, "tern: no *_test.lua files found\n");
		rc = -ENOENT;
	}
	for (i = 0; rc == 0 && i < r.n_files; i++)
		run_test_file(&r, r.files[i]);
	for (i = 0; i < r.n_files; i++) {
		free(r.files[i]); r.files[i] = NULL;
	}
	if (rc < 0)
		return 2;
	printf("%u passed, %u failed\n", r.passed, r.failed);
	return r.failed ? 1 : 0;
}

static int
usage(FILE *out)
{
	size_t i;

	fprintf(out, "usage:\n");
	for (i = 0; i < TERN_ARRAY_LEN(cmds); i++)
		fprintf(out, "  tern %s\n", cmds[i].usage);
	return out == stdout ? 0 : 2;
}

int
cli_policy_main(int argc, char **argv)
{
	size_t i;

	if (argc < 2)
		return usage(stderr);
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0)
		return usage(stdout);
	for (i = 0; i < TERN_ARRAY_LEN(cmds); i++)
		if (strcmp(argv[1], cmds[i].name) == 0)
			return cmds[i].main(argc - 1, argv + 1);
	fprintf(stderr, "tern policy: unknown command '%s'\n", argv[1]);
	return usage(stderr);
}
