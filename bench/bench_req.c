/* bench_req: the DWARF benchmark's victim (bench/dwarf.sh). handle(req, i) receives a request
 * whose name is a string reached through two pointers (req, then req->name), called in a timed
 * loop by T threads. usage: bench_req THREADS CALLS [RATE]; protocol in bench/victim.h (that of
 * bench_target). */
#include "victim.h"

struct req {
	int id;
	const char *name;
	const char *path; /* bench/probes.sh: str(req->path), as bpftrace's str(((struct req *)arg0)->path) */
};

__attribute__((noipa, noinline)) long handle(struct req *req, long i)
{
	return req->id + i + req->name[0] + req->path[1];
}

static void req_loop(struct victim_thread *t)
{
	struct req r = { .id = (int)t->id, .name = "/api/users", .path = "/index.html" };
	long sum = 0;
	struct timespec next;
	for (long i = 0; i < t->calls;)
		for (long end = i + victim_burst(t, i, &next); i < end; i++)
			sum += handle(&r, i);
	t->sum = sum;
}

int main(int argc, char **argv)
{
	return victim_main(argc, argv, req_loop);
}
