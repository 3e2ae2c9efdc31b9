// SPDX-License-Identifier: MIT
/*
 * `tern top`: a live view of a running ternd, redrawn every interval from
 * the admin API (queue summary, suspensions, admin bounces). Plain ANSI
 * (clear screen, home, bold), no curses, so it works over any ssh session
 * and in a tmux pane; Ctrl-C ends it. --once draws one frame and exits.
 */
#include "tern/cli.h"
#include "tern/json.h"

#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TOP_ANSI_HOME "\033[H\033[2J"
#define TOP_ANSI_BOLD "\033[1m"
#define TOP_ANSI_RESET "\033[0m"
/* Queues shown, deepest first; the rest are summed in one line. */
#define TOP_MAX_QUEUES 20

struct top_queue {
	char name[320];
	double count, suspended, oldest, rate;
};

struct top_frame {
	struct top_queue q[TOP_MAX_QUEUES];
	size_t n;
	double rest_count, total;
	size_t rest_n;
};

/* Keep the deepest TOP_MAX_QUEUES; fold the others into rest. */
static int
top_add_queue(void *arg, size_t i, const struct json_span *v)
{
	struct top_frame *f = arg;
	struct top_queue q;
	size_t k, min = 0;

	(void)i;
	cli_api_string(v, "name", q.name, sizeof(q.name));
	q.count = cli_api_number(v, "count");
	q.suspended = cli_api_number(v, "suspended_count");
	q.oldest = cli_api_number(v, "oldest_age");
	q.rate = cli_api_number(v, "rate");
	f->total += q.count;
	if (f->n < TOP_MAX_QUEUES) {
		f->q[f->n++] = q;
		return 0;
	}
	for (k = 1; k < f->n; k++)
		if (f->q[k].count < f->q[min].count)
			min = k;
	f->rest_n++;
	if (q.count > f->q[min].count) {
		f->rest_count += f->q[min].count;
		f->q[min] = q;
	} else {
		f->rest_count += q.count;
	}
	return 0;
}

static int
top_cmp(const void *a, const void *b)
{
	double d = ((const struct top_queue *)b)->count - ((const struct top_queue *)a)->count;

	return d > 0 ? 1 : d < 0 ? -1 : strcmp(((const struct top_queue *)a)->name,
					       ((const struct top_queue *)b)->name);
}

static int
top_ready_row(void *arg, size_t i, const struct json_span *v)
{
	char name[700];
	struct json_span s;

	(void)arg;
	(void)i;
	cli_api_string(v, "name", name, sizeof(name));
	printf("%-50.50s %8.0f %5.0f/%-5.0f %8.2f %s\n", name, cli_api_number(v, "count"),
	       cli_api_number(v, "connections"), cli_api_number(v, "connection_limit"),
	       cli_api_number(v, "rate"),
	       json_object_get(v, "suspended", &s) == 0 && s.type == JSON_TRUE ? "SUSPENDED" : "");
	return 0;
}

static void
top_ready(const struct json_span *doc)
{
	struct json_span ready;

	printf(TOP_ANSI_BOLD "%-50s %8s %11s %8s %s" TOP_ANSI_RESET "\n",
	       "READY QUEUE (source->site)", "COUNT", "CONNS/LIMIT", "MSG/S", "STATE");
	if (json_object_get(doc, "ready", &ready) == 0)
		json_array_foreach(&ready, top_ready_row, NULL);
	printf("\n");
}

static void
top_queues(const char *endpoint)
{
	struct top_frame f = {.n = 0};
	struct json_span doc = {JSON_NULL, NULL, 0}, sched;
	struct buf out;
	long status = 0;
	size_t i;

	buf_init(&out);
	printf(TOP_ANSI_BOLD "%-40s %8s %9s %10s %8s" TOP_ANSI_RESET "\n", "SCHEDULED QUEUE",
	       "COUNT", "SUSPENDED", "OLDEST(s)", "MSG/S");
	if (cli_api_request(endpoint, "GET", "/api/admin/queue-summary/v1", NULL, &out, &status) ==
		0 && status == 200 && json_parse_span(out.data, out.len, &doc, &(struct tern_err){0}) == 0 &&
	    json_object_get(&doc, "scheduled", &sched) == 0)
		json_array_foreach(&sched, top_add_queue, &f);
	else
		printf("(queue summary unavailable: HTTP %ld)\n", status);
	qsort(f.q, f.n, sizeof(f.q[0]), top_cmp);
	for (i = 0; i < f.n; i++)
		printf("%-40.40s %8.0f %9.0f %10.0f %8.2f\n", f.q[i].name, f.q[i].count,
		       f.q[i].suspended, f.q[i].oldest, f.q[i].rate);
	if (f.rest_n > 0)
		printf("%-40s %8.0f\n", "(other queues)", f.rest_count);
	printf("%-40s %8.0f\n\n", "total", f.total);
	top_ready(&doc);
	buf_deinit(&out);
}

static int
top_rule(void *arg, size_t i, const struct json_span *r)
{
	char id[40], domain[256], tenant[128], campaign[128], reason[256];

	(void)arg;
	(void)i;
	cli_api_string(r, "id", id, sizeof(id));
	cli_api_string(r, "domain", domain, sizeof(domain));
	cli_api_string(r, "tenant", tenant, sizeof(tenant));
	cli_api_string(r, "campaign", campaign, sizeof(campaign));
	cli_api_string(r, "reason", reason, sizeof(reason));
	printf("%-36s %-24.24s %-12.12s %-12.12s %7.0fs  %s\n", id, domain, tenant, campaign,
	       cli_api_number(r, "duration"), reason);
	return 0;
}

static void
top_rules(const char *endpoint, const char *title, const char *path)
{
	struct json_span doc;
	struct buf out;
	long status = 0;

	buf_init(&out);
	printf(TOP_ANSI_BOLD "%-36s %-24s %-12s %-12s %8s  %s" TOP_ANSI_RESET "\n", title, "DOMAIN",
	       "TENANT", "CAMPAIGN", "LEFT", "REASON");
	if (cli_api_request(endpoint, "GET", path, NULL, &out, &status) == 0 && status == 200 &&
	    json_parse_span(out.data, out.len, &doc, &(struct tern_err){0}) == 0)
		json_array_foreach(&doc, top_rule, NULL);
	printf("\n");
	buf_deinit(&out);
}

static void
top_frame(const char *endpoint)
{
	char when[32];
	time_t now = time(NULL);

	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime(&now));
	printf(TOP_ANSI_HOME TOP_ANSI_BOLD "tern top" TOP_ANSI_RESET "  %s  %s\n\n", endpoint, when);
	top_queues(endpoint);
	top_rules(endpoint, "SUSPENDED (id)", "/api/admin/suspend/v1");
	top_rules(endpoint, "BOUNCING (id)", "/api/admin/bounce/v1");
	fflush(stdout);
}

int
cli_top_main(int argc, char **argv)
{
	static const struct option opts[] = {{"endpoint", required_argument, NULL, 'e'},
					     {"interval", required_argument, NULL, 'i'},
					     {"once", no_argument, NULL, 'o'},
					     {NULL, 0, NULL, 0}};
	const char *endpoint = getenv("TERN_ENDPOINT") ? getenv("TERN_ENDPOINT")
							: "http://127.0.0.1:8000";
	double interval = 1;
	bool once = false;
	int ch;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'e')
			endpoint = optarg;
		else if (ch == 'i' && (interval = atof(optarg)) > 0)
			continue;
		else if (ch == 'o')
			once = true;
		else {
			fprintf(stderr, "usage: tern top [--endpoint URL] [--interval SECONDS] [--once]\n");
			return 2;
		}
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	for (;;) {
		top_frame(endpoint);
		if (once)
			break;
		usleep((useconds_t)(interval * 1e6));
	}
	curl_global_cleanup();
	return 0;
}
