// SPDX-License-Identifier: MIT
/*
 * Asynchronous bounces. A standard DSN says everything in its
 * message/delivery-status part: a per-message group (Reporting-MTA) and a
 * group per recipient (Final-Recipient, Action, Status, Diagnostic-Code).
 * Many mailers never learnt RFC 3464 and write a note for people instead;
 * those are recognised by who sends them (MAILER-DAEMON, postmaster, Exim's
 * X-Failed-Recipients) or their subject, and read from the note's text up
 * to where the copy of the original begins: the failed recipient is the
 * address a line starts with (else the first one), the reply is the first
 * "5xx"/"4xx" or enhanced status code. Between the two, DSNs whose MIME
 * structure was lost on the way (a report without boundaries, a bounce of a
 * bounce quoting one) still carry the delivery-status fields as text, which
 * are read where they are found. The classifier then reads the reply.
 * Delay notices are reported too (action "delayed"): policy tells them apart.
 */
#include "tern/oob.h"
#include "tern/mime_parse.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- RFC 3464 -------------------------------------------------------------------------------- */

struct dsn_reader {
	struct oob_report *out;
	int seen; /* recipient groups, reported or not */
	struct oob_recipient cur;
	int cur_group;
	bool cur_open;
};

/* The reply code a diagnostic starts with ("550 5.1.1 ..."), or 0. */
static int
leading_code(const char *s)
{
	if ((s[0] == '4' || s[0] == '5') && isdigit((unsigned char)s[1]) &&
	    isdigit((unsigned char)s[2]) && (s[3] == ' ' || s[3] == '-' || s[3] == '\0'))
		return (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
	return 0;
}

static void
recipient_end(struct dsn_reader *r)
{
	struct oob_report *o = r->out;

	/* Delivered, relayed and expanded recipients are no bounce; no Action is read as failed. */
	bool reported = r->cur.action[0] == '\0' || strcasecmp(r->cur.action, "failed") == 0 ||
			strcasecmp(r->cur.action, "delayed") == 0;

	r->seen += r->cur_open;
	if (r->cur_open && reported && r->cur.address[0] && o->n_rcpts < OOB_MAX_RCPTS) {
		o->rcpts[o->n_rcpts] = r->cur;
		if (r->cur.action[0] == '\0')
			snprintf(o->rcpts[o->n_rcpts].action, sizeof(r->cur.action), "failed");
		o->n_rcpts++;
	}
	memset(&r->cur, 0, sizeof(r->cur));
	r->cur_open = false;
}

/* "smtp; 550 ..." -> "550 ...": the diagnostic type says nothing the text does not. */
static const char *
without_type(const char *v)
{
	const char *semi = strchr(v, ';');

	if (semi == NULL || semi - v > 16)
		return v;
	for (semi++; *semi == ' '; semi++)
		;
	return semi;
}

static void
recipient_field(struct dsn_reader *r, const char *name, const char *value)
{
	struct oob_recipient *c = &r->cur;

	if (strcasecmp(name, "Final-Recipient") == 0)
		mime_parse_address(value, c->address, sizeof(c->address));
	else if (strcasecmp(name, "Original-Recipient") == 0)
		mime_parse_address(value, c->original, sizeof(c->original));
	else if (strcasecmp(name, "Action") == 0)
		snprintf(c->action, sizeof(c->action), "%.*s", (int)strcspn(value, " ("), value);
	else if (strcasecmp(name, "Status") == 0)
		snprintf(c->status, sizeof(c->status), "%.*s", (int)strcspn(value, " ("), value);
	else if (strcasecmp(name, "Remote-MTA") == 0)
		snprintf(c->remote_mta, sizeof(c->remote_mta), "%s", without_type(value));
	else if (strcasecmp(name, "Diagnostic-Code") == 0) {
		snprintf(c->diagnostic, sizeof(c->diagnostic), "%s", without_type(value));
		c->code = leading_code(c->diagnostic);
	}
}

static void
dsn_field(void *arg, int group, const char *name, const char *value)
{
	struct dsn_reader *r = arg;
	bool starts =
	    strcasecmp(name, "Final-Recipient") == 0 || strcasecmp(name, "Original-Recipient") == 0;

	if (strcasecmp(name, "Reporting-MTA") == 0) {
		snprintf(r->out->reporting_mta, sizeof(r->out->reporting_mta), "%s",
			 without_type(value));
		return;
	}
	/* A new group, or a recipient field seen twice (groups run together in some DSNs). */
	if (r->cur_open &&
	    (group != r->cur_group ||
	     (starts && strcasecmp(name, "Final-Recipient") == 0 && r->cur.address[0])))
		recipient_end(r);
	if (!r->cur_open && !starts && strcasecmp(name, "Action") != 0 &&
	    strcasecmp(name, "Status") != 0 && strcasecmp(name, "Diagnostic-Code") != 0)
		return;
	r->cur_open = true;
	r->cur_group = group;
	recipient_field(r, name, value);
}

/* The recipient groups seen: a report of deliveries only sees some and reports none. */
static int
read_status_fields(const char *p, size_t len, struct oob_report *out)
{
	struct dsn_reader r = {.out = out};

	mime_parse_fields(p, len, false, dsn_field, &r);
	recipient_end(&r);
	return r.seen;
}

static int
read_delivery_status(GMimeObject *part, struct oob_report *out)
{
	struct buf text;
	int seen = 0;

	buf_init(&text);
	if (mime_parse_content(part, &text) == 0 && text.len > 0)
		seen = read_status_fields(text.data, text.len, out);
	buf_deinit(&text);
	return seen;
}

/* Delivery-status fields written as text, in a report whose structure was lost. */
static int
read_status_text(const char *p, size_t len, struct oob_report *out)
{
	const char *end = p + len, *q;

	for (q = p; q < end; q++) {
		q = memchr(q, '\n', (size_t)(end - q));
		if (q == NULL)
			return 0;
		if ((size_t)(end - q) > 17 && util_strncaseeq(q + 1, "Final-Recipient:", 16))
			return read_status_fields(p, len, out);
	}
	return 0;
}

/* ---- notes for people ------------------------------------------------------------------------ */

static bool
contains_any(const char *s, const char *const *words)
{
	size_t i;

	for (i = 0; s != NULL && words[i]; i++)
		if (strcasestr(s, words[i]) != NULL)
			return true;
	return false;
}

static const char *const bouncer_names[] = {"mailer-daemon",
					    "postmaster",
					    "mail delivery",
					    "mail_daemon",
					    "no-reply@sns.amazonaws.com",
					    NULL};
static const char *const bounce_subjects[] = {"undeliver",
					      "delivery status",
					      "delivery fail",
					      "failure notice",
					      "returned mail",
					      "returning message",
					      "returning to sender",
					      "delivery notification",
					      "not delivered",
					      "could not be delivered",
					      "nondeliverable",
					      "non-delivery",
					      "mail delivery failed",
					      "delivery problem",
					      "failed delivery",
					      "delivery error",
					      NULL};

static bool
looks_like_bounce(GMimeMessage *m)
{
	GMimeObject *o = GMIME_OBJECT(m);

	return g_mime_object_get_header(o, "X-Failed-Recipients") != NULL ||
	       contains_any(g_mime_object_get_header(o, "From"), bouncer_names) ||
	       contains_any(g_mime_object_get_header(o, "Subject"), bounce_subjects);
}

/* Where the note ends and the copy of the original begins. */
static const char *const original_markers[] = {"original message",	 "copy of the message",
					       "below this line",	 "message text follows",
					       "header of the original", "returned message",
					       "original headers",	 "undelivered message",
					       "message headers follow", NULL};

static size_t
note_length(const char *p, size_t len)
{
	const char *start = p, *end = p + len;
	char line[256];

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *stop = nl ? nl : end;
		size_t n =
		    (size_t)(stop - p) < sizeof(line) - 1 ? (size_t)(stop - p) : sizeof(line) - 1;

		memcpy(line, p, n);
		line[n] = '\0';
		if ((p > start && contains_any(line, original_markers)) ||
		    strncasecmp(line, "Received: ", 10) == 0 ||
		    strncasecmp(line, "Return-Path:", 12) == 0)
			return (size_t)(p - start);
		p = nl ? nl + 1 : end;
	}
	return len;
}

/* The address a line of the note starts with ("<a@b>:", "\"a@b\":", "  a@b"), if any. */
static bool
line_address(const char *p, const char *stop, char *out, size_t n)
{
	char line[OOB_ADDR_MAX + 8];
	size_t len;

	while (p < stop && (*p == ' ' || *p == '\t' || *p == '<' || *p == '"'))
		p++;
	len = (size_t)(stop - p) < sizeof(line) - 1 ? (size_t)(stop - p) : sizeof(line) - 1;
	memcpy(line, p, len);
	line[len] = '\0';
	len = strcspn(line, " \t<>\":,;");
	line[len] = '\0';
	if (strchr(line, '@') == NULL)
		return false;
	mime_parse_address(line, out, n);
	return out[0] != '\0';
}

static void
note_recipient(const char *p, size_t len, struct oob_recipient *r)
{
	const char *end = p + len, *q = p, *at;
	char any[2 * OOB_ADDR_MAX];

	while (q < end) {
		const char *nl = memchr(q, '\n', (size_t)(end - q));
		const char *stop = nl ? nl : end;

		if (line_address(q, stop, r->address, sizeof(r->address)))
			return;
		q = nl ? nl + 1 : end;
	}
	/* No line starts with one: the first address anywhere, read from a window around its '@'.
	 */
	at = memchr(p, '@', len);
	if (at == NULL)
		return;
	q = at - p > OOB_ADDR_MAX - 1 ? at - (OOB_ADDR_MAX - 1) : p;
	snprintf(any, sizeof(any), "%.*s",
		 (int)((size_t)(end - q) < sizeof(any) - 1 ? (size_t)(end - q) : sizeof(any) - 1),
		 q);
	mime_parse_address(any, r->address, sizeof(r->address));
}

static bool
boundary_before(const char *start, const char *p)
{
	return p == start || !(isalnum((unsigned char)p[-1]) || p[-1] == '.' || p[-1] == '-' ||
			       p[-1] == '+' || p[-1] == ':' || p[-1] == '=');
}

/* An enhanced status code "5.1.1" at p: its length, or 0. */
static size_t
enhanced_at(const char *p, const char *end)
{
	const char *q = p + 1;
	int dots = 0, digits = 0;

	if (end - p < 5 || (*p != '4' && *p != '5') || p[1] != '.')
		return 0;
	for (; q < end && (isdigit((unsigned char)*q) || *q == '.'); q++) {
		if (*q == '.') {
			if (digits == 0 && dots > 0)
				return 0;
			dots++;
			digits = 0;
		} else if (++digits > 3) {
			return 0;
		}
	}
	return dots == 2 && digits > 0 ? (size_t)(q - p) : 0;
}

static size_t
line_length(const char *p, const char *end)
{
	const char *q = p;

	while (q < end && *q != '\r' && *q != '\n')
		q++;
	return (size_t)(q - p);
}

/* The first remote reply in the note: the line from its code on. */
static void
note_reply(const char *p, size_t len, struct oob_recipient *r)
{
	const char *end = p + len, *q;

	for (q = p; q + 3 < end; q++) {
		size_t el;

		if (!boundary_before(p, q))
			continue;
		el = enhanced_at(q, end);
		if (el == 0 && !(leading_code(q) && q + 4 < end))
			continue;
		snprintf(r->diagnostic, sizeof(r->diagnostic), "%.*s", (int)line_length(q, end), q);
		r->code = leading_code(q);
		if (el == 0 && r->diagnostic[3] == ' ')
			el = enhanced_at(r->diagnostic + 4, r->diagnostic + strlen(r->diagnostic));
		if (el > 0 && el < sizeof(r->status))
			snprintf(r->status, sizeof(r->status), "%.*s", (int)el,
				 r->code ? r->diagnostic + 4 : r->diagnostic);
		return;
	}
}

static void
read_note(GMimeMessage *m, const char *p, size_t len, struct oob_report *out)
{
	const char *failed = g_mime_object_get_header(GMIME_OBJECT(m), "X-Failed-Recipients");
	struct oob_recipient *r = &out->rcpts[0];
	size_t n = note_length(p, len);

	memset(r, 0, sizeof(*r));
	if (failed != NULL)
		mime_parse_address(failed, r->address, sizeof(r->address));
	if (r->address[0] == '\0')
		note_recipient(p, n, r);
	note_reply(p, n, r);
	snprintf(r->action, sizeof(r->action), "failed");
	if (r->address[0] != '\0')
		out->n_rcpts = 1;
}

/* The body after the header section, for a report whose MIME structure is broken. */
static void
raw_body(const char *data, size_t len, struct buf *out)
{
	const char *p = data, *end = data + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));

		if (nl == NULL)
			return;
		if (nl == p || (nl == p + 1 && *p == '\r')) {
			buf_append(out, nl + 1, (size_t)(end - nl - 1));
			return;
		}
		p = nl + 1;
	}
}

/*
 * The text of a report (the first text part outside enclosed messages, or
 * the raw body when MIME finds none): status fields written there, else a
 * note for people.
 */
static void
read_text(GMimeMessage *m, const char *data, size_t len, bool is_report, struct oob_report *out)
{
	GMimeObject *text =
	    mime_parse_find(g_mime_message_get_mime_part(m), "text", "plain", false);
	struct buf body;

	buf_init(&body);
	if (text != NULL)
		mime_parse_content(text, &body);
	if (body.len == 0)
		raw_body(data, len, &body);
	if (body.len > 0 && read_status_text(body.data, body.len, out) == 0 &&
	    (is_report || looks_like_bounce(m)))
		read_note(m, body.data, body.len, out);
	buf_deinit(&body);
}

/* ---- the original ---------------------------------------------------------------------------- */

/*
 * The returned message's Message-ID, and its To when the report named no
 * recipient at all (Postfix's "Delivery report unavailable").
 */
static void
read_original(GMimeMessage *m, bool is_bounce, struct oob_report *out)
{
	struct oob_recipient *r = &out->rcpts[0];
	char to[OOB_TEXT_MAX];
	struct buf text;

	buf_init(&text);
	if (mime_parse_returned_headers(g_mime_message_get_mime_part(m), &text)) {
		mime_parse_header(text.data, text.len, "Message-ID", out->original_message_id,
				  sizeof(out->original_message_id));
		if (out->n_rcpts == 0 && is_bounce &&
		    mime_parse_header(text.data, text.len, "To", to, sizeof(to))) {
			memset(r, 0, sizeof(*r));
			mime_parse_address(to, r->address, sizeof(r->address));
			snprintf(r->action, sizeof(r->action), "failed");
			out->n_rcpts = r->address[0] ? 1 : 0;
		}
	}
	buf_deinit(&text);
}

int
oob_read(GMimeMessage *m, const char *data, size_t len, struct oob_report *out)
{
	GMimeObject *status;
	int seen = 0;

	memset(out, 0, sizeof(*out));
	status =
	    mime_parse_find(g_mime_message_get_mime_part(m), "message", "delivery-status", false);
	if (status == NULL)
		status = mime_parse_find(g_mime_message_get_mime_part(m), "message",
					 "global-delivery-status", false);
	if (status != NULL)
		seen = read_delivery_status(status, out);
	out->standard = seen > 0;
	/* A report of deliveries (or relays) only is no bounce: nothing to guess. */
	if (seen == 0) {
		read_text(m, data, len, status != NULL, out);
		read_original(m, status != NULL || looks_like_bounce(m), out);
	} else {
		read_original(m, false, out);
	}
	if (out->n_rcpts > 0)
		mime_parse_find_ref(m, out->ref, sizeof(out->ref));
	return out->n_rcpts > 0 ? 1 : 0;
}

int
oob_parse(const char *data, size_t len, struct oob_report *out)
{
	GMimeMessage *m = mime_parse_message(data, len);
	int rc;

	memset(out, 0, sizeof(*out));
	if (m == NULL)
		return 0;
	rc = oob_read(m, data, len, out);
	g_object_unref(m);
	return rc;
}
