/* diagnosed_server: the control socket (docs/daemon.md, docs/protocol.md): one JSON object
 * per line each way, non-blocking clients with bounded buffers. Parses each line with
 * dmn_request_parse and runs it on the manager; hits reach it through the manager's hit
 * callback (dmn_manager_on_hit), registered by the main loop. Runs on the main thread and
 * never blocks; a slow tail client loses its own events (counted), never stalls the daemon.
 * Never removes anything at the socket path but a stale socket, and at exit only the socket
 * it created itself. */
#ifndef DMN_SERVER_H
#define DMN_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "diagnosed_manager.h"
#include "util/error.h"

struct dmn_server;

/* Listen on path (parent created 0700 when missing, socket 0600). */
int dmn_server_new(struct dmn_manager *m, const char *path, int epfd, struct dmn_server **out,
		   struct diag_error *err);
void dmn_server_free(struct dmn_server *s);
/* Who else may use the socket (diagnosed_policy.h); takes p (NULL: root only) and frees the
 * previous one. With rules, the socket and its directory become reachable by every user (the
 * policy, not the file mode, decides); without, root's only again. */
struct dmn_policy;
void dmn_server_set_policy(struct dmn_server *s, struct dmn_policy *p);
/* True when fd is one of the server's (and the event was handled). */
bool dmn_server_handle(struct dmn_server *s, int fd, uint32_t events);
/* A hit, for tail clients and waits. Never blocks. */
void dmn_server_on_hit(struct dmn_server *s, const struct dmn_mspec *ms,
		       const struct diag_engine_hit *hit);
/* Time out waits; returns the earliest pending wait deadline in ns (0: none). */
int64_t dmn_server_tick(struct dmn_server *s, int64_t now_ns);

#endif
