// SPDX-License-Identifier: MIT
/*
 * `tern import pmta pmta.conf [--out DIR]`: a PowerMTA configuration
 * becomes a policy directory. The file is parsed here by the pure parser
 * (core/pmta_conf.c, fuzzed), so a syntax error is reported with its line
 * before anything is written; the tree then goes as JSON to the Lua half
 * (lua/tern/pmta.lua), which maps directives to tables and writes files.
 */
#include "tern/cli.h"
#include "tern/pmta_conf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CLI_IMPORT_USAGE "usage: tern import pmta pmta.conf [--out DIR]\n"

static int
read_all(const char *path, struct buf *out)
{
	FILE *f = fopen(path, "rb");
	char chunk[65536];
	size_t n;
	int rc = 0;

	if (f == NULL)
		return -errno;
	while (rc == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		rc = buf_append(out, chunk, n);
	if (ferror(f))
		rc = -EIO;
	fclose(f);
	return rc;
}

/* The tree as JSON in a fresh temporary file (removed by the Lua half once read). */
static int
write_tree(const struct pmta_node *root, char *path, size_t n)
{
	struct buf json;
	int fd, rc;

	snprintf(path, n, "%s/tern-pmta-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	buf_init(&json);
	rc = pmta_conf_to_json(root, &json);
	fd = rc == 0 ? mkstemp(path) : -1;
	if (fd < 0 || write(fd, json.data, json.len) != (ssize_t)json.len)
		rc = -errno;
	if (fd >= 0)
		close(fd);
	buf_deinit(&json);
	return rc;
}

static int
parse_file(const char *conf, struct pmta_node *root)
{
	struct tern_err err;
	struct buf text;
	int rc;

	buf_init(&text);
	rc = read_all(conf, &text);
	if (rc < 0)
		fprintf(stderr, "tern: cannot read %s: %s\n", conf, strerror(-rc));
	else if ((rc = pmta_conf_parse(text.data ? text.data : "", text.len, root, &err)) < 0)
		fprintf(stderr, "%s: %s\n", conf, err.msg);
	buf_deinit(&text);
	return rc;
}

int
cli_import_main(int argc, char **argv)
{
	char tree[512];
	char *args[8] = {argv[0], "--tree", tree, "--conf", NULL, "--out", "policy", NULL};
	struct pmta_node root;
	int i, rc;

	if (argc < 3 || strcmp(argv[1], "pmta") != 0) {
		fputs(CLI_IMPORT_USAGE, stderr);
		return 2;
	}
	args[4] = argv[2];
	for (i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--out") != 0 || i + 1 >= argc) {
			fputs(CLI_IMPORT_USAGE, stderr);
			return 2;
		}
		args[6] = argv[++i];
	}
	if (parse_file(argv[2], &root) < 0)
		return 2;
	rc = write_tree(&root, tree, sizeof(tree));
	pmta_conf_deinit(&root);
	if (rc < 0) {
		fprintf(stderr, "tern: cannot write a temporary file: %s\n", strerror(-rc));
		return 2;
	}
	rc = cli_review_exec("import", 7, args);
	unlink(tree); /* only reached when ternd could not be started */
	return rc;
}
