// SPDX-License-Identifier: MIT
/*
 * Messages. Headers are found by scanning the header section on demand
 * rather than parsed into a list: policies touch a handful of fields, and a
 * scan of a few kilobytes is cheaper than building and rebuilding a tree.
 */
#include "tern/message.h"
#include "tern/json.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <lauxlib.h>

static char *
dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

struct message *
message_new(const char *sender, const char *recipient)
{
	struct message *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	m->sender = strdup(sender ? sender : "");
	m->recipient = dup_or_null(recipient);
	m->lua_handle = LUA_NOREF;
	buf_init(&m->data);
	if (m->sender == NULL || (recipient && m->recipient == NULL)) {
		message_free(m);
		return NULL;
	}
	return m;
}

size_t
message_size(const struct message *m)
{
	return m->data.len ? m->data.len : m->size;
}

void
message_free(struct message *m)
{
	size_t i;

	if (m == NULL)
		return;
	if (m->release)
		m->release(m);
	for (i = 0; i < m->n_meta; i++) {
		free(m->meta[i].key);
		free(m->meta[i].json);
	}
	free(m->meta); m->meta = NULL;
	free(m->sender); m->sender = NULL;
	free(m->recipient); m->recipient = NULL;
	buf_deinit(&m->data);
	free(m);
}

void
message_unbind(struct message *m)
{
	if (m->release)
		m->release(m);
}

size_t
message_footprint(const struct message *m)
{
	size_t n = sizeof(*m) + m->data.cap + strlen(m->sender) + 1 +
		   (m->recipient ? strlen(m->recipient) + 1 : 0) + m->cap_meta * sizeof(m->meta[0]);
	size_t i;

	for (i = 0; i < m->n_meta; i++)
		n += strlen(m->meta[i].key) + 1 + m->meta[i].json_len + 1;
	return n;
}

struct message *
message_clone(const struct message *src, const char *recipient)
{
	struct message *m = message_new(src->sender, recipient);
	size_t i;

	if (m == NULL)
		return NULL;
	m->created = src->created;
	if (buf_append(&m->data, src->data.data, src->data.len) < 0)
		goto fail;
	for (i = 0; i < src->n_meta; i++)
		if (message_set_meta(m, src->meta[i].key, src->meta[i].json, src->meta[i].json_len) < 0)
			goto fail;
	return m;
fail:
	message_free(m);
	return NULL;
}

static struct meta_entry *
find_meta(const struct message *m, const char *key)
{
	size_t i;

	for (i = 0; i < m->n_meta; i++)
		if (strcmp(m->meta[i].key, key) == 0)
			return &m->meta[i];
	return NULL;
}

int
message_set_meta(struct message *m, const char *key, const char *json, size_t len)
{
	struct meta_entry *e = find_meta(m, key);
	char *copy = malloc(len + 1);

	if (copy == NULL)
		return -ENOMEM;
	memcpy(copy, json, len);
	copy[len] = '\0';
	if (e == NULL) {
		if (m->n_meta == m->cap_meta) {
			size_t cap = m->cap_meta ? m->cap_meta * 2 : 4;
			struct meta_entry *p = realloc(m->meta, cap * sizeof(*p));

			if (p == NULL)
				goto nomem;
			m->meta = p;
			m->cap_meta = cap;
		}
		e = &m->meta[m->n_meta];
		e->key = strdup(key);
		if (e->key == NULL)
			goto nomem;
		m->n_meta++;
	} else {
		free(e->json);
	}
	e->json = copy;
	e->json_len = len;
	return 0;
nomem:
	free(copy);
	return -ENOMEM;
}

const struct meta_entry *
message_get_meta(const struct message *m, const char *key)
{
	return find_meta((struct message *)m, key);
}

int
message_meta_string(const struct message *m, const char *key, struct buf *out)
{
	const struct meta_entry *e = find_meta(m, key);
	struct json_span span = {JSON_STRING, NULL, 0};

	if (e == NULL || e->json_len < 2 || e->json[0] != '"')
		return -ENOENT;
	span.p = e->json;
	span.len = e->json_len;
	return json_string_decode(&span, out);
}

size_t
message_header_len(const struct message *m)
{
	const char *p = m->data.data;
	size_t n = m->data.len, i;

	if (n >= 2 && p[0] == '\r' && p[1] == '\n')
		return 2;
	for (i = 0; i + 3 < n; i++) {
		const char *crlf = memchr(p + i, '\r', n - i);

		if (crlf == NULL)
			break;
		i = (size_t)(crlf - p);
		if (i + 3 < n && memcmp(crlf, "\r\n\r\n", 4) == 0)
			return i + 4;
	}
	return n;
}

/* Length of the field starting at off, continuation lines included. */
static size_t
field_len(const char *p, size_t end, size_t off)
{
	size_t i = off;

	for (;;) {
		const char *nl = memchr(p + i, '\n', end - i);

		if (nl == NULL)
			return end - off;
		i = (size_t)(nl - p) + 1;
		if (i >= end || (p[i] != ' ' && p[i] != '\t'))
			return i - off;
	}
}

int
message_next_header(const struct message *m, size_t *off, struct message_field *f)
{
	const char *p = m->data.data;
	size_t hlen = message_header_len(m), o = *off, v, vend;
	const char *colon;

	if (o >= hlen || (p[o] == '\r' && o + 1 < hlen && p[o + 1] == '\n'))
		return -ENOENT;
	f->start = o;
	f->len = field_len(p, hlen, o);
	colon = memchr(p + o, ':', f->len);
	f->name_len = colon ? (size_t)(colon - (p + o)) : 0;
	v = colon ? f->name_len + o + 1 : o + f->len;
	vend = o + f->len;
	while (v < vend && (p[v] == ' ' || p[v] == '\t'))
		v++;
	if (vend - o >= 2 && p[vend - 1] == '\n' && p[vend - 2] == '\r')
		vend -= 2;
	f->value = v;
	f->value_len = vend > v ? vend - v : 0;
	*off = o + f->len;
	return 0;
}

int
message_find_header(const struct message *m, const char *name, size_t index,
		    struct message_field *f)
{
	size_t nlen = strlen(name), off = 0;

	while (message_next_header(m, &off, f) == 0)
		if (f->name_len == nlen && strncasecmp(m->data.data + f->start, name, nlen) == 0 &&
		    index-- == 0)
			return 0;
	return -ENOENT;
}

/* Insert bytes at off in data. */
static int
data_insert(struct message *m, size_t off, const char *s, size_t n)
{
	if (buf_reserve(&m->data, n) < 0)
		return -ENOMEM;
	memmove(m->data.data + off + n, m->data.data + off, m->data.len - off);
	memcpy(m->data.data + off, s, n);
	m->data.len += n;
	m->data.data[m->data.len] = '\0';
	return 0;
}

static void
data_delete(struct message *m, size_t off, size_t n)
{
	memmove(m->data.data + off, m->data.data + off + n, m->data.len - off - n);
	m->data.len -= n;
	m->data.data[m->data.len] = '\0';
}

/* "Name: value\r\n", with any CR or LF in value turned into folding so no bare line ending gets in. */
static int
format_field(struct buf *out, const char *name, const char *value)
{
	const char *v;

	if (buf_printf(out, "%s: ", name) < 0)
		return -ENOMEM;
	for (v = value; *v; v++) {
		if (*v == '\r')
			continue;
		if (*v == '\n') {
			if (buf_append(out, "\r\n\t", 3) < 0)
				return -ENOMEM;
			while (v[1] == ' ' || v[1] == '\t')
				v++;
			continue;
		}
		if (buf_append_char(out, *v) < 0)
			return -ENOMEM;
	}
	return buf_append(out, "\r\n", 2);
}

static bool
valid_field_name(const char *name)
{
	const char *p;

	for (p = name; *p; p++)
		if (*p <= 32 || *p >= 127 || *p == ':')
			return false;
	return p != name;
}

static int
insert_field(struct message *m, size_t off, const char *name, const char *value)
{
	struct buf f;
	int rc;

	if (!valid_field_name(name))
		return -EINVAL;
	buf_init(&f);
	rc = format_field(&f, name, value);
	if (rc == 0)
		rc = data_insert(m, off, f.data, f.len);
	buf_deinit(&f);
	return rc;
}

int
message_prepend_raw(struct message *m, const char *field, size_t len)
{
	return data_insert(m, 0, field, len);
}

int
message_prepend_header(struct message *m, const char *name, const char *value)
{
	return insert_field(m, 0, name, value);
}

int
message_set_header(struct message *m, const char *name, const char *value)
{
	struct message_field f;

	if (message_find_header(m, name, 0, &f) < 0)
		return insert_field(m, 0, name, value);
	data_delete(m, f.start, f.len);
	return insert_field(m, f.start, name, value);
}

int
message_remove_header(struct message *m, const char *name)
{
	struct message_field f;
	int n = 0;

	while (message_find_header(m, name, 0, &f) == 0) {
		data_delete(m, f.start, f.len);
		n++;
	}
	return n;
}

static int
recipient_domain(const struct message *m, struct buf *out)
{
	const char *at = m->recipient ? strrchr(m->recipient, '@') : NULL;
	const char *p;

	for (p = at ? at + 1 : ""; *p; p++)
		if (buf_append_char(out, (char)tolower((unsigned char)*p)) < 0)
			return -ENOMEM;
	return 0;
}

int
message_queue_name(const struct message *m, struct buf *out)
{
	struct buf part;
	int rc = 0;

	if (message_meta_string(m, "queue", out) == 0)
		return 0;
	buf_init(&part);
	if (message_meta_string(m, "campaign", &part) == 0)
		rc |= buf_append(out, part.data, part.len) | buf_append_char(out, ':');
	buf_reset(&part);
	if (message_meta_string(m, "tenant", &part) == 0)
		rc |= buf_append(out, part.data, part.len) | buf_append_char(out, '@');
	buf_deinit(&part);
	rc |= recipient_domain(m, out);
	return rc < 0 ? -ENOMEM : 0;
}

int
message_encode_spool_meta(const struct message *m, struct buf *out)
{
	struct buf queue;
	size_t i;
	int rc = 0;

	buf_init(&queue);
	rc |= message_queue_name(m, &queue);
	rc |= buf_append_str(out, "{\"sender\":");
	rc |= buf_append_json_string(out, m->sender, strlen(m->sender));
	rc |= buf_append_str(out, ",\"recipient\":");
	rc |= buf_append_json_string(out, m->recipient ? m->recipient : "",
				     m->recipient ? strlen(m->recipient) : 0);
	/* Appended, not printed: this runs for every message received and every retry. */
	rc |= buf_append_str(out, ",\"created\":");
	rc |= buf_append_fixed(out, m->created, 6);
	rc |= buf_append_str(out, ",\"size\":");
	rc |= buf_append_uint(out, message_size(m));
	rc |= buf_append_str(out, ",\"attempts\":");
	rc |= buf_append_uint(out, m->attempts);
	rc |= buf_append_str(out, ",\"due\":");
	rc |= buf_append_fixed(out, m->due, 3);
	rc |= buf_append_str(out, ",\"queue\":");
	rc |= buf_append_json_string(out, queue.data ? queue.data : "", queue.len);
	rc |= buf_append_str(out, ",\"meta\":{");
	for (i = 0; i < m->n_meta; i++) {
		if (i > 0)
			rc |= buf_append_char(out, ',');
		rc |= buf_append_json_string(out, m->meta[i].key, strlen(m->meta[i].key));
		rc |= buf_append_char(out, ':');
		rc |= buf_append(out, m->meta[i].json, m->meta[i].json_len);
	}
	rc |= buf_append_str(out, "}}");
	buf_deinit(&queue);
	return rc < 0 ? -ENOMEM : 0;
}

static int
decode_string_field(const struct json_span *obj, const char *key, char **out)
{
	struct json_span v;
	struct buf b;

	if (json_object_get(obj, key, &v) < 0 || v.type != JSON_STRING)
		return -EINVAL;
	buf_init(&b);
	if (json_string_decode(&v, &b) < 0 || buf_append(&b, "", 0) < 0) {
		buf_deinit(&b);
		return -EINVAL;
	}
	free(*out);
	*out = b.data;
	return 0;
}

/*
 * An optional number field: 1 when read into *out, 0 when absent or not a
 * number (ignored, as ever), -EINVAL outside [0, max]: corrupt metadata,
 * whose value would not even convert to the integer it is stored in.
 */
static int
decode_number_field(const struct json_span *obj, const char *key, double max, double *out)
{
	struct json_span v;
	double d;

	if (json_object_get(obj, key, &v) < 0 || json_number_value(&v, &d) < 0)
		return 0;
	if (!(d >= 0 && d <= max))
		return -EINVAL;
	*out = d;
	return 1;
}

static int
decode_meta_member(void *arg, const char *key, size_t keylen, const struct json_span *val)
{
	return message_set_meta(arg, key, val->p, val->len);
}

int
message_decode_spool_meta(struct message *m, const char *json, size_t len, struct tern_err *err)
{
	double created, size = (double)m->size, attempts = m->attempts;
	struct json_span obj, v;

	if (json_parse_span(json, len, &obj, err) < 0 || obj.type != JSON_OBJECT)
		goto bad;
	if (decode_string_field(&obj, "sender", &m->sender) < 0 ||
	    decode_string_field(&obj, "recipient", &m->recipient) < 0)
		goto bad;
	/* created becomes a uint32_t in the queue, attempts a uint16_t. */
	if (decode_number_field(&obj, "created", UINT32_MAX, &created) <= 0)
		goto bad;
	m->created = created;
	if (decode_number_field(&obj, "size", (double)UTIL_SIZE_MAX, &size) < 0 ||
	    decode_number_field(&obj, "attempts", UINT16_MAX, &attempts) < 0)
		goto bad;
	m->size = (size_t)size;
	m->attempts = (unsigned)attempts;
	/* A due time is only compared, never converted: any number will do. */
	if (json_object_get(&obj, "due", &v) == 0 && json_number_value(&v, &created) == 0)
		m->due = created;
	if (json_object_get(&obj, "meta", &v) == 0 && v.type == JSON_OBJECT &&
	    json_object_foreach(&v, decode_meta_member, m) < 0)
		goto bad;
	return 0;
bad:
	tern_err_set(err, 0, "", "malformed spool metadata");
	return -EINVAL;
}
