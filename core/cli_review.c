// SPDX-License-Identifier: MIT
/*
 * `tern policy explain` and `tern policy diff`: reviewing delivery rules
 * offline (and the second half of `tern import pmta`). The work is done in Lua by the modules in lua/tern/review inside the real
 * runtime (`ternd --script`), so a policy is evaluated by the very
 * constructors and helpers that ternd runs; this file only finds ternd and
 * the runner and hands over the arguments.
 */
#include "tern/cli.h"
#include "tern/policy.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int
cli_review_exec(const char *runner, int argc, char **argv)
{
	char dir[PATH_MAX], ternd[PATH_MAX + 8], script[PATH_MAX + 64];
	char **args = calloc((size_t)argc + 9, sizeof(*args));
	int i, n = 0;

	if (args == NULL) {
		fprintf(stderr, "tern: out of memory\n");
		return 2;
	}
	cli_policy_ternd_path(ternd, sizeof(ternd));
	policy_lua_dir(dir, sizeof(dir));
	snprintf(script, sizeof(script), "%s/tern/review/%s.lua", dir, runner);
	args[n++] = ternd;
	args[n++] = "--threads";
	args[n++] = "1";
	args[n++] = "--log-level";
	args[n++] = "error";
	args[n++] = "--script";
	args[n++] = script;
	args[n++] = "--";
	for (i = 1; i < argc; i++)
		args[n++] = argv[i];
	execv(ternd, args);
	fprintf(stderr, "tern: cannot run %s: %s\n", ternd, strerror(errno));
	free(args); args = NULL;
	return 2;
}

int
cli_review_explain_main(int argc, char **argv)
{
	return cli_review_exec("explain", argc, argv);
}

int
cli_review_diff_main(int argc, char **argv)
{
	return cli_review_exec("diff", argc, argv);
}
