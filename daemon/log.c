/* log: one escaped line per message on stderr (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util/text.h"

/* Messages quote names, targets, paths and target-supplied text: escaped, so every message is
 * one line and none can forge another or drive the terminal. */
void dmn_log(const char *fmt, ...)
{
	char line[2048], safe[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	diag_text_escape(safe, sizeof(safe), line, strlen(line), 0);
	fprintf(stderr, "diagnosed: %s\n", safe);
}
