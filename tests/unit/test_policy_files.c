// SPDX-License-Identifier: MIT
/*
 * The files a policy loads: modules require finds on package.path, files
 * given to dofile and loadfile, each once by real path and in load order;
 * modules of tern's own library (<lib dir>/tern/) are left out, and what
 * require does not find is not recorded.
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
#include <sys/stat.h>

#include <lauxlib.h>
#include <lualib.h>

#include "tern/policy_files.h"

#include "support.h"

struct fixture {
	char dir[64];
	char real[PATH_MAX];
	lua_State *L;
};

static void
write_file(const struct fixture *f, const char *name, const char *src)
{
	char path[PATH_MAX];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", f->dir, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	assert_true(fputs(src, fp) >= 0);
	fclose(fp);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char lib[PATH_MAX];

	snprintf(f->dir, sizeof(f->dir), "/tmp/test_policy_files.XXXXXX");
	if (mkdtemp(f->dir) == NULL || realpath(f->dir, f->real) == NULL)
		return -1;
	snprintf(lib, sizeof(lib), "%s/lib", f->dir);
	mkdir(lib, 0755);
	snprintf(lib, sizeof(lib), "%s/lib/tern", f->dir);
	mkdir(lib, 0755);
	write_file(f, "lib/tern/helper.lua", "return 'tern'\n");
	write_file(f, "mod.lua", "return 'mod'\n");
	write_file(f, "data.lua", "return 7\n");
	write_file(f, "chunk.lua", "x = 1\n");
	f->L = luaL_newstate();
	luaL_openlibs(f->L);
	lua_getglobal(f->L, "package");
	lua_pushfstring(f->L, "%s/?.lua;%s/lib/?.lua", f->dir, f->dir);
	lua_setfield(f->L, -2, "path");
	lua_pop(f->L, 1);
	snprintf(lib, sizeof(lib), "%s/lib", f->dir);
	policy_files_track(f->L, lib);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	lua_close(f->L);
	support_rm_rf(f->dir);
	free(f);
	return 0;
}

static void
run(struct fixture *f, const char *src)
{
	if (luaL_dostring(f->L, src) != 0)
		fail_msg("%s", lua_tostring(f->L, -1));
}

/* The recorded files, relative to the fixture's directory, joined by spaces. */
static void
assert_files(struct fixture *f, const char *want)
{
	char got[1024] = "";
	size_t n, i, len = strlen(f->real);
	char **files = policy_files_list(f->L, &n);

	for (i = 0; i < n; i++) {
		assert_memory_equal(files[i], f->real, len);
		strcat(got, i ? " " : "");
		strcat(got, files[i] + len + 1);
	}
	policy_files_free(files, n);
	assert_string_equal(got, want);
}

static void
test_records_require_dofile_loadfile_once(void **state)
{
	struct fixture *f = *state;
	char main_path[PATH_MAX];

	snprintf(main_path, sizeof(main_path), "%s/mod.lua", f->dir);
	policy_files_add(f->L, main_path);
	run(f, "assert(require('mod') == 'mod')");
	run(f, "package.loaded.mod = nil; require('mod')");
	lua_pushfstring(f->L, "assert(dofile('%s/data.lua') == 7)", f->dir);
	run(f, lua_tostring(f->L, -1));
	lua_pop(f->L, 1);
	lua_pushfstring(f->L, "assert(loadfile('%s/../%s/chunk.lua'))", f->dir,
			strrchr(f->dir, '/') + 1);
	run(f, lua_tostring(f->L, -1));
	lua_pop(f->L, 1);
	assert_files(f, "mod.lua data.lua chunk.lua");
}

static void
test_tern_library_and_missing_modules_left_out(void **state)
{
	struct fixture *f = *state;

	run(f, "assert(require('tern.helper') == 'tern')");
	run(f, "assert(not pcall(require, 'nowhere'))");
	run(f, "assert(loadfile('/nonexistent/x.lua') == nil)");
	assert_files(f, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_records_require_dofile_loadfile_once, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_tern_library_and_missing_modules_left_out, setup,
					    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
