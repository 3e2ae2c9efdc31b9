/* SPDX-License-Identifier: MIT */
/*
 * Address ranges for relay control: "10.0.0.0/8", "127.0.0.1", "::1",
 * "2001:db8::/32". IPv4-mapped IPv6 peers (::ffff:a.b.c.d) match IPv4 ranges.
 */
#ifndef TERN_CIDR_H
#define TERN_CIDR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct cidr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	int prefix;
};

/* 0, or -EINVAL for anything that is not an address with an optional valid prefix length. */
int cidr_parse(const char *s, struct cidr *out);
bool cidr_match(const struct cidr *c, const struct sockaddr *sa);
bool cidr_match_any(const struct cidr *list, size_t n, const struct sockaddr *sa);

#endif
