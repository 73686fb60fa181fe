/* store: where specs live between daemon runs. The embedded default is one JSON file (an
 * array of specs with their `applied` records, compact) replaced atomically: temp file in the
 * same directory, fsync, rename, fsync of the directory, so a crash at any moment leaves either
 * the old or the new file. A NULL path is an in-memory store (nothing persisted). What it
 * writes it can always read back: a save larger than the write limit is refused, and the read
 * limit is above it. A file it cannot read is set aside, never overwritten. Never interprets
 * specs beyond the codec in lib/spec. */
#ifndef DIAG_STORE_H
#define DIAG_STORE_H

#include <stddef.h>

#include "spec/spec.h"
#include "util/error.h"

#define DIAG_STORE_READ_MAX (256u << 20)  /* a larger file is not read (and set aside) */
#define DIAG_STORE_WRITE_MAX (128u << 20) /* a save that would be larger is refused */

struct diag_store;

/* path NULL: in-memory store. Returns 0 or -errno. */
int diag_store_open(const char *path, struct diag_store **out);
void diag_store_free(struct diag_store *st);
const char *diag_store_path(const struct diag_store *st); /* NULL when in memory */

/* Lower the write limit (tests, small systems). */
void diag_store_set_write_max(struct diag_store *st, size_t bytes);

/* Load every spec (with applied). A missing file is an empty store (returns 0). A file that
 * cannot be read or parsed (corrupt, too large, not a regular file) is renamed to
 * PATH.corrupt-<unix time>[-N] (never replacing another file) and -DIAG_E_PARSE returned with
 * err naming the reason and the new name; *specs is then empty. When it cannot be moved aside
 * every later save is refused, so it is never overwritten. Returns the count or a negative
 * code. */
int diag_store_load(struct diag_store *st, struct diag_spec ***specs, struct diag_error *err);

/* Replace the whole content atomically. Returns 0 or -errno with err naming the step, or
 * -DIAG_E_LIMIT when the content would exceed the write limit (nothing written). */
int diag_store_save(struct diag_store *st, struct diag_spec *const *specs, size_t n,
		    struct diag_error *err);

/* What went wrong at load (the message diag_store_load returned), or NULL. */
const char *diag_store_problem(const struct diag_store *st);

#endif
