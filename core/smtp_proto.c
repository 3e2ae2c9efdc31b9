// SPDX-License-Identifier: MIT
/*
 * SMTP syntax without I/O. Command lines are parsed by a small recursive
 * descent over a cursor, one function per grammar rule of RFC 5321 section
 * 4.1.2, so each can be read against the RFC. Where real senders and the RFC
 * disagree (bare addresses, dots in local parts) we follow Postfix.
 *
 * The DATA reader is a state machine that holds at most one undecided byte
 * (a '.' or CR) between calls, so a terminator split across reads is seen
 * exactly as an unsplit one. It sees every byte of every message: the common
 * path finds line ends with memchr and copies whole runs of lines at once.
 *
 * Replies are assembled under fixed limits checked before anything is
 * stored, because the server at the other end may be hostile: the most a
 * reply can cost is SMTP_REPLY_SIZE_LIMIT bytes, whatever it sends.
 */
#include "tern/smtp_proto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

/* Cursor over the text being parsed. */
struct scan {
	const char *p;
	const char *end;
};

static bool
scan_eat(struct scan *s, char c)
{
	if (s->p < s->end && *s->p == c) {
		s->p++;
		return true;
	}
	return false;
}

/* Case-insensitive literal. */
static bool
scan_eat_word(struct scan *s, const char *w)
{
	size_t n = strlen(w);

	if ((size_t)(s->end - s->p) < n || !util_strncaseeq(s->p, w, n))
		return false;
	s->p += n;
	return true;
}

static void
scan_skip_spaces(struct scan *s)
{
	while (scan_eat(s, ' '))
		;
}

/* The next space-separated word; may be empty. */
static struct scan
scan_word(struct scan *s)
{
	struct scan w = {s->p, s->end};
	const char *sp = memchr(s->p, ' ', (size_t)(s->end - s->p));

	if (sp != NULL)
		w.end = sp;
	s->p = w.end;
	return w;
}

static bool
is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_alnum(unsigned char c)
{
	return is_alpha(c) || is_digit(c);
}

static bool
is_atext(unsigned char c)
{
	return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* Length of the well-formed UTF-8 multi-byte sequence at p (RFC 3629), or 0. */
static size_t
utf8_len(const unsigned char *p, size_t n)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t len, i;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4;
	else
		return 0;
	if (p[0] == 0xe0)
		lo = 0xa0; /* overlong */
	else if (p[0] == 0xed)
		hi = 0x9f; /* surrogates */
	else if (p[0] == 0xf0)
		lo = 0x90; /* overlong */
	else if (p[0] == 0xf4)
		hi = 0x8f; /* above U+10FFFF */
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if (p[i] < lo || p[i] > hi)
			return 0;
		lo = 0x80;
		hi = 0xbf;
	}
	return len;
}

/* One UTF-8 character of U+0080 or above. */
static bool
scan_utf8(struct scan *s)
{
	size_t n;

	if (s->p >= s->end || (unsigned char)*s->p < 0x80)
		return false;
	n = utf8_len((const unsigned char *)s->p, (size_t)(s->end - s->p));
	s->p += n;
	return n > 0;
}

static bool
utf8_valid(const char *p, size_t n)
{
	struct scan s = {p, p + n};

	while (s.p < s.end)
		if ((unsigned char)*s.p < 0x80)
			s.p++;
		else if (!scan_utf8(&s))
			return false;
	return true;
}

static bool
has_8bit(const char *p)
{
	for (; *p; p++)
		if ((unsigned char)*p >= 0x80)
			return true;
	return false;
}

static bool
scan_one(struct scan *s, bool (*cls)(unsigned char))
{
	if (s->p < s->end && cls((unsigned char)*s->p)) {
		s->p++;
		return true;
	}
	return false;
}

static bool
is_atext_or_dot(unsigned char c)
{
	return c == '.' || is_atext(c);
}

/*
 * Dot-string, leniently: dots anywhere, because real mailboxes such as
 * "foo.@docomo.ne.jp" exist and Postfix accepts them.
 */
static bool
scan_dot_string(struct scan *s)
{
	const char *start = s->p;

	while (scan_one(s, is_atext_or_dot) || scan_utf8(s))
		;
	return s->p > start;
}

static bool
is_qtext(unsigned char c)
{
	return c >= 32 && c <= 126 && c != '"' && c != '\\';
}

/* The rest of a quoted-string, after its opening quote. */
static bool
scan_quoted_string(struct scan *s)
{
	for (;;) {
		if (scan_eat(s, '"'))
			return true;
		if (scan_eat(s, '\\')) {
			if (s->p == s->end || *s->p < 32 || *s->p > 126)
				return false;
			s->p++;
		} else if (!scan_one(s, is_qtext) && !scan_utf8(s)) {
			return false;
		}
	}
}

static bool
scan_local_part(struct scan *s)
{
	if (scan_eat(s, '"'))
		return scan_quoted_string(s);
	return scan_dot_string(s);
}

static bool
is_ldh(unsigned char c)
{
	return is_alnum(c) || c == '-';
}

/* sub-domain: Let-dig [Ldh-str], at most 63 octets; U-labels with SMTPUTF8. */
static bool
scan_label(struct scan *s)
{
	const char *start = s->p;

	while (scan_one(s, is_ldh) || scan_utf8(s))
		;
	if (s->p == start || s->p - start > 63)
		return false;
	return *start != '-' && s->p[-1] != '-';
}

static bool
scan_domain(struct scan *s)
{
	const char *start = s->p;

	do {
		if (!scan_label(s))
			return false;
	} while (scan_eat(s, '.'));
	return s->p - start <= 255;
}

/*
 * The rest of "[1.2.3.4]" or "[IPv6:...]" after the '['; general address
 * literals are not used by anyone.
 */
static bool
scan_address_literal(struct scan *s)
{
	char text[64];
	const char *close;
	struct scan in;
	unsigned char addr[16];
	int family = AF_INET;

	close = memchr(s->p, ']', (size_t)(s->end - s->p));
	if (close == NULL)
		return false;
	in = (struct scan){s->p, close};
	if (scan_eat_word(&in, "IPv6:"))
		family = AF_INET6;
	if ((size_t)(in.end - in.p) >= sizeof(text))
		return false;
	memcpy(text, in.p, (size_t)(in.end - in.p));
	text[in.end - in.p] = '\0';
	s->p = close + 1;
	return inet_pton(family, text, addr) == 1;
}

static bool
scan_domain_or_literal(struct scan *s)
{
	if (scan_eat(s, '['))
		return scan_address_literal(s);
	return scan_domain(s);
}

static bool
scan_mailbox(struct scan *s)
{
	return scan_local_part(s) && scan_eat(s, '@') && scan_domain_or_literal(s);
}

/* A-d-l ":" -- the obsolete source route, which we parse and discard. */
static bool
scan_source_route(struct scan *s)
{
	do {
		if (!scan_eat(s, '@') || !scan_domain(s))
			return false;
	} while (scan_eat(s, ','));
	return scan_eat(s, ':');
}

enum path_kind { PATH_MAIL, PATH_RCPT };

/*
 * Path, or a bare mailbox without <>. The mailbox text (without route and
 * brackets) is copied to addr.
 */
static bool
scan_path(struct scan *s, enum path_kind kind, char addr[SMTP_ADDR_MAX + 1])
{
	bool angle = scan_eat(s, '<');
	bool routed = angle && s->p < s->end && *s->p == '@';
	struct scan box;

	if (routed && !scan_source_route(s))
		return false;
	box.p = s->p;
	if (angle && !routed && kind == PATH_MAIL && s->p < s->end && *s->p == '>') {
		/* the null reverse-path */
	} else if (kind == PATH_RCPT && scan_eat_word(s, "postmaster") &&
		   (s->p == s->end || *s->p == (angle ? '>' : ' '))) {
		/* RFC 5321 4.1.1.3: <Postmaster> needs no domain */
	} else {
		s->p = box.p;
		if (!scan_mailbox(s))
			return false;
	}
	box.end = s->p;
	if (angle && !scan_eat(s, '>'))
		return false;
	if (s->p < s->end && *s->p != ' ')
		return false;
	if (box.end - box.p > SMTP_ADDR_MAX)
		return false;
	memcpy(addr, box.p, (size_t)(box.end - box.p));
	addr[box.end - box.p] = '\0';
	return true;
}

static int
fail(struct tern_err *err, int code, const char *enhanced, const char *msg)
{
	tern_err_set(err, code, enhanced, "%s", msg);
	return -EINVAL;
}

static int
syntax(struct tern_err *err, const char *msg)
{
	return fail(err, 501, "5.5.4", msg);
}

/* MAIL/RCPT parameters: one small function per keyword. */
struct param {
	const char *name;
	enum smtp_verb verb;
	int (*fn)(struct smtp_cmd *cmd, struct scan *value, struct tern_err *err);
};

static int
param_size(struct smtp_cmd *cmd, struct scan *v, struct tern_err *err)
{
	uint64_t n = 0;
	int d;

	if (cmd->has_size || v->p == v->end)
		return syntax(err, "Bad SIZE parameter");
	for (; v->p < v->end; v->p++) {
		if (!is_digit((unsigned char)*v->p))
			return syntax(err, "Bad SIZE parameter");
		d = *v->p - '0';
		/* a size that does not fit is simply too big: saturate */
		n = n > (UINT64_MAX - d) / 10 ? UINT64_MAX : n * 10 + d;
	}
	cmd->has_size = true;
	cmd->size = n;
	return 0;
}

static int
param_body(struct smtp_cmd *cmd, struct scan *v, struct tern_err *err)
{
	static const struct {
		const char *name;
		enum smtp_body body;
	} bodies[] = {{"7BIT", SMTP_BODY_7BIT},
		      {"8BITMIME", SMTP_BODY_8BITMIME},
		      {"BINARYMIME", SMTP_BODY_BINARYMIME}};
	size_t i, n = (size_t)(v->end - v->p);

	for (i = 0; cmd->body == SMTP_BODY_UNSPEC && i < TERN_ARRAY_LEN(bodies); i++) {
		if (n == strlen(bodies[i].name) && util_strncaseeq(v->p, bodies[i].name, n)) {
			cmd->body = bodies[i].body;
			return 0;
		}
	}
	return syntax(err, "Bad BODY parameter");
}

static int
param_smtputf8(struct smtp_cmd *cmd, struct scan *v, struct tern_err *err)
{
	if (v->p != NULL || cmd->smtputf8)
		return syntax(err, "Bad SMTPUTF8 parameter");
	cmd->smtputf8 = true;
	return 0;
}

/* DSN and AUTH= parameters: the syntax was checked, the meaning is not ours. */
static int
param_ignored(struct smtp_cmd *cmd, struct scan *v, struct tern_err *err)
{
	if (v->p == NULL)
		return syntax(err, "Parameter requires a value");
	return 0;
}

static const struct param params[] = {
    {"SIZE", SMTP_VERB_MAIL, param_size},	  {"BODY", SMTP_VERB_MAIL, param_body},
    {"SMTPUTF8", SMTP_VERB_MAIL, param_smtputf8}, {"RET", SMTP_VERB_MAIL, param_ignored},
    {"ENVID", SMTP_VERB_MAIL, param_ignored},	  {"AUTH", SMTP_VERB_MAIL, param_ignored},
    {"NOTIFY", SMTP_VERB_RCPT, param_ignored},	  {"ORCPT", SMTP_VERB_RCPT, param_ignored},
};

static const struct param *
param_find(enum smtp_verb verb, struct scan *kw)
{
	size_t i, n = (size_t)(kw->end - kw->p);

	for (i = 0; i < TERN_ARRAY_LEN(params); i++)
		if (params[i].verb == verb && n == strlen(params[i].name) &&
		    util_strncaseeq(kw->p, params[i].name, n))
			return &params[i];
	return NULL;
}

static bool
is_esmtp_value(unsigned char c)
{
	return c > ' ' && c != '=' && c != 0x7f;
}

/* esmtp-param: keyword ["=" value]; value.p is NULL when there is none. */
static int
param_parse(struct scan *word, struct scan *kw, struct scan *value)
{
	*kw = (struct scan){word->p, word->p};
	*value = (struct scan){NULL, NULL};
	if (!scan_one(word, is_alnum))
		return -EINVAL;
	while (scan_one(word, is_ldh))
		;
	kw->end = word->p;
	if (!scan_eat(word, '='))
		return word->p == word->end ? 0 : -EINVAL;
	value->p = word->p;
	value->end = word->end;
	while (scan_one(word, is_esmtp_value))
		;
	return word->p == word->end && value->p < value->end ? 0 : -EINVAL;
}

static int
parse_params(struct scan *s, struct smtp_cmd *cmd, struct tern_err *err)
{
	struct scan word, kw, value;
	const struct param *prm;
	int rc;

	while (s->p < s->end) {
		scan_skip_spaces(s);
		word = scan_word(s);
		if (param_parse(&word, &kw, &value) < 0)
			return syntax(err, "Bad parameter syntax");
		prm = param_find(cmd->verb, &kw);
		if (prm == NULL) {
			tern_err_set(err, 555, "5.5.4", "Unsupported parameter: %.*s",
				     (int)(kw.end - kw.p), kw.p);
			return -EINVAL;
		}
		if ((rc = prm->fn(cmd, &value, err)) < 0)
			return rc;
	}
	return 0;
}

static int
parse_helo(struct scan *s, struct smtp_cmd *cmd, bool tx_utf8, struct tern_err *err)
{
	/* lenient like Postfix: the first word, whatever it looks like */
	struct scan w = scan_word(s);
	size_t n = (size_t)(w.end - w.p);

	if (n == 0)
		return syntax(err, cmd->verb == SMTP_VERB_HELO ? "Syntax: HELO hostname"
							       : "Syntax: EHLO hostname");
	if (n >= sizeof(cmd->domain) || !utf8_valid(w.p, n))
		return syntax(err, "Bad hostname");
	memcpy(cmd->domain, w.p, n);
	cmd->domain[n] = '\0';
	return 0;
}

static int
parse_path_args(struct scan *s, struct smtp_cmd *cmd, bool utf8, struct tern_err *err)
{
	bool mail = cmd->verb == SMTP_VERB_MAIL;
	int rc;

	if (!scan_eat_word(s, mail ? "FROM:" : "TO:"))
		return syntax(err,
			      mail ? "Syntax: MAIL FROM:<address>" : "Syntax: RCPT TO:<address>");
	scan_eat(s, ' ');
	if (s->p == s->end)
		return syntax(err,
			      mail ? "Syntax: MAIL FROM:<address>" : "Syntax: RCPT TO:<address>");
	if (!scan_path(s, mail ? PATH_MAIL : PATH_RCPT, cmd->addr) ||
	    !utf8_valid(cmd->addr, strlen(cmd->addr))) {
		if (mail)
			return fail(err, 501, "5.1.7", "Bad sender address syntax");
		return fail(err, 501, "5.1.3", "Bad recipient address syntax");
	}
	if ((rc = parse_params(s, cmd, err)) < 0)
		return rc;
	if (!(utf8 || cmd->smtputf8) && has_8bit(cmd->addr))
		return fail(err, 553, "5.6.7", "Non-ASCII address requires SMTPUTF8");
	return 0;
}

static int
parse_mail(struct scan *s, struct smtp_cmd *cmd, bool tx_utf8, struct tern_err *err)
{
	return parse_path_args(s, cmd, false, err);
}

static int
parse_rcpt(struct scan *s, struct smtp_cmd *cmd, bool tx_utf8, struct tern_err *err)
{
	return parse_path_args(s, cmd, tx_utf8, err);
}

static int
parse_no_arg(struct scan *s, struct smtp_cmd *cmd, bool tx_utf8, struct tern_err *err)
{
	if (s->p < s->end)
		return syntax(err, "Syntax: no arguments allowed");
	return 0;
}

static int
parse_any_arg(struct scan *s, struct smtp_cmd *cmd, bool tx_utf8, struct tern_err *err)
{
	return 0;
}

static int
parse_vrfy(struct scan *s, struct smtp_cmd *cmd, bool tx_utf8, struct tern_err *err)
{
	if (s->p == s->end)
		return syntax(err, "Syntax: VRFY address");
	return 0;
}

static int
parse_bdat(struct scan *s, struct smtp_cmd *cmd, bool tx_utf8, struct tern_err *err)
{
	struct scan w = scan_word(s);
	uint64_t n = 0;
	int d;

	if (w.p == w.end)
		return syntax(err, "Syntax: BDAT size [LAST]");
	for (; w.p < w.end; w.p++) {
		if (!is_digit((unsigned char)*w.p))
			return syntax(err, "Syntax: BDAT size [LAST]");
		d = *w.p - '0';
		/* unlike SIZE, we must know how many bytes follow */
		if (n > (UINT64_MAX - d) / 10)
			return syntax(err, "BDAT chunk size too large");
		n = n * 10 + d;
	}
	cmd->chunk_size = n;
	scan_skip_spaces(s);
	if (s->p == s->end)
		return 0;
	if (!scan_eat_word(s, "LAST") || s->p != s->end)
		return syntax(err, "Syntax: BDAT size [LAST]");
	cmd->last = true;
	return 0;
}

static bool
is_sasl_mech(unsigned char c)
{
	return is_alnum(c) || c == '-' || c == '_';
}

static bool
is_base64(unsigned char c)
{
	return is_alnum(c) || c == '+' || c == '/';
}

/* RFC 4648 base64 with padding, or "=" for an empty initial response. */
static bool
base64_valid(struct scan w)
{
	size_t n = (size_t)(w.end - w.p);

	if (n == 1 && *w.p == '=')
		return true;
	while (scan_one(&w, is_base64))
		;
	if (scan_eat(&w, '='))
		scan_eat(&w, '=');
	return w.p == w.end && n > 0 && n % 4 == 0;
}

static int
parse_auth(struct scan *s, struct smtp_cmd *cmd, bool tx_utf8, struct tern_err *err)
{
	struct scan mech = scan_word(s), resp;
	size_t i, n = (size_t)(mech.end - mech.p);

	/* RFC 4422: mechanism names are at most 20 characters */
	for (i = 0; i < n; i++)
		if (!is_sasl_mech((unsigned char)mech.p[i]))
			break;
	if (n == 0 || n > 20 || i < n)
		return syntax(err, "Syntax: AUTH mechanism [initial-response]");
	for (i = 0; i < n; i++)
		cmd->mechanism[i] =
		    (char)(mech.p[i] >= 'a' && mech.p[i] <= 'z' ? mech.p[i] - 32 : mech.p[i]);
	scan_skip_spaces(s);
	resp = scan_word(s);
	if (s->p != s->end)
		return syntax(err, "Syntax: AUTH mechanism [initial-response]");
	n = (size_t)(resp.end - resp.p);
	if (n >= sizeof(cmd->initial_response))
		return fail(err, 500, "5.5.6", "Authentication Exchange line is too long");
	if (n > 0 && !base64_valid(resp))
		return fail(err, 501, "5.5.2", "Cannot Base64-decode initial response");
	memcpy(cmd->initial_response, resp.p, n);
	cmd->initial_response[n] = '\0';
	return 0;
}

typedef int (*parse_fn)(struct scan *s, struct smtp_cmd *cmd, bool tx_utf8, struct tern_err *err);

static const struct {
	const char *name;
	enum smtp_verb verb;
	parse_fn parse;
} verbs[] = {
    {"HELO", SMTP_VERB_HELO, parse_helo},    {"EHLO", SMTP_VERB_EHLO, parse_helo},
    {"MAIL", SMTP_VERB_MAIL, parse_mail},    {"RCPT", SMTP_VERB_RCPT, parse_rcpt},
    {"DATA", SMTP_VERB_DATA, parse_no_arg},  {"BDAT", SMTP_VERB_BDAT, parse_bdat},
    {"RSET", SMTP_VERB_RSET, parse_no_arg},  {"NOOP", SMTP_VERB_NOOP, parse_any_arg},
    {"QUIT", SMTP_VERB_QUIT, parse_no_arg},  {"VRFY", SMTP_VERB_VRFY, parse_vrfy},
    {"HELP", SMTP_VERB_HELP, parse_any_arg}, {"STARTTLS", SMTP_VERB_STARTTLS, parse_no_arg},
    {"AUTH", SMTP_VERB_AUTH, parse_auth},
};

static size_t
verb_find(struct scan *w)
{
	size_t i, n = (size_t)(w->end - w->p);

	for (i = 0; i < TERN_ARRAY_LEN(verbs); i++)
		if (n == strlen(verbs[i].name) && util_strncaseeq(w->p, verbs[i].name, n))
			return i;
	return TERN_ARRAY_LEN(verbs);
}

static bool
has_control(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
			return true;
	return false;
}

int
smtp_parse_command_utf8(const char *line, size_t len, bool tx_smtputf8, struct smtp_cmd *cmd,
			struct tern_err *err)
{
	struct scan s, w;
	size_t v;

	memset(cmd, 0, sizeof(*cmd));
	if (line == NULL)
		line = "";
	cmd->arg = line + len;
	/* trailing blanks are common and harmless */
	while (len > 0 && line[len - 1] == ' ')
		len--;
	s = (struct scan){line, line + len};
	w = scan_word(&s);
	v = verb_find(&w);
	if (v < TERN_ARRAY_LEN(verbs))
		cmd->verb = verbs[v].verb;
	/* RFC 4954 4: AUTH lines may be longer; its own limit is checked later */
	if (len > SMTP_LINE_MAX - 2 && cmd->verb != SMTP_VERB_AUTH)
		return fail(err, 500, "5.5.2", "Error: line too long");
	if (has_control(line, len))
		return syntax(err, "Syntax error: control characters are not allowed");
	if (v == TERN_ARRAY_LEN(verbs))
		return fail(err, 500, "5.5.1", "Error: command not recognized");
	scan_skip_spaces(&s);
	cmd->arg = s.p;
	cmd->arg_len = (size_t)(s.end - s.p);
	return verbs[v].parse(&s, cmd, tx_smtputf8, err);
}

int
smtp_parse_command(const char *line, size_t len, struct smtp_cmd *cmd, struct tern_err *err)
{
	return smtp_parse_command_utf8(line, len, false, cmd, err);
}

/*
 * DATA reader. States say what the bytes just before the cursor were:
 * BOL after CRLF (or the 354), BOL_SOFT after a bare CR/LF, DOT after a
 * leading '.' at BOL, DOT_CR after ".\r" at BOL, CR after a CR inside a line.
 * The bytes that decide the state (the leading dot, a CR) are held back
 * and written once the next byte tells what they were.
 */
enum data_state { DS_BOL, DS_BOL_SOFT, DS_DOT, DS_DOT_CR, DS_TEXT, DS_CR };

struct data_feed {
	struct smtp_data_reader *r;
	struct buf *out;
	const char *run; /* start of the bytes not yet written, copied verbatim */
	const char *lf;	 /* the next LF at or after the cursor (end: none), or NULL */
	const char *end;
};

void
smtp_data_reader_init(struct smtp_data_reader *r, size_t max_size, bool fix_line_endings)
{
	memset(r, 0, sizeof(*r));
	r->state = DS_BOL;
	r->max_size = max_size;
	r->fix_line_endings = fix_line_endings;
}

static void
data_emit(struct smtp_data_reader *r, struct buf *out, const char *p, size_t n)
{
	uint64_t before = r->size;

	r->size += n;
	if (r->max_size != 0 && r->size > r->max_size) {
		/* keep exactly max_size bytes, then only count */
		n = r->too_big ? 0 : (size_t)(r->max_size - before);
		r->too_big = true;
	}
	if (n == 0 || r->nomem)
		return;
	if (buf_append(out, p, n) < 0)
		r->nomem = true;
}

/* Write the pending run up to p and leave the byte at p out of it. */
static void
data_drop(struct data_feed *f, const char *p)
{
	data_emit(f->r, f->out, f->run, (size_t)(p - f->run));
	f->run = p + 1;
}

/* A held bare CR or LF: written as CRLF when fixing, else as is and flagged. */
static void
data_bare(struct data_feed *f, char c)
{
	if (f->r->fix_line_endings) {
		data_emit(f->r, f->out, "\r\n", 2);
	} else {
		f->r->bad_line_ending = true;
		data_emit(f->r, f->out, &c, 1);
	}
	f->r->state = DS_BOL_SOFT;
}

static const char *
data_find_eol(struct data_feed *f, const char *p)
{
	const char *cr;

	/* remember the LF: lines full of bare CRs must not rescan to it */
	if (f->lf == NULL || f->lf < p) {
		f->lf = memchr(p, '\n', (size_t)(f->end - p));
		if (f->lf == NULL)
			f->lf = f->end;
	}
	cr = memchr(p, '\r', (size_t)(f->lf - p));
	return cr != NULL ? cr : f->lf;
}

static const char *
data_bol(struct data_feed *f, const char *p)
{
	if (*p == '.') {
		data_drop(f, p);
		f->r->state = f->r->state == DS_BOL ? DS_DOT : DS_TEXT;
		return p + 1;
	}
	f->r->state = DS_TEXT;
	return p;
}

static const char *
data_dot(struct data_feed *f, const char *p)
{
	if (*p == '\r') {
		data_drop(f, p);
		f->r->state = DS_DOT_CR;
		return p + 1;
	}
	f->r->state = DS_TEXT;
	return p;
}

static const char *
data_dot_cr(struct data_feed *f, const char *p)
{
	if (*p == '\n') {
		data_drop(f, p);
		f->r->done = true;
		return p + 1;
	}
	data_bare(f, '\r');
	return p;
}

static const char *
data_cr(struct data_feed *f, const char *p)
{
	if (*p == '\n') {
		data_drop(f, p);
		data_emit(f->r, f->out, "\r\n", 2);
		f->r->state = DS_BOL;
		return p + 1;
	}
	data_bare(f, '\r');
	return p;
}

static const char *
data_text(struct data_feed *f, const char *q)
{
	q = data_find_eol(f, q);
	if (q == f->end)
		return q;
	if (*q == '\r' && q + 1 < f->end && q[1] == '\n') {
		/* the common case: the line stays in the run */
		f->r->state = DS_BOL;
		return q + 2;
	}
	data_drop(f, q);
	if (*q == '\r')
		f->r->state = DS_CR;
	else
		data_bare(f, '\n');
	return q + 1;
}

static const char *
data_step(struct data_feed *f, const char *p)
{
	switch (f->r->state) {
	case DS_BOL:
	case DS_BOL_SOFT:
		return data_bol(f, p);
	case DS_DOT:
		return data_dot(f, p);
	case DS_DOT_CR:
		return data_dot_cr(f, p);
	case DS_CR:
		return data_cr(f, p);
	default:
		return data_text(f, p);
	}
}

enum smtp_data_status
smtp_data_feed(struct smtp_data_reader *r, const char *in, size_t len, struct buf *out,
	       size_t *consumed)
{
	struct data_feed f;
	const char *p = in;

	*consumed = 0;
	if (r->done || len == 0)
		return r->done ? SMTP_DATA_DONE : SMTP_DATA_MORE;
	f = (struct data_feed){r, out, in, NULL, in + len};
	while (p < f.end && !r->done)
		p = data_step(&f, p);
	if (!r->done)
		data_emit(r, out, f.run, (size_t)(p - f.run));
	*consumed = (size_t)(p - in);
	return r->done ? SMTP_DATA_DONE : SMTP_DATA_MORE;
}

bool
smtp_data_bad_line_ending(const struct smtp_data_reader *r)
{
	return r->bad_line_ending;
}

bool
smtp_data_too_big(const struct smtp_data_reader *r)
{
	return r->too_big;
}

bool
smtp_data_nomem(const struct smtp_data_reader *r)
{
	return r->nomem;
}

uint64_t
smtp_data_size(const struct smtp_data_reader *r)
{
	return r->size;
}

bool
smtp_has_bare_line_ending(const char *p, size_t n, bool *prev_cr)
{
	const char *end = p + n, *q;
	bool bare = false;

	if (n == 0)
		return false;
	for (q = p; !bare && (q = memchr(q, '\n', (size_t)(end - q))) != NULL; q++)
		bare = q == p ? !*prev_cr : q[-1] != '\r';
	for (q = p; !bare && (q = memchr(q, '\r', (size_t)(end - q))) != NULL; q++)
		bare = q + 1 < end && q[1] != '\n';
	if (*prev_cr && *p != '\n')
		bare = true;
	*prev_cr = end[-1] == '\r';
	return bare;
}

/* Length of the longest line of p[0..n), without its CRLF (or bare CR/LF). */
static size_t
longest_line(const char *p, size_t n)
{
	const char *end = p + n, *lf;
	size_t len, max = 0;

	for (; p < end; p = lf + 1) {
		lf = memchr(p, '\n', (size_t)(end - p));
		if (lf == NULL)
			lf = end;
		len = (size_t)(lf - p);
		if (len > 0 && lf < end && lf[-1] == '\r')
			len--;
		if (len > max)
			max = len;
	}
	return max;
}

int
smtp_content_flaws(const char *p, size_t n)
{
	int flaws = 0;

	if (n == 0)
		return 0;
	if (memchr(p, '\0', n) != NULL)
		flaws |= SMTP_CONTENT_NUL;
	if (longest_line(p, n) > SMTP_TEXT_LINE_MAX)
		flaws |= SMTP_CONTENT_LONG_LINE;
	return flaws;
}

static bool
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* Where to break a line longer than room: before its last blank within reach, else at room. */
static size_t
break_at(const char *p, size_t room)
{
	size_t i;

	for (i = room; i > 0; i--)
		if (is_wsp(p[i]))
			return i;
	return room;
}

/*
 * One line (without its ending) in pieces of at most SMTP_TEXT_LINE_MAX.
 * Breaking before a blank keeps the blank, which folds a header field
 * (RFC 5322 2.2.3) and is one more line break in text or HTML. With no blank
 * in reach the break is hard; in a header the next piece then starts with an
 * added space, so that it stays a continuation of the field.
 */
static int
wrap_line(const char *p, size_t len, bool header, struct buf *out)
{
	size_t room = SMTP_TEXT_LINE_MAX, cut;
	int rc = 0;

	while (len > room && rc == 0) {
		cut = break_at(p, room);
		rc |= buf_append(out, p, cut);
		p += cut;
		len -= cut;
		if (header && !is_wsp(*p)) {
			rc |= buf_append(out, "\r\n ", 3);
			room = SMTP_TEXT_LINE_MAX - 1;
		} else {
			rc |= buf_append(out, "\r\n", 2);
			room = SMTP_TEXT_LINE_MAX;
		}
	}
	return rc | buf_append(out, p, len);
}

int
smtp_wrap_long_lines(const char *p, size_t n, struct buf *out)
{
	const char *end = p + n, *lf, *next;
	bool header = true;
	size_t len;
	int rc = 0;

	for (; p < end && rc == 0; p = next) {
		lf = memchr(p, '\n', (size_t)(end - p));
		next = lf ? lf + 1 : end;
		len = (size_t)((lf ? lf : end) - p);
		if (len > 0 && lf && lf[-1] == '\r')
			len--;
		if (len == 0)
			header = false;
		rc = wrap_line(p, len, header, out);
		rc |= buf_append(out, p + len, (size_t)(next - (p + len)));
	}
	return rc < 0 ? -ENOMEM : 0;
}

/* Length of an RFC 3463 status code of class cls at p[0..n), or 0. */
static size_t
enhanced_len(const char *p, size_t n, int cls)
{
	struct scan s = {p, p + n};
	int part, digits;

	if (n == 0 || (cls != 2 && cls != 4 && cls != 5) || *p != '0' + cls)
		return 0;
	s.p++;
	for (part = 0; part < 2; part++) {
		if (!scan_eat(&s, '.'))
			return 0;
		for (digits = 0; digits < 3 && scan_one(&s, is_digit); digits++)
			;
		if (digits == 0)
			return 0;
	}
	return (size_t)(s.p - p);
}

static bool
is_line_break(char c)
{
	return c == '\r' || c == '\n';
}

/* Format one reply line into line[SMTP_REPLY_LINE_MAX + 1]; returns its length. */
static size_t
reply_line(char *line, int code, bool more, const char *enh, const char *p, size_t n)
{
	size_t len = 3, elen = strlen(enh);

	/*
	 * Every line is written twice (measured, then copied), by hand rather
	 * than printf; smtp_format_reply has checked that code has 3 digits.
	 */
	line[0] = (char)('0' + code / 100);
	line[1] = (char)('0' + code / 10 % 10);
	line[2] = (char)('0' + code % 10);
	if (more || elen || n) {
		line[len++] = more ? '-' : ' ';
		memcpy(line + len, enh, elen);
		len += elen;
		if (elen && n)
			line[len++] = ' ';
	}
	memcpy(line + len, p, n);
	memcpy(line + len + n, "\r\n", 2);
	return len + n + 2;
}

/* Where to cut a text line of n bytes so that no reply line is too long. */
static size_t
reply_cut(const char *p, size_t n, size_t width)
{
	size_t cut = width;

	if (n <= width)
		return n;
	/* do not split a UTF-8 sequence */
	while (cut > width - 3 && ((unsigned char)p[cut] & 0xc0) == 0x80)
		cut--;
	return cut;
}

/*
 * Write the reply to dst, or with dst NULL only measure it: measuring first
 * lets the caller allocate once, so a failure never leaves half a reply.
 */
static size_t
reply_write(char *dst, int code, const char *enh, const char *text)
{
	char line[SMTP_REPLY_LINE_MAX + 1];
	size_t width = SMTP_REPLY_LINE_MAX - 6 - (*enh ? strlen(enh) + 1 : 0);
	size_t total = 0, n, k;
	const char *p = text, *end = text + strlen(text), *eol;
	bool more;

	if (end > p && end[-1] == '\n')
		end--;
	if (end > p && end[-1] == '\r')
		end--;
	do {
		for (eol = p; eol < end && !is_line_break(*eol); eol++)
			;
		n = reply_cut(p, (size_t)(eol - p), width);
		/* more text on this line, or a line break and so another line */
		more = p + n < end;
		k = reply_line(line, code, more, enh, p, n);
		if (dst != NULL)
			memcpy(dst + total, line, k);
		total += k;
		p += n;
		if (p == eol && p < end)
			p += (*p == '\r' && p + 1 < end && p[1] == '\n') ? 2 : 1;
	} while (more);
	return total;
}

int
smtp_format_reply(struct buf *out, int code, const char *enhanced, const char *text)
{
	const char *enh = enhanced ? enhanced : "";
	size_t enh_n = strlen(enh), n;

	if (code < 200 || code > 599 || (enh_n && enhanced_len(enh, enh_n, code / 100) != enh_n))
		return -EINVAL;
	if (text == NULL)
		text = "";
	n = reply_write(NULL, code, enh, text);
	if (buf_reserve(out, n) < 0)
		return -ENOMEM;
	reply_write(out->data + out->len, code, enh, text);
	out->len += n;
	out->data[out->len] = '\0';
	return 0;
}

int
smtp_parse_reply_line(const char *line, size_t len, struct smtp_reply_line *out)
{
	size_t k;

	memset(out, 0, sizeof(*out));
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len < 3 || !is_digit(line[0]) || !is_digit(line[1]) || !is_digit(line[2]))
		return -EINVAL;
	out->code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (out->code < 200 || out->code > 599)
		return -EINVAL;
	if (len > 3 && line[3] != ' ' && line[3] != '-')
		return -EINVAL;
	out->more = len > 3 && line[3] == '-';
	out->text = line + (len > 3 ? 4 : 3);
	out->text_len = len > 3 ? len - 4 : 0;
	k = enhanced_len(out->text, out->text_len, out->code / 100);
	if (k > 0 && (k == out->text_len || out->text[k] == ' ')) {
		memcpy(out->enhanced, out->text, k);
		out->text += k < out->text_len ? k + 1 : k;
		out->text_len -= k < out->text_len ? k + 1 : k;
	}
	return 0;
}

/* ---- client: reply assembly, EHLO capabilities ------------------------------------------- */

void
smtp_reply_init(struct smtp_reply *r)
{
	memset(r, 0, sizeof(*r));
	buf_init(&r->text);
}

void
smtp_reply_deinit(struct smtp_reply *r)
{
	buf_deinit(&r->text);
}

void
smtp_reply_reset(struct smtp_reply *r)
{
	r->code = 0;
	r->enhanced[0] = '\0';
	/* An idle connection should not keep what one large reply made it allocate. */
	if (r->text.cap > SMTP_REPLY_LINE_LIMIT)
		buf_deinit(&r->text);
	else
		buf_reset(&r->text);
	r->lines = 0;
	r->size = 0;
	r->ended = false;
}

int
smtp_reply_copy(struct smtp_reply *dst, const struct smtp_reply *src)
{
	smtp_reply_reset(dst);
	dst->code = src->code;
	memcpy(dst->enhanced, src->enhanced, sizeof(dst->enhanced));
	dst->lines = src->lines;
	dst->size = src->size;
	dst->ended = src->ended;
	return buf_append(&dst->text, src->text.data ? src->text.data : "", src->text.len);
}

static enum smtp_reply_status
reply_fail(struct smtp_reply *r, struct tern_err *err, const char *cause)
{
	r->ended = true;
	tern_err_set(err, 451, "4.4.2", "%s", cause);
	return SMTP_REPLY_ERROR;
}

static int
reply_append(struct smtp_reply *r, const struct smtp_reply_line *rl)
{
	if (r->lines == 0) {
		r->code = rl->code;
		memcpy(r->enhanced, rl->enhanced, sizeof(r->enhanced));
	} else if (buf_append_char(&r->text, '\n') < 0) {
		return -ENOMEM;
	}
	return buf_append(&r->text, rl->text, rl->text_len);
}

enum smtp_reply_status
smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len, struct tern_err *err)
{
	struct smtp_reply_line rl;
	/* the line as sent: its text and a CRLF */
	size_t wire = len - (len > 0 && line[len - 1] == '\r') + 2;

	if (r->ended)
		return reply_fail(r, err, "reply line after the end of the reply");
	if (wire > SMTP_REPLY_LINE_LIMIT)
		return reply_fail(r, err, "reply line too long");
	if (r->lines == SMTP_REPLY_LINES_LIMIT)
		return reply_fail(r, err, "too many reply lines");
	if (r->size + wire > SMTP_REPLY_SIZE_LIMIT)
		return reply_fail(r, err, "reply too large");
	if (smtp_parse_reply_line(line, len, &rl) < 0)
		return reply_fail(r, err, "malformed reply");
	if (reply_append(r, &rl) < 0)
		return reply_fail(r, err, "out of memory reading a reply");
	r->lines++;
	r->size += wire;
	if (rl.more)
		return SMTP_REPLY_MORE;
	r->ended = true;
	return SMTP_REPLY_DONE;
}

/* An ehlo-line (RFC 5321 4.1.1.1) whose keyword is kw: kw alone, or kw SP params. */
static bool
ehlo_keyword_is(const char *p, size_t n, const char *kw)
{
	size_t k = strlen(kw);

	return n >= k && strncasecmp(p, kw, k) == 0 && (n == k || p[k] == ' ');
}

static void
ehlo_line(struct smtp_caps *caps, const char *p, size_t n)
{
	if (ehlo_keyword_is(p, n, "PIPELINING"))
		caps->pipelining = true;
	else if (ehlo_keyword_is(p, n, "STARTTLS"))
		caps->starttls = true;
	else if (ehlo_keyword_is(p, n, "8BITMIME"))
		caps->eightbitmime = true;
	else if (ehlo_keyword_is(p, n, "SMTPUTF8"))
		caps->smtputf8 = true;
	else if (ehlo_keyword_is(p, n, "CHUNKING"))
		caps->chunking = true;
}

void
smtp_parse_capabilities(const char *text, size_t len, struct smtp_caps *caps)
{
	const char *end, *p, *eol;

	memset(caps, 0, sizeof(*caps));
	if (len == 0)
		return;
	end = text + len;
	/* the first line is the server's name and greeting */
	eol = memchr(text, '\n', len);
	while (eol != NULL) {
		p = eol + 1;
		eol = memchr(p, '\n', (size_t)(end - p));
		ehlo_line(caps, p, (size_t)((eol ? eol : end) - p));
	}
}

/* ---- AUTH ------------------------------------------------------------------------------ */

int
smtp_sasl_decode(const char *b64, size_t n, char *out, size_t cap, size_t *outlen,
		 struct tern_err *err)
{
	size_t pad = 0;
	int len;

	if (n % 4 != 0 || n / 4 * 3 + 1 > cap)
		goto invalid;
	len = EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)b64, (int)n);
	if (len < 0)
		goto invalid;
	if (n > 0 && b64[n - 1] == '=')
		pad++;
	if (n > 1 && b64[n - 2] == '=')
		pad++;
	*outlen = (size_t)len - pad;
	out[*outlen] = '\0';
	return 0;
invalid:
	tern_err_set(err, 501, "5.5.2", "Invalid base64 data");
	return -1;
}

int
smtp_auth_plain_decode(const char *b64, size_t n, char *buf, size_t cap,
		       struct smtp_auth_plain *out, struct tern_err *err)
{
	const char *authc, *pass, *end;
	size_t len;

	if (smtp_sasl_decode(b64, n, buf, cap, &len, err) < 0)
		return -1;
	end = buf + len;
	authc = memchr(buf, '\0', len);
	pass = authc ? memchr(authc + 1, '\0', (size_t)(end - authc - 1)) : NULL;
	if (pass == NULL || memchr(pass + 1, '\0', (size_t)(end - pass - 1)) != NULL) {
		tern_err_set(err, 501, "5.5.2", "Malformed PLAIN credentials");
		return -1;
	}
	out->authz = buf;
	out->authc = authc + 1;
	out->password = pass + 1;
	return 0;
}

int
smtp_auth_login_decode(const char *b64, size_t n, char *buf, size_t cap, struct tern_err *err)
{
	size_t len;

	if (smtp_sasl_decode(b64, n, buf, cap, &len, err) < 0)
		return -1;
	if (memchr(buf, '\0', len) != NULL) {
		tern_err_set(err, 501, "5.5.2", "Invalid base64 data");
		return -1;
	}
	return 0;
}
