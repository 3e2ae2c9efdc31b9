/* SPDX-License-Identifier: MIT */
/*
 * Reception: what happens to accepted messages, whoever accepted them (the
 * SMTP listener now, the HTTP inject API later). A batch of messages is
 * written to the spool in one durable group commit; once the write is synced,
 * each message's Reception record is handed to the kernel within that commit
 * (logrec_commit), and then the submitter is told, back on its shard, so it
 * can answer 250 (or 452 when the write failed): no 250 without its record.
 * Messages whose meta `queue` is "null" are logged and discarded without
 * being spooled (sinks, tests).
 */
#ifndef TERN_RECEPTION_H
#define TERN_RECEPTION_H

#include <stddef.h>

#include "tern/util.h"

struct message;
struct shard;
struct spool;
struct reception;

/* status 0 when every message is durable (or discarded by queue "null"); err otherwise. */
typedef void (*reception_done_fn)(void *arg, int status, const struct tern_err *err);

struct reception_origin {
	const char *peer_address;
	const char *listener;
	const char *tls_version;
	const char *tls_cipher;
};

/* The spool that receives; set once at start-up. */
void reception_set_spool(struct spool *sp);
/* The spool set above, or NULL (for metrics). */
struct spool *reception_get_spool(void);

/*
 * Take ownership of msgs[0..n) (ids must be set) and spool them. done runs
 * later on the calling shard, never inside this call. Returns the batch, to
 * detach from with reception_detach() if the submitter goes away first, or
 * NULL (with err; msgs freed) when it could not even be queued.
 */
struct reception *reception_submit(struct shard *shard, struct message **msgs, size_t n,
				   const struct reception_origin *origin, reception_done_fn done,
				   void *arg, struct tern_err *err);
/* The submitter is gone: the batch completes (and is logged) without calling back. */
void reception_detach(struct reception *r);

#endif
