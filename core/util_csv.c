// SPDX-License-Identifier: MIT
/*
 * CSV records. Splitting works in place: an unquoted field is left where it
 * is, a quoted one is moved left over its quotes as it is read, so the
 * write pointer never passes the read pointer and no copy is needed.
 */
#include "tern/util_csv.h"
#include "tern/util.h"

#include <errno.h>
#include <string.h>

/* A quoted field at *r (on its opening quote), unquoted into w; the new read position or NULL. */
static char *
split_quoted(char *r, char **w)
{
	for (r++;; r++) {
		if (*r == '\0')
			return NULL;
		if (*r == '"' && r[1] != '"')
			break;
		*(*w)++ = *r;
		if (*r == '"')
			r++;
	}
	r++;
	return *r == ',' || *r == '\0' ? r : NULL;
}

int
util_csv_split(char *line, char **fields, int max)
{
	char *r = line, *w;
	int n = 0;

	line[strcspn(line, "\r\n")] = '\0';
	for (;;) {
		if (n == max)
			return -EINVAL;
		fields[n++] = w = r;
		if (*r == '"') {
			r = split_quoted(r, &w);
			if (r == NULL)
				return -EINVAL;
		} else {
			while (*r != ',' && *r != '\0')
				*w++ = *r++;
		}
		if (*r == '\0') {
			*w = '\0';
			return n;
		}
		*w = '\0';
		r++;
	}
}

int
util_csv_field(struct buf *out, const char *s)
{
	int rc = 0;

	if (strpbrk(s, ",\"\r\n") == NULL)
		return buf_append_str(out, s);
	buf_append_char(out, '"');
	for (; *s && rc == 0; s++)
		rc = *s == '"' ? buf_append_str(out, "\"\"") : buf_append_char(out, *s);
	return rc < 0 ? rc : buf_append_char(out, '"');
}
