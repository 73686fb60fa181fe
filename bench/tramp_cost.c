/* tramp_cost: nanoseconds per hit of a capture trampoline (lib/arch/trampoline.h, issue 10),
 * in-process: a small function is copied into an RWX region, probed with
 * diag_tramp_build_capture and called in a loop; the unprobed copy's cost is subtracted. The
 * ring (v2, one sub-ring) is drained by the loop itself every 1024 calls, as the daemon would,
 * so every hit records. Probes: registers only; a string two loads away (str(req->name), req
 * in rdi: the second row); a false condition on a register; a false condition on a
 * field (req->id > 4096); registers only with the thread pointer by rdfsbase (where the kernel
 * enables FSGSBASE) instead of the load from %fs:0; registers only from 4 threads at once over
 * 16 sub-rings (wall ns per hit, hits per second). usage: tramp_cost [CALLS] (default 2,000,000; best of 5 runs). */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <time.h>

#include "arch/capture.h"
#include "arch/regs.h"
#include "arch/ring.h"
#include "arch/trampoline.h"
#include "util/error.h"

/* long handle(struct req *r, long i) { return r->id + i; } with a frame, as -O0 would */
__asm__(".intel_syntax noprefix\n.text\n"
	".globl tc_handle, tc_handle_end\n.hidden tc_handle, tc_handle_end\n"
	"tc_handle: push rbp\n mov rbp, rsp\n movsxd rax, dword ptr [rdi]\n add rax, rsi\n pop rbp\n ret\n"
	"tc_handle_end:\n"
	".att_syntax prefix\n");
extern const uint8_t tc_handle[], tc_handle_end[];

struct req {
	int id;
	const char *name;
};

typedef long (*handle_fn)(struct req *, long);

#define REGION (1u << 20)
#define SUB_UNITS (1u << 16)
#define RUNS 5

struct ring {
	uint8_t *base;
	size_t bytes;
	struct diag_ring_control *ctl;
	struct diag_ring_header *sub;
};

static int ring_open(struct ring *r, uint64_t nsubs)
{
	uint64_t stride = sizeof(struct diag_ring_header) + (uint64_t)SUB_UNITS * DIAG_RING_UNIT;
	uint64_t shift = 64;

	for (uint64_t n = nsubs; n > 1; n /= 2)
		shift--;
	stride = (stride + 4095) & ~4095ull;
	r->bytes = DIAG_RING_CONTROL_BYTES + nsubs * (stride + DIAG_RING_MAX_SITES * 8);
	r->base = mmap(NULL, r->bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r->base == MAP_FAILED)
		return -1;
	r->ctl = (void *)r->base;
	*r->ctl = (struct diag_ring_control){ .magic = DIAG_RING_MAGIC_V2, .nsubs = nsubs,
					      .sub_units = SUB_UNITS, .sub_stride = stride,
					      .counters = DIAG_RING_CONTROL_BYTES + nsubs * stride,
					      .alive_until = UINT64_MAX, .hash_shift = shift };
	for (uint64_t i = 0; i < nsubs; i++)
		((struct diag_ring_header *)(void *)(r->base + DIAG_RING_CONTROL_BYTES + i * stride))->mask =
			SUB_UNITS - 1;
	r->sub = (void *)(r->base + DIAG_RING_CONTROL_BYTES);
	return 0;
}

/* The sub-ring the calling thread writes to. */
static struct diag_ring_header *my_sub(const struct ring *r)
{
	uint64_t tp;

	__asm__ volatile("mov %%fs:0, %0" : "=r"(tp));
	return (void *)(r->base + DIAG_RING_CONTROL_BYTES +
			diag_ring_sub_of(tp, r->ctl->hash_shift) * r->ctl->sub_stride);
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* Best of RUNS: ns per call. */
static double time_calls(handle_fn fn, struct ring *r, long calls)
{
	struct req q = { .id = 7, .name = "/api/users" };
	double best = 1e30;
	volatile long sink = 0;

	for (int run = 0; run < RUNS; run++) {
		double t0 = now_ns();
		long sum = 0;

		for (long i = 0; i < calls; i++) {
			sum += fn(&q, i);
			if (r && (i & 1023) == 0)
				__atomic_store_n(&r->sub->tail, __atomic_load_n(&r->sub->head, __ATOMIC_ACQUIRE),
						 __ATOMIC_RELEASE);
		}
		double dt = (now_ns() - t0) / (double)calls;

		sink += sum;
		if (dt < best)
			best = dt;
	}
	(void)sink;
	return best;
}

static void op(struct diag_cap_prog *p, uint8_t o, uint32_t a, uint64_t imm)
{
	p->ops[p->n++] = (struct diag_cap_op){ .op = o, .a = a, .imm = imm };
}

static int probe(uint8_t *region, size_t *used, struct ring *r, const struct diag_cap_prog *cond,
		 const struct diag_cap_prog *value, bool fsgsbase, handle_fn *out)
{
	static uint8_t slot_bytes[DIAG_TRAMP_SLOT];
	struct diag_error err = { 0 };
	uint8_t *fn = region + *used, *slot = region + REGION / 2 + *used * 16;
	struct diag_tramp_capture c;
	size_t len, patched;
	uint8_t jmp[DIAG_TRAMP_PATCH_LEN];

	memcpy(fn, tc_handle, (size_t)(tc_handle_end - tc_handle));
	*used += 256;
	c = (struct diag_tramp_capture){ .kind = DIAG_TRAMP_ENTRY, .addr = (uint64_t)(uintptr_t)fn,
					 .code = fn, .avail = (size_t)(tc_handle_end - tc_handle),
					 .slot = (uint64_t)(uintptr_t)slot, .ring = (uint64_t)(uintptr_t)r->base,
					 .site = 1, .cond = cond, .value = value, .fsgsbase = fsgsbase };
	if (diag_tramp_build_capture(&c, slot_bytes, sizeof(slot_bytes), &len, jmp, &patched, NULL, &err) < 0) {
		fprintf(stderr, "tramp_cost: %s\n", err.msg);
		return -1;
	}
	memcpy(slot, slot_bytes, len);
	memcpy(fn, jmp, sizeof(jmp));
	*out = (handle_fn)(uintptr_t)fn;
	return 0;
}

/* The v1 trampoline (diag_tramp_build_counted: one shared ring, gettid), for comparison. */
static int probe_v1(uint8_t *region, size_t *used, handle_fn *out, struct diag_ring_header **ring)
{
	struct diag_error err = { 0 };
	uint8_t *fn = region + *used, *slot = region + REGION / 2 + *used * 16;
	const uint64_t cap = 1u << 16;
	uint8_t buf[DIAG_TRAMP_MAX], jmp[DIAG_TRAMP_PATCH_LEN];
	size_t len, patched;
	void *r = mmap(NULL, DIAG_RING_MAP_BYTES(cap), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (r == MAP_FAILED)
		return -1;
	*ring = r;
	(*ring)->mask = cap - 1;
	memcpy(fn, tc_handle, (size_t)(tc_handle_end - tc_handle));
	*used += 256;
	if (diag_tramp_build_counted((uint64_t)(uintptr_t)fn, fn, (size_t)(tc_handle_end - tc_handle),
				     (uint64_t)(uintptr_t)slot,
				     &(const struct diag_tramp_ring){ .addr = (uint64_t)(uintptr_t)r,
								      .mask = cap - 1, .site = 1 },
				     buf, sizeof(buf), &len, jmp, &patched, &err) < 0) {
		fprintf(stderr, "tramp_cost: v1: %s\n", err.msg);
		return -1;
	}
	memcpy(slot, buf, len);
	memcpy(fn, jmp, sizeof(jmp));
	*out = (handle_fn)(uintptr_t)fn;
	return 0;
}

/* Best of RUNS for the v1 ring: drained the same way. */
static double time_v1(handle_fn fn, struct diag_ring_header *h, long calls)
{
	struct req q = { .id = 7, .name = "/api/users" };
	double best = 1e30;
	volatile long sink = 0;

	for (int run = 0; run < RUNS; run++) {
		double t0 = now_ns();
		long sum = 0;

		for (long i = 0; i < calls; i++) {
			sum += fn(&q, i);
			if ((i & 1023) == 0)
				__atomic_store_n(&h->tail, __atomic_load_n(&h->head, __ATOMIC_ACQUIRE),
						 __ATOMIC_RELEASE);
		}
		double dt = (now_ns() - t0) / (double)calls;

		sink += sum;
		if (dt < best)
			best = dt;
	}
	(void)sink;
	return best;
}

/* NTHREADS threads calling at once, each draining its own sub-ring (16 of them): wall time
 * per hit of all threads together, so hits per second is 1e9 / it. */
#define NTHREADS 4

struct worker {
	handle_fn fn;
	const struct ring *r;
	long calls;
	pthread_barrier_t *start;
};

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	struct req q = { .id = 7, .name = "/api/users" };
	struct diag_ring_header *h = my_sub(w->r);
	volatile long sum = 0;

	pthread_barrier_wait(w->start);
	for (long i = 0; i < w->calls; i++) {
		sum += w->fn(&q, i);
		if ((i & 1023) == 0)
			__atomic_store_n(&h->tail, __atomic_load_n(&h->head, __ATOMIC_ACQUIRE),
					 __ATOMIC_RELEASE);
	}
	return NULL;
}

static double time_threads(handle_fn fn, const struct ring *r, long calls)
{
	pthread_t th[NTHREADS];
	struct worker w[NTHREADS];
	pthread_barrier_t start;
	double best = 1e30;

	for (int run = 0; run < RUNS; run++) {
		pthread_barrier_init(&start, NULL, NTHREADS + 1);
		for (int i = 0; i < NTHREADS; i++) {
			w[i] = (struct worker){ .fn = fn, .r = r, .calls = calls / NTHREADS, .start = &start };
			pthread_create(&th[i], NULL, worker_run, &w[i]);
		}
		pthread_barrier_wait(&start);
		double t0 = now_ns();

		for (int i = 0; i < NTHREADS; i++)
			pthread_join(th[i], NULL);
		double dt = (now_ns() - t0) / (double)(calls / NTHREADS * NTHREADS);

		pthread_barrier_destroy(&start);
		if (dt < best)
			best = dt;
	}
	return best;
}

int main(int argc, char **argv)
{
	static struct diag_cap_prog str_value, false_reg, false_field;
	long calls = argc > 1 ? atol(argv[1]) : 2000000;
	uint8_t *region = mmap(NULL, REGION, PROT_READ | PROT_WRITE | PROT_EXEC,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	const uint32_t rdi = (uint32_t)diag_reg_lookup("rdi", NULL), rsi = (uint32_t)diag_reg_lookup("rsi", NULL);
	struct ring r[5];
	handle_fn plain, regs, regs_fsgs = NULL, str, fr, ff;
	const bool fsgs = (getauxval(AT_HWCAP2) & 2) != 0; /* HWCAP2_FSGSBASE */
	size_t used = 0;

	if (region == MAP_FAILED || calls <= 0)
		return 1;
	/* str(req->name), limit 64 */
	op(&str_value, DIAG_CAP_REG, rdi, 0);
	op(&str_value, DIAG_CAP_CONST, 0, offsetof(struct req, name));
	op(&str_value, DIAG_CAP_ADD, 0, 0);
	op(&str_value, DIAG_CAP_LOAD, 8, 0);
	op(&str_value, DIAG_CAP_SAVE_STR, 64, 0);
	op(&str_value, DIAG_CAP_END, 0, 0);
	str_value.max_payload = diag_cap_block_bytes(64);
	/* i > 1 << 62 */
	op(&false_reg, DIAG_CAP_REG, rsi, 0);
	op(&false_reg, DIAG_CAP_CONST, 0, 1ull << 62);
	op(&false_reg, DIAG_CAP_GTU, 0, 0);
	op(&false_reg, DIAG_CAP_END, 0, 0);
	/* req->id > 4096 */
	op(&false_field, DIAG_CAP_REG, rdi, 0);
	op(&false_field, DIAG_CAP_LOAD, 4, 0);
	op(&false_field, DIAG_CAP_SEXT, 4, 0);
	op(&false_field, DIAG_CAP_CONST, 0, 4096);
	op(&false_field, DIAG_CAP_GTS, 0, 0);
	op(&false_field, DIAG_CAP_END, 0, 0);
	for (int i = 0; i < 5; i++)
		if (ring_open(&r[i], 1) < 0)
			return 1;
	memcpy(region + used, tc_handle, (size_t)(tc_handle_end - tc_handle));
	plain = (handle_fn)(uintptr_t)(region + used);
	used += 256;
	if (probe(region, &used, &r[0], NULL, NULL, false, &regs) < 0 ||
	    probe(region, &used, &r[1], NULL, &str_value, false, &str) < 0 ||
	    probe(region, &used, &r[2], &false_reg, NULL, false, &fr) < 0 ||
	    probe(region, &used, &r[3], &false_field, NULL, false, &ff) < 0 ||
	    (fsgs && probe(region, &used, &r[4], NULL, NULL, true, &regs_fsgs) < 0))
		return 1;

	double base = time_calls(plain, NULL, calls);
	const struct {
		const char *name;
		handle_fn fn;
		struct ring *r;
	} rows[] = {
		{ "registers only", regs, &r[0] },
		{ "str(req->name), two loads away", str, &r[1] },
		{ "false condition (register)", fr, &r[2] },
		{ "false condition (req->id > 4096)", ff, &r[3] },
		{ "registers only, rdfsbase", regs_fsgs, &r[4] },
	};

	printf("tramp_cost: %ld calls, best of %d; unprobed call %.2f ns\n", calls, RUNS, base);
	{
		struct ring r16;
		handle_fn mt;

		if (ring_open(&r16, 16) == 0 && probe(region, &used, &r16, NULL, NULL, false, &mt) == 0) {
			double t = time_threads(mt, &r16, calls);
			uint64_t hits = 0, drops = 0;

			for (uint64_t s = 0; s < 16; s++) {
				hits += *(uint64_t *)(void *)(r16.base + r16.ctl->counters +
							     (s * DIAG_RING_MAX_SITES + 1) * 8);
				drops += ((struct diag_ring_header *)(void *)(r16.base + DIAG_RING_CONTROL_BYTES +
									      s * r16.ctl->sub_stride))->drops;
			}
			printf("  %-34s %6.2f ns/hit wall, %.1f M hits/s (%d threads, 16 sub-rings; %llu hits, %llu dropped)\n",
			       "registers only, 4 threads", t, 1e3 / t, NTHREADS, (unsigned long long)hits,
			       (unsigned long long)drops);
		}
	}
	{
		handle_fn v1;
		struct diag_ring_header *h;

		if (probe_v1(region, &used, &v1, &h) == 0)
			printf("  %-34s %6.2f ns/hit  (v1 trampoline: one ring, gettid)\n",
			       "registers only, v1", time_v1(v1, h, calls) - base);
	}
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		if (!rows[i].fn)
			continue;
		double t = time_calls(rows[i].fn, rows[i].r, calls);
		uint64_t hits = *(uint64_t *)(void *)(rows[i].r->base + rows[i].r->ctl->counters + 8);

		printf("  %-34s %6.2f ns/hit  (call %.2f ns; %llu hits counted, %llu dropped)\n",
		       rows[i].name, t - base, t, (unsigned long long)hits,
		       (unsigned long long)rows[i].r->sub->drops);
	}
	return 0;
}
