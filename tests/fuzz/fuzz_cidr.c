// SPDX-License-Identifier: MIT
/* libFuzzer: the relay-range parser and matcher on arbitrary text. */
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tern/cidr.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_in6 sa6 = {.sin6_family = AF_INET6};
	struct sockaddr_in sa4 = {.sin_family = AF_INET};
	char text[80];
	struct cidr c;

	if (size >= sizeof(text))
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (cidr_parse(text, &c) == 0) {
		memcpy(&sa4.sin_addr, data, size < 4 ? size : 4);
		memcpy(&sa6.sin6_addr, data, size < 16 ? size : 16);
		(void)cidr_match(&c, (struct sockaddr *)&sa4);
		(void)cidr_match(&c, (struct sockaddr *)&sa6);
	}
	return 0;
}
