// SPDX-License-Identifier: MIT
/*
 * Recovery: at start-up each spool partition is read once, a merge-join of
 * its meta and data column families in key (arrival) order. A message with
 * both halves goes to the visitor; half a message, a key that is no message
 * id, or a message the visitor rejects moves to the quarantine column family
 * (and stays where it is on a read-only spool), so that one bad entry never
 * keeps the rest from loading.
 */
#include "tern/spool_scan.h"
#include "tern/log.h"
#include "tern/notify.h"

#include <errno.h>
#include <string.h>

struct spool_scan {
	const struct spool_scan_handles *h;
	spool_visit_fn visit;
	void *arg;
	rocksdb_iterator_t *it[2]; /* meta, data: the sides of the merge-join */
	uint64_t seen;
	uint64_t quarantined;
	double start;
	double next_report;
	struct tern_err *err;
};

enum { SCAN_META, SCAN_DATA };

/* Progress every half second; each report grants the manager's start timeout this much more. */
#define SCAN_REPORT_EVERY 0.5
#define SCAN_EXTEND_USEC 30000000ULL

static const char *const scan_prefix[2] = {"meta:", "data:"};

static rocksdb_column_family_handle_t *
scan_cf(const struct spool_scan *s, int side)
{
	return side == SCAN_META ? s->h->meta : s->h->data;
}

/* A key for the log, as hex: a message id, or as much of a stray key as one holds. */
static void
scan_key_hex(const char *key, size_t len, char out[SPOOL_ID_HEX_LEN + 1])
{
	struct spool_id id = {{0}};
	size_t n = len < SPOOL_ID_LEN ? len : SPOOL_ID_LEN;

	memcpy(id.b, key, n);
	spool_id_to_hex(&id, out);
	out[2 * n] = '\0';
}

/* err from RocksDB's message, which is freed. */
static int
scan_failed(struct tern_err *err, const char *what, char *rerr)
{
	tern_err_set(err, 451, "4.3.0", "spool %s failed: %s", what, rerr);
	rocksdb_free(rerr);
	return -EIO;
}

/* Copy one side's current entry into quarantine under "meta:"/"data:" + key, then delete it. */
static void
scan_quarantine_side(struct spool_scan *s, rocksdb_writebatch_t *wb, int side)
{
	rocksdb_iterator_t *it = s->it[side];
	size_t klen, vlen;
	const char *key = rocksdb_iter_key(it, &klen);
	const char *val = rocksdb_iter_value(it, &vlen);
	const char *parts[2] = {scan_prefix[side], key};
	size_t sizes[2] = {strlen(scan_prefix[side]), klen};

	rocksdb_writebatch_putv_cf(wb, s->h->quarantine, 2, parts, sizes, 1, &val, &vlen);
	rocksdb_writebatch_delete_cf(wb, scan_cf(s, side), key, klen);
}

/* Move the current entry of the given sides (SCAN_META and/or SCAN_DATA) to quarantine. */
static int
scan_quarantine(struct spool_scan *s, bool meta, bool data, const char *why)
{
	rocksdb_iterator_t *it = s->it[meta ? SCAN_META : SCAN_DATA];
	char hex[SPOOL_ID_HEX_LEN + 1];
	rocksdb_writebatch_t *wb;
	char *rerr = NULL;
	size_t klen;
	const char *key = rocksdb_iter_key(it, &klen);

	scan_key_hex(key, klen, hex);
	s->quarantined++;
	if (s->h->read_only) {
		log_warn("spool", "%s: %s (read-only: left in place)", hex, why);
		return 0;
	}
	log_warn("spool", "%s: %s, moved to quarantine", hex, why);
	wb = rocksdb_writebatch_create();
	if (meta)
		scan_quarantine_side(s, wb, SCAN_META);
	if (data)
		scan_quarantine_side(s, wb, SCAN_DATA);
	rocksdb_write(s->h->db, s->h->wo, wb, &rerr);
	rocksdb_writebatch_destroy(wb);
	return rerr ? scan_failed(s->err, "quarantine", rerr) : 0;
}

static int
scan_visit(struct spool_scan *s)
{
	size_t klen, mlen, dlen;
	const char *key = rocksdb_iter_key(s->it[SCAN_META], &klen);
	const char *meta = rocksdb_iter_value(s->it[SCAN_META], &mlen);
	struct spool_id id;
	int rc;

	if (klen != SPOOL_ID_LEN)
		return scan_quarantine(s, true, true, "key is not a message id");
	rocksdb_iter_value(s->it[SCAN_DATA], &dlen);
	memcpy(id.b, key, SPOOL_ID_LEN);
	s->seen++;
	rc = s->visit(s->arg, &id, meta, mlen, dlen);
	if (rc == SPOOL_SCAN_QUARANTINE)
		return scan_quarantine(s, true, true, "rejected by the loader");
	return rc;
}

static int
scan_compare(struct spool_scan *s)
{
	size_t mlen, dlen;
	const char *mk, *dk;
	int c;

	if (!rocksdb_iter_valid(s->it[SCAN_META]))
		return 1;
	if (!rocksdb_iter_valid(s->it[SCAN_DATA]))
		return -1;
	mk = rocksdb_iter_key(s->it[SCAN_META], &mlen);
	dk = rocksdb_iter_key(s->it[SCAN_DATA], &dlen);
	c = memcmp(mk, dk, mlen < dlen ? mlen : dlen);
	if (c == 0)
		c = mlen < dlen ? -1 : mlen > dlen;
	return c;
}

/* One merge-join step; the caller checks that at least one side is valid. */
static int
scan_step(struct spool_scan *s)
{
	int c = scan_compare(s);
	int rc;

	if (c < 0) {
		rc = scan_quarantine(s, true, false, "meta without data");
		rocksdb_iter_next(s->it[SCAN_META]);
	} else if (c > 0) {
		rc = scan_quarantine(s, false, true, "data without meta");
		rocksdb_iter_next(s->it[SCAN_DATA]);
	} else {
		rc = scan_visit(s);
		rocksdb_iter_next(s->it[SCAN_META]);
		rocksdb_iter_next(s->it[SCAN_DATA]);
	}
	return rc;
}

/*
 * A big spool takes a while to scan: say how far it got, on stderr and to the
 * service manager, which also grants more start-up time while it moves.
 */
static void
scan_progress(struct spool_scan *s)
{
	double now = util_now();

	if (now < s->next_report)
		return;
	log_info("spool", "recovery: %llu messages so far", (unsigned long long)s->seen);
	notify_status_extend(SCAN_EXTEND_USEC, "recovering: %llu messages",
			     (unsigned long long)s->seen);
	s->next_report = now + SCAN_REPORT_EVERY;
}

static int
scan_iter_error(struct spool_scan *s)
{
	char *rerr = NULL;
	int i;

	for (i = 0; i < 2 && rerr == NULL; i++)
		rocksdb_iter_get_error(s->it[i], &rerr);
	return rerr ? scan_failed(s->err, "scan", rerr) : 0;
}

static int
scan_run(struct spool_scan *s)
{
	int rc = 0;

	rocksdb_iter_seek_to_first(s->it[SCAN_META]);
	rocksdb_iter_seek_to_first(s->it[SCAN_DATA]);
	while (rc == 0 &&
	       (rocksdb_iter_valid(s->it[SCAN_META]) || rocksdb_iter_valid(s->it[SCAN_DATA]))) {
		rc = scan_step(s);
		scan_progress(s);
	}
	return rc < 0 ? rc : scan_iter_error(s);
}

int
spool_scan_partition(const struct spool_scan_handles *h, spool_visit_fn visit, void *arg,
		     struct tern_err *err)
{
	rocksdb_column_family_handle_t *cfs[2] = {h->meta, h->data};
	struct spool_scan s = {.h = h, .visit = visit, .arg = arg, .err = err};
	char *rerr = NULL;
	double secs;
	int rc;

	/* Iterators created together see one consistent snapshot of both CFs. */
	rocksdb_create_iterators(h->db, h->ro, cfs, s.it, 2, &rerr);
	if (rerr != NULL)
		return scan_failed(err, "scan", rerr);
	s.start = util_now();
	s.next_report = s.start + SCAN_REPORT_EVERY;
	/* The manager hears at once that recovery began; stderr only once it takes a while. */
	notify_status_extend(SCAN_EXTEND_USEC, "recovering: 0 messages");
	rc = scan_run(&s);
	rocksdb_iter_destroy(s.it[0]);
	rocksdb_iter_destroy(s.it[1]);
	secs = util_now() - s.start;
	log_info("spool", "recovery: %llu messages, %llu %s, in %.3fs (%.0f messages/s)",
		 (unsigned long long)s.seen, (unsigned long long)s.quarantined,
		 h->read_only ? "unloadable (read-only: left in place)" : "quarantined", secs,
		 secs > 0 ? (double)s.seen / secs : 0.0);
	return rc;
}
