/* SPDX-License-Identifier: MIT */
/*
 * bounce: the classifier, from a remote server's reply to a bounce category.
 *
 * A reply is first normalised to one line, `code enhanced-code text`, with
 * the lines of a multi-line reply joined by single spaces and their repeated
 * `550-5.1.1` prefixes dropped (also where a log flattened them into one
 * line), so a rule is written once for both shapes. Rules are PCRE2 regular
 * expressions (caseless, JIT-compiled once) over that line, with an optional
 * scope: a second expression that must match the site (the MX host names).
 * The first matching rule in list order wins; no match is `other`.
 *
 * The rule list comes from policy (core/lua_bounce.c reads the Lua tables);
 * this module knows nothing of Lua. A rule set is used by one thread only:
 * each shard's Lua state compiles its own, so the PCRE2 match data and the
 * bounded result cache inside it need no lock.
 */
#ifndef TERN_BOUNCE_H
#define TERN_BOUNCE_H

#include <stddef.h>

#include "tern/util.h"

/* PowerMTA's categories, then tern's two. */
enum bounce_category {
	BOUNCE_BAD_MAILBOX,
	BOUNCE_BAD_DOMAIN,
	BOUNCE_INACTIVE_MAILBOX,
	BOUNCE_ROUTING_ERRORS,
	BOUNCE_NO_ANSWER_FROM_HOST,
	BOUNCE_MESSAGE_EXPIRED,
	BOUNCE_BAD_CONNECTION,
	BOUNCE_BAD_CONFIGURATION,
	BOUNCE_QUOTA_ISSUES,
	BOUNCE_SPAM_RELATED,
	BOUNCE_POLICY_RELATED,
	BOUNCE_CONTENT_RELATED,
	BOUNCE_VIRUS_RELATED,
	BOUNCE_PROTOCOL_ERRORS,
	BOUNCE_RELAYING_ISSUES,
	BOUNCE_INVALID_SENDER,
	BOUNCE_OTHER,
	BOUNCE_AUTHENTICATION_FAILURE,
	BOUNCE_RATE_LIMITED,
	BOUNCE_N_CATEGORIES
};

/* The longest normalised reply kept; longer replies are cut there. */
#define BOUNCE_REPLY_MAX 1024

/* "bad-mailbox", ...; NULL for a value out of range. */
const char *bounce_category_name(enum bounce_category c);
/* 0 and *out set, or -1 for a name that is not a category. */
int bounce_category_parse(const char *name, enum bounce_category *out);

/*
 * Normalise reply[0..len) into out (NUL-terminated, at most outsz - 1 bytes):
 * `550 5.1.1 text`, `550 text` without an enhanced code, or the text alone
 * without a reply code. Returns the length written. Never fails.
 */
size_t bounce_normalise(const char *reply, size_t len, char *out, size_t outsz);

/* One rule as policy wrote it; the strings are copied by bounce_rules_add. */
struct bounce_rule_def {
	const char *name;              /* unique in a set */
	enum bounce_category category;
	const char *pattern;           /* PCRE2, matched caseless over the normalised reply */
	const char *site;              /* NULL, or PCRE2 that must match the site */
	const char *file;              /* where the rule was written, for `tern classify --json` */
	int line;
};

/* The result: pointers into the rule set, valid while it lives. */
struct bounce_result {
	enum bounce_category category;
	const char *rule; /* NULL when no rule matched (category other) */
	const char *file;
	int line;
};

struct bounce_rules;

struct bounce_rules *bounce_rules_new(void);
void bounce_rules_free(struct bounce_rules *r);
/* Compile and append a rule: 0, or -1 with err naming the rule and the regex error. */
int bounce_rules_add(struct bounce_rules *r, const struct bounce_rule_def *def, struct tern_err *err);
size_t bounce_rules_count(const struct bounce_rules *r);

/*
 * Classify a raw reply (normalised here) for a site ("" or NULL: rules with
 * a site scope do not apply). Results are cached per (site, normalised reply).
 */
struct bounce_result bounce_classify(struct bounce_rules *r, const char *reply, size_t len,
				     const char *site);

#endif
