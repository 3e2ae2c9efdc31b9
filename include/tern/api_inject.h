/* SPDX-License-Identifier: MIT */
/*
 * POST /api/inject/v1 (KumoMTA's schema, see inject.h): one message per
 * recipient, each passed to the policy hook http_message_generated(msg),
 * spooled in one synced group commit like an SMTP transaction; the reply
 * {success_count, fail_count, failed_recipients, errors} is sent only once
 * the accepted messages are durable.
 */
#ifndef TERN_API_INJECT_H
#define TERN_API_INJECT_H

struct http_request;

void api_inject_handle(struct http_request *req);

#endif
