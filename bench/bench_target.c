/* bench_target: the benchmark's victim. A noipa function of three arguments called in a
 * timed loop by T threads. usage: bench_target THREADS CALLS
 * Prints "ready PID", waits for a line on stdin, runs, prints "wall_ns W" (all threads),
 * "calls_total N" and "sum S", then exits. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

__attribute__((noipa, noinline)) long bench_fn(long a, long b, long c)
{
	return a ^ (b + c);
}

static long calls;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void *runner(void *arg)
{
	long id = (long)arg, sum = 0;
	for (long i = 0; i < calls; i++)
		sum += bench_fn(i, id, 3);
	return (void *)sum;
}

int main(int argc, char **argv)
{
	int threads = argc > 1 ? atoi(argv[1]) : 1;
	calls = argc > 2 ? atol(argv[2]) : 100000;
	if (threads < 1 || threads > 64)
		return 2;
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready %d\n", 0 + (int)getpid());
	char line[64];
	if (!fgets(line, sizeof(line), stdin))
		return 2;
	pthread_t t[64];
	double t0 = now();
	for (long i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, runner, (void *)i);
	long sum = 0;
	for (int i = 0; i < threads; i++) {
		void *r;
		pthread_join(t[i], &r);
		sum += (long)r;
	}
	double el = now() - t0;
	printf("wall_ns %.0f\n", el);
	printf("calls_total %ld\n", calls * threads);
	printf("sum %ld\n", sum);
	return 0;
}
