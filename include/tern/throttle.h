/* SPDX-License-Identifier: MIT */
/*
 * Rate limits with GCRA (the generic cell rate algorithm): one timestamp per
 * limit, no buckets to refill. A rate of N per period admits one event every
 * period/N seconds, with a burst allowance of `burst` events. Pure: the
 * caller passes the time.
 */
#ifndef TERN_THROTTLE_H
#define TERN_THROTTLE_H

#include <stdbool.h>

struct throttle {
	double interval; /* seconds between events at the steady rate; 0 = unlimited */
	double tolerance; /* (burst - 1) * interval */
	double tat;       /* theoretical arrival time of the next event */
};

/* Parse "120/min", "10/s", "5000/h", "100/day", "50/5min" into events per second. */
int throttle_parse_rate(const char *s, double *per_second);
void throttle_init(struct throttle *t, double per_second, double burst);
/*
 * A config epoch's rate for a throttle already running: the same rate keeps
 * its state (a reload makes no burst and no stall), a different one starts
 * afresh. Returns true when it started afresh.
 */
bool throttle_retune(struct throttle *t, double per_second, double burst);
/* Take one event at now: 0 when allowed, else the seconds to wait before it would be. */
double throttle_take(struct throttle *t, double now);

#endif
