/* test_wake: the drain timer's adaptive period (lib/engine/wake.c) on a real engine and its
 * real timerfd: drains that find a ring over a quarter full halve the period down to 100 us,
 * a ring between a sixteenth and a quarter holds it, eight calm drains double it back up to
 * 1 ms, and the armed timer's interval follows every change (read back from the kernel). */
#include <sys/timerfd.h>

#include "check.h"
#include "engine/engine_internal.h"

static long armed_ns(struct diag_engine *e)
{
	struct itimerspec its;
	if (timerfd_gettime(e->timerfd, &its) < 0)
		return -1;
	return its.it_interval.tv_sec * 1000000000L + its.it_interval.tv_nsec;
}

/* One timer tick whose drain found `used` of 1024 waiting. */
static void tick(struct diag_engine *e, uint64_t used)
{
	eng_wake_note(e, used, 1024);
	eng_wake_tick(e);
}

int main(void)
{
	struct diag_engine *e;
	CHECK_EQ_INT(diag_engine_new(NULL, &e), 0);
	if (!e)
		return CHECK_DONE();
	eng_wake_arm(e, true);
	CHECK_EQ_INT(armed_ns(e), 1000000);

	static const long down[] = {500000, 250000, 125000, 100000, 100000};
	for (size_t i = 0; i < sizeof(down) / sizeof(down[0]); i++) {
		tick(e, 300); /* over a quarter */
		CHECK_EQ_INT(e->wake.period_ns, down[i]);
		CHECK_EQ_INT(armed_ns(e), down[i]);
	}
	for (int i = 0; i < 20; i++) /* busy but not full: the period holds */
		tick(e, 100);
	CHECK_EQ_INT(armed_ns(e), 100000);

	for (int i = 0; i < 7; i++) /* calm, but not for long enough */
		tick(e, 10);
	CHECK_EQ_INT(armed_ns(e), 100000);
	tick(e, 10);
	CHECK_EQ_INT(armed_ns(e), 200000);
	for (int i = 0; i < 8 * 4; i++)
		tick(e, 0);
	CHECK_EQ_INT(armed_ns(e), 1000000); /* 200 -> 400 -> 800 -> 1000, no further */
	CHECK_EQ_INT(e->wake.changes, 4 + 4); /* down to the floor (staying there is no change), back up */

	/* the fullest of several rings decides */
	eng_wake_note(e, 0, 1024);
	eng_wake_note(e, 1000, 1024);
	eng_wake_tick(e);
	CHECK_EQ_INT(armed_ns(e), 500000);

	eng_wake_arm(e, false);
	CHECK_EQ_INT(armed_ns(e), 0);
	tick(e, 1000); /* disarmed: the period adapts, the timer stays off */
	CHECK_EQ_INT(e->wake.period_ns, 250000);
	CHECK_EQ_INT(armed_ns(e), 0);
	eng_wake_arm(e, true);
	CHECK_EQ_INT(armed_ns(e), 250000);
	diag_engine_free(e);
	return CHECK_DONE();
}
