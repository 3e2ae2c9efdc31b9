/* SPDX-License-Identifier: MIT */
/*
 * The watchdog: one thread for the process that notices a shard whose
 * event-loop iteration has run far past the deadline of the Lua code it is
 * running. A hook that never yields (`while true do end`, a slow pattern over
 * attacker text) cannot be stopped by the hook's deadline timer, because the
 * timer needs the very loop the hook holds; and LuaJIT runs no count hook
 * inside compiled traces. So the watchdog first asks the shard's thread to
 * interrupt the hook (a signal that sets a Lua count/line hook, which raises
 * "hook ... exceeded its deadline" when the interpreter next runs); if the
 * shard is still stuck after a further grace, it logs the hook and its
 * file:line and ends the process with WATCHDOG_EXIT_STATUS, so that the
 * supervisor restarts it. Nothing acknowledged is lost: the spool is durable.
 *
 * Each shard owns a struct watchdog_slot: its thread publishes there (with
 * atomics, never locks) when an iteration begins and ends and which hook it
 * is resuming; only the watchdog thread reads it from elsewhere.
 */
#ifndef TERN_WATCHDOG_H
#define TERN_WATCHDOG_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "tern/util.h"

/* EX_TEMPFAIL: a shard was wedged; restarting is the cure. Also used by a stop that timed out. */
#define WATCHDOG_EXIT_STATUS 75
/* Deadline of Lua code that has none of its own (tern.spawn tasks, tern.shard.call, main). */
#define WATCHDOG_DEFAULT_DEADLINE 30.0
/* Past the deadline, before the interrupt is tried. */
#define WATCHDOG_GRACE 1.0
/* After the interrupt, before the process exits. */
#define WATCHDOG_EXIT_GRACE 2.0

struct lua_State;

/* What the shard is resuming, copied under a sequence lock (seq is odd while it is written). */
struct watchdog_hook {
	char what[64];	  /* hook name: "smtp_server_rcpt_to" */
	char where[192];  /* the hook function's "file:line" */
	double deadline;  /* seconds */
	int64_t since_ms; /* monotonic ms when the outermost resume on the thread began */
	bool active;
};

struct watchdog_slot {
	int id;
	pthread_t thread;
	atomic_bool attached;
	atomic_uint_fast64_t iter;	     /* odd while an iteration runs */
	atomic_int_fast64_t iter_ms;	     /* monotonic ms when the running iteration began */
	atomic_uint_fast64_t interrupt_iter; /* the iteration the watchdog asked to interrupt */
	atomic_uint seq;
	struct watchdog_hook hook;
	struct lua_State *volatile L; /* the coroutine being resumed; read by the signal handler */
	/* The watchdog thread's own bookkeeping. */
	uint64_t seen_iter;
	int64_t interrupted_ms;
	bool warned;
};

void watchdog_slot_init(struct watchdog_slot *w, int id);
/* On the shard's thread, before its loop runs: the signal and the hooks find the slot. */
void watchdog_attach(struct watchdog_slot *w);
/* On the shard's thread when its loop has ended: no longer watched; a stop may await cleanup. */
void watchdog_detach(struct watchdog_slot *w);
bool watchdog_attached(struct watchdog_slot *w);
/* The shard's loop begins / ends one iteration's work. Shard thread only. */
void watchdog_iteration_begin(struct watchdog_slot *w);
void watchdog_iteration_end(struct watchdog_slot *w);
/*
 * The calling thread is about to resume coroutine L running hook what, defined
 * at where, with deadline seconds (0: WATCHDOG_DEFAULT_DEADLINE); also called
 * again for the outer coroutine when a nested resume returns. No-op on a
 * thread without a slot (init runs on the main thread before the watchdog).
 */
void watchdog_hook_enter(struct lua_State *L, const char *what, const char *where, double deadline);
/* No Lua is being resumed any more on the calling thread. */
void watchdog_hook_leave(void);

/* Watch the n slots from a new thread, every 250 ms (the array of pointers is copied). */
int watchdog_start(struct watchdog_slot *const *slots, int n, struct tern_err *err);
void watchdog_stop(void);
/* Describe what a stuck slot is running, for a log line: "hook EVENT at FILE:LINE". */
void watchdog_describe(struct watchdog_slot *w, char *out, size_t n);

#endif
