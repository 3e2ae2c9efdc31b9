/* SPDX-License-Identifier: MIT */
/*
 * A PowerMTA configuration file read into a tree, for `tern import pmta`.
 * Pure: bytes in, tree or error out; fuzzed by tests/fuzz/fuzz_pmta.c.
 */
#ifndef TERN_PMTA_CONF_H
#define TERN_PMTA_CONF_H

#include <stdbool.h>
#include <stddef.h>

#include "tern/util.h"

#define PMTA_CONF_MAX_DEPTH 8

/*
 * A directive ("max-msg-rate", "120/min") or a block ("domain", "gmail.com")
 * with its children, and the line it starts on. The root is a block with an
 * empty name.
 */
struct pmta_node {
	char *name;
	char *value;
	int line;
	bool block;
	struct pmta_node **children;
	size_t n_children;
	size_t cap_children;
};

/* Parse text into out (a root block); on error, err says "line N: ..." and out is empty. */
int pmta_conf_parse(const char *text, size_t len, struct pmta_node *out, struct tern_err *err);
void pmta_conf_deinit(struct pmta_node *root);
/* The tree as JSON: {"name","value","line","block","children":[...]}. */
int pmta_conf_to_json(const struct pmta_node *n, struct buf *out);

#endif
