/* SPDX-License-Identifier: MIT */
/*
 * Feedback-loop reports: RFC 5965 (ARF: multipart/report with a
 * message/feedback-report part, as Yahoo's CFL, AOL, Comcast and others
 * send them), and the two common forms without that part: Microsoft's JMRP
 * (the complained-about message enclosed, X-HmXmrOriginalRecipient naming
 * the complainer) and Apple's one-click unsubscribe (X-Apple-Unsubscribe).
 * Pure (fuzzed by fuzz_arf).
 */
#ifndef TERN_ARF_H
#define TERN_ARF_H

#include <stddef.h>

#include <gmime/gmime.h>

struct arf_report {
	char feedback_type[32]; /* "abuse", "auth-failure", "opt-out", ... */
	char user_agent[128];
	char original_rcpt[321]; /* the complaining recipient, or "" */
	char original_mail_from[321];
	char original_message_id[256]; /* Message-ID of the reported message, or "" */
	char source_ip[64];
	char arrival_date[64];
	char reported_domain[256];
	char ref[512]; /* X-Tern-Ref of the reported message, or "" */
};

/* Read data as a feedback report: 1 with out filled, 0 when it is not one. */
int arf_parse(const char *data, size_t len, struct arf_report *out);
/* The same over a message already parsed (mime_parse_message). */
int arf_read(GMimeMessage *m, struct arf_report *out);

#endif
