/* diagnosed_crash: the daemon's own fatal signals (SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE).
 * A daemon that crashed is not trusted to write into its targets: its handler only starts a
 * fresh image of itself, `diagnosed --recover-after PID`, and dies with the original signal
 * (core dump and exit status preserved). The recovery process waits until the dead daemon's
 * ptrace links are gone, then takes every patch out of every process it had journaled, with
 * the engine's own journal recovery (attach + detach), and exits: it never serves. See
 * docs/reliability.md, "The daemon's own fatal signals".
 *
 * The single exception to "no global mutable state": a signal handler has no argument
 * through which its data could reach it, so diagnosed_crash.c keeps one static pointer to the
 * state dmn_crash_arm() precomputed. Nothing else is global, and the pointer is written once,
 * before the handlers are installed. */
#ifndef DIAGNOSED_CRASH_H
#define DIAGNOSED_CRASH_H

#include <signal.h>
#include <sys/types.h>

#include "util/error.h"

/* The engine's default journal directory (lib/engine/engine.c) when DIAG_JOURNAL_DIR is unset:
 * the recovery process lists it to find the dead daemon's processes. */
#define DMN_CRASH_JOURNAL_DEFAULT "/run/diagnose/journal"

/* Precompute the recovery command (this executable, `--recover-after <our pid>`, a copy of
 * the environment, which carries DIAG_JOURNAL_DIR) and install the fatal-signal handlers on an
 * alternate stack. Call once, early in main, before any thread exists. Returns 0 or -errno
 * with err filled; the daemon runs on without the handlers then. */
int dmn_crash_arm(struct diag_error *err);

/* `diagnosed --recover-after PID`: wait until PID is gone, restore every process named in the
 * journal directory that PID's ptrace no longer holds, print one line per process and a
 * summary on stderr. Returns the exit status: 0 when every process was restored (or there was
 * nothing to do), 1 when one could not be. */
int dmn_crash_recover(pid_t dead);

/* Block SIGTERM, SIGINT and SIGHUP in the calling thread (*mask: that set): the serving daemon
 * takes them from its signalfd, the recovery process must not be stopped half-way by them. */
void dmn_crash_block_stop_signals(sigset_t *mask);

/* Test hook (tests/faults/test_daemon_fatal.sh): DIAG_TEST_CRASH=segv|bus|abort makes the
 * daemon fault for real once a probe has hit. Returns the signal to raise, or 0 (unset). */
int dmn_crash_test_signal(void);
/* Fault with that signal: a NULL store, a read past the end of a mapped empty file, abort(). */
void dmn_crash_test_fire(int sig);

#endif
