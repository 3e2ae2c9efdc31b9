/* SPDX-License-Identifier: MIT */
/*
 * A multi-literal matcher (Aho-Corasick): which of many byte strings occur
 * in a text, in one pass over the text whatever their number. Used where
 * hundreds of patterns must be tried on every input (bounce rules): the
 * literals each pattern needs rule most patterns out before any regex runs.
 * Matching is byte-exact; callers fold case on both sides if they want.
 */
#ifndef TERN_UTIL_ACMATCH_H
#define TERN_UTIL_ACMATCH_H

#include <stddef.h>
#include <stdint.h>

struct acmatch;

typedef void acmatch_hit_fn(uint32_t id, void *arg);

struct acmatch *acmatch_new(void);
void acmatch_free(struct acmatch *m);
/* Add a non-empty literal reported as id; 0, or -ENOMEM / -EINVAL. Only before acmatch_build. */
int acmatch_add(struct acmatch *m, const char *lit, size_t len, uint32_t id);
/* Link the automaton; 0 or -ENOMEM. */
int acmatch_build(struct acmatch *m);
/* Call hit(id) for every occurrence of every literal in text (an id may repeat). */
void acmatch_scan(const struct acmatch *m, const char *text, size_t len, acmatch_hit_fn *hit, void *arg);

#endif
