// SPDX-License-Identifier: MIT
/*
 * Building outcome records. A record is one JSON object on one line with
 * the same field names for every type; fields that do not apply are null
 * rather than absent, so that consumers need one schema.
 */
#include "tern/logrec.h"
#include "tern/loghook.h"
#include "tern/log.h"
#include "tern/message.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A line format beside the JSON records, and the file it goes to. */
struct sink {
	struct logrec_format_config cfg;
	char *dir;
	struct logfile *lf;
};

/* What records are written with: replaced whole by a reload, read by every shard. */
struct writers {
	struct logrec_config config;
	struct logfile *json;
	struct sink *sinks;
	size_t n_sinks;
};

/*
 * Shards hold the read side while they write a record, a reload the write
 * side while it swaps `writers`: so once the swap is done no shard still
 * writes to a file the reload is about to finish. Writer-preferring: with
 * glibc's default, shards writing records back to back keep a read lock
 * held at every moment and a reload waits for ever. No thread takes the
 * read side twice, which is what this kind forbids.
 */
static pthread_rwlock_t writers_lock = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
static struct writers *writers;
static char nodeid[256];
/* Set by the main thread, read by every shard: an atomic pointer, so a new epoch can swap it. */
static const char *policy_revision;

static void
copy_config(struct logrec_config *dst, const struct logrec_config *cfg)
{
	size_t i;

	*dst = *cfg;
	dst->file.dir = xstrdup(cfg->file.dir);
	dst->meta_keys = cfg->n_meta_keys ? xcalloc(cfg->n_meta_keys, sizeof(char *)) : NULL;
	for (i = 0; i < cfg->n_meta_keys; i++)
		dst->meta_keys[i] = xstrdup(cfg->meta_keys[i]);
	dst->formats = cfg->n_formats ? xcalloc(cfg->n_formats, sizeof(*dst->formats)) : NULL;
	for (i = 0; i < cfg->n_formats; i++) {
		dst->formats[i].name = xstrdup(cfg->formats[i].name);
		acct_format_copy(&dst->formats[i].fmt, &cfg->formats[i].fmt);
	}
}

void
logrec_config_deinit(struct logrec_config *cfg)
{
	size_t i;

	for (i = 0; i < cfg->n_meta_keys; i++)
		free(cfg->meta_keys[i]);
	free(cfg->meta_keys); cfg->meta_keys = NULL;
	for (i = 0; i < cfg->n_formats; i++) {
		free(cfg->formats[i].name);
		acct_format_deinit(&cfg->formats[i].fmt);
	}
	free(cfg->formats); cfg->formats = NULL;
	free((char *)cfg->file.dir); cfg->file.dir = NULL;
	cfg->n_meta_keys = cfg->n_formats = 0;
}

/* A format's file: the JSON one's settings in its own directory, extension and header. */
static void
sink_file_config(const struct logrec_config *cfg, const struct sink *s, struct buf *header,
		 struct logfile_config *out)
{
	*out = cfg->file;
	out->dir = s->dir;
	out->ext = s->cfg.fmt.kind == ACCT_PMTA_CSV ? ".csv" : ".log";
	acct_header(&s->cfg.fmt, header);
	out->header = header->len > 0 ? header->data : NULL;
	/* Log hooks read the JSON records only. */
	out->retention.needed = NULL;
}

static void
writers_free(struct writers *w)
{
	size_t i;

	if (w == NULL)
		return;
	if (w->json)
		logfile_close(w->json);
	for (i = 0; i < w->n_sinks; i++) {
		if (w->sinks[i].lf)
			logfile_close(w->sinks[i].lf);
		free(w->sinks[i].dir);
	}
	free(w->sinks);
	logrec_config_deinit(&w->config);
	free(w);
}

/* Retention keeps every JSON segment from the oldest a log hook still reads on (names sort by time). */
static bool
needed_by_log_hooks(void *arg, const char *dir, const char *name)
{
	char oldest[256];

	if (!loghook_oldest_needed(oldest, sizeof(oldest)))
		return false;
	return strcmp(name, oldest) >= 0;
}

static struct writers *
writers_new(const struct logrec_config *cfg)
{
	struct writers *w = xcalloc(1, sizeof(*w));
	size_t i;

	copy_config(&w->config, cfg);
	w->config.file.retention.needed = needed_by_log_hooks;
	w->n_sinks = cfg->n_formats;
	w->sinks = w->n_sinks ? xcalloc(w->n_sinks, sizeof(*w->sinks)) : NULL;
	for (i = 0; i < w->n_sinks; i++) {
		w->sinks[i].cfg = w->config.formats[i];
		w->sinks[i].dir = xmalloc(strlen(cfg->file.dir) + strlen(cfg->formats[i].name) + 2);
		sprintf(w->sinks[i].dir, "%s/%s", cfg->file.dir, cfg->formats[i].name);
	}
	return w;
}

/* w's slot for the file of dir (the JSON one's or a format's), or NULL. */
static struct logfile **
slot_for(struct writers *w, const char *dir)
{
	size_t i;

	if (w == NULL)
		return NULL;
	if (strcmp(w->config.file.dir, dir) == 0)
		return &w->json;
	for (i = 0; i < w->n_sinks; i++)
		if (strcmp(w->sinks[i].dir, dir) == 0)
			return &w->sinks[i].lf;
	return NULL;
}

/* The running file writing dir in old, or NULL. Shards may be writing to it. */
static struct logfile *
find_file(struct writers *old, const char *dir)
{
	struct logfile **slot = slot_for(old, dir);

	return slot ? *slot : NULL;
}

/* Reuse the running file of dir with cfg, or open one. */
static struct logfile *
file_attach(struct writers *old, const struct logfile_config *cfg, struct tern_err *err)
{
	struct logfile *lf = find_file(old, cfg->dir);

	if (lf == NULL)
		return logfile_open(cfg, err);
	if (logfile_reconfigure(lf, cfg, err) < 0)
		log_error("logrec", "%s; it keeps its settings", err->msg);
	return lf;
}

/* Give w its files: the running ones of old (still old's too) or new ones. */
static int
writers_attach(struct writers *w, struct writers *old, struct tern_err *err)
{
	struct logfile_config fc;
	struct buf header;
	size_t i;
	int rc = 0;

	w->json = file_attach(old, &w->config.file, err);
	buf_init(&header);
	for (i = 0; i < w->n_sinks && w->json != NULL && rc == 0; i++) {
		buf_reset(&header);
		sink_file_config(&w->config, &w->sinks[i], &header, &fc);
		w->sinks[i].lf = file_attach(old, &fc, err);
		rc = w->sinks[i].lf ? 0 : -EINVAL;
	}
	buf_deinit(&header);
	return w->json == NULL ? -EINVAL : rc;
}

/* The files both from and to hold are to's alone from now on: from will not close them. */
static void
disown_shared(struct writers *from, struct writers *to)
{
	struct logfile **slot;
	size_t i;

	if (from == NULL || to == NULL)
		return;
	slot = slot_for(from, to->config.file.dir);
	if (slot && *slot == to->json)
		*slot = NULL;
	for (i = 0; i < to->n_sinks; i++) {
		slot = slot_for(from, to->sinks[i].dir);
		if (slot && *slot == to->sinks[i].lf)
			*slot = NULL;
	}
}

int
logrec_reconfigure(const struct logrec_config *cfg, struct tern_err *err)
{
	struct writers *w = writers_new(cfg), *old;

	pthread_rwlock_rdlock(&writers_lock);
	old = writers;
	pthread_rwlock_unlock(&writers_lock);
	/*
	 * Only the main thread reconfigures, so old stays the running set; shards
	 * read it until the swap, so it is changed only after (disown_shared).
	 */
	if (writers_attach(w, old, err) < 0) {
		disown_shared(w, old);
		writers_free(w);
		return -EINVAL;
	}
	pthread_rwlock_wrlock(&writers_lock);
	writers = w;
	pthread_rwlock_unlock(&writers_lock);
	disown_shared(old, w);
	writers_free(old);
	return 0;
}

int
logrec_open(const struct logrec_config *cfg, struct tern_err *err)
{
	if (gethostname(nodeid, sizeof(nodeid) - 1) < 0)
		strcpy(nodeid, "localhost");
	return logrec_reconfigure(cfg, err);
}

void
logrec_close(void)
{
	struct writers *w;

	pthread_rwlock_wrlock(&writers_lock);
	w = writers;
	writers = NULL;
	pthread_rwlock_unlock(&writers_lock);
	writers_free(w);
	logrec_set_policy_revision(NULL);
}

void
logrec_set_policy_revision(const char *rev)
{
	__atomic_store_n(&policy_revision, rev, __ATOMIC_RELEASE);
}

const char *
logrec_policy_revision(void)
{
	return __atomic_load_n(&policy_revision, __ATOMIC_ACQUIRE);
}

/* ,"key": -- records are built per message, so by appending, never through printf. */
static void
add_key(struct buf *b, const char *key)
{
	buf_append(b, ",\"", 2);
	buf_append_str(b, key);
	buf_append(b, "\":", 2);
}

static void
add_int_value(struct buf *b, long long v)
{
	if (v < 0)
		buf_append_char(b, '-');
	buf_append_uint(b, v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v);
}

static void
add_int(struct buf *b, const char *key, long long v)
{
	add_key(b, key);
	add_int_value(b, v);
}

static void
add_str(struct buf *b, const char *key, const char *v)
{
	add_key(b, key);
	if (v)
		buf_append_json_string(b, v, strlen(v));
	else
		buf_append_str(b, "null");
}

static void
add_time(struct buf *b, const char *key, double t)
{
	char stamp[32];

	util_format_time(t, stamp);
	add_str(b, key, stamp);
}

static bool
meta_wanted(const char *key)
{
	const struct logrec_config *c = writers ? &writers->config : NULL;
	size_t i;

	if (c == NULL)
		return false;
	if (c->meta_all)
		return true;
	for (i = 0; i < c->n_meta_keys; i++)
		if (strcmp(c->meta_keys[i], key) == 0)
			return true;
	return false;
}

static void
add_meta(struct buf *b, const struct message *m)
{
	size_t i;
	bool first = true;

	buf_append_str(b, ",\"meta\":{");
	for (i = 0; i < m->n_meta; i++) {
		if (!meta_wanted(m->meta[i].key))
			continue;
		if (!first)
			buf_append_char(b, ',');
		first = false;
		buf_append_json_string(b, m->meta[i].key, strlen(m->meta[i].key));
		buf_append_char(b, ':');
		buf_append(b, m->meta[i].json, m->meta[i].json_len);
	}
	buf_append_char(b, '}');
}

static void
add_response(struct buf *b, const struct logrec *r)
{
	if (r->response_code == 0 && r->response_content == NULL) {
		buf_append_str(b, ",\"response\":null");
		return;
	}
	buf_append_str(b, ",\"response\":{\"code\":");
	add_int_value(b, r->response_code);
	add_str(b, "enhanced_code", r->response_enhanced);
	add_str(b, "content", r->response_content);
	add_str(b, "command", r->response_command);
	buf_append_char(b, '}');
}

static void
add_tls(struct buf *b, const struct logrec *r)
{
	if (r->tls_version == NULL) {
		buf_append_str(b, ",\"tls\":null");
		return;
	}
	buf_append_str(b, ",\"tls\":{\"version\":");
	buf_append_json_string(b, r->tls_version, strlen(r->tls_version));
	add_str(b, "cipher", r->tls_cipher);
	if (r->tls_checked)
		buf_append_str(b, r->tls_verified ? ",\"verified\":true" : ",\"verified\":false");
	buf_append_char(b, '}');
}

static void
add_shaping(struct buf *b, const struct logrec_shaping *s)
{
	buf_append_str(b, ",\"shaping\":{\"rule\":");
	buf_append_json_string(b, s->rule, strlen(s->rule));
	add_str(b, "rule_at", s->where);
	add_str(b, "action", s->action);
	add_str(b, "scope", s->scope);
	buf_printf(b, ",\"duration\":%.3f}", s->duration);
}

bool
logrec_is_failure(const char *type)
{
	return strcmp(type, "TransientFailure") == 0 || strcmp(type, "Bounce") == 0 ||
	       strcmp(type, "Expiration") == 0 || strcmp(type, "OOB") == 0;
}

static bool
is_report(const char *type)
{
	return strcmp(type, "OOB") == 0 || strcmp(type, "Feedback") == 0;
}

static void
add_report(struct buf *b, const struct logrec_report *p)
{
	if (p == NULL) {
		buf_append_str(b, ",\"report\":null");
		return;
	}
	buf_append_str(b, ",\"report\":{\"action\":");
	if (p->action)
		buf_append_json_string(b, p->action, strlen(p->action));
	else
		buf_append_str(b, "null");
	add_str(b, "reporting_mta", p->reporting_mta);
	add_str(b, "feedback_type", p->feedback_type);
	add_str(b, "user_agent", p->user_agent);
	add_str(b, "source_ip", p->source_ip);
	add_str(b, "arrival_date", p->arrival_date);
	add_str(b, "original_message_id", p->original_message_id);
	add_str(b, "ref", p->ref);
	add_str(b, "original_id", p->original_id);
	add_str(b, "tenant", p->tenant);
	add_str(b, "campaign", p->campaign);
	buf_append_char(b, '}');
}

/* A record of a source, not of a message (WarmupPaused): the ramp's state instead of the envelope. */
static int
format_source_event(const struct logrec *r, struct buf *out)
{
	buf_append_str(out, "{\"type\":");
	buf_append_json_string(out, r->type, strlen(r->type));
	add_str(out, "egress_source", r->egress_source);
	add_str(out, "reason", r->reason);
	buf_printf(out, ",\"warmup\":{\"stage\":%d,\"cap\":%.0f,\"bounce_rate\":%.5f,"
		   "\"complaint_rate\":%.5f,\"messages\":%.0f}",
		   r->warmup.stage, r->warmup.cap, r->warmup.bounce_rate, r->warmup.complaint_rate,
		   r->warmup.messages);
	add_time(out, "timestamp", util_wallclock());
	add_str(out, "nodeid", nodeid);
	add_str(out, "policy_revision", __atomic_load_n(&policy_revision, __ATOMIC_ACQUIRE));
	return buf_append_char(out, '}');
}

int
logrec_format(const struct logrec *r, struct buf *out)
{
	const struct message *m = r->msg;
	char id[SPOOL_ID_HEX_LEN + 1];

	if (m == NULL)
		return format_source_event(r, out);
	spool_id_to_hex(&m->id, id);
	buf_append_str(out, "{\"type\":");
	buf_append_json_string(out, r->type, strlen(r->type));
	add_str(out, "id", id);
	add_str(out, "sender", m->sender);
	add_str(out, "recipient", m->recipient);
	add_str(out, "queue", r->queue);
	add_str(out, "site", r->site);
	add_str(out, "egress_pool", r->egress_pool);
	add_str(out, "egress_source", r->egress_source);
	add_str(out, "source_address", r->source_address);
	add_str(out, "peer_address", r->peer_address);
	add_str(out, "listener", r->listener);
	add_response(out, r);
	if (logrec_is_failure(r->type))
		add_str(out, "bounce_classification", r->bounce_classification);
	if (r->shaping)
		add_shaping(out, r->shaping);
	if (is_report(r->type))
		add_report(out, r->report);
	if (r->suppression != NULL)
		buf_printf(out, ",\"suppression\":%s", r->suppression);
	add_int(out, "num_attempts", r->num_attempts);
	add_int(out, "size", (long long)message_size(m));
	add_tls(out, r);
	add_time(out, "timestamp", util_wallclock());
	add_time(out, "created", m->created);
	add_meta(out, m);
	add_str(out, "nodeid", nodeid);
	add_str(out, "policy_revision", __atomic_load_n(&policy_revision, __ATOMIC_ACQUIRE));
	return buf_append_char(out, '}');
}

static void
write_sinks(const struct writers *w, const struct logrec *r, struct buf *line)
{
	struct acct_context ctx = {.now = util_wallclock(), .nodeid = nodeid};
	size_t i;

	ctx.policy_revision = __atomic_load_n(&policy_revision, __ATOMIC_ACQUIRE);
	for (i = 0; i < w->n_sinks; i++) {
		buf_reset(line);
		if (acct_format_line(&w->sinks[i].cfg.fmt, r, &ctx, line) == 0 && line->len > 0)
			logfile_append(w->sinks[i].lf, line->data, line->len);
	}
}

void
logrec_write(const struct logrec *r)
{
	struct buf line;

	pthread_rwlock_rdlock(&writers_lock);
	if (writers != NULL) {
		buf_init(&line);
		if (logrec_format(r, &line) == 0)
			logfile_append(writers->json, line.data, line.len);
		write_sinks(writers, r, &line);
		buf_deinit(&line);
	}
	pthread_rwlock_unlock(&writers_lock);
}

void
logrec_commit(void)
{
	size_t i;

	pthread_rwlock_rdlock(&writers_lock);
	if (writers != NULL) {
		logfile_flush(writers->json);
		for (i = 0; i < writers->n_sinks; i++)
			logfile_flush(writers->sinks[i].lf);
	}
	pthread_rwlock_unlock(&writers_lock);
}

bool
logrec_dir(char *out, size_t n)
{
	bool open;

	pthread_rwlock_rdlock(&writers_lock);
	open = writers != NULL;
	if (open)
		snprintf(out, n, "%s", writers->config.file.dir);
	pthread_rwlock_unlock(&writers_lock);
	return open;
}

uint64_t
logrec_written(void)
{
	struct logfile_stats st = {0};

	pthread_rwlock_rdlock(&writers_lock);
	if (writers != NULL && writers->json != NULL)
		logfile_stats(writers->json, &st);
	pthread_rwlock_unlock(&writers_lock);
	return st.records;
}
