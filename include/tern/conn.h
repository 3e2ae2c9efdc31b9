/* SPDX-License-Identifier: MIT */
/*
 * An accepted SMTP connection as policy sees it: peer and local address,
 * listener, EHLO name, TLS details, authenticated id. The SMTP session owns
 * it. A binding that hands it to Lua (lua_conn) sets release, so that
 * conn_info_deinit() clears the Lua handle without the session knowing Lua.
 */
#ifndef TERN_CONN_H
#define TERN_CONN_H

struct lua_State;

struct conn_info {
	char peer_address[64]; /* "127.0.0.1" */
	int peer_port;
	char local_address[64];
	int local_port;
	char listener[80];	 /* the listener's listen string */
	char ehlo[256];		 /* "" before EHLO/HELO */
	char auth_id[256];	 /* "" unless authenticated */
	/*
	 * conn:set_meta('tenant', t) mirrored for the engine: the scope of the
	 * suppression lookup at RCPT ("" until policy sets it).
	 */
	char tenant[128];
	const char *tls_version; /* NULL without TLS */
	const char *tls_cipher;
	/* Set by the binding on the first push to Lua; release undoes it. */
	struct lua_State *lua_state;
	int handle_ref;
	int meta_ref;
	void (*release)(struct conn_info *ci);
};

void conn_info_init(struct conn_info *ci);
/* Invalidate what policy holds of ci (its Lua handle and metadata table). */
void conn_info_deinit(struct conn_info *ci);

#endif
