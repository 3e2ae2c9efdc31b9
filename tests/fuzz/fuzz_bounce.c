// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the bounce reply normaliser, the classifier's cache
 * and its literal prefilter. The first byte picks the output size (so
 * truncation is exercised at every length); the rest is the reply. The
 * normalised form must keep the promises of bounce.h: NUL-terminated within
 * the buffer, no control bytes, single spaces, none at either end. The reply
 * is then classified twice against a small rule set, with and without a
 * site: the cached answer must equal the first. Last, the input's first line
 * is taken as a rule's pattern and the rest as the reply: the classifier
 * (which may skip the regex when the pattern's literals are absent) must say
 * "match" exactly when PCRE2 itself matches the normalised reply.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tern/bounce.h"

static struct bounce_rules *rules;

static const struct bounce_rule_def defs[] = {
	{"scoped", BOUNCE_SPAM_RELATED, "block ?list", "example\\.$", "fuzz", 1},
	{"unknown", BOUNCE_BAD_MAILBOX, "user (unknown|not found)|5\\.1\\.1", NULL, "fuzz", 2},
	{"code", BOUNCE_POLICY_RELATED, "^\\d{3} [45]\\.7\\.\\d+ ", NULL, "fuzz", 3},
	{"words", BOUNCE_OTHER, "(try|again|later)+\\b.*\\bnow", NULL, "fuzz", 4},
};

static void
check_normalised(const char *out, size_t n, size_t outsz)
{
	size_t i;

	if (n >= outsz || out[n] != '\0' || strlen(out) != n)
		abort();
	if (n > 0 && (out[0] == ' ' || out[n - 1] == ' '))
		abort();
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)out[i];

		if (c < 0x20 || c == 0x7f || (c == ' ' && i > 0 && out[i - 1] == ' '))
			abort();
	}
}

static void
check_classify(const char *reply, size_t len, const char *site)
{
	struct bounce_result a = bounce_classify(rules, reply, len, site);
	struct bounce_result b = bounce_classify(rules, reply, len, site);

	if (a.category != b.category || a.rule != b.rule || !bounce_category_name(a.category))
		abort();
}

static bool
pcre2_says(const char *pattern, size_t plen, const char *text, size_t len)
{
	int code, rc;
	PCRE2_SIZE off;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, plen, PCRE2_CASELESS, &code, &off, NULL);
	pcre2_match_data *md = pcre2_match_data_create(1, NULL);

	if (re == NULL || md == NULL)
		abort();
	rc = pcre2_match(re, (PCRE2_SPTR)text, len, 0, 0, md, NULL);
	pcre2_match_data_free(md);
	pcre2_code_free(re);
	return rc >= 0;
}

/* Patterns with a NUL byte cannot be rules (they are C strings); they are skipped. */
static void
check_prefilter(const char *data, size_t size)
{
	const char *nl = memchr(data, '\n', size);
	char pattern[256], out[BOUNCE_REPLY_MAX];
	struct bounce_rule_def def = {"fuzzed", BOUNCE_BAD_MAILBOX, pattern, NULL, "fuzz", 1};
	struct bounce_rules *r;
	struct tern_err err;
	size_t plen, n;
	bool got;

	if (nl == NULL || (plen = (size_t)(nl - data)) >= sizeof(pattern) || memchr(data, '\0', plen))
		return;
	memcpy(pattern, data, plen);
	pattern[plen] = '\0';
	r = bounce_rules_new();
	if (r == NULL)
		abort();
	if (bounce_rules_add(r, &def, &err) == 0) {
		got = bounce_classify(r, nl + 1, size - plen - 1, "").rule != NULL;
		n = bounce_normalise(nl + 1, size - plen - 1, out, sizeof(out));
		if (got != pcre2_says(pattern, plen, out, n))
			abort();
	}
	bounce_rules_free(r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char out[BOUNCE_REPLY_MAX];
	struct tern_err err;
	size_t outsz, n, i;

	if (rules == NULL) {
		rules = bounce_rules_new();
		for (i = 0; i < sizeof(defs) / sizeof(defs[0]); i++)
			if (rules == NULL || bounce_rules_add(rules, &defs[i], &err) < 0)
				abort();
	}
	if (size == 0)
		return 0;
	outsz = (size_t)data[0] * 4 + 1;
	n = bounce_normalise((const char *)data + 1, size - 1, out, outsz);
	check_normalised(out, n, outsz);
	check_classify((const char *)data + 1, size - 1, "");
	check_classify((const char *)data + 1, size - 1, "mx.example.");
	check_prefilter((const char *)data + 1, size - 1);
	return 0;
}
