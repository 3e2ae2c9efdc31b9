/* SPDX-License-Identifier: MIT */
/*
 * Reports received for the domains that get_listener_domain marks
 * { oob = true } (bounce addresses) or { arf = true } (feedback-loop
 * addresses): such a message is read instead of relayed. A bounce
 * (core/oob.c) gives an OOB record per failed recipient, with the reply's
 * bounce category; a feedback report (core/arf.c) gives a Feedback record
 * and the policy event message_complained(record). Each is linked to the
 * message it reports on by the X-Tern-Ref in the returned copy, when its
 * mac verifies; a forged or foreign one is logged and ignored.
 */
#ifndef TERN_REPORT_INTAKE_H
#define TERN_REPORT_INTAKE_H

struct message;
struct reception_origin;
struct shard;

/* What get_listener_domain marked a recipient's domain for. */
#define REPORT_INTAKE_OOB 1u
#define REPORT_INTAKE_ARF 2u

/*
 * Read msg (received on shard for a domain marked flags) and write its
 * records; a message that is neither a bounce nor a report is logged and
 * dropped. The records are handed to the kernel before this returns, so
 * the 250 that follows never precedes them. msg stays the caller's.
 */
void report_intake(struct shard *shard, const struct message *msg, unsigned flags,
		   const struct reception_origin *origin);

#endif
