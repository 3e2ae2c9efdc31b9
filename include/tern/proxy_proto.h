/* SPDX-License-Identifier: MIT */
/*
 * The PROXY protocol (HAProxy, versions 1 and 2): the header a load balancer
 * sends first on a connection to say which client it stands for. Pure: bytes
 * in, the client's address out; the session decides whom to believe.
 */
#ifndef TERN_PROXY_PROTO_H
#define TERN_PROXY_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "tern/util.h"

/* A v1 header is at most 107 octets; v2 address blocks beyond this are refused. */
#define PROXY_PROTO_V1_MAX 107
#define PROXY_PROTO_V2_MAX 1024

struct proxy_header {
	int version; /* 1 or 2 */
	bool local;  /* LOCAL / UNKNOWN: no address given, the connection's own peer stands */
	struct sockaddr_storage src, dst;
};

/*
 * Parse a header at the start of p[0..n). The header's length (> 0) with out
 * filled; TERN_AGAIN when p is a valid beginning but incomplete; -EINVAL with
 * err saying why when it is not a PROXY header.
 */
int proxy_proto_parse(const uint8_t *p, size_t n, struct proxy_header *out, struct tern_err *err);

#endif
