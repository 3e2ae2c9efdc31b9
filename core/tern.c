// SPDX-License-Identifier: MIT
/*
 * tern: the operator's command line. Works on policy, keys and spools
 * offline; later talks to ternd's HTTP API. Each subcommand group lives in
 * its own cli_<group>.c.
 */
#include <stdio.h>
#include <string.h>

#include "tern/cli.h"

static const struct {
	const char *name;
	int (*main)(int argc, char **argv);
	const char *help;
} groups[] = {
	{"dkim", cli_dkim_main, "dkim genkey|sign   make DKIM keys, sign a message"},
	{"spool", cli_spool_main, "spool list         list spooled messages (offline)"},
	{"policy", cli_policy_main, "policy check|test|explain|diff  validate, test and review a policy"},
	{"import", cli_import_main, "import pmta FILE   convert a PowerMTA config into a policy"},
	{"tls", cli_tls_main, "tls check HOST:PORT  print a server's certificate and days left"},
	{"classify", cli_classify_main, "classify [--policy F] [--json] [REPLY...]  bounce category of replies"},
	{"reload", cli_reload_main, "reload --pid PID|--pidfile F|--endpoint URL  reload ternd's policy"},
	{"queue-summary", cli_api_main, "queue-summary      scheduled queues of a running ternd (HTTP API)"},
	{"suspend", cli_api_main, "suspend --domain D --reason R [--duration 1h]  hold a domain's mail"},
	{"resume", cli_api_main, "resume ID          end a suspension"},
	{"suspend-ready-q", cli_api_main, "suspend-ready-q --name SOURCE->SITE --reason R  hold one egress path"},
	{"bounce", cli_api_main, "bounce --domain D --reason R [--duration 1h]  bounce queued and new mail"},
	{"inspect", cli_api_main, "inspect ID         a spooled message's metadata"},
	{"inject", cli_api_main, "inject --from S --to R [FILE|-]  inject a message over HTTP"},
	{"suppress", cli_suppress_main, "suppress list|add|remove|import|export  the suppression list (offline)"},
	{"top", cli_top_main, "top                live view of queues and suspensions"},
};

static int
usage(FILE *out)
{
	size_t i;

	fprintf(out, "usage: tern COMMAND [ARGS]\n\ncommands:\n");
	for (i = 0; i < sizeof(groups) / sizeof(groups[0]); i++)
		fprintf(out, "  %s\n", groups[i].help);
	fprintf(out, "  version            print the version\n");
	return out == stdout ? 0 : 2;
}

int
main(int argc, char **argv)
{
	size_t i;

	if (argc < 2)
		return usage(stderr);
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0)
		return usage(stdout);
	if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
		printf("tern %s\n", TERN_VERSION);
		return 0;
	}
	for (i = 0; i < sizeof(groups) / sizeof(groups[0]); i++)
		if (strcmp(argv[1], groups[i].name) == 0)
			return groups[i].main(argc - 1, argv + 1);
	fprintf(stderr, "tern: unknown command '%s'\n", argv[1]);
	return usage(stderr);
}
