// SPDX-License-Identifier: MIT
/*
 * Aho-Corasick over bytes. The trie keeps children as sibling lists (a few
 * bytes per node instead of a 256-entry table, as rule literals share few
 * prefixes), except the root, which every byte of the text visits and which
 * therefore has a full table. Failure links and "dictionary" links (the
 * nearest failure ancestor that ends a literal) are set by one breadth-first
 * pass in acmatch_build.
 */
#include "tern/util_acmatch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define ACM_NONE UINT32_MAX

struct acm_node {
	uint32_t child, sibling, fail, dict, out;
	unsigned char c;
};

struct acm_out {
	uint32_t id, next;
};

struct acmatch {
	struct acm_node *nodes;
	uint32_t n, cap;
	struct acm_out *outs;
	uint32_t nouts, outcap;
	uint32_t root_next[256];
};

static uint32_t
node_new(struct acmatch *m, unsigned char c)
{
	if (m->n == m->cap) {
		uint32_t cap = m->cap ? m->cap * 2 : 256;
		struct acm_node *n = realloc(m->nodes, cap * sizeof(*n));

		if (n == NULL)
			return ACM_NONE;
		m->nodes = n;
		m->cap = cap;
	}
	m->nodes[m->n] = (struct acm_node){ACM_NONE, ACM_NONE, 0, ACM_NONE, ACM_NONE, c};
	return m->n++;
}

struct acmatch *
acmatch_new(void)
{
	struct acmatch *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	memset(m->root_next, 0xff, sizeof(m->root_next)); /* all ACM_NONE */
	if (node_new(m, 0) == ACM_NONE) {
		free(m); m = NULL;
	}
	return m;
}

void
acmatch_free(struct acmatch *m)
{
	if (m == NULL)
		return;
	free(m->nodes); m->nodes = NULL;
	free(m->outs); m->outs = NULL;
	free(m);
}

static uint32_t
child_of(const struct acmatch *m, uint32_t node, unsigned char c)
{
	uint32_t k;

	if (node == 0)
		return m->root_next[c];
	for (k = m->nodes[node].child; k != ACM_NONE; k = m->nodes[k].sibling)
		if (m->nodes[k].c == c)
			return k;
	return ACM_NONE;
}

static uint32_t
child_add(struct acmatch *m, uint32_t node, unsigned char c)
{
	uint32_t k = node_new(m, c);

	if (k == ACM_NONE)
		return k;
	if (node == 0)
		m->root_next[c] = k;
	m->nodes[k].sibling = m->nodes[node].child;
	m->nodes[node].child = k;
	return k;
}

static int
out_add(struct acmatch *m, uint32_t node, uint32_t id)
{
	if (m->nouts == m->outcap) {
		uint32_t cap = m->outcap ? m->outcap * 2 : 64;
		struct acm_out *o = realloc(m->outs, cap * sizeof(*o));

		if (o == NULL)
			return -ENOMEM;
		m->outs = o;
		m->outcap = cap;
	}
	m->outs[m->nouts] = (struct acm_out){id, m->nodes[node].out};
	m->nodes[node].out = m->nouts++;
	return 0;
}

int
acmatch_add(struct acmatch *m, const char *lit, size_t len, uint32_t id)
{
	uint32_t node = 0, next;
	size_t i;

	if (len == 0)
		return -EINVAL;
	for (i = 0; i < len; i++, node = next) {
		next = child_of(m, node, (unsigned char)lit[i]);
		if (next == ACM_NONE && (next = child_add(m, node, (unsigned char)lit[i])) == ACM_NONE)
			return -ENOMEM;
	}
	return out_add(m, node, id);
}

/* Where the automaton goes from node on byte c, following failure links. */
static uint32_t
step(const struct acmatch *m, uint32_t node, unsigned char c)
{
	uint32_t k;

	while ((k = child_of(m, node, c)) == ACM_NONE && node != 0)
		node = m->nodes[node].fail;
	return k == ACM_NONE ? 0 : k;
}

static void
link_node(struct acmatch *m, uint32_t parent, uint32_t v)
{
	struct acm_node *n = &m->nodes[v];
	uint32_t f = parent == 0 ? 0 : step(m, m->nodes[parent].fail, n->c);

	n->fail = f;
	n->dict = m->nodes[f].out != ACM_NONE ? f : m->nodes[f].dict;
}

int
acmatch_build(struct acmatch *m)
{
	uint32_t *queue = malloc(m->n * sizeof(*queue)), head = 0, tail = 0, u, v;

	if (queue == NULL)
		return -ENOMEM;
	queue[tail++] = 0;
	while (head < tail) {
		u = queue[head++];
		for (v = m->nodes[u].child; v != ACM_NONE; v = m->nodes[v].sibling) {
			link_node(m, u, v);
			queue[tail++] = v;
		}
	}
	free(queue); queue = NULL;
	return 0;
}

static void
report(const struct acmatch *m, uint32_t node, acmatch_hit_fn *hit, void *arg)
{
	uint32_t o;

	if (m->nodes[node].out == ACM_NONE)
		node = m->nodes[node].dict;
	for (; node != ACM_NONE; node = m->nodes[node].dict)
		for (o = m->nodes[node].out; o != ACM_NONE; o = m->outs[o].next)
			hit(m->outs[o].id, arg);
}

void
acmatch_scan(const struct acmatch *m, const char *text, size_t len, acmatch_hit_fn *hit, void *arg)
{
	uint32_t node = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		node = step(m, node, (unsigned char)text[i]);
		if (node != 0)
			report(m, node, hit, arg);
	}
}
