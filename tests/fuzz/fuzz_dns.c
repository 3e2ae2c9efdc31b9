// SPDX-License-Identifier: MIT
/* libFuzzer: the DNS answer parser on arbitrary wire-format messages, for MX, A and AAAA. */
#include <stddef.h>
#include <stdint.h>

#include "tern/dns.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int types[] = {DNS_TYPE_MX, DNS_TYPE_A, DNS_TYPE_AAAA};
	size_t i;

	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		struct dns_answer a;

		if (dns_answer_parse(data, size, types[i], &a) == 0)
			dns_answer_deinit(&a);
	}
	return 0;
}
