// SPDX-License-Identifier: MIT
/*
 * GCRA. An event at time now is allowed when now >= tat - tolerance; it then
 * moves tat one interval further: from tat itself when now is less than one
 * interval past it, from now after a longer pause. A caller always comes a
 * little late (a timer fires after its time, a busy loop or a descheduled
 * thread adds more); taking max(tat, now) would lose that lateness on every
 * event, and under load a throttled path would run a few percent below its
 * rate. Keeping the schedule loses nothing, and a pause of an interval or
 * more still restarts it from now, so nothing is banked for a burst: over any
 * window the number admitted is at most window/interval + burst + 1.
 */
#include "tern/throttle.h"
#include "tern/util.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int
throttle_parse_rate(const char *s, double *per_second)
{
	const char *slash = strchr(s, '/');
	char *end;
	double count, period;

	if (slash == NULL)
		return -EINVAL;
	count = strtod(s, &end);
	if (end != slash || !(count > 0) || !isfinite(count) || slash[1] == '\0')
		return -EINVAL;
	/* "min" alone means one minute: give the duration parser a leading 1. */
	if (slash[1] >= '0' && slash[1] <= '9') {
		if (util_parse_duration(slash + 1, &period) < 0)
			return -EINVAL;
	} else {
		char one[32] = "1";

		if (strlen(slash + 1) > sizeof(one) - 2)
			return -EINVAL;
		strcat(one, slash + 1);
		if (util_parse_duration(one, &period) < 0)
			return -EINVAL;
	}
	if (period <= 0)
		return -EINVAL;
	*per_second = count / period;
	return 0;
}

void
throttle_init(struct throttle *t, double per_second, double burst)
{
	t->interval = per_second > 0 ? 1.0 / per_second : 0;
	t->tolerance = burst > 1 ? (burst - 1) * t->interval : 0;
	t->tat = 0;
}

bool
throttle_retune(struct throttle *t, double per_second, double burst)
{
	struct throttle next;

	throttle_init(&next, per_second, burst);
	if (next.interval == t->interval && next.tolerance == t->tolerance)
		return false;
	*t = next;
	return true;
}

double
throttle_take(struct throttle *t, double now)
{
	double tat;

	if (t->interval == 0)
		return 0;
	tat = t->tat > now - t->interval ? t->tat : now;
	/* The epsilon absorbs the rounding that repeated additions of interval accumulate. */
	if (now + 1e-9 < tat - t->tolerance)
		return tat - t->tolerance - now;
	t->tat = tat + t->interval;
	return 0;
}
