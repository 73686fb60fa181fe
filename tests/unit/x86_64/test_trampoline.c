/* test_trampoline: jump trampolines executed in-process. Small functions (assembled below, then
 * copied into an RWX region) are patched with the 5-byte jmp to a trampoline built into the
 * same region; calling them must give the same results while each call leaves one exact record
 * in a ring (or one counted drop when the ring is full) and adds exactly one to its site's hit
 * counter, dropped or not. Also proves that the byte array in
 * trampoline.c is what its template (diag_tramp_template()->source) assembles to. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "check.h"
#include "inproc_code.h"

#include "arch/record.h"
#include "arch/ring.h"
#include "arch/trampoline.h"
#include "util/error.h"

/* ---- code under test and callers (Intel syntax) ---- */
__asm__(".intel_syntax noprefix\n.text\n"
	/* uint32 add(a, b) */
	FN(t_fn_add) "push rbp\n mov rbp, rsp\n mov eax, edi\n add eax, esi\n pop rbp\n ret\n" END(t_fn_add)
	/* u64 (a, b) -> a + b through the stack */
	FN(t_fn_endbr) "endbr64\n sub rsp, 0x18\n mov [rsp + 8], rdi\n mov rax, [rsp + 8]\n"
	" add rax, rsi\n add rsp, 0x18\n ret\n" END(t_fn_endbr)
	/* u64 (a) -> data + a, data read rip-relative by the displaced instruction */
	FN(t_fn_riprel) "mov rax, [rip + t_riprel_data]\n add rax, rdi\n ret\n .p2align 3\n"
	"t_riprel_data: .quad 0x1000000000\n" END(t_fn_riprel)
	/* u64 () -> rflags at entry: exactly 5 displaced bytes */
	FN(t_fn_flags) "pushfq\n pop rax\n nop dword ptr [rax]\n ret\n" END(t_fn_flags)
	/* u64 (a, b) -> a + b through the red zone; probed at +5, after the first store */
	FN(t_fn_redzone) "mov [rsp - 8], rdi\n mov [rsp - 16], rsi\n mov rax, [rsp - 8]\n"
	" add rax, [rsp - 16]\n ret\n" END(t_fn_redzone)
	/* touches nothing */
	FN(t_fn_nop) ".byte 0x0f, 0x1f, 0x44, 0x00, 0x00\n ret\n" END(t_fn_nop) /* 5-byte nop */
	/* refused: a control transfer within the first 5 bytes */
	FN(t_fn_call) "call t_fn_nop\n ret\n" END(t_fn_call)
	FN(t_fn_jmp) "jmp t_fn_nop\n int3\n int3\n int3\n" END(t_fn_jmp)
	FN(t_fn_jcc) "test edi, edi\n jz 1f\n nop\n1: ret\n" END(t_fn_jcc)
	FN(t_fn_ret) "xor eax, eax\n ret\n int3\n int3\n int3\n" END(t_fn_ret)
	FN(t_fn_syscall) "xor eax, eax\n syscall\n ret\n" END(t_fn_syscall)
	/* struct pair (fn, flags, u64 *rsp_at_call): enter fn with rflags = flags;
	 * returns fn's rax and the rflags fn returned with */
	FN(t_call_flags) "mov [rdx], rsp\n push rsi\n popfq\n call rdi\n pushfq\n pop rdx\n cld\n ret\n"
	END(t_call_flags)
	/* void (const u64 in[15], u64 out[15], fn): every general register but rsp loaded from in
	 * (ring order r15 .. rdi), fn called, every register stored to out */
	FN(t_call_regs) "push rbx\n push rbp\n push r12\n push r13\n push r14\n push r15\n"
	" push rsi\n push rdx\n"
	" mov r15, [rdi]\n mov r14, [rdi + 8]\n mov r13, [rdi + 16]\n mov r12, [rdi + 24]\n"
	" mov rbp, [rdi + 32]\n mov rbx, [rdi + 40]\n mov r11, [rdi + 48]\n mov r10, [rdi + 56]\n"
	" mov r9, [rdi + 64]\n mov r8, [rdi + 72]\n mov rax, [rdi + 80]\n mov rcx, [rdi + 88]\n"
	" mov rdx, [rdi + 96]\n mov rsi, [rdi + 104]\n mov rdi, [rdi + 112]\n"
	" call qword ptr [rsp]\n"
	" push rdi\n mov rdi, [rsp + 16]\n"
	" mov [rdi], r15\n mov [rdi + 8], r14\n mov [rdi + 16], r13\n mov [rdi + 24], r12\n"
	" mov [rdi + 32], rbp\n mov [rdi + 40], rbx\n mov [rdi + 48], r11\n mov [rdi + 56], r10\n"
	" mov [rdi + 64], r9\n mov [rdi + 72], r8\n mov [rdi + 80], rax\n mov [rdi + 88], rcx\n"
	" mov [rdi + 96], rdx\n mov [rdi + 104], rsi\n pop qword ptr [rdi + 112]\n"
	" add rsp, 16\n pop r15\n pop r14\n pop r13\n pop r12\n pop rbp\n pop rbx\n ret\n"
	END(t_call_regs)
	".att_syntax prefix\n");

DECL(t_fn_add); DECL(t_fn_endbr); DECL(t_fn_riprel); DECL(t_fn_flags); DECL(t_fn_redzone);
DECL(t_fn_nop); DECL(t_fn_call); DECL(t_fn_jmp); DECL(t_fn_jcc); DECL(t_fn_ret);
DECL(t_fn_syscall);

struct pair {
	uint64_t a, b;
};
struct pair t_call_flags(uint64_t fn, uint64_t flags, uint64_t *rsp_at_call);
void t_call_regs(const uint64_t in[15], uint64_t out[15], uint64_t fn);

typedef uint64_t (*fn2)(uint64_t, uint64_t);

/* ---- environment ---- */
#define REGION_SIZE (1u << 20)
#define TRAMP_AREA (REGION_SIZE / 2)
#define SLOT 256u
#define SITE 0xc0du

struct env {
	uint8_t *region;  /* RWX: copies of the functions, then the trampolines */
	size_t n;
};

struct probe {
	uint64_t fn;      /* copy of the function */
	uint64_t addr;    /* probed address */
	uint64_t tramp;
	size_t len, patched_len;
	uint8_t jmp[5];
};

struct ring {
	struct diag_ring_header *h;
	size_t bytes;
};

static uint64_t copy_fn(struct env *e, const uint8_t *begin, const uint8_t *end)
{
	return inproc_copy_fn(e->region + e->n * SLOT, SLOT, begin, end);
}

static uint64_t tramp_slot(const struct env *e)
{
	return (uint64_t)(uintptr_t)(e->region + TRAMP_AREA + e->n * SLOT);
}

static int ring_open(struct ring *r, uint64_t capacity)
{
	r->bytes = DIAG_RING_MAP_BYTES(capacity);
	void *p = mmap(NULL, r->bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return -errno;
	r->h = p;
	r->h->mask = capacity - 1;
	return 0;
}

static void ring_close(struct ring *r)
{
	if (r->h)
		munmap(r->h, r->bytes);
	r->h = NULL;
}

static uint64_t counter(const struct ring *r, uint32_t site)
{
	const char *at = (const char *)r->h + diag_ring_counter_offset(r->h->mask, site);

	return __atomic_load_n((const uint64_t *)(const void *)at, __ATOMIC_ACQUIRE);
}

static const struct diag_ring_record *rec(const struct ring *r, uint64_t index)
{
	return (const void *)((const char *)r->h + diag_ring_record_offset(r->h, index));
}

/* Copy a function, build its trampoline for a probe at +at_off and install the jmp. */
static int install(struct env *e, const uint8_t *begin, const uint8_t *end, size_t at_off,
		   const struct ring *r, uint32_t site, struct probe *p, struct diag_error *err)
{
	uint8_t out[DIAG_TRAMP_MAX];
	size_t fn_len = (size_t)(end - begin);
	int rc;

	p->fn = copy_fn(e, begin, end);
	p->addr = p->fn + at_off;
	p->tramp = tramp_slot(e);
	e->n++;
	rc = diag_tramp_build_counted(p->addr, (const uint8_t *)(uintptr_t)p->addr, fn_len - at_off,
				      p->tramp,
				      &(const struct diag_tramp_ring){ .addr = (uint64_t)(uintptr_t)r->h,
								       .mask = r->h->mask, .site = site },
				      out, sizeof(out), &p->len, p->jmp, &p->patched_len, err);
	if (rc < 0)
		return rc;
	memcpy((void *)(uintptr_t)p->tramp, out, p->len);
	memcpy((void *)(uintptr_t)p->addr, p->jmp, sizeof(p->jmp));
	return 0;
}

static pid_t my_tid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* ---- the template is what the .S assembles to ---- */

static void test_template_matches_source(void)
{
	const struct diag_tramp_template *t = diag_tramp_template();
	char nm[4096];
	uint64_t u64;
	uint32_t u32;

	inproc_check_template(t->source, t->bytes, t->len, 0, nm,
			      sizeof(nm));
	CHECK_EQ_INT(inproc_nm_value(nm, "diag_tramp_imm_rip"), t->imm_rip);
	CHECK_EQ_INT(inproc_nm_value(nm, "diag_tramp_imm_counter"), t->imm_counter);
	CHECK_EQ_INT(inproc_nm_value(nm, "diag_tramp_imm_ring"), t->imm_ring);
	CHECK_EQ_INT(inproc_nm_value(nm, "diag_tramp_imm_site"), t->imm_site);
	CHECK_EQ_INT(inproc_nm_value(nm, "diag_tramp_tmpl_len"), t->len);
	memcpy(&u64, t->bytes + t->imm_rip, 8);
	CHECK_EQ_INT(u64, 0x1122334455667788ull);
	memcpy(&u64, t->bytes + t->imm_counter, 8);
	CHECK_EQ_INT(u64, 0x99aabbccddeeff00ull);
	memcpy(&u64, t->bytes + t->imm_ring, 8);
	CHECK_EQ_INT(u64, 0x8877665544332211ull);
	memcpy(&u32, t->bytes + t->imm_site, 4);
	CHECK_EQ_INT(u32, 0x55aa55aau);
}

/* ---- 4 threads x 10000 calls, every hit recorded exactly ---- */

#define NTHREADS 4
#define NCALLS 10000

struct worker {
	fn2 fn;
	uint64_t index;
	const uint64_t *progress; /* if set: keep calling until *progress >= min_progress */
	uint64_t min_progress;
	pid_t tid;
	uint64_t calls;
	uint64_t bad;     /* calls that returned a wrong value */
};

static int worker_more(const struct worker *w, uint64_t i)
{
	return i < NCALLS ||
	       (w->progress && __atomic_load_n(w->progress, __ATOMIC_ACQUIRE) < w->min_progress);
}

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	uint64_t i;

	__atomic_store_n(&w->tid, my_tid(), __ATOMIC_RELEASE);
	for (i = 0; worker_more(w, i); i++)
		if (w->fn(w->index, i) != (uint32_t)(w->index + i))
			w->bad++;
	w->calls = i;
	return NULL;
}

/* progress may be NULL: then each worker makes exactly NCALLS calls. */
static void run_workers(struct worker *w, size_t n, fn2 fn, const uint64_t *progress,
			uint64_t min_progress)
{
	pthread_t th[NTHREADS];

	for (size_t i = 0; i < n; i++) {
		w[i] = (struct worker){ .fn = fn, .index = i, .progress = progress,
					.min_progress = min_progress };
		CHECK_EQ_INT(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
	}
	for (size_t i = 0; i < n; i++)
		pthread_join(th[i], NULL);
}

/* One record of a worker's call: everything the trampoline could get wrong. */
static int record_ok(const struct diag_ring_record *r, uint64_t index, const struct probe *p,
		     const struct worker *w, uint64_t *next_i)
{
	uint64_t t = r->regs[DIAG_RING_RDI], i = r->regs[DIAG_RING_RSI];

	if (r->seq != index + 1 || r->site != SITE || t >= NTHREADS || i != next_i[t] ||
	    r->tid != (uint32_t)w[t].tid || r->regs[DIAG_RING_RIP] != p->addr ||
	    r->regs[DIAG_RING_RSP] % 16 != 8 || (r->regs[DIAG_RING_EFLAGS] & 0x202) != 0x202) {
		fprintf(stderr, "record %" PRIu64 ": seq %" PRIu64 " site 0x%x tid %u rdi %" PRIu64
			" rsi %" PRIu64 " (expected %" PRIu64 ") rip 0x%" PRIx64 " rsp 0x%" PRIx64
			" eflags 0x%" PRIx64 "\n", index, r->seq, r->site, r->tid, t, i,
			t < NTHREADS ? next_i[t] : 0, r->regs[DIAG_RING_RIP], r->regs[DIAG_RING_RSP],
			r->regs[DIAG_RING_EFLAGS]);
		return 0;
	}
	next_i[t]++;
	return 1;
}

static void test_threads(struct env *e)
{
	struct diag_error err = { 0 };
	struct ring r = { 0 };
	struct probe p;
	struct worker w[NTHREADS];
	uint64_t next_i[NTHREADS] = { 0 }, bad = 0;

	CHECK_EQ_INT(ring_open(&r, 65536), 0);
	CHECK_OK(install(e, t_fn_add, t_fn_add_end, 0, &r, SITE, &p, &err), err);
	CHECK_EQ_INT(p.patched_len, 6);
	run_workers(w, NTHREADS, (fn2)(uintptr_t)p.fn, NULL, 0);
	for (size_t i = 0; i < NTHREADS; i++)
		CHECK_EQ_INT(w[i].bad, 0);
	CHECK_EQ_INT(r.h->head, NTHREADS * NCALLS);
	CHECK_EQ_INT(r.h->drops, 0);
	CHECK_EQ_INT(counter(&r, SITE), NTHREADS * NCALLS);
	CHECK_EQ_INT(counter(&r, SITE - 1), 0); /* neighbours untouched */
	CHECK_EQ_INT(counter(&r, SITE + 1), 0);
	CHECK_EQ_INT(r.h->hits, 0);
	CHECK_EQ_INT(r.h->tail, 0);
	for (uint64_t k = 0; k < r.h->head && bad < 5; k++)
		if (!record_ok(rec(&r, k), k, &p, w, next_i))
			bad++;
	CHECK_EQ_INT(bad, 0);
	for (size_t i = 0; i < NTHREADS; i++)
		CHECK_EQ_INT(next_i[i], NCALLS);
	ring_close(&r);
}

/* ---- capacity 8 and no consumer: 8 records, then exact drops; a consumer frees slots ---- */

static void test_full(struct env *e)
{
	struct diag_error err = { 0 };
	struct ring r = { 0 };
	struct probe p;
	fn2 fn;

	CHECK_EQ_INT(ring_open(&r, 8), 0);
	CHECK_OK(install(e, t_fn_endbr, t_fn_endbr_end, 0, &r, 7, &p, &err), err);
	CHECK_EQ_INT(p.patched_len, 8);
	fn = (fn2)(uintptr_t)p.fn;
	for (uint64_t i = 0; i < 20; i++)
		CHECK_EQ_INT(fn(1000, i), 1000 + i);
	CHECK_EQ_INT(r.h->head, 8);
	CHECK_EQ_INT(r.h->drops, 12);
	CHECK_EQ_INT(counter(&r, 7), 20); /* dropped hits are counted too */
	for (uint64_t k = 0; k < 8; k++) {
		CHECK_EQ_INT(rec(&r, k)->seq, k + 1);
		CHECK_EQ_INT(rec(&r, k)->site, 7);
		CHECK_EQ_INT(rec(&r, k)->regs[DIAG_RING_RSI], k);
		CHECK_EQ_INT(rec(&r, k)->regs[DIAG_RING_RDI], 1000);
	}
	/* The daemon consumed 3: exactly 3 more fit, in the wrapped slots. */
	r.h->tail = 3;
	for (uint64_t i = 20; i < 25; i++)
		CHECK_EQ_INT(fn(1000, i), 1000 + i);
	CHECK_EQ_INT(r.h->head, 11);
	CHECK_EQ_INT(r.h->drops, 14);
	CHECK_EQ_INT(counter(&r, 7), 25);
	for (uint64_t k = 8; k < 11; k++) {
		CHECK_EQ_INT(rec(&r, k)->seq, k + 1);
		CHECK_EQ_INT(rec(&r, k)->regs[DIAG_RING_RSI], 20 + k - 8);
	}
	CHECK_EQ_INT(rec(&r, 3)->seq, 4); /* untouched beyond the wrap */
	ring_close(&r);
}

/* ---- a concurrent consumer: consumed + dropped == calls, every consumed record exact ---- */

struct consumer {
	struct ring *r;
	int done;          /* producers finished (atomic) */
	uint64_t consumed; /* atomic: producers watch it */
	uint64_t bad;
	uint64_t next_i[NTHREADS];
	const struct probe *p;
	const struct worker *w;
};

static void *consumer_run(void *arg)
{
	struct consumer *c = arg;
	struct diag_ring_header *h = c->r->h;

	for (;;) {
		uint64_t tail = h->tail, head = __atomic_load_n(&h->head, __ATOMIC_ACQUIRE);

		if (tail == head) {
			if (__atomic_load_n(&c->done, __ATOMIC_ACQUIRE) &&
			    __atomic_load_n(&h->head, __ATOMIC_ACQUIRE) == tail)
				break;
			sched_yield();
			continue;
		}
		const struct diag_ring_record *r = rec(c->r, tail);

		if (__atomic_load_n(&r->seq, __ATOMIC_ACQUIRE) != tail + 1) {
			sched_yield(); /* reserved, not yet published */
			continue;
		}
		uint64_t t = r->regs[DIAG_RING_RDI], i = r->regs[DIAG_RING_RSI];

		/* A worker stores its tid before its first call, so before its first record (TSO). */
		if (r->site != SITE || t >= NTHREADS || i < c->next_i[t] ||
		    r->regs[DIAG_RING_RIP] != c->p->addr ||
		    r->tid != (uint32_t)__atomic_load_n(&c->w[t].tid, __ATOMIC_ACQUIRE))
			c->bad++;
		else
			c->next_i[t] = i + 1;
		__atomic_store_n(&c->consumed, c->consumed + 1, __ATOMIC_RELEASE);
		__atomic_store_n(&h->tail, tail + 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

static void test_consumer(struct env *e)
{
	struct diag_error err = { 0 };
	struct ring r = { 0 };
	struct probe p;
	struct worker w[NTHREADS];
	struct consumer c = { .r = &r, .p = &p, .w = w };
	pthread_t th;
	uint64_t calls = 0;

	CHECK_EQ_INT(ring_open(&r, 64), 0);
	CHECK_OK(install(e, t_fn_add, t_fn_add_end, 0, &r, SITE, &p, &err), err);
	CHECK_EQ_INT(pthread_create(&th, NULL, consumer_run, &c), 0);
	/* Producers outlast a scheduler that would otherwise let them finish before the consumer
	 * runs at all: the ring must really wrap many times under contention. */
	run_workers(w, NTHREADS, (fn2)(uintptr_t)p.fn, &c.consumed, 64 * 50);
	__atomic_store_n(&c.done, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	for (size_t i = 0; i < NTHREADS; i++) {
		CHECK_EQ_INT(w[i].bad, 0);
		calls += w[i].calls;
	}
	CHECK_EQ_INT(c.bad, 0);
	CHECK_EQ_INT(c.consumed + r.h->drops, calls);
	CHECK_EQ_INT(counter(&r, SITE), calls); /* exact even with thousands of drops */
	CHECK_EQ_INT(c.consumed, r.h->head);
	CHECK(c.consumed >= 64 * 50);
	ring_close(&r);
}

/* ---- rip-relative displaced instruction, red zone, flags, every register ---- */

static void test_riprel(struct env *e)
{
	struct diag_error err = { 0 };
	struct ring r = { 0 };
	struct probe p;

	CHECK_EQ_INT(ring_open(&r, 8), 0);
	CHECK_OK(install(e, t_fn_riprel, t_fn_riprel_end, 0, &r, 1, &p, &err), err);
	CHECK_EQ_INT(p.patched_len, 7);
	CHECK_EQ_INT(((fn2)(uintptr_t)p.fn)(5, 0), 0x1000000005ull);
	CHECK_EQ_INT(r.h->head, 1);
	CHECK_EQ_INT(rec(&r, 0)->regs[DIAG_RING_RIP], p.addr);
	CHECK_EQ_INT(rec(&r, 0)->regs[DIAG_RING_RDI], 5);
	ring_close(&r);
}

static void test_redzone(struct env *e)
{
	struct diag_error err = { 0 };
	struct ring r = { 0 };
	struct probe p;

	CHECK_EQ_INT(ring_open(&r, 8), 0);
	CHECK_OK(install(e, t_fn_redzone, t_fn_redzone_end, 5, &r, 2, &p, &err), err);
	CHECK_EQ_INT(p.patched_len, 5);
	CHECK_EQ_INT(((fn2)(uintptr_t)p.fn)(0x1234567890ull, 0x1111), 0x12345689a1ull);
	CHECK_EQ_INT(r.h->head, 1);
	CHECK_EQ_INT(rec(&r, 0)->regs[DIAG_RING_RIP], p.fn + 5);
	CHECK_EQ_INT(rec(&r, 0)->regs[DIAG_RING_RSI], 0x1111);
	/* the record read as registers, by role */
	diag_regs g;
	diag_record_regs(rec(&r, 0), &g);
	CHECK_EQ_INT(diag_regs_pc(&g), p.fn + 5);
	CHECK_EQ_INT(diag_regs_arg(&g, 1), 0x1234567890ull);
	CHECK_EQ_INT(diag_regs_arg(&g, 2), 0x1111);
	CHECK_EQ_INT(diag_regs_sp(&g), rec(&r, 0)->regs[DIAG_RING_RSP]);
	CHECK_EQ_INT(diag_regs_frame(&g), rec(&r, 0)->regs[DIAG_RING_RBP]);
	CHECK(!diag_regs_stepping(&g));
	CHECK(diag_record_ticks() >= rec(&r, 0)->tsc);
	ring_close(&r);
}

#define FLAGS_USER 0xcd5ull /* CF PF AF ZF SF DF OF */

static void test_flags(struct env *e)
{
	static const uint64_t cases[] = { 0x202, 0x202 | FLAGS_USER, 0x202 | 0x1 | 0x40,
					  0x202 | 0x400 | 0x80 };
	struct diag_error err = { 0 };
	struct ring r = { 0 };
	struct probe p;

	CHECK_EQ_INT(ring_open(&r, 8), 0);
	CHECK_OK(install(e, t_fn_flags, t_fn_flags_end, 0, &r, 3, &p, &err), err);
	CHECK_EQ_INT(p.patched_len, 5);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t rsp_at_call = 0;
		struct pair got = t_call_flags(p.fn, cases[i], &rsp_at_call);
		const struct diag_ring_record *rr = rec(&r, i);

		CHECK_EQ_INT(got.a & FLAGS_USER, cases[i] & FLAGS_USER); /* as the function saw them */
		CHECK_EQ_INT(got.b & FLAGS_USER, cases[i] & FLAGS_USER); /* after the return */
		CHECK_EQ_INT(rr->regs[DIAG_RING_EFLAGS] & FLAGS_USER, cases[i] & FLAGS_USER);
		CHECK_EQ_INT(rr->regs[DIAG_RING_RSP], rsp_at_call - 8);
		CHECK_EQ_INT(rr->regs[DIAG_RING_RIP], p.addr);
		CHECK_EQ_INT(rr->tid, my_tid());
	}
	CHECK_EQ_INT(r.h->head, sizeof(cases) / sizeof(cases[0]));
	ring_close(&r);
}

static void test_all_regs(struct env *e)
{
	struct diag_error err = { 0 };
	struct ring r = { 0 };
	struct probe p;
	uint64_t in[15], out[15];

	for (size_t k = 0; k < 15; k++)
		in[k] = 0x0101010101010101ull * (k + 1) ^ 0x8000000000000000ull;
	CHECK_EQ_INT(ring_open(&r, 8), 0);
	CHECK_OK(install(e, t_fn_nop, t_fn_nop_end, 0, &r, 4, &p, &err), err);
	t_call_regs(in, out, p.fn);
	CHECK_EQ_INT(r.h->head, 1);
	for (size_t k = 0; k < 15; k++) {
		CHECK_EQ_INT(out[k], in[k]);
		CHECK_EQ_INT(rec(&r, 0)->regs[k], in[k]);
	}
	ring_close(&r);
}

/* ---- refusals and layout ---- */

static void expect_refused(struct env *e, const uint8_t *b, const uint8_t *end, const char *word)
{
	struct diag_error err = { 0 };
	struct ring r = { 0 };
	struct probe p;

	CHECK_EQ_INT(ring_open(&r, 8), 0);
	CHECK_EQ_INT(install(e, b, end, 0, &r, 9, &p, &err), -DIAG_E_RELOC);
	if (!strstr(err.msg, word)) {
		fprintf(stderr, "refusal message lacks '%s': %s\n", word, err.msg);
		CHECK(0);
	}
	CHECK_EQ_INT(memcmp(b, (void *)(uintptr_t)p.fn, (size_t)(end - b)), 0); /* nothing patched */
	ring_close(&r);
}

static void test_refused(struct env *e)
{
	struct diag_error err = { 0 };
	uint8_t out[DIAG_TRAMP_MAX], jmp[5] = { 0 };
	size_t len = 77, patched = 77;
	uint64_t addr = (uint64_t)(uintptr_t)t_fn_add;

	expect_refused(e, t_fn_call, t_fn_call_end, "call");
	expect_refused(e, t_fn_jmp, t_fn_jmp_end, "jmp");
	expect_refused(e, t_fn_jcc, t_fn_jcc_end, "jz");
	expect_refused(e, t_fn_ret, t_fn_ret_end, "ret");
	expect_refused(e, t_fn_syscall, t_fn_syscall_end, "syscall");

	CHECK_EQ_INT(diag_tramp_build(addr, t_fn_add, 4, addr + 4096, 4096, 0, out, sizeof(out), &len,
				      jmp, &patched, &err), -DIAG_E_RELOC);
	CHECK(strstr(err.msg, "only 4 bytes") != NULL);
	CHECK_EQ_INT(diag_tramp_build(addr, t_fn_add, 10, addr + (3ull << 30), 4096, 0, out,
				      sizeof(out), &len, jmp, &patched, &err), -DIAG_E_RELOC);
	CHECK(strstr(err.msg, "out of reach") != NULL);
	CHECK_EQ_INT(diag_tramp_build(addr, t_fn_add, 10, addr + 4096, 4096, 0, out, 100, &len, jmp,
				      &patched, &err), -ENOSPC);
	/* an instruction cut off by the end of the given bytes */
	CHECK_EQ_INT(diag_tramp_build(addr, t_fn_riprel, 5, addr + 4096, 4096, 0, out, sizeof(out),
				      &len, jmp, &patched, &err), -DIAG_E_PARSE);
	CHECK_EQ_INT(len, 77);
	CHECK_EQ_INT(patched, 77);
}

/* Last site of a big ring: the counter is the mapping's last u64. Many threads, a tiny ring and
 * no consumer: nearly every hit dropped, every hit counted. */
static void test_counter_drops(struct env *e)
{
	struct diag_error err = { 0 };
	struct ring r = { 0 };
	struct probe p;
	struct worker w[NTHREADS];
	const uint32_t last = DIAG_RING_MAX_SITES - 1;

	CHECK_EQ_INT(ring_open(&r, 2), 0);
	CHECK_EQ_INT(diag_ring_counter_offset(r.h->mask, last), r.bytes - 8);
	CHECK_OK(install(e, t_fn_add, t_fn_add_end, 0, &r, last, &p, &err), err);
	run_workers(w, NTHREADS, (fn2)(uintptr_t)p.fn, NULL, 0);
	for (size_t i = 0; i < NTHREADS; i++)
		CHECK_EQ_INT(w[i].bad, 0);
	CHECK_EQ_INT(r.h->head, 2);
	CHECK_EQ_INT(r.h->drops, NTHREADS * NCALLS - 2);
	CHECK_EQ_INT(counter(&r, last), NTHREADS * NCALLS);
	ring_close(&r);
}

/* diag_tramp_build: a ring without counters, hits counted in the header. */
static void test_counter_legacy(struct env *e)
{
	struct diag_error err = { 0 };
	struct ring r = { 0 };
	uint8_t out[DIAG_TRAMP_MAX];
	struct probe p;

	CHECK_EQ_INT(ring_open(&r, 2), 0);
	p.fn = copy_fn(e, t_fn_add, t_fn_add_end);
	p.tramp = tramp_slot(e);
	e->n++;
	CHECK_OK(diag_tramp_build(p.fn, (const uint8_t *)(uintptr_t)p.fn, 10, p.tramp,
				  (uint64_t)(uintptr_t)r.h, 0xfffffff0u, out, sizeof(out), &p.len, p.jmp,
				  &p.patched_len, &err), err);
	memcpy((void *)(uintptr_t)p.tramp, out, p.len);
	memcpy((void *)(uintptr_t)p.fn, p.jmp, sizeof(p.jmp));
	for (uint64_t i = 0; i < 5; i++)
		CHECK_EQ_INT(((fn2)(uintptr_t)p.fn)(i, 1), i + 1);
	CHECK_EQ_INT(r.h->hits, 5);
	CHECK_EQ_INT(r.h->drops, 3);
	CHECK_EQ_INT(rec(&r, 0)->site, 0xfffffff0u);
	ring_close(&r);
}

static void expect_bad_ring(uint64_t mask, uint32_t site, const char *word)
{
	struct diag_error err = { 0 };
	uint8_t out[DIAG_TRAMP_MAX], jmp[5];
	size_t len = 77, patched = 77;
	uint64_t addr = (uint64_t)(uintptr_t)t_fn_add;
	const struct diag_tramp_ring ring = { .addr = 0x7000, .mask = mask, .site = site };

	CHECK_EQ_INT(diag_tramp_build_counted(addr, t_fn_add, 10, addr + 4096, &ring, out,
					      sizeof(out), &len, jmp, &patched, &err), -EINVAL);
	if (!strstr(err.msg, word)) {
		fprintf(stderr, "ring refusal lacks '%s': %s\n", word, err.msg);
		CHECK(0);
	}
	CHECK_EQ_INT(len, 77);
}

static void test_counter_refused(void)
{
	expect_bad_ring(7, 0, "site 0");
	expect_bad_ring(7, DIAG_RING_MAX_SITES, "site 4096");
	expect_bad_ring(6, 1, "mask 0x6");
}

static void test_layout(void)
{
	struct diag_error err = { 0 };
	struct diag_tramp_layout l;
	uint8_t out[DIAG_TRAMP_MAX], jmp[5];
	size_t len, patched;
	uint64_t addr = 0x400000, tramp = 0x500000, orig = 0;
	const size_t tl = diag_tramp_template()->len;

	CHECK_OK(diag_tramp_build(addr, t_fn_add, 10, tramp, 0x7000, 1, out, sizeof(out), &len, jmp,
				  &patched, &err), err);
	CHECK_OK(diag_tramp_layout(addr, t_fn_add, 10, tramp, &l, &err), err);
	CHECK_EQ_INT(l.len, len);
	CHECK_EQ_INT(l.patched_len, patched);
	CHECK_EQ_INT(l.reloc_off, tl);
	CHECK_EQ_INT(l.n_insns, 3);
	CHECK_EQ_INT(l.insns[1].orig_off, 1);
	CHECK_EQ_INT(l.insns[2].orig_off, 4);
	CHECK_EQ_INT(l.insns[2].copy_off, tl + 4);
	CHECK_EQ_INT(l.back_off, tl + 6);
	CHECK_EQ_INT(len, tl + 6 + 5);
	CHECK_EQ_INT(memcmp(out + tl, t_fn_add, 6), 0);
	CHECK_EQ_INT(out[tl + 6], 0xe9);
	CHECK_EQ_INT(jmp[0], 0xe9);
	CHECK_EQ_INT(diag_tramp_locate(&l, tramp - 1, &orig), DIAG_TRAMP_OUTSIDE);
	CHECK_EQ_INT(diag_tramp_locate(&l, tramp + len, &orig), DIAG_TRAMP_OUTSIDE);
	CHECK_EQ_INT(diag_tramp_locate(&l, tramp, &orig), DIAG_TRAMP_RECORDING);
	CHECK_EQ_INT(diag_tramp_locate(&l, tramp + tl - 1, &orig), DIAG_TRAMP_RECORDING);
	CHECK_EQ_INT(diag_tramp_locate(&l, tramp + tl, &orig), DIAG_TRAMP_RELOCATED);
	CHECK_EQ_INT(orig, addr);
	CHECK_EQ_INT(diag_tramp_locate(&l, tramp + tl + 4, &orig), DIAG_TRAMP_RELOCATED);
	CHECK_EQ_INT(orig, addr + 4);
	CHECK_EQ_INT(diag_tramp_locate(&l, tramp + tl + 6, &orig), DIAG_TRAMP_RELOCATED);
	CHECK_EQ_INT(orig, addr + 6);
	CHECK_EQ_INT(diag_tramp_locate(&l, tramp + tl + 2, &orig), DIAG_TRAMP_MID_INSN);
	CHECK_EQ_INT(diag_tramp_locate(&l, tramp + tl + 7, &orig), DIAG_TRAMP_MID_INSN);
}

int main(void)
{
	struct env e = { 0 };
	void *p = mmap(NULL, REGION_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap RWX region");
		return 1;
	}
	e.region = p;
	test_template_matches_source();
	test_layout();
	test_refused(&e);
	test_riprel(&e);
	test_redzone(&e);
	test_flags(&e);
	test_all_regs(&e);
	test_full(&e);
	test_counter_refused();
	test_counter_legacy(&e);
	test_counter_drops(&e);
	test_threads(&e);
	test_consumer(&e);
	munmap(p, REGION_SIZE);
	return CHECK_DONE();
}
