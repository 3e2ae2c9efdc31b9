// SPDX-License-Identifier: MIT
/*
 * Shaping automation's path states shared by the fleet (see fleet_shaping.h):
 * how a path state goes through the shared table.
 */
#include "tern/fleet_shaping.h"
#include "tern/path_state.h"

#include <stdlib.h>

static void
state_key(const void *item, char *out, size_t size)
{
	path_state_key(item, out, size);
}

static void
state_to_json(const void *item, struct buf *out)
{
	path_state_json(item, out);
}

static int
state_from_json(const char *text, size_t len, void *item, struct tern_err *err)
{
	return path_state_from_json(text, len, item, err);
}

/* A state past its recovery leaves the fleet's table. */
static bool
state_over(const void *item, double now)
{
	const struct path_state *s = item;

	return s->until + s->recovery <= now;
}

static int
state_install(const void *items, size_t n, struct tern_err *err)
{
	return path_state_replace(items, n, err);
}

static size_t
state_items(void **out)
{
	struct path_state *states = NULL;
	size_t n = path_state_snapshot(&states);

	*out = states;
	return n;
}

const struct fleet_table fleet_shaping_table = {
	.hash = "tern:shaping:states",
	.channel = "tern:shaping",
	.what = "path state",
	.item_size = sizeof(struct path_state),
	.key = state_key,
	.to_json = state_to_json,
	.from_json = state_from_json,
	.over = state_over,
	.install = state_install,
	.snapshot = state_items,
};

static void
changed(void *arg, const struct path_state *added, const struct path_state *removed)
{
	char key[PATH_STATE_KEY_LEN];

	if (added == NULL)
		path_state_key(removed, key, sizeof(key));
	fleet_table_changed(&fleet_shaping_table, added, added ? NULL : key);
}

void
fleet_shaping_start(void)
{
	path_state_set_observer(changed, NULL);
}

void
fleet_shaping_stop(void)
{
	path_state_set_observer(NULL, NULL);
}
