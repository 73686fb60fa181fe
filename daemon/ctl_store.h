/* ctl_store: diagnosectl against the shared store (--store redis://...) with no daemon: it
 * answers the requests a daemon would (add, remove, list, hosts) from the store itself, with
 * replies of the same shape, so printing and exit statuses are the client's usual ones. Owns
 * one store connection; never prints. */
#ifndef CTL_STORE_H
#define CTL_STORE_H

#include <cjson/cJSON.h>

#include "util/error.h"

struct ctl_store;

/* The password comes from password_file (its first line) when given, else from the
 * environment's DIAGNOSE_REDIS_PASSWORD, else none. */
int ctl_store_open(const char *url, const char *password_file, double stale_s,
		   struct ctl_store **out,
		   struct diag_error *err);
void ctl_store_close(struct ctl_store *s);

/* The reply to req ({"ok":true,...} or {"ok":false,"error":"..."}); NULL when out of memory. */
cJSON *ctl_store_call(struct ctl_store *s, const cJSON *req);

#endif
