// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the SMTP command and reply parsers and the reply
 * formatter: the input is parsed as a command line (with and without an
 * SMTPUTF8 transaction) and as a reply line, and formatted as reply text;
 * every result is checked against the promises in smtp_proto.h.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tern/smtp_proto.h"

static void
check_command(const char *in, size_t size, bool utf8)
{
	struct smtp_cmd cmd;
	struct tern_err err;
	unsigned char c;
	size_t i;

	tern_err_clear(&err);
	if (smtp_parse_command_utf8(in, size, utf8, &cmd, &err) < 0) {
		if (err.code != 500 && err.code != 501 && err.code != 553 && err.code != 555)
			abort();
		if (err.enhanced[0] != '5' || err.msg[0] == '\0')
			abort();
		return;
	}
	if (cmd.verb == SMTP_VERB_UNKNOWN || cmd.arg < in || cmd.arg + cmd.arg_len > in + size)
		abort();
	if (strlen(cmd.addr) > SMTP_ADDR_MAX || strnlen(cmd.domain, sizeof(cmd.domain)) == 256)
		abort();
	/* spaces only inside a quoted local part; 8-bit only with SMTPUTF8 */
	for (i = 0; cmd.addr[i]; i++) {
		c = (unsigned char)cmd.addr[i];
		if (c < 0x20 || c == 0x7f || (c == ' ' && cmd.addr[0] != '"'))
			abort();
		if (c >= 0x80 && !(cmd.verb == SMTP_VERB_MAIL ? cmd.smtputf8 : utf8))
			abort();
	}
	if (cmd.verb == SMTP_VERB_RCPT && cmd.addr[0] == '\0')
		abort();
	for (i = 0; cmd.mechanism[i]; i++)
		if (cmd.mechanism[i] >= 'a' && cmd.mechanism[i] <= 'z')
			abort();
	if (strnlen(cmd.initial_response, sizeof(cmd.initial_response)) ==
	    sizeof(cmd.initial_response))
		abort();
}

static void
check_reply_line(const char *in, size_t size)
{
	struct smtp_reply_line rl;

	if (smtp_parse_reply_line(in, size, &rl) < 0)
		return;
	if (rl.code < 200 || rl.code > 599 || rl.text < in || rl.text + rl.text_len > in + size)
		abort();
	if (rl.enhanced[0] != '\0' && rl.enhanced[0] != '0' + rl.code / 100)
		abort();
}

/* Each line is CODE-2.0.0 piece CRLF; the pieces hold every non-break byte. */
static void
check_format(const char *text)
{
	struct smtp_reply_line rl;
	struct buf b;
	const char *p, *eol;
	size_t kept = 0, want = 0, i;

	buf_init(&b);
	if (smtp_format_reply(&b, 250, "2.0.0", text) < 0)
		abort();
	for (p = b.data; p < b.data + b.len; p = eol + 1) {
		eol = memchr(p, '\n', (size_t)(b.data + b.len - p));
		if (eol == NULL || eol == p || eol[-1] != '\r' || eol + 1 - p > SMTP_REPLY_LINE_MAX)
			abort();
		if (memchr(p, '\r', (size_t)(eol - 1 - p)) != NULL)
			abort();
		if (smtp_parse_reply_line(p, (size_t)(eol - 1 - p), &rl) < 0 || rl.code != 250 ||
		    strcmp(rl.enhanced, "2.0.0") != 0 || rl.more != (eol + 1 < b.data + b.len))
			abort();
		kept += rl.text_len;
	}
	for (i = 0; text[i]; i++)
		want += text[i] != '\r' && text[i] != '\n';
	if (kept != want)
		abort();
	buf_deinit(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	char *text;

	check_command(in, size, false);
	check_command(in, size, true);
	check_reply_line(in, size);
	text = malloc(size + 1);
	if (text == NULL)
		return 0;
	memcpy(text, in, size);
	text[size] = '\0';
	check_format(text);
	free(text);
	return 0;
}
