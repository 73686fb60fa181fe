/* sample_service: a stand-in for a production C service, for the demo. It "handles" requests
 * forever on two worker threads: each request has a path and a payload whose checksum it
 * computes. Nothing here knows about diagnose. usage: sample_service [requests-per-second] */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct request {
	int id;
	const char *path;
	size_t len;
	int status;
	double latency_ms;
};

static const char *const paths[] = {"/index.html", "/api/users", "/api/orders", "/health",
				    "/static/app.js"};

__attribute__((noinline)) unsigned compute_checksum(const char *buf, size_t len)
{
	unsigned sum = 0;
	for (size_t i = 0; i < len; i++)
		sum = sum * 31 + (unsigned char)buf[i];
	return sum;
}

__attribute__((noinline)) int handle_request(struct request *req)
{
	static char payload[65536];
	payload[req->id % sizeof(payload)] = (char)req->id; /* traffic changes the payload */
	unsigned sum = compute_checksum(payload, req->len);
	req->status = (sum & 7) == 0 ? 500 : 200;
	return req->status;
}

static int rate = 200;
unsigned long served[2], failed[2]; /* per worker: what a real service would export */

static void *worker(void *arg)
{
	unsigned seed = (unsigned)(long)arg;
	long me = (long)arg - 1;
	for (int id = 0;; id++) {
		struct request req = {.id = id, .path = paths[rand_r(&seed) % 5]};
		/* payload sizes spread over several powers of two, like real traffic */
		req.len = (size_t)1 << (rand_r(&seed) % 14);
		req.len += (size_t)rand_r(&seed) % req.len;
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (handle_request(&req) != 200)
			failed[me]++;
		served[me]++;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		req.latency_ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
				 (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
		usleep((useconds_t)(2000000 / rate));
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		rate = atoi(argv[1]) > 0 ? atoi(argv[1]) : rate;
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("sample_service %d serving ~%d requests/s\n", (int)getpid(), rate);
	pthread_t t[2];
	for (long i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, worker, (void *)(i + 1));
	pthread_join(t[0], NULL);
	return 0;
}
