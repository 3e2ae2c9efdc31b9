/* SPDX-License-Identifier: MIT */
/*
 * Config: the engine's one question to policy. Queues and egress ask here for
 * a queue's config, a pool, a source and a path; they never call Lua. A
 * provider answers (the policy side implements it with the Lua readers; a test
 * may implement it with plain C), and where it has no answer the engine's
 * defaults apply. Each shard has its own provider, since each shard has its
 * own Lua state. Answers are stamped with the provider's epoch: a memoised
 * answer whose epoch is not config_epoch() any more must be asked again.
 */
#ifndef TERN_CONFIG_H
#define TERN_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "tern/egress.h"
#include "tern/queue.h"
#include "tern/trace_ref.h"
#include "tern/util.h"

struct automation_rule;
struct shard;

/* A delivery reply as policy rewrote it (smtp_client_rewrite_delivery_status). */
struct config_reply {
	int code;	   /* 200..599 */
	char enhanced[16]; /* "5.2.2", or "" */
	char text[512];
};

/*
 * Each function fills out and returns 1, returns 0 when policy has no
 * answer (out untouched), or a negative code with err set when the answer
 * could not be had (a hook error, a table the reader refused).
 */
struct config_provider {
	int (*queue)(void *ctx, const char *domain, const char *tenant, const char *campaign,
		     struct queue_config *out, struct tern_err *err);
	int (*pool)(void *ctx, const char *name, struct egress_pool_cfg *out, struct tern_err *err);
	int (*source)(void *ctx, const char *name, struct egress_source_cfg *out,
		      struct tern_err *err);
	int (*path)(void *ctx, const char *domain, const char *source, const char *site,
		    struct egress_path_cfg *out, struct tern_err *err);
	/* The bounce category of a normalisable reply seen from site, by policy's rules. */
	const char *(*classify)(void *ctx, const char *reply, size_t len, const char *site);
	/* The first of the shaping automation rules ids (a path's) matching a reply, or NULL. */
	const struct automation_rule *(*automation)(void *ctx, const uint16_t *ids, size_t n,
						   const char *reply, size_t len);
	/* The trace header's secret and VERP choice (secret_len 0: none). */
	void (*trace)(void *ctx, struct trace_config *out);
	/* A replacement for a failure reply ("452 4.2.2 text"), or 0 to keep it. */
	int (*rewrite)(void *ctx, const char *response, const char *domain, const char *tenant,
		       const char *campaign, struct config_reply *out, struct tern_err *err);
};

/* Make p (with ctx) the provider of shard s, in a new epoch; p NULL detaches (defaults only). */
void config_attach(struct shard *s, const struct config_provider *p, void *ctx);
/* The epoch of s's provider: it changes whenever a provider is attached. */
uint64_t config_epoch(const struct shard *s);

/* The engine's questions: 0 with out filled (the answer or the defaults), or -errno with err. */
int config_queue(struct shard *s, const char *domain, const char *tenant, const char *campaign,
		 struct queue_config *out, struct tern_err *err);
int config_pool(struct shard *s, const char *name, struct egress_pool_cfg *out,
		struct tern_err *err);
int config_source(struct shard *s, const char *name, struct egress_source_cfg *out,
		  struct tern_err *err);
int config_path(struct shard *s, const char *domain, const char *source, const char *site,
		struct egress_path_cfg *out, struct tern_err *err);
/* The reply's bounce category (a static name), or NULL when no provider classifies. */
const char *config_classify(struct shard *s, const char *reply, size_t len, const char *site);
/* The automation rule (valid until the epoch changes) among ids matching reply, or NULL. */
const struct automation_rule *config_automation(struct shard *s, const uint16_t *ids, size_t n,
						const char *reply, size_t len);
/* How copies are traced (trace_ref.h): out->secret_len 0 when policy configures nothing. */
void config_trace(struct shard *s, struct trace_config *out);
/*
 * 1 with out filled when policy replaces the reply (before it is classified
 * and settled), 0 when it keeps it; a failing hook is logged and keeps it.
 */
int config_rewrite_reply(struct shard *s, const char *response, const char *domain,
			 const char *tenant, const char *campaign, struct config_reply *out);

#endif
