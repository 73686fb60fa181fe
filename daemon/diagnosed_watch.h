/* diagnosed_watch: finds the processes that start after a selector's probe (issue 11,
 * docs/architecture.md "Processes started after the probe"), without polling. Owns the exec
 * gate (procwatch/execgate.h, fanotify: the executables of `select.exe`) and the kernel's
 * process events (procwatch/connector.h, netlink), both on the main loop's epoll set, open
 * only while some spec has a selector. A gated exec is adopted by the engine
 * (diag_engine_adopt_exec: held before the new image runs), handed to the manager, then
 * released; an exec or a new name heard from the connector is handed to the manager at once
 * (early, not exact); lost events make the manager scan /proc. The manager decides what is
 * probed. Never keeps an exec waiting: every gate event is answered, errors included. */
#ifndef DMN_WATCH_H
#define DMN_WATCH_H

#include <stdbool.h>

#include "diagnosed_manager.h"

struct dmn_watch;

/* Returns 0 or -ENOMEM; nothing is opened before the first tick that finds a selector. */
int dmn_watch_new(struct dmn_manager *m, int epfd, struct dmn_watch **out);
void dmn_watch_free(struct dmn_watch *w);

/* Open, re-mark or close what the specs need now (after every change of the manager's
 * select_gen). Problems (not root, an old kernel) are logged once per change; the selectors
 * then take processes at add, at load and at each rescan only. */
void dmn_watch_tick(struct dmn_watch *w);

/* Whether fd (from epoll) is the watch's; handle what is ready. */
bool dmn_watch_owns(const struct dmn_watch *w, int fd);
void dmn_watch_run(struct dmn_watch *w, int fd);

#endif
