/* SPDX-License-Identifier: MIT */
/*
 * tern.make_egress_source, tern.make_egress_pool, tern.make_egress_path:
 * validate the tables the egress hooks return, and read them into C.
 */
#ifndef TERN_LUA_EGRESS_H
#define TERN_LUA_EGRESS_H

#include <stdbool.h>
#include <sys/socket.h>

#include <lua.h>

#include "tern/smtp_client.h"
#include "tern/util.h"

struct egress_source_cfg {
	char name[64];
	bool has_addr;
	struct sockaddr_storage addr;
	char addr_text[64];
	char ehlo[256];
};

struct egress_pool_cfg {
	char name[64];
	size_t n;
	char (*sources)[64];
	int *weights;
};

struct egress_path_cfg {
	int connection_limit;
	double max_message_rate;    /* per second; 0 = unlimited */
	double max_connection_rate; /* per second; 0 = unlimited */
	int max_deliveries_per_connection;
	enum smtp_tls_mode tls;
	int smtp_port;
	double connect_timeout, banner_timeout, ehlo_timeout, mail_timeout, rcpt_timeout,
		data_timeout, idle_timeout;
	char ehlo[256]; /* "" = the source's */
	char tls_ca_file[256]; /* "" = the system's trusted roots */
};

void lua_egress_open(lua_State *L);
void egress_path_defaults(struct egress_path_cfg *c);
int lua_egress_read_source(lua_State *L, int idx, struct egress_source_cfg *out,
			   struct tern_err *err);
int lua_egress_read_pool(lua_State *L, int idx, struct egress_pool_cfg *out, struct tern_err *err);
int lua_egress_read_path(lua_State *L, int idx, struct egress_path_cfg *out, struct tern_err *err);
void egress_pool_cfg_deinit(struct egress_pool_cfg *c);

#endif
