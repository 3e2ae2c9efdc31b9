/* SPDX-License-Identifier: MIT */
/*
 * Outcome records: Reception, Delivery, TransientFailure, Bounce,
 * Expiration, AdminBounce, Feedback, Suppressed. This is the one place that
 * builds them, so every record type shares one schema and one set of field
 * names; logfile.c writes them. Thread-safe.
 */
#ifndef TERN_LOGREC_H
#define TERN_LOGREC_H

#include <stddef.h>

#include "tern/logfile.h"
#include "tern/util.h"

struct message;

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
};

struct logrec_config {
	struct logfile_config file;
	/* Meta keys copied into records; with meta_all every key is copied. */
	char **meta_keys;
	size_t n_meta_keys;
	bool meta_all;
};

/* Start writing records (daemon start-up); -errno with err. */
int logrec_open(const struct logrec_config *cfg, struct tern_err *err);
void logrec_close(void);
/*
 * The revision of the policy that decides outcomes from now on, written as
 * "policy_revision" in every record (null until set). Records copy the
 * pointer: rev must stay valid until it is replaced and logrec_close().
 */
void logrec_set_policy_revision(const char *rev);
/* The revision set above, or NULL (metrics and the status page show it). */
const char *logrec_policy_revision(void);
/* Whether records of this type carry bounce_classification. */
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

/* For readers of the segments (log hooks): the log directory, or NULL before logrec_open. */
const char *logrec_dir(void);
/* Records accepted for writing since logrec_open. Thread-safe. */
uint64_t logrec_written(void);

#endif
