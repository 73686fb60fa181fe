/* log: one escaped line per message, on stderr or into the journal (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#ifdef DIAG_HAVE_SYSTEMD
#include <systemd/sd-journal.h>
#endif

#include "util/text.h"

/* systemd's rule (systemd.exec(5)): stderr is the journal when JOURNAL_STREAM names its
 * device and inode; a stderr redirected elsewhere since then is not. */
static bool stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat sb;
	return js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(2, &sb) == 0 &&
	       (unsigned long long)sb.st_dev == dev && (unsigned long long)sb.st_ino == ino;
}

/* Messages quote names, targets, paths and target-supplied text: escaped, so every message is
 * one line and none can forge another or drive the terminal. */
static void emit(int prio, bool audit, const char *fmt, va_list ap)
{
	char line[2048], safe[4096];
	vsnprintf(line, sizeof(line), fmt, ap);
	diag_text_escape(safe, sizeof(safe), line, strlen(line), 0);
#ifdef DIAG_HAVE_SYSTEMD
	if (stderr_is_journal() &&
	    sd_journal_send("MESSAGE=%s", safe, "PRIORITY=%d", prio, "SYSLOG_IDENTIFIER=diagnosed",
			    audit ? "DIAGNOSE_AUDIT=1" : "DIAGNOSE_AUDIT=0", NULL) == 0)
		return;
#else
	(void)prio;
	(void)audit;
#endif
	fprintf(stderr, "diagnosed: %s\n", safe);
}

void dmn_log(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	emit(LOG_WARNING, false, fmt, ap);
	va_end(ap);
}

void dmn_info(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	emit(LOG_INFO, false, fmt, ap);
	va_end(ap);
}

void dmn_audit(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	emit(LOG_NOTICE, true, fmt, ap);
	va_end(ap);
}
