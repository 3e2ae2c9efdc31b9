// SPDX-License-Identifier: MIT
/*
 * `{{ name }}` substitution. A hand-written scanner rather than a template
 * engine: Debian packages no maintained C library for Jinja-like templates
 * (ctemplate is C++ and unmaintained, mustach is not packaged), and the
 * inject API needs substitution only; keeping the grammar this small means
 * a template from an HTTP client can do nothing but insert values.
 */
#include "tern/template.h"

#include <errno.h>
#include <string.h>

static bool
is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == '-';
}

/* p points at "{{": the name's span and the length of the whole tag, or 0 when it is none. */
static size_t
tag_parse(const char *p, const char **name, size_t *namelen)
{
	const char *q = p + 2, *start;

	while (*q == ' ')
		q++;
	start = q;
	while (is_name_char(*q))
		q++;
	if (q == start)
		return 0;
	*name = start;
	*namelen = (size_t)(q - start);
	while (*q == ' ')
		q++;
	if (q[0] != '}' || q[1] != '}')
		return 0;
	return (size_t)(q + 2 - p);
}

static int
append_value(struct buf *out, const char *v, bool html)
{
	int rc = 0;

	if (!html)
		return buf_append_str(out, v);
	for (; *v && rc == 0; v++) {
		switch (*v) {
		case '<':
			rc = buf_append_str(out, "&lt;");
			break;
		case '>':
			rc = buf_append_str(out, "&gt;");
			break;
		case '&':
			rc = buf_append_str(out, "&amp;");
			break;
		case '"':
			rc = buf_append_str(out, "&quot;");
			break;
		case '\'':
			rc = buf_append_str(out, "&#39;");
			break;
		default:
			rc = buf_append_char(out, *v);
		}
	}
	return rc;
}

int
template_render(const char *tpl, template_lookup_fn lookup, void *arg, bool html, struct buf *out)
{
	const char *p = tpl;

	while (*p) {
		const char *open = strstr(p, "{{"), *name, *v;
		size_t namelen, taglen;

		if (open == NULL)
			return buf_append_str(out, p);
		taglen = tag_parse(open, &name, &namelen);
		if (buf_append(out, p, (size_t)(open - p) + (taglen ? 0 : 2)) < 0)
			return -ENOMEM;
		p = open + (taglen ? taglen : 2);
		if (taglen == 0)
			continue;
		v = lookup(arg, name, namelen);
		if (v != NULL && append_value(out, v, html) < 0)
			return -ENOMEM;
	}
	/* An empty template still leaves out a valid (NUL-terminated) string. */
	return buf_append(out, "", 0);
}
