// SPDX-License-Identifier: MIT
/*
 * Building outcome records. A record is one JSON object on one line with
 * the same field names for every type; fields that do not apply are null
 * rather than absent, so that consumers need one schema.
 */
#include "tern/logrec.h"
#include "tern/message.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct logfile *logfile;
static struct logrec_config config;
static char nodeid[256];
/* Set by the main thread, read by every shard: an atomic pointer, so a new epoch can swap it. */
static const char *policy_revision;

static void
copy_config(const struct logrec_config *cfg)
{
	size_t i;

	config = *cfg;
	config.file.dir = xstrdup(cfg->file.dir);
	config.meta_keys = cfg->n_meta_keys ? xcalloc(cfg->n_meta_keys, sizeof(char *)) : NULL;
	for (i = 0; i < cfg->n_meta_keys; i++)
		config.meta_keys[i] = xstrdup(cfg->meta_keys[i]);
}

int
logrec_open(const struct logrec_config *cfg, struct tern_err *err)
{
	copy_config(cfg);
	if (gethostname(nodeid, sizeof(nodeid) - 1) < 0)
		strcpy(nodeid, "localhost");
	logfile = logfile_open(&config.file, err);
	return logfile ? 0 : -1;
}

void
logrec_close(void)
{
	size_t i;

	if (logfile)
		logfile_close(logfile);
	logfile = NULL;
	for (i = 0; i < config.n_meta_keys; i++)
		free(config.meta_keys[i]);
	free(config.meta_keys);
	free((char *)config.file.dir);
	memset(&config, 0, sizeof(config));
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

static void
add_str(struct buf *b, const char *key, const char *v)
{
	buf_printf(b, ",\"%s\":", key);
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
	size_t i;

	if (config.meta_all)
		return true;
	for (i = 0; i < config.n_meta_keys; i++)
		if (strcmp(config.meta_keys[i], key) == 0)
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
	buf_printf(b, ",\"response\":{\"code\":%d", r->response_code);
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

bool
logrec_is_failure(const char *type)
{
	return strcmp(type, "TransientFailure") == 0 || strcmp(type, "Bounce") == 0 ||
	       strcmp(type, "Expiration") == 0;
}

int
logrec_format(const struct logrec *r, struct buf *out)
{
	const struct message *m = r->msg;
	char id[SPOOL_ID_HEX_LEN + 1];

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
	buf_printf(out, ",\"num_attempts\":%d,\"size\":%zu", r->num_attempts, message_size(m));
	add_tls(out, r);
	add_time(out, "timestamp", util_wallclock());
	add_time(out, "created", m->created);
	add_meta(out, m);
	add_str(out, "nodeid", nodeid);
	add_str(out, "policy_revision", __atomic_load_n(&policy_revision, __ATOMIC_ACQUIRE));
	return buf_append_char(out, '}');
}

void
logrec_write(const struct logrec *r)
{
	struct buf line;

	if (logfile == NULL)
		return;
	buf_init(&line);
	if (logrec_format(r, &line) == 0)
		logfile_append(logfile, line.data, line.len);
	buf_deinit(&line);
}

void
logrec_commit(void)
{
	if (logfile != NULL)
		logfile_flush(logfile);
}

const char *
logrec_dir(void)
{
	return logfile != NULL ? config.file.dir : NULL;
}

uint64_t
logrec_written(void)
{
	struct logfile_stats st;

	if (logfile == NULL)
		return 0;
	logfile_stats(logfile, &st);
	return st.records;
}
