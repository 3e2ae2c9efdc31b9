// SPDX-License-Identifier: MIT
/*
 * PowerMTA's configuration syntax: one directive per line ("name value"),
 * blocks opened by "<kind arg>" and closed by "</kind>", comments on lines
 * starting with '#'. The parser keeps every line number, because the
 * importer must name each directive it cannot map by its line. It only
 * builds the tree; what a directive means is the importer's business.
 */
#include "tern/pmta_conf.h"
#include "tern/util.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct pmta_parser {
	struct pmta_node *stack[PMTA_CONF_MAX_DEPTH + 1];
	int depth;
	int line;
	struct tern_err *err;
};

static const char *
skip_space(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

static const char *
trim_end(const char *p, const char *end)
{
	while (end > p && isspace((unsigned char)end[-1]))
		end--;
	return end;
}

static struct pmta_node *
node_new(const char *name, size_t nlen, const char *value, size_t vlen, int line, bool block)
{
	struct pmta_node *n = calloc(1, sizeof(*n));

	if (n == NULL)
		return NULL;
	n->name = strndup(name, nlen);
	n->value = strndup(value, vlen);
	n->line = line;
	n->block = block;
	if (n->name == NULL || n->value == NULL) {
		pmta_conf_deinit(n);
		free(n); n = NULL;
	}
	return n;
}

static int
add_child(struct pmta_node *parent, struct pmta_node *child)
{
	if (parent->n_children == parent->cap_children) {
		size_t cap = parent->cap_children ? parent->cap_children * 2 : 8;
		struct pmta_node **c = realloc(parent->children, cap * sizeof(*c));

		if (c == NULL)
			return -ENOMEM;
		parent->children = c;
		parent->cap_children = cap;
	}
	parent->children[parent->n_children++] = child;
	return 0;
}

/* "name rest": splits at the first blank; value is the trimmed rest. */
static int
add_node(struct pmta_parser *ps, const char *p, const char *end, bool block)
{
	const char *name_end = p, *v;
	struct pmta_node *n;

	while (name_end < end && *name_end != ' ' && *name_end != '\t')
		name_end++;
	v = skip_space(name_end, end);
	n = node_new(p, (size_t)(name_end - p), v, (size_t)(end - v), ps->line, block);
	if (n == NULL || add_child(ps->stack[ps->depth], n) < 0) {
		pmta_conf_deinit(n);
		free(n); n = NULL;
		tern_err_set(ps->err, 0, "", "out of memory");
		return -ENOMEM;
	}
	if (block)
		ps->stack[++ps->depth] = n;
	return 0;
}

static int
open_block(struct pmta_parser *ps, const char *p, const char *end)
{
	if (p == end || *p == ' ' || *p == '\t') {
		tern_err_set(ps->err, 0, "", "line %d: a block needs a kind, as in <domain example.com>",
			     ps->line);
		return -EINVAL;
	}
	if (ps->depth == PMTA_CONF_MAX_DEPTH) {
		tern_err_set(ps->err, 0, "", "line %d: blocks nested more than %d deep", ps->line,
			     PMTA_CONF_MAX_DEPTH);
		return -EINVAL;
	}
	return add_node(ps, p, end, true);
}

static int
close_block(struct pmta_parser *ps, const char *p, const char *end)
{
	const struct pmta_node *top = ps->stack[ps->depth];

	if (ps->depth == 0) {
		tern_err_set(ps->err, 0, "", "line %d: </%.*s> closes no open block", ps->line,
			     (int)(end - p), p);
		return -EINVAL;
	}
	if (strlen(top->name) != (size_t)(end - p) || strncasecmp(top->name, p, (size_t)(end - p)) != 0) {
		tern_err_set(ps->err, 0, "", "line %d: </%.*s> closes <%s> opened at line %d", ps->line,
			     (int)(end - p), p, top->name, top->line);
		return -EINVAL;
	}
	ps->depth--;
	return 0;
}

static int
parse_line(struct pmta_parser *ps, const char *p, const char *end)
{
	p = skip_space(p, end);
	end = trim_end(p, end);
	if (p == end || *p == '#')
		return 0;
	if (memchr(p, '\0', (size_t)(end - p))) {
		tern_err_set(ps->err, 0, "", "line %d: NUL byte", ps->line);
		return -EINVAL;
	}
	if (!util_utf8_valid(p, (size_t)(end - p))) {
		tern_err_set(ps->err, 0, "", "line %d: not valid UTF-8", ps->line);
		return -EINVAL;
	}
	if (*p != '<')
		return add_node(ps, p, end, false);
	if (end[-1] != '>' || end - p < 3) {
		tern_err_set(ps->err, 0, "", "line %d: a block line must end with '>'", ps->line);
		return -EINVAL;
	}
	if (p[1] == '/')
		return close_block(ps, skip_space(p + 2, end - 1), trim_end(p + 2, end - 1));
	return open_block(ps, p + 1, trim_end(p + 1, end - 1));
}

int
pmta_conf_parse(const char *text, size_t len, struct pmta_node *out, struct tern_err *err)
{
	struct pmta_parser ps = {.depth = 0, .line = 0, .err = err};
	const char *p = text, *end = text + len;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	out->block = true;
	out->name = strdup("");
	out->value = strdup("");
	ps.stack[0] = out;
	if (out->name == NULL || out->value == NULL) {
		tern_err_set(err, 0, "", "out of memory");
		rc = -ENOMEM;
	}
	while (rc == 0 && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end;

		ps.line++;
		rc = parse_line(&ps, p, eol);
		p = nl ? nl + 1 : end;
	}
	if (rc == 0 && ps.depth > 0) {
		tern_err_set(err, 0, "", "line %d: <%s> is never closed", ps.stack[ps.depth]->line,
			     ps.stack[ps.depth]->name);
		rc = -EINVAL;
	}
	if (rc < 0)
		pmta_conf_deinit(out);
	return rc;
}

void
pmta_conf_deinit(struct pmta_node *n)
{
	size_t i;

	if (n == NULL)
		return;
	for (i = 0; i < n->n_children; i++) {
		pmta_conf_deinit(n->children[i]);
		free(n->children[i]); n->children[i] = NULL;
	}
	free(n->children); n->children = NULL;
	free(n->name); n->name = NULL;
	free(n->value); n->value = NULL;
	n->n_children = n->cap_children = 0;
}

int
pmta_conf_to_json(const struct pmta_node *n, struct buf *out)
{
	size_t i;
	int rc = 0;

	rc |= buf_append_str(out, "{\"name\":");
	rc |= buf_append_json_string(out, n->name, strlen(n->name));
	rc |= buf_append_str(out, ",\"value\":");
	rc |= buf_append_json_string(out, n->value, strlen(n->value));
	rc |= buf_printf(out, ",\"line\":%d,\"block\":%s", n->line, n->block ? "true" : "false");
	if (n->block) {
		rc |= buf_append_str(out, ",\"children\":[");
		for (i = 0; i < n->n_children && rc == 0; i++) {
			if (i > 0)
				rc |= buf_append_char(out, ',');
			rc |= pmta_conf_to_json(n->children[i], out);
		}
		rc |= buf_append_char(out, ']');
	}
	rc |= buf_append_char(out, '}');
	return rc < 0 ? -ENOMEM : 0;
}
