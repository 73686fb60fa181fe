/* test_ring_spread: every thread gets a sub-ring of its own while there are sub-rings to
 * spare: the daemon writes each new thread's slot in the ring's thread table at its first stop
 * (arch/ring.h), the least used sub-ring. With the hash of the thread pointer alone, 4 threads
 * shared a sub-ring in 12% of address layouts (ASLR moves the stacks), and two threads then
 * had half a buffer each. Checked while the 4 workers call together: exactly 4 sub-rings count
 * their calls, each one a slot names, and the table holds the 5 threads (main too) on 5
 * sub-rings; in each of ROUNDS fixtures (20: a layout where the hash puts two workers together
 * comes up with probability 1 - 0.88^20 = 92%). */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "fixture_proc.h"
#include "ring_find.h"
#include "arch/ring.h"
#include "engine/engine.h"

static void serve(struct diag_engine *e, struct fixture *f, bool *done)
{
	char line[256];
	while (fixture_line(f, line, sizeof(line)) == 1)
		*done |= strncmp(line, "sum ", 4) == 0;
	struct pollfd p[2] = { { diag_engine_fd(e), POLLIN, 0 }, { f->out_fd, POLLIN, 0 } };
	poll(p, 2, 10);
	diag_engine_dispatch(e);
}

enum { THREADS = 4, ROUNDS = 20 };

/* The hits of site 1 (the probe's: the process's first) in each sub-ring. */
static void counts(int memfd, uint64_t ring, const struct diag_ring_control *ctl, uint64_t *n)
{
	for (uint64_t s = 0; s < ctl->nsubs; s++) {
		n[s] = ~0ULL;
		CHECK_EQ_INT(pread(memfd, &n[s], sizeof(n[s]),
				   (off_t)(ring + ctl->counters + (s * DIAG_RING_MAX_SITES + 1) * 8)),
			     (ssize_t)sizeof(n[s]));
	}
}

static unsigned nonzero(const uint64_t *n, uint64_t nsubs)
{
	unsigned k = 0;
	for (uint64_t s = 0; s < nsubs; s++)
		k += n[s] != 0;
	return k;
}

static void one_round(struct diag_engine *e, unsigned *hash_collided)
{
	struct diag_error err = { 0 };
	char threads[16];
	snprintf(threads, sizeof(threads), "%d", THREADS);
	/* 10 M calls each: the 4 run together (a worker that ended would free its sub-ring for
	 * the next); a condition the target finds false: counted, nothing to drain */
	char *argv[] = { "work", threads, "10000000", "linger", NULL };
	struct fixture f;
	CHECK_EQ_INT(fixture_start_ready(&f, fixture_path("work", "O2", "pie"), argv), 0);
	CHECK_EQ_INT(diag_engine_attach(e, f.pid, &err), 0);
	struct diag_probe_def def = { .target = "work", .value = "$arg1", .condition = "$arg1 < 0",
				      .event = DIAG_EVENT_CALL, .cookie = (void *)1 };
	CHECK_EQ_INT(diag_engine_probe_add(e, f.pid, &def, &err), 0);
	struct diag_probe_info info;
	CHECK_EQ_INT(diag_engine_probe_info(e, f.pid, (void *)1, &info), 0);
	CHECK(info.fast);
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)f.pid);
	int memfd = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(memfd >= 0);
	uint64_t ring = find_ring(f.pid, memfd);
	CHECK(ring != 0);
	struct diag_ring_control ctl = { 0 };
	CHECK_EQ_INT(pread(memfd, &ctl, sizeof(ctl), (off_t)ring), (ssize_t)sizeof(ctl));
	CHECK(ctl.nsubs > THREADS && ctl.nsubs <= DIAG_RING_MAX_SUBS);
	fixture_go(&f);
	/* until every worker has called (or 3000 dispatches): each one's sub-ring counts */
	uint64_t n[DIAG_RING_MAX_SUBS];
	bool done = false;
	for (int rounds = 0; rounds < 3000; rounds++) {
		serve(e, &f, &done);
		counts(memfd, ring, &ctl, n);
		if (nonzero(n, ctl.nsubs) >= THREADS || done)
			break;
	}
	/* the table: main and the 4 workers, each its own sub-ring; would the hash have shared? */
	struct diag_ring_tpslot tab[DIAG_RING_TP_SLOTS];
	CHECK_EQ_INT(pread(memfd, tab, sizeof(tab), (off_t)(ring + DIAG_RING_TP_TABLE)),
		     (ssize_t)sizeof(tab));
	uint64_t hashed = 0, given = 0;
	unsigned slotted = 0, shift = 64 - (unsigned)__builtin_ctzll(ctl.nsubs);
	for (unsigned i = 0; i < DIAG_RING_TP_SLOTS; i++)
		if (tab[i].thread) {
			slotted++;
			hashed |= 1ULL << diag_ring_sub_of(tab[i].thread, shift);
			given |= 1ULL << tab[i].sub;
		}
	*hash_collided += (unsigned)__builtin_popcountll(hashed) < slotted;
	counts(memfd, ring, &ctl, n);
	close(memfd);
	fprintf(stderr, "sub-rings %llu: %u count the workers' calls; %u threads in the table, "
		"on %d sub-rings (hashed: %d)\n", (unsigned long long)ctl.nsubs,
		nonzero(n, ctl.nsubs), slotted, __builtin_popcountll(given),
		__builtin_popcountll(hashed));
	CHECK_EQ_INT(slotted, THREADS + 1);
	CHECK_EQ_INT(__builtin_popcountll(given), THREADS + 1);
	CHECK_EQ_INT(nonzero(n, ctl.nsubs), THREADS);
	for (uint64_t s = 0; s < ctl.nsubs; s++)
		CHECK(!n[s] || (given & (1ULL << s))); /* a worker's calls: in its slot's sub-ring */
	CHECK(!done); /* read while the workers ran */
	for (int rounds = 0; rounds < 3000 && !done; rounds++)
		serve(e, &f, &done);
	fixture_go(&f); /* let it exit */
	for (int rounds = 0; rounds < 3000 && diag_engine_attached(e, f.pid); rounds++)
		serve(e, &f, &done);
	fixture_reap(&f);
}

int main(void)
{
	struct diag_engine *e = NULL;
	struct diag_engine_callbacks cb = { 0 };
	CHECK_EQ_INT(diag_engine_new(&cb, &e), 0);
	unsigned other = 0;
	for (int i = 0; i < ROUNDS; i++)
		one_round(e, &other);
	fprintf(stderr, "%u of %d layouts: the hash alone would have put two of the 5 threads together\n",
		other, ROUNDS);
	diag_engine_free(e);
	return CHECK_DONE();
}
