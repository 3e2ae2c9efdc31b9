// SPDX-License-Identifier: MIT
/*
 * bounce_bench: the cost of one bounce classification with 500 rules: the
 * default rules (lua/tern/bounce_rules.lua) behind 464 operator rules that
 * never match, so every new reply walks at least 464 expressions first.
 * Replies are the provider replies of a TSV file (column 2), e.g.
 * tests/data/provider-responses.tsv. Two figures, medians of 200 batches:
 *   cached   - the same replies again (what a provider's repeated replies cost)
 *   uncached - every reply made new by a counter (as Gmail's session ids do)
 *
 * Build and run (after `make`):
 *   cc -std=gnu11 -O2 -Iinclude $(pkg-config --cflags luajit) -o build/rel/bounce_bench \
 *      bench/bounce_bench.c build/rel/libtern.a $(pkg-config --libs luajit libcares openssl \
 *      rocksdb libzstd libpcre2-8) -lev -lpthread -lm
 *   build/rel/bounce_bench tests/data/provider-responses.tsv
 */
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tern/bounce.h"
#include "tern/lua_bounce.h"

#define MAX_REPLIES 512
#define BATCHES 200

static const char *setup =
	"package.path = 'lua/?.lua;' .. package.path\n"
	"local extra = {}\n"
	"for i = 1, 464 do\n"
	"  extra[i] = { name = 'op-' .. i, category = 'policy-related',\n"
	"               pattern = ('mx%d\\\\.example\\\\.net (rejected|refused)|customer filter %d|\\\\[XR%d\\\\]'):format(i, i, i) }\n"
	"end\n"
	"tern.bounce.configure { extra = extra }\n";

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
read_replies(const char *path, char **out)
{
	char line[4096];
	int n = 0;
	FILE *fp = fopen(path, "r");

	if (fp == NULL) {
		perror(path);
		exit(1);
	}
	while (n < MAX_REPLIES && fgets(line, sizeof(line), fp)) {
		char *a = strchr(line, '\t'), *b = a ? strchr(a + 1, '\t') : NULL;

		if (b && strncmp(line, "provider\t", 9) != 0)
			out[n++] = strndup(a + 1, (size_t)(b - a - 1));
	}
	fclose(fp);
	return n;
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Median over batches of the time per classification, in microseconds. */
static double
measure(struct bounce_rules *r, char **replies, int n, int unique)
{
	static double per[BATCHES];
	static long counter;
	char buf[4200];
	int b, i, len;

	for (b = 0; b < BATCHES; b++) {
		double t = now();

		for (i = 0; i < n; i++) {
			len = unique ? snprintf(buf, sizeof(buf), "%s %ld", replies[i], counter++)
				     : snprintf(buf, sizeof(buf), "%s", replies[i]);
			bounce_classify(r, buf, (size_t)len, "");
		}
		per[b] = (now() - t) / n * 1e6;
	}
	qsort(per, BATCHES, sizeof(per[0]), cmp);
	return per[BATCHES / 2];
}

int
main(int argc, char **argv)
{
	char *replies[MAX_REPLIES];
	lua_State *L = luaL_newstate();
	struct bounce_rules *r;
	int n;

	if (argc < 2) {
		fprintf(stderr, "usage: bounce_bench REPLIES.tsv\n");
		return 2;
	}
	n = read_replies(argv[1], replies);
	luaL_openlibs(L);
	lua_newtable(L);
	lua_bounce_open(L);
	lua_setglobal(L, "tern");
	if (luaL_dostring(L, setup) != 0) {
		fprintf(stderr, "%s\n", lua_tostring(L, -1));
		return 1;
	}
	r = lua_bounce_rules(L);
	printf("rules %zu, replies %d\n", bounce_rules_count(r), n);
	measure(r, replies, n, 0); /* warm the cache */
	printf("cached:   median %.3f us per classification\n", measure(r, replies, n, 0));
	printf("uncached: median %.3f us per classification\n", measure(r, replies, n, 1));
	lua_close(L);
	return 0;
}
