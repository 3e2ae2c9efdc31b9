// SPDX-License-Identifier: MIT
/*
 * Decoding an inject request and rendering its messages. The JSON is read
 * with json.c's span walker straight into the request struct; every field
 * is checked where it is read, so an error names the field as the client
 * wrote it ("recipients[3].substitutions.city: must be a string, number or
 * boolean"), and unknown fields are refused rather than ignored, so that a
 * misspelt "html_bdy" is not silently dropped.
 */
#include "tern/inject.h"
#include "tern/json.h"
#include "tern/mime_build.h"
#include "tern/template.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define INJECT_HTTP_MALFORMED 400
#define INJECT_HTTP_UNPROCESSABLE 422

struct dec {
	struct inject_request *r;
	struct tern_err *err;
	const char *path; /* the object being read: "", "content", "recipients[3]" */
	void *target;	  /* what the object fills */
	unsigned seen;	  /* fields already read, by their bit */
};

static int
field_error(struct dec *d, const char *key, const char *what)
{
	tern_err_set(d->err, INJECT_HTTP_UNPROCESSABLE, "", "%s%s%s: %s", d->path,
		     *d->path ? "." : "", key, what);
	return -EINVAL;
}

/* Each field once: a duplicate would leak or silently override. */
static int
first_time(struct dec *d, unsigned bit, const char *key)
{
	if (d->seen & bit)
		return field_error(d, key, "given twice");
	d->seen |= bit;
	return 0;
}

static int
decode_string(struct dec *d, const char *key, const struct json_span *v, char **out)
{
	struct buf b;

	if (v->type != JSON_STRING)
		return field_error(d, key, "must be a string");
	buf_init(&b);
	if (json_string_decode(v, &b) < 0 || buf_append(&b, "", 0) < 0) {
		buf_deinit(&b);
		return field_error(d, key, "cannot be decoded");
	}
	*out = b.data;
	return 0;
}

static int
decode_address(struct dec *d, const char *key, const struct json_span *v, char **out)
{
	int rc = decode_string(d, key, v, out);

	if (rc == 0 && !mime_address_ok(*out))
		return field_error(d, key, "is not an email address");
	return rc;
}

/* ---- substitutions and headers: objects of scalars
 * ------------------------------------------------- */

struct vars_dec {
	struct dec *d;
	const char *field;
	struct inject_vars *vars;
	bool strings_only;
};

static int
var_value(const struct json_span *v, bool strings_only, char **out)
{
	struct buf b;

	buf_init(&b);
	if (v->type == JSON_STRING) {
		if (json_string_decode(v, &b) < 0)
			return -EINVAL;
	} else if (!strings_only &&
		   (v->type == JSON_NUMBER || v->type == JSON_TRUE || v->type == JSON_FALSE)) {
		if (buf_append(&b, v->p, v->len) < 0)
			return -ENOMEM;
	} else {
		return -EINVAL;
	}
	if (buf_append(&b, "", 0) < 0) {
		buf_deinit(&b);
		return -ENOMEM;
	}
	*out = b.data;
	return 0;
}

static int
var_member(void *arg, const char *key, size_t keylen, const struct json_span *v)
{
	struct vars_dec *vd = arg;
	struct inject_vars *vars = vd->vars;
	struct inject_var *grown;
	char what[160];

	snprintf(what, sizeof(what), "%s.%s", vd->field, key);
	if (keylen != strlen(key))
		return field_error(vd->d, vd->field, "a name holds a NUL character");
	grown = realloc(vars->v, (vars->n + 1) * sizeof(*vars->v));
	if (grown == NULL)
		return -ENOMEM;
	vars->v = grown;
	vars->v[vars->n].key = strdup(key);
	if (vars->v[vars->n].key == NULL)
		return -ENOMEM;
	if (var_value(v, vd->strings_only, &vars->v[vars->n].value) < 0) {
		free(vars->v[vars->n].key);
		return field_error(vd->d, what,
				   vd->strings_only ? "must be a string"
						    : "must be a string, number or boolean");
	}
	vars->n++;
	return 0;
}

static int
decode_vars(struct dec *d, const char *key, const struct json_span *v, bool strings_only,
	    struct inject_vars *out)
{
	struct vars_dec vd = {d, key, out, strings_only};

	if (v->type != JSON_OBJECT)
		return field_error(d, key, "must be an object");
	return json_object_foreach(v, var_member, &vd);
}

/* ---- recipients
 * --------------------------------------------------------------------------------------- */

static int
recipient_member(void *arg, const char *key, size_t keylen, const struct json_span *v)
{
	struct dec *d = arg;
	struct inject_recipient *rc = d->target;
	int err;

	(void)keylen;
	if (strcmp(key, "email") == 0)
		return (err = first_time(d, 1, key)) ? err : decode_address(d, key, v, &rc->email);
	if (strcmp(key, "name") == 0)
		return (err = first_time(d, 2, key)) ? err : decode_string(d, key, v, &rc->name);
	if (strcmp(key, "substitutions") == 0)
		return (err = first_time(d, 4, key)) ? err
						     : decode_vars(d, key, v, false, &rc->subs);
	return field_error(d, key, "unknown field");
}

static int
recipient_element(void *arg, size_t i, const struct json_span *v)
{
	struct dec *d = arg;
	char path[48];
	struct dec sub = {d->r, d->err, path, &d->r->rcpts[i], 0};
	int rc;

	snprintf(path, sizeof(path), "recipients[%zu]", i);
	if (v->type != JSON_OBJECT) {
		tern_err_set(d->err, INJECT_HTTP_UNPROCESSABLE, "", "%s: must be an object", path);
		return -EINVAL;
	}
	d->r->n_rcpts = i + 1;
	rc = json_object_foreach(v, recipient_member, &sub);
	if (rc == 0 && d->r->rcpts[i].email == NULL) {
		tern_err_set(d->err, INJECT_HTTP_UNPROCESSABLE, "", "%s.email: required", path);
		return -EINVAL;
	}
	return rc;
}

static int
count_element(void *arg, size_t i, const struct json_span *v)
{
	(void)v;
	*(size_t *)arg = i + 1;
	return 0;
}

static int
decode_recipients(struct dec *d, const char *key, const struct json_span *v)
{
	size_t n = 0;

	if (v->type != JSON_ARRAY)
		return field_error(d, key, "must be a list of {email, name, substitutions}");
	json_array_foreach(v, count_element, &n);
	if (n == 0)
		return field_error(d, key, "must not be empty");
	d->r->rcpts = calloc(n, sizeof(*d->r->rcpts));
	if (d->r->rcpts == NULL)
		return -ENOMEM;
	return json_array_foreach(v, recipient_element, d);
}

/* ---- content: a whole message, or the builder
 * ----------------------------------------------------- */

struct address_target {
	char **email, **name;
};

static int
address_member(void *arg, const char *key, size_t keylen, const struct json_span *v)
{
	struct dec *d = arg;
	struct address_target *t = d->target;
	int err;

	(void)keylen;
	if (strcmp(key, "email") == 0)
		return (err = first_time(d, 1, key)) ? err : decode_address(d, key, v, t->email);
	if (strcmp(key, "name") == 0)
		return (err = first_time(d, 2, key)) ? err : decode_string(d, key, v, t->name);
	return field_error(d, key, "unknown field");
}

/* {"email": ..., "name": ...} or a bare address. */
static int
decode_mailbox(struct dec *d, const char *key, const struct json_span *v, char **email, char **name)
{
	char path[48];
	struct address_target t = {email, name};
	struct dec sub = {d->r, d->err, path, &t, 0};
	int rc;

	if (v->type == JSON_STRING)
		return decode_address(d, key, v, email);
	if (v->type != JSON_OBJECT)
		return field_error(d, key, "must be {email, name} or an address");
	snprintf(path, sizeof(path), "%s%s%s", d->path, *d->path ? "." : "", key);
	rc = json_object_foreach(v, address_member, &sub);
	if (rc == 0 && *email == NULL)
		return field_error(&sub, "email", "required");
	return rc;
}

static int
base64_decode(const char *in, size_t len, struct buf *out)
{
	EVP_ENCODE_CTX *ctx = EVP_ENCODE_CTX_new();
	int n = 0, fin = 0, rc = -EINVAL;

	if (ctx == NULL || buf_reserve(out, len + 1) < 0) {
		EVP_ENCODE_CTX_free(ctx);
		return -ENOMEM;
	}
	EVP_DecodeInit(ctx);
	if (EVP_DecodeUpdate(ctx, (unsigned char *)out->data, &n, (const unsigned char *)in,
			     (int)len) >= 0 &&
	    EVP_DecodeFinal(ctx, (unsigned char *)out->data + n, &fin) == 1) {
		out->len = (size_t)n + (size_t)fin;
		out->data[out->len] = '\0';
		rc = 0;
	}
	EVP_ENCODE_CTX_free(ctx);
	return rc;
}

struct attachment_dec {
	struct inject_attachment *a;
	bool base64;
	char *data;
};

static int
attachment_member(void *arg, const char *key, size_t keylen, const struct json_span *v)
{
	struct dec *d = arg;
	struct attachment_dec *ad = d->target;
	int err;

	(void)keylen;
	if (strcmp(key, "data") == 0)
		return (err = first_time(d, 1, key)) ? err : decode_string(d, key, v, &ad->data);
	if (strcmp(key, "file_name") == 0)
		return (err = first_time(d, 2, key)) ? err
						     : decode_string(d, key, v, &ad->a->file_name);
	if (strcmp(key, "base64") == 0) {
		if (v->type != JSON_TRUE && v->type != JSON_FALSE)
			return field_error(d, key, "must be true or false");
		ad->base64 = v->type == JSON_TRUE;
		return first_time(d, 4, key);
	}
	if (strcmp(key, "content_type") != 0)
		return field_error(d, key, "unknown field");
	if ((err = first_time(d, 8, key)) || (err = decode_string(d, key, v, &ad->a->content_type)))
		return err;
	return mime_content_type_ok(ad->a->content_type)
		   ? 0
		   : field_error(d, key, "is not type/subtype");
}

/* The data is text, or base64 with "base64": true (KumoMTA's rule). */
static int
attachment_data(struct dec *d, struct attachment_dec *ad)
{
	size_t len = strlen(ad->data);

	if (!ad->base64)
		return buf_append(&ad->a->data, ad->data, len);
	if (base64_decode(ad->data, len, &ad->a->data) < 0)
		return field_error(d, "data", "is not valid base64");
	return 0;
}

static int
attachment_element(void *arg, size_t i, const struct json_span *v)
{
	struct dec *d = arg;
	struct inject_request *r = d->r;
	char path[48];
	struct attachment_dec ad = {&r->attachments[i], false, NULL};
	struct dec sub = {r, d->err, path, &ad, 0};
	int rc;

	snprintf(path, sizeof(path), "content.attachments[%zu]", i);
	buf_init(&ad.a->data);
	r->n_attachments = i + 1;
	if (v->type != JSON_OBJECT)
		return field_error(d, "attachments", "must be a list of objects");
	rc = json_object_foreach(v, attachment_member, &sub);
	if (rc == 0 && ad.data == NULL)
		rc = field_error(&sub, "data", "required");
	if (rc == 0)
		rc = attachment_data(&sub, &ad);
	free(ad.data);
	return rc;
}

static int
decode_attachments(struct dec *d, const char *key, const struct json_span *v)
{
	size_t n = 0;

	if (v->type != JSON_ARRAY)
		return field_error(d, key, "must be a list of {data, content_type, file_name}");
	json_array_foreach(v, count_element, &n);
	d->r->attachments = calloc(n ? n : 1, sizeof(*d->r->attachments));
	if (d->r->attachments == NULL)
		return -ENOMEM;
	return json_array_foreach(v, attachment_element, d);
}

static int
builder_member(void *arg, const char *key, size_t keylen, const struct json_span *v)
{
	static const char *const names[] = {"subject",	 "from",      "reply_to",   "headers",
					    "text_body", "html_body", "attachments"};
	struct dec *d = arg;
	struct inject_request *r = d->r;
	unsigned i;
	int err;

	(void)keylen;
	for (i = 0; i < TERN_ARRAY_LEN(names) && strcmp(key, names[i]) != 0; i++)
		;
	if (i == TERN_ARRAY_LEN(names))
		return field_error(d, key, "unknown field");
	if ((err = first_time(d, 1u << i, key)) < 0)
		return err;
	switch (i) {
	case 0:
		return decode_string(d, key, v, &r->subject);
	case 1:
		return decode_mailbox(d, key, v, &r->from_email, &r->from_name);
	case 2:
		return decode_mailbox(d, key, v, &r->reply_to_email, &r->reply_to_name);
	case 3:
		return decode_vars(d, key, v, true, &r->headers);
	case 4:
		return decode_string(d, key, v, &r->text_body);
	case 5:
		return decode_string(d, key, v, &r->html_body);
	default:
		return decode_attachments(d, key, v);
	}
}

static int
check_headers(struct dec *d)
{
	size_t i;
	char what[128];

	for (i = 0; i < d->r->headers.n; i++) {
		if (mime_header_name_ok(d->r->headers.v[i].key))
			continue;
		snprintf(what, sizeof(what), "headers.%s", d->r->headers.v[i].key);
		return field_error(d, what,
				   "is not a field name the builder allows (it writes From, To, "
				   "Subject, Date, Message-ID and the MIME fields itself)");
	}
	return 0;
}

static int
decode_content(struct dec *d, const char *key, const struct json_span *v)
{
	struct dec sub = {d->r, d->err, "content", NULL, 0};
	int rc;

	if (v->type == JSON_STRING)
		return decode_string(d, key, v, &d->r->content);
	if (v->type != JSON_OBJECT)
		return field_error(d, key, "must be a message (string) or a builder object");
	rc = json_object_foreach(v, builder_member, &sub);
	if (rc == 0 && d->r->from_email == NULL)
		return field_error(&sub, "from", "required");
	return rc ? rc : check_headers(&sub);
}

/* ---- the request
 * ------------------------------------------------------------------------------------- */

static int
top_member(void *arg, const char *key, size_t keylen, const struct json_span *v)
{
	struct dec *d = arg;
	int err;

	(void)keylen;
	if (strcmp(key, "envelope_sender") == 0) {
		if ((err = first_time(d, 1, key)) ||
		    (err = decode_string(d, key, v, &d->r->envelope_sender)))
			return err;
		return *d->r->envelope_sender == '\0' || mime_address_ok(d->r->envelope_sender)
			   ? 0
			   : field_error(d, key, "is not an email address");
	}
	if (strcmp(key, "recipients") == 0)
		return (err = first_time(d, 2, key)) ? err : decode_recipients(d, key, v);
	if (strcmp(key, "substitutions") == 0)
		return (err = first_time(d, 4, key)) ? err
						     : decode_vars(d, key, v, false, &d->r->subs);
	if (strcmp(key, "content") == 0)
		return (err = first_time(d, 8, key)) ? err : decode_content(d, key, v);
	return field_error(d, key, "unknown field");
}

int
inject_decode(const char *json, size_t len, struct inject_request *out, struct tern_err *err)
{
	static const char *const required[] = {"envelope_sender", "recipients", NULL, "content"};
	struct dec d = {out, err, "", NULL, 0};
	struct json_span top;
	int rc;
	unsigned i;

	memset(out, 0, sizeof(*out));
	if (json_parse_span(json, len, &top, err) < 0) {
		err->code = INJECT_HTTP_MALFORMED;
		return -EINVAL;
	}
	if (top.type != JSON_OBJECT) {
		tern_err_set(err, INJECT_HTTP_UNPROCESSABLE, "", "the body must be a JSON object");
		return -EINVAL;
	}
	rc = json_object_foreach(&top, top_member, &d);
	if (rc == -ENOMEM)
		tern_err_set(err, 503, "", "out of memory");
	if (rc < 0)
		return rc == -ENOMEM ? rc : -EINVAL;
	for (i = 0; i < TERN_ARRAY_LEN(required); i++)
		if (required[i] && !(d.seen & (1u << i)))
			return field_error(&d, required[i], "required");
	return 0;
}

static void
vars_free(struct inject_vars *vars)
{
	size_t i;

	for (i = 0; i < vars->n; i++) {
		free(vars->v[i].key);
		free(vars->v[i].value);
	}
	free(vars->v);
	vars->v = NULL;
	vars->n = 0;
}

void
inject_request_free(struct inject_request *r)
{
	size_t i;

	for (i = 0; i < r->n_rcpts; i++) {
		free(r->rcpts[i].email);
		free(r->rcpts[i].name);
		vars_free(&r->rcpts[i].subs);
	}
	free(r->rcpts);
	for (i = 0; i < r->n_attachments; i++) {
		buf_deinit(&r->attachments[i].data);
		free(r->attachments[i].content_type);
		free(r->attachments[i].file_name);
	}
	free(r->attachments);
	vars_free(&r->subs);
	vars_free(&r->headers);
	free(r->envelope_sender);
	free(r->content);
	free(r->subject);
	free(r->from_email);
	free(r->from_name);
	free(r->reply_to_email);
	free(r->reply_to_name);
	free(r->text_body);
	free(r->html_body);
	memset(r, 0, sizeof(*r));
}

/* ---- rendering
 * ------------------------------------------------------------------------------------------ */

struct lookup {
	const struct inject_vars *first, *second;
};

static const char *
vars_find(const struct inject_vars *vars, const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < vars->n; i++)
		if (strncmp(vars->v[i].key, name, len) == 0 && vars->v[i].key[len] == '\0')
			return vars->v[i].value;
	return NULL;
}

static const char *
lookup_var(void *arg, const char *name, size_t len)
{
	struct lookup *l = arg;
	const char *v = vars_find(l->first, name, len);

	return v ? v : vars_find(l->second, name, len);
}

/* Render tpl into a fresh string in *out (NULL stays NULL). */
static int
render(const char *tpl, struct lookup *l, bool html, char **out)
{
	struct buf b;

	*out = NULL;
	if (tpl == NULL)
		return 0;
	buf_init(&b);
	if (template_render(tpl, lookup_var, l, html, &b) < 0) {
		buf_deinit(&b);
		return -ENOMEM;
	}
	*out = b.data;
	return 0;
}

/* The full-message form: substituted, with CRLF line ends only and a final CRLF. */
static int
render_content(const struct inject_request *r, struct lookup *l, struct buf *out)
{
	char *text;
	const char *p;
	int rc = render(r->content, l, false, &text);

	/* A lone CR or LF would be a bare line end on the wire: each becomes CRLF. */
	for (p = text; rc == 0 && *p; p++) {
		if (*p == '\r' && p[1] == '\n')
			continue;
		rc = *p == '\r' || *p == '\n' ? buf_append_str(out, "\r\n")
					      : buf_append_char(out, *p);
	}
	if (rc == 0 && (out->len < 2 || memcmp(out->data + out->len - 2, "\r\n", 2) != 0))
		rc = buf_append_str(out, "\r\n");
	free(text);
	return rc;
}

struct rendered {
	char *subject, *text, *html;
	struct mime_header *headers;
	struct mime_attachment *attachments;
};

static void
rendered_free(struct rendered *x, size_t n_headers)
{
	size_t i;

	for (i = 0; x->headers && i < n_headers; i++)
		free((char *)x->headers[i].value);
	free(x->headers);
	free(x->attachments);
	free(x->subject);
	free(x->text);
	free(x->html);
}

static int
render_parts(const struct inject_request *r, struct lookup *l, struct rendered *x)
{
	size_t i;

	x->headers = calloc(r->headers.n + 1, sizeof(*x->headers));
	x->attachments = calloc(r->n_attachments + 1, sizeof(*x->attachments));
	if (x->headers == NULL || x->attachments == NULL)
		return -ENOMEM;
	for (i = 0; i < r->headers.n; i++) {
		x->headers[i].name = r->headers.v[i].key;
		if (render(r->headers.v[i].value, l, false, (char **)&x->headers[i].value) < 0)
			return -ENOMEM;
	}
	for (i = 0; i < r->n_attachments; i++) {
		x->attachments[i].data =
		    r->attachments[i].data.data ? r->attachments[i].data.data : "";
		x->attachments[i].len = r->attachments[i].data.len;
		x->attachments[i].content_type = r->attachments[i].content_type;
		x->attachments[i].file_name = r->attachments[i].file_name;
	}
	if (render(r->subject, l, false, &x->subject) < 0 ||
	    render(r->text_body, l, false, &x->text) < 0 ||
	    render(r->html_body, l, true, &x->html) < 0)
		return -ENOMEM;
	return 0;
}

static int
render_builder(const struct inject_request *r, size_t i, struct lookup *l, const char *message_id,
	       double date, struct buf *out, struct tern_err *err)
{
	struct rendered x = {0};
	struct mime_address reply_to = {r->reply_to_name, r->reply_to_email};
	struct mime_message m = {
	    .from = {r->from_name, r->from_email},
	    .to = {r->rcpts[i].name, r->rcpts[i].email},
	    .reply_to = r->reply_to_email ? &reply_to : NULL,
	    .n_headers = r->headers.n,
	    .n_attachments = r->n_attachments,
	    .message_id = message_id,
	    .date = date,
	};
	int rc = render_parts(r, l, &x);

	if (rc == 0) {
		m.subject = x.subject;
		m.headers = x.headers;
		m.text_body = x.text;
		m.html_body = x.html;
		m.attachments = x.attachments;
		rc = mime_build(&m, out, err);
	} else {
		tern_err_set(err, 451, "4.3.0", "out of memory rendering the message");
	}
	rendered_free(&x, r->headers.n);
	return rc;
}

int
inject_render(const struct inject_request *r, size_t i, const char *message_id, double date,
	      struct buf *out, struct tern_err *err)
{
	struct lookup l = {&r->rcpts[i].subs, &r->subs};

	if (r->content == NULL)
		return render_builder(r, i, &l, message_id, date, out, err);
	if (render_content(r, &l, out) < 0) {
		tern_err_set(err, 451, "4.3.0", "out of memory rendering the message");
		return -ENOMEM;
	}
	return 0;
}
