// SPDX-License-Identifier: MIT
/*
 * `tern spool ...`: offline inspection of a spool directory. The spool is
 * opened read-only, which takes no lock, so it works beside a running ternd
 * and never changes what it reads. Output is one JSON object per line, so
 * that it pipes into jq, grep and friends.
 */
#include "tern/cli.h"
#include "tern/json.h"
#include "tern/log.h"
#include "tern/spool.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define CLI_SPOOL_USAGE "usage: tern spool list --spool DIR\n"

/* JSON numbers are doubles: sizes up to 2^53 are exact. */
#define CLI_SPOOL_MAX_EXACT 9007199254740992.0

struct cli_spool_list {
	struct buf line;
	struct buf tmp;
	FILE *out;
};

/* A top-level string of the meta, re-escaped for output; null when absent or not a string. */
static int
list_string(struct cli_spool_list *l, const struct json_span *meta, const char *key)
{
	struct json_span v;

	buf_reset(&l->tmp);
	if (buf_printf(&l->line, ",\"%s\":", key) < 0)
		return -ENOMEM;
	if (meta->type != JSON_OBJECT || json_object_get(meta, key, &v) != 0 ||
	    v.type != JSON_STRING || json_string_decode(&v, &l->tmp) != 0)
		return buf_append_str(&l->line, "null");
	return buf_append_json_string(&l->line, l->tmp.data, l->tmp.len);
}

/* The meta's "size" when it is a byte count; else the size of the stored data. */
static int
list_size(struct cli_spool_list *l, const struct json_span *meta, size_t data_len)
{
	uint64_t size = data_len;
	struct json_span v;
	double d;

	if (meta->type == JSON_OBJECT && json_object_get(meta, "size", &v) == 0 &&
	    v.type == JSON_NUMBER && json_number_value(&v, &d) == 0 && d >= 0 &&
	    d <= CLI_SPOOL_MAX_EXACT && d == (double)(uint64_t)d)
		size = (uint64_t)d;
	return buf_printf(&l->line, ",\"size\":%" PRIu64 "}\n", size);
}

static int
list_line(struct cli_spool_list *l, const struct spool_id *id, const struct json_span *meta,
	  size_t data_len)
{
	char hex[SPOOL_ID_HEX_LEN + 1], created[32];
	int rc;

	spool_id_to_hex(id, hex);
	util_format_time(spool_id_time(id), created);
	buf_reset(&l->line);
	rc = buf_printf(&l->line, "{\"id\":\"%s\"", hex);
	if (rc == 0)
		rc = list_string(l, meta, "sender");
	if (rc == 0)
		rc = list_string(l, meta, "recipient");
	if (rc == 0)
		rc = list_string(l, meta, "queue");
	if (rc == 0)
		rc = buf_printf(&l->line, ",\"created\":\"%s\"", created);
	if (rc == 0)
		rc = list_size(l, meta, data_len);
	return rc;
}

static int
list_visit(void *arg, const struct spool_id *id, const char *meta, size_t meta_len, size_t data_len)
{
	struct cli_spool_list *l = arg;
	struct json_span span = {.type = JSON_NULL};
	struct tern_err err = {0};
	char hex[SPOOL_ID_HEX_LEN + 1];

	/* A message with broken meta is still listed, with what can be known. */
	if (json_parse_span(meta, meta_len, &span, &err) < 0) {
		spool_id_to_hex(id, hex);
		log_warn("spool", "%s: meta is not valid JSON: %s", hex, err.msg);
		span.type = JSON_NULL;
	} else if (span.type != JSON_OBJECT) {
		spool_id_to_hex(id, hex);
		log_warn("spool", "%s: meta is not a JSON object", hex);
	}
	if (list_line(l, id, &span, data_len) < 0)
		return -ENOMEM;
	if (fwrite(l->line.data, 1, l->line.len, l->out) != l->line.len)
		return -EIO;
	return 0;
}

static int
list_scan(struct spool *sp, FILE *out)
{
	struct cli_spool_list l = {.out = out};
	struct tern_err err = {0};
	int rc;

	buf_init(&l.line);
	buf_init(&l.tmp);
	rc = spool_scan(sp, list_visit, &l, &err);
	buf_deinit(&l.line);
	buf_deinit(&l.tmp);
	if (fflush(out) != 0 || ferror(out))
		rc = -EIO;
	if (rc == 0)
		return 0;
	if (err.msg[0] == '\0')
		snprintf(err.msg, sizeof(err.msg), "%s",
			 rc == -EIO ? "cannot write output" : strerror(-rc));
	fprintf(stderr, "tern spool list: %s\n", err.msg);
	return 1;
}

static const char *
list_args(int argc, char **argv)
{
	const char *dir = NULL;
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--spool") == 0 && i + 1 < argc)
			dir = argv[++i];
		else if (strncmp(argv[i], "--spool=", 8) == 0)
			dir = argv[i] + 8;
		else
			return NULL;
	}
	return dir;
}

static int
cli_spool_list(int argc, char **argv)
{
	const char *dir = list_args(argc, argv);
	struct spool_config cfg = {.read_only = true};
	struct tern_err err = {0};
	struct spool *sp;
	int rc;

	if (dir == NULL || dir[0] == '\0') {
		fputs(CLI_SPOOL_USAGE, stderr);
		return 2;
	}
	/* Progress lines are for ternd's recovery; here only problems are worth a line. */
	log_set_level(LOG_LEVEL_WARN);
	cfg.path = dir;
	sp = spool_open(&cfg, &err);
	if (sp == NULL) {
		fprintf(stderr, "tern spool list: %s is not a spool (%s)\n", dir, err.msg);
		return 2;
	}
	rc = list_scan(sp, stdout);
	spool_close(sp);
	return rc;
}

int
cli_spool_main(int argc, char **argv)
{
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0)) {
		fputs(CLI_SPOOL_USAGE, stdout);
		return 0;
	}
	if (argc >= 2 && strcmp(argv[1], "list") == 0)
		return cli_spool_list(argc - 1, argv + 1);
	fputs(CLI_SPOOL_USAGE, stderr);
	return 2;
}
