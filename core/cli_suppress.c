// SPDX-License-Identifier: MIT
/*
 * `tern suppress ...`: the suppression list of a spool directory, offline.
 * Listing and exporting open the spool read-only (no lock: it works beside a
 * running ternd); adding, removing and importing need the spool to
 * themselves, since RocksDB lets one process write. An import writes every
 * ten thousand rows without syncing and syncs once at the end: a million
 * rows cost one fsync, not a million.
 *
 * CSV is RFC 4180 with a header row naming the columns (address, tenant,
 * reason, category, time, expires, source; only address is required). A
 * missing tenant column means "*" (every tenant); an empty tenant cell
 * means mail without a tenant. Times are epoch seconds.
 */
#include "tern/cli.h"
#include "tern/log.h"
#include "tern/spool.h"
#include "tern/suppress.h"
#include "tern/util_csv.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLI_SUPPRESS_USAGE                                                                        \
	"usage: tern suppress list --spool DIR [--tenant T] [--json]\n"                           \
	"       tern suppress add --spool DIR [--tenant T] [--reason R] [--category C]\n"         \
	"                         [--expires-in DURATION] ADDRESS...\n"                           \
	"       tern suppress remove --spool DIR [--tenant T] ADDRESS...\n"                       \
	"       tern suppress import --spool DIR FILE.csv|-\n"                                    \
	"       tern suppress export --spool DIR [--tenant T] FILE.csv|-\n"                       \
	"The spool must not be in use by ternd for add, remove and import.\n"

enum csv_col { COL_ADDRESS, COL_TENANT, COL_REASON, COL_CATEGORY, COL_TIME, COL_EXPIRES,
	       COL_SOURCE, COL_N };
static const char *const csv_names[COL_N] = {"address", "tenant", "reason", "category",
					     "time",	"expires", "source"};
#define CSV_MAX_FIELDS 16

struct cli_opts {
	const char *spool;
	const char *tenant; /* NULL: "*" for add and remove, every tenant for list and export */
	const char *reason;
	const char *category;
	double expires_in;
	bool json;
};

static int
usage(void)
{
	fputs(CLI_SUPPRESS_USAGE, stderr);
	return 2;
}

static int
parse_opts(int argc, char **argv, struct cli_opts *o)
{
	static const struct option longopts[] = {
	    {"spool", required_argument, NULL, 's'},   {"tenant", required_argument, NULL, 't'},
	    {"reason", required_argument, NULL, 'r'},  {"category", required_argument, NULL, 'c'},
	    {"expires-in", required_argument, NULL, 'e'}, {"json", no_argument, NULL, 'j'},
	    {NULL, 0, NULL, 0}};
	int c;

	memset(o, 0, sizeof(*o));
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 's': o->spool = optarg; break;
		case 't': o->tenant = optarg; break;
		case 'r': o->reason = optarg; break;
		case 'c': o->category = optarg; break;
		case 'j': o->json = true; break;
		case 'e':
			if (util_parse_duration(optarg, &o->expires_in) < 0 || o->expires_in <= 0) {
				fprintf(stderr, "tern suppress: bad --expires-in '%s'\n", optarg);
				return -EINVAL;
			}
			break;
		default: return -EINVAL;
		}
	}
	return o->spool ? 0 : -EINVAL;
}

static struct spool *
open_list(const char *path, bool read_only)
{
	struct spool_config cfg = {.path = path, .read_only = read_only};
	struct tern_err err;
	struct spool *sp = spool_open(&cfg, &err);

	if (sp == NULL) {
		fprintf(stderr, "tern suppress: %s%s\n", err.msg,
			read_only ? "" : " (is ternd running on it? stop it first)");
		return NULL;
	}
	if (suppress_open(sp, false, &err) < 0) {
		fprintf(stderr, "tern suppress: %s\n", err.msg);
		spool_close(sp);
		return NULL;
	}
	return sp;
}

static void
close_list(struct spool *sp)
{
	suppress_close();
	spool_close(sp);
}

/* add and remove */

static int
add_one(const struct cli_opts *o, const char *address, struct tern_err *err)
{
	struct suppress_entry e;

	if (suppress_entry_init(&e, o->tenant ? o->tenant : SUPPRESS_ALL_TENANTS, address, err) < 0)
		return -EINVAL;
	snprintf(e.reason, sizeof(e.reason), "%s", o->reason ? o->reason : "manual");
	snprintf(e.category, sizeof(e.category), "%s", o->category ? o->category : "");
	e.expires = o->expires_in > 0 ? e.time + o->expires_in : 0;
	return suppress_add(&e, err);
}

static int
cmd_change(int argc, char **argv, bool add)
{
	struct cli_opts o;
	struct tern_err err;
	struct spool *sp;
	int i, rc = 0;

	if (parse_opts(argc, argv, &o) < 0 || optind >= argc)
		return usage();
	sp = open_list(o.spool, false);
	if (sp == NULL)
		return 1;
	for (i = optind; i < argc; i++) {
		int r = add ? add_one(&o, argv[i], &err)
			    : suppress_remove(o.tenant ? o.tenant : SUPPRESS_ALL_TENANTS, argv[i], &err);

		if (r < 0) {
			fprintf(stderr, "tern suppress: %s\n", err.msg);
			rc = 1;
		}
	}
	close_list(sp);
	return rc;
}

/* CSV */

/* One field to out, then a comma or (last) the record's CRLF. */
static void
csv_put(FILE *out, const char *s, bool last)
{
	struct buf f;

	buf_init(&f);
	util_csv_field(&f, s);
	fputs(f.data ? f.data : "", out);
	fputs(last ? "\r\n" : ",", out);
	buf_deinit(&f);
}

struct csv_in {
	const char *name;
	FILE *f;
	char *line;
	size_t cap;
	unsigned long lineno;
	int col[COL_N]; /* field index of each column, -1 when absent */
};

static int
csv_header(struct csv_in *in)
{
	char *fields[CSV_MAX_FIELDS];
	int n, i, c;

	for (c = 0; c < COL_N; c++)
		in->col[c] = -1;
	in->lineno = 1;
	if (getline(&in->line, &in->cap, in->f) < 0 ||
	    (n = util_csv_split(in->line, fields, CSV_MAX_FIELDS)) < 0) {
		fprintf(stderr, "tern suppress: %s:1: a header row is required\n", in->name);
		return -EINVAL;
	}
	for (i = 0; i < n; i++) {
		for (c = 0; c < COL_N && strcmp(fields[i], csv_names[c]) != 0; c++)
			;
		if (c == COL_N) {
			fprintf(stderr, "tern suppress: %s:1: unknown column '%s'\n", in->name, fields[i]);
			return -EINVAL;
		}
		in->col[c] = i;
	}
	if (in->col[COL_ADDRESS] < 0) {
		fprintf(stderr, "tern suppress: %s:1: no address column\n", in->name);
		return -EINVAL;
	}
	return 0;
}

static const char *
field(const struct csv_in *in, char **fields, int n, enum csv_col c, const char *def)
{
	return in->col[c] >= 0 && in->col[c] < n ? fields[in->col[c]] : def;
}

static int
parse_time(const char *s, double *out)
{
	char *end;

	*out = 0;
	if (*s == '\0')
		return 0;
	*out = strtod(s, &end);
	return *end == '\0' && *out >= 0 ? 0 : -EINVAL;
}

/* One data row into e; -EINVAL with err naming what is wrong. */
static int
csv_entry(const struct csv_in *in, char **fields, int n, struct suppress_entry *e,
	  struct tern_err *err)
{
	double t;

	if (suppress_entry_init(e, field(in, fields, n, COL_TENANT, SUPPRESS_ALL_TENANTS),
				field(in, fields, n, COL_ADDRESS, ""), err) < 0)
		return -EINVAL;
	snprintf(e->reason, sizeof(e->reason), "%s", field(in, fields, n, COL_REASON, ""));
	snprintf(e->category, sizeof(e->category), "%s", field(in, fields, n, COL_CATEGORY, ""));
	snprintf(e->source, sizeof(e->source), "%s", field(in, fields, n, COL_SOURCE, ""));
	if (parse_time(field(in, fields, n, COL_TIME, ""), &t) < 0 ||
	    parse_time(field(in, fields, n, COL_EXPIRES, ""), &e->expires) < 0) {
		tern_err_set(err, 0, "", "time and expires must be epoch seconds");
		return -EINVAL;
	}
	if (t > 0)
		e->time = t;
	return 0;
}

static int
import_rows(struct csv_in *in, struct suppress_batch *b, unsigned long *rows)
{
	char *fields[CSV_MAX_FIELDS];
	struct suppress_entry e;
	struct tern_err err;
	int n;

	while (getline(&in->line, &in->cap, in->f) >= 0) {
		in->lineno++;
		if (in->line[strspn(in->line, "\r\n")] == '\0')
			continue;
		n = util_csv_split(in->line, fields, CSV_MAX_FIELDS);
		if (n < 0)
			tern_err_set(&err, 0, "", "malformed CSV (an unterminated quote?)");
		if (n < 0 || csv_entry(in, fields, n, &e, &err) < 0 ||
		    suppress_batch_add(b, &e, &err) < 0) {
			fprintf(stderr, "tern suppress: %s:%lu: %s\n", in->name, in->lineno, err.msg);
			return -EINVAL;
		}
		(*rows)++;
	}
	return 0;
}

static int
cmd_import(int argc, char **argv)
{
	struct csv_in in = {0};
	struct suppress_batch *b;
	unsigned long rows = 0;
	struct cli_opts o;
	struct tern_err err;
	struct spool *sp;
	double start = util_now();
	int rc;

	if (parse_opts(argc, argv, &o) < 0 || optind != argc - 1)
		return usage();
	in.name = argv[optind];
	in.f = strcmp(in.name, "-") == 0 ? stdin : fopen(in.name, "r");
	if (in.f == NULL) {
		fprintf(stderr, "tern suppress: cannot read %s: %s\n", in.name, strerror(errno));
		return 1;
	}
	sp = csv_header(&in) == 0 ? open_list(o.spool, false) : NULL;
	b = sp ? suppress_batch_new() : NULL;
	rc = b ? import_rows(&in, b, &rows) : -EINVAL;
	/* Rows before a bad one are kept: the error names the line to resume from. */
	if (b && suppress_batch_finish(b, &err) < 0) {
		fprintf(stderr, "tern suppress: %s\n", err.msg);
		rc = -EIO;
	}
	if (rc == 0)
		printf("imported %lu entries in %.1f s\n", rows, util_now() - start);
	if (sp)
		close_list(sp);
	free(in.line);
	if (in.f != stdin)
		fclose(in.f);
	return rc == 0 ? 0 : 1;
}

/* list and export */

struct list_out {
	FILE *out;
	bool json;
	bool csv;
	struct buf line;
};

static void
put_time(FILE *out, double t, bool last)
{
	char s[32] = "";

	if (t > 0)
		snprintf(s, sizeof(s), "%.15g", t);
	csv_put(out, s, last);
}

static int
list_visit(void *arg, const struct suppress_entry *e)
{
	struct list_out *l = arg;

	if (l->csv) {
		csv_put(l->out, e->address, false);
		csv_put(l->out, e->tenant, false);
		csv_put(l->out, e->reason, false);
		csv_put(l->out, e->category, false);
		put_time(l->out, e->time, false);
		put_time(l->out, e->expires, false);
		csv_put(l->out, e->source, true);
	} else if (l->json) {
		buf_reset(&l->line);
		suppress_entry_json(e, &l->line);
		fprintf(l->out, "%s\n", l->line.data);
	} else {
		fprintf(l->out, "%s\t%s\t%s\t%s\n", e->tenant, e->address,
			e->category[0] ? e->category : "-", e->reason);
	}
	return ferror(l->out) ? -EIO : 0;
}

static int
cmd_list(int argc, char **argv, bool export)
{
	struct list_out l = {.out = stdout};
	struct tern_err err;
	struct cli_opts o;
	struct spool *sp;
	int rc, c;

	if (parse_opts(argc, argv, &o) < 0 || optind != argc - (export ? 1 : 0))
		return usage();
	if (export && strcmp(argv[optind], "-") != 0 && (l.out = fopen(argv[optind], "w")) == NULL) {
		fprintf(stderr, "tern suppress: cannot write %s: %s\n", argv[optind], strerror(errno));
		return 1;
	}
	l.csv = export;
	l.json = o.json;
	buf_init(&l.line);
	for (c = 0; export && c < COL_N; c++)
		csv_put(l.out, csv_names[c], c == COL_N - 1);
	sp = open_list(o.spool, true);
	rc = sp ? suppress_list(o.tenant, list_visit, &l, &err) : -EIO;
	if (sp && rc < 0)
		fprintf(stderr, "tern suppress: %s\n", rc == -EIO ? "write failed" : err.msg);
	if (sp)
		close_list(sp);
	buf_deinit(&l.line);
	if (l.out != stdout && fclose(l.out) != 0)
		rc = -EIO;
	return rc == 0 ? 0 : 1;
}

int
cli_suppress_main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";

	log_set_level(LOG_LEVEL_WARN);
	if (strcmp(cmd, "list") == 0)
		return cmd_list(argc - 1, argv + 1, false);
	if (strcmp(cmd, "export") == 0)
		return cmd_list(argc - 1, argv + 1, true);
	if (strcmp(cmd, "add") == 0)
		return cmd_change(argc - 1, argv + 1, true);
	if (strcmp(cmd, "remove") == 0)
		return cmd_change(argc - 1, argv + 1, false);
	if (strcmp(cmd, "import") == 0)
		return cmd_import(argc - 1, argv + 1);
	return usage();
}
