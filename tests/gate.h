/* gate: the exec gate in tests (procwatch/execgate.h): private copies of fixtures to gate, and
 * waiting (bounded) for one thread's exec at the gate. */
#ifndef DIAG_TESTS_GATE_H
#define DIAG_TESTS_GATE_H

#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "procwatch/execgate.h"
#include "util/clock.h"

/* A private copy of a fixture, so no other test's exec of the fixture meets our gate. */
static inline void copy_file(const char *from, const char *to)
{
	char cmd[3 * 4200 + 64];
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && chmod 755 '%s'", from, to, to);
	if (system(cmd) != 0) {
		fprintf(stderr, "cannot copy %s to %s\n", from, to);
		exit(2);
	}
}

/* Reads gate events until one of tid (0: any) arrives (others are allowed at once). */
static inline bool gate_wait(struct diag_execgate *g, pid_t tid, struct diag_execgate_event *found,
			     int ms)
{
	int64_t end = diag_clock_mono_ms() + ms;
	while (diag_clock_mono_ms() < end) {
		struct pollfd p = {.fd = diag_execgate_fd(g), .events = POLLIN};
		poll(&p, 1, 50);
		struct diag_execgate_event ev[8];
		int n = diag_execgate_read(g, ev, 8);
		bool got = false;
		for (int i = 0; i < n; i++) {
			if (!got && (!tid || ev[i].tid == tid)) {
				*found = ev[i];
				got = true;
			} else {
				diag_execgate_allow(g, &ev[i]);
			}
		}
		if (got)
			return true;
	}
	return false;
}

#endif
