// SPDX-License-Identifier: MIT
/*
 * Reading received MIME messages. GMime does the MIME (boundaries, transfer
 * encodings, broken structure as real mailers produce it); what is left here
 * is the walk over parts and the "Name: value" blocks of report parts,
 * which GMime hands over as plain text. GMime is initialised once, on first
 * use, from whichever thread gets there first.
 */
#include "tern/mime_parse.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static pthread_once_t gmime_once = PTHREAD_ONCE_INIT;

static void
gmime_start(void)
{
	g_mime_init();
}

GMimeMessage *
mime_parse_message(const char *data, size_t len)
{
	GMimeStream *stream;
	GMimeParser *parser;
	GMimeMessage *msg;

	pthread_once(&gmime_once, gmime_start);
	stream = g_mime_stream_mem_new_with_buffer(data, len);
	parser = g_mime_parser_new_with_stream(stream);
	msg = g_mime_parser_construct_message(parser, NULL);
	g_object_unref(parser);
	g_object_unref(stream);
	return msg;
}

static bool
is_type(GMimeObject *o, const char *type, const char *subtype)
{
	GMimeContentType *ct = g_mime_object_get_content_type(o);

	return ct != NULL && g_mime_content_type_is_type(ct, type, subtype);
}

GMimeObject *
mime_parse_find(GMimeObject *root, const char *type, const char *subtype, bool enter_messages)
{
	GMimeObject *found = NULL;
	int i, n;

	if (root == NULL)
		return NULL;
	if (is_type(root, type, subtype))
		return root;
	if (GMIME_IS_MULTIPART(root)) {
		n = g_mime_multipart_get_count(GMIME_MULTIPART(root));
		for (i = 0; i < n && found == NULL; i++)
			found = mime_parse_find(g_mime_multipart_get_part(GMIME_MULTIPART(root), i),
						type, subtype, enter_messages);
	} else if (enter_messages && GMIME_IS_MESSAGE_PART(root)) {
		GMimeMessage *m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(root));

		if (m != NULL)
			found = mime_parse_find(g_mime_message_get_mime_part(m), type, subtype,
						enter_messages);
	}
	return found;
}

static int
append_stream(GMimeStream *mem, struct buf *out)
{
	GByteArray *bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));

	return buf_append(out, bytes->data, bytes->len);
}

int
mime_parse_content(GMimeObject *part, struct buf *out)
{
	GMimeStream *mem = g_mime_stream_mem_new();
	int rc = 0;

	if (GMIME_IS_PART(part)) {
		GMimeDataWrapper *w = g_mime_part_get_content(GMIME_PART(part));

		if (w != NULL)
			g_mime_data_wrapper_write_to_stream(w, mem);
	} else if (GMIME_IS_MESSAGE_PART(part)) {
		GMimeMessage *m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(part));

		if (m != NULL)
			g_mime_object_write_to_stream(GMIME_OBJECT(m), NULL, mem);
	}
	rc = append_stream(mem, out);
	g_object_unref(mem);
	return rc;
}

bool
mime_parse_returned_headers(GMimeObject *root, struct buf *out)
{
	GMimeObject *orig = mime_parse_find(root, "message", "rfc822", false);

	if (orig == NULL)
		orig = mime_parse_find(root, "text", "rfc822-headers", false);
	return orig != NULL && mime_parse_content(orig, out) == 0 && out->len > 0;
}

/* ---- "Name: value" blocks -------------------------------------------------------------------- */

struct field_reader {
	int group;
	bool open; /* a field is being collected */
	char name[128];
	char value[MIME_FIELD_MAX];
	size_t vlen;
	mime_field_fn fn;
	void *arg;
};

static void
field_flush(struct field_reader *r)
{
	while (r->vlen > 0 && isspace((unsigned char)r->value[r->vlen - 1]))
		r->vlen--;
	r->value[r->vlen] = '\0';
	if (r->open)
		r->fn(r->arg, r->group, r->name, r->value);
	r->open = false;
}

static void
field_add_value(struct field_reader *r, const char *p, size_t n)
{
	while (n > 0 && isspace((unsigned char)*p)) {
		p++;
		n--;
	}
	if (r->vlen > 0 && n > 0 && r->vlen < sizeof(r->value) - 1)
		r->value[r->vlen++] = ' ';
	if (n > sizeof(r->value) - 1 - r->vlen)
		n = sizeof(r->value) - 1 - r->vlen;
	memcpy(r->value + r->vlen, p, n);
	r->vlen += n;
}

/* A "Name:" line starts a field; returns false when the line is not one. */
static bool
field_start(struct field_reader *r, const char *p, size_t n)
{
	const char *colon = memchr(p, ':', n);
	size_t nl, i;

	if (colon == NULL || colon == p)
		return false;
	nl = (size_t)(colon - p);
	for (i = 0; i < nl; i++)
		if (p[i] <= ' ' || p[i] > '~')
			return false;
	if (nl >= sizeof(r->name))
		nl = sizeof(r->name) - 1;
	memcpy(r->name, p, nl);
	r->name[nl] = '\0';
	r->vlen = 0;
	r->open = true;
	field_add_value(r, colon + 1, (size_t)(p + n - colon - 1));
	return true;
}

/* One line without its end; false when a header section ends at it. */
static bool
field_line(struct field_reader *r, const char *p, size_t n, bool headers_only)
{
	if (n > 0 && p[n - 1] == '\r')
		n--;
	if (n == 0) {
		bool had_field = r->open;

		field_flush(r);
		if (had_field)
			r->group++;
		return !headers_only;
	}
	if ((*p == ' ' || *p == '\t') && r->open) {
		field_add_value(r, p, n);
		return true;
	}
	field_flush(r);
	return field_start(r, p, n) || !headers_only;
}

void
mime_parse_fields(const char *p, size_t len, bool headers_only, mime_field_fn fn, void *arg)
{
	struct field_reader r = {.fn = fn, .arg = arg};
	const char *end = p + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *stop = nl ? nl : end;

		if (!field_line(&r, p, (size_t)(stop - p), headers_only))
			break;
		p = nl ? nl + 1 : end;
	}
	field_flush(&r);
}

struct header_want {
	const char *name;
	char *out;
	size_t n;
	bool found;
};

static void
header_match(void *arg, int group, const char *name, const char *value)
{
	struct header_want *w = arg;

	if (!w->found && strcasecmp(name, w->name) == 0) {
		snprintf(w->out, w->n, "%s", value);
		w->found = true;
	}
}

bool
mime_parse_header(const char *p, size_t len, const char *name, char *out, size_t n)
{
	struct header_want w = {name, out, n, false};

	mime_parse_fields(p, len, true, header_match, &w);
	return w.found;
}

static bool
address_char(char c)
{
	return c > ' ' && c <= '~' && c != '<' && c != '>' && c != '"' && c != ',' && c != ';' &&
	       c != '(' && c != ')' && c != '[' && c != ']' && c != '\\' && c != ':';
}

/* The start of a quoted local part ("a..b"@example.org) that ends just before at, or NULL. */
static const char *
quoted_start(const char *value, const char *at)
{
	const char *q;

	if (at - value < 2 || at[-1] != '"')
		return NULL;
	for (q = at - 2; q > value && *q != '"'; q--)
		;
	return *q == '"' ? q : NULL;
}

void
mime_parse_address(const char *value, char *out, size_t n)
{
	const char *at = strchr(value, '@'), *b, *e;
	size_t len;

	out[0] = '\0';
	if (at == NULL || n == 0)
		return;
	b = quoted_start(value, at);
	if (b == NULL)
		for (b = at; b > value && address_char(b[-1]); b--)
			;
	for (e = at + 1; *e && address_char(*e); e++)
		;
	while (e > at + 1 && e[-1] == '.')
		e--;
	len = (size_t)(e - b);
	if (b == at || e == at + 1 || len >= n)
		return;
	memcpy(out, b, len);
	out[len] = '\0';
}

/* ---- the trace header of the original -------------------------------------------------------- */

/* A line "X-Tern-Ref: value" in text (bounces that quote the original as text). */
static bool
ref_in_text(const char *p, size_t len, char *out, size_t n)
{
	const size_t hl = strlen(MIME_REF_HEADER);
	const char *end = p + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *stop = nl ? nl : end;

		while (p < stop && (*p == ' ' || *p == '\t' || *p == '>'))
			p++;
		if ((size_t)(stop - p) > hl && util_strncaseeq(p, MIME_REF_HEADER, hl) &&
		    p[hl] == ':')
			return mime_parse_header(p, (size_t)(end - p), MIME_REF_HEADER, out, n);
		p = nl ? nl + 1 : end;
	}
	return false;
}

static bool ref_in_object(GMimeObject *o, char *out, size_t n);

static bool
ref_in_message(GMimeMessage *m, char *out, size_t n)
{
	const char *v = g_mime_object_get_header(GMIME_OBJECT(m), MIME_REF_HEADER);

	if (v != NULL) {
		snprintf(out, n, "%s", v);
		return true;
	}
	return ref_in_object(g_mime_message_get_mime_part(m), out, n);
}

static bool
ref_in_leaf(GMimeObject *o, char *out, size_t n)
{
	struct buf text;
	bool found;

	if (!is_type(o, "text", "*") && !is_type(o, "message", "*"))
		return false;
	buf_init(&text);
	found = mime_parse_content(o, &text) == 0 && text.len > 0 &&
		ref_in_text(text.data, text.len, out, n);
	buf_deinit(&text);
	return found;
}

static bool
ref_in_object(GMimeObject *o, char *out, size_t n)
{
	int i, count;

	if (o == NULL)
		return false;
	if (GMIME_IS_MESSAGE_PART(o)) {
		GMimeMessage *m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));

		return m != NULL && ref_in_message(m, out, n);
	}
	if (!GMIME_IS_MULTIPART(o))
		return ref_in_leaf(o, out, n);
	count = g_mime_multipart_get_count(GMIME_MULTIPART(o));
	for (i = 0; i < count; i++)
		if (ref_in_object(g_mime_multipart_get_part(GMIME_MULTIPART(o), i), out, n))
			return true;
	return false;
}

bool
mime_parse_find_ref(GMimeMessage *msg, char *out, size_t n)
{
	return ref_in_object(g_mime_message_get_mime_part(msg), out, n);
}
