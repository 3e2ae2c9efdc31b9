/* SPDX-License-Identifier: MIT */
/*
 * The `tern` operator command line: one entry per subcommand group, each in
 * its own core/cli_<group>.c. Every entry gets the arguments after its group
 * name (argv[0] is the group name) and returns the process exit status.
 */
#ifndef TERN_CLI_H
#define TERN_CLI_H

int cli_dkim_main(int argc, char **argv);  /* tern dkim genkey|sign ... */
int cli_spool_main(int argc, char **argv); /* tern spool list --spool DIR */
int cli_policy_main(int argc, char **argv); /* tern policy check|test ... */

#include <stddef.h>

/* Where ternd is: $TERND, else next to this tern binary, else "ternd" on PATH. */
void cli_policy_ternd_path(char *out, size_t n);

int cli_review_explain_main(int argc, char **argv); /* tern policy explain --policy F --domain D */
int cli_review_diff_main(int argc, char **argv);    /* tern policy diff REV1 [REV2] */
int cli_import_main(int argc, char **argv);         /* tern import pmta FILE [--out DIR] */
int cli_tls_main(int argc, char **argv);            /* tern tls check HOST:PORT [--starttls] */
int cli_reload_main(int argc, char **argv); /* tern reload --pid PID|--pidfile F [--log FILE] */

/*
 * exec `ternd --threads 1 --log-level error --script <lua dir>/tern/review/RUNNER.lua
 * -- ARGS...` with argv[1..]: the offline tools run inside the real runtime.
 * Returns (2) only when ternd cannot be started.
 */
int cli_review_exec(const char *runner, int argc, char **argv);

int cli_classify_main(int argc, char **argv); /* tern classify [--policy F] [--json] [REPLY...] */
/* tern queue-summary|suspend|resume|bounce|inspect|inject (argv[0] names it), over the HTTP API. */
int cli_api_main(int argc, char **argv);
int cli_top_main(int argc, char **argv); /* tern top: live view from the HTTP API */
/* tern suppress list|add|remove|import|export --spool DIR ... (offline) */
int cli_suppress_main(int argc, char **argv);

struct buf;
struct json_span;
/* One HTTP request to ternd's API (libcurl); the body in out, the status in *status. 0 or -EIO. */
int cli_api_request(const char *endpoint, const char *method, const char *path, const char *body,
		    struct buf *out, long *status);
/* A string member of obj into out[size] (empty when absent); a number member (0 when absent). */
void cli_api_string(const struct json_span *obj, const char *key, char *out, size_t size);
double cli_api_number(const struct json_span *obj, const char *key);

#endif
