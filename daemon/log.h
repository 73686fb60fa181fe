/* log: the daemon's messages to the operator, one line each on stderr ("diagnosed: ..."), or,
 * when stderr is the journal's stream (systemd sets JOURNAL_STREAM to its device and inode),
 * journal entries with a priority and SYSLOG_IDENTIFIER=diagnosed. Escaped so that a quoted
 * name, path or target-supplied text can neither break the line nor drive a terminal. Used by
 * the main loop, the manager, the server and the crash recovery. Owns no state; never writes
 * stdout (the event stream's, written by the queue's worker only). */
#ifndef DMN_LOG_H
#define DMN_LOG_H

/* A problem the operator should see (warning priority). */
void dmn_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* What the daemon is doing (info priority): started, serving, exiting. */
void dmn_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The audit trail (notice priority, with DIAGNOSE_AUDIT=1 in the journal). */
void dmn_audit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
