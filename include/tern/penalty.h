/* SPDX-License-Identifier: MIT */
/*
 * Failure counts per client address, shared by every shard, that decay over
 * time: the memory behind brute-force limits such as "at most 10 failed
 * AUTHs per address per 5 minutes". An attacker spreads attempts over
 * connections, and connections over shards, so a per-session count is not
 * enough; one table behind one mutex is, since it is touched only on
 * failures and on the commands they limit.
 */
#ifndef TERN_PENALTY_H
#define TERN_PENALTY_H

#include <stdbool.h>

/*
 * A count that leaks away at limit/window per second: limit failures within
 * window reach the limit, and a client at the limit regains one attempt every
 * window/limit seconds. Addresses are text ("192.0.2.1", "2001:db8::/64"), at most 63 bytes.
 */
struct penalty_rule {
	double limit;  /* failures; 0 disables the rule */
	double window; /* seconds */
};

/* Count one failure of addr at time now (seconds, monotonic). */
void penalty_add(const struct penalty_rule *r, const char *addr, double now);
/* One more failure of addr would pass the rule's limit: refuse its next attempt. */
bool penalty_over(const struct penalty_rule *r, const char *addr, double now);
/* Forget every address (for tests). */
void penalty_reset(void);

#endif
