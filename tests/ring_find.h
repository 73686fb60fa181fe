/* ring_find: where a traced process's ring v2 mapping is, for tests that read it through
 * /proc/PID/mem (its control block, sub-rings, counters and thread table). */
#ifndef DIAG_TESTS_RING_FIND_H
#define DIAG_TESTS_RING_FIND_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <unistd.h>

#include "arch/ring.h"

/* The ring v2 mapping of pid: the anonymous mapping that starts with the ring's magic. */
static inline uint64_t find_ring(pid_t pid, int memfd)
{
	char path[64], line[512];
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	FILE *f = fopen(path, "r");
	uint64_t found = 0;
	while (f && !found && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char perms[8];
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3 || perms[0] != 'r')
			continue;
		uint64_t magic = 0;
		if (pread(memfd, &magic, sizeof(magic), (off_t)lo) == (ssize_t)sizeof(magic) &&
		    magic == DIAG_RING_MAGIC_V2)
			found = lo;
	}
	if (f)
		fclose(f);
	return found;
}

#endif
