/* SPDX-License-Identifier: MIT */
/*
 * Reading received MIME messages (RFC 2045-2049) with GMime 3: the part of
 * the parsers of incoming reports (oob.c, arf.c) that is about MIME rather
 * than about reports. A report's machine-readable parts (message/
 * delivery-status, message/feedback-report) are blocks of "Name: value"
 * fields; mime_parse_fields() reads them, since GMime leaves them as text.
 * Pure: bytes in, results out, no I/O; fuzzed through fuzz_dsn and fuzz_arf.
 */
#ifndef TERN_MIME_PARSE_H
#define TERN_MIME_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#include <gmime/gmime.h>

#include "tern/util.h"

/* The message in data (a copy is parsed), or NULL; g_object_unref() it. Any thread. */
GMimeMessage *mime_parse_message(const char *data, size_t len);
/*
 * The first part of type/subtype ("*" matches any subtype) in a depth-first
 * walk of root, entering multiparts and, with enter_messages, enclosed
 * messages; NULL when there is none. Borrowed from root.
 */
GMimeObject *mime_parse_find(GMimeObject *root, const char *type, const char *subtype,
			     bool enter_messages);
/* The decoded content of a leaf part (or an enclosed message's text), appended to out. */
int mime_parse_content(GMimeObject *part, struct buf *out);
/*
 * The headers of the message a report returns (its message/rfc822 part, else
 * its text/rfc822-headers part) into out: true when there are any.
 */
bool mime_parse_returned_headers(GMimeObject *root, struct buf *out);

/* One field of a block: group counts the blank-line-separated groups from 0. */
typedef void (*mime_field_fn)(void *arg, int group, const char *name, const char *value);
/*
 * Call fn for each "Name: value" field of p (continuation lines unfolded,
 * surrounding whitespace dropped, a value cut at MIME_FIELD_MAX bytes).
 * Stops at the first line that is neither a field nor a continuation when
 * headers_only (a header section ends there); else skips such lines.
 */
#define MIME_FIELD_MAX 1024
void mime_parse_fields(const char *p, size_t len, bool headers_only, mime_field_fn fn, void *arg);
/* The value of the first field name in the header section at p, copied to out; false when absent.
 */
bool mime_parse_header(const char *p, size_t len, const char *name, char *out, size_t n);

/* The address in "rfc822; user@example.org" or "<user@example.org>", copied to out ("" if none). */
void mime_parse_address(const char *value, char *out, size_t n);
/*
 * The first X-Tern-Ref found in the enclosed original of a report: the
 * headers of an enclosed message, or a line of the decoded text parts
 * (bounces that quote the original inline). The report's own top-level
 * header is not looked at. false when there is none.
 */
#define MIME_REF_HEADER "X-Tern-Ref"
bool mime_parse_find_ref(GMimeMessage *msg, char *out, size_t n);

#endif
