/* wake: when the daemon drains the rings. The drain timer's period adapts to how full the
 * rings come back: a drain that finds a ring more than a quarter full halves the period (down
 * to WAKE_MIN_NS), eight drains in a row that find every ring under a sixteenth full double it
 * (up to WAKE_MAX_NS, the 1 ms the engine always had). So a small ring, or one thread's small
 * sub-ring, at a high rate is drained before it fills, and a quiet target costs the daemon no
 * more wake-ups than before. Nothing here runs in the target: the hit path keeps no system
 * call and wakes no other CPU (the measured costs of the alternatives are in
 * docs/architecture.md, "Drain scheduling"). Owns e->wake and the timerfd's setting; never
 * reads a ring (the drain tells it what it found). */
#include "engine/engine_internal.h"

#include <sys/timerfd.h>

#define WAKE_MIN_NS 100000ULL   /* 10,000 drains/s at most: ~5% of a CPU in drain overhead */
#define WAKE_MAX_NS 1000000ULL
#define WAKE_HIGH 4             /* a ring more than 1/WAKE_HIGH full: drain twice as often */
#define WAKE_LOW 16             /* every ring under 1/WAKE_LOW full ... */
#define WAKE_CALM_TICKS 8       /* ... for this many drains: half as often */

static void wake_set(struct diag_engine *e, uint64_t period_ns)
{
	struct itimerspec its = {{0, (long)period_ns}, {0, (long)period_ns}};
	timerfd_settime(e->timerfd, 0, &its, NULL);
}

void eng_wake_arm(struct diag_engine *e, bool want)
{
	if (!e->wake.period_ns)
		e->wake.period_ns = WAKE_MAX_NS;
	if (want == e->timer_armed)
		return;
	wake_set(e, want ? e->wake.period_ns : 0);
	e->timer_armed = want;
}

void eng_wake_note(struct diag_engine *e, uint64_t used, uint64_t capacity)
{
	if (!capacity)
		return;
	if (used * WAKE_HIGH > capacity)
		e->wake.full = true;
	if (used * WAKE_LOW >= capacity)
		e->wake.busy = true;
}

void eng_wake_tick(struct diag_engine *e)
{
	struct eng_wake *w = &e->wake;
	uint64_t p = w->period_ns ? w->period_ns : WAKE_MAX_NS;
	if (w->full && p > WAKE_MIN_NS) {
		p = p / 2 > WAKE_MIN_NS ? p / 2 : WAKE_MIN_NS;
		w->calm = 0;
	} else if (w->busy || w->full) {
		w->calm = 0;
	} else if (++w->calm >= WAKE_CALM_TICKS && p < WAKE_MAX_NS) {
		p = p * 2 < WAKE_MAX_NS ? p * 2 : WAKE_MAX_NS;
		w->calm = 0;
	}
	w->full = w->busy = false;
	if (p == w->period_ns)
		return;
	w->period_ns = p;
	w->changes++;
	if (e->timer_armed)
		wake_set(e, p);
}
