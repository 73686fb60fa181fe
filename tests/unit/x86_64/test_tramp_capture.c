/* test_tramp_capture: capture trampolines (trampoline.h, "Capture trampolines") executed
 * in-process. Small functions (assembled below) are copied into an RWX region, patched with
 * the 5-byte jmp to a capture trampoline built into a 4096-aligned slot of the same region, and
 * called: the results must not change, every hit must be counted in its (sub-ring, site)
 * counter, and each record (ring v2: per-thread sub-rings, variable-length records, pads,
 * heartbeat, drops) must hold exactly the registers, thread pointer and payload expected. The
 * generated code is also swept for what it must never contain (syscall, call, string ops). */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <Zydis/Zydis.h>

#include "check.h"
#include "inproc_code.h"

#include "arch/capture.h"
#include "arch/ring.h"
#include "arch/trampoline.h"
#include "util/error.h"

/* ---- code under test and callers (Intel syntax) ---- */
__asm__(".intel_syntax noprefix\n.text\n"
	/* uint32 add(a, b) */
	FN(c_fn_add) "push rbp\n mov rbp, rsp\n mov eax, edi\n add eax, esi\n pop rbp\n ret\n" END(c_fn_add)
	/* u64 (a) -> data + a, data read rip-relative by the displaced instruction */
	FN(c_fn_riprel) "mov rax, [rip + c_riprel_data]\n add rax, rdi\n ret\n .p2align 3\n"
	"c_riprel_data: .quad 0x1000000000\n" END(c_fn_riprel)
	/* u64 () -> rflags at entry: exactly 5 displaced bytes */
	FN(c_fn_flags) "pushfq\n pop rax\n nop dword ptr [rax]\n ret\n" END(c_fn_flags)
	/* touches nothing */
	FN(c_fn_nop) ".byte 0x0f, 0x1f, 0x44, 0x00, 0x00\n ret\n" END(c_fn_nop)
	/* u64 (a, b) -> a + b; exits: `pop rbp; ret` patched as one exit (the mov rbp, rsp
	 * before makes 1 + 3 + 1 = 5 bytes) */
	FN(c_fn_exit) "push rbp\n mov rbp, rsp\n lea rax, [rdi + rsi]\n nop dword ptr [rax]\n"
	" mov rsp, rbp\n pop rbp\n ret\n" END(c_fn_exit)
	/* u64 (a, b) -> tail call to c_fn_tail_dst(a, b) = a * b; the jmp rel32 is the exit */
	FN(c_fn_tail) "lea rax, [rdi + 1]\n jmp c_fn_tail_dst\n" END(c_fn_tail)
	FN(c_fn_tail_dst) "mov rax, rdi\n imul rax, rsi\n ret\n" END(c_fn_tail_dst)
	/* struct pair (fn, flags, u64 *rsp_at_call): enter fn with rflags = flags;
	 * returns fn's rax and the rflags fn returned with */
	FN(c_call_flags) "mov [rdx], rsp\n push rsi\n popfq\n call rdi\n pushfq\n pop rdx\n cld\n ret\n"
	END(c_call_flags)
	/* void (const u64 in[15], u64 out[15], fn): every general register but rsp loaded from in
	 * (ring order r15 .. rdi), fn called, every register stored to out */
	FN(c_call_regs) "push rbx\n push rbp\n push r12\n push r13\n push r14\n push r15\n"
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
	END(c_call_regs)
	/* u64 (fn, a, xmm value): xmm0 = xmm1 = value (movq), then fn(a) */
	FN(c_call_xmm) "movq xmm0, rdx\n movq xmm1, rdx\n mov rax, rdi\n mov rdi, rsi\n jmp rax\n"
	END(c_call_xmm)
	".att_syntax prefix\n");

DECL(c_fn_add); DECL(c_fn_riprel); DECL(c_fn_flags); DECL(c_fn_nop); DECL(c_fn_exit);
DECL(c_fn_tail); DECL(c_fn_tail_dst);

struct pair {
	uint64_t a, b;
};
struct pair c_call_flags(uint64_t fn, uint64_t flags, uint64_t *rsp_at_call);
void c_call_regs(const uint64_t in[15], uint64_t out[15], uint64_t fn);
uint64_t c_call_xmm(uint64_t fn, uint64_t a, uint64_t xmm);

typedef uint64_t (*fn2)(uint64_t, uint64_t);

/* ---- environment: an RWX region, function copies in its first half, slots after ---- */
#define REGION_SIZE (4u << 20)
#define FN_AREA (REGION_SIZE / 2)
#define FN_SLOT 256u

struct env {
	uint8_t *region;
	size_t nfn, nslot;
};

static struct env g_env;

struct ring2 {
	uint8_t *base;
	size_t bytes;
	struct diag_ring_control *ctl;
};

static int ilog2(uint64_t v)
{
	int n = 0;

	while ((1ull << n) < v)
		n++;
	return n;
}

static int ring2_open(struct ring2 *r, uint64_t nsubs, uint64_t sub_units)
{
	uint64_t stride = (sizeof(struct diag_ring_header) + sub_units * DIAG_RING_UNIT + 4095) & ~4095ull;
	uint64_t counters = DIAG_RING_CONTROL_BYTES + nsubs * stride;

	r->bytes = counters + nsubs * DIAG_RING_MAX_SITES * 8;
	r->base = mmap(NULL, r->bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r->base == MAP_FAILED)
		return -errno;
	r->ctl = (struct diag_ring_control *)(void *)r->base;
	*r->ctl = (struct diag_ring_control){ .magic = DIAG_RING_MAGIC_V2, .nsubs = nsubs,
					      .sub_units = sub_units, .sub_stride = stride,
					      .counters = counters, .alive_until = UINT64_MAX,
					      .hash_shift = nsubs == 1 ? 64 : 64 - (uint64_t)ilog2(nsubs) };
	for (uint64_t s = 0; s < nsubs; s++)
		((struct diag_ring_header *)(void *)(r->base + DIAG_RING_CONTROL_BYTES + s * stride))->mask =
			sub_units - 1;
	return 0;
}

static void ring2_close(struct ring2 *r)
{
	munmap(r->base, r->bytes);
}

static struct diag_ring_header *sub_hdr(const struct ring2 *r, uint64_t s)
{
	return (void *)(r->base + DIAG_RING_CONTROL_BYTES + s * r->ctl->sub_stride);
}

static struct diag_ring_rec *rec_at(const struct ring2 *r, uint64_t s, uint64_t unit)
{
	struct diag_ring_header *h = sub_hdr(r, s);

	return (void *)((uint8_t *)h + sizeof(*h) + (unit & h->mask) * DIAG_RING_UNIT);
}

static uint64_t counter2(const struct ring2 *r, uint64_t s, uint32_t site)
{
	const uint64_t *c = (const void *)(r->base + r->ctl->counters +
					   (s * DIAG_RING_MAX_SITES + site) * 8);

	return __atomic_load_n(c, __ATOMIC_ACQUIRE);
}

static uint64_t counter_sum(const struct ring2 *r, uint32_t site)
{
	uint64_t n = 0;

	for (uint64_t s = 0; s < r->ctl->nsubs; s++)
		n += counter2(r, s, site);
	return n;
}

static uint64_t thread_pointer(void)
{
	uint64_t tp;

	__asm__ volatile("mov %%fs:0, %0" : "=r"(tp));
	return tp;
}

static uint64_t my_sub(const struct ring2 *r)
{
	return diag_ring_sub_of(thread_pointer(), r->ctl->hash_shift);
}

static bool have_fsgsbase(void)
{
	return (getauxval(AT_HWCAP2) & 2) != 0; /* HWCAP2_FSGSBASE */
}

struct probe {
	uint64_t fn, addr, slot;
	size_t len, patched_len;
	uint8_t jmp[5];
	struct diag_tramp_layout layout;
};

static uint64_t copy_fn(struct env *e, const uint8_t *begin, const uint8_t *end)
{
	return inproc_copy_fn(e->region + e->nfn++ * FN_SLOT, FN_SLOT, begin, end);
}

static uint64_t new_slot(struct env *e)
{
	return (uint64_t)(uintptr_t)(e->region + FN_AREA + e->nslot++ * DIAG_TRAMP_SLOT);
}

/* The capture description most tests start from. */
static struct diag_tramp_capture cap_for(const struct probe *p, const struct ring2 *r, uint32_t site,
					 const struct diag_cap_prog *cond,
					 const struct diag_cap_prog *value)
{
	return (struct diag_tramp_capture){ .kind = DIAG_TRAMP_ENTRY, .addr = p->addr,
					    .code = (const uint8_t *)(uintptr_t)p->addr,
					    .avail = DIAG_TRAMP_CODE_AVAIL, .slot = p->slot,
					    .ring = (uint64_t)(uintptr_t)r->base, .site = site,
					    .cond = cond, .value = value };
}

/* Build c into its slot and patch the jump over c->addr. */
static int install_cap(const struct diag_tramp_capture *c, struct probe *p, struct diag_error *err)
{
	static uint8_t out[DIAG_TRAMP_SLOT];
	int rc = diag_tramp_build_capture(c, out, sizeof(out), &p->len, p->jmp, &p->patched_len,
					  &p->layout, err);

	if (rc < 0)
		return rc;
	memcpy((void *)(uintptr_t)c->slot, out, p->len);
	memcpy((void *)(uintptr_t)c->addr, p->jmp, sizeof(p->jmp));
	return 0;
}

/* Copy a function, probe it at entry. */
static int install(struct env *e, const uint8_t *begin, const uint8_t *end, const struct ring2 *r,
		   uint32_t site, const struct diag_cap_prog *cond, const struct diag_cap_prog *value,
		   bool fsgsbase, struct probe *p, struct diag_error *err)
{
	struct diag_tramp_capture c;

	p->fn = copy_fn(e, begin, end);
	p->addr = p->fn;
	p->slot = new_slot(e);
	c = cap_for(p, r, site, cond, value);
	c.avail = (size_t)(end - begin) < DIAG_TRAMP_CODE_AVAIL ? (size_t)(end - begin) : DIAG_TRAMP_CODE_AVAIL;
	c.fsgsbase = fsgsbase;
	return install_cap(&c, p, err);
}

/* ---- the generated code never holds what it must not ---- */

static void check_code_clean(const struct probe *p, size_t code_len)
{
	ZydisDecoder dec;
	ZydisDecodedInstruction ins;
	const uint8_t *code = (const uint8_t *)(uintptr_t)(p->slot + DIAG_TRAMP_SLOT_CODE);
	size_t off = 0;

	ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
	while (off < code_len) {
		if (!ZYAN_SUCCESS(ZydisDecoderDecodeInstruction(&dec, NULL, code + off, code_len - off, &ins))) {
			fprintf(stderr, "undecodable trampoline byte at +%zu\n", off);
			CHECK(0);
			return;
		}
		if (ins.meta.category == ZYDIS_CATEGORY_SYSCALL || ins.meta.category == ZYDIS_CATEGORY_CALL ||
		    ins.meta.category == ZYDIS_CATEGORY_INTERRUPT || ins.meta.category == ZYDIS_CATEGORY_STRINGOP ||
		    (ins.attributes & (ZYDIS_ATTRIB_HAS_REP | ZYDIS_ATTRIB_HAS_REPE | ZYDIS_ATTRIB_HAS_REPNE))) {
			fprintf(stderr, "forbidden instruction at +%zu (mnemonic %d)\n", off, ins.mnemonic);
			CHECK(0);
		}
		off += ins.length;
	}
}

/* ---- records ---- */

#define FLAGS_USER 0xcd5ull /* CF PF AF ZF SF DF OF */

/* Walk sub-ring s from its tail to its head; every record must be published. Calls f on each
 * non-pad record; returns the records seen, -1 on a malformed one. */
typedef int (*rec_fn)(const struct diag_ring_rec *rec, void *arg);

static long walk(const struct ring2 *r, uint64_t s, rec_fn f, void *arg, uint64_t *pads)
{
	struct diag_ring_header *h = sub_hdr(r, s);
	uint64_t tail = h->tail, head = __atomic_load_n(&h->head, __ATOMIC_ACQUIRE);
	long n = 0;

	while (tail < head) {
		const struct diag_ring_rec *rec = rec_at(r, s, tail);

		if (__atomic_load_n(&rec->seq, __ATOMIC_ACQUIRE) != tail + 1 || rec->units == 0) {
			fprintf(stderr, "sub %" PRIu64 " unit %" PRIu64 ": seq %" PRIu64 " units %u\n", s,
				tail, rec->seq, rec->units);
			return -1;
		}
		if (rec->site == 0) {
			if (pads)
				(*pads)++;
		} else {
			if (f && !f(rec, arg))
				return -1;
			n++;
		}
		tail += rec->units;
	}
	return n;
}

static void test_regs_only(struct env *e, bool fsgsbase)
{
	struct diag_error err = { 0 };
	struct ring2 r;
	struct probe p;
	fn2 fn;
	uint64_t s, prev_tsc = 0;

	CHECK_EQ_INT(ring2_open(&r, 1, 512), 0);
	CHECK_OK(install(e, c_fn_add, c_fn_add_end, &r, 5, NULL, NULL, fsgsbase, &p, &err), err);
	CHECK_EQ_INT(p.patched_len, 6);
	check_code_clean(&p, p.layout.len);
	fn = (fn2)(uintptr_t)p.fn;
	for (uint64_t i = 0; i < 10; i++)
		CHECK_EQ_INT(fn(100, i), 100 + i);
	s = my_sub(&r);
	CHECK_EQ_INT(s, 0);
	CHECK_EQ_INT(counter2(&r, 0, 5), 10);
	CHECK_EQ_INT(counter2(&r, 0, 4), 0);
	CHECK_EQ_INT(counter2(&r, 0, 6), 0);
	CHECK_EQ_INT(sub_hdr(&r, 0)->head, 30);
	CHECK_EQ_INT(sub_hdr(&r, 0)->drops, 0);
	for (uint64_t i = 0; i < 10; i++) {
		const struct diag_ring_rec *rec = rec_at(&r, 0, 3 * i);

		CHECK_EQ_INT(rec->seq, 3 * i + 1);
		CHECK_EQ_INT(rec->site, 5);
		CHECK_EQ_INT(rec->units, 3);
		CHECK_EQ_INT(rec->flags, 0);
		CHECK_EQ_INT(rec->thread, thread_pointer());
		CHECK_EQ_INT(rec->fault_addr, 0);
		CHECK_EQ_INT(rec->payload_len, 0);
		CHECK_EQ_INT(rec->regs[DIAG_RING_RIP], p.addr);
		CHECK_EQ_INT(rec->regs[DIAG_RING_RDI], 100);
		CHECK_EQ_INT(rec->regs[DIAG_RING_RSI], i);
		CHECK_EQ_INT(rec->regs[DIAG_RING_RSP] % 16, 8);
		CHECK_EQ_INT(rec->regs[DIAG_RING_EFLAGS] & 0x202, 0x202);
		CHECK(rec->tsc > prev_tsc);
		prev_tsc = rec->tsc;
	}
	ring2_close(&r);
}

static void test_flags(struct env *e)
{
	static const uint64_t cases[] = { 0x202, 0x202 | FLAGS_USER, 0x202 | 0x1 | 0x40,
					  0x202 | 0x400 | 0x80 };
	struct diag_error err = { 0 };
	struct ring2 r;
	struct probe p;

	CHECK_EQ_INT(ring2_open(&r, 1, 512), 0);
	CHECK_OK(install(e, c_fn_flags, c_fn_flags_end, &r, 3, NULL, NULL, false, &p, &err), err);
	CHECK_EQ_INT(p.patched_len, 5);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t rsp_at_call = 0;
		struct pair got = c_call_flags(p.fn, cases[i], &rsp_at_call);
		const struct diag_ring_rec *rec = rec_at(&r, 0, 3 * i);

		CHECK_EQ_INT(got.a & FLAGS_USER, cases[i] & FLAGS_USER);
		CHECK_EQ_INT(got.b & FLAGS_USER, cases[i] & FLAGS_USER);
		CHECK_EQ_INT(rec->regs[DIAG_RING_EFLAGS] & FLAGS_USER, cases[i] & FLAGS_USER);
		CHECK_EQ_INT(rec->regs[DIAG_RING_RSP], rsp_at_call - 8);
		CHECK_EQ_INT(rec->regs[DIAG_RING_RIP], p.addr);
	}
	ring2_close(&r);
}

static void test_all_regs(struct env *e)
{
	struct diag_error err = { 0 };
	struct ring2 r;
	struct probe p;
	uint64_t in[15], out[15];

	for (size_t k = 0; k < 15; k++)
		in[k] = 0x0101010101010101ull * (k + 1) ^ 0x8000000000000000ull;
	CHECK_EQ_INT(ring2_open(&r, 1, 512), 0);
	CHECK_OK(install(e, c_fn_nop, c_fn_nop_end, &r, 4, NULL, NULL, false, &p, &err), err);
	c_call_regs(in, out, p.fn);
	CHECK_EQ_INT(sub_hdr(&r, 0)->head, 3);
	for (size_t k = 0; k < 15; k++) {
		CHECK_EQ_INT(out[k], in[k]);
		CHECK_EQ_INT(rec_at(&r, 0, 0)->regs[k], in[k]);
	}
	ring2_close(&r);
}

static void test_riprel(struct env *e)
{
	struct diag_error err = { 0 };
	struct ring2 r;
	struct probe p;
	uint64_t orig = 0;

	CHECK_EQ_INT(ring2_open(&r, 1, 512), 0);
	CHECK_OK(install(e, c_fn_riprel, c_fn_riprel_end, &r, 1, NULL, NULL, false, &p, &err), err);
	CHECK_EQ_INT(p.patched_len, 7);
	CHECK_EQ_INT(((fn2)(uintptr_t)p.fn)(5, 0), 0x1000000005ull);
	CHECK_EQ_INT(rec_at(&r, 0, 0)->regs[DIAG_RING_RIP], p.addr);
	/* layout: the displaced instruction's copy maps back, the rest is recording code */
	CHECK_EQ_INT(p.layout.tramp_addr, p.slot + DIAG_TRAMP_SLOT_CODE);
	CHECK_EQ_INT(p.layout.n_insns, 1);
	CHECK_EQ_INT(p.layout.len + DIAG_TRAMP_SLOT_CODE, p.len);
	CHECK_EQ_INT(diag_tramp_locate(&p.layout, p.layout.tramp_addr, &orig), DIAG_TRAMP_RECORDING);
	CHECK_EQ_INT(diag_tramp_locate(&p.layout, p.layout.tramp_addr + p.layout.insns[0].copy_off, &orig),
		     DIAG_TRAMP_RELOCATED);
	CHECK_EQ_INT(orig, p.addr);
	CHECK_EQ_INT(diag_tramp_locate(&p.layout, p.layout.tramp_addr + p.layout.back_off, &orig),
		     DIAG_TRAMP_RELOCATED);
	CHECK_EQ_INT(orig, p.addr + 7);
	CHECK_EQ_INT(diag_tramp_locate(&p.layout, p.slot, &orig), DIAG_TRAMP_OUTSIDE);
	ring2_close(&r);
}

/* ---- the slot header ---- */

static void test_header(struct env *e)
{
	struct diag_error err = { 0 };
	struct ring2 r;
	struct probe p;
	const struct diag_tramp_slot_header *h;

	CHECK_EQ_INT(ring2_open(&r, 1, 512), 0);
	CHECK_OK(install(e, c_fn_add, c_fn_add_end, &r, 77, NULL, NULL, false, &p, &err), err);
	h = (const void *)(uintptr_t)p.slot;
	CHECK_EQ_INT(h->magic, DIAG_TRAMP_SLOT_MAGIC ^ p.slot);
	CHECK_EQ_INT(h->site, 77);
	CHECK_EQ_INT(h->cond_lo, h->cond_hi); /* no programs: empty ranges */
	CHECK_EQ_INT(h->value_lo, h->value_hi);
	CHECK_EQ_INT(p.jmp[0], 0xe9);
	ring2_close(&r);
}

/* ---- heartbeat: past alive_until nothing is recorded, every hit still counted ---- */

static void test_heartbeat(struct env *e)
{
	struct diag_error err = { 0 };
	struct ring2 r;
	struct probe p;
	fn2 fn;

	CHECK_EQ_INT(ring2_open(&r, 1, 512), 0);
	CHECK_OK(install(e, c_fn_add, c_fn_add_end, &r, 9, NULL, NULL, false, &p, &err), err);
	fn = (fn2)(uintptr_t)p.fn;
	r.ctl->alive_until = 0;
	for (uint64_t i = 0; i < 5; i++)
		CHECK_EQ_INT(fn(1, i), 1 + i);
	CHECK_EQ_INT(counter2(&r, 0, 9), 5);
	CHECK_EQ_INT(sub_hdr(&r, 0)->head, 0);
	CHECK_EQ_INT(sub_hdr(&r, 0)->drops, 0);
	r.ctl->alive_until = __builtin_ia32_rdtsc() + (1ull << 40);
	CHECK_EQ_INT(fn(1, 7), 8);
	CHECK_EQ_INT(counter2(&r, 0, 9), 6);
	CHECK_EQ_INT(sub_hdr(&r, 0)->head, 3);
	CHECK_EQ_INT(rec_at(&r, 0, 0)->regs[DIAG_RING_RSI], 7);
	ring2_close(&r);
}

/* ---- ring full and the pad at the end of a sub-ring ---- */

static void test_full_and_pad(struct env *e)
{
	struct diag_error err = { 0 };
	struct ring2 r;
	struct probe p;
	fn2 fn;
	struct diag_ring_header *h;

	/* 16 units, 3-unit records: 5 fit (units 0..14), the 6th would need a pad of 1 and wrap */
	CHECK_EQ_INT(ring2_open(&r, 1, 16), 0);
	CHECK_OK(install(e, c_fn_add, c_fn_add_end, &r, 2, NULL, NULL, false, &p, &err), err);
	fn = (fn2)(uintptr_t)p.fn;
	h = sub_hdr(&r, 0);
	for (uint64_t i = 0; i < 8; i++)
		CHECK_EQ_INT(fn(3, i), 3 + i);
	CHECK_EQ_INT(h->head, 15);
	CHECK_EQ_INT(h->drops, 3);
	CHECK_EQ_INT(counter2(&r, 0, 2), 8);
	/* the daemon consumed two records: the pad (1 unit at 15) and a record at 0 fit */
	h->tail = 6;
	CHECK_EQ_INT(fn(3, 100), 103);
	CHECK_EQ_INT(h->head, 19);
	CHECK_EQ_INT(rec_at(&r, 0, 15)->seq, 16);
	CHECK_EQ_INT(rec_at(&r, 0, 15)->site, 0);
	CHECK_EQ_INT(rec_at(&r, 0, 15)->units, 1);
	CHECK_EQ_INT(rec_at(&r, 0, 16)->seq, 17);
	CHECK_EQ_INT(rec_at(&r, 0, 16)->site, 2);
	CHECK_EQ_INT(rec_at(&r, 0, 16)->regs[DIAG_RING_RSI], 100);
	CHECK_EQ_INT(rec_at(&r, 0, 6)->seq, 7); /* untouched past the wrap */
	/* 19 + 3 - 6 = 16 still fits; one more does not */
	CHECK_EQ_INT(fn(3, 101), 104);
	CHECK_EQ_INT(h->head, 22);
	CHECK_EQ_INT(fn(3, 102), 105);
	CHECK_EQ_INT(h->head, 22);
	CHECK_EQ_INT(h->drops, 4);
	CHECK_EQ_INT(counter2(&r, 0, 2), 11);
	{
		uint64_t pads = 0;

		CHECK_EQ_INT(walk(&r, 0, NULL, NULL, &pads), 5); /* 6, 9, 12, (pad 15), 16, 19 */
		CHECK_EQ_INT(pads, 1);
	}
	ring2_close(&r);
}

/* ---- threads: per-thread sub-rings, exact counts, every record valid ---- */

#define NTHREADS 4
#define NCALLS 20000

struct worker {
	fn2 fn;
	uint64_t index;
	const uint64_t *progress; /* keep calling until *progress >= min_progress */
	uint64_t min_progress;
	uint64_t tp;
	uint64_t calls, bad;
};

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	uint64_t i;

	__atomic_store_n(&w->tp, thread_pointer(), __ATOMIC_RELEASE);
	for (i = 0; i < NCALLS || (w->progress &&
				   __atomic_load_n(w->progress, __ATOMIC_ACQUIRE) < w->min_progress); i++)
		if (w->fn(w->index, i) != (uint32_t)(w->index + i))
			w->bad++;
	w->calls = i;
	return NULL;
}

static void run_workers(struct worker *w, fn2 fn, const uint64_t *progress, uint64_t min_progress)
{
	pthread_t th[NTHREADS];

	for (size_t i = 0; i < NTHREADS; i++) {
		w[i] = (struct worker){ .fn = fn, .index = i, .progress = progress,
					.min_progress = min_progress };
		CHECK_EQ_INT(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
	}
	for (size_t i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
}

struct seen {
	const struct probe *p;
	const struct worker *w;
	uint64_t next_i[NTHREADS];
	uint64_t sub;
	uint64_t shift;
};

static int check_worker_rec(const struct diag_ring_rec *rec, void *arg)
{
	struct seen *s = arg;
	uint64_t t = rec->regs[DIAG_RING_RDI], i = rec->regs[DIAG_RING_RSI];

	if (rec->site != 0x123 || rec->units != 3 || t >= NTHREADS || i != s->next_i[t] ||
	    rec->thread != s->w[t].tp || diag_ring_sub_of(rec->thread, s->shift) != s->sub ||
	    rec->regs[DIAG_RING_RIP] != s->p->addr || rec->flags != 0 || rec->payload_len != 0) {
		fprintf(stderr, "bad record: site 0x%x units %u rdi %" PRIu64 " rsi %" PRIu64
			" (expected %" PRIu64 ") thread 0x%" PRIx64 "\n", rec->site, rec->units, t, i,
			t < NTHREADS ? s->next_i[t] : 0, rec->thread);
		return 0;
	}
	s->next_i[t]++;
	return 1;
}

static void test_threads(struct env *e)
{
	struct diag_error err = { 0 };
	struct ring2 r;
	struct probe p;
	struct worker w[NTHREADS];
	struct seen s = { .p = &p, .w = w };
	uint64_t total = 0, per_sub[4] = { 0 };

	/* every thread's records fit even when all four hash to one sub-ring */
	CHECK_EQ_INT(ring2_open(&r, 4, 1u << 18), 0);
	CHECK_OK(install(e, c_fn_add, c_fn_add_end, &r, 0x123, NULL, NULL, false, &p, &err), err);
	run_workers(w, (fn2)(uintptr_t)p.fn, NULL, 0);
	s.shift = r.ctl->hash_shift;
	for (size_t i = 0; i < NTHREADS; i++) {
		CHECK_EQ_INT(w[i].bad, 0);
		per_sub[diag_ring_sub_of(w[i].tp, r.ctl->hash_shift)] += NCALLS;
	}
	for (uint64_t sub = 0; sub < 4; sub++) {
		s.sub = sub;
		CHECK_EQ_INT(walk(&r, sub, check_worker_rec, &s, NULL), per_sub[sub]);
		CHECK_EQ_INT(counter2(&r, sub, 0x123), per_sub[sub]);
		CHECK_EQ_INT(sub_hdr(&r, sub)->drops, 0);
		total += counter2(&r, sub, 0x123);
	}
	CHECK_EQ_INT(total, NTHREADS * NCALLS);
	for (size_t i = 0; i < NTHREADS; i++)
		CHECK_EQ_INT(s.next_i[i], NCALLS);
	ring2_close(&r);
}

/* A consumer drains small sub-rings while 4 threads fill them: wraps, pads, drops. */
struct consumer {
	struct ring2 *r;
	int done;
	uint64_t consumed, bad, pads;
	uint64_t next_i[NTHREADS];
	const struct probe *p;
};

static void *consumer_run(void *arg)
{
	struct consumer *c = arg;
	struct ring2 *r = c->r;

	for (;;) {
		bool idle = true;

		for (uint64_t s = 0; s < r->ctl->nsubs; s++) {
			struct diag_ring_header *h = sub_hdr(r, s);
			uint64_t tail = h->tail;

			if (tail == __atomic_load_n(&h->head, __ATOMIC_ACQUIRE))
				continue;
			const struct diag_ring_rec *rec = rec_at(r, s, tail);

			if (__atomic_load_n(&rec->seq, __ATOMIC_ACQUIRE) != tail + 1)
				continue; /* reserved, not yet published */
			idle = false;
			if (rec->site == 0) {
				c->pads++;
			} else {
				uint64_t t = rec->regs[DIAG_RING_RDI], i = rec->regs[DIAG_RING_RSI];

				if (rec->site != 0x124 || t >= NTHREADS || i < c->next_i[t] ||
				    rec->regs[DIAG_RING_RIP] != c->p->addr || rec->units != 3)
					c->bad++;
				else
					c->next_i[t] = i + 1;
				__atomic_store_n(&c->consumed, c->consumed + 1, __ATOMIC_RELEASE);
			}
			__atomic_store_n(&h->tail, tail + rec->units, __ATOMIC_RELEASE);
		}
		if (idle) {
			if (__atomic_load_n(&c->done, __ATOMIC_ACQUIRE)) {
				bool empty = true;

				for (uint64_t s = 0; s < r->ctl->nsubs; s++)
					if (sub_hdr(r, s)->tail != __atomic_load_n(&sub_hdr(r, s)->head,
										   __ATOMIC_ACQUIRE))
						empty = false;
				if (empty)
					break;
			}
			sched_yield();
		}
	}
	return NULL;
}

static void test_consumer(struct env *e)
{
	struct diag_error err = { 0 };
	struct ring2 r;
	struct probe p;
	struct worker w[NTHREADS];
	struct consumer c = { .r = &r, .p = &p };
	pthread_t th;
	uint64_t calls = 0, drops = 0;

	CHECK_EQ_INT(ring2_open(&r, 2, 32), 0);
	CHECK_OK(install(e, c_fn_add, c_fn_add_end, &r, 0x124, NULL, NULL, false, &p, &err), err);
	CHECK_EQ_INT(pthread_create(&th, NULL, consumer_run, &c), 0);
	run_workers(w, (fn2)(uintptr_t)p.fn, &c.consumed, 4000);
	__atomic_store_n(&c.done, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	for (size_t i = 0; i < NTHREADS; i++) {
		CHECK_EQ_INT(w[i].bad, 0);
		calls += w[i].calls;
	}
	for (uint64_t s = 0; s < 2; s++)
		drops += sub_hdr(&r, s)->drops;
	CHECK_EQ_INT(c.bad, 0);
	CHECK(c.pads > 0); /* 32 units of 3-unit records: every wrap pads */
	CHECK(c.consumed >= 4000);
	CHECK_EQ_INT(c.consumed + drops, calls);
	CHECK_EQ_INT(counter_sum(&r, 0x124), calls);
	ring2_close(&r);
}

/* ---- refusals ---- */

static void test_refused(struct env *e)
{
	struct diag_error err = { 0 };
	struct ring2 r;
	struct probe p = { 0 };
	struct diag_tramp_capture c;
	static uint8_t out[DIAG_TRAMP_SLOT];
	uint8_t jmp[5];
	size_t len = 77, patched = 77;

	CHECK_EQ_INT(ring2_open(&r, 1, 512), 0);
	p.fn = p.addr = copy_fn(e, c_fn_add, c_fn_add_end);
	p.slot = new_slot(e);
	c = cap_for(&p, &r, 1, NULL, NULL);
	c.slot += 64;
	CHECK_EQ_INT(diag_tramp_build_capture(&c, out, sizeof(out), &len, jmp, &patched, NULL, &err), -EINVAL);
	c = cap_for(&p, &r, 0, NULL, NULL);
	CHECK_EQ_INT(diag_tramp_build_capture(&c, out, sizeof(out), &len, jmp, &patched, NULL, &err), -EINVAL);
	c = cap_for(&p, &r, 1, NULL, NULL);
	c.slot = (p.addr + (3ull << 30)) & ~4095ull;
	CHECK_EQ_INT(diag_tramp_build_capture(&c, out, sizeof(out), &len, jmp, &patched, NULL, &err),
		     -DIAG_E_RELOC);
	c = cap_for(&p, &r, 1, NULL, NULL);
	CHECK_EQ_INT(diag_tramp_build_capture(&c, out, 100, &len, jmp, &patched, NULL, &err), -ENOSPC);
	CHECK_EQ_INT(len, 77);
	CHECK_EQ_INT(patched, 77);
	ring2_close(&r);
}

int main(void)
{
	void *p = mmap(NULL, REGION_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap RWX region");
		return 1;
	}
	g_env.region = p;
	test_header(&g_env);
	test_refused(&g_env);
	test_regs_only(&g_env, false);
	if (have_fsgsbase())
		test_regs_only(&g_env, true);
	else
		fprintf(stderr, "no FSGSBASE: rdfsbase variant not run\n");
	test_flags(&g_env);
	test_all_regs(&g_env);
	test_riprel(&g_env);
	test_heartbeat(&g_env);
	test_full_and_pad(&g_env);
	test_threads(&g_env);
	test_consumer(&g_env);
	munmap(p, REGION_SIZE);
	return CHECK_DONE();
}
