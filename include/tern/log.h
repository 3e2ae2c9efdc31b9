/* SPDX-License-Identifier: MIT */
/*
 * Diagnostics (not outcome records: those are logrec's). Levels and a
 * per-module debug switch are checked before anything is formatted; context
 * (shard, session, message, peer, what was being done) is appended by the
 * formatter from the calling thread's log context, not by each call site.
 */
#ifndef TERN_LOG_H
#define TERN_LOG_H

#include <pthread.h>
#include <stdbool.h>

enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* Per-thread context appended to every diagnostic line written on it. */
struct log_ctx {
	int shard; /* -1 outside shards */
	const char *session;
	const char *msg;
	const char *peer;
	const char *action; /* "while sending RCPT" */
};

/* path may be NULL (stderr only). Returns 0 or -errno. */
int log_init(enum log_level level, const char *path);
void log_set_level(enum log_level level);
/* Parse "error", "warn", "info", "debug"; returns -1 when unknown. */
int log_level_parse(const char *name);
/* Enable debug output for one module ("smtp_server", "coro", ...), or "all". */
void log_enable_debug(const char *module);
bool log_enabled(enum log_level level, const char *module);
struct log_ctx *log_context(void);

void log_write(enum log_level level, const char *module, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_error(mod, ...)                                                                         \
	do {                                                                                        \
		if (log_enabled(LOG_LEVEL_ERROR, mod))                                              \
			log_write(LOG_LEVEL_ERROR, mod, __VA_ARGS__);                               \
	} while (0)
#define log_warn(mod, ...)                                                                          \
	do {                                                                                        \
		if (log_enabled(LOG_LEVEL_WARN, mod))                                               \
			log_write(LOG_LEVEL_WARN, mod, __VA_ARGS__);                                \
	} while (0)
#define log_info(mod, ...)                                                                          \
	do {                                                                                        \
		if (log_enabled(LOG_LEVEL_INFO, mod))                                               \
			log_write(LOG_LEVEL_INFO, mod, __VA_ARGS__);                                \
	} while (0)
#define log_debug(mod, ...)                                                                         \
	do {                                                                                        \
		if (log_enabled(LOG_LEVEL_DEBUG, mod))                                              \
			log_write(LOG_LEVEL_DEBUG, mod, __VA_ARGS__);                               \
	} while (0)

/*
 * Lines that an outside party can trigger at will (a client flooding accept
 * with descriptors exhausted, a peer repeating an error) would fill the disk:
 * each call site of log_ratelimited() writes at most one line per interval,
 * and the next line written says how many were held back meanwhile
 * ("... (N more in the last 10s)"). The state is shared by all threads.
 */
#define LOG_RATELIMIT_INTERVAL 10.0

struct log_ratelimit {
	pthread_mutex_t mu;
	double interval; /* seconds */
	double last;	 /* util_now() of the last line written; 0 before the first */
	unsigned long suppressed;
};

#define LOG_RATELIMIT_INIT(seconds) {PTHREAD_MUTEX_INITIALIZER, (seconds), 0, 0}

void log_write_ratelimited(struct log_ratelimit *rl, enum log_level level, const char *module,
			   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* One rate limit per call site, held in a static of the expansion. */
#define log_ratelimited(level, mod, ...)                                                            \
	do {                                                                                        \
		static struct log_ratelimit log_rl_ = LOG_RATELIMIT_INIT(LOG_RATELIMIT_INTERVAL);  \
		if (log_enabled(level, mod))                                                        \
			log_write_ratelimited(&log_rl_, level, mod, __VA_ARGS__);                   \
	} while (0)

#endif
