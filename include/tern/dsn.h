/* SPDX-License-Identifier: MIT */
/*
 * Delivery status notifications (RFC 3464): the message that tells a
 * sender one of its messages failed. multipart/report;
 * report-type=delivery-status with three parts: a note for people, the
 * message/delivery-status fields, and the original's header section as
 * text/rfc822-headers (RFC 3462; the body is not returned). Pure: the
 * dates and the Message-ID are given, so the output depends on the input
 * alone.
 */
#ifndef TERN_DSN_H
#define TERN_DSN_H

#include <stdbool.h>
#include <stddef.h>

#include "tern/util.h"

struct dsn_report {
	const char *reporting_mta; /* this host's name */
	const char *to;		   /* the original's envelope sender */
	const char *recipient;	   /* the recipient that failed */
	const char *status;	   /* "5.1.1" */
	int code;		   /* the reply's code, 0 when there was none */
	const char *enhanced;	   /* the reply's enhanced code, or NULL */
	const char *diagnostic;	   /* the reply's text, or NULL */
	const char *remote_mta;	   /* the site that replied, or NULL */
	bool expired;		   /* given up after max_age rather than refused */
	const char *message_id;	   /* of the DSN, without the angle brackets */
	double arrival_date;	   /* when the original was received */
	double date;		   /* now */
	const char *headers;	   /* the original's header section */
	size_t headers_len;
};

/* Append the DSN (CRLF line endings) to out: 0, -EINVAL with err, -ENOMEM. */
int dsn_build(const struct dsn_report *r, struct buf *out, struct tern_err *err);
/* Whether the header section at p says the message is itself a DSN. */
bool dsn_is_report(const char *p, size_t len);

#endif
