/* SPDX-License-Identifier: MIT */
/*
 * The metrics endpoints: GET /metrics (Prometheus text format 0.0.4) and
 * GET /metrics.json (the same families as JSON; ?history=1 adds the
 * outcome totals of each of the last 15 minutes' seconds, for the status
 * page). Every family is described in docs/metrics.md.
 */
#ifndef TERN_API_METRICS_H
#define TERN_API_METRICS_H

struct http_request;

void api_metrics_handle(struct http_request *req);
void api_metrics_json_handle(struct http_request *req);

#endif
