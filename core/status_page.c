// SPDX-License-Identifier: MIT
/*
 * GET /: the status page. The HTML (core/status_page.html, scripts and
 * styles inline) is turned into a byte array at build time (Makefile, xxd -i)
 * so that ternd serves it with no file to install and no CDN to reach; the
 * page reads everything it shows from /metrics.json, under the same access
 * rule as the API.
 */
#include "tern/status_page.h"
#include "tern/http_server.h"

/* Generated from core/status_page.html by the Makefile. */
extern unsigned char status_page_html[];
extern unsigned int status_page_html_len;

void
status_page_handle(struct http_request *req)
{
	http_request_reply(req, 200, "text/html; charset=utf-8", (const char *)status_page_html,
			   status_page_html_len);
}
