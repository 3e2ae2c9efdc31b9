/* SPDX-License-Identifier: MIT */
/*
 * CSV records (RFC 4180) one line at a time: quoted fields may hold commas
 * and doubled quotes, not line breaks, which is what lists of addresses
 * need. Pure functions, fuzzed (tests/fuzz/fuzz_csv.c).
 */
#ifndef TERN_UTIL_CSV_H
#define TERN_UTIL_CSV_H

struct buf;

/*
 * Split line in place into at most max fields (pointers into line, each
 * NUL-terminated); the line ends at its first CR or LF. Returns the field
 * count, or -EINVAL for an unterminated quote, text after a closing quote,
 * or more than max fields.
 */
int util_csv_split(char *line, char **fields, int max);
/* Append s as one field: quoted (quotes doubled) when it holds a comma, quote, CR or LF. */
int util_csv_field(struct buf *out, const char *s);

#endif
