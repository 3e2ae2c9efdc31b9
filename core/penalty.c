// SPDX-License-Identifier: MIT
/*
 * Decaying failure counts per client address. The table has a fixed size
 * (set-associative: an address hashes to one set of PENALTY_WAYS slots) so
 * that no number of distinct addresses can grow memory; a new address takes
 * the slot of its set with the least remaining count, so the addresses that
 * failed most recently and most often are the ones remembered.
 *
 * One mutex covers the whole table: it is taken only when a failure is
 * counted or a limited command checks its client, never on the hot path of
 * a transaction.
 */
#include "tern/penalty.h"
#include "tern/util.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define PENALTY_SETS 1024
#define PENALTY_WAYS 8
#define PENALTY_ADDR_MAX 64 /* an address or a prefix ("2001:db8::/64") as text */

struct penalty_slot {
	char addr[PENALTY_ADDR_MAX];
	double count; /* as of last */
	double last;
};

static struct penalty_slot table[PENALTY_SETS][PENALTY_WAYS];
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;

/* The slot's count at time now, after leaking at limit/window per second. */
static double
decayed(const struct penalty_slot *p, const struct penalty_rule *r, double now)
{
	double left;

	if (p->addr[0] == '\0')
		return 0;
	left = p->count - (now - p->last) * r->limit / r->window;
	return left > 0 ? left : 0;
}

/* addr's slot, or NULL when it has none (and create is false). Called locked. */
static struct penalty_slot *
find_slot(const struct penalty_rule *r, const char *addr, double now, bool create)
{
	struct penalty_slot *set = table[util_hash(addr) % PENALTY_SETS];
	struct penalty_slot *victim = &set[0];
	int i;

	for (i = 0; i < PENALTY_WAYS; i++) {
		if (strcmp(set[i].addr, addr) == 0)
			return &set[i];
		if (decayed(&set[i], r, now) < decayed(victim, r, now))
			victim = &set[i];
	}
	if (!create)
		return NULL;
	snprintf(victim->addr, sizeof(victim->addr), "%s", addr);
	victim->count = 0;
	victim->last = now;
	return victim;
}

void
penalty_add(const struct penalty_rule *r, const char *addr, double now)
{
	struct penalty_slot *p;

	if (r->limit <= 0 || r->window <= 0)
		return;
	pthread_mutex_lock(&table_lock);
	p = find_slot(r, addr, now, true);
	p->count = decayed(p, r, now) + 1;
	p->last = now;
	pthread_mutex_unlock(&table_lock);
}

bool
penalty_over(const struct penalty_rule *r, const char *addr, double now)
{
	struct penalty_slot *p;
	bool over;

	if (r->limit <= 0 || r->window <= 0)
		return false;
	pthread_mutex_lock(&table_lock);
	p = find_slot(r, addr, now, false);
	/* Over when one more failure would pass the limit: the limit-th is still allowed. */
	over = p != NULL && decayed(p, r, now) + 1 > r->limit;
	pthread_mutex_unlock(&table_lock);
	return over;
}

void
penalty_reset(void)
{
	pthread_mutex_lock(&table_lock);
	memset(table, 0, sizeof(table));
	pthread_mutex_unlock(&table_lock);
}
