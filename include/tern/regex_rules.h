/* SPDX-License-Identifier: MIT */
/*
 * An ordered list of rules matched by PCRE2 patterns: what the bounce
 * classifier and shaping automation both keep. The list holds the owner's
 * own rule structs (elem_size bytes each, in the order policy gave them),
 * compiles patterns one way for both (caseless, JIT where the CPU has it)
 * and matches with one match data block (one thread at a time).
 */
#ifndef TERN_REGEX_RULES_H
#define TERN_REGEX_RULES_H

#include <stdbool.h>
#include <stddef.h>

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>

#include "tern/util.h"

struct regex_rules {
	void *rules; /* n structs of elem_size bytes */
	size_t n, cap, elem_size;
	pcre2_match_data *md;
};

/* 0, or -ENOMEM. */
int regex_rules_init(struct regex_rules *r, size_t elem_size);
/* Deinit each rule with rule_deinit, then free the list. */
void regex_rules_deinit(struct regex_rules *r, void (*rule_deinit)(void *rule));
/* The i-th rule (i < n). */
void *regex_rules_at(const struct regex_rules *r, size_t i);
/* Room for one more rule: its slot, zeroed, counted by regex_rules_push; NULL: out of memory. */
void *regex_rules_reserve(struct regex_rules *r);
/* Count the rule just written into the reserved slot; its index. */
size_t regex_rules_push(struct regex_rules *r);

/*
 * Compile pattern; NULL with err "<what> at offset N: <PCRE2's reason>",
 * where what is formatted from fmt.
 */
pcre2_code *regex_rules_compile(const char *pattern, struct tern_err *err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
bool regex_rules_match(struct regex_rules *r, const pcre2_code *re, const char *s, size_t len);

#endif
