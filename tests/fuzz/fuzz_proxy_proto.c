// SPDX-License-Identifier: MIT
/* libFuzzer: the PROXY protocol v1/v2 header parser on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>

#include "tern/proxy_proto.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_header h;
	struct tern_err err;
	int n = proxy_proto_parse(data, size, &h, &err);

	if (n > 0 && (size_t)n > size)
		__builtin_trap();
	return 0;
}
