/* SPDX-License-Identifier: MIT */
/*
 * The service manager's notification protocol (sd_notify(3)), spoken
 * directly: one datagram of "KEY=value" lines to the AF_UNIX socket named by
 * $NOTIFY_SOCKET (a path, or '@' for the abstract namespace). No libsystemd:
 * the protocol is a documented datagram, and ternd must also run where there
 * is no systemd at all, in which case every call here does nothing.
 *
 * notify_init() reads the environment once at start-up; afterwards the calls
 * are safe from any thread (one sendto on a descriptor that never changes).
 */
#ifndef TERN_NOTIFY_H
#define TERN_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

/* Read $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID, then unset them for children. */
void notify_init(void);
/* Whether a service manager listens (NOTIFY_SOCKET was set and usable). */
bool notify_enabled(void);
/* Send one message of "KEY=value\n..." lines; silently nothing without a manager. */
void notify_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Listeners are open and the spool recovered (again, after a reload). */
void notify_ready(void);
/* A reload begins; notify_ready() ends it (Type=notify-reload wants MONOTONIC_USEC). */
void notify_reloading(void);
void notify_stopping(void);
/* STATUS=..., the one line `systemctl status` shows. */
void notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * Start-up work that shows progress (spool recovery) asks for more time with
 * each status, so a long but moving recovery never hits TimeoutStartSec.
 */
void notify_status_extend(uint64_t extend_usec, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The keep-alive period the manager asked for (half of WATCHDOG_USEC), 0 when none. */
uint64_t notify_watchdog_period_usec(void);
void notify_watchdog(void);

#endif
