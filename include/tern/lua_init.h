/* SPDX-License-Identifier: MIT */
/*
 * The bindings `init` calls to say what the daemon opens: tern.define_spool,
 * tern.start_esmtp_listener, tern.configure_local_logs. Each validates its
 * options completely (so --check catches every mistake) and registers a
 * service with daemon.c; nothing is opened here.
 */
#ifndef TERN_LUA_INIT_H
#define TERN_LUA_INIT_H

#include <lua.h>

/* `tern` table on top of the stack. */
void lua_init_open(lua_State *L);

#endif
