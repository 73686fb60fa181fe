/* wake_cost: what each way of waking the daemon's drain costs on this machine, for the drain
 * scheduling decision (docs/architecture.md, "Drain scheduling"):
 *   - the daemon's periodic timer: CPU time per tick of a timerfd at 1 ms and at 100 us;
 *   - a high-water wake from the hit path: FUTEX_WAKE on a shared word with no waiter (the
 *     syscall floor) and with a waiter parked on the other CPU (the hitting thread's cost, and
 *     the latency until the waiter runs), and an eventfd write to an epoll waiter.
 * The hitting thread runs on CPU 0, the waiter on CPU 1. usage: wake_cost [ROUNDS] */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void pin(int cpu)
{
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	pthread_setaffinity_np(pthread_self(), sizeof(s), &s);
}

static long futex(_Atomic uint32_t *w, int op, uint32_t v)
{
	return syscall(SYS_futex, w, op, v, NULL, NULL, 0);
}

/* CPU ns the waiting thread spends per tick of a periodic timerfd. */
static double timer_tick_cost(long period_ns, int ticks)
{
	int fd = timerfd_create(CLOCK_MONOTONIC, 0);
	struct itimerspec its = {{0, period_ns}, {0, period_ns}};
	timerfd_settime(fd, 0, &its, NULL);
	uint64_t c0 = thread_cpu_ns(), n;
	for (int i = 0; i < ticks; i++)
		if (read(fd, &n, sizeof(n)) != sizeof(n))
			break;
	double r = (double)(thread_cpu_ns() - c0) / ticks;
	close(fd);
	return r;
}

struct waiter {
	_Atomic uint32_t word;
	_Atomic uint64_t woke_at; /* when the waiter ran again */
	_Atomic int stop;
	int efd, epfd;
	_Atomic int parked;
};

static void *futex_waiter(void *arg)
{
	struct waiter *w = arg;
	pin(1);
	while (!atomic_load(&w->stop)) {
		atomic_store(&w->parked, 1);
		futex(&w->word, FUTEX_WAIT, 0);
		atomic_store(&w->woke_at, now_ns());
		atomic_store(&w->parked, 0);
		atomic_store(&w->word, 0);
	}
	return NULL;
}

static void *eventfd_waiter(void *arg)
{
	struct waiter *w = arg;
	pin(1);
	struct epoll_event ev;
	uint64_t n;
	while (!atomic_load(&w->stop)) {
		atomic_store(&w->parked, 1);
		if (epoll_wait(w->epfd, &ev, 1, -1) == 1 && read(w->efd, &n, sizeof(n)) == sizeof(n))
			atomic_store(&w->woke_at, now_ns());
		atomic_store(&w->parked, 0);
	}
	return NULL;
}

/* The waker's cost of one wake and the latency until the waiter runs, averaged. */
static void wake_round(struct waiter *w, int rounds, int use_eventfd, double *cost, double *lat)
{
	double c = 0, l = 0;
	for (int i = 0; i < rounds; i++) {
		while (!atomic_load(&w->parked))
			;
		struct timespec pause = {0, 200000}; /* let the waiter fall asleep */
		nanosleep(&pause, NULL);
		atomic_store(&w->woke_at, 0);
		uint64_t t0 = now_ns();
		if (use_eventfd) {
			uint64_t one = 1;
			if (write(w->efd, &one, sizeof(one)) < 0)
				break;
		} else {
			atomic_store(&w->word, 1);
			futex(&w->word, FUTEX_WAKE, 1);
		}
		uint64_t t1 = now_ns();
		while (!atomic_load(&w->woke_at))
			;
		c += (double)(t1 - t0);
		l += (double)(atomic_load(&w->woke_at) - t0);
	}
	*cost = c / rounds;
	*lat = l / rounds;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 200;
	pin(0);
	printf("timerfd tick, 1 ms period:      %8.0f ns of CPU per tick\n",
	       timer_tick_cost(1000000, 1000));
	printf("timerfd tick, 100 us period:    %8.0f ns of CPU per tick\n",
	       timer_tick_cost(100000, 5000));

	_Atomic uint32_t lone = 0;
	uint64_t t0 = now_ns();
	for (int i = 0; i < 100000; i++)
		futex(&lone, FUTEX_WAKE, 1);
	printf("FUTEX_WAKE, no waiter:          %8.0f ns on the hitting thread\n",
	       (double)(now_ns() - t0) / 100000);

	struct waiter w = {0};
	pthread_t th;
	double cost, lat;
	pthread_create(&th, NULL, futex_waiter, &w);
	wake_round(&w, rounds, 0, &cost, &lat);
	printf("FUTEX_WAKE, waiter on CPU 1:    %8.0f ns on the hitting thread, %8.0f ns until "
	       "the waiter runs\n", cost, lat);
	atomic_store(&w.stop, 1);
	atomic_store(&w.word, 1);
	futex(&w.word, FUTEX_WAKE, 1);
	pthread_join(th, NULL);

	struct waiter e = {0};
	e.efd = eventfd(0, EFD_NONBLOCK);
	e.epfd = epoll_create1(0);
	struct epoll_event ev = {.events = EPOLLIN};
	epoll_ctl(e.epfd, EPOLL_CTL_ADD, e.efd, &ev);
	pthread_create(&th, NULL, eventfd_waiter, &e);
	wake_round(&e, rounds, 1, &cost, &lat);
	printf("eventfd write, epoll on CPU 1:  %8.0f ns on the hitting thread, %8.0f ns until "
	       "the waiter runs\n", cost, lat);
	atomic_store(&e.stop, 1);
	uint64_t one = 1;
	if (write(e.efd, &one, sizeof(one)) < 0)
		return 1;
	pthread_join(th, NULL);
	return 0;
}
