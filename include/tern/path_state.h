/* SPDX-License-Identifier: MIT */
/*
 * Path state: what shaping automation decided about a path for a while.
 * A suspension (of a source -> site path, of a source for every site of a
 * provider, or of a tenant's or campaign's messages for a site), or an
 * override of the path's limits, each with an end and a recovery period
 * during which the path's limits climb from half back to full.
 *
 * Source selection on every shard reads the states at every dispatch, and
 * they change only when a rule fires or an operator lifts one, so the set
 * is an immutable table published by pointer swap (as admin.h's rules):
 * readers take no lock and get a pointer that stays valid until
 * path_state_close(); writers copy, change and publish under one mutex and
 * retire the old table. Every change is saved to shaping-state.json in the
 * spool directory (temporary file, sync, rename), so a restart keeps the
 * active states. Expired states are dropped at the next change.
 */
#ifndef TERN_PATH_STATE_H
#define TERN_PATH_STATE_H

#include <stdbool.h>
#include <stddef.h>

#include "tern/util.h"

enum path_state_scope {
	PATH_STATE_PATH,     /* source and site */
	PATH_STATE_SOURCE,   /* source, for the sites whose MX hosts end in site (suffixes) or all */
	PATH_STATE_TENANT,   /* tenant's messages for site */
	PATH_STATE_CAMPAIGN, /* campaign's messages for site */
};

struct path_state {
	enum path_state_scope scope;
	char source[64];
	char site[600];     /* PATH_STATE_SOURCE: comma-separated MX suffixes, "" = every site */
	char tenant[128];
	char campaign[128];
	bool suspend;
	double max_message_rate; /* override while active: per second, 0 = the path's own */
	int connection_limit;    /* override while active: 0 = the path's own */
	double since, until;     /* epoch seconds */
	double recovery;         /* seconds after until from half to full limits */
	char action[32];
	char rule[300];  /* file:line of the rule, or "operator" */
	char reply[512]; /* the reply that fired it */
};

/* Load the states saved under spool_dir (a missing file is none). */
int path_state_open(const char *spool_dir, struct tern_err *err);
void path_state_close(void);

/* Add s, replacing a state of the same scope and keys, and save. */
int path_state_apply(const struct path_state *s, struct tern_err *err);
/*
 * Remove the states matching every given key (NULL or "" matches any; at
 * least one key must be given) and save: the number removed, or -errno.
 */
int path_state_clear(const char *source, const char *site, const char *tenant,
		     const char *campaign, struct tern_err *err);

/* Whether a state with s's scope and keys is in force now (before its end). */
bool path_state_in_force(const struct path_state *s, double now);
/* The first state covering (source, site) not yet recovered, or NULL. Any thread, no lock. */
const struct path_state *path_state_find(const char *source, const char *site, double now);
/* The active suspension holding (source, site) now, or NULL. Any thread, no lock. */
const struct path_state *path_state_suspended(const char *source, const char *site, double now);
/* The active suspension holding tenant's or campaign's messages for site now, or NULL. */
const struct path_state *path_state_held(const char *site, const char *tenant,
					 const char *campaign, double now);
/*
 * The limits of (source, site) now; *rate and *connections hold the path's
 * own on entry. An override applies while active; after a state ends the
 * limits climb from half of the path's own back to full over its recovery.
 */
void path_state_limits(const char *source, const char *site, double now, double *rate,
		       int *connections);
/* The number of active (not yet recovered) states. */
size_t path_state_count(double now);
/* Every state not yet recovered, as a JSON array. */
int path_state_list_json(struct buf *out);
/*
 * Sharing (fleet mode, fleet_shaping.h). The observer hears of every local
 * change, on the changing thread under the states' lock (post the work
 * elsewhere): a state added (or replacing one of the same keys), or one a
 * clear removed. path_state_replace() installs a whole set from elsewhere
 * (saved, lifted suspensions' messages woken) without telling the observer.
 */
typedef void (*path_state_observer_fn)(void *arg, const struct path_state *added,
				       const struct path_state *removed);
void path_state_set_observer(path_state_observer_fn fn, void *arg);
int path_state_replace(const struct path_state *states, size_t n, struct tern_err *err);
/* The states not yet recovered, in *out (free it); their number. */
size_t path_state_snapshot(struct path_state **out);
void path_state_json(const struct path_state *s, struct buf *out);
int path_state_from_json(const char *text, size_t len, struct path_state *out,
			 struct tern_err *err);
/* The state's identity (scope and keys): two states with the same key replace each other. */
#define PATH_STATE_KEY_LEN 1024
void path_state_key(const struct path_state *s, char *out, size_t size);

/* Pure: whether a site ("mx1,mx2") has a host ending in one of suffixes (comma-separated). */
bool path_state_site_in(const char *site, const char *suffixes);

#endif
