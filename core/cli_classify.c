// SPDX-License-Identifier: MIT
/*
 * `tern classify [--policy FILE] [--site SITE] [--json] [REPLY...]`: how an
 * operator tries a bounce rule before a pull request. The classification
 * runs inside the real runtime (`ternd --script`, lua/tern/review/classify.lua)
 * so it uses the very rules, compiled by the very code, that ternd uses.
 */
#include "tern/cli.h"

int
cli_classify_main(int argc, char **argv)
{
	return cli_review_exec("classify", argc, argv);
}
