// SPDX-License-Identifier: MIT
/*
 * Diagnostics. One line per event: time, level, module, message, then the
 * thread's context as key=value pairs. Lines are written with one write(2)
 * so that shards never interleave within a line.
 */
#include "tern/log.h"
#include "tern/util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define LOG_MAX_DEBUG_MODULES 32

static enum log_level log_level = LOG_LEVEL_INFO;
static int log_fd = -1;
static const char *debug_modules[LOG_MAX_DEBUG_MODULES];
static int n_debug_modules;
static bool debug_all;
static __thread struct log_ctx thread_ctx = {.shard = -1};

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int
log_init(enum log_level level, const char *path)
{
	log_level = level;
	if (path == NULL)
		return 0;
	log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	return log_fd < 0 ? -errno : 0;
}

void
log_set_level(enum log_level level)
{
	log_level = level;
}

int
log_level_parse(const char *name)
{
	size_t i;

	for (i = 0; i < TERN_ARRAY_LEN(level_names); i++)
		if (strcmp(name, level_names[i]) == 0)
			return (int)i;
	return -1;
}

void
log_enable_debug(const char *module)
{
	if (strcmp(module, "all") == 0)
		debug_all = true;
	else if (n_debug_modules < LOG_MAX_DEBUG_MODULES)
		debug_modules[n_debug_modules++] = xstrdup(module);
}

static bool
debug_enabled_for(const char *module)
{
	int i;

	if (debug_all)
		return true;
	for (i = 0; i < n_debug_modules; i++)
		if (strcmp(debug_modules[i], module) == 0)
			return true;
	return false;
}

bool
log_enabled(enum log_level level, const char *module)
{
	if (level == LOG_LEVEL_DEBUG)
		return log_level >= LOG_LEVEL_DEBUG || debug_enabled_for(module);
	return level <= log_level;
}

struct log_ctx *
log_context(void)
{
	return &thread_ctx;
}

static void
append_context(struct buf *b)
{
	const struct log_ctx *c = &thread_ctx;

	if (c->shard >= 0)
		buf_printf(b, " shard=%d", c->shard);
	if (c->session)
		buf_printf(b, " session=%s", c->session);
	if (c->msg)
		buf_printf(b, " msg=%s", c->msg);
	if (c->peer)
		buf_printf(b, " peer=%s", c->peer);
	if (c->action)
		buf_printf(b, " (%s)", c->action);
}

static void
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

/* suffix (may be NULL) goes after the message, before the context. */
static void
log_vwrite(enum log_level level, const char *module, const char *suffix, const char *fmt,
	   va_list ap)
{
	char stamp[32];
	struct buf b;

	buf_init(&b);
	util_format_time(util_wallclock(), stamp);
	buf_printf(&b, "%s %s %s: ", stamp, level_names[level], module);
	buf_vprintf(&b, fmt, ap);
	if (suffix)
		buf_append_str(&b, suffix);
	append_context(&b);
	buf_append_char(&b, '\n');
	if (b.data) {
		write_all(STDERR_FILENO, b.data, b.len);
		if (log_fd >= 0)
			write_all(log_fd, b.data, b.len);
	}
	buf_deinit(&b);
}

void
log_write(enum log_level level, const char *module, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(level, module, NULL, fmt, ap);
	va_end(ap);
}

/*
 * Decide under the call site's lock; format outside it. Returns true when a
 * line may be written now, with *suppressed lines held back since the last one
 * over *elapsed seconds.
 */
static bool
ratelimit_pass(struct log_ratelimit *rl, unsigned long *suppressed, double *elapsed)
{
	double now = util_now();
	bool pass = false;

	pthread_mutex_lock(&rl->mu);
	if (rl->last == 0 || now - rl->last >= rl->interval) {
		*suppressed = rl->suppressed;
		*elapsed = now - rl->last;
		rl->suppressed = 0;
		rl->last = now;
		pass = true;
	} else {
		rl->suppressed++;
	}
	pthread_mutex_unlock(&rl->mu);
	return pass;
}

void
log_write_ratelimited(struct log_ratelimit *rl, enum log_level level, const char *module,
		      const char *fmt, ...)
{
	unsigned long suppressed;
	char suffix[96];
	double elapsed;
	va_list ap;

	if (!ratelimit_pass(rl, &suppressed, &elapsed))
		return;
	suffix[0] = '\0';
	if (suppressed > 0)
		snprintf(suffix, sizeof(suffix), " (%lu more in the last %.0fs)", suppressed,
			 elapsed);
	va_start(ap, fmt);
	log_vwrite(level, module, suffix, fmt, ap);
	va_end(ap);
}
