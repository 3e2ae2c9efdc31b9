// SPDX-License-Identifier: MIT
/*
 * Building DSNs. Everything a DSN quotes (addresses, the remote reply, the
 * original's headers) came from elsewhere, so it is made safe to quote: one
 * line, and 7-bit, since the DSN travels to servers that may not take 8-bit
 * mail and a reply or a header may hold anything. The boundary is made from
 * the DSN's own Message-ID, which no quoted text can know in advance.
 */
#include "tern/dsn.h"
#include "tern/mime_parse.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool status_ok(const char *s);

/* s as one 7-bit line: controls (CR, LF, tabs) become spaces, other bytes '?'. */
static int
append_line(struct buf *out, const char *s)
{
	int rc = 0;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		rc |= buf_append_char(out, c < ' ' ? ' ' : c > '~' ? '?' : (char)c);
	}
	return rc;
}

/* The original's header section, 7-bit, with CRLF line ends, without the blank line. */
static int
append_headers(struct buf *out, const char *p, size_t len)
{
	const char *end = p + len;
	int rc = 0;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *stop = nl ? nl : end;
		size_t n = (size_t)(stop - p);

		if (n > 0 && p[n - 1] == '\r')
			n--;
		if (n == 0)
			break;
		for (; n > 0; n--, p++) {
			unsigned char c = (unsigned char)*p;

			rc |= buf_append_char(out,
					      c == '\t' || (c >= ' ' && c <= '~') ? (char)c : '?');
		}
		rc |= buf_append(out, "\r\n", 2);
		p = nl ? nl + 1 : end;
	}
	return rc;
}

/* The reply as it was: "550 5.1.1 text". */
static int
append_reply(struct buf *out, const struct dsn_report *r)
{
	int rc = 0;

	if (r->code > 0)
		rc |= buf_printf(out, "%d ", r->code);
	if (r->enhanced != NULL && status_ok(r->enhanced)) {
		rc |= append_line(out, r->enhanced);
		rc |= buf_append_char(out, ' ');
	}
	return rc | append_line(out, r->diagnostic);
}

static int
append_header_section(const struct dsn_report *r, struct buf *out)
{
	char date[32];
	int rc = 0;

	util_format_mail_date(r->date, date);
	rc |= buf_printf(out, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\nTo: <",
			 r->reporting_mta);
	rc |= append_line(out, r->to);
	rc |= buf_printf(out, ">\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s>\r\n",
			 r->expired ? "Delivery Status Notification (Expired)"
				    : "Undelivered Mail Returned to Sender",
			 date, r->message_id);
	rc |= buf_printf(out,
			 "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
			 "Content-Type: multipart/report; report-type=delivery-status;\r\n"
			 "\tboundary=\"=_tern_dsn_%s\"\r\n\r\n"
			 "This is a MIME-encapsulated message.\r\n\r\n",
			 r->message_id);
	return rc;
}

static int
append_notification(const struct dsn_report *r, struct buf *out)
{
	int rc = buf_printf(out,
			    "--=_tern_dsn_%s\r\nContent-Type: text/plain; charset=us-ascii\r\n"
			    "Content-Description: Notification\r\n\r\n",
			    r->message_id);

	rc |= buf_append_str(out, "Your message could not be delivered to <");
	rc |= append_line(out, r->recipient);
	rc |= buf_append_str(out, r->expired ? ">:\r\nit could not be delivered in time and "
					       "no further attempts will be made.\r\n"
					     : ">:\r\nthe receiving server refused it.\r\n");
	if (r->diagnostic != NULL) {
		rc |= buf_append_str(out, "\r\nThe last reply was:\r\n    ");
		rc |= append_reply(out, r);
		rc |= buf_append_str(out, "\r\n");
	}
	return rc | buf_append_str(out, "\r\n");
}

static int
append_status(const struct dsn_report *r, struct buf *out)
{
	char arrival[32], now[32];
	int rc;

	util_format_mail_date(r->arrival_date, arrival);
	util_format_mail_date(r->date, now);
	rc = buf_printf(
	    out,
	    "--=_tern_dsn_%s\r\nContent-Type: message/delivery-status\r\n\r\n"
	    "Reporting-MTA: dns; %s\r\nArrival-Date: %s\r\n\r\nFinal-Recipient: rfc822; ",
	    r->message_id, r->reporting_mta, arrival);
	rc |= append_line(out, r->recipient);
	rc |= buf_append_str(out, "\r\nAction: failed\r\nStatus: ");
	rc |= append_line(out, r->status);
	if (r->remote_mta != NULL) {
		rc |= buf_append_str(out, "\r\nRemote-MTA: dns; ");
		rc |= append_line(out, r->remote_mta);
	}
	if (r->diagnostic != NULL) {
		rc |= buf_append_str(out, "\r\nDiagnostic-Code: smtp; ");
		rc |= append_reply(out, r);
	}
	return rc | buf_printf(out, "\r\nLast-Attempt-Date: %s\r\n\r\n", now);
}

/* Up to three digits at *p, moved past them: false when there are none. */
static bool
digits(const char **p)
{
	int n = 0;

	while (n < 3 && **p >= '0' && **p <= '9') {
		(*p)++;
		n++;
	}
	return n > 0;
}

/* RFC 3464 2.3.4: a status is class.subject.detail, the class 2, 4 or 5. */
static bool
status_ok(const char *s)
{
	if (s == NULL || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return false;
	s += 2;
	if (!digits(&s) || *s++ != '.' || !digits(&s))
		return false;
	return *s == '\0';
}

int
dsn_build(const struct dsn_report *r, struct buf *out, struct tern_err *err)
{
	int rc;

	if (r->to == NULL || r->to[0] == '\0' || r->recipient == NULL || !status_ok(r->status) ||
	    r->message_id == NULL || strpbrk(r->message_id, "<>\" \r\n") != NULL) {
		tern_err_set(err, 451, "4.3.0",
			     "DSN: a sender, a recipient, a status and a "
			     "Message-ID are needed");
		return -EINVAL;
	}
	rc = append_header_section(r, out);
	rc |= append_notification(r, out);
	rc |= append_status(r, out);
	rc |= buf_printf(out,
			 "--=_tern_dsn_%s\r\nContent-Type: text/rfc822-headers\r\n"
			 "Content-Description: Undelivered Message Headers\r\n\r\n",
			 r->message_id);
	rc |= append_headers(out, r->headers ? r->headers : "", r->headers_len);
	rc |= buf_printf(out, "\r\n--=_tern_dsn_%s--\r\n", r->message_id);
	if (rc < 0) {
		tern_err_set(err, 451, "4.3.0", "out of memory");
		return -ENOMEM;
	}
	return 0;
}

bool
dsn_is_report(const char *p, size_t len)
{
	char ct[MIME_FIELD_MAX];

	return mime_parse_header(p, len, "Content-Type", ct, sizeof(ct)) &&
	       strcasestr(ct, "multipart/report") != NULL &&
	       strcasestr(ct, "delivery-status") != NULL;
}
