/* SPDX-License-Identifier: MIT */
/*
 * Outcome records: Reception, Delivery, TransientFailure, Bounce,
 * Expiration, AdminBounce, Feedback, Suppressed, ShapingAction, and WarmupPaused (of a
 * source). This is the one place that
 * builds them, so every record type shares one schema and one set of field
 * names; logfile.c writes them. Thread-safe.
 */
#ifndef TERN_LOGREC_H
#define TERN_LOGREC_H

#include <stddef.h>

#include "tern/acct_csv.h"
#include "tern/logfile.h"
#include "tern/util.h"

struct message;

/*
 * OOB and Feedback records: what a received report says about the message
 * it reports on (written as "report"; NULL fields as null).
 */
struct logrec_report {
	const char *action;	   /* OOB: "failed" or "delayed" */
	const char *reporting_mta; /* OOB */
	const char *feedback_type; /* Feedback: "abuse", "opt-out", ... */
	const char *user_agent;
	const char *source_ip;
	const char *arrival_date;
	const char *original_message_id; /* the reported message's Message-ID */
	/* The X-Tern-Ref found: "verified", "invalid" (forged, or another secret), "unchecked"
	 * (no secret configured), or NULL when the report had none. */
	const char *ref;
	/* From a verified ref only: tern's id of the original, its tenant and campaign. */
	const char *original_id;
	const char *tenant;
	const char *campaign;
};

/* Everything a record can carry beyond the message itself; NULL/0 fields are written as null. */
struct logrec {
	const char *type; /* "Reception", "Delivery", ... */
	const struct message *msg;
	const char *queue;
	const char *site;
	const char *egress_pool;
	const char *egress_source;
	const char *source_address;
	const char *peer_address;
	const char *listener;
	int response_code;
	const char *response_enhanced;
	const char *response_content;
	const char *response_command;
	int num_attempts;
	const char *tls_version;
	const char *tls_cipher;
	/* Outbound only: the peer's certificate was checked, and whether it verified. */
	bool tls_checked;
	bool tls_verified;
	/* TransientFailure, Bounce, Expiration: the reply's bounce category (null when unknown). */
	const char *bounce_classification;
	/* ShapingAction: what fired and what it did (written as "shaping"). */
	const struct logrec_shaping *shaping;
	/* WarmupPaused, a record of a source rather than a message (msg NULL): why, and the ramp. */
	const char *reason;
	struct {
		int stage;
		double cap, bounce_rate, complaint_rate, messages;
	} warmup;
	/* OOB, Feedback: the report (see above). */
	const struct logrec_report *report;
	/* Suppressed: the suppression entry that matched, as a JSON object (suppress_entry_json). */
	const char *suppression;
};

/* A ShapingAction record's "shaping" object. */
struct logrec_shaping {
	const char *rule;   /* the rule's patterns */
	const char *where;  /* file:line of the rule */
	const char *action; /* suspend, suspend_source, suspend_tenant, suspend_campaign, bounce, set */
	const char *scope;  /* what it holds: "source->site", "source->*.suffix", "tenant:T@site" */
	double duration;    /* seconds */
};

/*
 * Another line format written beside the JSON records, in <dir>/<name>/
 * (".csv" segments with a header for pmta_csv, ".log" for a template), with
 * the JSON segments' rotation, compression, sync and retention.
 */
struct logrec_format_config {
	char *name;
	struct acct_format fmt;
};

struct logrec_config {
	struct logfile_config file;
	/* Meta keys copied into records; with meta_all every key is copied. */
	char **meta_keys;
	size_t n_meta_keys;
	bool meta_all;
	struct logrec_format_config *formats;
	size_t n_formats;
};

/* Start writing records (daemon start-up); -errno with err. cfg is copied. */
int logrec_open(const struct logrec_config *cfg, struct tern_err *err);
/*
 * Write with cfg from now on (a policy reload): files kept are reconfigured
 * (logfile_reconfigure), files new are opened first (an error leaves the
 * running configuration as it was: -EINVAL with err), files gone are finished
 * once no shard writes to them. Every record goes to the old or the new set,
 * never both, never neither.
 */
int logrec_reconfigure(const struct logrec_config *cfg, struct tern_err *err);
/* Free what a logrec_config holds (not cfg itself). */
void logrec_config_deinit(struct logrec_config *cfg);
void logrec_close(void);
/*
 * The revision of the policy that decides outcomes from now on, written as
 * "policy_revision" in every record (null until set). Records copy the
 * pointer: rev must stay valid until it is replaced and logrec_close().
 */
void logrec_set_policy_revision(const char *rev);
/* The revision set above, or NULL (metrics and the status page show it). */
const char *logrec_policy_revision(void);
/* Whether records of this type carry bounce_classification (OOB records do too). */
bool logrec_is_failure(const char *type);

/* Build r's JSON line into out (for tests and the HTTP API). */
int logrec_format(const struct logrec *r, struct buf *out);
/* Build and write r; a no-op when no local logs are configured. */
void logrec_write(const struct logrec *r);
/*
 * Hand every record written so far to the kernel (and to the disk with
 * configure_local_logs{ sync = true }). Callers commit before the state
 * change a record describes becomes visible: a Reception record before the
 * 250, a final record before the spool removal. Thread-safe.
 */
void logrec_commit(void);

/* For readers of the segments (log hooks): the log directory into out; false before logrec_open. */
bool logrec_dir(char *out, size_t n);
/* Records accepted for writing since logrec_open. Thread-safe. */
uint64_t logrec_written(void);

#endif
