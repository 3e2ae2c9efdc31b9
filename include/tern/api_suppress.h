/* SPDX-License-Identifier: MIT */
/*
 * The suppression list over HTTP (/api/admin/suppression/v1):
 *   GET    ?address=A&tenant=T  the entry that suppresses A for T (404 when none)
 *   GET    ?tenant=T&limit=N    entries (of T), at most N (default 1000), in key order
 *   POST   { address, tenant, reason, category, expires_in }  add or replace
 *   DELETE { address, tenant }  remove (404 when not listed)
 * A missing tenant is "*" (every tenant), as in tern.suppress and the CLI.
 */
#ifndef TERN_API_SUPPRESS_H
#define TERN_API_SUPPRESS_H

struct http_request;

void api_suppress_get(struct http_request *req);
void api_suppress_add(struct http_request *req);
void api_suppress_remove(struct http_request *req);

#endif
