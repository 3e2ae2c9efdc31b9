// SPDX-License-Identifier: MIT
/*
 * Feedback-loop reports. The machine-readable part of an ARF report is one
 * block of fields (RFC 5965 3.1-3.2); the reported message follows as
 * message/rfc822 or text/rfc822-headers, and is where tern's trace header
 * and the original Message-ID are found. A report without Original-Rcpt-To
 * (most providers redact it) names the complainer in the reported message's
 * To, which is also where the other forms name it.
 */
#include "tern/arf.h"
#include "tern/mime_parse.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define COPY(dst, v) snprintf((dst), sizeof(dst), "%s", (v))

static void
report_field(void *arg, int group, const char *name, const char *value)
{
	struct arf_report *r = arg;

	if (strcasecmp(name, "Feedback-Type") == 0)
		COPY(r->feedback_type, value);
	else if (strcasecmp(name, "User-Agent") == 0)
		COPY(r->user_agent, value);
	else if (strcasecmp(name, "Original-Rcpt-To") == 0 && r->original_rcpt[0] == '\0')
		mime_parse_address(value, r->original_rcpt, sizeof(r->original_rcpt));
	else if (strcasecmp(name, "Original-Mail-From") == 0)
		mime_parse_address(value, r->original_mail_from, sizeof(r->original_mail_from));
	else if (strcasecmp(name, "Source-IP") == 0)
		COPY(r->source_ip, value);
	else if (strcasecmp(name, "Arrival-Date") == 0 || strcasecmp(name, "Received-Date") == 0)
		COPY(r->arrival_date, value);
	else if (strcasecmp(name, "Reported-Domain") == 0)
		COPY(r->reported_domain, value);
}

static void
read_fields(GMimeObject *part, struct arf_report *out)
{
	struct buf text;

	buf_init(&text);
	if (mime_parse_content(part, &text) == 0 && text.len > 0)
		mime_parse_fields(text.data, text.len, false, report_field, out);
	buf_deinit(&text);
}

/* The reported message's headers: Message-ID, and the complainer when the report does not say. */
static void
read_reported(GMimeObject *root, struct arf_report *out)
{
	char to[512];
	struct buf text;

	buf_init(&text);
	if (mime_parse_returned_headers(root, &text)) {
		mime_parse_header(text.data, text.len, "Message-ID", out->original_message_id,
				  sizeof(out->original_message_id));
		if (out->original_rcpt[0] == '\0' &&
		    (mime_parse_header(text.data, text.len, "X-HmXmrOriginalRecipient", to,
				       sizeof(to)) ||
		     mime_parse_header(text.data, text.len, "To", to, sizeof(to))))
			mime_parse_address(to, out->original_rcpt, sizeof(out->original_rcpt));
	}
	buf_deinit(&text);
}

/* Microsoft JMRP: multipart/mixed around the reported message, which names the complainer. */
static bool
is_jmrp(GMimeObject *root)
{
	GMimeObject *orig = mime_parse_find(root, "message", "rfc822", false);
	GMimeMessage *m;

	if (orig == NULL || !GMIME_IS_MESSAGE_PART(orig))
		return false;
	m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(orig));
	return m != NULL &&
	       g_mime_object_get_header(GMIME_OBJECT(m), "X-HmXmrOriginalRecipient") != NULL;
}

/* Apple Mail's unsubscribe: a note from the recipient, sent to the List-Unsubscribe address. */
static bool
read_apple_unsubscribe(GMimeMessage *m, struct arf_report *out)
{
	const char *v = g_mime_object_get_header(GMIME_OBJECT(m), "X-Apple-Unsubscribe");
	const char *from = g_mime_object_get_header(GMIME_OBJECT(m), "From");

	if (v == NULL || strcasecmp(v, "true") != 0)
		return false;
	COPY(out->feedback_type, "opt-out");
	COPY(out->user_agent, "Apple Mail");
	if (from != NULL)
		mime_parse_address(from, out->original_rcpt, sizeof(out->original_rcpt));
	return true;
}

static int
read_report(GMimeMessage *m, struct arf_report *out)
{
	GMimeObject *root = g_mime_message_get_mime_part(m);
	GMimeObject *fields = mime_parse_find(root, "message", "feedback-report", false);

	if (fields != NULL) {
		read_fields(fields, out);
		if (out->feedback_type[0] == '\0')
			COPY(out->feedback_type, "other");
	} else if (is_jmrp(root)) {
		COPY(out->feedback_type, "abuse");
		COPY(out->user_agent, "Microsoft JMRP");
	} else {
		return read_apple_unsubscribe(m, out) ? 1 : 0;
	}
	read_reported(root, out);
	mime_parse_find_ref(m, out->ref, sizeof(out->ref));
	return 1;
}

int
arf_read(GMimeMessage *m, struct arf_report *out)
{
	memset(out, 0, sizeof(*out));
	return read_report(m, out);
}

int
arf_parse(const char *data, size_t len, struct arf_report *out)
{
	GMimeMessage *m = mime_parse_message(data, len);
	int rc;

	memset(out, 0, sizeof(*out));
	if (m == NULL)
		return 0;
	rc = arf_read(m, out);
	g_object_unref(m);
	return rc;
}
