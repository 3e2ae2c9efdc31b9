/* SPDX-License-Identifier: MIT */
/*
 * Pure SMTP syntax: command lines in, parsed commands out; the DATA body
 * reader; reply formatting; reply-line parsing, reply assembly under fixed
 * limits and EHLO capabilities for the client. No I/O and no globals, so
 * the server, the client and the fuzzers share exactly the same code.
 *
 * The DATA reader is the smuggling boundary: only <CRLF>.<CRLF> ends a
 * message, and bare CR/LF are reported so the server can refuse them.
 */
#ifndef TERN_SMTP_PROTO_H
#define TERN_SMTP_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tern/util.h"

#define SMTP_LINE_MAX 1000 /* RFC 5321 command line incl. CRLF; longer: 500 5.5.2 */
#define SMTP_ADDR_MAX 320
#define SMTP_AUTH_LINE_MAX 1060 /* "AUTH " mechanism SP 1023-byte response CRLF */
#define SMTP_REPLY_LINE_MAX 512 /* RFC 5321 reply line incl. CRLF; longer text is wrapped */

enum smtp_verb {
	SMTP_VERB_UNKNOWN,
	SMTP_VERB_HELO,
	SMTP_VERB_EHLO,
	SMTP_VERB_MAIL,
	SMTP_VERB_RCPT,
	SMTP_VERB_DATA,
	SMTP_VERB_BDAT,
	SMTP_VERB_RSET,
	SMTP_VERB_NOOP,
	SMTP_VERB_QUIT,
	SMTP_VERB_VRFY,
	SMTP_VERB_HELP,
	SMTP_VERB_STARTTLS,
	SMTP_VERB_AUTH
};

enum smtp_body { SMTP_BODY_UNSPEC, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME, SMTP_BODY_BINARYMIME };

struct smtp_cmd {
	enum smtp_verb verb;
	/*
	 * Raw argument text after the verb and its separating spaces, trailing
	 * spaces trimmed; points into the line. For MAIL/RCPT it starts at
	 * "FROM:"/"TO:". Empty (arg_len 0) when there is none.
	 */
	const char *arg;
	size_t arg_len;
	char domain[256];	      /* HELO/EHLO domain or address literal (first word) */
	char addr[SMTP_ADDR_MAX + 1]; /* MAIL/RCPT path without <> and source route; "" for <> */
	bool has_size;		      /* MAIL SIZE= */
	uint64_t size;		      /* UINT64_MAX when the number does not fit */
	enum smtp_body body;	      /* MAIL BODY= */
	bool smtputf8;		      /* MAIL SMTPUTF8 */
	uint64_t chunk_size;	      /* BDAT n [LAST] */
	bool last;
	char mechanism[32];	     /* AUTH mechanism (upper-cased) */
	char initial_response[1024]; /* AUTH initial response, may be "" or "=" */
};

/*
 * Parse one command line (without the trailing CRLF/LF). 0 on success; on
 * failure a negative value and err =
 *   {501, "5.5.4"} bad syntax (also control characters anywhere, arguments
 *                  to DATA/RSET/QUIT/STARTTLS, HELO/EHLO without domain),
 *   {501, "5.1.7"} bad sender address, {501, "5.1.3"} bad recipient address,
 *   {553, "5.6.7"} UTF-8 address without SMTPUTF8 (RFC 6531),
 *   {500, "5.5.1"} unknown command (verb = UNKNOWN),
 *   {555, "5.5.4"} unknown MAIL/RCPT parameter,
 *   {500, "5.5.2"} line longer than SMTP_LINE_MAX - 2, except for AUTH,
 *   {501, "5.5.2"} AUTH initial response not base64,
 *   {500, "5.5.6"} AUTH initial response too long (over 1023 bytes).
 * RFC 4954 lets AUTH lines exceed the usual limit (OAuth tokens do), so a
 * line reader should allow AUTH lines up to about SMTP_AUTH_LINE_MAX.
 * cmd->verb is set whenever the verb was recognised, even on failure.
 *
 * MAIL parameters: SIZE=digits, BODY=7BIT|8BITMIME|BINARYMIME, SMTPUTF8,
 * RET=, ENVID=, AUTH= (the last three accepted and ignored). RCPT
 * parameters: NOTIFY=, ORCPT= (accepted and ignored). Others: 555 5.5.4.
 *
 * Addresses: <local@domain>, an optional source route <@a,@b:x@y> is
 * stripped, one space after the colon is tolerated, and a bare address
 * without <> is accepted when it has no spaces (as Postfix does). The local
 * part is a dot-string (dots anywhere, for real-world addresses such as
 * "foo.@docomo.ne.jp") or a quoted string, kept as sent. The domain is LDH
 * labels or [IPv4] / [IPv6:...]. RCPT TO:<postmaster> needs no domain;
 * RCPT TO:<> is a bad recipient. UTF-8 (well-formed) in addresses is allowed
 * only with SMTPUTF8: on MAIL from its own parameter, on RCPT from the
 * transaction, which smtp_parse_command() takes as off; a server in an
 * SMTPUTF8 transaction calls smtp_parse_command_utf8(..., true, ...).
 * Malformed UTF-8 is a bad address.
 */
int smtp_parse_command(const char *line, size_t len, struct smtp_cmd *cmd, struct tern_err *err);
int smtp_parse_command_utf8(const char *line, size_t len, bool tx_smtputf8, struct smtp_cmd *cmd,
			    struct tern_err *err);

/*
 * DATA reader. The input is cut into lines ended by CRLF, or by a bare LF or
 * bare CR (a CR not followed by LF). A line "." ended by CRLF and preceded by
 * CRLF (or first after the 354) ends the message; nothing else does, so
 * "\n.\n", "\r.\r", "\n.\r\n" and "\r\n.\n" are ordinary content. A leading
 * '.' is removed from every other line. Lines are written with their CRLF; a
 * bare CR or LF is written as it came and flagged, or, when fix_line_endings,
 * written as CRLF and not flagged. max_size 0 means no limit.
 */
struct smtp_data_reader { /* private: use the functions below */
	int state;
	size_t max_size; /* 0: no limit */
	uint64_t size;	 /* message bytes produced, counting dropped ones */
	bool fix_line_endings;
	bool bad_line_ending;
	bool too_big;
	bool nomem;
	bool done;
};

enum smtp_data_status { SMTP_DATA_MORE, SMTP_DATA_DONE };

void smtp_data_reader_init(struct smtp_data_reader *r, size_t max_size, bool fix_line_endings);
/*
 * Feed bytes received after the 354. Appends the dot-unstuffed message (CRLF
 * line endings, without the terminating ".\r\n") to out, and sets *consumed
 * to the number of input bytes used: all of them while MORE, and up to and
 * including the terminating LF once DONE, so pipelined commands that follow
 * stay in the input. After DONE, further calls consume nothing.
 */
enum smtp_data_status smtp_data_feed(struct smtp_data_reader *r, const char *in, size_t len,
				     struct buf *out, size_t *consumed);
/* A bare CR or LF was seen and not fixed: reject with 550 5.6.11 at the end. */
bool smtp_data_bad_line_ending(const struct smtp_data_reader *r);
/* The message exceeds max_size; bytes beyond it were not appended (552 5.3.4). */
bool smtp_data_too_big(const struct smtp_data_reader *r);
/* Appending to out failed; bytes from then on were dropped (451 4.3.0). */
bool smtp_data_nomem(const struct smtp_data_reader *r);
/* Message size in bytes after unstuffing, including bytes dropped as too big. */
uint64_t smtp_data_size(const struct smtp_data_reader *r);

/*
 * BDAT chunks are copied verbatim; this reports whether p[0..n) holds a bare
 * CR or LF. *prev_cr carries a CR that ended the previous chunk (start with
 * false); after the LAST chunk, *prev_cr == true means a final bare CR.
 */
bool smtp_has_bare_line_ending(const char *p, size_t n, bool *prev_cr);

/*
 * What strict receivers refuse in message content (RFC 5322 2.1.1, RFC 5321
 * 4.5.3.1.6) and what tern would otherwise relay as it came: NUL bytes, and
 * lines longer than SMTP_TEXT_LINE_MAX octets without their line ending.
 * Returns a mask of enum smtp_content_flaw (0: clean).
 */
#define SMTP_TEXT_LINE_MAX 998
enum smtp_content_flaw { SMTP_CONTENT_NUL = 1, SMTP_CONTENT_LONG_LINE = 2 };
int smtp_content_flaws(const char *p, size_t n);
/*
 * Append p[0..n) to out with every line longer than SMTP_TEXT_LINE_MAX
 * broken into lines that are not: before the last blank within the limit
 * where there is one (in the header section that is folding, and the field
 * unfolds to what it was), else hard at the limit (in the header section
 * with an added leading space). Line endings are kept; added breaks are
 * CRLF. 0, or -ENOMEM (out then holds a partial copy).
 */
int smtp_wrap_long_lines(const char *p, size_t n, struct buf *out);

/*
 * Append "CODE ENH text\r\n" to out; text may contain '\n' to make several
 * lines (every line but the last is "CODE-ENH ..."; CR, LF and CRLF all
 * break lines, and one trailing line break is ignored). enhanced may be NULL
 * or "" for replies that carry none. Lines longer than SMTP_REPLY_LINE_MAX
 * are wrapped. Never emits a bare CR or LF. Returns 0, -EINVAL when code is
 * not 200..599 or enhanced is not a status code of the code's class, or
 * -ENOMEM; on error nothing is appended.
 */
int smtp_format_reply(struct buf *out, int code, const char *enhanced, const char *text);

/*
 * Client side: parse one reply line (without CRLF; a trailing CR is ignored).
 * "250-SIZE 100" -> code 250, more = true, text "SIZE 100". An enhanced
 * status code of the reply's class at the start of the text ("5.1.1 User
 * unknown") goes to enhanced, and text starts after it ("User unknown");
 * otherwise enhanced is "". -EINVAL on malformed lines.
 */
struct smtp_reply_line {
	int code;
	bool more;
	char enhanced[16];
	const char *text;
	size_t text_len;
};

int smtp_parse_reply_line(const char *line, size_t len, struct smtp_reply_line *out);

/*
 * Client side: reply lines in, one reply out. What a server sends is
 * untrusted, so a reply has fixed limits, generous enough for any real
 * server: a line of at most SMTP_REPLY_LINE_LIMIT bytes with its CRLF
 * (RFC 5321 4.5.3.1 says 512; long texts and capability lists exceed it),
 * at most SMTP_REPLY_LINES_LIMIT lines (this also caps EHLO capabilities)
 * and SMTP_REPLY_SIZE_LIMIT bytes in all. A reader that buffers a partial
 * line should give up once it holds SMTP_REPLY_LINE_LIMIT bytes without LF.
 */
#define SMTP_REPLY_LINE_LIMIT 2048
#define SMTP_REPLY_LINES_LIMIT 256
#define SMTP_REPLY_SIZE_LIMIT (64 * 1024)

struct smtp_reply {
	int code;	   /* of the first line; 0 while none was fed */
	char enhanced[16]; /* of the first line, or "" */
	struct buf text;   /* each line's text after code and enhanced code, joined with '\n' */
	size_t lines;	   /* lines fed */
	size_t size;	   /* bytes fed, counting a CRLF per line */
	bool ended;	   /* DONE or ERROR was returned */
};

enum smtp_reply_status { SMTP_REPLY_MORE, SMTP_REPLY_DONE, SMTP_REPLY_ERROR };

void smtp_reply_init(struct smtp_reply *r);
void smtp_reply_deinit(struct smtp_reply *r);
/* Empty r for the next reply; memory is kept unless a large reply grew it. */
void smtp_reply_reset(struct smtp_reply *r);
/* Make dst a copy of src; -ENOMEM leaves dst's text empty. */
int smtp_reply_copy(struct smtp_reply *dst, const struct smtp_reply *src);
/*
 * Feed one line (without LF; a trailing CR is ignored) of the reply being
 * read: MORE when more lines follow, DONE when r holds the whole reply
 * (reset it before the next), ERROR with err = {451, "4.4.2", cause} when
 * the line is malformed or a limit is passed; the connection is then of no
 * further use. Lines fed after DONE or ERROR are an error. The code and
 * enhanced code are those of the first line.
 */
enum smtp_reply_status smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len,
				       struct tern_err *err);

/* What an EHLO reply offers, of the extensions the client uses. */
struct smtp_caps {
	bool pipelining;
	bool starttls;
	bool eightbitmime;
	bool smtputf8;
	bool chunking; /* RFC 3030 BDAT */
};

/*
 * Read the capabilities from an EHLO reply's text as smtp_reply assembles
 * it: the first line is the server's name (RFC 5321 ehlo-ok-rsp), each
 * further line a keyword, maybe followed by a space and parameters.
 * Keywords compare without regard to case; unknown ones are ignored.
 */
void smtp_parse_capabilities(const char *text, size_t len, struct smtp_caps *caps);

/* ---- AUTH (RFC 4954) ------------------------------------------------------------------ */

/*
 * Decode one base64 SASL response into out (NUL-terminated; cap counts the
 * NUL). -1 with err = 501 5.5.2 when it is not canonical base64 or does not
 * fit.
 */
int smtp_sasl_decode(const char *b64, size_t n, char *out, size_t cap, size_t *outlen,
		     struct tern_err *err);

/* The three fields of an AUTH PLAIN response (RFC 4616), pointing into the caller's buffer. */
struct smtp_auth_plain {
	const char *authz;
	const char *authc;
	const char *password;
};

/*
 * Decode an AUTH PLAIN response into buf: exactly three NUL-separated
 * fields, since a fourth would cut the password short. -1 with err = 501
 * 5.5.2 otherwise.
 */
int smtp_auth_plain_decode(const char *b64, size_t n, char *buf, size_t cap,
			   struct smtp_auth_plain *out, struct tern_err *err);

/* Decode one AUTH LOGIN response (a user name or a password): no NUL byte may hide in it. */
int smtp_auth_login_decode(const char *b64, size_t n, char *buf, size_t cap,
			   struct tern_err *err);

#endif
