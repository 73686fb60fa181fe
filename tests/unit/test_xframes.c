/* test_xframes: the pairing of jump return probes' records (lib/engine/exitjump.c) on the
 * record sequences real programs make: recursion, a longjmp out of a probed frame and the same
 * function entered again at the same sp, an exception unwinding through several probed frames
 * up to one that returns, two threads at the same stack addresses, two probes on one
 * function, an exit whose entry was never recorded, the bound on open frames, and a probe
 * removed or a thread gone with frames open. The end-to-end behaviour on live fixtures is in
 * test_retprobe (both paths). */
#include <errno.h>
#include <stdlib.h>

#include "check.h"
#include "engine/engine_internal.h"

static struct probe P, Q;
static struct site fP = {.pr = &P}, gP = {.pr = &P}, hQ = {.pr = &Q}, fQ = {.pr = &Q};

static size_t ex(struct diag_u64map *m, uint64_t th, uint64_t sp, struct eng_xframe *out)
{
	return eng_xf_exit(m, th, sp, NULL, out, 8);
}

static int en(struct diag_u64map *m, uint64_t th, uint64_t sp, uint64_t tsc, struct site *s)
{
	return eng_xf_enter(m, th, sp, tsc, &s, NULL, 1);
}

int main(void)
{
	struct diag_u64map m;
	struct eng_xframe out[8];
	diag_u64map_init(&m);
	const uint64_t A = 0x7f0000001000, B = 0x7f0000002000;

	/* a plain call */
	CHECK_EQ_INT(en(&m, A, 1000, 11, &fP), 0);
	CHECK_EQ_INT(ex(&m, A, 1000, out), 1);
	CHECK(out[0].entry == &fP);
	CHECK_EQ_INT(out[0].tsc, 11);
	CHECK_EQ_INT(eng_xf_open(&m, NULL), 0);

	/* recursion: each exit closes its own depth */
	for (uint64_t d = 0; d < 5; d++)
		CHECK_EQ_INT(en(&m, A, 1000 - 16 * d, 100 + d, &fP), 0);
	for (uint64_t d = 5; d-- > 0;) {
		CHECK_EQ_INT(ex(&m, A, 1000 - 16 * d, out), 1);
		CHECK_EQ_INT(out[0].tsc, 100 + d);
	}
	CHECK_EQ_INT(eng_xf_open(&m, NULL), 0);

	/* longjmp out of a probed frame, then the same function entered again from the same
	 * place: the first frame is gone, the exit is the second's */
	CHECK_EQ_INT(en(&m, A, 900, 1, &gP), 0);
	CHECK_EQ_INT(en(&m, A, 900, 2, &gP), 0);
	CHECK_EQ_INT(eng_xf_open(&m, NULL), 1);
	CHECK_EQ_INT(ex(&m, A, 900, out), 1);
	CHECK_EQ_INT(out[0].tsc, 2);
	/* ... or entered again from higher up (longjmp to an outer setjmp) */
	CHECK_EQ_INT(en(&m, A, 800, 3, &gP), 0);
	CHECK_EQ_INT(en(&m, A, 950, 4, &gP), 0);
	CHECK_EQ_INT(eng_xf_open(&m, NULL), 1);
	CHECK_EQ_INT(ex(&m, A, 950, out), 1);
	CHECK_EQ_INT(out[0].tsc, 4);
	CHECK_EQ_INT(eng_xf_open(&m, NULL), 0);

	/* an exception thrown in h, through g, caught in f, which returns: no event for g or
	 * h, f's exit closes f */
	CHECK_EQ_INT(en(&m, A, 1000, 5, &fP), 0);
	CHECK_EQ_INT(en(&m, A, 900, 6, &gP), 0);
	CHECK_EQ_INT(en(&m, A, 800, 7, &hQ), 0);
	CHECK_EQ_INT(ex(&m, A, 1000, out), 1);
	CHECK(out[0].entry == &fP);
	CHECK_EQ_INT(out[0].tsc, 5);
	CHECK_EQ_INT(eng_xf_open(&m, NULL), 0);

	/* an exit whose entry was not recorded (the probe came while the thread was inside):
	 * nothing closes, and the frames above it stay */
	CHECK_EQ_INT(en(&m, A, 1000, 8, &fP), 0);
	CHECK_EQ_INT(ex(&m, A, 900, out), 0);
	CHECK_EQ_INT(eng_xf_open(&m, NULL), 1);
	CHECK_EQ_INT(ex(&m, A, 1000, out), 1);

	/* two threads at the same addresses (two stacks never overlap, but thread pointers
	 * name the thread, not the stack) */
	CHECK_EQ_INT(en(&m, A, 1000, 20, &fP), 0);
	CHECK_EQ_INT(en(&m, B, 1000, 30, &fP), 0);
	CHECK_EQ_INT(en(&m, B, 900, 31, &gP), 0);
	CHECK_EQ_INT(ex(&m, A, 1000, out), 1);
	CHECK_EQ_INT(out[0].tsc, 20);
	CHECK_EQ_INT(eng_xf_open(&m, NULL), 2);
	CHECK_EQ_INT(ex(&m, B, 900, out), 1);
	CHECK_EQ_INT(out[0].tsc, 31);
	CHECK_EQ_INT(ex(&m, B, 1000, out), 1);
	CHECK_EQ_INT(out[0].tsc, 30);

	/* two probes on one function: one record, a frame each, both close at the exit */
	struct site *both[2] = {&fP, &fQ};
	CHECK_EQ_INT(eng_xf_enter(&m, A, 1000, 40, both, NULL, 2), 0);
	CHECK_EQ_INT(eng_xf_open(&m, NULL), 2);
	CHECK_EQ_INT(ex(&m, A, 1000, out), 2);
	CHECK((out[0].entry == &fQ && out[1].entry == &fP));
	CHECK_EQ_INT(eng_xf_open(&m, NULL), 0);

	/* bounded: a runaway recursion loses the returns beyond the bound, not the others */
	eng_xf_release(&m);
	uint64_t top = 1ull << 40;
	int refused = 0;
	for (uint64_t d = 0; d < ENG_XFRAMES_MAX + 10; d++)
		refused += en(&m, A, top - 16 * d, d, &fP) == -ENOSPC;
	CHECK_EQ_INT(refused, 10);
	CHECK_EQ_INT(eng_xf_open(&m, NULL), ENG_XFRAMES_MAX);
	CHECK_EQ_INT(ex(&m, A, top - 16 * (ENG_XFRAMES_MAX - 1), out), 1);
	CHECK_EQ_INT(out[0].tsc, ENG_XFRAMES_MAX - 1);
	CHECK_EQ_INT(ex(&m, A, top, out), 1);
	CHECK_EQ_INT(out[0].tsc, 0);
	CHECK_EQ_INT(eng_xf_open(&m, NULL), 0);

	/* a probe removed with frames open, a thread gone */
	CHECK_EQ_INT(en(&m, A, 1000, 50, &fP), 0);
	CHECK_EQ_INT(en(&m, A, 900, 51, &hQ), 0);
	CHECK_EQ_INT(en(&m, B, 1000, 52, &hQ), 0);
	eng_xf_forget(&m, &Q);
	CHECK_EQ_INT(eng_xf_open(&m, NULL), 1);
	CHECK_EQ_INT(ex(&m, A, 900, out), 0);
	eng_xf_drop_thread(&m, A);
	CHECK_EQ_INT(eng_xf_open(&m, NULL), 0);
	CHECK_EQ_INT(ex(&m, A, 1000, out), 0);
	eng_xf_release(&m);
	return CHECK_DONE();
}
