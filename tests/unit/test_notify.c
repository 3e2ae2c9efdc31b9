// SPDX-License-Identifier: MIT
/* The notify protocol: path, @abstract and invalid addresses, messages, the watchdog period. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "tern/notify.h"

/* A manager's socket at name ("@x" abstract, else a path); returns its descriptor. */
static int
manager_socket(const char *name)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	size_t len = strlen(name);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	memcpy(a.sun_path, name, len);
	if (name[0] == '@')
		a.sun_path[0] = '\0';
	else
		len++;
	assert_int_equal(bind(fd, (struct sockaddr *)&a,
			      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)),
			 0);
	return fd;
}

static void
expect_message(int fd, const char *want)
{
	char buf[600];
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

	assert_true(n > 0);
	buf[n] = '\0';
	assert_string_equal(buf, want);
}

static void
test_abstract_socket(void **state)
{
	char name[64];
	int fd;

	snprintf(name, sizeof(name), "@tern-test-notify-%d", (int)getpid());
	fd = manager_socket(name);
	setenv("NOTIFY_SOCKET", name, 1);
	notify_init();
	assert_true(notify_enabled());
	assert_null(getenv("NOTIFY_SOCKET"));
	notify_ready();
	expect_message(fd, "READY=1\nSTATUS=ready");
	notify_status_extend(30000000, "recovering: %d messages", 42);
	expect_message(fd, "STATUS=recovering: 42 messages\nEXTEND_TIMEOUT_USEC=30000000");
	notify_stopping();
	expect_message(fd, "STOPPING=1\nSTATUS=stopping");
	close(fd);
}

static void
test_path_socket(void **state)
{
	char path[] = "/tmp/tern-test-notify-XXXXXX";
	char sock[64];
	int fd;

	assert_non_null(mkdtemp(path));
	snprintf(sock, sizeof(sock), "%s/notify", path);
	fd = manager_socket(sock);
	setenv("NOTIFY_SOCKET", sock, 1);
	notify_init();
	notify_status("hello %s", "there");
	expect_message(fd, "STATUS=hello there");
	close(fd);
	unlink(sock);
	rmdir(path);
}

static void
test_no_or_bad_socket_sends_nothing(void **state)
{
	unsetenv("NOTIFY_SOCKET");
	notify_init();
	assert_false(notify_enabled());
	notify_ready(); /* nowhere to go: no crash, no error */
	setenv("NOTIFY_SOCKET", "relative/path", 1);
	notify_init();
	assert_false(notify_enabled());
}

static void
test_watchdog_period(void **state)
{
	char pid[32];

	setenv("NOTIFY_SOCKET", "@tern-test-notify-wd", 1);
	setenv("WATCHDOG_USEC", "1000000", 1);
	notify_init();
	assert_int_equal(notify_watchdog_period_usec(), 500000);
	assert_null(getenv("WATCHDOG_USEC"));
	/* Meant for another process (our parent, say): not ours to answer. */
	snprintf(pid, sizeof(pid), "%d", (int)getpid() + 1);
	setenv("WATCHDOG_USEC", "1000000", 1);
	setenv("WATCHDOG_PID", pid, 1);
	notify_init();
	assert_int_equal(notify_watchdog_period_usec(), 0);
	unsetenv("NOTIFY_SOCKET");
	notify_init();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_abstract_socket),
	    cmocka_unit_test(test_path_socket),
	    cmocka_unit_test(test_no_or_bad_socket_sends_nothing),
	    cmocka_unit_test(test_watchdog_period),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
