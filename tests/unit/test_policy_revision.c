// SPDX-License-Identifier: MIT
/*
 * Policy revisions: the "sha256:" form is 12 hex digits of a digest over
 * relative names and contents (independent of where the policy lives and
 * of the order files were loaded in, changed by an edit or a rename); a
 * policy outside git gets it; one in a git checkout gets the short commit,
 * "-dirty" once a loaded file differs from it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tern/policy_revision.h"

#include "support.h"

struct fixture {
	char dir[64];
	char a[PATH_MAX], b[PATH_MAX];
	char *files[2];
};

static void
write_file(const char *path, const char *src)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	assert_true(fputs(src, fp) >= 0);
	fclose(fp);
}

/* A policy directory with a.lua and sub/b.lua, both loaded. */
static void
make_policy(struct fixture *f, const char *dir)
{
	char sub[PATH_MAX];

	snprintf(sub, sizeof(sub), "%s/sub", dir);
	assert_int_equal(mkdir(sub, 0755), 0);
	snprintf(f->a, sizeof(f->a), "%s/a.lua", dir);
	snprintf(f->b, sizeof(f->b), "%s/sub/b.lua", dir);
	write_file(f->a, "return 1\n");
	write_file(f->b, "x\n");
	f->files[0] = f->a;
	f->files[1] = f->b;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/test_policy_revision.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	make_policy(f, f->dir);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	support_rm_rf(f->dir);
	free(f);
	return 0;
}

static void
hash(const struct fixture *f, const char *dir, char *const *files, char out[POLICY_REVISION_MAX])
{
	struct tern_err err;

	tern_err_clear(&err);
	if (policy_revision_hash(dir, files, 2, out, &err) < 0)
		fail_msg("hash failed: %s", err.msg);
}

/* The digest of "a.lua\0" "9\0" "return 1\n" "sub/b.lua\0" "2\0" "x\n" (Python's hashlib). */
static void
test_hash_known_value(void **state)
{
	struct fixture *f = *state;
	char rev[POLICY_REVISION_MAX];

	hash(f, f->dir, f->files, rev);
	assert_string_equal(rev, "sha256:6e95a6e000b5");
}

static void
test_hash_ignores_load_order_and_location(void **state)
{
	struct fixture *f = *state;
	char rev[POLICY_REVISION_MAX], other[POLICY_REVISION_MAX], moved[PATH_MAX];
	char *reversed[2] = {f->b, f->a};
	struct fixture g;

	hash(f, f->dir, f->files, rev);
	hash(f, f->dir, reversed, other);
	assert_string_equal(rev, other);
	snprintf(moved, sizeof(moved), "%s/elsewhere", f->dir);
	assert_int_equal(mkdir(moved, 0755), 0);
	make_policy(&g, moved);
	hash(&g, moved, g.files, other);
	assert_string_equal(rev, other);
}

static void
test_hash_changes_with_content_and_name(void **state)
{
	struct fixture *f = *state;
	char before[POLICY_REVISION_MAX], after[POLICY_REVISION_MAX], renamed[PATH_MAX];

	hash(f, f->dir, f->files, before);
	write_file(f->b, "y\n");
	hash(f, f->dir, f->files, after);
	assert_string_not_equal(before, after);
	write_file(f->b, "x\n");
	snprintf(renamed, sizeof(renamed), "%s/sub/c.lua", f->dir);
	assert_int_equal(rename(f->b, renamed), 0);
	f->files[1] = renamed;
	hash(f, f->dir, f->files, after);
	assert_string_not_equal(before, after);
}

static void
test_hash_unreadable_file_is_an_error(void **state)
{
	struct fixture *f = *state;
	char rev[POLICY_REVISION_MAX];
	struct tern_err err;

	assert_int_equal(unlink(f->b), 0);
	tern_err_clear(&err);
	assert_true(policy_revision_hash(f->dir, f->files, 2, rev, &err) < 0);
	assert_non_null(strstr(err.msg, "sub/b.lua"));
}

/* /tmp is not a git checkout: the policy is named by its hash. */
static void
test_outside_git_uses_hash(void **state)
{
	struct fixture *f = *state;
	char rev[POLICY_REVISION_MAX];

	policy_revision_compute(f->a, f->files, 2, rev);
	assert_string_equal(rev, "sha256:6e95a6e000b5");
	assert_int_equal(unlink(f->b), 0);
	policy_revision_compute(f->a, f->files, 2, rev);
	assert_string_equal(rev, "unknown");
}

static bool
git(const struct fixture *f, const char *cmd)
{
	char line[512];

	snprintf(line, sizeof(line),
		 "cd %s && GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.org "
		 "GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@example.org "
		 "GIT_AUTHOR_DATE=2026-01-01T00:00:00Z GIT_COMMITTER_DATE=2026-01-01T00:00:00Z "
		 "git %s >/dev/null 2>&1",
		 f->dir, cmd);
	return system(line) == 0;
}

static void
read_head(const struct fixture *f, char out[13])
{
	char cmd[128];
	FILE *p;

	snprintf(cmd, sizeof(cmd), "git -C %s rev-parse --short=12 HEAD", f->dir);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_non_null(fgets(out, 13, p));
	pclose(p);
}

static void
test_git_commit_and_dirty(void **state)
{
	struct fixture *f = *state;
	char rev[POLICY_REVISION_MAX], head[13], want[32], outside[PATH_MAX];
	char *with_outside[2] = {f->a, outside};

	if (!git(f, "init -q") || !git(f, "add -A") || !git(f, "commit -q -m policy"))
		skip();
	read_head(f, head);
	policy_revision_compute(f->a, f->files, 2, rev);
	assert_string_equal(rev, head);
	write_file(f->b, "edited\n");
	policy_revision_compute(f->a, f->files, 2, rev);
	snprintf(want, sizeof(want), "%s-dirty", head);
	assert_string_equal(rev, want);
	/* A loaded file the commit cannot hold makes it dirty too. */
	assert_true(git(f, "checkout -q -- sub/b.lua"));
	snprintf(outside, sizeof(outside), "/tmp/test_policy_revision.outside.%d.lua",
		 (int)getpid());
	write_file(outside, "return 2\n");
	policy_revision_compute(f->a, with_outside, 2, rev);
	unlink(outside);
	assert_string_equal(rev, want);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_hash_known_value, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hash_ignores_load_order_and_location, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_hash_changes_with_content_and_name, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_hash_unreadable_file_is_an_error, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_outside_git_uses_hash, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_git_commit_and_dirty, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
