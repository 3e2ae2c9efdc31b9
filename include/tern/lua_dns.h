/* SPDX-License-Identifier: MIT */
/*
 * tern.dns: DNS for policy, on the calling shard's resolver (core/dns.c).
 *
 *   tern.dns.configure { servers = { '127.0.0.1:5353' }, timeout = '2s', attempts = 2 }
 *       -- process-wide; at policy top level or in init, before lookups
 *   local mx, err, status = tern.dns.lookup_mx('example.com')
 *       -- yields; mx = { {host = 'mx1.example.com.', preference = 10,
 *       --                 addresses = { '192.0.2.1', '2001:db8::1' }}, ...,
 *       --                implicit = true when the domain has no MX }
 *       -- or nil, 'NXDOMAIN' | 'null MX' | 'SERVFAIL' | 'timed out' | ...,
 *       --        'NXDOMAIN' | 'NULL_MX' | 'NO_ADDRESS' | 'TEMPFAIL'
 */
#ifndef TERN_LUA_DNS_H
#define TERN_LUA_DNS_H

#include <lua.h>

/* With the `tern` table on top of the stack: set tern.dns = {...}. */
void lua_dns_open(lua_State *L);

#endif
