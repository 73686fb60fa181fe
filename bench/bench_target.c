/* bench_target: the benchmark's victim. A noipa function of three arguments called in a
 * timed loop by T threads; its first argument is unique across threads and calls (thread
 * id * CALLS + call number), so a log of $arg1 can be checked for each value exactly once.
 * usage: bench_target THREADS CALLS [RATE]; protocol in bench/victim.h. */
#include "victim.h"

__attribute__((noipa, noinline)) long bench_fn(long a, long b, long c)
{
	return a ^ (b + c);
}

static void bench_loop(struct victim_thread *t)
{
	long sum = 0, base = t->id * t->calls;
	struct timespec next;
	for (long i = 0; i < t->calls;)
		for (long end = i + victim_burst(t, i, &next); i < end; i++)
			sum += bench_fn(base + i, t->id, 3);
	t->sum = sum;
}

int main(int argc, char **argv)
{
	return victim_main(argc, argv, bench_loop);
}
