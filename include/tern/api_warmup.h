/* SPDX-License-Identifier: MIT */
/*
 * Warm-up endpoints:
 *   GET  /api/admin/warmup/v1         the warming sources: [{source, stage, cap, sent,
 *                                     next_refill, paused, reason, bounce_rate,
 *                                     complaint_rate, window_messages}]
 *   POST /api/admin/warmup-resume/v1  {"source": "ip-4"}: resume a paused ramp
 */
#ifndef TERN_API_WARMUP_H
#define TERN_API_WARMUP_H

struct http_request;

void api_warmup_list(struct http_request *req);
void api_warmup_resume(struct http_request *req);

#endif
