// SPDX-License-Identifier: MIT
/*
 * The HTTP endpoints: one line per route. A new endpoint is a handler in its
 * own module (api_inject.c, ...) and one line here; http_server.c finds the
 * route, checks access and the body limit, then calls the handler.
 */
#include "tern/api_inject.h"
#include "tern/api_metrics.h"
#include "tern/http_server.h"
#include "tern/status_page.h"

#include <stddef.h>

const struct http_route http_routes[] = {
    {"POST", "/api/inject/v1", api_inject_handle},
    {"GET", "/metrics", api_metrics_handle},
    {"GET", "/metrics.json", api_metrics_json_handle},
    {"GET", "/", status_page_handle},
    {NULL, NULL, NULL},
};
