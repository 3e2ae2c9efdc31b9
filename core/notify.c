// SPDX-License-Identifier: MIT
/*
 * sd_notify's datagram protocol, without libsystemd. The socket is created
 * once at start-up, unconnected, and every message is one sendto(): a
 * datagram is delivered whole or not at all, so messages from different
 * threads (the watchdog's keep-alive, the main thread's READY=1) never mix.
 * A manager that went away is not our problem: errors are ignored, as
 * sd_notify's callers ignore them.
 */
#include "tern/notify.h"
#include "tern/log.h"

#include <errno.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define NOTIFY_MAX 512

static int notify_fd = -1;
static struct sockaddr_un notify_addr;
static socklen_t notify_addrlen;
static uint64_t watchdog_usec;

/* "@name" is an abstract socket: a leading NUL, and the length counts exactly the name. */
static int
notify_address(const char *path)
{
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(notify_addr.sun_path) || (path[0] != '/' && path[0] != '@'))
		return -EINVAL;
	memset(&notify_addr, 0, sizeof(notify_addr));
	notify_addr.sun_family = AF_UNIX;
	memcpy(notify_addr.sun_path, path, len);
	if (path[0] == '@')
		notify_addr.sun_path[0] = '\0';
	notify_addrlen =
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '@' ? 0 : 1));
	return 0;
}

/* WATCHDOG_PID names the process the manager watches: a child of ours must not answer for us. */
static void
notify_watchdog_init(void)
{
	const char *usec = getenv("WATCHDOG_USEC");
	const char *pid = getenv("WATCHDOG_PID");

	if (usec == NULL || (pid != NULL && strtol(pid, NULL, 10) != (long)getpid()))
		return;
	watchdog_usec = strtoull(usec, NULL, 10);
}

void
notify_init(void)
{
	const char *path = getenv("NOTIFY_SOCKET");

	/* Called again (tests), it starts afresh. */
	if (notify_fd >= 0)
		close(notify_fd);
	notify_fd = -1;
	watchdog_usec = 0;
	notify_watchdog_init();
	if (path != NULL && notify_address(path) < 0)
		log_warn("notify", "ignoring NOTIFY_SOCKET '%s': not an absolute path or @name",
			 path);
	else if (path != NULL)
		notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (path != NULL && notify_fd < 0)
		watchdog_usec = 0;
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
}

bool
notify_enabled(void)
{
	return notify_fd >= 0;
}

static void
notify_vsend(const char *fmt, va_list ap)
{
	char msg[NOTIFY_MAX];
	int n;

	if (notify_fd < 0)
		return;
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		return;
	if (sendto(notify_fd, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1,
		   MSG_NOSIGNAL, (const struct sockaddr *)&notify_addr, notify_addrlen) < 0)
		log_debug("notify", "sendto NOTIFY_SOCKET: %s", strerror(errno));
}

void
notify_send(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	notify_vsend(fmt, ap);
	va_end(ap);
}

void
notify_ready(void)
{
	notify_send("READY=1\nSTATUS=ready");
}

void
notify_reloading(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	notify_send("RELOADING=1\nSTATUS=reloading the policy\nMONOTONIC_USEC=%llu",
		    (unsigned long long)ts.tv_sec * 1000000ULL +
			(unsigned long long)ts.tv_nsec / 1000);
}

void
notify_stopping(void)
{
	notify_send("STOPPING=1\nSTATUS=stopping");
}

/* STATUS= and, when extend_usec > 0, EXTEND_TIMEOUT_USEC= in the same datagram. */
static void
notify_vstatus(uint64_t extend_usec, const char *fmt, va_list ap)
{
	char status[NOTIFY_MAX - 64];

	if (notify_fd < 0)
		return;
	vsnprintf(status, sizeof(status), fmt, ap);
	if (extend_usec > 0)
		notify_send("STATUS=%s\nEXTEND_TIMEOUT_USEC=%llu", status,
			    (unsigned long long)extend_usec);
	else
		notify_send("STATUS=%s", status);
}

void
notify_status(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	notify_vstatus(0, fmt, ap);
	va_end(ap);
}

void
notify_status_extend(uint64_t extend_usec, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	notify_vstatus(extend_usec, fmt, ap);
	va_end(ap);
}

uint64_t
notify_watchdog_period_usec(void)
{
	return watchdog_usec / 2;
}

void
notify_watchdog(void)
{
	notify_send("WATCHDOG=1");
}
