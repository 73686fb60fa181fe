/* bench_req: the DWARF benchmark's victim (bench/dwarf.sh). handle(req, i) receives a request
 * whose name is a string reached through two pointers (req, then req->name), called in a timed
 * loop by T threads. usage: bench_req THREADS CALLS; protocol in bench/victim.h (that of
 * bench_target). */
#include "victim.h"

struct req {
	int id;
	const char *name;
};

__attribute__((noipa, noinline)) long handle(struct req *req, long i)
{
	return req->id + i + req->name[0];
}

static void req_loop(struct victim_thread *t)
{
	struct req r = { .id = (int)t->id, .name = "/api/users" };
	long sum = 0;
	for (long i = 0; i < t->calls; i++)
		sum += handle(&r, i);
	t->sum = sum;
}

int main(int argc, char **argv)
{
	return victim_main(argc, argv, req_loop);
}
