/* SPDX-License-Identifier: MIT */
/*
 * The ESMTP server: one session per accepted connection, living entirely on
 * the shard that accepted it; the receiving state machine, TLS, relay
 * control and policy hooks. Its limits on abusive clients are smtp_limits.h.
 */
#ifndef TERN_SMTP_SERVER_H
#define TERN_SMTP_SERVER_H

#include <sys/socket.h>

#include "tern/smtp_listener.h"

/* Start a session on an accepted socket (owned from now on). 0, or -ENOMEM (fd not closed). */
int smtp_session_accept(struct listener_shard *ls, int fd, const struct sockaddr_storage *peer);
/* Stopping: idle sessions get 421 4.3.2 and close; those mid-transaction finish first. */
void smtp_sessions_shutdown(struct listener_shard *ls);
/* After the loop ended: free whatever is left. */
void smtp_sessions_free(struct listener_shard *ls);

#endif
