// SPDX-License-Identifier: MIT
/*
 * Ordered PCRE2 rule lists, shared by the bounce classifier and shaping
 * automation so that both compile, store and match their rules the same
 * way. Patterns are compiled once, when policy configures them; matching
 * reuses the list's one match data block instead of allocating per match.
 */
#include "tern/regex_rules.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
regex_rules_init(struct regex_rules *r, size_t elem_size)
{
	memset(r, 0, sizeof(*r));
	r->elem_size = elem_size;
	r->md = pcre2_match_data_create(1, NULL);
	return r->md == NULL ? -ENOMEM : 0;
}

void
regex_rules_deinit(struct regex_rules *r, void (*rule_deinit)(void *rule))
{
	size_t i;

	for (i = 0; i < r->n; i++)
		rule_deinit(regex_rules_at(r, i));
	free(r->rules); r->rules = NULL;
	pcre2_match_data_free(r->md);
	r->md = NULL;
	r->n = r->cap = 0;
}

void *
regex_rules_at(const struct regex_rules *r, size_t i)
{
	return (char *)r->rules + i * r->elem_size;
}

void *
regex_rules_reserve(struct regex_rules *r)
{
	size_t cap = r->cap ? r->cap * 2 : 16;
	void *grown;

	if (r->n == r->cap) {
		grown = realloc(r->rules, cap * r->elem_size);
		if (grown == NULL)
			return NULL;
		r->rules = grown;
		r->cap = cap;
	}
	return memset(regex_rules_at(r, r->n), 0, r->elem_size);
}

size_t
regex_rules_push(struct regex_rules *r)
{
	return r->n++;
}

pcre2_code *
regex_rules_compile(const char *pattern, struct tern_err *err, const char *fmt, ...)
{
	int code;
	PCRE2_SIZE off;
	PCRE2_UCHAR msg[160];
	char what[sizeof(err->msg)];
	va_list ap;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_CASELESS,
				       &code, &off, NULL);

	if (re == NULL) {
		pcre2_get_error_message(code, msg, sizeof(msg));
		va_start(ap, fmt);
		vsnprintf(what, sizeof(what), fmt, ap);
		va_end(ap);
		tern_err_set(err, 0, NULL, "%s at offset %zu: %s", what, (size_t)off, (char *)msg);
		return NULL;
	}
	/* Without JIT (an unsupported CPU) PCRE2 interprets: slower, still correct. */
	(void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
	return re;
}

bool
regex_rules_match(struct regex_rules *r, const pcre2_code *re, const char *s, size_t len)
{
	return pcre2_match(re, (PCRE2_SPTR)s, len, 0, 0, r->md, NULL) >= 0;
}
