// SPDX-License-Identifier: MIT
/*
 * Shaping automation. A provider that defers an IP says so in its replies;
 * pushing on makes it worse, backing off at once and coming back gently
 * keeps the reputation. So every failed attempt on a path passes here on
 * the shard that saw it: the path's rules (named by its config) are matched
 * over the normalised reply, a rule with a trigger counts its matches per
 * path in a window, and a rule that fires sets a path state (which every
 * shard's source selection reads at once), writes a ShapingAction record
 * and counts in the metrics. A state already in force is not set again, so
 * the replies of connections still open do not stretch a suspension.
 */
#include "tern/automation.h"
#include "tern/bounce.h"
#include "tern/config.h"
#include "tern/egress.h"
#include "tern/log.h"
#include "tern/logrec.h"
#include "tern/message.h"
#include "tern/metrics.h"
#include "tern/path_state.h"
#include "tern/queue.h"
#include "tern/regex_rules.h"
#include "tern/shard.h"
#include "tern/util_map.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct automation_rules {
	struct regex_rules set; /* of struct automation_rule */
};

static const char *const action_names[] = {"suspend", "suspend_source", "suspend_tenant",
					   "suspend_campaign", "bounce", "set"};

/* ---- names ------------------------------------------------------------------------------ */

int
automation_action_parse(const char *name, enum automation_action *out)
{
	size_t i;

	for (i = 0; i < TERN_ARRAY_LEN(action_names); i++)
		if (strcmp(name, action_names[i]) == 0) {
			*out = (enum automation_action)i;
			return 0;
		}
	return -1;
}

const char *
automation_action_name(enum automation_action a)
{
	return (size_t)a < TERN_ARRAY_LEN(action_names) ? action_names[a] : "?";
}

int
automation_trigger_parse(const char *s, int *n, double *period)
{
	char *end;
	long count;

	if (strcmp(s, "immediate") == 0) {
		*n = 1;
		*period = 0;
		return 0;
	}
	count = strtol(s, &end, 10);
	if (end == s || *end != '/' || count < 1 || count > AUTOMATION_MAX_TRIGGER ||
	    util_parse_duration(end + 1, period) < 0 || *period <= 0)
		return -1;
	*n = (int)count;
	return 0;
}

/* ---- rule sets ---------------------------------------------------------------------------- */

struct automation_rules *
automation_rules_new(void)
{
	struct automation_rules *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	if (regex_rules_init(&r->set, sizeof(struct automation_rule)) < 0) {
		free(r); r = NULL;
	}
	return r;
}

static void
rule_deinit(void *p)
{
	struct automation_rule *rule = p;
	size_t i;

	for (i = 0; i < rule->def.n_patterns; i++) {
		pcre2_code_free(rule->re[i]);
		free((char *)rule->def.patterns[i]);
	}
	free((char *)rule->def.scope);
	free((char *)rule->def.mx_suffixes);
	free((char *)rule->def.file);
	free(rule->where);
}

void
automation_rules_free(struct automation_rules *r)
{
	if (r == NULL)
		return;
	regex_rules_deinit(&r->set, rule_deinit);
	free(r);
}

size_t
automation_rules_count(const struct automation_rules *r)
{
	return r->set.n;
}

static char *
dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* Copy def's strings into rule and compile its patterns; rule is zeroed first. */
static int
rule_init(struct automation_rule *rule, const struct automation_rule_def *def, struct tern_err *err)
{
	size_t i;

	memset(rule, 0, sizeof(*rule));
	rule->def = *def;
	rule->def.n_patterns = 0;
	rule->def.scope = dup_or_null(def->scope ? def->scope : "default");
	rule->def.mx_suffixes = dup_or_null(def->mx_suffixes);
	rule->def.file = dup_or_null(def->file ? def->file : "?");
	for (i = 0; i < def->n_patterns && i < AUTOMATION_MAX_PATTERNS; i++) {
		rule->def.patterns[i] = strdup(def->patterns[i]);
		if (rule->def.patterns[i] == NULL)
			goto nomem;
		rule->re[i] = regex_rules_compile(def->patterns[i], err,
						  "%s:%d: automation rule: bad regex '%s'",
						  def->file ? def->file : "?", def->line, def->patterns[i]);
		rule->def.n_patterns = i + 1;
		if (rule->re[i] == NULL)
			return -1;
	}
	if (rule->def.scope && rule->def.file &&
	    asprintf(&rule->where, "%s:%d %s", rule->def.file, rule->def.line, rule->def.scope) >= 0)
		return 0;
	rule->where = NULL;
nomem:
	tern_err_set(err, 0, NULL, "out of memory");
	return -1;
}

int
automation_rules_add(struct automation_rules *r, const struct automation_rule_def *def,
		     struct tern_err *err)
{
	struct automation_rule *rule;

	if (def->n_patterns == 0 || def->n_patterns > AUTOMATION_MAX_PATTERNS) {
		tern_err_set(err, 0, NULL, "%s:%d: automation rule needs 1 to %d regexes",
			     def->file ? def->file : "?", def->line, AUTOMATION_MAX_PATTERNS);
		return -1;
	}
	rule = regex_rules_reserve(&r->set);
	if (rule == NULL) {
		tern_err_set(err, 0, NULL, "out of memory");
		return -1;
	}
	if (rule_init(rule, def, err) < 0) {
		rule_deinit(rule);
		return -1;
	}
	return (int)regex_rules_push(&r->set);
}

static bool
rule_matches(struct automation_rules *r, const struct automation_rule *rule, const char *s,
	     size_t len)
{
	size_t i;

	for (i = 0; i < rule->def.n_patterns; i++)
		if (regex_rules_match(&r->set, rule->re[i], s, len))
			return true;
	return false;
}

const struct automation_rule *
automation_match(struct automation_rules *r, const uint16_t *ids, size_t n, const char *reply,
		 size_t len)
{
	char line[BOUNCE_REPLY_MAX];
	size_t i, linelen;

	if (r == NULL || n == 0)
		return NULL;
	linelen = bounce_normalise(reply, len, line, sizeof(line));
	for (i = 0; i < n; i++) {
		const struct automation_rule *rule;

		if (ids[i] >= r->set.n)
			continue;
		rule = regex_rules_at(&r->set, ids[i]);
		if (rule_matches(r, rule, line, linelen))
			return rule;
	}
	return NULL;
}

/* ---- trigger windows, per shard ----------------------------------------------------------- */

/* The times of a rule's last matches on one path: a ring of trigger_n entries. */
struct window {
	int n, next;
	double at[];
};

struct shard_windows {
	struct map windows; /* "where\tsource\tsite" -> struct window */
	bool ready;
};

static struct shard_windows shard_windows[SHARD_MAX];

static void
windows_exit(struct shard *shard, void *arg)
{
	struct shard_windows *w = arg;

	map_deinit(&w->windows, free);
	w->ready = false;
}

static struct window *
window_of(const struct automation_rule *rule, const char *source, const char *site)
{
	struct shard *shard = shard_self();
	struct shard_windows *sw = &shard_windows[shard->id];
	char key[1024];
	struct window *w;
	int rc;

	if (!sw->ready) {
		map_init(&sw->windows);
		shard_on_exit(shard, windows_exit, sw);
		sw->ready = true;
	}
	snprintf(key, sizeof(key), "%s\t%s\t%s", rule->where, source, site);
	w = map_get(&sw->windows, key);
	if (w != NULL && w->n == rule->def.trigger_n)
		return w;
	free(map_del(&sw->windows, key)); /* the rule's trigger changed with a reload */
	w = calloc(1, sizeof(*w) + (size_t)rule->def.trigger_n * sizeof(w->at[0]));
	if (w == NULL)
		return NULL;
	w->n = rule->def.trigger_n;
	map_put(&sw->windows, key, w, &rc);
	if (rc < 0) {
		free(w); w = NULL;
	}
	return w;
}

/* Count a match at now: whether it is the trigger_n-th within trigger_period. */
static bool
trigger_fires(const struct automation_rule *rule, const char *source, const char *site, double now)
{
	struct window *w;
	double oldest;

	if (rule->def.trigger_n <= 1)
		return true;
	w = window_of(rule, source, site);
	if (w == NULL)
		return false;
	w->at[w->next] = now;
	w->next = (w->next + 1) % w->n;
	oldest = w->at[w->next]; /* the slot written trigger_n matches ago; 0 when not yet */
	if (oldest <= 0 || now - oldest > rule->def.trigger_period)
		return false;
	memset(w->at, 0, (size_t)w->n * sizeof(w->at[0]));
	return true;
}

/* ---- acting ------------------------------------------------------------------------------ */

/* The state a rule sets for this message's path (false for bounce, which sets none). */
static bool
state_for(const struct automation_rule *rule, struct queue_msg *m, const struct logrec *rec,
	  struct path_state *s)
{
	char campaign[128], tenant[128], domain[256];
	const struct automation_rule_def *d = &rule->def;

	memset(s, 0, sizeof(*s));
	snprintf(s->source, sizeof(s->source), "%s", rec->egress_source);
	snprintf(s->site, sizeof(s->site), "%s", rec->site);
	s->suspend = d->action != AUTOMATION_SET;
	switch (d->action) {
	case AUTOMATION_SUSPEND_SOURCE:
		s->scope = PATH_STATE_SOURCE;
		snprintf(s->site, sizeof(s->site), "%s", d->mx_suffixes ? d->mx_suffixes : "");
		break;
	case AUTOMATION_SUSPEND_TENANT:
	case AUTOMATION_SUSPEND_CAMPAIGN:
		queue_name_parse(queue_msg_name(m), campaign, sizeof(campaign), tenant, sizeof(tenant),
				 domain, sizeof(domain));
		s->scope = d->action == AUTOMATION_SUSPEND_TENANT ? PATH_STATE_TENANT
								  : PATH_STATE_CAMPAIGN;
		s->source[0] = '\0';
		snprintf(s->tenant, sizeof(s->tenant), "%s", tenant);
		if (s->scope == PATH_STATE_CAMPAIGN)
			snprintf(s->campaign, sizeof(s->campaign), "%s", campaign);
		break;
	case AUTOMATION_SET:
		s->max_message_rate = d->set_rate;
		s->connection_limit = d->set_connections;
		break;
	case AUTOMATION_BOUNCE:
		return false;
	default:
		break;
	}
	return true;
}

/* What the record says the rule holds: "source->site", "source->*mx-suffixes", "tenant:T->site". */
static void
scope_text(const struct path_state *s, char *out, size_t size)
{
	switch (s->scope) {
	case PATH_STATE_SOURCE:
		snprintf(out, size, "%s->*%s", s->source, s->site[0] ? s->site : "");
		break;
	case PATH_STATE_TENANT:
		snprintf(out, size, "tenant:%s->%s", s->tenant, s->site);
		break;
	case PATH_STATE_CAMPAIGN:
		snprintf(out, size, "campaign:%s->%s", s->campaign, s->site);
		break;
	default:
		snprintf(out, size, "%s->%s", s->source, s->site);
	}
}

static void
rule_text(const struct automation_rule *rule, char *out, size_t size)
{
	size_t i, used = 0;

	out[0] = '\0';
	for (i = 0; i < rule->def.n_patterns && used < size; i++)
		used += (size_t)snprintf(out + used, size - used, "%s%s", i ? " | " : "",
					 rule->def.patterns[i]);
}

static void
write_record(const struct automation_rule *rule, struct queue_msg *m, struct message *msg,
	     const struct logrec *rec, const struct path_state *s)
{
	char scope[800], text[512];
	struct logrec_shaping sh = {.rule = text, .where = rule->where, .scope = scope,
				    .action = automation_action_name(rule->def.action),
				    .duration = rule->def.duration};
	struct logrec r = *rec;

	rule_text(rule, text, sizeof(text));
	if (s)
		scope_text(s, scope, sizeof(scope));
	else
		snprintf(scope, sizeof(scope), "message");
	r.type = "ShapingAction";
	r.msg = msg;
	r.queue = queue_msg_name(m);
	r.num_attempts = m->attempts;
	r.bounce_classification = NULL;
	r.shaping = &sh;
	logrec_write(&r);
	metrics_inc(METRICS_SHAPING_ACTIONS);
}

/* Set the state; false when the same state is already in force (nothing new happened). */
static bool
set_state(const struct automation_rule *rule, struct path_state *s, const char *reply, double now)
{
	struct tern_err err;

	if (path_state_in_force(s, now))
		return false;
	s->since = now;
	s->until = now + rule->def.duration;
	s->recovery = rule->def.recovery;
	snprintf(s->action, sizeof(s->action), "%s", automation_action_name(rule->def.action));
	snprintf(s->rule, sizeof(s->rule), "%s", rule->where);
	snprintf(s->reply, sizeof(s->reply), "%s", reply);
	if (path_state_apply(s, &err) < 0)
		log_warn("automation", "%s: state not saved, so not set: %s", s->rule, err.msg);
	return true;
}

const struct automation_rule *
automation_observe(struct queue_msg *m, struct message *msg, const struct logrec *rec,
		   const char *reply, size_t len)
{
	const struct automation_rule *rule;
	const uint16_t *ids;
	struct path_state s;
	double now = util_wallclock();
	size_t n;
	bool has_state;

	if (rec->egress_source == NULL || rec->site == NULL)
		return NULL;
	n = egress_path_automation(rec->egress_source, rec->site, &ids);
	rule = config_automation(shard_self(), ids, n, reply, len);
	if (rule == NULL || !trigger_fires(rule, rec->egress_source, rec->site, now))
		return NULL;
	has_state = state_for(rule, m, rec, &s);
	if (has_state && !set_state(rule, &s, reply, now))
		return NULL;
	write_record(rule, m, msg, rec, has_state ? &s : NULL);
	return rule;
}
