/* SPDX-License-Identifier: MIT */
/*
 * Substitution templates for the inject API: `{{ name }}` is replaced by the
 * value of name (letters, digits, '_', '.', '-'; spaces inside the braces
 * allowed), an unknown name by nothing, as KumoMTA's templates render an
 * undefined value. Anything else between braces is copied as it is: no
 * filters, conditions or loops, so a template cannot run code or loop.
 */
#ifndef TERN_TEMPLATE_H
#define TERN_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "tern/util.h"

/* The value of name (namelen bytes), or NULL when it has none. */
typedef const char *(*template_lookup_fn)(void *arg, const char *name, size_t namelen);

/* Append tpl with its substitutions to out; html escapes <>&"' in values. 0 or -ENOMEM. */
int template_render(const char *tpl, template_lookup_fn lookup, void *arg, bool html,
		    struct buf *out);

#endif
