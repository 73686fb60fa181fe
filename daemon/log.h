/* log: the daemon's messages to the operator, one line each on stderr ("diagnosed: ..."),
 * escaped so that a quoted name, path or target-supplied text can neither break the line nor
 * drive a terminal. Used by the main loop, the manager and the crash recovery. Owns no state;
 * never writes stdout (the event stream's, written by the queue's worker only). */
#ifndef DMN_LOG_H
#define DMN_LOG_H

/* Print one line "diagnosed: ..." on stderr. */
void dmn_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
