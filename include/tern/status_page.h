/* SPDX-License-Identifier: MIT */
/*
 * The status page at GET /: one HTML page compiled into ternd
 * (core/status_page.html), which draws itself from /metrics.json.
 */
#ifndef TERN_STATUS_PAGE_H
#define TERN_STATUS_PAGE_H

struct http_request;

void status_page_handle(struct http_request *req);

#endif
