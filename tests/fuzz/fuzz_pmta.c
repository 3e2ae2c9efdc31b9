// SPDX-License-Identifier: MIT
/* libFuzzer: the pmta.conf parser and its JSON form on arbitrary text; the JSON must validate. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "tern/json.h"
#include "tern/pmta_conf.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pmta_node root;
	struct tern_err err;
	struct buf json;

	if (pmta_conf_parse((const char *)data, size, &root, &err) < 0)
		return 0;
	buf_init(&json);
	if (pmta_conf_to_json(&root, &json) == 0 && json_validate(json.data, json.len, &err) < 0)
		abort();
	buf_deinit(&json);
	pmta_conf_deinit(&root);
	return 0;
}
