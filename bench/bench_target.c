/* bench_target: the benchmark's victim. A noipa function of three arguments called in a
 * timed loop by T threads. usage: bench_target THREADS CALLS; protocol in bench/victim.h. */
#include "victim.h"

__attribute__((noipa, noinline)) long bench_fn(long a, long b, long c)
{
	return a ^ (b + c);
}

static void bench_loop(struct victim_thread *t)
{
	long sum = 0;
	for (long i = 0; i < t->calls; i++)
		sum += bench_fn(i, t->id, 3);
	t->sum = sum;
}

int main(int argc, char **argv)
{
	return victim_main(argc, argv, bench_loop);
}
