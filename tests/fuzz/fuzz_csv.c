// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for CSV records (core/util_csv.c), as `tern suppress
 * import` reads them: any line splits or fails with -EINVAL, every field is
 * NUL-terminated inside the line, and the fields written back with
 * util_csv_field split again into the same fields.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tern/util.h"
#include "tern/util_csv.h"

#define MAX_FIELDS 16

static void
check(int ok)
{
	if (!ok)
		abort();
}

static void
round_trip(char **f, int n)
{
	char *again[MAX_FIELDS];
	struct buf b;
	int i, m;

	buf_init(&b);
	for (i = 0; i < n; i++) {
		if (i)
			buf_append_char(&b, ',');
		util_csv_field(&b, f[i]);
	}
	buf_append_char(&b, '\0');
	m = util_csv_split(b.data, again, MAX_FIELDS);
	check(m == n);
	for (i = 0; i < n; i++)
		check(strcmp(again[i], f[i]) == 0);
	buf_deinit(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = malloc(size + 1), *f[MAX_FIELDS];
	int n, i;

	if (line == NULL)
		return 0;
	memcpy(line, data, size);
	line[size] = '\0';
	n = util_csv_split(line, f, MAX_FIELDS);
	check(n == -EINVAL || (n >= 1 && n <= MAX_FIELDS));
	for (i = 0; i < n; i++)
		check(f[i] >= line && f[i] + strlen(f[i]) <= line + size);
	if (n > 0)
		round_trip(f, n);
	free(line);
	return 0;
}
