/* diagnosed_fleet: the daemon's side of the shared store in Redis (issue 12, docs/fleet.md).
 * A store thread of its own does every Redis call (connect with backoff, subscribe, read the
 * whole set at every (re)connect, read one spec per notification, write this host's applied
 * records and heartbeat); the main loop only takes what the thread posted (an eventfd in its
 * epoll and a locked queue) and makes the manager match it, and hands the thread the records
 * that changed. The engine's thread never waits on the network: the only lock it takes guards
 * a queue, never held across a Redis call. Never writes another host's fields, never
 * read-modify-writes the set; a record that does not parse is reported, never deleted. */
#ifndef DMN_FLEET_H
#define DMN_FLEET_H

#include <stdint.h>

#include "diagnosed_manager.h"
#include "util/error.h"

struct dmn_fleet_opts {
	const char *url;      /* redis://[USER@]HOST:PORT[/DB] */
	const char *password; /* NULL: none (never from the command line) */
	double heartbeat_s;   /* the heartbeat's period (and of hit-count writes); 0: 5 s */
};

struct dmn_fleet;

/* Check the URL, start the thread (it connects on its own: an unreachable store is not an
 * error here, it shows in status and the thread keeps retrying). The manager's host is the
 * name used in HOST:PID and diagnose:hosts. */
int dmn_fleet_new(struct dmn_manager *m, const struct dmn_fleet_opts *o, struct dmn_fleet **out,
		  struct diag_error *err);
/* Before the manager removes the probes: hands the thread this host's records as removed
 * ("diagnosed on HOST stopped"), which it writes when connected, then stops it (a call's
 * deadline at most per call under way) and frees. Accepts NULL. */
void dmn_fleet_free(struct dmn_fleet *f);
/* The fd for the main loop's epoll (readable: the thread posted something), and whether fd is
 * it. */
int dmn_fleet_fd(const struct dmn_fleet *f);
/* fd readable: apply what the thread read (converge the whole set, one change, the state). */
void dmn_fleet_run(struct dmn_fleet *f);
/* Hand the thread the records that changed since the last pass. Returns when to be called
 * again (ns, wall clock). Accepts NULL (returns 0). */
int64_t dmn_fleet_tick(struct dmn_fleet *f, int64_t now_ns);

#endif
