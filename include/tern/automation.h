/* SPDX-License-Identifier: MIT */
/*
 * Shaping automation: rules that watch a path's replies (PowerMTA's
 * smtp-pattern-list plus backoff mode) and, when one matches often enough,
 * change the path's state for a while: suspend it, suspend its source for
 * the provider, hold a tenant's or campaign's messages for the site, bounce
 * the message, or override the path's limits.
 *
 * The rules come from policy (core/lua_shaping.c reads them out of the
 * shaping data, compiled once per Lua state, so once per shard and epoch);
 * a path's config names the rules that apply to it, by index. Matching runs
 * on the shard that saw the reply, over the reply normalised as the bounce
 * classifier does (PCRE2, caseless, JIT). Trigger windows ("3/5m") are
 * counted per rule and path on that shard. The state a rule sets lives in
 * path_state, which every shard reads without a lock.
 */
#ifndef TERN_AUTOMATION_H
#define TERN_AUTOMATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tern/util.h"

struct logrec;
struct message;
struct queue_msg;

enum automation_action {
	AUTOMATION_SUSPEND,          /* this source -> site path */
	AUTOMATION_SUSPEND_SOURCE,   /* the source for every site of the rule's provider */
	AUTOMATION_SUSPEND_TENANT,   /* the tenant's messages for the site */
	AUTOMATION_SUSPEND_CAMPAIGN, /* the campaign's messages for the site */
	AUTOMATION_BOUNCE,           /* fail the message now */
	AUTOMATION_SET,              /* override the path's limits (backoff mode) */
};

/* The most patterns a rule has, and the longest trigger count. */
#define AUTOMATION_MAX_PATTERNS 16
#define AUTOMATION_MAX_TRIGGER 1000

/* A rule as policy wrote it; strings are copied by automation_rules_add. */
struct automation_rule_def {
	const char *patterns[AUTOMATION_MAX_PATTERNS]; /* any one matching is a match */
	size_t n_patterns;
	enum automation_action action;
	double duration;       /* seconds the state lasts */
	double recovery;       /* seconds from half to full limits afterwards */
	int trigger_n;         /* fires at the trigger_n-th match within trigger_period */
	double trigger_period; /* 0 with trigger_n 1: immediate */
	double set_rate;       /* AUTOMATION_SET: messages per second, 0 = unchanged */
	int set_connections;   /* AUTOMATION_SET: connection limit, 0 = unchanged */
	const char *scope;       /* where the rule was declared: "default", "provider:NAME", "domain:NAME" */
	const char *mx_suffixes; /* a provider's MX suffixes, comma-separated, or NULL */
	const char *file;
	int line;
};

/* A compiled rule: its definition (strings owned by the set) and its patterns. */
struct automation_rule {
	struct automation_rule_def def;
	char *where; /* "file:line scope": names the rule in records and states */
	void *re[AUTOMATION_MAX_PATTERNS]; /* pcre2_code * */
};

struct automation_rules;

struct automation_rules *automation_rules_new(void);
void automation_rules_free(struct automation_rules *r);
/* Compile and append a rule: its index (>= 0), or -1 with err naming file:line and the regex error. */
int automation_rules_add(struct automation_rules *r, const struct automation_rule_def *def,
			 struct tern_err *err);
size_t automation_rules_count(const struct automation_rules *r);
/*
 * The first rule among ids (in that order) whose pattern matches the raw
 * reply (normalised here), or NULL. Out-of-range ids are skipped.
 */
const struct automation_rule *automation_match(struct automation_rules *r, const uint16_t *ids,
					       size_t n, const char *reply, size_t len);

/* "suspend", "suspend_source", ... -> 0 and *out; -1 for another name. */
int automation_action_parse(const char *name, enum automation_action *out);
const char *automation_action_name(enum automation_action a);
/* "immediate" or "N/period" ("3/5m") -> 0 with *n and *period; -1 otherwise. */
int automation_trigger_parse(const char *s, int *n, double *period);

/*
 * On the shard writing a TransientFailure or Bounce record for an attempt
 * on a path (rec names source and site): match the path's rules against
 * the reply, count the trigger, and when a rule fires set the path state,
 * write a ShapingAction record and count it. Returns the rule that fired,
 * or NULL.
 */
const struct automation_rule *automation_observe(struct queue_msg *m, struct message *msg,
						 const struct logrec *rec, const char *reply,
						 size_t len);

#endif
