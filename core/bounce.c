// SPDX-License-Identifier: MIT
/*
 * bounce: reply -> category, by an ordered list of PCRE2 rules.
 *
 * Every failed attempt is classified, and providers repeat the same few
 * hundred replies millions of times, so the cost that matters is the cached
 * one: a direct-mapped cache keyed by (site, normalised reply) answers a
 * repeat with one hash and one memcmp; only a new reply walks the rules.
 * Patterns are compiled and JIT-compiled once, when policy configures them,
 * and one match data block serves every match of the set (one thread only).
 *
 * A new reply (Gmail's carry a session id, so many are new) must still be
 * cheap with hundreds of rules, and one regex scan costs 0.3-1 us. So each
 * rule also yields literals that any match must contain (the longest plain
 * run of each top-level branch: "user unknown|no such user" needs "user
 * unknown" or "no such user"); one Aho-Corasick pass over the reply finds
 * which literals occur, and only rules with one of theirs present (or whose
 * pattern yields no trustworthy literal) run their regex, in order, so the
 * first matching rule still wins.
 */
#include "tern/bounce.h"
#include "tern/regex_rules.h"
#include "tern/util_acmatch.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The longest literal kept per branch; a longer one is cut (a prefix is as necessary). */
#define BOUNCE_LITERAL_MAX 64

/* Big enough for every distinct reply of a busy shard's hour; a slot is ~40 bytes + the key. */
#define BOUNCE_CACHE_SLOTS 4096

static const char *const category_names[BOUNCE_N_CATEGORIES] = {
	"bad-mailbox",	       "bad-domain",	 "inactive-mailbox",  "routing-errors",
	"no-answer-from-host", "message-expired", "bad-connection",    "bad-configuration",
	"quota-issues",	       "spam-related",	 "policy-related",    "content-related",
	"virus-related",       "protocol-errors", "relaying-issues",   "invalid-sender",
	"other",	       "authentication-failure", "rate-limited",
};

struct bounce_rule {
	char *name, *file, *pattern;
	int line;
	bool filtered; /* only run when one of its literals occurs */
	enum bounce_category category;
	pcre2_code *re, *site_re;
};

struct cache_slot {
	uint64_t hash;
	char *key; /* site '\0' normalised reply; NULL when empty */
	size_t keylen;
	int rule; /* index, or -1 for no match */
};

struct bounce_rules {
	struct regex_rules set; /* of struct bounce_rule */
	struct acmatch *literals; /* built at the first classification after a change */
	uint64_t *candidates;      /* one bit per rule: a literal of it occurs */
	struct cache_slot cache[BOUNCE_CACHE_SLOTS];
};

const char *
bounce_category_name(enum bounce_category c)
{
	if ((int)c < 0 || c >= BOUNCE_N_CATEGORIES)
		return NULL;
	return category_names[c];
}

int
bounce_category_parse(const char *name, enum bounce_category *out)
{
	int i;

	for (i = 0; i < BOUNCE_N_CATEGORIES; i++)
		if (strcmp(name, category_names[i]) == 0) {
			*out = (enum bounce_category)i;
			return 0;
		}
	return -1;
}

/* ---- normalisation ---- */

struct norm {
	char *out;
	size_t n, cap;
	bool space; /* a separator is pending before the next word */
	char code[4], enh[12];
};

static void
norm_putc(struct norm *w, char c)
{
	if (c == ' ' || c == '\t' || (unsigned char)c < 0x20 || c == 0x7f) {
		w->space = w->n > 0;
		return;
	}
	if (w->space) {
		/* A separator only with room for the word after it: no trailing space when cut. */
		if (w->n + 2 >= w->cap)
			return;
		w->out[w->n++] = ' ';
		w->space = false;
	}
	if (w->n + 1 < w->cap)
		w->out[w->n++] = c;
}

static bool
is_code(const char *p, size_t len)
{
	return len >= 3 && p[0] >= '2' && p[0] <= '5' && isdigit((unsigned char)p[1]) &&
	       isdigit((unsigned char)p[2]) && (len == 3 || p[3] == ' ' || p[3] == '-' ||
						p[3] == '\r' || p[3] == '\n');
}

/* Length of an enhanced status code (class.subject.detail) at p, or 0. */
static size_t
enh_len(const char *p, size_t len)
{
	size_t i = 0, part, digits;

	if (len < 5 || (p[0] != '2' && p[0] != '4' && p[0] != '5') || p[1] != '.')
		return 0;
	for (i = 2, part = 0; part < 2; part++) {
		for (digits = 0; i < len && isdigit((unsigned char)p[i]) && digits < 3; i++)
			digits++;
		if (digits == 0 || (part == 0 && (i >= len || p[i] != '.')))
			return 0;
		if (part == 0)
			i++;
	}
	if (i < len && !isspace((unsigned char)p[i]))
		return 0;
	return i;
}

/*
 * At a word start: the length of this reply's own `550-` / `550 5.1.1 ` prefix,
 * or 0. At a line start `550 ` is one too (the last line of a multi-line
 * reply); inside a line it is text ("said: 550 ..."), unless the enhanced
 * code follows.
 */
static size_t
own_prefix(const struct norm *w, const char *p, size_t len, bool line_start)
{
	size_t i, e = strlen(w->enh);

	if (!w->code[0] || len < 4 || memcmp(p, w->code, 3) != 0 || (p[3] != '-' && p[3] != ' '))
		return 0;
	i = 4;
	if (e && len - i >= e && memcmp(p + i, w->enh, e) == 0 &&
	    (len - i == e || isspace((unsigned char)p[i + e])))
		return i + e;
	return p[3] == '-' || line_start ? i : 0;
}

/* The reply's code and enhanced code, from its first line; returns where the text starts. */
static size_t
norm_head(struct norm *w, const char *p, size_t len)
{
	size_t i = 0, e;

	if (!is_code(p, len))
		return 0;
	memcpy(w->code, p, 3);
	i = len > 3 ? 4 : 3;
	e = enh_len(p + i, len - i);
	if (e > 0 && e < sizeof(w->enh)) {
		memcpy(w->enh, p + i, e);
		i += e;
	}
	return i;
}

size_t
bounce_normalise(const char *reply, size_t len, char *out, size_t outsz)
{
	struct norm w = {.out = out, .cap = outsz};
	size_t i, skip;
	bool word_start = true, line_start = false;

	if (outsz == 0)
		return 0;
	while (len > 0 && isspace((unsigned char)*reply))
		reply++, len--;
	i = norm_head(&w, reply, len);
	for (const char *c = w.code; *c; c++)
		norm_putc(&w, *c);
	norm_putc(&w, ' ');
	for (const char *c = w.enh; *c; c++)
		norm_putc(&w, *c);
	norm_putc(&w, ' ');
	for (; i < len; i++) {
		if (word_start && (skip = own_prefix(&w, reply + i, len - i, line_start)) > 0) {
			i += skip - 1;
			norm_putc(&w, ' ');
			continue;
		}
		norm_putc(&w, reply[i]);
		word_start = isspace((unsigned char)reply[i]) || (unsigned char)reply[i] < 0x20;
		line_start = reply[i] == '\n' || (line_start && reply[i] == '\r');
	}
	out[w.n] = '\0';
	return w.n;
}

/* ---- rule sets ---- */

struct bounce_rules *
bounce_rules_new(void)
{
	struct bounce_rules *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	if (regex_rules_init(&r->set, sizeof(struct bounce_rule)) < 0) {
		free(r); r = NULL;
	}
	return r;
}

static struct bounce_rule *
rule_at(const struct bounce_rules *r, size_t i)
{
	return regex_rules_at(&r->set, i);
}

static void
rule_deinit(void *p)
{
	struct bounce_rule *rule = p;

	pcre2_code_free(rule->re);
	pcre2_code_free(rule->site_re);
	free(rule->name); rule->name = NULL;
	free(rule->file); rule->file = NULL;
	free(rule->pattern); rule->pattern = NULL;
}

static void
prefilter_free(struct bounce_rules *r)
{
	acmatch_free(r->literals);
	r->literals = NULL;
	free(r->candidates); r->candidates = NULL;
}

/* Forget every result: they name rules by index, which a change of the rules invalidates. */
static void
cache_clear(struct bounce_rules *r)
{
	size_t i;

	for (i = 0; i < BOUNCE_CACHE_SLOTS; i++) {
		free(r->cache[i].key);
		r->cache[i].key = NULL;
	}
}

void
bounce_rules_free(struct bounce_rules *r)
{
	if (r == NULL)
		return;
	regex_rules_deinit(&r->set, rule_deinit);
	cache_clear(r);
	prefilter_free(r);
	free(r);
}

size_t
bounce_rules_count(const struct bounce_rules *r)
{
	return r->set.n;
}

int
bounce_rules_add(struct bounce_rules *r, const struct bounce_rule_def *def, struct tern_err *err)
{
	struct bounce_rule rule = {.line = def->line, .category = def->category};
	struct bounce_rule *slot = regex_rules_reserve(&r->set);

	if (slot == NULL) {
		tern_err_set(err, 0, NULL, "bounce rule '%s': out of memory", def->name);
		return -1;
	}
	rule.re = regex_rules_compile(def->pattern, err, "bounce rule '%s': bad pattern", def->name);
	if (rule.re == NULL)
		return -1;
	if (def->site) {
		rule.site_re = regex_rules_compile(def->site, err, "bounce rule '%s': bad site",
						   def->name);
		if (rule.site_re == NULL)
			goto fail;
	}
	rule.name = strdup(def->name);
	rule.file = strdup(def->file ? def->file : "?");
	rule.pattern = strdup(def->pattern);
	if (rule.name == NULL || rule.file == NULL || rule.pattern == NULL) {
		tern_err_set(err, 0, NULL, "bounce rule '%s': out of memory", def->name);
		goto fail;
	}
	*slot = rule;
	regex_rules_push(&r->set);
	prefilter_free(r);
	cache_clear(r);
	return 0;
fail:
	rule_deinit(&rule);
	return -1;
}

/* ---- the literal prefilter ---- */

/*
 * The literals of one pattern, read with just enough of PCRE2's syntax to be
 * sure: plain characters and escaped punctuation extend a run; anything else
 * (classes, groups, ., anchors, \d-like escapes) ends it; a quantifier that
 * allows zero takes its character back out. Anything not understood (option
 * settings, backtracking verbs, \x, \Q, back references, POSIX classes)
 * makes the pattern unfiltered, which costs time, never a wrong answer.
 */
struct lit_reader {
	const char *p;
	size_t i;
	char run[BOUNCE_LITERAL_MAX], best[BOUNCE_LITERAL_MAX];
	size_t rn, bn;
	bool last_literal; /* the previous atom is the last byte of run */
};

static void
lit_end_run(struct lit_reader *l)
{
	if (l->rn > l->bn) {
		memcpy(l->best, l->run, l->rn);
		l->bn = l->rn;
	}
	l->rn = 0;
	l->last_literal = false;
}

static void
lit_char(struct lit_reader *l, char c)
{
	if (l->rn == BOUNCE_LITERAL_MAX)
		lit_end_run(l);
	l->run[l->rn++] = (char)tolower((unsigned char)c);
	l->last_literal = true;
}

/* Skip a [...] class starting at p[i] == '['; false for a form not understood. */
static bool
lit_skip_class(struct lit_reader *l)
{
	const char *p = l->p;
	size_t j = l->i + 1;

	j += p[j] == '^';
	j += p[j] == ']';
	for (; p[j] && p[j] != ']'; j++) {
		if (p[j] == '[' && p[j + 1] == ':')
			return false;
		if (p[j] == '\\' && p[j + 1])
			j++;
	}
	if (!p[j])
		return false;
	l->i = j;
	return true;
}

/* Skip a (...) group starting at p[i] == '('; false for option settings and verbs. */
static bool
lit_skip_group(struct lit_reader *l)
{
	const char *p = l->p;
	int depth = 0;

	if (p[l->i + 1] == '*' || (p[l->i + 1] == '?' && strchr("imnsxJU-^)", p[l->i + 2])))
		return false;
	for (; p[l->i]; l->i++) {
		if (p[l->i] == '\\' && p[l->i + 1])
			l->i++;
		else if (p[l->i] == '[' && !lit_skip_class(l))
			return false;
		else if (p[l->i] == '(')
			depth++;
		else if (p[l->i] == ')' && --depth == 0)
			return true;
	}
	return false;
}

/* A quantifier at p[i]: take a zero-allowing one's character back; skip a lazy/possessive mark. */
static bool
lit_quantifier(struct lit_reader *l)
{
	const char *p = l->p;
	char q = p[l->i];
	bool zero = q == '?' || q == '*';

	if (q == '{') {
		/* {n}, {n,} or {n,m}; anything else is a literal '{' to PCRE2 too. */
		size_t j = l->i + 1, lead = strspn(p + j, "0");

		if (!isdigit((unsigned char)p[j]))
			return false;
		zero = !isdigit((unsigned char)p[j + lead]);
		j += strspn(p + j, "0123456789");
		if (p[j] == ',')
			j += 1 + strspn(p + j + 1, "0123456789");
		if (p[j] != '}')
			return false;
		l->i = j;
	}
	if (zero && l->last_literal)
		l->rn--;
	lit_end_run(l);
	if (p[l->i + 1] == '?' || p[l->i + 1] == '+')
		l->i++;
	return true;
}

/* One atom at p[i]; -1 when the pattern cannot be filtered. */
static int
lit_atom(struct lit_reader *l)
{
	const char *p = l->p;
	char c = p[l->i], e;

	if (c == '?' || c == '*' || c == '+')
		return lit_quantifier(l) ? 0 : -1;
	if (c == '{' && lit_quantifier(l))
		return 0;
	if (c == '\\') {
		e = p[++l->i];
		if (e == '\0')
			return -1;
		if (!isalnum((unsigned char)e)) {
			lit_char(l, e);
			return 0;
		}
		if (!strchr("dDwWsSbBhHvV", e))
			return -1;
		lit_end_run(l);
		return 0;
	}
	if (c == '[')
		return lit_end_run(l), lit_skip_class(l) ? 0 : -1;
	if (c == '(')
		return lit_end_run(l), lit_skip_group(l) ? 0 : -1;
	if (c == ')')
		return -1;
	if (c == '.' || c == '^' || c == '$') {
		lit_end_run(l);
		return 0;
	}
	lit_char(l, c);
	return 0;
}

/* Add the pattern's literals to m as id; false when it must always be tried. */
static bool
literals_add(struct acmatch *m, const char *pattern, uint32_t id)
{
	struct lit_reader l = {.p = pattern};

	for (;; l.i++) {
		if (l.p[l.i] == '|' || l.p[l.i] == '\0') {
			lit_end_run(&l);
			if (l.bn == 0 || acmatch_add(m, l.best, l.bn, id) < 0)
				return false;
			if (l.p[l.i] == '\0')
				return true;
			l.bn = 0;
			continue;
		}
		if (lit_atom(&l) < 0)
			return false;
	}
}

/* The literal matcher for the current rules; -1 when memory is short (every rule is then tried). */
static int
prefilter_build(struct bounce_rules *r)
{
	size_t i;

	r->literals = acmatch_new();
	r->candidates = calloc((r->set.n + 63) / 64 + 1, sizeof(*r->candidates));
	if (r->literals == NULL || r->candidates == NULL)
		goto fail;
	for (i = 0; i < r->set.n; i++)
		rule_at(r, i)->filtered = literals_add(r->literals, rule_at(r, i)->pattern, (uint32_t)i);
	if (acmatch_build(r->literals) < 0)
		goto fail;
	return 0;
fail:
	prefilter_free(r);
	return -1;
}

static void
candidate_hit(uint32_t id, void *arg)
{
	uint64_t *bits = arg;

	bits[id / 64] |= 1ULL << (id % 64);
}

/* Mark the rules whose literals occur in text (folded to lower case like the literals). */
static void
prefilter_scan(struct bounce_rules *r, const char *text, size_t len)
{
	char lower[BOUNCE_REPLY_MAX];
	size_t i;

	for (i = 0; i < len && i < sizeof(lower); i++)
		lower[i] = (char)tolower((unsigned char)text[i]);
	memset(r->candidates, 0, ((r->set.n + 63) / 64 + 1) * sizeof(*r->candidates));
	acmatch_scan(r->literals, lower, i, candidate_hit, r->candidates);
}

static bool
is_candidate(const struct bounce_rules *r, size_t i)
{
	return r->literals == NULL || !rule_at(r, i)->filtered ||
	       (r->candidates[i / 64] >> (i % 64) & 1);
}

static int
first_match(struct bounce_rules *r, const char *site, const char *text, size_t len)
{
	size_t i;

	if (r->literals == NULL)
		(void)prefilter_build(r);
	if (r->literals)
		prefilter_scan(r, text, len);
	for (i = 0; i < r->set.n; i++) {
		const struct bounce_rule *rule = rule_at(r, i);

		if (!is_candidate(r, i))
			continue;
		if (rule->site_re && (!*site || !regex_rules_match(&r->set, rule->site_re, site, strlen(site))))
			continue;
		if (regex_rules_match(&r->set, rule->re, text, len))
			return (int)i;
	}
	return -1;
}

/* FNV-1a: a few ns for a reply, and spreads the near-identical replies of one provider. */
static uint64_t
hash_bytes(const char *p, size_t n)
{
	uint64_t h = 14695981039346656037ULL;

	while (n--)
		h = (h ^ (unsigned char)*p++) * 1099511628211ULL;
	return h;
}

static struct bounce_result
result_of(const struct bounce_rules *r, int idx)
{
	struct bounce_result res = {.category = BOUNCE_OTHER};

	if (idx >= 0) {
		const struct bounce_rule *rule = rule_at(r, (size_t)idx);

		res.category = rule->category;
		res.rule = rule->name;
		res.file = rule->file;
		res.line = rule->line;
	}
	return res;
}

/* Remember a result; the slot's old entry is dropped (a failed copy only skips caching). */
static void
cache_put(struct cache_slot *slot, uint64_t h, const char *key, size_t keylen, int idx)
{
	char *copy = malloc(keylen);

	if (copy == NULL)
		return;
	memcpy(copy, key, keylen);
	free(slot->key);
	slot->key = copy;
	slot->keylen = keylen;
	slot->hash = h;
	slot->rule = idx;
}

struct bounce_result
bounce_classify(struct bounce_rules *r, const char *reply, size_t len, const char *site)
{
	char key[BOUNCE_REPLY_MAX + 256];
	size_t sitelen, n, keylen;
	struct cache_slot *slot;
	uint64_t h;
	int idx;

	site = site ? site : "";
	sitelen = strnlen(site, 255);
	memcpy(key, site, sitelen);
	key[sitelen] = '\0';
	n = bounce_normalise(reply, len, key + sitelen + 1, BOUNCE_REPLY_MAX);
	keylen = sitelen + 1 + n;
	h = hash_bytes(key, keylen);
	slot = &r->cache[h % BOUNCE_CACHE_SLOTS];
	if (slot->key && slot->hash == h && slot->keylen == keylen && memcmp(slot->key, key, keylen) == 0)
		return result_of(r, slot->rule);
	idx = first_match(r, key, key + sitelen + 1, n);
	cache_put(slot, h, key, keylen, idx);
	return result_of(r, idx);
}
