/* bench_req: the DWARF benchmark's victim (bench/dwarf.sh). handle(req, i) receives a request
 * whose name is a string reached through two pointers (req, then req->name), called in a timed
 * loop by T threads. usage: bench_req THREADS CALLS
 * Prints "ready PID", waits for a line on stdin, runs, prints "wall_ns W" (all threads),
 * "calls_total N" and "sum S", then exits (the protocol of bench_target). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

struct req {
	int id;
	const char *name;
};

__attribute__((noipa, noinline)) long handle(struct req *req, long i)
{
	return req->id + i + req->name[0];
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
	struct req r = { .id = (int)(long)arg, .name = "/api/users" };
	long sum = 0;
	for (long i = 0; i < calls; i++)
		sum += handle(&r, i);
	return (void *)sum;
}

int main(int argc, char **argv)
{
	int threads = argc > 1 ? atoi(argv[1]) : 1;
	calls = argc > 2 ? atol(argv[2]) : 100000;
	if (threads < 1 || threads > 64)
		return 2;
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready %d\n", (int)getpid());
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
	printf("wall_ns %.0f\n", now() - t0);
	printf("calls_total %ld\n", calls * threads);
	printf("sum %ld\n", sum);
	return 0;
}
