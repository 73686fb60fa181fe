/* ctl_print: diagnosectl's human output for daemon replies (tables, histogram bars, event
 * lines). Owns formatting only; never talks to the daemon and never decides exit codes. */
#ifndef DIAG_CTL_PRINT_H
#define DIAG_CTL_PRINT_H

#include <stdio.h>

#include <cjson/cJSON.h>

/* The "list" reply as a table: ID TARGET TYPE NAME EVENT PROCESS STATE HITS EXPIRES, one row
 * per process in "applied" (one row with "-" when none) and the error text under a row in
 * state "error". */
void diag_ctl_print_list(FILE *out, const cJSON *reply);

/* The "status" reply: daemon pid, counters, queue and one row per target process. */
void diag_ctl_print_status(FILE *out, const cJSON *reply);

/* The "stats" reply: per probe a header line "ID (NAME) ..." and, for hist, the bars. */
void diag_ctl_print_stats(FILE *out, const cJSON *reply);

/* The "folded" member of each report in a "stats" reply (incr with custom.by_value: one
 * "root;...;leaf count" line per distinct value), as is. Returns how many reports had one. */
size_t diag_ctl_print_folded(FILE *out, const cJSON *reply);

/* One tail line: `Probe (NAME) = TEXT`, or `Probe (NAME)` for an event without a value. */
void diag_ctl_print_event(FILE *out, const cJSON *event);

/* The "hosts" reply (the shared store): HOST VERSION LAST-SEEN PROCESSES STATE. */
void diag_ctl_print_hosts(FILE *out, const cJSON *reply);

/* The "symbols" reply: MODULE ADDRESS SIZE FUNCTION, and a note when the list was cut. */
void diag_ctl_print_symbols(FILE *out, const cJSON *reply);

/* The "vars" reply: KIND (param/local) NAME TYPE LOCATION. */
void diag_ctl_print_vars(FILE *out, const cJSON *reply);

#endif
