// SPDX-License-Identifier: MIT
/*
 * The connection's lifecycle: what Lua holds of it is released through the
 * callback its binding left, so the session that owns it stays below Lua.
 */
#include "tern/conn.h"

#include <string.h>

void
conn_info_init(struct conn_info *ci)
{
	/* The Lua fields mean something only once release is set, by the first push. */
	memset(ci, 0, sizeof(*ci));
}

void
conn_info_deinit(struct conn_info *ci)
{
	if (ci->release)
		ci->release(ci);
	ci->release = NULL;
}
