// SPDX-License-Identifier: MIT
/*
 * automation_bench: the cost of matching one reply against a path's shaping
 * automation rules (automation_match: normalisation plus PCRE2 JIT per
 * pattern). A path is watched by N rules of 2 patterns each, written like
 * the providers' deferral texts ("4\.7\.28", "TSS0[1-9]", ...), none of
 * which matches, so every reply walks them all: the worst case, since a
 * failure that matches stops at its rule. Replies are the provider replies
 * of a TSV file (column 2), e.g. tests/data/provider-responses.tsv.
 * Median of 200 batches, for 10, 30 and 100 rules.
 *
 * Build and run (after `make`):
 *   cc -std=gnu11 -O2 -Iinclude -o build/rel/automation_bench bench/automation_bench.c \
 *      build/rel/libtern.a $(pkg-config --libs luajit libcares openssl rocksdb libzstd \
 *      libpcre2-8) -lev -lpthread -lm
 *   build/rel/automation_bench tests/data/provider-responses.tsv
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tern/automation.h"

#define MAX_REPLIES 512
#define BATCHES 200

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static size_t
read_replies(const char *path, char **out)
{
	char line[4096];
	size_t n = 0;
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return 0;
	while (n < MAX_REPLIES && fgets(line, sizeof(line), f)) {
		char *tab = strchr(line, '\t'), *end;

		if (tab == NULL || (end = strchr(tab + 1, '\t')) == NULL || strncmp(line, "provider", 8) == 0)
			continue;
		*end = '\0';
		out[n++] = strdup(tab + 1);
	}
	fclose(f);
	return n;
}

/* N rules that never match a real reply, shaped like deferral patterns. */
static struct automation_rules *
make_rules(int n, uint16_t *ids)
{
	struct automation_rules *r = automation_rules_new();
	char p1[64], p2[64];
	struct tern_err err;
	int i;

	for (i = 0; i < n; i++) {
		struct automation_rule_def d = {.patterns = {p1, p2}, .n_patterns = 2,
						.action = AUTOMATION_SUSPEND, .duration = 60,
						.recovery = 300, .trigger_n = 1, .file = "bench", .line = i};

		snprintf(p1, sizeof(p1), "4\\.7\\.%d[0-9]{3}", i);
		snprintf(p2, sizeof(p2), "TSX%02d deferred|unusual rate %d", i, i);
		if (automation_rules_add(r, &d, &err) < 0) {
			fprintf(stderr, "%s\n", err.msg);
			exit(1);
		}
		ids[i] = (uint16_t)i;
	}
	return r;
}

static double
median_per_reply(struct automation_rules *r, const uint16_t *ids, int n, char **replies,
		 size_t n_replies)
{
	double t[BATCHES], start;
	size_t b, i, hits = 0;

	for (b = 0; b < BATCHES; b++) {
		start = now();
		for (i = 0; i < n_replies; i++)
			hits += automation_match(r, ids, (size_t)n, replies[i], strlen(replies[i])) != NULL;
		t[b] = (now() - start) / (double)n_replies;
	}
	if (hits)
		fprintf(stderr, "unexpected: %zu matches\n", hits);
	qsort(t, BATCHES, sizeof(t[0]), cmp_double);
	return t[BATCHES / 2];
}

int
main(int argc, char **argv)
{
	static const int sizes[] = {10, 30, 100};
	char *replies[MAX_REPLIES];
	uint16_t ids[100];
	size_t n_replies, s;

	if (argc != 2 || (n_replies = read_replies(argv[1], replies)) == 0) {
		fprintf(stderr, "usage: automation_bench provider-responses.tsv\n");
		return 2;
	}
	printf("%zu replies\n", n_replies);
	for (s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		struct automation_rules *r = make_rules(sizes[s], ids);

		printf("%3d rules: %.2f us per reply\n", sizes[s],
		       median_per_reply(r, ids, sizes[s], replies, n_replies) * 1e6);
		automation_rules_free(r);
	}
	return 0;
}
