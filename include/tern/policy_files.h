/* SPDX-License-Identifier: MIT */
/*
 * The files a policy's Lua state loaded: the main file, every module
 * `require` found on package.path, and every file given to `dofile` or
 * `loadfile`. Together they are the policy an epoch runs (what its revision
 * names, what a reload re-reads). Files of tern's own Lua library
 * (<lua dir>/tern/) belong to tern, not to the policy, and are left out.
 */
#ifndef TERN_POLICY_FILES_H
#define TERN_POLICY_FILES_H

#include <stddef.h>

#include <lua.h>

/*
 * Record from now on what L loads; lib_dir is the directory holding tern's
 * Lua library (its tern/ subdirectory is excluded). Call before the policy runs.
 */
void policy_files_track(lua_State *L, const char *lib_dir);
/* Record path as loaded (the main file, which the caller loads itself). */
void policy_files_add(lua_State *L, const char *path);
/*
 * The files recorded so far, as absolute paths in load order, each once:
 * an array of *n strings, freed with policy_files_free; NULL when empty.
 */
char **policy_files_list(lua_State *L, size_t *n);
void policy_files_free(char **files, size_t n);

#endif
