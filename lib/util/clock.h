/* clock: the two clocks of diagnose, read in one place. Wall time (CLOCK_REALTIME) is what
 * people read in events and specs (timestamps, lifespans, lastmodified); monotonic time
 * (CLOCK_MONOTONIC) measures durations and deadlines, immune to steps of the wall clock.
 * Never sleeps. */
#ifndef DIAG_UTIL_CLOCK_H
#define DIAG_UTIL_CLOCK_H

#include <stdint.h>

/* Nanoseconds since the epoch. */
int64_t diag_clock_wall_ns(void);

/* Nanoseconds and milliseconds of CLOCK_MONOTONIC. */
int64_t diag_clock_mono_ns(void);
int64_t diag_clock_mono_ms(void);

#endif
