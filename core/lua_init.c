// SPDX-License-Identifier: MIT
/*
 * Start-up bindings. They may only run in init on shard 0 (the only state
 * whose init runs), before any shard thread starts, which is what makes the
 * daemon's service list safe to fill without a lock.
 */
#include "tern/lua_init.h"
#include "tern/acct_csv.h"
#include "tern/admin.h"
#include "tern/path_state.h"
#include "tern/daemon.h"
#include "tern/http_server.h"
#include "tern/logrec.h"
#include "tern/lua_options.h"
#include "tern/queue.h"
#include "tern/reception.h"
#include "tern/suppress.h"
#include "tern/smtp_listener.h"
#include "tern/spool.h"
#include "tern/tls.h"
#include "tern/warmup.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <lauxlib.h>

/* Raise the tern_err as a policy error (file:line of the caller). */
static int
raise_err(lua_State *L, const char *fname, const struct tern_err *err)
{
	return luaL_error(L, "%s: %s", fname, err->msg);
}

/* ---- tern.define_spool{ path, max_batch, min_sync_interval, partitions, min_free_space,
 *      min_free_inodes } ---- */

struct spool_service {
	struct spool_config cfg;
	char *path;
	struct spool *spool;
};

static int
spool_service_open(void *arg, struct tern_err *err)
{
	struct spool_service *svc = arg;
	int rc = util_mkdir_p(svc->path);

	if (rc < 0) {
		tern_err_set(err, 0, "", "cannot create spool directory %s: %s", svc->path, strerror(-rc));
		return rc;
	}
	svc->spool = spool_open(&svc->cfg, err);
	if (svc->spool == NULL)
		return -EIO;
	reception_set_spool(svc->spool);
	queue_set_spool(svc->spool);
	if (suppress_open(svc->spool, true, err) < 0)
		return -EIO;
	if (admin_open(svc->path, err) < 0 || path_state_open(svc->path, err) < 0 ||
	    warmup_open(svc->path, err) < 0)
		return -EIO;
	return queue_recover(svc->spool, err) < 0 ? -EIO : 0;
}

static void
spool_service_close(void *arg)
{
	struct spool_service *svc = arg;

	reception_set_spool(NULL);
	queue_set_spool(NULL);
	suppress_close();
	admin_close();
	path_state_close();
	warmup_close();
	spool_close(svc->spool);
	svc->spool = NULL;
}

static void
spool_service_free(void *arg)
{
	struct spool_service *svc = arg;

	free(svc->path);
	free(svc);
}

static bool
floor_same(const struct spool_floor *a, const struct spool_floor *b)
{
	return a->percent == b->percent && a->amount == b->amount;
}

/* A reload must define the very spool that runs (see daemon_reload_begin). */
static bool
spool_service_same(const void *a, const void *b)
{
	const struct spool_config *x = &((const struct spool_service *)a)->cfg;
	const struct spool_config *y = &((const struct spool_service *)b)->cfg;

	return strcmp(x->path, y->path) == 0 && x->max_batch == y->max_batch &&
	       x->min_sync_interval == y->min_sync_interval && x->partitions == y->partitions &&
	       floor_same(&x->min_free_space, &y->min_free_space) &&
	       floor_same(&x->min_free_inodes, &y->min_free_inodes);
}

/* A free-space floor: "5%" of the filesystem, or an amount ("200M"; inodes: "10000"). */
static void
opt_floor(lua_State *L, const char *fname, const char *key, const char *def,
	  struct spool_floor *out)
{
	const char *v = lua_options_string(L, 1, fname, key, def);

	if (spool_floor_parse(v, out) < 0)
		luaL_error(L,
			   "%s: option '%s': '%s' is neither a percentage below 100%% ('5%%') "
			   "nor an amount ('200M')",
			   fname, key, v);
}

static int
lua_init_define_spool(lua_State *L)
{
	static const char *const opts[] = {"path",	     "max_batch",	"min_sync_interval",
					   "partitions",     "min_free_space", "min_free_inodes",
					   NULL};
	const char *fname = "tern.define_spool";
	struct spool_service *svc;
	struct daemon_service ds = {.name = "spool",
				    .rank = DAEMON_RANK_STORAGE,
				    .open = spool_service_open,
				    .close = spool_service_close,
				    .free = spool_service_free,
				    .same = spool_service_same};
	struct tern_err err;
	const char *path;
	double batch, parts, interval;
	struct spool_floor space, inodes;

	lua_options_check(L, 1, fname, opts);
	path = lua_options_string(L, 1, fname, "path", NULL);
	if (path == NULL || *path == '\0')
		return luaL_error(L, "%s: option 'path' is required", fname);
	batch = lua_options_number(L, 1, fname, "max_batch", 0);
	if (batch < 0)
		return luaL_error(L, "%s: option 'max_batch' must not be negative", fname);
	interval = lua_options_duration(L, 1, fname, "min_sync_interval", 0.001);
	if (interval > 1)
		return luaL_error(L, "%s: option 'min_sync_interval' must be at most 1s", fname);
	parts = lua_options_number(L, 1, fname, "partitions", 1);
	if (parts < 1 || parts > SPOOL_MAX_PARTITIONS || parts != (int)parts)
		return luaL_error(L, "%s: option 'partitions' must be a whole number from 1 to %d",
				  fname, SPOOL_MAX_PARTITIONS);
	opt_floor(L, fname, "min_free_space", "5%", &space);
	opt_floor(L, fname, "min_free_inodes", "1%", &inodes);
	svc = xcalloc(1, sizeof(*svc));
	svc->path = xstrdup(path);
	svc->cfg.path = svc->path;
	svc->cfg.max_batch = (size_t)batch;
	svc->cfg.min_sync_interval = interval;
	svc->cfg.partitions = (unsigned)parts;
	svc->cfg.min_free_space = space;
	svc->cfg.min_free_inodes = inodes;
	ds.cfg = svc;
	if (daemon_add_service(&ds, &err) < 0) {
		spool_service_free(svc);
		return raise_err(L, fname, &err);
	}
	return 0;
}

/* ---- tern.configure_local_logs{ log_dir, max_segment_duration, max_file_size, compression,
 *      meta, sync, formats, max_age, max_total_size, force } ---- */

#define LOGS_CONFIG_MT "tern.logs_config"

static int
logs_service_open(void *arg, struct tern_err *err)
{
	return logrec_open(arg, err);
}

static void
logs_service_close(void *arg)
{
	logrec_close();
}

static void
logs_service_free(void *arg)
{
	logrec_config_deinit(arg);
	free(arg);
}

/* A reload's settings apply to the running logs from the next record on. */
static int
logs_service_update(void *cfg, const void *next, struct tern_err *err)
{
	return logrec_reconfigure(next, err);
}

/* While options are read, a userdata owns them: its __gc frees them when one raises. */
static int
logs_config_gc(lua_State *L)
{
	logrec_config_deinit(lua_touserdata(L, 1));
	return 0;
}

/* The list at idx (a table of strings), each passed to fn; raises naming key[i]. */
static void
read_string_list(lua_State *L, int idx, const char *what,
		 void (*fn)(lua_State *L, const char *what, size_t i, const char *v, void *arg),
		 void *arg)
{
	size_t i, n;

	if (!lua_istable(L, idx))
		luaL_error(L, "%s must be a list of strings", what);
	n = lua_objlen(L, idx);
	for (i = 0; i < n; i++) {
		lua_rawgeti(L, idx, (int)i + 1);
		if (lua_type(L, -1) != LUA_TSTRING)
			luaL_error(L, "%s[%d] must be a string", what, (int)i + 1);
		fn(L, what, i, lua_tostring(L, -1), arg);
		lua_pop(L, 1);
	}
}

static void
add_meta_key(lua_State *L, const char *what, size_t i, const char *v, void *arg)
{
	struct logrec_config *cfg = arg;

	cfg->meta_keys[cfg->n_meta_keys++] = xstrdup(v);
}

static void
read_meta_keys(lua_State *L, const char *fname, struct logrec_config *cfg)
{
	char what[64];

	lua_getfield(L, 1, "meta");
	cfg->meta_all = lua_isnil(L, -1);
	if (!cfg->meta_all) {
		snprintf(what, sizeof(what), "%s: option 'meta'", fname);
		cfg->meta_keys = xcalloc(lua_istable(L, -1) ? lua_objlen(L, -1) + 1 : 1,
					 sizeof(char *));
		read_string_list(L, lua_gettop(L), what, add_meta_key, cfg);
	}
	lua_pop(L, 1);
}

static void
add_field(lua_State *L, const char *what, size_t i, const char *v, void *arg)
{
	struct acct_format *f = arg;

	if (strcmp(v, "type") == 0)
		luaL_error(L, "%s[%d]: 'type' is always the first column", what, (int)i + 1);
	if (!acct_field_known(v, strlen(v)))
		luaL_error(L, "%s[%d]: unknown field '%s'", what, (int)i + 1, v);
	f->fields[f->n_fields++] = xstrdup(v);
}

/* fields = { 'timeLogged', ..., 'header_X-Id' }: PowerMTA's default columns without it. */
static void
read_csv_fields(lua_State *L, int idx, const char *what, struct acct_format *f)
{
	size_t n;

	lua_getfield(L, idx, "fields");
	if (lua_isnil(L, -1)) {
		for (n = 0; acct_default_fields[n]; n++)
			;
		f->fields = xcalloc(n, sizeof(char *));
		for (f->n_fields = 0; f->n_fields < n; f->n_fields++)
			f->fields[f->n_fields] = xstrdup(acct_default_fields[f->n_fields]);
	} else {
		f->fields = xcalloc(lua_istable(L, -1) ? lua_objlen(L, -1) + 1 : 1, sizeof(char *));
		read_string_list(L, lua_gettop(L), what, add_field, f);
	}
	lua_pop(L, 1);
}

static void
add_letter(lua_State *L, const char *what, size_t i, const char *v, void *arg)
{
	if (acct_select_letter(arg, v) < 0)
		luaL_error(L, "%s[%d]: '%s' is not a record type (d, b, t, rb, f, r)", what,
			   (int)i + 1, v);
}

static void
add_type(lua_State *L, const char *what, size_t i, const char *v, void *arg)
{
	struct acct_format *f = arg;
	int t = acct_type_index(v);

	if (t < 0)
		luaL_error(L, "%s[%d]: '%s' is not a record type (Delivery, Bounce, ...)", what,
			   (int)i + 1, v);
	f->types[t] = true;
}

/* PowerMTA's default: deliveries and bounces. */
static void
select_default_letters(struct acct_format *f)
{
	acct_select_letter(f, "d");
	acct_select_letter(f, "b");
}

/* types = { 'd', 'b', ... } (PowerMTA's, default d and b) or { 'Delivery', ... } for templates. */
static void
read_types(lua_State *L, int idx, const char *what, struct acct_format *f)
{
	lua_getfield(L, idx, "types");
	if (!lua_isnil(L, -1))
		read_string_list(L, lua_gettop(L), what,
				 f->kind == ACCT_PMTA_CSV ? add_letter : add_type, f);
	else if (f->kind == ACCT_PMTA_CSV)
		select_default_letters(f);
	else
		memset(f->types, 1, sizeof(f->types));
	lua_pop(L, 1);
}

static void
set_template(lua_State *L, const char *what, struct acct_format *f, int t, const char *tpl)
{
	struct tern_err err;

	if (acct_template_check(tpl, &err) < 0)
		luaL_error(L, "%s: %s", what, err.msg);
	f->templates[t] = xstrdup(tpl);
}

/* template = '...' for every type, or { Delivery = '...', Bounce = '...' }. */
static void
read_templates(lua_State *L, int idx, const char *what, struct acct_format *f)
{
	int t;

	lua_getfield(L, idx, "template");
	if (lua_type(L, -1) == LUA_TSTRING) {
		for (t = 0; t < ACCT_N_TYPES; t++)
			set_template(L, what, f, t, lua_tostring(L, -1));
	} else if (lua_istable(L, -1)) {
		for (lua_pushnil(L); lua_next(L, -2); lua_pop(L, 1)) {
			t = lua_type(L, -2) == LUA_TSTRING ? acct_type_index(lua_tostring(L, -2)) : -1;
			if (t < 0 || lua_type(L, -1) != LUA_TSTRING)
				luaL_error(L, "%s: template must map record types (Delivery, ...) to "
					      "strings", what);
			set_template(L, what, f, t, lua_tostring(L, -1));
		}
	} else {
		luaL_error(L, "%s: kind 'template' needs template = '...' or { Delivery = '...' }",
			   what);
	}
	lua_pop(L, 1);
}

static bool
format_name_ok(const char *name)
{
	size_t n = strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-");

	return n > 0 && n < 64 && name[n] == '\0';
}

/* formats[name] = { kind = 'pmta_csv'|'template', fields, types, template } at idx. */
static void
read_format(lua_State *L, int idx, const char *fname, struct logrec_format_config *out)
{
	static const char *const opts[] = {"kind", "fields", "types", "template", NULL};
	char what[128], sub[160];
	const char *kind;

	snprintf(what, sizeof(what), "%s: formats.%s", fname, out->name);
	if (!format_name_ok(out->name))
		luaL_error(L, "%s: a format's name is letters, digits, '_' and '-'", what);
	lua_options_check(L, idx, what, opts);
	kind = lua_options_string(L, idx, what, "kind", NULL);
	if (kind == NULL || (strcmp(kind, "pmta_csv") != 0 && strcmp(kind, "template") != 0))
		luaL_error(L, "%s: kind must be 'pmta_csv' or 'template'", what);
	out->fmt.kind = strcmp(kind, "pmta_csv") == 0 ? ACCT_PMTA_CSV : ACCT_TEMPLATE;
	snprintf(sub, sizeof(sub), "%s.types", what);
	read_types(L, idx, sub, &out->fmt);
	snprintf(sub, sizeof(sub), "%s.fields", what);
	if (out->fmt.kind == ACCT_PMTA_CSV)
		read_csv_fields(L, idx, sub, &out->fmt);
	else
		read_templates(L, idx, what, &out->fmt);
}

static void
read_formats(lua_State *L, const char *fname, struct logrec_config *cfg)
{
	size_t cap = 0;

	lua_getfield(L, 1, "formats");
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return;
	}
	if (!lua_istable(L, -1))
		luaL_error(L, "%s: option 'formats' must be a table { name = { kind = ... } }", fname);
	for (lua_pushnil(L); lua_next(L, -2); lua_pop(L, 1))
		cap++;
	cfg->formats = xcalloc(cap ? cap : 1, sizeof(*cfg->formats));
	for (lua_pushnil(L); lua_next(L, -2); lua_pop(L, 1)) {
		if (lua_type(L, -2) != LUA_TSTRING || !lua_istable(L, -1))
			luaL_error(L, "%s: formats must map names to tables", fname);
		cfg->formats[cfg->n_formats].name = xstrdup(lua_tostring(L, -2));
		read_format(L, lua_gettop(L), fname, &cfg->formats[cfg->n_formats++]);
	}
	lua_pop(L, 1);
}

static void
read_retention(lua_State *L, const char *fname, struct logfile_retention *r)
{
	r->max_age = lua_options_duration(L, 1, fname, "max_age", 0);
	r->max_total_size = lua_options_size(L, 1, fname, "max_total_size", 0);
	r->force = lua_options_bool(L, 1, fname, "force", false);
}

static void
read_logs_options(lua_State *L, const char *fname, struct logrec_config *cfg)
{
	const char *dir, *comp;

	dir = lua_options_string(L, 1, fname, "log_dir", NULL);
	if (dir == NULL || *dir == '\0')
		luaL_error(L, "%s: option 'log_dir' is required", fname);
	comp = lua_options_string(L, 1, fname, "compression", "none");
	if (strcmp(comp, "none") != 0 && strcmp(comp, "zstd") != 0)
		luaL_error(L, "%s: option 'compression' must be 'none' or 'zstd'", fname);
	cfg->file.compression = strcmp(comp, "zstd") == 0 ? LOGFILE_ZSTD : LOGFILE_NONE;
	cfg->file.max_segment_duration = lua_options_duration(L, 1, fname, "max_segment_duration", 0);
	cfg->file.max_file_size = lua_options_size(L, 1, fname, "max_file_size", 0);
	cfg->file.sync = lua_options_bool(L, 1, fname, "sync", false);
	read_retention(L, fname, &cfg->file.retention);
	cfg->file.dir = xstrdup(dir);
	read_meta_keys(L, fname, cfg);
	read_formats(L, fname, cfg);
}

static int
lua_init_configure_local_logs(lua_State *L)
{
	static const char *const opts[] = {"log_dir", "max_segment_duration", "max_file_size",
					   "compression", "meta", "sync", "formats", "max_age",
					   "max_total_size", "force", NULL};
	const char *fname = "tern.configure_local_logs";
	struct daemon_service ds = {.name = "local logs",
				    .rank = DAEMON_RANK_LOGS,
				    .open = logs_service_open,
				    .close = logs_service_close,
				    .free = logs_service_free,
				    .prepare_update = logs_service_update};
	struct logrec_config *reading, *cfg;
	struct tern_err err;

	lua_options_check(L, 1, fname, opts);
	reading = lua_newuserdata(L, sizeof(*reading));
	memset(reading, 0, sizeof(*reading));
	luaL_getmetatable(L, LOGS_CONFIG_MT);
	lua_setmetatable(L, -2);
	read_logs_options(L, fname, reading);
	/* Everything is valid: the service owns the settings now, the userdata nothing. */
	cfg = xcalloc(1, sizeof(*cfg));
	*cfg = *reading;
	memset(reading, 0, sizeof(*reading));
	ds.cfg = cfg;
	if (daemon_add_service(&ds, &err) < 0) {
		logs_service_free(cfg);
		return raise_err(L, fname, &err);
	}
	return 0;
}

/* ---- tern.start_esmtp_listener{...} ---- */

/* The list of CIDR ranges on top of the stack, into a new array; raises naming key[i]. */
static void
read_cidr_list(lua_State *L, const char *fname, const char *key, struct cidr **out, size_t *n_out)
{
	size_t i, n;

	if (!lua_istable(L, -1))
		luaL_error(L, "%s: option '%s' must be a list of CIDR ranges", fname, key);
	n = lua_objlen(L, -1);
	*out = xcalloc(n ? n : 1, sizeof(**out));
	for (i = 0; i < n; i++) {
		lua_rawgeti(L, -1, (int)i + 1);
		if (!lua_isstring(L, -1) || cidr_parse(lua_tostring(L, -1), &(*out)[i]) < 0)
			luaL_error(L, "%s: %s[%d]: '%s' is not an address or CIDR range", fname, key,
				   (int)i + 1, lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
		lua_pop(L, 1);
	}
	*n_out = n;
}

static void
read_relay_hosts(lua_State *L, const char *fname, struct smtp_listener_config *c)
{
	lua_getfield(L, 1, "relay_hosts");
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		c->relay_hosts = xcalloc(2, sizeof(*c->relay_hosts));
		cidr_parse("127.0.0.0/8", &c->relay_hosts[0]);
		cidr_parse("::1", &c->relay_hosts[1]);
		c->n_relay_hosts = 2;
		return;
	}
	read_cidr_list(L, fname, "relay_hosts", &c->relay_hosts, &c->n_relay_hosts);
	lua_pop(L, 1);
}

/*
 * proxy_protocol = { trusted = {CIDRs}, required = true|false (default true) }, the same on
 * ESMTP and HTTP listeners; *on stays false without it.
 */
static void
read_proxy_protocol(lua_State *L, const char *fname, bool *on, bool *required,
		    struct cidr **trusted, size_t *n_trusted)
{
	lua_getfield(L, 1, "proxy_protocol");
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return;
	}
	if (!lua_istable(L, -1))
		luaL_error(L, "%s: option 'proxy_protocol' must be a table { trusted = {...}, "
			      "required = true|false }", fname);
	lua_pushnil(L);
	while (lua_next(L, -2)) {
		lua_pop(L, 1);
		if (lua_type(L, -1) != LUA_TSTRING || (strcmp(lua_tostring(L, -1), "trusted") &&
						       strcmp(lua_tostring(L, -1), "required")))
			luaL_error(L, "%s: proxy_protocol: unknown option '%s'", fname,
				   lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?");
	}
	lua_getfield(L, -1, "required");
	if (!lua_isnil(L, -1) && !lua_isboolean(L, -1))
		luaL_error(L, "%s: proxy_protocol.required must be true or false", fname);
	*required = lua_isnil(L, -1) || lua_toboolean(L, -1);
	lua_pop(L, 1);
	lua_getfield(L, -1, "trusted");
	if (lua_isnil(L, -1))
		luaL_error(L, "%s: proxy_protocol.trusted is required", fname);
	read_cidr_list(L, fname, "proxy_protocol.trusted", trusted, n_trusted);
	*on = true;
	lua_pop(L, 2);
}

static char *
opt_strdup(lua_State *L, const char *fname, const char *key, const char *def)
{
	const char *v = lua_options_string(L, 1, fname, key, def);

	return v ? xstrdup(v) : NULL;
}

static int
opt_count(lua_State *L, const char *fname, const char *key, int def)
{
	double v = lua_options_number(L, 1, fname, key, def);

	if (v < 0 || v > 1e9)
		luaL_error(L, "%s: option '%s' must be between 0 and 1e9", fname, key);
	return (int)v;
}

static enum smtp_long_lines
opt_long_lines(lua_State *L, const char *fname)
{
	const char *v = lua_options_string(L, 1, fname, "long_lines", "reject");

	if (strcmp(v, "reject") == 0)
		return SMTP_LONG_LINES_REJECT;
	if (strcmp(v, "wrap") == 0)
		return SMTP_LONG_LINES_WRAP;
	if (strcmp(v, "allow") == 0)
		return SMTP_LONG_LINES_ALLOW;
	return luaL_error(L, "%s: option 'long_lines' must be 'reject', 'wrap' or 'allow'", fname);
}

/* Deadlines and limits against slow, brute-forcing and erring clients. */
static void
read_abuse_limits(lua_State *L, const char *fname, struct smtp_listener_config *c)
{
	c->command_timeout = lua_options_duration(L, 1, fname, "command_timeout", 60);
	c->max_errors = opt_count(L, fname, "max_errors", 20);
	c->max_auth_failures = opt_count(L, fname, "max_auth_failures", 3);
	c->auth_failure_delay = lua_options_duration(L, 1, fname, "auth_failure_delay", 2);
	c->auth_failures_per_ip.limit = opt_count(L, fname, "max_auth_failures_per_ip", 10);
	c->auth_failures_per_ip.window =
		lua_options_duration(L, 1, fname, "auth_failure_window", 300);
	c->long_lines = opt_long_lines(L, fname);
}

/* tls_ciphers, tls_ciphersuites, tls_min_version: checked now, so --check refuses a bad list. */
static void
read_listener_tls_options(lua_State *L, const char *fname, struct smtp_listener_config *c)
{
	const char *min = lua_options_string(L, 1, fname, "tls_min_version", NULL);
	struct tls_server_options opts;
	struct tern_err err;

	if (min != NULL && tls_parse_version(min, &c->tls_min_version) < 0)
		luaL_error(L, "%s: option 'tls_min_version' must be '1.2' or '1.3'", fname);
	c->tls_ciphers = opt_strdup(L, fname, "tls_ciphers", NULL);
	c->tls_ciphersuites = opt_strdup(L, fname, "tls_ciphersuites", NULL);
	c->tls_reload_interval = lua_options_duration(L, 1, fname, "tls_reload_interval",
						       TLS_SERVER_CHECK_INTERVAL);
	if (c->tls_reload_interval <= 0)
		luaL_error(L, "%s: option 'tls_reload_interval' must be positive", fname);
	opts = (struct tls_server_options){.ciphers = c->tls_ciphers,
					   .ciphersuites = c->tls_ciphersuites,
					   .min_version = c->tls_min_version};
	if (tls_server_options_check(&opts, &err) < 0)
		luaL_error(L, "%s: %s", fname, err.msg);
}

static void
read_listener_options(lua_State *L, const char *fname, struct smtp_listener_config *c)
{
	const char *listen = lua_options_string(L, 1, fname, "listen", NULL);
	const char *eol;

	if (listen == NULL)
		luaL_error(L, "%s: option 'listen' is required", fname);
	if (smtp_listener_parse_address(listen, &c->addr, &c->addrlen) < 0)
		luaL_error(L, "%s: listen: '%s' is not 'address:port' (IPv6 as '[::1]:25')", fname,
			   listen);
	c->listen = xstrdup(listen);
	c->hostname = opt_strdup(L, fname, "hostname", "localhost");
	c->banner = opt_strdup(L, fname, "banner", NULL);
	c->max_message_size = lua_options_size(L, 1, fname, "max_message_size", 20u << 20);
	c->max_recipients = opt_count(L, fname, "max_recipients_per_message", 1024);
	c->max_messages_per_connection = opt_count(L, fname, "max_messages_per_connection", 0);
	c->max_connections = opt_count(L, fname, "max_connections",
				       smtp_listener_default_max_connections());
	c->max_connections_per_ip = opt_count(L, fname, "max_connections_per_ip", 20);
	c->client_timeout = lua_options_duration(L, 1, fname, "client_timeout", 300);
	c->data_timeout = lua_options_duration(L, 1, fname, "data_timeout", 600);
	c->tls_certificate = opt_strdup(L, fname, "tls_certificate", NULL);
	c->tls_private_key = opt_strdup(L, fname, "tls_private_key", NULL);
	c->require_tls = lua_options_bool(L, 1, fname, "require_tls", false);
	read_listener_tls_options(L, fname, c);
	eol = lua_options_string(L, 1, fname, "invalid_line_endings", "reject");
	if (strcmp(eol, "reject") != 0 && strcmp(eol, "fix") != 0)
		luaL_error(L, "%s: option 'invalid_line_endings' must be 'reject' or 'fix'", fname);
	c->fix_line_endings = strcmp(eol, "fix") == 0;
	if (!c->tls_certificate != !c->tls_private_key)
		luaL_error(L, "%s: tls_certificate and tls_private_key go together", fname);
	if (c->require_tls && !c->tls_certificate)
		luaL_error(L, "%s: require_tls needs tls_certificate and tls_private_key", fname);
	if ((c->tls_ciphers || c->tls_ciphersuites || c->tls_min_version) && !c->tls_certificate)
		luaL_error(L, "%s: tls_ciphers, tls_ciphersuites and tls_min_version need "
			      "tls_certificate and tls_private_key", fname);
	read_relay_hosts(L, fname, c);
	read_proxy_protocol(L, fname, &c->proxy_protocol, &c->proxy_required, &c->proxy_trusted,
			    &c->n_proxy_trusted);
	read_abuse_limits(L, fname, c);
}

#define LISTENER_CONFIG_MT "tern.listener_config"

static int
listener_config_gc(lua_State *L)
{
	smtp_listener_config_free(lua_touserdata(L, 1));
	return 0;
}

static int
lua_init_start_esmtp_listener(lua_State *L)
{
	static const char *const opts[] = {
		"listen", "hostname", "banner", "relay_hosts", "max_message_size",
		"max_recipients_per_message", "max_messages_per_connection", "max_connections",
		"max_connections_per_ip",
		"client_timeout", "data_timeout", "tls_certificate", "tls_private_key", "require_tls",
		"invalid_line_endings", "command_timeout", "max_errors", "max_auth_failures",
		"auth_failure_delay", "max_auth_failures_per_ip", "auth_failure_window", "long_lines",
		"tls_ciphers", "tls_ciphersuites", "tls_min_version", "tls_reload_interval",
		"proxy_protocol", NULL};
	const char *fname = "tern.start_esmtp_listener";
	struct smtp_listener_config *c;
	struct tern_err err;

	lua_options_check(L, 1, fname, opts);
	/* Options are read into a userdata whose __gc frees them if a later option raises. */
	c = lua_newuserdata(L, sizeof(*c));
	memset(c, 0, sizeof(*c));
	luaL_getmetatable(L, LISTENER_CONFIG_MT);
	lua_setmetatable(L, -2);
	read_listener_options(L, fname, c);
	if (smtp_listener_add(c, &err) < 0)
		return raise_err(L, fname, &err);
	return 0;
}

/* ---- tern.start_http_listener{...} ---- */

#define HTTP_CONFIG_MT "tern.http_listener_config"

static int
http_config_gc(lua_State *L)
{
	http_listener_config_free(lua_touserdata(L, 1));
	return 0;
}

static void
read_trusted_hosts(lua_State *L, const char *fname, struct http_listener_config *c)
{
	size_t i, n;

	lua_getfield(L, 1, "trusted_hosts");
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		c->trusted_hosts = xcalloc(2, sizeof(*c->trusted_hosts));
		cidr_parse("127.0.0.0/8", &c->trusted_hosts[0]);
		cidr_parse("::1", &c->trusted_hosts[1]);
		c->n_trusted_hosts = 2;
		return;
	}
	if (!lua_istable(L, -1))
		luaL_error(L, "%s: option 'trusted_hosts' must be a list of CIDR ranges", fname);
	n = lua_objlen(L, -1);
	c->trusted_hosts = xcalloc(n ? n : 1, sizeof(*c->trusted_hosts));
	for (i = 0; i < n; i++) {
		lua_rawgeti(L, -1, (int)i + 1);
		if (!lua_isstring(L, -1) || cidr_parse(lua_tostring(L, -1), &c->trusted_hosts[i]) < 0)
			luaL_error(L, "%s: trusted_hosts[%d]: '%s' is not an address or CIDR range",
				   fname, (int)i + 1, lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
		lua_pop(L, 1);
	}
	c->n_trusted_hosts = n;
	lua_pop(L, 1);
}

static void
read_http_options(lua_State *L, const char *fname, struct http_listener_config *c)
{
	const char *listen = lua_options_string(L, 1, fname, "listen", NULL);

	if (listen == NULL)
		luaL_error(L, "%s: option 'listen' is required", fname);
	if (smtp_listener_parse_address(listen, &c->addr, &c->addrlen) < 0)
		luaL_error(L, "%s: listen: '%s' is not 'address:port' (IPv6 as '[::1]:8000')", fname,
			   listen);
	c->listen = xstrdup(listen);
	c->tls_certificate = opt_strdup(L, fname, "tls_certificate", NULL);
	c->tls_private_key = opt_strdup(L, fname, "tls_private_key", NULL);
	if (!c->tls_certificate != !c->tls_private_key)
		luaL_error(L, "%s: tls_certificate and tls_private_key go together", fname);
	c->request_body_limit = lua_options_size(L, 1, fname, "request_body_limit", 2u << 20);
	c->client_timeout = lua_options_duration(L, 1, fname, "client_timeout", 60);
	if (c->client_timeout < 1)
		luaL_error(L, "%s: option 'client_timeout' must be at least 1s", fname);
	c->max_connections = opt_count(L, fname, "max_connections", 1024);
	if (c->max_connections < 1)
		luaL_error(L, "%s: option 'max_connections' must be at least 1", fname);
	read_trusted_hosts(L, fname, c);
	read_proxy_protocol(L, fname, &c->proxy_protocol, &c->proxy_required, &c->proxy_trusted,
			    &c->n_proxy_trusted);
}

static int
lua_init_start_http_listener(lua_State *L)
{
	static const char *const opts[] = {"listen", "trusted_hosts", "tls_certificate",
					   "tls_private_key", "request_body_limit",
					   "client_timeout", "max_connections", "proxy_protocol", NULL};
	const char *fname = "tern.start_http_listener";
	struct http_listener_config *c;
	struct tern_err err;

	lua_options_check(L, 1, fname, opts);
	/* As for ESMTP listeners: a userdata frees the options if a later one raises. */
	c = lua_newuserdata(L, sizeof(*c));
	memset(c, 0, sizeof(*c));
	luaL_getmetatable(L, HTTP_CONFIG_MT);
	lua_setmetatable(L, -2);
	read_http_options(L, fname, c);
	if (http_listener_add(c, &err) < 0)
		return raise_err(L, fname, &err);
	return 0;
}

void
lua_init_open(lua_State *L)
{
	static const luaL_Reg fns[] = {
		{"define_spool", lua_init_define_spool},
		{"configure_local_logs", lua_init_configure_local_logs},
		{"start_esmtp_listener", lua_init_start_esmtp_listener},
		{"start_http_listener", lua_init_start_http_listener},
		{NULL, NULL},
	};

	luaL_register(L, NULL, fns);
	luaL_newmetatable(L, LISTENER_CONFIG_MT);
	lua_pushcfunction(L, listener_config_gc);
	lua_setfield(L, -2, "__gc");
	lua_pop(L, 1);
	luaL_newmetatable(L, HTTP_CONFIG_MT);
	lua_pushcfunction(L, http_config_gc);
	lua_setfield(L, -2, "__gc");
	lua_pop(L, 1);
	luaL_newmetatable(L, LOGS_CONFIG_MT);
	lua_pushcfunction(L, logs_config_gc);
	lua_setfield(L, -2, "__gc");
	lua_pop(L, 1);
}
