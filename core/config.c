// SPDX-License-Identifier: MIT
/*
 * The engine's config questions, answered by each shard's provider or by the
 * defaults. The defaults live here, next to the questions, so that a queue
 * or a ready queue gets a complete config whether or not policy has a hook
 * for it, and the engine never needs to know which.
 */
#include "tern/config.h"
#include "tern/log.h"
#include "tern/shard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

struct config_slot {
	const struct config_provider *p;
	void *ctx;
	uint64_t epoch;
};

/* Written by the start-up (or reloading) thread before the shard runs the engine that reads it. */
static struct config_slot slots[SHARD_MAX];

void
config_attach(struct shard *s, const struct config_provider *p, void *ctx)
{
	struct config_slot *slot = &slots[s->id];

	slot->p = p;
	slot->ctx = ctx;
	slot->epoch++;
}

uint64_t
config_epoch(const struct shard *s)
{
	return slots[s->id].epoch;
}

static const struct config_slot *
slot_of(const struct shard *s)
{
	return &slots[s->id];
}

int
config_queue(struct shard *s, const char *domain, const char *tenant, const char *campaign,
	     struct queue_config *out, struct tern_err *err)
{
	const struct config_slot *slot = slot_of(s);
	int rc = 0;

	if (slot->p && slot->p->queue)
		rc = slot->p->queue(slot->ctx, domain, tenant, campaign, out, err);
	if (rc < 0)
		queue_config_deinit(out);
	if (rc <= 0)
		queue_config_defaults(out);
	return rc < 0 ? rc : 0;
}

/* Without an answer a pool is the single source of the same name. */
static int
pool_defaults(struct egress_pool_cfg *c, const char *name, struct tern_err *err)
{
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->sources = calloc(1, sizeof(*c->sources));
	c->weights = calloc(1, sizeof(*c->weights));
	if (c->sources == NULL || c->weights == NULL) {
		egress_pool_cfg_deinit(c);
		tern_err_set(err, 451, "4.3.0", "out of memory");
		return -ENOMEM;
	}
	snprintf(c->sources[0], sizeof(c->sources[0]), "%s", name);
	c->weights[0] = 1;
	c->n = 1;
	return 0;
}

int
config_pool(struct shard *s, const char *name, struct egress_pool_cfg *out, struct tern_err *err)
{
	const struct config_slot *slot = slot_of(s);
	int rc = 0;

	if (slot->p && slot->p->pool)
		rc = slot->p->pool(slot->ctx, name, out, err);
	if (rc < 0)
		return rc;
	return rc == 0 ? pool_defaults(out, name, err) : 0;
}

int
config_source(struct shard *s, const char *name, struct egress_source_cfg *out,
	      struct tern_err *err)
{
	const struct config_slot *slot = slot_of(s);
	int rc = 0;

	if (slot->p && slot->p->source)
		rc = slot->p->source(slot->ctx, name, out, err);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		snprintf(out->name, sizeof(out->name), "%s", name);
		snprintf(out->ehlo, sizeof(out->ehlo), "localhost");
	}
	return 0;
}

int
config_path(struct shard *s, const char *domain, const char *source, const char *site,
	    struct egress_path_cfg *out, struct tern_err *err)
{
	const struct config_slot *slot = slot_of(s);
	int rc = 0;

	if (slot->p && slot->p->path)
		rc = slot->p->path(slot->ctx, domain, source, site, out, err);
	if (rc < 0)
		return rc;
	if (rc == 0)
		egress_path_defaults(out);
	return 0;
}

int
config_rewrite_reply(struct shard *s, const char *response, const char *domain,
		     const char *tenant, const char *campaign, struct config_reply *out)
{
	const struct config_slot *slot = slot_of(s);
	struct tern_err err;
	int rc;

	if (slot->p == NULL || slot->p->rewrite == NULL)
		return 0;
	rc = slot->p->rewrite(slot->ctx, response, domain, tenant, campaign, out, &err);
	if (rc < 0) {
		log_ratelimited(LOG_LEVEL_WARN, "policy",
				"smtp_client_rewrite_delivery_status failed, reply kept: %s", err.msg);
		return 0;
	}
	return rc;
}

const char *
config_classify(struct shard *s, const char *reply, size_t len, const char *site)
{
	const struct config_slot *slot = slot_of(s);

	if (slot->p == NULL || slot->p->classify == NULL)
		return NULL;
	return slot->p->classify(slot->ctx, reply, len, site);
}

const struct automation_rule *
config_automation(struct shard *s, const uint16_t *ids, size_t n, const char *reply, size_t len)
{
	const struct config_slot *slot = slot_of(s);

	if (n == 0 || slot->p == NULL || slot->p->automation == NULL)
		return NULL;
	return slot->p->automation(slot->ctx, ids, n, reply, len);
}

void
config_trace(struct shard *s, struct trace_config *out)
{
	const struct config_slot *slot = slot_of(s);

	out->secret_len = 0;
	out->verp = false;
	if (slot->p != NULL && slot->p->trace != NULL)
		slot->p->trace(slot->ctx, out);
}
