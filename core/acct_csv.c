// SPDX-License-Identifier: MIT
/*
 * Accounting lines (see include/tern/acct_csv.h). One table names every field
 * and says how to get its value from a record, so that the CSV columns and
 * the template tags read the same values under the same names; PowerMTA's
 * column names sit beside tern's JSON names rather than replacing them, so
 * that a PowerMTA pipeline and a tern one can both be fed.
 *
 * What tern does not know is left empty, as PowerMTA leaves a column it was
 * not configured for: orcpt and envId (ORCPT= and ENVID= are not kept),
 * dlvEsmtpAvailable (not recorded). A record of a listener (Reception) has
 * its peer as srcMta and no dlv* or dsnMta: its peer sent, not received.
 */
#include "tern/acct_csv.h"
#include "tern/logrec.h"
#include "tern/message.h"
#include "tern/template.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *const acct_default_fields[] = {
    "timeLogged", "timeQueued", "orig",	  "rcpt",	       "orcpt",	  "dsnAction",
    "dsnStatus",  "dsnDiag",	"dsnMta", "bounceCat",	       "srcType", "srcMta",
    "dlvType",	  "dlvSourceIp", "dlvDestinationIp", "dlvEsmtpAvailable", "dlvSize", "vmta",
    "jobId",	  "envId",	"queue",  "vmtaPool",	       NULL};

/* tern's record types and PowerMTA's: OOB is an asynchronous (remote) bounce. */
static const struct {
	const char *name;
	const char *letter;
} types[ACCT_N_TYPES] = {
    {"Reception", "r"},	  {"Delivery", "d"},	{"TransientFailure", "t"},
    {"Bounce", "b"},	  {"Expiration", "b"},	{"AdminBounce", "b"},
    {"Feedback", "f"},	  {"OOB", "rb"},	{"Suppressed", NULL},
};

struct field_arg {
	const struct logrec *r;
	const struct acct_context *ctx;
	int type;
};

typedef int (*field_fn)(const struct field_arg *a, struct buf *out);

int
acct_type_index(const char *type)
{
	int i;

	for (i = 0; i < ACCT_N_TYPES; i++)
		if (strcmp(types[i].name, type) == 0)
			return i;
	return -1;
}

const char *
acct_type_name(int index)
{
	return types[index].name;
}

const char *
acct_type_letter(int index)
{
	return types[index].letter;
}

int
acct_select_letter(struct acct_format *f, const char *letter)
{
	int i, n = 0;

	for (i = 0; i < ACCT_N_TYPES; i++) {
		if (types[i].letter == NULL || strcmp(types[i].letter, letter) != 0)
			continue;
		f->types[i] = true;
		n++;
	}
	return n > 0 ? 0 : -EINVAL;
}

/* ---- values ---- */

static int
append_opt(struct buf *out, const char *v)
{
	return v ? buf_append_str(out, v) : 0;
}

/* PowerMTA's default time format, in UTC. */
static int
append_time(struct buf *out, double t)
{
	time_t s = (time_t)t;
	struct tm tm;
	char stamp[40];

	if (t <= 0 || gmtime_r(&s, &tm) == NULL)
		return 0;
	strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S+0000", &tm);
	return buf_append_str(out, stamp);
}

/* An address without its port: "192.0.2.1:25" and "[2001:db8::1]:25" give the IP. */
static int
append_ip(struct buf *out, const char *addr)
{
	const char *end;

	if (addr == NULL)
		return 0;
	if (addr[0] == '[') {
		end = strchr(addr, ']');
		return end ? buf_append(out, addr + 1, (size_t)(end - addr - 1)) : 0;
	}
	end = strrchr(addr, ':');
	if (end == NULL || strchr(addr, ':') != end)
		return buf_append_str(out, addr);
	return buf_append(out, addr, (size_t)(end - addr));
}

/* A header's value (folded: flatten() unfolds it); -ENOENT when absent. */
static int
append_header(const struct message *m, const char *name, struct buf *out)
{
	struct message_field f;

	if (message_find_header(m, name, 0, &f) < 0)
		return -ENOENT;
	return buf_append(out, m->data.data + f.value, f.value_len);
}

/* A meta value: a JSON string decoded, anything else as its JSON text. */
static int
append_meta(const struct message *m, const char *key, struct buf *out)
{
	const struct meta_entry *e = message_get_meta(m, key);

	if (e == NULL)
		return 0;
	if (message_meta_string(m, key, out) == 0)
		return 0;
	return buf_append(out, e->json, e->json_len);
}

/* PowerMTA takes jobId from the X-Job header; tern senders often say campaign. */
static int
f_job(const struct field_arg *a, struct buf *out)
{
	if (append_header(a->r->msg, "X-Job", out) == 0)
		return 0;
	return append_meta(a->r->msg, "campaign", out);
}

static int
f_type(const struct field_arg *a, struct buf *out)
{
	return buf_append_str(out, a->r->type);
}

static int
f_time_logged(const struct field_arg *a, struct buf *out)
{
	return append_time(out, a->ctx->now);
}

static int
f_time_queued(const struct field_arg *a, struct buf *out)
{
	return append_time(out, a->r->msg->created);
}

static int
f_sender(const struct field_arg *a, struct buf *out)
{
	return append_opt(out, a->r->msg->sender);
}

static int
f_recipient(const struct field_arg *a, struct buf *out)
{
	return append_opt(out, a->r->msg->recipient);
}

static int
f_empty(const struct field_arg *a, struct buf *out)
{
	return 0;
}

static int
f_dsn_action(const struct field_arg *a, struct buf *out)
{
	const char *l = types[a->type].letter;

	if (l == NULL || strlen(l) != 1)
		return 0;
	if (l[0] == 'd')
		return buf_append_str(out, "relayed");
	if (l[0] == 'b')
		return buf_append_str(out, "failed");
	return l[0] == 't' ? buf_append_str(out, "delayed") : 0;
}

/* The enhanced code, or the reply's class when the server gave none. */
static int
f_dsn_status(const struct field_arg *a, struct buf *out)
{
	int code = a->r->response_code;

	if (a->r->response_enhanced && *a->r->response_enhanced)
		return buf_append_str(out, a->r->response_enhanced);
	if (code < 200 || code > 599)
		return 0;
	return buf_printf(out, "%d.0.0", code / 100);
}

/* "smtp;550 5.1.1 text", as PowerMTA writes a reply. */
static int
f_dsn_diag(const struct field_arg *a, struct buf *out)
{
	const struct logrec *r = a->r;

	if (r->response_code == 0 && r->response_content == NULL)
		return 0;
	buf_printf(out, "smtp;%d ", r->response_code);
	if (r->response_enhanced && *r->response_enhanced)
		buf_printf(out, "%s ", r->response_enhanced);
	return append_opt(out, r->response_content);
}

/* "mx.example.com (192.0.2.1)", as PowerMTA names the remote MTA. */
static int
f_dsn_mta(const struct field_arg *a, struct buf *out)
{
	const struct logrec *r = a->r;

	if (r->listener != NULL)
		return 0;
	if (r->site == NULL || r->peer_address == NULL)
		return append_opt(out, r->site ? r->site : r->peer_address);
	buf_printf(out, "%s (", r->site);
	append_ip(out, r->peer_address);
	return buf_append_char(out, ')');
}

static int
f_bounce_cat(const struct field_arg *a, struct buf *out)
{
	return append_opt(out, a->r->bounce_classification);
}

static int
f_src_type(const struct field_arg *a, struct buf *out)
{
	return a->r->listener ? buf_append_str(out, "smtp") : 0;
}

static int
f_src_mta(const struct field_arg *a, struct buf *out)
{
	return a->r->listener ? append_ip(out, a->r->peer_address) : 0;
}

static int
f_dlv_type(const struct field_arg *a, struct buf *out)
{
	return a->r->peer_address && !a->r->listener ? buf_append_str(out, "smtp") : 0;
}

static int
f_source_ip(const struct field_arg *a, struct buf *out)
{
	return append_ip(out, a->r->source_address);
}

static int
f_destination_ip(const struct field_arg *a, struct buf *out)
{
	return a->r->listener ? 0 : append_ip(out, a->r->peer_address);
}

static int
f_size(const struct field_arg *a, struct buf *out)
{
	return buf_printf(out, "%zu", message_size(a->r->msg));
}

static int
f_source(const struct field_arg *a, struct buf *out)
{
	return append_opt(out, a->r->egress_source);
}

static int
f_pool(const struct field_arg *a, struct buf *out)
{
	return append_opt(out, a->r->egress_pool);
}

static int
f_queue(const struct field_arg *a, struct buf *out)
{
	return append_opt(out, a->r->queue);
}

static int
f_id(const struct field_arg *a, struct buf *out)
{
	char id[SPOOL_ID_HEX_LEN + 1];

	spool_id_to_hex(&a->r->msg->id, id);
	return buf_append_str(out, id);
}

static int
f_site(const struct field_arg *a, struct buf *out)
{
	return append_opt(out, a->r->site);
}

static int
f_source_address(const struct field_arg *a, struct buf *out)
{
	return append_opt(out, a->r->source_address);
}

static int
f_peer_address(const struct field_arg *a, struct buf *out)
{
	return append_opt(out, a->r->peer_address);
}

static int
f_listener(const struct field_arg *a, struct buf *out)
{
	return append_opt(out, a->r->listener);
}

static int
f_response_code(const struct field_arg *a, struct buf *out)
{
	return a->r->response_code ? buf_printf(out, "%d", a->r->response_code) : 0;
}

static int
f_response_enhanced(const struct field_arg *a, struct buf *out)
{
	return append_opt(out, a->r->response_enhanced);
}

static int
f_response_content(const struct field_arg *a, struct buf *out)
{
	return append_opt(out, a->r->response_content);
}

static int
f_response_command(const struct field_arg *a, struct buf *out)
{
	return append_opt(out, a->r->response_command);
}

static int
f_attempts(const struct field_arg *a, struct buf *out)
{
	return buf_printf(out, "%d", a->r->num_attempts);
}

static int
f_tls_version(const struct field_arg *a, struct buf *out)
{
	return append_opt(out, a->r->tls_version);
}

static int
f_tls_cipher(const struct field_arg *a, struct buf *out)
{
	return append_opt(out, a->r->tls_cipher);
}

static int
f_timestamp(const struct field_arg *a, struct buf *out)
{
	char stamp[32];

	util_format_time(a->ctx->now, stamp);
	return buf_append_str(out, stamp);
}

static int
f_created(const struct field_arg *a, struct buf *out)
{
	char stamp[32];

	util_format_time(a->r->msg->created, stamp);
	return buf_append_str(out, stamp);
}

static int
f_nodeid(const struct field_arg *a, struct buf *out)
{
	return append_opt(out, a->ctx->nodeid);
}

static int
f_policy_revision(const struct field_arg *a, struct buf *out)
{
	return append_opt(out, a->ctx->policy_revision);
}

static const struct {
	const char *name;
	field_fn fn;
} fields[] = {
    /* PowerMTA's columns */
    {"timeLogged", f_time_logged},
    {"timeQueued", f_time_queued},
    {"orig", f_sender},
    {"rcpt", f_recipient},
    {"orcpt", f_empty},
    {"dsnAction", f_dsn_action},
    {"dsnStatus", f_dsn_status},
    {"dsnDiag", f_dsn_diag},
    {"dsnMta", f_dsn_mta},
    {"bounceCat", f_bounce_cat},
    {"srcType", f_src_type},
    {"srcMta", f_src_mta},
    {"dlvType", f_dlv_type},
    {"dlvSourceIp", f_source_ip},
    {"dlvDestinationIp", f_destination_ip},
    {"dlvEsmtpAvailable", f_empty},
    {"dlvSize", f_size},
    {"vmta", f_source},
    {"jobId", f_job},
    {"envId", f_empty},
    {"queue", f_queue},
    {"vmtaPool", f_pool},
    /* the JSON record's */
    {"type", f_type},
    {"id", f_id},
    {"sender", f_sender},
    {"recipient", f_recipient},
    {"site", f_site},
    {"egress_pool", f_pool},
    {"egress_source", f_source},
    {"source_address", f_source_address},
    {"peer_address", f_peer_address},
    {"listener", f_listener},
    {"response.code", f_response_code},
    {"response.enhanced_code", f_response_enhanced},
    {"response.content", f_response_content},
    {"response.command", f_response_command},
    {"bounce_classification", f_bounce_cat},
    {"num_attempts", f_attempts},
    {"size", f_size},
    {"tls.version", f_tls_version},
    {"tls.cipher", f_tls_cipher},
    {"timestamp", f_timestamp},
    {"created", f_created},
    {"nodeid", f_nodeid},
    {"policy_revision", f_policy_revision},
};

#define HEADER_PREFIX "header_"
#define META_PREFIX "meta."

static bool
has_prefix(const char *name, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);

	return len > n && strncmp(name, prefix, n) == 0;
}

static field_fn
field_find(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (strlen(fields[i].name) == len && memcmp(fields[i].name, name, len) == 0)
			return fields[i].fn;
	return NULL;
}

bool
acct_field_known(const char *name, size_t len)
{
	return field_find(name, len) != NULL || has_prefix(name, len, HEADER_PREFIX) ||
	       has_prefix(name, len, META_PREFIX);
}



/* The value of a field into out (raw: CR/LF not yet replaced). */
static int
field_value(const struct field_arg *a, const char *name, size_t len, struct buf *out)
{
	field_fn fn = field_find(name, len);
	char key[256];

	if (fn != NULL)
		return fn(a, out);
	if (len >= sizeof(key) || !acct_field_known(name, len))
		return 0;
	memcpy(key, name, len);
	key[len] = '\0';
	if (has_prefix(name, len, HEADER_PREFIX)) {
		append_header(a->r->msg, key + strlen(HEADER_PREFIX), out);
		return 0;
	}
	return append_meta(a->r->msg, key + strlen(META_PREFIX), out);
}

/* CR and LF become spaces, a folded line's CRLF + blank one space. */
static void
flatten(struct buf *v)
{
	size_t i, j = 0;
	char c;

	for (i = 0; i < v->len; i++) {
		c = v->data[i];
		if (c == '\r' && i + 1 < v->len && v->data[i + 1] == '\n')
			continue;
		if (c == '\n' && i + 1 < v->len && (v->data[i + 1] == ' ' || v->data[i + 1] == '\t'))
			continue;
		v->data[j++] = c == '\r' || c == '\n' ? ' ' : c;
	}
	v->len = j;
}

/* ---- lines ---- */

int
acct_csv_append(struct buf *out, const char *v, size_t n)
{
	size_t i;

	for (i = 0; i < n && !strchr(",\"\r\n", v[i]); i++)
		;
	if (i == n)
		return buf_append(out, v, n);
	buf_append_char(out, '"');
	for (i = 0; i < n; i++) {
		if (v[i] == '"')
			buf_append_char(out, '"');
		buf_append_char(out, v[i]);
	}
	return buf_append_char(out, '"');
}

int
acct_header(const struct acct_format *f, struct buf *out)
{
	size_t i;

	if (f->kind != ACCT_PMTA_CSV)
		return 0;
	buf_append_str(out, "type");
	for (i = 0; i < f->n_fields; i++) {
		buf_append_char(out, ',');
		acct_csv_append(out, f->fields[i], strlen(f->fields[i]));
	}
	return buf_append(out, "", 0);
}

static int
csv_line(const struct acct_format *f, const struct field_arg *a, struct buf *out)
{
	struct buf v;
	size_t i;
	int rc = buf_append_str(out, types[a->type].letter);

	buf_init(&v);
	for (i = 0; i < f->n_fields && rc == 0; i++) {
		buf_reset(&v);
		rc = field_value(a, f->fields[i], strlen(f->fields[i]), &v);
		flatten(&v);
		buf_append_char(out, ',');
		if (rc == 0 && v.len > 0)
			rc = acct_csv_append(out, v.data, v.len);
	}
	buf_deinit(&v);
	return rc;
}

struct template_arg {
	const struct field_arg *a;
	struct buf value;
};

/* template_render copies the value before it asks again, so one buffer serves every tag. */
static const char *
template_lookup(void *arg, const char *name, size_t len)
{
	struct template_arg *t = arg;

	buf_reset(&t->value);
	if (field_value(t->a, name, len, &t->value) < 0)
		return NULL;
	flatten(&t->value);
	return buf_append(&t->value, "", 0) < 0 ? NULL : t->value.data;
}

static int
template_line(const struct acct_format *f, const struct field_arg *a, struct buf *out)
{
	struct template_arg t = {.a = a};
	int rc;

	buf_init(&t.value);
	rc = template_render(f->templates[a->type], template_lookup, &t, false, out);
	buf_deinit(&t.value);
	if (rc == 0 && out->len > 0 && out->data[out->len - 1] == '\0')
		out->len--;
	return rc;
}

int
acct_format_line(const struct acct_format *f, const struct logrec *r,
		 const struct acct_context *ctx, struct buf *out)
{
	struct field_arg a = {.r = r, .ctx = ctx, .type = acct_type_index(r->type)};

	if (a.type < 0 || !f->types[a.type])
		return TERN_DECLINED;
	if (f->kind == ACCT_PMTA_CSV)
		return types[a.type].letter ? csv_line(f, &a, out) : TERN_DECLINED;
	return f->templates[a.type] ? template_line(f, &a, out) : TERN_DECLINED;
}

/* ---- checking templates ---- */

struct check_arg {
	char unknown[64];
};

static const char *
check_lookup(void *arg, const char *name, size_t len)
{
	struct check_arg *c = arg;

	if (!acct_field_known(name, len) && c->unknown[0] == '\0')
		snprintf(c->unknown, sizeof(c->unknown), "%.*s", (int)len, name);
	return NULL;
}

int
acct_template_check(const char *tpl, struct tern_err *err)
{
	struct check_arg c = {{0}};
	struct buf scratch;

	if (strpbrk(tpl, "\r\n") != NULL) {
		tern_err_set(err, 0, "", "a template is one line: it may not hold CR or LF");
		return -EINVAL;
	}
	buf_init(&scratch);
	template_render(tpl, check_lookup, &c, false, &scratch);
	buf_deinit(&scratch);
	if (c.unknown[0] == '\0')
		return 0;
	tern_err_set(err, 0, "", "unknown field '{{ %s }}' in template", c.unknown);
	return -EINVAL;
}

/* ---- lifecycle ---- */

void
acct_format_copy(struct acct_format *dst, const struct acct_format *src)
{
	size_t i;

	*dst = *src;
	dst->fields = src->n_fields ? xcalloc(src->n_fields, sizeof(char *)) : NULL;
	for (i = 0; i < src->n_fields; i++)
		dst->fields[i] = xstrdup(src->fields[i]);
	for (i = 0; i < ACCT_N_TYPES; i++)
		dst->templates[i] = src->templates[i] ? xstrdup(src->templates[i]) : NULL;
}

void
acct_format_deinit(struct acct_format *f)
{
	size_t i;

	for (i = 0; i < f->n_fields; i++)
		free(f->fields[i]);
	free(f->fields); f->fields = NULL;
	for (i = 0; i < ACCT_N_TYPES; i++) {
		free(f->templates[i]); f->templates[i] = NULL;
	}
	f->n_fields = 0;
}
