// SPDX-License-Identifier: MIT
/*
 * Recording the files a policy loads. Lua has no hook for "a file was
 * read", so the three ways a policy reaches another file are wrapped: the
 * package.path searcher (package.loaders[2]) and the dofile and loadfile
 * globals. Each wrapper calls the original and, when it found a file, adds
 * the file's real path to a registry table, so that symlinks and relative
 * names of the same file count once. The list is read at load time only;
 * the message path never touches it.
 */
#include "tern/policy_files.h"
#include "tern/util.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#define POLICY_FILES_KEY "tern.policy_files"
#define POLICY_FILES_LIB_KEY "tern.policy_files.lib"

/* Is path inside tern's own library (registry string: "<real lib dir>/tern/")? */
static bool
in_tern_library(lua_State *L, const char *path)
{
	const char *lib;
	bool inside;

	lua_getfield(L, LUA_REGISTRYINDEX, POLICY_FILES_LIB_KEY);
	lib = lua_tostring(L, -1);
	inside = lib != NULL && strncmp(path, lib, strlen(lib)) == 0;
	lua_pop(L, 1);
	return inside;
}

void
policy_files_add(lua_State *L, const char *path)
{
	char real[PATH_MAX];

	if (realpath(path, real) == NULL || in_tern_library(L, real))
		return;
	lua_getfield(L, LUA_REGISTRYINDEX, POLICY_FILES_KEY);
	if (!lua_istable(L, -1)) {
		lua_pop(L, 1);
		return;
	}
	lua_getfield(L, -1, real);
	if (lua_isnil(L, -1)) {
		/* The table is both the ordered list and the set of names seen. */
		lua_pushstring(L, real);
		lua_rawseti(L, -3, (int)lua_objlen(L, -3) + 1);
		lua_pushboolean(L, 1);
		lua_setfield(L, -3, real);
	}
	lua_pop(L, 2);
}

/* package.searchpath(name, package.path), pushed: the file require found. */
static void
push_module_path(lua_State *L, int name_idx)
{
	lua_getglobal(L, "package");
	lua_getfield(L, -1, "searchpath");
	lua_pushvalue(L, name_idx);
	lua_getfield(L, -3, "path");
	lua_call(L, 2, 1);
	lua_remove(L, -2);
}

/* package.loaders[2] wrapper; upvalue 1 is the original searcher. */
static int
searcher(lua_State *L)
{
	luaL_checkstring(L, 1);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_pushvalue(L, 1);
	lua_call(L, 1, 1);
	if (lua_isfunction(L, -1)) {
		push_module_path(L, 1);
		if (lua_isstring(L, -1))
			policy_files_add(L, lua_tostring(L, -1));
		lua_pop(L, 1);
	}
	return 1;
}

/* dofile/loadfile wrapper; upvalue 1 is the original function. */
static int
file_loader(lua_State *L)
{
	int nargs = lua_gettop(L);

	if (lua_type(L, 1) == LUA_TSTRING)
		policy_files_add(L, lua_tostring(L, 1));
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, nargs, LUA_MULTRET);
	return lua_gettop(L);
}

static void
wrap_global(lua_State *L, const char *name)
{
	lua_getglobal(L, name);
	lua_pushcclosure(L, file_loader, 1);
	lua_setglobal(L, name);
}

static void
wrap_searcher(lua_State *L)
{
	lua_getglobal(L, "package");
	lua_getfield(L, -1, "loaders");
	lua_rawgeti(L, -1, 2);
	lua_pushcclosure(L, searcher, 1);
	lua_rawseti(L, -2, 2);
	lua_pop(L, 2);
}

void
policy_files_track(lua_State *L, const char *lib_dir)
{
	char real[PATH_MAX];

	if (realpath(lib_dir, real) != NULL) {
		lua_pushfstring(L, "%s/tern/", real);
		lua_setfield(L, LUA_REGISTRYINDEX, POLICY_FILES_LIB_KEY);
	}
	lua_newtable(L);
	lua_setfield(L, LUA_REGISTRYINDEX, POLICY_FILES_KEY);
	wrap_searcher(L);
	wrap_global(L, "dofile");
	wrap_global(L, "loadfile");
}

char **
policy_files_list(lua_State *L, size_t *n)
{
	char **files = NULL;
	size_t i, len = 0;

	*n = 0;
	lua_getfield(L, LUA_REGISTRYINDEX, POLICY_FILES_KEY);
	if (lua_istable(L, -1))
		len = lua_objlen(L, -1);
	/* A reload builds this list too: no abort on a failed allocation. */
	if (len > 0)
		files = calloc(len, sizeof(*files));
	for (i = 0; files != NULL && i < len; i++) {
		lua_rawgeti(L, -1, (int)i + 1);
		files[i] = strdup(lua_tostring(L, -1));
		lua_pop(L, 1);
		if (files[i] == NULL) {
			policy_files_free(files, i);
			files = NULL;
		}
	}
	lua_pop(L, 1);
	if (files != NULL)
		*n = len;
	return files;
}

void
policy_files_free(char **files, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(files[i]);
	free(files);
}
