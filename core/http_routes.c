// SPDX-License-Identifier: MIT
/*
 * The HTTP endpoints: one line per route. A new endpoint is a handler in its
 * own module (api_inject.c, ...) and one line here; http_server.c finds the
 * route, checks access and the body limit, then calls the handler.
 */
#include "tern/api_admin.h"
#include "tern/api_inject.h"
#include "tern/api_metrics.h"
#include "tern/api_warmup.h"
#include "tern/api_suppress.h"
#include "tern/http_server.h"
#include "tern/status_page.h"

#include <stddef.h>

const struct http_route http_routes[] = {
    {"POST", "/api/inject/v1", api_inject_handle},
    {"POST", "/api/admin/suspend/v1", api_admin_suspend_add},
    {"GET", "/api/admin/suspend/v1", api_admin_suspend_list},
    {"DELETE", "/api/admin/suspend/v1", api_admin_suspend_remove},
    {"POST", "/api/admin/bounce/v1", api_admin_bounce_add},
    {"GET", "/api/admin/bounce/v1", api_admin_bounce_list},
    {"DELETE", "/api/admin/bounce/v1", api_admin_bounce_remove},
    {"POST", "/api/admin/suspend-ready-q/v1", api_admin_suspend_ready_add},
    {"GET", "/api/admin/suspend-ready-q/v1", api_admin_suspend_ready_list},
    {"DELETE", "/api/admin/suspend-ready-q/v1", api_admin_suspend_ready_remove},
    {"POST", "/api/admin/rebind/v1", api_admin_rebind},
    {"GET", "/api/admin/shaping-state/v1", api_admin_shaping_list},
    {"DELETE", "/api/admin/shaping-state/v1", api_admin_shaping_clear},
    {"GET", "/api/admin/queue-summary/v1", api_admin_queue_summary},
    {"GET", "/api/admin/ready-q-states/v1", api_admin_ready_q_states},
    {"GET", "/api/admin/inspect-message/v1", api_admin_inspect_message},
    {"GET", "/api/check-liveness/v1", api_check_liveness},
    {"GET", "/api/admin/warmup/v1", api_warmup_list},
    {"POST", "/api/admin/warmup-resume/v1", api_warmup_resume},
    {"GET", "/api/admin/suppression/v1", api_suppress_get},
    {"POST", "/api/admin/suppression/v1", api_suppress_add},
    {"DELETE", "/api/admin/suppression/v1", api_suppress_remove},
    {"POST", "/api/admin/bump-config-epoch", api_admin_bump_config_epoch},
    {"GET", "/metrics", api_metrics_handle},
    {"GET", "/metrics.json", api_metrics_json_handle},
    {"GET", "/", status_page_handle},
    {NULL, NULL, NULL},
};
