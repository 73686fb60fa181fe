/* test_ring_giveup: a record reserved in a sub-ring and never published (a writer killed or
 * preempted between its reservation and its publication) holds that sub-ring's drain until
 * the drain gives it up; what it gives up is counted as dropped: the record itself and every
 * published record behind it. Here the reservation is made by the test: before the work
 * fixture's one thread runs, every sub-ring's head is moved 3 units on (a reservation at
 * index 0 that nobody publishes). Then hits == events + dropped - nsubs exactly (the fake
 * reservations are the nsubs drops beyond the hits). */
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

struct tally {
	unsigned long long events;
};

static void on_hit(void *ctx, const struct diag_engine_hit *h)
{
	(void)h;
	((struct tally *)ctx)->events++;
}

int main(void)
{
	struct tally t = { 0 };
	struct diag_engine_callbacks cb = { .on_hit = on_hit, .ctx = &t };
	struct diag_engine *e = NULL;
	CHECK_EQ_INT(diag_engine_new(&cb, &e), 0);
	struct diag_error err = { 0 };
	/* 20000 calls: more than a 1 MiB sub-ring holds, so the ring also fills behind the
	 * stuck record (those are the target's own drops) */
	enum { CALLS = 20000 };
	char calls[16];
	snprintf(calls, sizeof(calls), "%d", CALLS);
	char *argv[] = { "work", "1", calls, "linger", NULL };
	struct fixture f;
	CHECK_EQ_INT(fixture_start_ready(&f, fixture_path("work", "O2", "pie"), argv), 0);
	CHECK_EQ_INT(diag_engine_attach(e, f.pid, &err), 0);
	struct diag_probe_def def = { .target = "work", .value = "$arg1", .event = DIAG_EVENT_CALL,
				      .cookie = (void *)1 };
	CHECK_EQ_INT(diag_engine_probe_add(e, f.pid, &def, &err), 0);
	struct diag_probe_info info;
	CHECK_EQ_INT(diag_engine_probe_info(e, f.pid, (void *)1, &info), 0);
	CHECK(info.fast);

	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)f.pid);
	int memfd = open(path, O_RDWR | O_CLOEXEC);
	CHECK(memfd >= 0);
	uint64_t ring = find_ring(f.pid, memfd);
	CHECK(ring != 0);
	struct diag_ring_control ctl = { 0 };
	CHECK_EQ_INT(pread(memfd, &ctl, sizeof(ctl), (off_t)ring), (ssize_t)sizeof(ctl));
	CHECK(ctl.nsubs >= 1 && ctl.nsubs <= DIAG_RING_MAX_SUBS);
	for (uint64_t i = 0; i < ctl.nsubs; i++) { /* nobody writes yet: the thread waits */
		uint64_t head = 3, at = ring + DIAG_RING_CONTROL_BYTES + i * ctl.sub_stride;
		CHECK_EQ_INT(pwrite(memfd, &head, sizeof(head), (off_t)at), (ssize_t)sizeof(head));
	}
	close(memfd);

	fixture_go(&f);
	char line[256];
	bool done = false;
	/* the drain gives a stuck record up after 1000 drains (0.1-1 s): serve until the counts
	 * add up or 30 s pass */
	for (int rounds = 0; rounds < 3000; rounds++) {
		while (fixture_line(&f, line, sizeof(line)) == 1)
			done |= strncmp(line, "sum ", 4) == 0;
		struct pollfd p[2] = { { diag_engine_fd(e), POLLIN, 0 }, { f.out_fd, POLLIN, 0 } };
		poll(p, 2, 10);
		diag_engine_dispatch(e);
		if (done && diag_engine_probe_info(e, f.pid, (void *)1, &info) == 0 &&
		    info.hits == CALLS && t.events + info.dropped >= CALLS + ctl.nsubs)
			break;
	}
	CHECK(done);
	CHECK_EQ_INT(diag_engine_probe_info(e, f.pid, (void *)1, &info), 0);
	fprintf(stderr, "hits %llu events %llu dropped %llu sub-rings %llu\n",
		(unsigned long long)info.hits, t.events, (unsigned long long)info.dropped,
		(unsigned long long)ctl.nsubs);
	CHECK_EQ_INT(info.hits, CALLS);
	CHECK(info.dropped > ctl.nsubs); /* the stuck records, and published ones behind one */
	CHECK_EQ_INT(t.events + info.dropped, CALLS + ctl.nsubs);
	fixture_go(&f); /* let it exit */
	for (int rounds = 0; rounds < 3000 && diag_engine_attached(e, f.pid); rounds++) {
		while (fixture_line(&f, line, sizeof(line)) == 1)
			;
		struct pollfd p[2] = { { diag_engine_fd(e), POLLIN, 0 }, { f.out_fd, POLLIN, 0 } };
		poll(p, 2, 10);
		diag_engine_dispatch(e);
	}
	diag_engine_free(e);
	fixture_reap(&f);
	return CHECK_DONE();
}
