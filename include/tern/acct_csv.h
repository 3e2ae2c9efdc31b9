/* SPDX-License-Identifier: MIT */
/*
 * Accounting lines from outcome records, written beside the JSON records for
 * pipelines built for other MTAs: PowerMTA's acct CSV (its header line, its
 * default columns, record types d, b, t, rb, f and r, RFC 4180 quoting), or
 * one line per record from a `{{ field }}` template (template.h).
 *
 * Pure: a record in, one line out (no newline, no CR or LF inside: CR/LF in
 * values become spaces, so that a line stays one line of a segment). Fields
 * are named either as PowerMTA's columns (timeLogged, orig, rcpt, dsnStatus,
 * ...) or as the JSON record's (id, sender, response.code, ...), plus
 * `header_NAME` (a header of the message, when its data is in memory) and
 * `meta.KEY`.
 */
#ifndef TERN_ACCT_CSV_H
#define TERN_ACCT_CSV_H

#include <stdbool.h>
#include <stddef.h>

#include "tern/util.h"

struct logrec;

enum acct_kind { ACCT_PMTA_CSV, ACCT_TEMPLATE };

/* The record types tern writes, in this order (acct_type_index). */
#define ACCT_N_TYPES 9

struct acct_format {
	enum acct_kind kind;
	/* pmta_csv: the columns after `type`, in order. */
	char **fields;
	size_t n_fields;
	/* Which record types get a line, by acct_type_index. */
	bool types[ACCT_N_TYPES];
	/* template: the line of each record type (NULL: none). */
	char *templates[ACCT_N_TYPES];
};

/* What a line needs beyond the record: the same values the JSON record gets. */
struct acct_context {
	double now; /* timeLogged, timestamp */
	const char *nodeid;
	const char *policy_revision;
};

/* PowerMTA's default acct-file columns after `type`. */
extern const char *const acct_default_fields[];

/* Index of a tern record type ("Delivery", ...), or -1. */
int acct_type_index(const char *type);
/* Its name, and its PowerMTA record type ("d", "b", ...; NULL for none). */
const char *acct_type_name(int index);
const char *acct_type_letter(int index);
/* Select the tern types of PowerMTA record type letter: -EINVAL when unknown. */
int acct_select_letter(struct acct_format *f, const char *letter);
/* Whether name is a field a line can hold. */
bool acct_field_known(const char *name, size_t len);
/* A template's first unknown field into err, or a CR/LF in it: -EINVAL. */
int acct_template_check(const char *tpl, struct tern_err *err);

/* The pmta_csv header line ("type,timeLogged,..."); nothing for a template. */
int acct_header(const struct acct_format *f, struct buf *out);
/* r's line into out: 0, TERN_DECLINED when r's type is not selected, -ENOMEM. */
int acct_format_line(const struct acct_format *f, const struct logrec *r,
		     const struct acct_context *ctx, struct buf *out);
/* RFC 4180: v quoted when it holds a comma, a quote, CR or LF (quotes doubled). */
int acct_csv_append(struct buf *out, const char *v, size_t n);

void acct_format_copy(struct acct_format *dst, const struct acct_format *src);
void acct_format_deinit(struct acct_format *f);

#endif
