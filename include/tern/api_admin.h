/* SPDX-License-Identifier: MIT */
/*
 * The admin endpoints (KumoMTA's paths and bodies): suspensions and admin
 * bounces of scheduled queues and suspensions of one egress path (POST adds, GET lists, DELETE {id} removes),
 * rebinding queued messages to other queues, the queue summary gathered from every shard, message inspection and the
 * liveness check. They parse JSON and call the engine (admin.h, queue.h).
 */
#ifndef TERN_API_ADMIN_H
#define TERN_API_ADMIN_H

struct http_request;

void api_admin_suspend_add(struct http_request *req);
void api_admin_suspend_list(struct http_request *req);
void api_admin_suspend_remove(struct http_request *req);
void api_admin_bounce_add(struct http_request *req);
void api_admin_bounce_list(struct http_request *req);
void api_admin_bounce_remove(struct http_request *req);
void api_admin_suspend_ready_add(struct http_request *req);
void api_admin_suspend_ready_list(struct http_request *req);
void api_admin_suspend_ready_remove(struct http_request *req);
void api_admin_rebind(struct http_request *req);
void api_admin_queue_summary(struct http_request *req);
void api_admin_ready_q_states(struct http_request *req);
void api_admin_inspect_message(struct http_request *req);
void api_check_liveness(struct http_request *req);
/* Shaping automation's path states: GET lists them, DELETE {source, site, tenant, campaign} lifts them. */
void api_admin_shaping_list(struct http_request *req);
void api_admin_shaping_clear(struct http_request *req);
/* POST /api/admin/bump-config-epoch: reload the policy; 200 {epoch, revision}, or 422 {error}. */
void api_admin_bump_config_epoch(struct http_request *req);

#endif
