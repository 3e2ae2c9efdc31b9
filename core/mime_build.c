// SPDX-License-Identifier: MIT
/*
 * The MIME builder. Every byte a client gives goes through an encoding that
 * cannot break the message's structure: header text with anything but
 * printable ASCII becomes encoded words (so a CR LF in a subject cannot add
 * a field), bodies are quoted-printable, attachments base64. The multipart
 * boundaries contain "=_", which neither encoding can produce, so they
 * cannot occur inside a part and need no random suffix.
 */
#include "tern/mime_build.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#define MIME_ALT_BOUNDARY "=_tern_alt"
#define MIME_MIX_BOUNDARY "=_tern_mix"
/* Encoded words are at most 75 characters: "=?UTF-8?B?" + 60 base64 characters + "?=". */
#define MIME_WORD_BYTES 45
#define MIME_QP_LINE 76
#define MIME_B64_LINE_BYTES 57

/* Fields the builder writes itself: a client's copy would make two. */
static const char *const own_fields[] = {
    "From",
    "To",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-Disposition",
};

bool
mime_header_name_ok(const char *name)
{
	const char *p;
	size_t i;

	if (*name == '\0' || strlen(name) > 76)
		return false;
	for (p = name; *p; p++)
		if (*p < 33 || *p > 126 || *p == ':')
			return false;
	for (i = 0; i < sizeof(own_fields) / sizeof(own_fields[0]); i++)
		if (strcasecmp(name, own_fields[i]) == 0)
			return false;
	return true;
}

static bool
is_token_char(unsigned char c)
{
	return c > 32 && c < 127 && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

bool
mime_content_type_ok(const char *ct)
{
	const char *slash = strchr(ct, '/'), *p;

	if (slash == NULL || slash == ct || slash[1] == '\0' || strlen(ct) > 200)
		return false;
	for (p = ct; *p; p++)
		if (p != slash && !is_token_char((unsigned char)*p))
			return false;
	return true;
}

bool
mime_address_ok(const char *email)
{
	const char *at = strchr(email, '@'), *p;

	if (at == NULL || at == email || at[1] == '\0' || strchr(at + 1, '@') ||
	    strlen(email) > 320)
		return false;
	for (p = email; *p; p++)
		if ((unsigned char)*p <= 32 || *p == 127 || strchr("<>,;\"\\()", *p))
			return false;
	return true;
}

/* ---- header text ------------------------------------------------------------------------------
 */

static bool
needs_encoding(const char *s)
{
	const unsigned char *p;

	if (strlen(s) > 900 || strstr(s, "=?"))
		return true;
	for (p = (const unsigned char *)s; *p; p++)
		if (*p < 32 || *p > 126)
			return true;
	return false;
}

static int
append_base64(struct buf *out, const void *p, size_t n)
{
	size_t need = 4 * ((n + 2) / 3);

	if (buf_reserve(out, need + 1) < 0)
		return -ENOMEM;
	EVP_EncodeBlock((unsigned char *)out->data + out->len, p, (int)n);
	out->len += need;
	out->data[out->len] = '\0';
	return 0;
}

/* How many bytes of s (at most max) end on a UTF-8 character boundary. */
static size_t
utf8_cut(const char *s, size_t len, size_t max)
{
	size_t n = len < max ? len : max;

	while (n > 0 && n < len && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	return n ? n : (len < max ? len : max);
}

/* RFC 2047 B encoded words, folded onto continuation lines. */
static int
append_encoded_words(struct buf *out, const char *s)
{
	size_t len = strlen(s), n;
	int rc = 0;

	while (len > 0 && rc == 0) {
		n = utf8_cut(s, len, MIME_WORD_BYTES);
		rc = buf_append_str(out, "=?UTF-8?B?");
		if (rc == 0)
			rc = append_base64(out, s, n);
		if (rc == 0)
			rc = buf_append_str(out, len > n ? "?=\r\n " : "?=");
		s += n;
		len -= n;
	}
	return rc;
}

static int
append_text(struct buf *out, const char *s)
{
	return needs_encoding(s) ? append_encoded_words(out, s) : buf_append_str(out, s);
}

static int
append_field(struct buf *out, const char *name, const char *value)
{
	if (buf_printf(out, "%s: ", name) < 0 || append_text(out, value) < 0)
		return -ENOMEM;
	return buf_append_str(out, "\r\n");
}

/* A display name: a quoted string when it is plain ASCII, encoded words otherwise. */
static int
append_address(struct buf *out, const char *field, const struct mime_address *a)
{
	const char *p;
	int rc;

	if (buf_printf(out, "%s: ", field) < 0)
		return -ENOMEM;
	if (a->name && *a->name && needs_encoding(a->name)) {
		rc = append_encoded_words(out, a->name);
	} else if (a->name && *a->name) {
		rc = buf_append_char(out, '"');
		for (p = a->name; *p && rc == 0; p++)
			rc = (*p == '"' || *p == '\\') ? buf_printf(out, "\\%c", *p)
						       : buf_append_char(out, *p);
		if (rc == 0)
			rc = buf_append_char(out, '"');
	} else {
		rc = 0;
	}
	if (rc < 0)
		return rc;
	return buf_printf(out, "%s<%s>\r\n", a->name && *a->name ? " " : "", a->email);
}

/* ---- bodies ------------------------------------------------------------------------------------
 */

struct qp_line {
	struct buf *out;
	size_t col;
};

static int
qp_put(struct qp_line *l, const char *tok, size_t n, bool last_on_line)
{
	/* Leave room for the soft break "=" unless this is the line's last token. */
	if (l->col + n > (last_on_line ? MIME_QP_LINE : MIME_QP_LINE - 1)) {
		if (buf_append_str(l->out, "=\r\n") < 0)
			return -ENOMEM;
		l->col = 0;
	}
	l->col += n;
	return buf_append(l->out, tok, n);
}

static int
qp_line(struct buf *out, const unsigned char *p, size_t n)
{
	struct qp_line l = {out, 0};
	char tok[4];
	size_t i;

	for (i = 0; i < n; i++) {
		bool last = i + 1 == n;
		bool literal = (p[i] >= 33 && p[i] <= 126 && p[i] != '=') ||
			       ((p[i] == ' ' || p[i] == '\t') && !last);

		if (literal) {
			tok[0] = (char)p[i];
			tok[1] = '\0';
		} else {
			snprintf(tok, sizeof(tok), "=%02X", p[i]);
		}
		if (qp_put(&l, tok, strlen(tok), last) < 0)
			return -ENOMEM;
	}
	return buf_append_str(out, "\r\n");
}

/* Quoted-printable of text whose lines end in LF or CRLF; the output ends with CRLF. */
static int
append_qp(struct buf *out, const char *text)
{
	const char *p = text;

	do {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);

		if (n > 0 && p[n - 1] == '\r' && nl)
			n--;
		if (qp_line(out, (const unsigned char *)p, n) < 0)
			return -ENOMEM;
		p = nl ? nl + 1 : p + n;
	} while (*p);
	return 0;
}

static int
append_base64_lines(struct buf *out, const char *data, size_t len)
{
	size_t off, n;

	for (off = 0; off < len; off += n) {
		n = len - off < MIME_B64_LINE_BYTES ? len - off : MIME_B64_LINE_BYTES;
		if (append_base64(out, data + off, n) < 0 || buf_append_str(out, "\r\n") < 0)
			return -ENOMEM;
	}
	return 0;
}

static int
text_part(struct buf *out, const char *subtype, const char *text)
{
	if (buf_printf(out,
		       "Content-Type: text/%s; charset=utf-8\r\n"
		       "Content-Transfer-Encoding: quoted-printable\r\n\r\n",
		       subtype) < 0)
		return -ENOMEM;
	return append_qp(out, text);
}

/* The text, the HTML, or both as alternatives (an empty text part when neither). */
static int
body_part(struct buf *out, const struct mime_message *m)
{
	if (m->text_body == NULL || m->html_body == NULL)
		return m->html_body ? text_part(out, "html", m->html_body)
				    : text_part(out, "plain", m->text_body ? m->text_body : "");
	if (buf_append_str(out, "Content-Type: multipart/alternative; boundary=\"" MIME_ALT_BOUNDARY
				"\"\r\n\r\n--" MIME_ALT_BOUNDARY "\r\n") < 0 ||
	    text_part(out, "plain", m->text_body) < 0 ||
	    buf_append_str(out, "\r\n--" MIME_ALT_BOUNDARY "\r\n") < 0 ||
	    text_part(out, "html", m->html_body) < 0)
		return -ENOMEM;
	return buf_append_str(out, "\r\n--" MIME_ALT_BOUNDARY "--\r\n");
}

static bool
isalnum_ascii(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* One character of an RFC 2231 extended value: as it is, or percent-encoded. */
static int
append_ext_char(struct buf *out, unsigned char c)
{
	if (isalnum_ascii(c) || strchr("!#$&+-.^_`|~", c))
		return buf_append_char(out, (char)c);
	return buf_printf(out, "%%%02X", c);
}

/*
 * filename="..." when short plain ASCII; else RFC 2231 continuations
 * (filename*0*=UTF-8''..; filename*1*=..), each on its own line, so that no
 * name makes a line too long.
 */
static int
append_file_name(struct buf *out, const char *name)
{
	const unsigned char *p = (const unsigned char *)name;
	size_t line_start;
	int rc = 0, seg = 0;

	if (!needs_encoding(name) && strpbrk(name, "\"\\") == NULL && strlen(name) <= 60)
		return buf_printf(out, "; filename=\"%s\"", name);
	while (*p && rc == 0) {
		rc = buf_printf(out, ";\r\n filename*%d*=%s", seg, seg == 0 ? "UTF-8''" : "");
		line_start = out->len;
		while (rc == 0 && *p && out->len - line_start < 60)
			rc = append_ext_char(out, *p++);
		seg++;
	}
	return rc;
}

static int
attachment_part(struct buf *out, const struct mime_attachment *a)
{
	if (buf_printf(out,
		       "Content-Type: %s\r\nContent-Transfer-Encoding: base64\r\n"
		       "Content-Disposition: attachment",
		       a->content_type ? a->content_type : "application/octet-stream") < 0)
		return -ENOMEM;
	if (a->file_name && *a->file_name && append_file_name(out, a->file_name) < 0)
		return -ENOMEM;
	if (buf_append_str(out, "\r\n\r\n") < 0)
		return -ENOMEM;
	return append_base64_lines(out, a->data, a->len);
}

static int
mixed_part(struct buf *out, const struct mime_message *m)
{
	size_t i;

	if (buf_append_str(out, "Content-Type: multipart/mixed; boundary=\"" MIME_MIX_BOUNDARY
				"\"\r\n\r\n--" MIME_MIX_BOUNDARY "\r\n") < 0 ||
	    body_part(out, m) < 0)
		return -ENOMEM;
	for (i = 0; i < m->n_attachments; i++)
		if (buf_append_str(out, "\r\n--" MIME_MIX_BOUNDARY "\r\n") < 0 ||
		    attachment_part(out, &m->attachments[i]) < 0)
			return -ENOMEM;
	return buf_append_str(out, "\r\n--" MIME_MIX_BOUNDARY "--\r\n");
}

/* ---- the message
 * --------------------------------------------------------------------------------- */

static int
check_parts(const struct mime_message *m, struct tern_err *err)
{
	size_t i;

	if (!mime_address_ok(m->from.email) || !mime_address_ok(m->to.email) ||
	    (m->reply_to && !mime_address_ok(m->reply_to->email))) {
		tern_err_set(err, 0, "", "an address is not a valid addr-spec");
		return -EINVAL;
	}
	for (i = 0; i < m->n_headers; i++)
		if (!mime_header_name_ok(m->headers[i].name)) {
			tern_err_set(err, 0, "", "header name '%s' is not allowed",
				     m->headers[i].name);
			return -EINVAL;
		}
	for (i = 0; i < m->n_attachments; i++)
		if (m->attachments[i].content_type &&
		    !mime_content_type_ok(m->attachments[i].content_type)) {
			tern_err_set(err, 0, "", "content type '%s' is not type/subtype",
				     m->attachments[i].content_type);
			return -EINVAL;
		}
	return 0;
}

static int
top_fields(struct buf *out, const struct mime_message *m)
{
	char date[32];
	size_t i;

	util_format_mail_date(m->date, date);
	if (append_address(out, "From", &m->from) < 0 || append_address(out, "To", &m->to) < 0 ||
	    (m->reply_to && append_address(out, "Reply-To", m->reply_to) < 0) ||
	    (m->subject && append_field(out, "Subject", m->subject) < 0) ||
	    buf_printf(out, "Date: %s\r\nMessage-ID: <%s>\r\n", date, m->message_id) < 0)
		return -ENOMEM;
	for (i = 0; i < m->n_headers; i++)
		if (append_field(out, m->headers[i].name, m->headers[i].value) < 0)
			return -ENOMEM;
	return buf_append_str(out, "MIME-Version: 1.0\r\n");
}

int
mime_build(const struct mime_message *m, struct buf *out, struct tern_err *err)
{
	int rc = check_parts(m, err);

	if (rc < 0)
		return rc;
	rc = top_fields(out, m);
	if (rc == 0)
		rc = m->n_attachments ? mixed_part(out, m) : body_part(out, m);
	if (rc < 0)
		tern_err_set(err, 451, "4.3.0", "out of memory building the message");
	return rc;
}
