/* SPDX-License-Identifier: MIT */
/*
 * Operator rules set through the admin API: suspensions of scheduled
 * queues and admin bounces, each matching queues by domain, tenant,
 * campaign or a list of queue names, with a reason and an expiry. The
 * scheduler asks admin_match() for each message it is about to dispatch.
 *
 * The rule set is read on every shard at every dispatch and changed rarely,
 * so it is an immutable table published by pointer swap: readers take no
 * lock; writers (under one mutex) copy, change and publish, and retire the
 * old table until admin_close(). Every change is saved to admin.json in the
 * spool directory (written to a temporary file, synced, renamed), so rules
 * survive a restart.
 */
#ifndef TERN_ADMIN_H
#define TERN_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

#include "tern/util.h"

struct json_span;

#define ADMIN_ID_LEN 36	   /* a random UUID, as text */
#define ADMIN_MAX_NAMES 16 /* queue_names per rule */

/* Suspensions of scheduled queues, admin bounces, suspensions of one egress path (ready queue). */
enum admin_kind { ADMIN_SUSPEND, ADMIN_BOUNCE, ADMIN_SUSPEND_READY };

struct admin_rule {
	char id[ADMIN_ID_LEN + 1];
	enum admin_kind kind;
	char domain[256], tenant[128], campaign[128];
	char queue_names[ADMIN_MAX_NAMES][320];
	size_t n_queue_names;
	char ready_q[600]; /* ADMIN_SUSPEND_READY: "source->site" */
	char reason[256];
	double expires; /* epoch seconds */
};

/* Load the rules saved under spool_dir (a missing file is no rules). */
int admin_open(const char *spool_dir, struct tern_err *err);
void admin_close(void);

/* Add r (its id is set here) and save. */
int admin_add(struct admin_rule *r, struct tern_err *err);
/* Remove the rule with this id and kind; -ENOENT when there is none. */
int admin_remove(const char *id, enum admin_kind kind, struct tern_err *err);
/*
 * A fleet shares the rules (fleet.c): it hears of every local change through
 * the observer (called on the changing thread, under the rules' lock: post
 * the work elsewhere, never call back into admin_*), and installs the fleet's
 * copy with admin_replace(), which the observer does not hear of.
 */
typedef void (*admin_observer_fn)(void *arg, const struct admin_rule *added,
				  const char *removed_id);
void admin_set_observer(admin_observer_fn fn, void *arg);
/* Replace every rule by rules[n] (expired ones dropped) and save. */
int admin_replace(const struct admin_rule *rules, size_t n, struct tern_err *err);
/* A malloc'd copy of the live rules into *out; how many (0: *out untouched). */
size_t admin_snapshot(struct admin_rule **out);
/* Pure: one rule as JSON (what admin.json and the fleet store), and back. */
void admin_rule_json(const struct admin_rule *r, struct buf *out);
int admin_rule_from_json(const char *text, size_t len, struct admin_rule *r,
			 struct tern_err *err);

/* The live rules of one kind as a JSON array (KumoMTA's listing fields). */
int admin_list_json(enum admin_kind kind, struct buf *out);

/* The first live rule of kind matching the queue's parts, or NULL. Any thread, no lock. */
const struct admin_rule *admin_match(enum admin_kind kind, const char *name, const char *domain,
				     const char *tenant, const char *campaign);

/* The live ready-queue suspension of (source, site), or NULL. Any thread, no lock. */
const struct admin_rule *admin_match_ready(const char *source, const char *site);

/* Pure: whether r matches the queue (expiry not checked). */
bool admin_rule_matches(const struct admin_rule *r, const char *name, const char *domain,
			const char *tenant, const char *campaign);
/*
 * Pure: read a POST body into r: {domain, tenant, campaign, queue_names, reason, duration}, or
 * for ADMIN_SUSPEND_READY {name: "source->site", reason, duration}.
 */
int admin_rule_parse(const char *body, size_t len, enum admin_kind kind, struct admin_rule *r,
		     struct tern_err *err);
/*
 * Pure: read a rebind body {domain, tenant, campaign, queue_names, reason, data} into the
 * selector sel and data, a span of body: the JSON object of meta to set.
 */
int admin_rebind_parse(const char *body, size_t len, struct admin_rule *sel,
		       struct json_span *data, struct tern_err *err);
/* Pure: decode a JSON string span into out[size]; -EINVAL when not a string, too long or with NUL. */
int admin_json_string(const struct json_span *v, char *out, size_t size);

#endif
