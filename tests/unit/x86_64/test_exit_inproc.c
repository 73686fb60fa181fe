/* test_exit_inproc: return probes on the jump path end to end inside this process, without
 * the engine: the functions of a real -O2 library (tests/fixtures/lib/exits.c) are patched in
 * place with an ENTRY capture trampoline at their entry and an EXIT capture trampoline at
 * every exit diag_exit_plans finds, called (recursion, a longjmp out of the probed frame every
 * other call, a double result, a loop), and the ring's records are paired by thread pointer
 * and sp as the daemon does (eng_xf_*, lib/engine/exitjump.c). Every call that returns gives
 * exactly one pair whose result (rax, or xmm0 captured by the exit's value program) is the
 * one the function returned for the argument its entry record holds; the frames longjmp left
 * give none and leave no open frame. Then the original bytes go back and the functions still
 * compute the same. */
#include <dlfcn.h>
#include <errno.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "elf_sym.h"
#include "inproc_code.h"

#include "arch/branch.h"
#include "arch/capture.h"
#include "arch/regs.h"
#include "arch/ring.h"
#include "arch/trampoline.h"
#include "capture/capture.h"
#include "engine/engine_internal.h"
#include "util/error.h"

#define NFN 3
#define MAXEXITS 8
#define SUB_UNITS 65536

enum { F_REC, F_JUMPER, F_HALF };
static const char *names[NFN] = {"ex_rec", "ex_jumper", "ex_half"};

struct fn {
	uint64_t addr, size;
	uint8_t orig[4096];
	struct diag_exit_plan plans[MAXEXITS];
	int nplans;
	struct probe pr;
	struct site entry;
	uint64_t pairs, bad;
};

static struct fn fns[NFN];
static uint8_t *ring;
static struct diag_ring_control *ctl;
static uint8_t *slots;
static size_t nslots;
static uint32_t site_fn[64];
static bool site_exit[64];

static long (*ex_rec)(long);
static long (*ex_jumper)(long, jmp_buf *);
static double (*ex_half)(double);
static long *ex_calls;

static long rec_want(long n)
{
	long r = n > 0 ? rec_want(n - 1) : 5;
	return r ^ n;
}

static void *map_near(uint64_t addr, size_t len)
{
	for (uint64_t d = 1u << 20; d < (1ull << 30); d += 1u << 20) {
		void *p = mmap((void *)((addr - d) & ~4095ull), len, PROT_READ | PROT_WRITE | PROT_EXEC,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (p != MAP_FAILED)
			return p;
	}
	return NULL;
}

static int ring_open(void)
{
	uint64_t stride = (sizeof(struct diag_ring_header) + SUB_UNITS * DIAG_RING_UNIT + 4095) & ~4095ull;
	uint64_t counters = DIAG_RING_CONTROL_BYTES + stride;
	size_t bytes = counters + DIAG_RING_MAX_SITES * 8;
	ring = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ring == MAP_FAILED)
		return -errno;
	ctl = (void *)ring;
	*ctl = (struct diag_ring_control){.magic = DIAG_RING_MAGIC_V2, .nsubs = 1,
					  .sub_units = SUB_UNITS, .sub_stride = stride,
					  .counters = counters, .alive_until = UINT64_MAX,
					  .hash_shift = 64};
	((struct diag_ring_header *)(void *)(ring + DIAG_RING_CONTROL_BYTES))->mask = SUB_UNITS - 1;
	return 0;
}

static struct diag_ring_header *sub0(void)
{
	return (void *)(ring + DIAG_RING_CONTROL_BYTES);
}

/* One capture trampoline into the next slot, its jump written over addr. */
static int install(enum diag_tramp_kind kind, uint64_t addr, uint64_t term, size_t avail,
		   uint32_t site, const struct diag_cap_prog *value)
{
	uint8_t out[DIAG_TRAMP_SLOT], jmp[DIAG_TRAMP_PATCH_LEN];
	size_t len, patched;
	struct diag_tramp_layout l;
	struct diag_error err = {0};
	uint64_t slot = (uint64_t)(uintptr_t)(slots + nslots++ * DIAG_TRAMP_SLOT);
	struct diag_tramp_capture c = {.kind = kind, .addr = addr, .term = term,
				       .code = (const uint8_t *)(uintptr_t)addr, .avail = avail,
				       .slot = slot, .ring = (uint64_t)(uintptr_t)ring, .site = site,
				       .value = value};
	int rc = diag_tramp_build_capture(&c, out, sizeof(out), &len, jmp, &patched, &l, &err);
	if (rc < 0) {
		fprintf(stderr, "build at 0x%llx: %s\n", (unsigned long long)addr, err.msg);
		return rc;
	}
	memcpy((void *)(uintptr_t)slot, out, len);
	memcpy((void *)(uintptr_t)addr, jmp, sizeof(jmp));
	return 0;
}

static struct diag_cap_prog xmm0_prog;

static void setup(void)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/libexits.so", getenv("DIAG_FIXTURE_DIR"));
	void *h = dlopen(path, RTLD_NOW);
	CHECK(h != NULL);
	if (!h)
		exit(CHECK_DONE());
	ex_rec = (long (*)(long))dlsym(h, "ex_rec");
	ex_jumper = (long (*)(long, jmp_buf *))dlsym(h, "ex_jumper");
	ex_half = (double (*)(double))dlsym(h, "ex_half");
	ex_calls = dlsym(h, "ex_calls");
	Dl_info info;
	CHECK(dladdr((void *)ex_rec, &info) != 0);
	CHECK_EQ_INT(ring_open(), 0);
	slots = map_near((uint64_t)(uintptr_t)ex_rec, 64 * DIAG_TRAMP_SLOT);
	CHECK(slots != NULL);
	xmm0_prog.ops[0] = (struct diag_cap_op){.op = DIAG_CAP_SAVE_FPREG, .a = 0};
	xmm0_prog.ops[1] = (struct diag_cap_op){.op = DIAG_CAP_END};
	xmm0_prog.n = 2;
	xmm0_prog.max_payload = diag_cap_block_bytes(16);
	uint32_t site = 1;
	for (int i = 0; i < NFN; i++) {
		struct fn *f = &fns[i];
		uint64_t file = elf_sym_addr_size(path, names[i], &f->size);
		f->addr = (uint64_t)(uintptr_t)info.dli_fbase + file;
		CHECK(file && f->size && f->size <= sizeof(f->orig));
		memcpy(f->orig, (void *)(uintptr_t)f->addr, f->size);
		f->entry = (struct site){.pr = &f->pr, .kind = SITE_RET_ENTRY};
		f->nplans = diag_exit_plans(f->orig, f->size, f->addr, f->plans, MAXEXITS);
		CHECK(f->nplans >= 1 && f->nplans <= MAXEXITS);
		uint64_t page = f->addr & ~4095ull;
		CHECK_EQ_INT(mprotect((void *)(uintptr_t)page, f->addr + f->size - page,
				      PROT_READ | PROT_WRITE | PROT_EXEC), 0);
		for (int k = 0; k < f->nplans; k++) {
			const struct diag_exit_plan *p = &f->plans[k];
			CHECK_EQ_STR(p->why, "");
			CHECK(p->start >= f->addr + DIAG_TRAMP_PATCH_LEN); /* clear of the entry's */
			site_fn[site] = (uint32_t)i;
			site_exit[site] = true;
			CHECK_EQ_INT(install(DIAG_TRAMP_EXIT, p->start, p->term,
					     p->term + p->term_len - p->start, site++,
					     i == F_HALF ? &xmm0_prog : NULL), 0);
		}
		site_fn[site] = (uint32_t)i;
		site_exit[site] = false;
		CHECK_EQ_INT(install(DIAG_TRAMP_ENTRY, f->addr, 0,
				     f->size < DIAG_TRAMP_CODE_AVAIL ? f->size : DIAG_TRAMP_CODE_AVAIL,
				     site++, NULL), 0);
	}
}

static double xmm0_of(const struct diag_ring_rec *rec)
{
	struct diag_cap_snapshot snap;
	diag_fpregs fp;
	double d = -1;
	diag_cap_snapshot_init(&snap, (const uint8_t *)(rec + 1), rec->payload_len, false, 0);
	diag_cap_snapshot_fpregs(&snap, &fp);
	memcpy(&d, diag_fpregs_vector(&fp, 0), sizeof(d));
	return d;
}

/* The records, paired: every exit checked against its entry's argument. */
static void drain(void)
{
	struct diag_u64map frames, args;
	diag_u64map_init(&frames);
	diag_u64map_init(&args);
	struct diag_ring_header *h = sub0();
	CHECK_EQ_INT(h->drops, 0);
	for (uint64_t u = 0; u < h->head;) {
		const struct diag_ring_rec *rec =
			(const void *)((uint8_t *)h + sizeof(*h) + (u & h->mask) * DIAG_RING_UNIT);
		CHECK_EQ_INT(rec->seq, u + 1);
		if (rec->seq != u + 1 || !rec->units)
			break;
		u += rec->units;
		if (!rec->site)
			continue;
		struct fn *f = &fns[site_fn[rec->site]];
		uint64_t sp = rec->regs[DIAG_RING_RSP];
		CHECK_EQ_INT(!!(rec->flags & DIAG_REC_EXIT), site_exit[rec->site]);
		if (!site_exit[rec->site]) {
			struct site *e = &f->entry;
			CHECK_EQ_INT(eng_xf_enter(&frames, rec->thread, sp, rec->tsc, &e, NULL, 1), 0);
			/* the argument, by the entry's clock (unique per record of one thread) */
			diag_u64map_put(&args, rec->tsc,
					(void *)(uintptr_t)(rec->regs[DIAG_RING_RDI] + 1));
			continue;
		}
		struct eng_xframe out[4];
		size_t n = eng_xf_exit(&frames, rec->thread, sp, NULL, out, 4);
		if (n != 1 || out[0].entry != &f->entry) {
			f->bad++;
			continue;
		}
		uint64_t arg = (uint64_t)(uintptr_t)diag_u64map_get(&args, out[0].tsc) - 1;
		long rax = (long)rec->regs[DIAG_RING_RAX];
		bool ok = f == &fns[F_REC]      ? rax == rec_want((long)arg)
			  : f == &fns[F_JUMPER] ? rax == (long)arg + 1 && arg % 2 == 0
						: xmm0_of(rec) == 1.25;
		f->pairs++;
		f->bad += !ok;
	}
	CHECK_EQ_INT(eng_xf_open(&frames, NULL), 0); /* nothing left by the longjmps */
	eng_xf_release(&frames);
	diag_u64map_release(&args);
}

static jmp_buf jb;

static long run(void)
{
	volatile long bad = 0; /* kept across the longjmps */
	for (long n = 0; n <= 30; n++)
		bad += ex_rec(n) != rec_want(n);
	for (volatile long i = 0; i < 100; i++) {
		if (setjmp(jb) == 0)
			bad += ex_jumper(i, &jb) != i + 1;
	}
	for (int i = 0; i < 10; i++)
		bad += ex_half(2.5) != 1.25;
	return bad;
}

int main(void)
{
	setup();
	long c0 = *ex_calls;
	CHECK_EQ_INT(run(), 0); /* the program's own results, probed */
	long calls = *ex_calls - c0;
	drain();
	/* 496 recursive calls, 50 of 100 jumpers returned, 10 halves */
	CHECK_EQ_INT(calls, 496 + 100 + 10);
	CHECK_EQ_INT(fns[F_REC].pairs, 496);
	CHECK_EQ_INT(fns[F_JUMPER].pairs, 50);
	CHECK_EQ_INT(fns[F_HALF].pairs, 10);
	fprintf(stderr, "pairs: ex_rec %llu, ex_jumper %llu, ex_half %llu; %llu units recorded\n",
		(unsigned long long)fns[F_REC].pairs, (unsigned long long)fns[F_JUMPER].pairs,
		(unsigned long long)fns[F_HALF].pairs, (unsigned long long)sub0()->head);
	for (int i = 0; i < NFN; i++)
		CHECK_EQ_INT(fns[i].bad, 0);
	/* every hit counted, whatever was recorded */
	const uint64_t *cnt = (const void *)(ring + ctl->counters);
	uint64_t hits = 0;
	for (int s = 1; s < 64; s++)
		hits += site_exit[s] ? 0 : cnt[s];
	CHECK_EQ_INT(hits, (uint64_t)calls);
	/* the original bytes back: the same results, no record more */
	for (int i = 0; i < NFN; i++)
		memcpy((void *)(uintptr_t)fns[i].addr, fns[i].orig, fns[i].size);
	uint64_t head = sub0()->head;
	CHECK_EQ_INT(run(), 0);
	CHECK_EQ_INT(sub0()->head, head);
	return CHECK_DONE();
}
