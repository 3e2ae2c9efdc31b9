// SPDX-License-Identifier: MIT
/*
 * Tests for core/log.c's rate limit: a call site flooded from several threads
 * writes one line per interval, and the next line says how many were held back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tern/log.h"

#define FLOOD_THREADS 4
#define FLOOD_LINES 10000

static char path[] = "/tmp/tern-test-log-XXXXXX";

static char *
slurp(void)
{
	static char text[4096];
	FILE *f = fopen(path, "r");
	size_t n;

	assert_non_null(f);
	n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	return text;
}

static int
count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void *
flood(void *arg)
{
	int i;

	for (i = 0; i < FLOOD_LINES; i++)
		log_write_ratelimited(arg, LOG_LEVEL_WARN, "test", "accept: %s", "Too many open files");
	return NULL;
}

/* Regression: each EMFILE from accept() wrote a line, 2.6 million lines in 15 s. */
static void
test_ratelimit_one_line_then_summary(void **state)
{
	struct log_ratelimit rl = LOG_RATELIMIT_INIT(0.3);
	pthread_t t[FLOOD_THREADS];
	const char *text;
	int i;

	for (i = 0; i < FLOOD_THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, flood, &rl), 0);
	for (i = 0; i < FLOOD_THREADS; i++)
		pthread_join(t[i], NULL);
	text = slurp();
	/* On a loaded machine the flood may outlast one interval, never many. */
	assert_in_range(count_lines(text), 1, 3);
	assert_non_null(strstr(text, "warn test: accept: Too many open files"));
	usleep(350 * 1000);
	log_write_ratelimited(&rl, LOG_LEVEL_WARN, "test", "accept: %s", "again");
	text = slurp();
	assert_non_null(strstr(text, "accept: again ("));
	assert_non_null(strstr(text, " more in the last "));
	assert_int_equal(rl.suppressed, 0);
}

/* The macro keeps one limit per call site: another site still gets its line. */
static void
test_ratelimit_per_call_site(void **state)
{
	int i;

	for (i = 0; i < 100; i++)
		log_ratelimited(LOG_LEVEL_WARN, "test", "site one %d", i);
	log_ratelimited(LOG_LEVEL_WARN, "test", "site two");
	assert_non_null(strstr(slurp(), "site one 0"));
	assert_null(strstr(slurp(), "site one 1"));
	assert_non_null(strstr(slurp(), "site two"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ratelimit_one_line_then_summary),
	    cmocka_unit_test(test_ratelimit_per_call_site),
	};
	int fd = mkstemp(path);
	int rc;

	if (fd < 0)
		return 1;
	close(fd);
	if (log_init(LOG_LEVEL_INFO, path) < 0)
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	unlink(path);
	return rc;
}
