// SPDX-License-Identifier: MIT
/*
 * `tern queue-summary|suspend|resume|bounce|inspect|inject ...`: the
 * operator's commands against a running ternd, through its HTTP API
 * (--endpoint URL, default http://127.0.0.1:8000). Each command is one
 * request with libcurl; the answer is printed as a table or as the JSON
 * the API gave, and a non-2xx answer is the error message on stderr and
 * exit status 1.
 */
#include "tern/cli.h"
#include "tern/json.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLI_API_DEFAULT_ENDPOINT "http://127.0.0.1:8000"
#define CLI_API_TIMEOUT 30L

static size_t
collect(char *p, size_t size, size_t n, void *arg)
{
	return buf_append(arg, p, size * n) < 0 ? 0 : size * n;
}

int
cli_api_request(const char *endpoint, const char *method, const char *path, const char *body,
		struct buf *out, long *status)
{
	CURL *c = curl_easy_init();
	struct curl_slist *hdr = NULL;
	char url[2048];
	CURLcode rc;

	if (c == NULL)
		return -ENOMEM;
	snprintf(url, sizeof(url), "%s%s", endpoint, path);
	hdr = curl_slist_append(hdr, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, CLI_API_TIMEOUT);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	if (body != NULL)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	else
		fprintf(stderr, "tern: %s: %s\n", url, curl_easy_strerror(rc));
	curl_slist_free_all(hdr);
	curl_easy_cleanup(c);
	return rc == CURLE_OK ? 0 : -EIO;
}

/* One request; the answer in out. 0 on 2xx, else 1 with the API's error printed. */
static int
call(const char *endpoint, const char *method, const char *path, const char *body,
     struct buf *out)
{
	long status = 0;
	struct json_span doc, e;
	struct buf msg;

	if (cli_api_request(endpoint, method, path, body, out, &status) < 0)
		return 1;
	buf_append_char(out, '\0');
	out->len--;
	if (status >= 200 && status < 300)
		return 0;
	buf_init(&msg);
	if (json_parse_span(out->data, out->len, &doc, &(struct tern_err){0}) == 0 &&
	    doc.type == JSON_OBJECT && json_object_get(&doc, "error", &e) == 0 &&
	    json_string_decode(&e, &msg) == 0)
		fprintf(stderr, "tern: %s %s: %ld %.*s\n", method, path, status, (int)msg.len,
			msg.data ? msg.data : "");
	else
		fprintf(stderr, "tern: %s %s: HTTP %ld\n", method, path, status);
	buf_deinit(&msg);
	return 1;
}

/* A string member decoded into out (empty when absent). */
void
cli_api_string(const struct json_span *obj, const char *key, char *out, size_t size)
{
	struct json_span v;
	struct buf b;

	buf_init(&b);
	out[0] = '\0';
	if (json_object_get(obj, key, &v) == 0 && json_string_decode(&v, &b) == 0)
		snprintf(out, size, "%.*s", (int)b.len, b.data ? b.data : "");
	buf_deinit(&b);
}

double
cli_api_number(const struct json_span *obj, const char *key)
{
	struct json_span v;
	double d = 0;

	if (json_object_get(obj, key, &v) == 0)
		json_number_value(&v, &d);
	return d;
}

/* ---- commands ------------------------------------------------------------------------------ */

struct cli_api_args {
	const char *endpoint;
	const char *domain, *tenant, *campaign, *reason, *duration, *sender, *recipient;
	const char *queue, *name;
	bool json;
	int first; /* index of the first positional argument */
};

static int
parse_args(int argc, char **argv, struct cli_api_args *a)
{
	static const struct option opts[] = {
	    {"endpoint", required_argument, NULL, 'e'}, {"domain", required_argument, NULL, 'd'},
	    {"tenant", required_argument, NULL, 't'},	{"campaign", required_argument, NULL, 'c'},
	    {"reason", required_argument, NULL, 'r'},	{"duration", required_argument, NULL, 'D'},
	    {"queue", required_argument, NULL, 'q'},	{"from", required_argument, NULL, 'f'},
	    {"to", required_argument, NULL, 'T'},	{"json", no_argument, NULL, 'j'},
	    {"name", required_argument, NULL, 'n'},
	    {NULL, 0, NULL, 0}};
	int ch;

	memset(a, 0, sizeof(*a));
	a->endpoint = getenv("TERN_ENDPOINT") ? getenv("TERN_ENDPOINT") : CLI_API_DEFAULT_ENDPOINT;
	a->duration = "1h";
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'e': a->endpoint = optarg; break;
		case 'd': a->domain = optarg; break;
		case 't': a->tenant = optarg; break;
		case 'c': a->campaign = optarg; break;
		case 'r': a->reason = optarg; break;
		case 'D': a->duration = optarg; break;
		case 'q': a->queue = optarg; break;
		case 'f': a->sender = optarg; break;
		case 'T': a->recipient = optarg; break;
		case 'j': a->json = true; break;
		case 'n': a->name = optarg; break;
		default: return -EINVAL;
		}
	}
	a->first = optind;
	return 0;
}

static void
member(struct buf *b, const char *key, const char *value)
{
	if (value == NULL)
		return;
	buf_printf(b, "%s\"%s\":", b->len > 1 ? "," : "", key);
	buf_append_json_string(b, value, strlen(value));
}

/* The JSON body of a suspend or bounce: selector, reason, duration. */
static void
rule_body(const struct cli_api_args *a, struct buf *b)
{
	buf_append_char(b, '{');
	member(b, "domain", a->domain);
	member(b, "tenant", a->tenant);
	member(b, "campaign", a->campaign);
	member(b, "name", a->name);
	member(b, "reason", a->reason);
	member(b, "duration", a->duration);
	if (a->queue != NULL) {
		buf_append_str(b, ",\"queue_names\":[");
		buf_append_json_string(b, a->queue, strlen(a->queue));
		buf_append_char(b, ']');
	}
	buf_append_char(b, '}');
}

static int
cmd_rule_add(const struct cli_api_args *a, const char *path)
{
	struct buf body, out;
	struct json_span doc;
	char id[64];
	int rc;

	if (a->reason == NULL || (!a->domain && !a->tenant && !a->campaign && !a->queue && !a->name)) {
		fprintf(stderr, "tern: give --reason and one of --domain, --tenant, --campaign, --queue"
				" (suspend, bounce) or --name SOURCE->SITE (suspend-ready-q)\n");
		return 2;
	}
	buf_init(&body);
	buf_init(&out);
	rule_body(a, &body);
	buf_append_char(&body, '\0');
	rc = call(a->endpoint, "POST", path, body.data, &out);
	if (rc == 0 && json_parse_span(out.data, out.len, &doc, &(struct tern_err){0}) == 0) {
		cli_api_string(&doc, "id", id, sizeof(id));
		printf("%s\n", id);
	}
	buf_deinit(&body);
	buf_deinit(&out);
	return rc;
}

/* An id is a suspension's or a ready-queue suspension's: try the first, then the second. */
static int
resume_one(const char *endpoint, const char *body, struct buf *out)
{
	long status = 0;

	if (cli_api_request(endpoint, "DELETE", "/api/admin/suspend/v1", body, out, &status) < 0)
		return 1;
	if (status == 200)
		return 0;
	buf_reset(out);
	return call(endpoint, "DELETE", "/api/admin/suspend-ready-q/v1", body, out);
}

static int
cmd_resume(const struct cli_api_args *a, int argc, char **argv)
{
	struct buf body, out;
	int rc = 0, i;

	if (a->first >= argc) {
		fprintf(stderr, "usage: tern resume ID... (ids from tern suspend or tern queue-summary)\n");
		return 2;
	}
	for (i = a->first; i < argc && rc == 0; i++) {
		buf_init(&body);
		buf_init(&out);
		buf_append_str(&body, "{\"id\":");
		buf_append_json_string(&body, argv[i], strlen(argv[i]));
		buf_append_str(&body, "}");
		buf_append_char(&body, '\0');
		rc = resume_one(a->endpoint, body.data, &out);
		buf_deinit(&body);
		buf_deinit(&out);
	}
	return rc;
}

static int
print_raw(const struct cli_api_args *a, const char *path)
{
	struct buf out;
	int rc;

	buf_init(&out);
	rc = call(a->endpoint, "GET", path, NULL, &out);
	if (rc == 0)
		printf("%.*s\n", (int)out.len, out.data ? out.data : "");
	buf_deinit(&out);
	return rc;
}

static int
cmd_inspect(const struct cli_api_args *a, int argc, char **argv)
{
	char path[256];

	if (a->first >= argc || strlen(argv[a->first]) > 64) {
		fprintf(stderr, "usage: tern inspect ID\n");
		return 2;
	}
	snprintf(path, sizeof(path), "/api/admin/inspect-message/v1?id=%s", argv[a->first]);
	return print_raw(a, path);
}

static int
read_all(FILE *f, struct buf *out)
{
	char chunk[8192];
	size_t n;

	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (buf_append(out, chunk, n) < 0)
			return -ENOMEM;
	return ferror(f) ? -EIO : 0;
}

static int
cmd_inject(const struct cli_api_args *a, int argc, char **argv)
{
	const char *file = a->first < argc ? argv[a->first] : "-";
	struct buf msg, body, out;
	FILE *f;
	int rc;

	if (a->sender == NULL || a->recipient == NULL) {
		fprintf(stderr, "usage: tern inject --from SENDER --to RCPT [FILE|-]\n");
		return 2;
	}
	f = strcmp(file, "-") == 0 ? stdin : fopen(file, "rb");
	if (f == NULL) {
		fprintf(stderr, "tern: cannot open %s: %s\n", file, strerror(errno));
		return 2;
	}
	buf_init(&msg);
	buf_init(&body);
	buf_init(&out);
	rc = read_all(f, &msg) < 0 ? 1 : 0;
	if (f != stdin)
		fclose(f);
	buf_append_str(&body, "{\"envelope_sender\":");
	buf_append_json_string(&body, a->sender, strlen(a->sender));
	buf_append_str(&body, ",\"recipients\":[{\"email\":");
	buf_append_json_string(&body, a->recipient, strlen(a->recipient));
	buf_append_str(&body, "}],\"content\":");
	buf_append_json_string(&body, msg.data ? msg.data : "", msg.len);
	buf_append_str(&body, "}");
	buf_append_char(&body, '\0');
	if (rc == 0 && (rc = call(a->endpoint, "POST", "/api/inject/v1", body.data, &out)) == 0)
		printf("%.*s\n", (int)out.len, out.data);
	buf_deinit(&msg);
	buf_deinit(&body);
	buf_deinit(&out);
	return rc;
}

static int
summary_row(void *arg, size_t i, const struct json_span *q)
{
	char name[320];

	(void)arg;
	(void)i;
	cli_api_string(q, "name", name, sizeof(name));
	printf("%-40s %8.0f %9.0f %10.0f\n", name, cli_api_number(q, "count"),
	       cli_api_number(q, "suspended_count"), cli_api_number(q, "oldest_age"));
	return 0;
}

static int
cmd_queue_summary(const struct cli_api_args *a)
{
	struct buf out;
	struct json_span doc, sched;
	int rc;

	if (a->json)
		return print_raw(a, "/api/admin/queue-summary/v1");
	buf_init(&out);
	rc = call(a->endpoint, "GET", "/api/admin/queue-summary/v1", NULL, &out);
	if (rc == 0 && json_parse_span(out.data, out.len, &doc, &(struct tern_err){0}) == 0 &&
	    json_object_get(&doc, "scheduled", &sched) == 0) {
		printf("%-40s %8s %9s %10s\n", "QUEUE", "COUNT", "SUSPENDED", "OLDEST(s)");
		json_array_foreach(&sched, summary_row, NULL);
	}
	buf_deinit(&out);
	return rc;
}

static int
usage(void)
{
	fprintf(stderr,
		"usage: tern COMMAND [--endpoint URL] ...\n"
		"  queue-summary [--json]\n"
		"  suspend (--domain D | --tenant T | --campaign C | --queue NAME) --reason R [--duration 1h]\n"
		"  resume ID...\n"
		"  suspend-ready-q --name SOURCE->SITE --reason R [--duration 1h]\n"
		"  bounce (--domain D | --tenant T | --campaign C | --queue NAME) --reason R [--duration 1h]\n"
		"  inspect ID\n"
		"  inject --from SENDER --to RCPT [FILE|-]\n"
		"  top [--interval SECONDS] [--once]\n");
	return 2;
}

int
cli_api_main(int argc, char **argv)
{
	struct cli_api_args a;
	const char *cmd = argv[0];
	int rc;

	if (parse_args(argc, argv, &a) < 0)
		return usage();
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (strcmp(cmd, "queue-summary") == 0)
		rc = cmd_queue_summary(&a);
	else if (strcmp(cmd, "suspend") == 0)
		rc = cmd_rule_add(&a, "/api/admin/suspend/v1");
	else if (strcmp(cmd, "suspend-ready-q") == 0)
		rc = cmd_rule_add(&a, "/api/admin/suspend-ready-q/v1");
	else if (strcmp(cmd, "bounce") == 0)
		rc = cmd_rule_add(&a, "/api/admin/bounce/v1");
	else if (strcmp(cmd, "resume") == 0)
		rc = cmd_resume(&a, argc, argv);
	else if (strcmp(cmd, "inspect") == 0)
		rc = cmd_inspect(&a, argc, argv);
	else if (strcmp(cmd, "inject") == 0)
		rc = cmd_inject(&a, argc, argv);
	else
		rc = usage();
	curl_global_cleanup();
	return rc;
}
