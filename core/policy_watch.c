// SPDX-License-Identifier: MIT
/*
 * The --watch thread. It watches directories, not files: editors and deploys
 * often replace a file by renaming a new one over it, which a watch on the
 * old inode would miss. Events are filtered by full path against the set of
 * loaded files, so a change to an unrelated file in the same directory
 * reloads nothing. The reload itself is the main thread's (SIGHUP), like
 * one an operator asks for.
 */
#include "tern/policy_watch.h"
#include "tern/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#define WATCH_MAX_DIRS 64
#define WATCH_EVENTS (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MODIFY | IN_CREATE)

struct watch_dir {
	int wd;
	char path[PATH_MAX];
};

static struct {
	pthread_mutex_t mu;
	char **files; /* guarded by mu */
	size_t n_files;
	bool changed; /* files changed since the thread last set its watches */
	int ino;
	int wake[2];
	pthread_t thread;
	bool started;
	struct watch_dir dirs[WATCH_MAX_DIRS]; /* the thread's */
	int n_dirs;
} w = {.mu = PTHREAD_MUTEX_INITIALIZER, .ino = -1, .wake = {-1, -1}};

static void
free_files(void)
{
	size_t i;

	for (i = 0; i < w.n_files; i++)
		free(w.files[i]);
	free(w.files);
	w.files = NULL;
	w.n_files = 0;
}

void
policy_watch_set_files(char *const *files, size_t n)
{
	size_t i;

	pthread_mutex_lock(&w.mu);
	free_files();
	w.files = xcalloc(n ? n : 1, sizeof(*w.files));
	for (i = 0; i < n; i++)
		w.files[i] = xstrdup(files[i]);
	w.n_files = n;
	w.changed = true;
	pthread_mutex_unlock(&w.mu);
	if (w.wake[1] >= 0 && write(w.wake[1], "", 1) < 0)
		log_warn("ternd", "--watch: cannot wake the watcher: %s", strerror(errno));
}

static void
add_dir(const char *file)
{
	const char *slash = strrchr(file, '/');
	struct watch_dir *d;
	int i;

	if (w.n_dirs == WATCH_MAX_DIRS)
		return;
	d = &w.dirs[w.n_dirs];
	if (slash == NULL)
		snprintf(d->path, sizeof(d->path), ".");
	else
		snprintf(d->path, sizeof(d->path), "%.*s", (int)(slash - file), file);
	for (i = 0; i < w.n_dirs; i++)
		if (strcmp(w.dirs[i].path, d->path) == 0)
			return;
	d->wd = inotify_add_watch(w.ino, d->path, WATCH_EVENTS);
	if (d->wd < 0)
		log_warn("ternd", "--watch: cannot watch %s: %s", d->path, strerror(errno));
	else
		w.n_dirs++;
}

/* Replace the watches by those of the current file set. */
static void
rewatch(void)
{
	size_t i;
	int j;

	for (j = 0; j < w.n_dirs; j++)
		inotify_rm_watch(w.ino, w.dirs[j].wd);
	w.n_dirs = 0;
	pthread_mutex_lock(&w.mu);
	for (i = 0; i < w.n_files; i++)
		add_dir(w.files[i]);
	w.changed = false;
	pthread_mutex_unlock(&w.mu);
}

static bool
is_loaded(const char *path)
{
	bool found = false;
	size_t i;

	pthread_mutex_lock(&w.mu);
	for (i = 0; i < w.n_files && !found; i++)
		found = strcmp(w.files[i], path) == 0;
	pthread_mutex_unlock(&w.mu);
	return found;
}

static const char *
dir_of_wd(int wd)
{
	int i;

	for (i = 0; i < w.n_dirs; i++)
		if (w.dirs[i].wd == wd)
			return w.dirs[i].path;
	return NULL;
}

/* Read what inotify has: true when one of the loaded files changed. */
static bool
read_events(void)
{
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	char path[PATH_MAX * 2];
	bool hit = false;
	ssize_t len = read(w.ino, buf, sizeof(buf));
	ssize_t off;

	for (off = 0; len > 0 && off < len;) {
		const struct inotify_event *ev = (const void *)(buf + off);
		const char *dir = dir_of_wd(ev->wd);

		if (dir && ev->len > 0) {
			snprintf(path, sizeof(path), "%s/%s", dir, ev->name);
			hit = hit || is_loaded(path);
		}
		off += (ssize_t)(sizeof(*ev) + ev->len);
	}
	return hit;
}

/* Drain the wake pipe: false when it was closed (stop). */
static bool
drain_wake(void)
{
	char c[16];

	return read(w.wake[0], c, sizeof(c)) > 0;
}

static void *
watch_main(void *arg)
{
	struct pollfd fds[2] = {{.fd = -1, .events = POLLIN}, {.fd = -1, .events = POLLIN}};
	double due = 0;

	(void)arg;
	fds[0].fd = w.ino;
	fds[1].fd = w.wake[0];
	rewatch();
	for (;;) {
		int timeout = due > 0 ? (int)((due - util_now()) * 1e3) + 1 : -1;

		if (poll(fds, 2, due > 0 && timeout < 0 ? 0 : timeout) < 0 && errno != EINTR)
			break;
		if ((fds[1].revents & (POLLIN | POLLHUP)) && !drain_wake())
			break;
		if (w.changed)
			rewatch();
		if ((fds[0].revents & POLLIN) && read_events())
			due = util_now() + POLICY_WATCH_DEBOUNCE;
		if (due > 0 && util_now() >= due) {
			due = 0;
			log_info("ternd", "--watch: a policy file changed, reloading");
			kill(getpid(), SIGHUP);
		}
	}
	return NULL;
}

int
policy_watch_start(struct tern_err *err)
{
	w.ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (w.ino < 0 || pipe2(w.wake, O_CLOEXEC) < 0) {
		tern_err_set(err, 0, "", "inotify: %s", strerror(errno));
		return -errno;
	}
	if (pthread_create(&w.thread, NULL, watch_main, NULL) != 0) {
		tern_err_set(err, 0, "", "cannot start the watcher thread");
		return -EAGAIN;
	}
	w.started = true;
	return 0;
}

void
policy_watch_stop(void)
{
	if (w.started) {
		close(w.wake[1]);
		w.wake[1] = -1;
		pthread_join(w.thread, NULL);
		w.started = false;
	}
	if (w.ino >= 0)
		close(w.ino);
	if (w.wake[0] >= 0)
		close(w.wake[0]);
	w.ino = w.wake[0] = -1;
	pthread_mutex_lock(&w.mu);
	free_files();
	pthread_mutex_unlock(&w.mu);
}
