/* victim: the protocol shared by the benchmark victims (bench_target, bench_req): usage
 * VICTIM THREADS CALLS [RATE]; RATE (calls per second per thread, 0: as fast as it can) paces
 * each thread in bursts of RATE/1000 calls per millisecond, sleeping between them; prints "ready PID", waits for a line on stdin, runs THREADS threads of
 * CALLS calls each, prints "wall_ns W" (all threads), "calls_total N" and "sum S", then exits.
 * Only the probed function and its call loop belong to each victim. */
#ifndef DIAG_BENCH_VICTIM_H
#define DIAG_BENCH_VICTIM_H

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define VICTIM_MAX_THREADS 64

struct victim_thread {
	long id;    /* 0 .. THREADS-1 */
	long calls;
	long rate;  /* calls per second, 0: unpaced */
	long sum;   /* of the probed function's results: keeps the calls from being elided */
};

static double victim_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

struct victim_slot {
	void (*loop)(struct victim_thread *);
	struct victim_thread t;
};

static void *victim_thread_run(void *arg)
{
	struct victim_slot *s = arg;

	s->loop(&s->t);
	return NULL;
}

/* How many calls t may make now: all that remain unpaced, else the next millisecond's burst
 * after sleeping until its start (absolute deadlines: no drift). */
static inline long victim_burst(struct victim_thread *t, long done, struct timespec *next)
{
	long left = t->calls - done, per_ms = t->rate / 1000 > 0 ? t->rate / 1000 : 1;
	if (!t->rate)
		return left;
	if (done == 0)
		clock_gettime(CLOCK_MONOTONIC, next);
	clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, next, NULL);
	next->tv_nsec += 1000000;
	if (next->tv_nsec >= 1000000000) {
		next->tv_nsec -= 1000000000;
		next->tv_sec++;
	}
	return left < per_ms ? left : per_ms;
}

/* loop makes t->calls calls of the probed function and stores their sum in t->sum. */
static int victim_main(int argc, char **argv, void (*loop)(struct victim_thread *))
{
	struct victim_slot th[VICTIM_MAX_THREADS];
	pthread_t tid[VICTIM_MAX_THREADS];
	int threads = argc > 1 ? atoi(argv[1]) : 1;
	long calls = argc > 2 ? atol(argv[2]) : 100000, sum = 0;
	long rate = argc > 3 ? atol(argv[3]) : 0;
	char line[64];

	if (threads < 1 || threads > VICTIM_MAX_THREADS)
		return 2;
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready %d\n", (int)getpid());
	if (!fgets(line, sizeof(line), stdin))
		return 2;
	double t0 = victim_now_ns();
	for (int i = 0; i < threads; i++) {
		th[i].loop = loop;
		th[i].t = (struct victim_thread){ .id = i, .calls = calls, .rate = rate };
		pthread_create(&tid[i], NULL, victim_thread_run, &th[i]);
	}
	for (int i = 0; i < threads; i++) {
		pthread_join(tid[i], NULL);
		sum += th[i].t.sum;
	}
	printf("wall_ns %.0f\n", victim_now_ns() - t0);
	printf("calls_total %ld\n", calls * threads);
	printf("sum %ld\n", sum);
	return 0;
}

#endif
