/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the unit tests: removing a scratch directory, and
 * driving an event loop for a while or until a condition holds (failing the
 * test if that takes more than ten seconds).
 */
#ifndef TERN_TEST_SUPPORT_H
#define TERN_TEST_SUPPORT_H

#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

#include <ev.h>

static inline int
support_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* rm -rf dir */
static inline int
support_rm_rf(const char *dir)
{
	return nftw(dir, support_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Run the loop for a while without waiting for any particular event. */
static inline void
support_run_for(struct ev_loop *loop, double seconds)
{
	double end = ev_time() + seconds;

	while (ev_time() < end) {
		ev_run(loop, EVRUN_NOWAIT);
		usleep(1000);
	}
}

static inline void
support_guard_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)revents;
	*(bool *)t->data = true;
	ev_break(loop, EVBREAK_ALL);
}

/* Run the loop while busy(arg); false if the ten-second guard fired first. */
static inline bool
support_run_while(struct ev_loop *loop, bool (*busy)(void *), void *arg)
{
	bool fired = false;
	ev_timer guard;

	ev_timer_init(&guard, support_guard_cb, 10.0, 0.);
	guard.data = &fired;
	ev_timer_start(loop, &guard);
	while (busy(arg) && !fired)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &guard);
	return !fired;
}

#endif
