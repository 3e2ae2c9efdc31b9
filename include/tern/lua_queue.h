/* SPDX-License-Identifier: MIT */
/* tern.make_queue_config{...}: validate the table get_queue_config returns; read it into C. */
#ifndef TERN_LUA_QUEUE_H
#define TERN_LUA_QUEUE_H

#include <lua.h>

#include "tern/queue.h"

void lua_queue_open(lua_State *L);
/* Read the config table at idx (as made by tern.make_queue_config) into out. */
int lua_queue_read_config(lua_State *L, int idx, struct queue_config *out, struct tern_err *err);

#endif
