// SPDX-License-Identifier: MIT
/*
 * libFuzzer: the small value parsers policies feed the core (durations,
 * sizes, rates, queue names, listen addresses).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tern/queue.h"
#include "tern/smtp_listener.h"
#include "tern/throttle.h"
#include "tern/util.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[512], campaign[128], tenant[128], domain[256];
	struct sockaddr_storage ss;
	socklen_t len;
	uint64_t bytes;
	double v;

	if (size >= sizeof(text))
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	(void)util_parse_duration(text, &v);
	(void)util_parse_size(text, &bytes);
	if (throttle_parse_rate(text, &v) == 0 && !(v > 0))
		__builtin_trap();
	queue_name_parse(text, campaign, sizeof(campaign), tenant, sizeof(tenant), domain,
			 sizeof(domain));
	(void)smtp_listener_parse_address(text, &ss, &len);
	return 0;
}
