/* SPDX-License-Identifier: MIT */
/*
 * The suppression list: addresses that must not be mailed again, per tenant
 * (or "*" for every tenant), each with why (reason, bounce category), when,
 * the record that caused it and an optional expiry. It lives in the spool's
 * "suppression" column family, so it survives restarts and moves with the
 * spool; the daemon and the offline CLI use the same calls.
 *
 * Lookups are on the path of every recipient: an exact in-memory index of
 * the listed keys, loaded from the column family by a thread at open and
 * kept up to date by every add and remove, answers them without touching
 * RocksDB. Until that thread is done, lookups go to RocksDB. Which calls
 * still read the spool: core/suppress.c.
 *
 * Addresses are compared in lower case. A tenant is any string; "" is the
 * scope of messages without one, and "*" matches every tenant. All calls are
 * thread-safe once suppress_open has returned.
 *
 * Adding one, e.g. for a complaint:
 *
 *	struct suppress_entry e;
 *	struct tern_err err;
 *
 *	if (suppress_entry_init(&e, tenant, recipient, &err) == 0) {
 *		snprintf(e.reason, sizeof(e.reason), "complaint: %s", feedback_type);
 *		spool_id_to_hex(&original_id, e.source);
 *		rc = suppress_add(&e, &err);
 *	}
 */
#ifndef TERN_SUPPRESS_H
#define TERN_SUPPRESS_H

#include <stdbool.h>
#include <stddef.h>

#include "tern/util.h"

struct spool;

#define SUPPRESS_ALL_TENANTS "*"
#define SUPPRESS_TENANT_MAX 128
#define SUPPRESS_ADDR_MAX 320
#define SUPPRESS_TEXT_MAX 512

struct suppress_entry {
	char tenant[SUPPRESS_TENANT_MAX];
	char address[SUPPRESS_ADDR_MAX]; /* lower case */
	char reason[SUPPRESS_TEXT_MAX];	 /* free text: the reply, "complaint", "manual" */
	char category[64];		 /* a bounce category, or "" */
	char source[64];		 /* id of the record that caused it, or "" */
	double time;			 /* epoch seconds when added */
	double expires;			 /* epoch seconds; 0: never */
};

/*
 * Use the suppression list of sp until suppress_close. With index, a
 * thread loads the in-memory index (the daemon); without, every lookup
 * reads RocksDB (the CLI, short-lived tools).
 */
int suppress_open(struct spool *sp, bool index, struct tern_err *err);
void suppress_close(void);
bool suppress_is_open(void);

/*
 * Fill e for tenant and address (lower-cased, checked), with time now,
 * no expiry and empty texts. -EINVAL with err for a tenant or address that
 * cannot be listed (empty, too long, no '@', control characters).
 */
int suppress_entry_init(struct suppress_entry *e, const char *tenant, const char *address,
			struct tern_err *err);

/* Add or replace e's (tenant, address). Written unsynced: a crash may forget the last adds. */
int suppress_add(const struct suppress_entry *e, struct tern_err *err);
/* Remove (tenant, address): 0 when removed, -ENOENT when it was not listed. */
int suppress_remove(const char *tenant, const char *address, struct tern_err *err);
/*
 * Whether address is suppressed for tenant: its own entry, else the "*"
 * one. 1 (and *out filled when out is not NULL), 0 when not (or only by an
 * expired entry), negative when the list cannot be read (callers let the
 * mail go: a broken list must not stop mail). With the index loaded, the
 * answer comes from memory unless out is given and the address is listed
 * (its details are read from the spool) or its entry has an expiry.
 */
int suppress_check(const char *tenant, const char *address, struct suppress_entry *out);

/*
 * Bulk writes (tern suppress import): entries collected and written every
 * few thousand rows without sync, the last write synced.
 */
struct suppress_batch;
struct suppress_batch *suppress_batch_new(void);
int suppress_batch_add(struct suppress_batch *b, const struct suppress_entry *e,
		       struct tern_err *err);
/* Write what is left, synced; then free. Returns the first error of any write. */
int suppress_batch_finish(struct suppress_batch *b, struct tern_err *err);

/* Visit entries (of one tenant when tenant is not NULL); a negative return stops. */
typedef int (*suppress_visit_fn)(void *arg, const struct suppress_entry *e);
int suppress_list(const char *tenant, suppress_visit_fn visit, void *arg, struct tern_err *err);

/* The entry as one JSON object (API answers, tern suppress list --json). */
int suppress_entry_json(const struct suppress_entry *e, struct buf *out);

/*
 * What the engine does with a suppressed recipient, set by policy
 * (tern.suppress.configure): refuse it (550 5.7.1 with text) where the
 * protocol still can (RCPT, an injection's recipient), or accept it and
 * drop it with a Suppressed record. A message whose tenant is only known
 * after DATA is always dropped, never refused.
 */
enum suppress_action { SUPPRESS_REJECT, SUPPRESS_DROP };
void suppress_set_action(enum suppress_action a, const char *reject_text);
enum suppress_action suppress_action(void);
/* The refusal's text (copied into out). */
void suppress_reject_text(char *out, size_t n);

/*
 * Fleet mode (fleet_suppress.h). The observer hears every local change, on
 * the writer's thread: suppress_add and suppress_remove once written (removed:
 * e holds only tenant and address), suppress_batch_add once collected. suppress_apply_*
 * write a change heard from the fleet, as suppress_add/remove do, without
 * telling the observer (so that it is not published again). Keys of the
 * column family that start with SUPPRESS_KEY_RESERVED are not entries (the
 * fleet's bookkeeping): listings skip them.
 */
#define SUPPRESS_KEY_RESERVED '\x01'
typedef void (*suppress_observer_fn)(void *arg, const struct suppress_entry *e, bool removed);
void suppress_set_observer(suppress_observer_fn fn, void *arg);
int suppress_apply_add(const struct suppress_entry *e, struct tern_err *err);
int suppress_apply_remove(const char *tenant, const char *address, struct tern_err *err);

/* Lookups since open, and the index (tests, bench). */
struct suppress_stats {
	unsigned long long checks;
	unsigned long long db_reads; /* scopes read from the spool */
	bool index_ready;
	unsigned long long index_entries;
	unsigned long long index_bytes; /* of its table (pages are touched as they fill) */
};
void suppress_stats(struct suppress_stats *out);

#endif
