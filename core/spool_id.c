// SPDX-License-Identifier: MIT
/*
 * Message ids: how they are made so that they sort by creation time on every
 * shard, and how they are printed and read back (the layout is in spool.h).
 */
#include "tern/spool.h"

#include <errno.h>
#include <stdatomic.h>
#include <time.h>

static _Atomic uint32_t spool_id_seq;
static __thread uint64_t spool_id_last_us;
static __thread uint32_t spool_id_last_seq;

static void
put_be(uint8_t *p, uint64_t v, int n)
{
	while (n-- > 0) {
		p[n] = (uint8_t)v;
		v >>= 8;
	}
}

static uint64_t
get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;

	while (n-- > 0)
		v = v << 8 | *p++;
	return v;
}

void
spool_make_id(struct spool_id *id, uint16_t node, uint16_t lane)
{
	struct timespec ts;
	uint64_t us;
	uint32_t seq = atomic_fetch_add_explicit(&spool_id_seq, 1, memory_order_relaxed);

	clock_gettime(CLOCK_REALTIME, &ts);
	us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	/*
	 * A shard is one thread, so per-thread state is enough to keep its ids
	 * in creation order: never step back with the wall clock, and when
	 * the shared sequence has wrapped within one microsecond, move on to
	 * the next microsecond instead of sorting before the previous id.
	 */
	if (us < spool_id_last_us)
		us = spool_id_last_us;
	if (us == spool_id_last_us && seq <= spool_id_last_seq)
		us++;
	spool_id_last_us = us;
	spool_id_last_seq = seq;
	put_be(id->b, us, 8);
	put_be(id->b + 8, node, 2);
	put_be(id->b + 10, lane, 2);
	put_be(id->b + 12, seq, 4);
}

double
spool_id_time(const struct spool_id *id)
{
	return (double)get_be(id->b, 8) / 1e6;
}

uint16_t
spool_id_lane(const struct spool_id *id)
{
	return (uint16_t)get_be(id->b + 10, 2);
}

static void
hex_encode(const uint8_t *p, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hex[p[i] >> 4];
		out[2 * i + 1] = hex[p[i] & 15];
	}
	out[2 * n] = '\0';
}

void
spool_id_to_hex(const struct spool_id *id, char out[SPOOL_ID_HEX_LEN + 1])
{
	hex_encode(id->b, SPOOL_ID_LEN, out);
}

int
spool_id_from_hex(const char *hex, size_t len, struct spool_id *id)
{
	size_t i;

	if (len != SPOOL_ID_HEX_LEN)
		return -EINVAL;
	for (i = 0; i < SPOOL_ID_LEN; i++) {
		int hi = util_hex_value(hex[2 * i]), lo = util_hex_value(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		id->b[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}
