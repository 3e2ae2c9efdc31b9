/* SPDX-License-Identifier: MIT */
/*
 * Asynchronous bounces: a received message that says an earlier one could
 * not be delivered. RFC 3464 delivery status notifications are read from
 * their message/delivery-status part; the formats that large providers and
 * older mailers send instead (Exim's and qmail's text, Gmail's, Yahoo's...)
 * are recognised by their headers and read from their text: the failed
 * recipient and the remote server's reply. Pure (fuzzed by fuzz_dsn).
 */
#ifndef TERN_OOB_H
#define TERN_OOB_H

#include <stdbool.h>
#include <stddef.h>

#include <gmime/gmime.h>

#define OOB_ADDR_MAX 321
#define OOB_TEXT_MAX 1024
#define OOB_MAX_RCPTS 16

struct oob_recipient {
	char address[OOB_ADDR_MAX];    /* Final-Recipient, or the address the text names */
	char original[OOB_ADDR_MAX];   /* Original-Recipient, or "" */
	char action[16];	       /* "failed" or "delayed" */
	char status[16];	       /* "5.1.1", or "" */
	int code;		       /* the reply code in the diagnostic, or 0 */
	char diagnostic[OOB_TEXT_MAX]; /* the remote reply without its "smtp;" type, or "" */
	char remote_mta[256];
};

struct oob_report {
	bool standard; /* read from a message/delivery-status part */
	char reporting_mta[256];
	char original_message_id[256]; /* Message-ID of the returned message, or "" */
	char ref[512];		       /* its X-Tern-Ref, or "" */
	struct oob_recipient rcpts[OOB_MAX_RCPTS];
	size_t n_rcpts;
};

/*
 * Read data as a bounce: 1 with out filled (at least one failed recipient),
 * 0 when it is not a bounce (or reports no failure, e.g. a delay notice).
 */
int oob_parse(const char *data, size_t len, struct oob_report *out);
/* The same over m, already parsed from data (mime_parse_message). */
int oob_read(GMimeMessage *m, const char *data, size_t len, struct oob_report *out);

#endif
