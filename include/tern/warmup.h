/* SPDX-License-Identifier: MIT */
/*
 * IP warm-up: a new source sends at most a cap per stage period (a day),
 * the cap rising stage by stage (a list of caps, or first * growth^stage),
 * optionally with a smaller cap per provider. Source selection asks
 * warmup_take() for the source it picked: a source at its cap is skipped
 * until the next period refills it, so the pool's other sources take the
 * traffic. Outcomes of a warming source are counted over a rolling window;
 * a hard-bounce or complaint rate above its limit pauses the ramp at the
 * current stage (a WarmupPaused record) until an operator resumes it.
 *
 * Plans come from policy (lua_warmup.c reads them); this module knows
 * nothing of Lua. Every shard asks on every source selection, so the state
 * is one table under one mutex held for a few comparisons; sources that are
 * not warming cost one atomic load. Stage, counts and pauses are saved to
 * warmup.json in the spool directory (temporary file, fsync, rename) on a
 * pause, a resume, a cap reached and at close, so a restart keeps them (a
 * stage that moved on since is moved on again from the saved period).
 */
#ifndef TERN_WARMUP_H
#define TERN_WARMUP_H

#include <stdbool.h>
#include <stddef.h>

#include "tern/util.h"

#define WARMUP_MAX_SOURCES 256
#define WARMUP_MAX_STAGES 64
#define WARMUP_MAX_PROVIDERS 16

/* A per-provider cap: at most cap messages per period to sites with a host ending in suffix. */
struct warmup_provider_cap {
	char name[64];
	char suffix[128];
	double cap;
};

/* One source's schedule. */
struct warmup_plan {
	char source[64];
	double start;  /* epoch seconds: stage 0 begins; before it the source sends nothing */
	double period; /* seconds a stage lasts (a day, divided by the test clock's scale) */
	double caps[WARMUP_MAX_STAGES]; /* messages per period; past the last, the warm-up ends */
	size_t n_caps;
	/* When n_caps is 0: stage k's cap is first * growth^k, until it reaches max (0: never). */
	double first, growth, max;
	struct warmup_provider_cap providers[WARMUP_MAX_PROVIDERS];
	size_t n_providers;
};

/* When a warming source's ramp pauses. */
struct warmup_limits {
	double max_bounce_rate;    /* hard bounces / (deliveries + hard bounces) */
	double max_complaint_rate; /* complaints (Feedback records) / deliveries */
	double window;             /* seconds of the rolling window */
	double min_messages;       /* outcomes in the window before the rates are judged */
};

/* The limits when policy does not say: 1.5 %, 0.15 %, one day, 100 messages. */
void warmup_limits_defaults(struct warmup_limits *l);

/* Load the state saved under spool_dir (a missing file is no state). */
int warmup_open(const char *spool_dir, struct tern_err *err);
/* Save the state and forget the plans. */
void warmup_close(void);

/*
 * Replace the plans (a reload may add, change or drop sources): a source
 * keeps its stage, counts and pause across it. Any thread.
 */
int warmup_configure(const struct warmup_plan *plans, size_t n, const struct warmup_limits *l,
		     struct tern_err *err);

/*
 * Source selection: whether source may take one more message for site now,
 * counting it when it may. Always true for a source that is not warming.
 */
bool warmup_take(const char *source, const char *site);
/* Seconds until source's cap refills (0 when it is not warming or has room). */
double warmup_wait(const char *source);

/*
 * An outcome record of source: "Delivery" and "Bounce" (hard bounces) and
 * "Feedback" (complaints) are counted; other types are ignored.
 */
void warmup_outcome(const char *type, const char *source);

/* An operator resumes a paused ramp: -ENOENT when source is not warming. */
int warmup_resume(const char *source, struct tern_err *err);

/* A warming source as operators see it. */
struct warmup_view {
	char source[64];
	int stage;    /* 0-based; -1 before the start */
	double cap;   /* messages this period; -1 once the warm-up ended */
	double sent;  /* this period */
	double next;  /* epoch seconds the cap refills */
	bool paused;
	char reason[200];
	double bounce_rate, complaint_rate, window_messages;
};

/* The view of source: 0, or -ENOENT when it is not warming. */
int warmup_get(const char *source, struct warmup_view *out);
/* Each warming source's view, in plan order: fn returns nonzero to stop. */
typedef int (*warmup_view_fn)(void *arg, const struct warmup_view *v);
void warmup_foreach(warmup_view_fn fn, void *arg);
/* All views as a JSON array. */
int warmup_list_json(struct buf *out);

/* Pure: the cap of stage (-1 once the plan has ended). */
double warmup_plan_cap(const struct warmup_plan *p, int stage);

#endif
