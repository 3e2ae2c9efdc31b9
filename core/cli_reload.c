// SPDX-License-Identifier: MIT
/*
 * `tern reload`: ask a running ternd to reload its policy (SIGHUP), and with
 * --log wait for the one line that reload logs, so that a deploy script
 * learns whether the new policy is live: exit 0 when it loaded, 1 when it
 * was refused (the old epoch keeps running), 2 on a usage error or when no
 * answer came in time.
 *
 * With --endpoint URL it asks ternd's HTTP API instead (POST
 * /api/admin/bump-config-epoch), which answers once the reload has ended:
 * no log file to read, and it works from another host.
 */
#include "tern/cli.h"
#include "tern/json.h"
#include "tern/util.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CLI_RELOAD_USAGE                                                                           \
	"usage: tern reload (--pid PID | --pidfile FILE) [--log FILE [--timeout SECS]]\n"          \
	"       tern reload --endpoint URL\n"
#define CLI_RELOAD_OK "policy reload: "
#define CLI_RELOAD_FAILED "policy reload failed: "

struct cli_reload {
	long pid;
	const char *pidfile;
	const char *log;
	const char *endpoint;
	double timeout;
};

static int
parse(int argc, char **argv, struct cli_reload *r)
{
	int i;

	r->timeout = 30;
	for (i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--pid") == 0)
			r->pid = strtol(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--pidfile") == 0)
			r->pidfile = argv[i + 1];
		else if (strcmp(argv[i], "--log") == 0)
			r->log = argv[i + 1];
		else if (strcmp(argv[i], "--timeout") == 0)
			r->timeout = atof(argv[i + 1]);
		else if (strcmp(argv[i], "--endpoint") == 0)
			r->endpoint = argv[i + 1];
		else
			return -1;
	}
	if (i != argc)
		return -1;
	if (r->endpoint)
		return r->pid == 0 && r->pidfile == NULL && r->log == NULL ? 0 : -1;
	return (r->pid > 0) != (r->pidfile != NULL) ? 0 : -1;
}

static long
read_pidfile(const char *path)
{
	FILE *f = fopen(path, "r");
	long pid = 0;

	if (f == NULL) {
		fprintf(stderr, "tern reload: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (fscanf(f, "%ld", &pid) != 1 || pid <= 0) {
		fprintf(stderr, "tern reload: %s: no process id in it\n", path);
		pid = -1;
	}
	fclose(f);
	return pid;
}

static long
log_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* The first reload line written after offset: 0 loaded, 1 refused, -1 none yet. */
static int
find_result(const char *path, long offset)
{
	char line[4096];
	int rc = -1;
	FILE *f = fopen(path, "r");

	if (f == NULL || fseek(f, offset, SEEK_SET) < 0) {
		if (f)
			fclose(f);
		return -1;
	}
	while (rc < 0 && fgets(line, sizeof(line), f)) {
		if (strstr(line, CLI_RELOAD_FAILED))
			rc = 1;
		else if (strstr(line, CLI_RELOAD_OK))
			rc = 0;
		if (rc >= 0)
			fputs(line, rc == 0 ? stdout : stderr);
	}
	fclose(f);
	return rc;
}

static int
wait_result(const struct cli_reload *r, long offset)
{
	const struct timespec tick = {0, 20 * 1000 * 1000};
	double waited;
	int rc;

	for (waited = 0; waited < r->timeout; waited += 0.02) {
		rc = find_result(r->log, offset);
		if (rc >= 0)
			return rc;
		nanosleep(&tick, NULL);
	}
	fprintf(stderr, "tern reload: no reload result in %s after %gs\n", r->log, r->timeout);
	return 2;
}

/* The API's answer, printed like the log line a reload writes: 0 loaded, 1 refused, 2 other. */
static int
api_result(long status, const struct buf *out)
{
	struct json_span doc;
	char error[1024] = "", rev[128] = "";

	if (out->data == NULL ||
	    json_parse_span(out->data, out->len, &doc, &(struct tern_err){0}) < 0 ||
	    doc.type != JSON_OBJECT) {
		fprintf(stderr, "tern reload: HTTP %ld with no JSON answer\n", status);
		return 2;
	}
	cli_api_string(&doc, "error", error, sizeof(error));
	cli_api_string(&doc, "revision", rev, sizeof(rev));
	if (status == 200) {
		printf(CLI_RELOAD_OK "epoch %.0f loaded (revision %s)\n",
		       cli_api_number(&doc, "epoch"), rev);
		return 0;
	}
	if (status == 422) {
		fprintf(stderr, CLI_RELOAD_FAILED "%s; epoch %.0f keeps running\n", error,
			cli_api_number(&doc, "epoch"));
		return 1;
	}
	fprintf(stderr, "tern reload: HTTP %ld: %s\n", status, error);
	return 2;
}

static int
api_reload(const struct cli_reload *r)
{
	struct buf out;
	long status = 0;
	int rc = 2;

	buf_init(&out);
	if (cli_api_request(r->endpoint, "POST", "/api/admin/bump-config-epoch", "", &out,
			    &status) == 0)
		rc = api_result(status, &out);
	buf_deinit(&out);
	return rc;
}

int
cli_reload_main(int argc, char **argv)
{
	struct cli_reload r = {0};
	long offset;

	if (parse(argc, argv, &r) < 0) {
		fputs(CLI_RELOAD_USAGE, stderr);
		return 2;
	}
	if (r.endpoint)
		return api_reload(&r);
	if (r.pidfile && (r.pid = read_pidfile(r.pidfile)) < 0)
		return 2;
	offset = r.log ? log_size(r.log) : 0;
	if (kill((pid_t)r.pid, SIGHUP) < 0) {
		fprintf(stderr, "tern reload: process %ld: %s\n", r.pid, strerror(errno));
		return 2;
	}
	return r.log ? wait_result(&r, offset) : 0;
}
