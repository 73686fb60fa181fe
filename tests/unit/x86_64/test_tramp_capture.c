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
#include <sys/time.h>
#include <sys/uio.h>
#include <ucontext.h>
#include <unistd.h>

#include <Zydis/Zydis.h>

#include "check.h"
#include "inproc_code.h"

#include "arch/capture.h"
#include "arch/record.h"
#include "arch/regs.h"
#include "arch/ring.h"
#include "arch/trampoline.h"
#include "capture/capture.h"
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
	/* u64 (a, b) -> a + b through the red zone; probed at +5, after the first store */
	FN(c_fn_redzone) "mov [rsp - 8], rdi\n mov [rsp - 16], rsi\n mov rax, [rsp - 8]\n"
	" add rax, [rsp - 16]\n ret\n" END(c_fn_redzone)
	/* touches nothing */
	FN(c_fn_nop) ".byte 0x0f, 0x1f, 0x44, 0x00, 0x00\n ret\n" END(c_fn_nop)
	/* u64 (a, b) -> a + b; exits: `pop rbp; ret` patched as one exit (the mov rbp, rsp
	 * before makes 1 + 3 + 1 = 5 bytes) */
	FN(c_fn_exit) "push rbp\n mov rbp, rsp\n lea rax, [rdi + rsi]\n nop dword ptr [rax]\n"
	" mov rsp, rbp\n pop rbp\n ret\n" END(c_fn_exit)
	/* u64 (a, b) -> tail call to c_fn_tail_dst(a, b) = a * b; the jmp rel32 is the exit */
	FN(c_fn_tail) "lea rax, [rdi + 1]\n .byte 0xe9\n .long c_fn_tail_dst - . - 4\n" END(c_fn_tail)
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
	FN(c_call_xmm) "movq xmm0, rdx\n movq xmm1, rdx\n mov rax, rdi\n mov rdi, rsi\n xor esi, esi\n jmp rax\n"
	END(c_call_xmm)
	".att_syntax prefix\n");

DECL(c_fn_add); DECL(c_fn_riprel); DECL(c_fn_redzone); DECL(c_fn_flags); DECL(c_fn_nop); DECL(c_fn_exit);
DECL(c_fn_tail); DECL(c_fn_tail_dst);
extern const uint8_t c_call_flags_end[];

struct pair {
	uint64_t a, b;
};
struct pair c_call_flags(uint64_t fn, uint64_t flags, uint64_t *rsp_at_call);
void c_call_regs(const uint64_t in[15], uint64_t out[15], uint64_t fn);
uint64_t c_call_xmm(uint64_t fn, uint64_t a, uint64_t xmm);

typedef uint64_t (*fn2)(uint64_t, uint64_t);

/* ---- environment: an RWX region, function copies in its first half, slots after ---- */
#define REGION_SIZE (16u << 20)
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
	/* no programs: the condition's range still covers the thread pointer's load */
	CHECK(h->cond_lo >= DIAG_TRAMP_SLOT_CODE && h->cond_lo < h->cond_hi);
	CHECK(h->cond_landing >= h->cond_hi);
	CHECK_EQ_INT(h->value_lo, h->value_hi);
	{
		ZydisDecoder dec;
		ZydisDecodedInstruction ins;
		ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];

		ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
		CHECK(ZYAN_SUCCESS(ZydisDecoderDecodeFull(&dec, (const uint8_t *)(uintptr_t)p.slot + h->cond_lo,
							  16, &ins, ops)));
		CHECK_EQ_INT(ins.mnemonic, ZYDIS_MNEMONIC_MOV);
		CHECK_EQ_INT(ops[1].mem.segment, ZYDIS_REGISTER_FS);
	}
	CHECK_EQ_INT(p.jmp[0], 0xe9);
	ring2_close(&r);
}

/* ---- heartbeat: past alive_until nothing is recorded, every hit still counted, and each
 * counted as a drop (the daemon sees the loss when it drains again) ---- */

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
	CHECK_EQ_INT(sub_hdr(&r, 0)->drops, 5);
	r.ctl->alive_until = __builtin_ia32_rdtsc() + (1ull << 40);
	CHECK_EQ_INT(fn(1, 7), 8);
	CHECK_EQ_INT(counter2(&r, 0, 9), 6);
	CHECK_EQ_INT(sub_hdr(&r, 0)->head, 3);
	CHECK_EQ_INT(rec_at(&r, 0, 0)->regs[DIAG_RING_RSI], 7);
	ring2_close(&r);
}

/* A counting site: the counter is the whole hit, whatever the ring and the heartbeat say
 * (no clock, no reservation, no record); a condition or a value, or an exit, is refused. */
static struct diag_cap_prog g_cond;
static struct diag_cap_prog *prog_reset(struct diag_cap_prog *p);

static void test_count_only(struct env *e)
{
	struct diag_error err = { 0 };
	struct ring2 r;
	struct probe p = { 0 };
	struct diag_tramp_capture c;
	static uint8_t out[DIAG_TRAMP_SLOT];
	uint8_t jmp[5];
	size_t len, patched;

	CHECK_EQ_INT(ring2_open(&r, 1, 512), 0);
	p.fn = p.addr = copy_fn(e, c_fn_add, c_fn_add_end);
	p.slot = new_slot(e);
	c = cap_for(&p, &r, 11, NULL, NULL);
	c.avail = (size_t)(c_fn_add_end - c_fn_add);
	c.count_only = true;
	CHECK_OK(install_cap(&c, &p, &err), err);
	check_code_clean(&p, p.layout.len);
	fn2 fn = (fn2)(uintptr_t)p.fn;
	for (uint64_t i = 0; i < 1000; i++)
		CHECK_EQ_INT(fn(100, i), 100 + i);
	r.ctl->alive_until = 0; /* a dead daemon: counting goes on, nothing is a drop */
	for (uint64_t i = 0; i < 10; i++)
		CHECK_EQ_INT(fn(1, i), 1 + i);
	CHECK_EQ_INT(counter2(&r, 0, 11), 1010);
	CHECK_EQ_INT(sub_hdr(&r, 0)->head, 0);
	CHECK_EQ_INT(sub_hdr(&r, 0)->drops, 0);
	c = cap_for(&p, &r, 11, prog_reset(&g_cond), NULL);
	c.count_only = true;
	CHECK_EQ_INT(diag_tramp_build_capture(&c, out, sizeof(out), &len, jmp, &patched, NULL, &err), -EINVAL);
	CHECK_EQ_STR(err.msg, "capture trampoline: a counting site is an entry with no condition and no value");
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

/* ---- the thread table: a thread whose slot holds its thread pointer writes the slot's
 * sub-ring, not the hashed one; a slot of another thread changes nothing ---- */

static void test_thread_table(struct env *e)
{
	struct diag_error err = { 0 };
	struct ring2 r;
	struct probe p;
	fn2 fn;

	CHECK_EQ_INT(ring2_open(&r, 4, 512), 0);
	CHECK_OK(install(e, c_fn_add, c_fn_add_end, &r, 8, NULL, NULL, false, &p, &err), err);
	fn = (fn2)(uintptr_t)p.fn;
	uint64_t tp = thread_pointer(), hashed = my_sub(&r), mine = (hashed + 1) % 4;
	struct diag_ring_tpslot *tab = (void *)(r.base + DIAG_RING_TP_TABLE);

	tab[diag_ring_tp_slot(tp)] = (struct diag_ring_tpslot){ .thread = tp + 4096, .sub = mine };
	CHECK_EQ_INT(fn(1, 2), 3);
	CHECK_EQ_INT(counter2(&r, hashed, 8), 1); /* another thread's slot: hashed */
	tab[diag_ring_tp_slot(tp)] = (struct diag_ring_tpslot){ .thread = tp, .sub = mine };
	for (uint64_t i = 0; i < 5; i++)
		CHECK_EQ_INT(fn(10, i), 10 + i);
	CHECK_EQ_INT(counter2(&r, hashed, 8), 1);
	CHECK_EQ_INT(counter2(&r, mine, 8), 5);
	CHECK_EQ_INT(sub_hdr(&r, mine)->head, 15);
	CHECK_EQ_INT(rec_at(&r, mine, 12)->seq, 13);
	CHECK_EQ_INT(rec_at(&r, mine, 12)->regs[DIAG_RING_RSI], 4);
	/* a slot naming a sub-ring past nsubs (a scribbled table): not counted, not written */
	tab[diag_ring_tp_slot(tp)].sub = 4;
	CHECK_EQ_INT(fn(1, 1), 2);
	CHECK_EQ_INT(counter_sum(&r, 8), 6);
	ring2_close(&r);
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

/* ==== capture programs ==== */

static struct diag_cap_prog g_value;

static struct diag_cap_prog *prog_reset(struct diag_cap_prog *p)
{
	memset(p, 0, sizeof(*p));
	return p;
}

static void op(struct diag_cap_prog *p, uint8_t o, uint32_t a, uint64_t imm)
{
	if (p->n < DIAG_CAP_MAX_OPS)
		p->ops[p->n++] = (struct diag_cap_op){ .op = o, .a = a, .imm = imm };
}

static uint32_t reg_off(const char *name)
{
	int off = diag_reg_lookup(name, NULL);

	CHECK(off >= 0);
	return (uint32_t)off;
}

/* Let a value program write the u64 on its stack where a test can see it: a MEM block of
 * runtime length 0 at that "address" (pushes one value, pops two). */
static void op_emit_top(struct diag_cap_prog *p)
{
	op(p, DIAG_CAP_CONST, 0, 0);
	op(p, DIAG_CAP_SAVE_MEM_N, 1, 0);
	p->max_payload += diag_cap_block_bytes(1);
}

static void op_save(struct diag_cap_prog *p, uint8_t o, uint32_t a)
{
	op(p, o, a, 0);
	p->max_payload += o == DIAG_CAP_SAVE_FPREG ? diag_cap_block_bytes(16) : diag_cap_block_bytes(a);
}

/* A record's k-th block, NULL past the last. */
static const struct diag_cap_block *blk(const struct diag_ring_rec *rec, size_t k, const uint8_t **data)
{
	const uint8_t *pl = (const uint8_t *)(rec + 1);
	uint32_t off = 0;

	for (;;) {
		const struct diag_cap_block *b = (const void *)(pl + off);

		if (off + sizeof(*b) > rec->payload_len)
			return NULL;
		if (k-- == 0) {
			if (data)
				*data = pl + off + sizeof(*b);
			return b;
		}
		off += diag_cap_block_bytes(b->len);
	}
}

static size_t nblocks(const struct diag_ring_rec *rec)
{
	size_t k = 0;

	while (blk(rec, k, NULL))
		k++;
	return k;
}

/* Faults in the generated code are repaired as the daemon would at the signal stop. */
static volatile uint64_t g_repairs;

static const struct {
	int greg;
	size_t off;
} greg_map[] = {
	{ REG_R8, offsetof(diag_regs, r8) },   { REG_R9, offsetof(diag_regs, r9) },
	{ REG_R10, offsetof(diag_regs, r10) }, { REG_R11, offsetof(diag_regs, r11) },
	{ REG_R12, offsetof(diag_regs, r12) }, { REG_R13, offsetof(diag_regs, r13) },
	{ REG_R14, offsetof(diag_regs, r14) }, { REG_R15, offsetof(diag_regs, r15) },
	{ REG_RDI, offsetof(diag_regs, rdi) }, { REG_RSI, offsetof(diag_regs, rsi) },
	{ REG_RBP, offsetof(diag_regs, rbp) }, { REG_RBX, offsetof(diag_regs, rbx) },
	{ REG_RDX, offsetof(diag_regs, rdx) }, { REG_RAX, offsetof(diag_regs, rax) },
	{ REG_RCX, offsetof(diag_regs, rcx) }, { REG_RSP, offsetof(diag_regs, rsp) },
	{ REG_RIP, offsetof(diag_regs, rip) }, { REG_EFL, offsetof(diag_regs, eflags) },
};

static void on_fault(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;
	diag_regs r;
	uint64_t slot;
	const uint8_t *lo = g_env.region + FN_AREA, *hi = g_env.region + REGION_SIZE;

	memset(&r, 0, sizeof(r));
	for (size_t i = 0; i < sizeof(greg_map) / sizeof(greg_map[0]); i++)
		memcpy((uint8_t *)&r + greg_map[i].off, &uc->uc_mcontext.gregs[greg_map[i].greg], 8);
	slot = diag_regs_pc(&r) & ~(uint64_t)(DIAG_TRAMP_SLOT - 1);
	if (slot >= (uint64_t)(uintptr_t)lo && slot < (uint64_t)(uintptr_t)hi &&
	    diag_tramp_fault_repair(&r, slot, (const void *)(uintptr_t)slot,
				    (uint64_t)(uintptr_t)si->si_addr)) {
		for (size_t i = 0; i < sizeof(greg_map) / sizeof(greg_map[0]); i++)
			memcpy(&uc->uc_mcontext.gregs[greg_map[i].greg], (uint8_t *)&r + greg_map[i].off, 8);
		g_repairs++;
		return;
	}
	signal(sig, SIG_DFL); /* not ours: die of it */
}

static void install_fault_handler(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_fault;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
}

/* ---- the reference interpreter (lib/capture) replayed on every record ---- */

static ssize_t self_read(void *arg, uint64_t addr, void *buf, size_t len)
{
	struct iovec l = { .iov_base = buf, .iov_len = len };
	struct iovec r = { .iov_base = (void *)(uintptr_t)addr, .iov_len = len };
	ssize_t n = process_vm_readv(getpid(), &l, 1, &r, 1, 0);

	(void)arg;
	return n < 0 ? -errno : n;
}

static const diag_fpregs *g_fpregs; /* the vector registers of the next replay, or none */
static uint64_t g_replays;          /* payloads compared with diag_cap_run's */

static void rec_regs(const struct diag_ring_rec *rec, diag_regs *g)
{
	static const char *const names[DIAG_RING_NREGS] = {
		"r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx",
		"rdx", "rsi", "rdi", "rip", "rsp", "eflags",
	};

	memset(g, 0, sizeof(*g));
	for (int i = 0; i < DIAG_RING_NREGS; i++)
		diag_reg_set(g, diag_reg_lookup(names[i], NULL), rec->regs[i]);
	diag_reg_set(g, diag_reg_lookup("fs_base", NULL), rec->thread);
}

/* The condition must be true for a record; the value program must leave the same payload,
 * byte for byte, with the same outcome and fault address. */
static void check_replay(const struct diag_cap_prog *cond, const struct diag_cap_prog *value,
			 const struct diag_ring_rec *rec, uint64_t a, uint64_t b)
{
	static uint8_t payload[DIAG_CAP_MAX_PAYLOAD];
	struct diag_error err = { 0 };
	diag_regs g;
	struct diag_cap_env env = { .regs = &g, .fpregs = g_fpregs, .read_mem = self_read };
	uint32_t len = 0;
	uint64_t fault = 0;
	enum diag_cap_outcome out;

	if (rec) {
		rec_regs(rec, &g);
	} else {
		memset(&g, 0, sizeof(g));
		diag_reg_set(&g, diag_reg_lookup("rdi", NULL), a);
		diag_reg_set(&g, diag_reg_lookup("rsi", NULL), b);
	}
	if (cond) {
		CHECK_OK(diag_cap_check(cond, DIAG_CAP_CONDITION, &err), err);
		out = diag_cap_run(cond, DIAG_CAP_CONDITION, &env, NULL, 0, NULL, NULL);
		CHECK_EQ_INT(out, rec ? DIAG_CAP_DONE : DIAG_CAP_FALSE);
	}
	if (!value || !rec)
		return;
	CHECK_OK(diag_cap_check(value, DIAG_CAP_VALUE, &err), err);
	out = diag_cap_run(value, DIAG_CAP_VALUE, &env, payload, sizeof(payload), &len, &fault);
	CHECK_EQ_INT(out, rec->flags & DIAG_REC_FAULT ? DIAG_CAP_FAULTED
			  : rec->flags & DIAG_REC_ABORT ? DIAG_CAP_ABORTED : DIAG_CAP_DONE);
	CHECK_EQ_INT(rec->payload_len, len);
	if (rec->payload_len == len && memcmp(rec + 1, payload, len) != 0) {
		fprintf(stderr, "payload differs from diag_cap_run's (%u bytes)\n", len);
		CHECK(0);
	}
	if (out == DIAG_CAP_FAULTED)
		CHECK_EQ_INT(rec->fault_addr, fault);
	g_replays++;
}

/* One ring and one probed copy of c_fn_add per program pair; hit() calls it once. */
struct pt {
	struct ring2 r;
	struct probe p;
	uint64_t seen;             /* units of sub 0 already looked at */
	const struct diag_cap_prog *cond, *value;
};

static int pt_open(struct pt *t, const struct diag_cap_prog *cond, const struct diag_cap_prog *value,
		   struct diag_error *err)
{
	int rc;

	memset(t, 0, sizeof(*t));
	t->cond = cond;
	t->value = value;
	rc = ring2_open(&t->r, 1, 1024);
	if (rc < 0)
		return rc;
	rc = install(&g_env, c_fn_add, c_fn_add_end, &t->r, 11, cond, value, false, &t->p, err);
	if (rc == 0 && (!cond || cond->nlits == 0) && (!value || value->nlits == 0))
		check_code_clean(&t->p, t->p.layout.len); /* literals would follow the code */
	return rc;
}

/* Call the probed function once; the record it left, or NULL. */
static const struct diag_ring_rec *hit(struct pt *t, uint64_t a, uint64_t b)
{
	struct diag_ring_header *h = sub_hdr(&t->r, 0);
	const struct diag_ring_rec *rec;

	CHECK_EQ_INT(((fn2)(uintptr_t)t->p.fn)(a, b), (uint32_t)(a + b));
	if (h->head == t->seen) {
		check_replay(t->cond, t->value, NULL, a, b);
		return NULL;
	}
	rec = rec_at(&t->r, 0, t->seen);
	CHECK_EQ_INT(rec->seq, t->seen + 1);
	t->seen = h->head;
	check_replay(t->cond, t->value, rec, a, b);
	return rec;
}

static void pt_close(struct pt *t)
{
	ring2_close(&t->r);
}

/* ---- loads, pointer chains, strings ---- */

struct req {
	uint64_t len;
	const char *path;
	struct req *next;
	uint32_t small;
	int16_t neg;
};

static void test_chain(void)
{
	struct diag_error err = { 0 };
	struct diag_cap_prog *v = prog_reset(&g_value);
	struct req inner = { .len = 0x1122334455667788ull, .path = "/inner/path" };
	struct req outer = { .len = 7, .path = "/index.html", .next = &inner };
	const struct diag_ring_rec *rec;
	const struct diag_cap_block *b;
	const uint8_t *d;
	struct pt t;

	/* str(r->next->path), r->len (8 bytes at r) */
	op(v, DIAG_CAP_REG, reg_off("rdi"), 0);
	op(v, DIAG_CAP_CONST, 0, offsetof(struct req, next));
	op(v, DIAG_CAP_ADD, 0, 0);
	op(v, DIAG_CAP_LOAD, 8, 0);
	op(v, DIAG_CAP_CONST, 0, offsetof(struct req, path));
	op(v, DIAG_CAP_ADD, 0, 0);
	op(v, DIAG_CAP_LOAD, 8, 0);
	op_save(v, DIAG_CAP_SAVE_STR, 64);
	op(v, DIAG_CAP_REG, reg_off("rdi"), 0);
	op_save(v, DIAG_CAP_SAVE_MEM, 8);
	op(v, DIAG_CAP_END, 0, 0);
	CHECK_OK(pt_open(&t, NULL, v, &err), err);
	rec = hit(&t, (uint64_t)(uintptr_t)&outer, 0);
	CHECK(rec != NULL);
	if (!rec)
		return;
	CHECK_EQ_INT(rec->flags, 0);
	CHECK_EQ_INT(rec->units, diag_ring_rec_units(v->max_payload));
	CHECK_EQ_INT(nblocks(rec), 2);
	b = blk(rec, 0, &d);
	CHECK_EQ_INT(b->addr, (uint64_t)(uintptr_t)inner.path);
	CHECK_EQ_INT(b->len, strlen(inner.path) + 1);
	CHECK_EQ_INT(b->kind, DIAG_CAP_BLOCK_MEM);
	CHECK_EQ_INT(b->pad, 0);
	CHECK_EQ_STR((const char *)d, inner.path);
	for (uint32_t i = b->len; i < ((b->len + 7u) & ~7u); i++)
		CHECK_EQ_INT(d[i], 0); /* padding zeroed */
	b = blk(rec, 1, &d);
	CHECK_EQ_INT(b->addr, (uint64_t)(uintptr_t)&outer);
	CHECK_EQ_INT(b->len, 8);
	CHECK_EQ_INT(memcmp(d, &outer.len, 8), 0);
	CHECK_EQ_INT(rec->payload_len, diag_cap_block_bytes(12) + diag_cap_block_bytes(8));
	CHECK_EQ_INT(rec->regs[DIAG_RING_RDI], (uint64_t)(uintptr_t)&outer);
	pt_close(&t);
}

/* A slim record (DIAG_REC_SLIM): the registers asked for and the stack pointer, in index
 * order after the 48-byte header, then the payload; one 64-byte unit for `log $arg1`, and
 * diag_record_v2_regs and diag_ring_rec_payload read it back. */
static uint64_t slim_hit(struct pt *t, uint32_t regs, const struct diag_cap_prog *value,
			 uint64_t a, const struct diag_ring_rec **out)
{
	struct diag_error err = { 0 };
	struct diag_tramp_capture c;

	memset(t, 0, sizeof(*t));
	CHECK_EQ_INT(ring2_open(&t->r, 1, 1024), 0);
	t->p.fn = copy_fn(&g_env, c_fn_add, c_fn_add_end);
	t->p.addr = t->p.fn;
	t->p.slot = new_slot(&g_env);
	c = cap_for(&t->p, &t->r, 12, NULL, value);
	c.avail = (size_t)(c_fn_add_end - c_fn_add);
	c.slim = true;
	c.slim_regs = regs;
	CHECK_OK(install_cap(&c, &t->p, &err), err);
	CHECK_EQ_INT(((fn2)(uintptr_t)t->p.fn)(a, 5), (uint32_t)(a + 5));
	*out = sub_hdr(&t->r, 0)->head ? rec_at(&t->r, 0, 0) : NULL;
	CHECK(*out != NULL);
	return sub_hdr(&t->r, 0)->head;
}

static void test_slim(void)
{
	struct diag_cap_prog *v = prog_reset(&g_value);
	struct req r = { .len = 0x1122334455667788ull, .path = "/p" };
	const struct diag_ring_rec *rec;
	const uint8_t *raw;
	uint32_t off, len, mask;
	uint64_t sp;
	diag_regs g;
	struct pt t;

	/* registers only: rdi (and rsp, always) */
	CHECK_EQ_INT(slim_hit(&t, 1u << (reg_off("rdi") / 8), NULL, 0x1234, &rec), 1);
	if (rec) {
		raw = (const uint8_t *)rec;
		CHECK_EQ_INT(rec->units, 1);
		CHECK_EQ_INT(rec->flags, DIAG_REC_SLIM);
		CHECK_EQ_INT(t.p.layout.record_bytes, DIAG_RING_UNIT);
		memcpy(&mask, raw + offsetof(struct diag_ring_slim, regmask), 4);
		CHECK_EQ_INT(mask, (1u << DIAG_RING_RDI) | (1u << DIAG_RING_RSP));
		CHECK(diag_ring_rec_payload(rec, DIAG_RING_UNIT, &off, &len));
		CHECK_EQ_INT(off, DIAG_RING_SLIM_HDR + 16);
		CHECK_EQ_INT(len, 0);
		diag_record_v2_regs(rec, &g);
		CHECK_EQ_INT(diag_reg_get(&g, (int)reg_off("rdi"), 8), 0x1234);
		CHECK_EQ_INT(diag_reg_get(&g, (int)reg_off("rsi"), 8), 0); /* not kept */
		memcpy(&sp, raw + DIAG_RING_SLIM_HDR + 8, 8);
		CHECK_EQ_INT(diag_regs_sp(&g), sp);
		CHECK(sp != 0 && sp % 8 == 0);
		CHECK(!diag_ring_rec_payload(rec, DIAG_RING_SLIM_HDR + 8, &off, &len)); /* cut short */
	}
	pt_close(&t);

	/* a payload after the registers: str(r->path) with r in rdi, and rsi asked for */
	op(v, DIAG_CAP_REG, reg_off("rdi"), 0);
	op(v, DIAG_CAP_CONST, 0, offsetof(struct req, path));
	op(v, DIAG_CAP_ADD, 0, 0);
	op(v, DIAG_CAP_LOAD, 8, 0);
	op_save(v, DIAG_CAP_SAVE_STR, 64);
	op(v, DIAG_CAP_END, 0, 0);
	slim_hit(&t, (1u << (reg_off("rdi") / 8)) | (1u << (reg_off("rsi") / 8)), v,
		 (uint64_t)(uintptr_t)&r, &rec);
	if (rec) {
		CHECK_EQ_INT(rec->flags, DIAG_REC_SLIM);
		CHECK_EQ_INT(rec->units, diag_ring_slim_units(3, v->max_payload));
		CHECK(diag_ring_rec_payload(rec, (size_t)rec->units * DIAG_RING_UNIT, &off, &len));
		CHECK_EQ_INT(off, DIAG_RING_SLIM_HDR + 24);
		CHECK_EQ_INT(len, diag_cap_block_bytes(3));
		struct diag_cap_block b;
		memcpy(&b, (const uint8_t *)rec + off, sizeof(b));
		CHECK_EQ_INT(b.addr, (uint64_t)(uintptr_t)r.path);
		CHECK_EQ_INT(b.len, 3);
		CHECK_EQ_STR((const char *)rec + off + sizeof(b), "/p");
		diag_record_v2_regs(rec, &g);
		CHECK_EQ_INT(diag_reg_get(&g, (int)reg_off("rdi"), 8), (uint64_t)(uintptr_t)&r);
		CHECK_EQ_INT(diag_reg_get(&g, (int)reg_off("rsi"), 8), 5);
		struct diag_cap_snapshot sn;
		diag_cap_snapshot_of_rec(&sn, rec, (size_t)rec->units * DIAG_RING_UNIT);
		char buf[3];
		CHECK_EQ_INT(diag_cap_snapshot_read(&sn, (uint64_t)(uintptr_t)r.path, buf, 3), 3);
	}
	pt_close(&t);

	/* a register without a frame slot (the fs base): every register, the full layout */
	slim_hit(&t, 1u << (reg_off("fs_base") / 8), NULL, 1, &rec);
	if (rec) {
		CHECK_EQ_INT(rec->flags, 0);
		CHECK_EQ_INT(rec->units, diag_ring_rec_units(0));
		CHECK_EQ_INT(rec->regs[DIAG_RING_RDI], 1);
	}
	pt_close(&t);
}

static void test_strings(void)
{
	struct diag_error err = { 0 };
	struct diag_cap_prog *v = prog_reset(&g_value);
	char text[40] = "abcdefghijklmnopqrstuvwxyz";
	struct req r = { .len = 5, .path = text };
	const struct diag_ring_rec *rec;
	const struct diag_cap_block *b;
	const uint8_t *d;
	struct pt t;

	/* str(p, 4); str(p + 1) limit 64; bytes(r->path, r->len) limit 20 */
	op(v, DIAG_CAP_REG, reg_off("rsi"), 0);
	op_save(v, DIAG_CAP_SAVE_STR, 4);
	op(v, DIAG_CAP_REG, reg_off("rsi"), 0);
	op(v, DIAG_CAP_CONST, 0, 1);
	op(v, DIAG_CAP_ADD, 0, 0);
	op_save(v, DIAG_CAP_SAVE_STR, 64);
	op(v, DIAG_CAP_REG, reg_off("rdi"), 0);
	op(v, DIAG_CAP_CONST, 0, offsetof(struct req, path));
	op(v, DIAG_CAP_ADD, 0, 0);
	op(v, DIAG_CAP_LOAD, 8, 0);
	op(v, DIAG_CAP_REG, reg_off("rdi"), 0);
	op(v, DIAG_CAP_LOAD, 8, 0);
	op_save(v, DIAG_CAP_SAVE_MEM_N, 20);
	op(v, DIAG_CAP_END, 0, 0);
	CHECK_OK(pt_open(&t, NULL, v, &err), err);
	for (int round = 0; round < 3; round++) {
		/* round 0: len 5; round 1: len 1000 -> the limit; round 2: len 0, string "" */
		r.len = round == 0 ? 5 : round == 1 ? 1000 : 0;
		if (round == 2)
			text[1] = '\0';
		rec = hit(&t, (uint64_t)(uintptr_t)&r, (uint64_t)(uintptr_t)text);
		CHECK(rec != NULL);
		if (!rec)
			continue;
		CHECK_EQ_INT(rec->flags, 0);
		CHECK_EQ_INT(nblocks(rec), 3);
		b = blk(rec, 0, &d);
		CHECK_EQ_INT(b->addr, (uint64_t)(uintptr_t)text);
		CHECK_EQ_INT(b->len, round == 2 ? 2 : 4); /* the limit: no NUL */
		CHECK_EQ_INT(memcmp(d, text, b->len), 0);
		b = blk(rec, 1, &d);
		CHECK_EQ_INT(b->addr, (uint64_t)(uintptr_t)text + 1);
		CHECK_EQ_INT(b->len, round == 2 ? 1 : 26);
		CHECK_EQ_INT(memcmp(d, text + 1, b->len), 0);
		b = blk(rec, 2, &d);
		CHECK_EQ_INT(b->addr, (uint64_t)(uintptr_t)text);
		CHECK_EQ_INT(b->len, round == 0 ? 5 : round == 1 ? 20 : 0);
		CHECK_EQ_INT(memcmp(d, text, b->len), 0);
	}
	pt_close(&t);
}

/* ---- faults: NULL, a string running into an unmapped page ---- */

struct edge {
	uint8_t *page;             /* readable page; page + 4096 unmapped */
	uint64_t end;
};

static int edge_open(struct edge *e)
{
	uint8_t *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return -errno;
	munmap(p + 4096, 4096);
	memset(p, 'x', 4096);
	e->page = p;
	e->end = (uint64_t)(uintptr_t)p + 4096;
	return 0;
}

static void test_fault_null(void)
{
	struct diag_error err = { 0 };
	struct diag_cap_prog *v = prog_reset(&g_value);
	const struct diag_ring_rec *rec;
	uint64_t before = g_repairs;
	struct pt t;

	/* a block, then *(rdi + 16): rdi = 0 */
	op(v, DIAG_CAP_REG, reg_off("rsi"), 0);
	op_save(v, DIAG_CAP_SAVE_MEM, 3);
	op(v, DIAG_CAP_REG, reg_off("rdi"), 0);
	op(v, DIAG_CAP_CONST, 0, 16);
	op(v, DIAG_CAP_ADD, 0, 0);
	op(v, DIAG_CAP_LOAD, 8, 0);
	op_save(v, DIAG_CAP_SAVE_STR, 32);
	op(v, DIAG_CAP_END, 0, 0);
	CHECK_OK(pt_open(&t, NULL, v, &err), err);
	rec = hit(&t, 0, (uint64_t)(uintptr_t)"xyz");
	CHECK_EQ_INT(g_repairs, before + 1);
	CHECK(rec != NULL);
	if (rec) {
		CHECK_EQ_INT(rec->flags, DIAG_REC_FAULT);
		CHECK_EQ_INT(rec->fault_addr, 16);
		CHECK_EQ_INT(nblocks(rec), 1);
		CHECK_EQ_INT(rec->payload_len, diag_cap_block_bytes(3));
		CHECK_EQ_INT(blk(rec, 0, NULL)->len, 3);
	}
	/* the same trampoline goes on working */
	{
		const char *ptrs[3] = { NULL, NULL, "ok" };

		rec = hit(&t, (uint64_t)(uintptr_t)ptrs, (uint64_t)(uintptr_t)"xyz");
	}
	CHECK(rec != NULL && rec->flags == 0 && rec->fault_addr == 0 && nblocks(rec) == 2);
	/* a non-canonical pointer: #GP, si_addr 0, the fault address still exact */
	rec = hit(&t, 0x8000000000000000ull, (uint64_t)(uintptr_t)"xyz");
	CHECK(rec != NULL);
	if (rec) {
		CHECK_EQ_INT(rec->flags, DIAG_REC_FAULT);
		CHECK_EQ_INT(rec->fault_addr, 0x8000000000000000ull + 16);
	}
	pt_close(&t);
}

/* SAVE ops and loads that run into an unmapped page stop at its first byte. */
static void test_fault_edge(void)
{
	struct diag_error err = { 0 };
	struct diag_cap_prog *v = prog_reset(&g_value);
	const struct diag_ring_rec *rec;
	const struct diag_cap_block *b;
	const uint8_t *d;
	struct edge e;
	struct pt t;
	static const struct {
		uint8_t op;
		uint32_t a;
		uint64_t back;     /* start this many bytes before the unmapped page */
		uint32_t copied;
	} cases[] = {
		{ DIAG_CAP_SAVE_STR, 64, 5, 5 },  { DIAG_CAP_SAVE_STR, 64, 0, 0 },
		{ DIAG_CAP_SAVE_MEM, 32, 16, 16 }, { DIAG_CAP_SAVE_MEM, 32, 13, 13 },
		{ DIAG_CAP_SAVE_MEM, 8, 3, 3 },   { DIAG_CAP_LOAD, 8, 3, 0 },
		{ DIAG_CAP_LOAD, 8, 0, 0 },       { DIAG_CAP_LOAD, 4, 2, 0 },
		{ DIAG_CAP_LOAD, 2, 1, 0 },       { DIAG_CAP_LOAD, 1, 0, 0 },
	};

	CHECK_EQ_INT(edge_open(&e), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t before = g_repairs, at = e.end - cases[i].back;

		prog_reset(v);
		op(v, DIAG_CAP_REG, reg_off("rdi"), 0);
		if (cases[i].op == DIAG_CAP_LOAD) {
			op(v, DIAG_CAP_LOAD, cases[i].a, 0);
			op_emit_top(v);
		} else {
			op_save(v, cases[i].op, cases[i].a);
		}
		op(v, DIAG_CAP_END, 0, 0);
		CHECK_OK(pt_open(&t, NULL, v, &err), err);
		rec = hit(&t, at, 0);
		CHECK_EQ_INT(g_repairs, before + 1);
		CHECK(rec != NULL);
		if (!rec) {
			pt_close(&t);
			continue;
		}
		CHECK_EQ_INT(rec->flags, DIAG_REC_FAULT);
		CHECK_EQ_INT(rec->fault_addr, e.end);
		if (cases[i].op == DIAG_CAP_LOAD) {
			CHECK_EQ_INT(rec->payload_len, 0);
		} else {
			/* a string is cut to the bytes read; a memory block keeps its length, zeros
			 * from the fault on (readers cut it at fault_addr) */
			const uint32_t len = cases[i].op == DIAG_CAP_SAVE_STR ? cases[i].copied : cases[i].a;

			CHECK_EQ_INT(nblocks(rec), 1);
			b = blk(rec, 0, &d);
			CHECK_EQ_INT(b->addr, at);
			CHECK_EQ_INT(b->len, len);
			CHECK_EQ_INT(rec->payload_len, diag_cap_block_bytes(len));
			for (uint32_t k = 0; k < ((len + 7u) & ~7u); k++)
				CHECK_EQ_INT(d[k], k < cases[i].copied ? 'x' : 0);
		}
		pt_close(&t);
	}
	/* a whole block, then one cut by the fault: payload_len covers both */
	prog_reset(v);
	op(v, DIAG_CAP_REG, reg_off("rsi"), 0);
	op_save(v, DIAG_CAP_SAVE_MEM, 3);
	op(v, DIAG_CAP_REG, reg_off("rdi"), 0);
	op(v, DIAG_CAP_REG, reg_off("rsi"), 0); /* a length above the limit: 64 */
	op_save(v, DIAG_CAP_SAVE_MEM_N, 64);
	op(v, DIAG_CAP_REG, reg_off("rdi"), 0);
	op_save(v, DIAG_CAP_SAVE_STR, 64);
	op(v, DIAG_CAP_END, 0, 0);
	CHECK_OK(pt_open(&t, NULL, v, &err), err);
	rec = hit(&t, e.end - 6, (uint64_t)(uintptr_t)"xyz");
	CHECK(rec != NULL);
	if (rec) {
		CHECK_EQ_INT(rec->flags, DIAG_REC_FAULT);
		CHECK_EQ_INT(rec->fault_addr, e.end);
		CHECK_EQ_INT(nblocks(rec), 2);
		CHECK_EQ_INT(rec->payload_len, diag_cap_block_bytes(3) + diag_cap_block_bytes(64));
	}
	pt_close(&t);
	munmap(e.page, 4096);
}

/* ---- conditions ---- */

static void test_cond(void)
{
	struct diag_error err = { 0 };
	struct diag_cap_prog *c = prog_reset(&g_cond);
	struct pt t;
	const struct diag_ring_rec *rec;

	/* rsi > 4096 */
	op(c, DIAG_CAP_REG, reg_off("rsi"), 0);
	op(c, DIAG_CAP_CONST, 0, 4096);
	op(c, DIAG_CAP_GTU, 0, 0);
	op(c, DIAG_CAP_END, 0, 0);
	CHECK_OK(pt_open(&t, c, NULL, &err), err);
	CHECK(hit(&t, 1, 10) == NULL);
	rec = hit(&t, 1, 5000);
	CHECK(rec != NULL && rec->regs[DIAG_RING_RSI] == 5000 && rec->units == 3);
	CHECK(hit(&t, 1, 4096) == NULL);
	CHECK_EQ_INT(counter2(&t.r, 0, 11), 3);
	CHECK_EQ_INT(sub_hdr(&t.r, 0)->head, 3);
	pt_close(&t);
}

static void test_cond_streq(void)
{
	struct diag_error err = { 0 };
	struct diag_cap_prog *c = prog_reset(&g_cond);
	struct req r = { .path = "/index.html" };
	struct edge e;
	struct pt t;
	uint64_t before;

	/* r->path == "/index.html" */
	c->lits[0] = "/index.html";
	c->lits[1] = "xxxxy";
	c->nlits = 2;
	op(c, DIAG_CAP_REG, reg_off("rdi"), 0);
	op(c, DIAG_CAP_CONST, 0, offsetof(struct req, path));
	op(c, DIAG_CAP_ADD, 0, 0);
	op(c, DIAG_CAP_LOAD, 8, 0);
	op(c, DIAG_CAP_STREQ, 0, 0);
	op(c, DIAG_CAP_END, 0, 0);
	CHECK_OK(pt_open(&t, c, NULL, &err), err);
	CHECK(hit(&t, (uint64_t)(uintptr_t)&r, 0) != NULL);
	r.path = "/index.htm";
	CHECK(hit(&t, (uint64_t)(uintptr_t)&r, 0) == NULL);
	r.path = "/index.html2";
	CHECK(hit(&t, (uint64_t)(uintptr_t)&r, 0) == NULL);
	r.path = "";
	CHECK(hit(&t, (uint64_t)(uintptr_t)&r, 0) == NULL);
	/* a fault in the condition: no record, counted */
	before = g_repairs;
	CHECK(hit(&t, 8, 0) == NULL);
	CHECK_EQ_INT(g_repairs, before + 1);
	CHECK_EQ_INT(counter2(&t.r, 0, 11), 5);
	pt_close(&t);

	/* never reads past the first difference: "xxxx" at the page's end vs "xxxxy" reads 4 bytes
	 * and faults; vs "/index.html" stops at the first byte */
	CHECK_EQ_INT(edge_open(&e), 0);
	prog_reset(c);
	c->lits[0] = "/index.html";
	c->lits[1] = "xxxxy";
	c->nlits = 2;
	op(c, DIAG_CAP_REG, reg_off("rdi"), 0);
	op(c, DIAG_CAP_STREQ, 0, 0);
	op(c, DIAG_CAP_REG, reg_off("rdi"), 0);
	op(c, DIAG_CAP_STREQ, 1, 0);
	op(c, DIAG_CAP_OR, 0, 0);
	op(c, DIAG_CAP_END, 0, 0);
	CHECK_OK(pt_open(&t, c, NULL, &err), err);
	before = g_repairs;
	CHECK(hit(&t, e.end - 5, 0) == NULL); /* "xxxxx": both differ inside the page */
	CHECK_EQ_INT(g_repairs, before);
	CHECK(hit(&t, e.end - 4, 0) == NULL); /* "xxxx" then the unmapped page: a fault */
	CHECK_EQ_INT(g_repairs, before + 1);
	pt_close(&t);
	munmap(e.page, 4096);
}

/* ---- arithmetic, against a C statement of each op ---- */

static uint64_t ref_binop(uint8_t o, uint64_t a, uint64_t b)
{
	switch (o) {
	case DIAG_CAP_ADD: return a + b;
	case DIAG_CAP_SUB: return a - b;
	case DIAG_CAP_MUL: return a * b;
	case DIAG_CAP_AND: return a & b;
	case DIAG_CAP_OR: return a | b;
	case DIAG_CAP_XOR: return a ^ b;
	case DIAG_CAP_SHL: return a << (b & 63);
	case DIAG_CAP_SHR: return a >> (b & 63);
	case DIAG_CAP_SAR: return (uint64_t)((int64_t)a >> (b & 63));
	case DIAG_CAP_DIVS:
		return (int64_t)a == INT64_MIN && (int64_t)b == -1 ? a : (uint64_t)((int64_t)a / (int64_t)b);
	case DIAG_CAP_DIVU: return a / b;
	case DIAG_CAP_REMS:
		return (int64_t)a == INT64_MIN && (int64_t)b == -1 ? 0 : (uint64_t)((int64_t)a % (int64_t)b);
	case DIAG_CAP_REMU: return a % b;
	case DIAG_CAP_EQ: return a == b;
	case DIAG_CAP_NE: return a != b;
	case DIAG_CAP_LTS: return (int64_t)a < (int64_t)b;
	case DIAG_CAP_LES: return (int64_t)a <= (int64_t)b;
	case DIAG_CAP_GTS: return (int64_t)a > (int64_t)b;
	case DIAG_CAP_GES: return (int64_t)a >= (int64_t)b;
	case DIAG_CAP_LTU: return a < b;
	case DIAG_CAP_LEU: return a <= b;
	case DIAG_CAP_GTU: return a > b;
	default: return a >= b; /* GEU */
	}
}

static void test_alu(void)
{
	static const uint64_t vals[] = { 0, 1, 2, 7, 63, 64, 67, 0xffffffffull, 0x80000000ull,
					 0x7fffffffffffffffull, 0x8000000000000000ull, ~0ull, ~1ull,
					 0x123456789abcdefull };
	const size_t nv = sizeof(vals) / sizeof(vals[0]);
	struct diag_error err = { 0 };
	struct diag_cap_prog *v = &g_value;
	struct pt t;

	for (uint8_t o = DIAG_CAP_ADD; o <= DIAG_CAP_GEU; o++) {
		/* 5 ops per pair, 15 pairs a program */
		for (size_t base = 0; base < nv * nv; base += 15) {
			const struct diag_ring_rec *rec;
			size_t k = 0;

			prog_reset(v);
			for (size_t q = base; q < base + 15 && q < nv * nv; q++) {
				uint64_t a = vals[q / nv], b = vals[q % nv];

				op(v, DIAG_CAP_CONST, 0, a);
				op(v, DIAG_CAP_CONST, 0, b);
				op(v, o, 0, 0);
				op_emit_top(v);
			}
			op(v, DIAG_CAP_END, 0, 0);
			CHECK_OK(pt_open(&t, NULL, v, &err), err);
			rec = hit(&t, 0, 0);
			CHECK(rec != NULL);
			for (size_t q = base; rec && q < base + 15 && q < nv * nv; q++, k++) {
				uint64_t a = vals[q / nv], b = vals[q % nv];
				const struct diag_cap_block *bl;

				if ((o >= DIAG_CAP_DIVS && o <= DIAG_CAP_REMU) && b == 0) {
					CHECK_EQ_INT(rec->flags, DIAG_REC_ABORT);
					CHECK_EQ_INT(nblocks(rec), k);
					break;
				}
				bl = blk(rec, k, NULL);
				CHECK(bl != NULL);
				if (bl && bl->addr != ref_binop(o, a, b)) {
					fprintf(stderr, "op %u (0x%" PRIx64 ", 0x%" PRIx64 "): 0x%" PRIx64
						" expected 0x%" PRIx64 "\n", o, a, b, bl->addr, ref_binop(o, a, b));
					CHECK(0);
				}
			}
			pt_close(&t);
		}
	}
}

/* unary ops, extensions, constants of every width, a stack deeper than the registers */
static const struct {
	uint8_t o;
	uint32_t a;
} g_unary[] = { { DIAG_CAP_NEG, 0 },  { DIAG_CAP_NOT, 0 },  { DIAG_CAP_LNOT, 0 },
		{ DIAG_CAP_SEXT, 1 }, { DIAG_CAP_SEXT, 2 }, { DIAG_CAP_SEXT, 4 },
		{ DIAG_CAP_ZEXT, 1 }, { DIAG_CAP_ZEXT, 2 }, { DIAG_CAP_ZEXT, 4 } };
#define NUNARY (sizeof(g_unary) / sizeof(g_unary[0]))

static uint64_t ref_unary(uint8_t o, uint32_t a, uint64_t x)
{
	switch (o) {
	case DIAG_CAP_NEG: return -x;
	case DIAG_CAP_NOT: return ~x;
	case DIAG_CAP_LNOT: return x == 0;
	case DIAG_CAP_SEXT:
		return a == 1 ? (uint64_t)(int8_t)x : a == 2 ? (uint64_t)(int16_t)x : (uint64_t)(int32_t)x;
	default:
		return a == 1 ? (uint8_t)x : a == 2 ? (uint16_t)x : (uint32_t)x;
	}
}

/* Every unary op on x and y, in one program. */
static void check_unary_pair(uint64_t x, uint64_t y)
{
	struct diag_error err = { 0 };
	struct diag_cap_prog *v = prog_reset(&g_value);
	const uint64_t in[2] = { x, y };
	const struct diag_ring_rec *rec;
	struct pt t;

	for (size_t i = 0; i < 2; i++) {
		for (size_t u = 0; u < NUNARY; u++) {
			op(v, DIAG_CAP_CONST, 0, in[i]);
			op(v, g_unary[u].o, g_unary[u].a, 0);
			op_emit_top(v);
		}
	}
	op(v, DIAG_CAP_END, 0, 0);
	CHECK_OK(pt_open(&t, NULL, v, &err), err);
	rec = hit(&t, 0, 0);
	CHECK(rec != NULL);
	for (size_t k = 0; rec && k < 2 * NUNARY; k++) {
		const struct diag_cap_block *b = blk(rec, k, NULL);

		CHECK(b != NULL);
		if (b)
			CHECK_EQ_INT(b->addr, ref_unary(g_unary[k % NUNARY].o, g_unary[k % NUNARY].a, in[k / NUNARY]));
	}
	pt_close(&t);
}

static void test_unary_and_stack(void)
{
	static const uint64_t vals[] = { 0, 1, 0x80, 0xff, 0x8000, 0xffff, 0x80000000ull,
					 0xffffffffull, 0x100000000ull, ~0ull, 0x8000000000000000ull,
					 0xfedcba9876543210ull };
	struct diag_error err = { 0 };
	struct diag_cap_prog *v = &g_value;
	const struct diag_ring_rec *rec;
	struct pt t;

	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i += 2)
		check_unary_pair(vals[i], vals[i + 1]);

	/* 16 deep: 1 .. 14, DUP/DROP/DUP at the top, the top emitted (a CONST more), then 13 ADDs */
	prog_reset(v);
	for (uint64_t i = 1; i <= 14; i++)
		op(v, DIAG_CAP_CONST, 0, i * 0x100000001ull);
	op(v, DIAG_CAP_DUP, 0, 0);
	op(v, DIAG_CAP_DROP, 0, 0);
	op(v, DIAG_CAP_DUP, 0, 0);
	op_emit_top(v); /* 14 * 0x100000001 */
	for (int i = 0; i < 13; i++)
		op(v, DIAG_CAP_ADD, 0, 0);
	op_emit_top(v);
	op(v, DIAG_CAP_END, 0, 0);
	CHECK_OK(pt_open(&t, NULL, v, &err), err);
	rec = hit(&t, 0, 0);
	CHECK(rec != NULL && nblocks(rec) == 2);
	if (rec && nblocks(rec) == 2) {
		CHECK_EQ_INT(blk(rec, 0, NULL)->addr, 14 * 0x100000001ull);
		CHECK_EQ_INT(blk(rec, 1, NULL)->addr, 105 * 0x100000001ull);
	}
	pt_close(&t);
}

/* LOAD of 1, 2, 4 and 8 bytes at buf + off (aligned or not), sign-extended below 8. */
static void check_loads_at(const uint8_t *buf, uint32_t off)
{
	struct diag_error err = { 0 };
	struct diag_cap_prog *v = prog_reset(&g_value);
	const struct diag_ring_rec *rec;
	struct pt t;
	uint32_t k = 0;

	for (uint32_t sz = 1; sz <= 8; sz *= 2) {
		op(v, DIAG_CAP_REG, reg_off("rdi"), 0);
		op(v, DIAG_CAP_CONST, 0, off);
		op(v, DIAG_CAP_ADD, 0, 0);
		op(v, DIAG_CAP_LOAD, sz, 0);
		if (sz < 8)
			op(v, DIAG_CAP_SEXT, sz, 0);
		op_emit_top(v);
	}
	op(v, DIAG_CAP_END, 0, 0);
	CHECK_OK(pt_open(&t, NULL, v, &err), err);
	rec = hit(&t, (uint64_t)(uintptr_t)buf, 0);
	CHECK(rec != NULL && rec->flags == 0);
	for (uint32_t sz = 1; rec && sz <= 8; sz *= 2, k++) {
		uint64_t w = 0;

		memcpy(&w, buf + off, sz);
		if (sz < 8)
			w = ref_unary(DIAG_CAP_SEXT, sz, w);
		CHECK(blk(rec, k, NULL) != NULL);
		if (blk(rec, k, NULL))
			CHECK_EQ_INT(blk(rec, k, NULL)->addr, w);
	}
	pt_close(&t);
}

/* The expression compiler reads a value as DUP; SAVE_MEM n; LOAD n (its bytes for the daemon,
 * its value for the program), which the JIT fuses: every size at every alignment, a chain of
 * them, and faults at a page's end, all replayed by diag_cap_run. */
static void op_read_value(struct diag_cap_prog *v, uint32_t n)
{
	op(v, DIAG_CAP_DUP, 0, 0);
	op_save(v, DIAG_CAP_SAVE_MEM, n);
	op(v, DIAG_CAP_LOAD, n, 0);
}

static void test_read_value(void)
{
	static const uint8_t buf[32] __attribute__((aligned(16))) = {
		0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8b, 0x8c, 0x8d, 0x8e,
		0x8f, 0x90, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
	struct diag_error err = { 0 };
	struct diag_cap_prog *v = &g_value;
	const struct diag_ring_rec *rec;
	struct req inner = { .len = 42, .path = "/deep" };
	struct req outer = { .next = &inner };
	struct edge e;
	struct pt t;

	for (uint32_t off = 0; off < 9; off++) {
		prog_reset(v);
		for (uint32_t n = 1; n <= 8; n *= 2) {
			op(v, DIAG_CAP_REG, reg_off("rdi"), 0);
			op(v, DIAG_CAP_CONST, 0, off);
			op(v, DIAG_CAP_ADD, 0, 0);
			op_read_value(v, n);
			op_emit_top(v);
		}
		op(v, DIAG_CAP_END, 0, 0);
		CHECK_OK(pt_open(&t, NULL, v, &err), err);
		rec = hit(&t, (uint64_t)(uintptr_t)buf, 0);
		CHECK(rec != NULL && rec->flags == 0 && nblocks(rec) == 8);
		for (uint32_t n = 1, k = 0; rec && nblocks(rec) == 8 && n <= 8; n *= 2, k += 2) {
			uint64_t w = 0;
			const uint8_t *d;
			const struct diag_cap_block *b = blk(rec, k, &d);

			memcpy(&w, buf + off, n);
			CHECK_EQ_INT(b->addr, (uint64_t)(uintptr_t)(buf + off));
			CHECK_EQ_INT(b->len, n);
			CHECK_EQ_INT(memcmp(d, buf + off, n), 0);
			CHECK_EQ_INT(blk(rec, k + 1, NULL)->addr, w);
		}
		pt_close(&t);
	}
	/* str(r->next->path) as the compiler writes it: each pointer read kept for the daemon */
	prog_reset(v);
	op(v, DIAG_CAP_REG, reg_off("rdi"), 0);
	op(v, DIAG_CAP_CONST, 0, offsetof(struct req, next));
	op(v, DIAG_CAP_ADD, 0, 0);
	op_read_value(v, 8);
	op(v, DIAG_CAP_CONST, 0, offsetof(struct req, path));
	op(v, DIAG_CAP_ADD, 0, 0);
	op_read_value(v, 8);
	op_save(v, DIAG_CAP_SAVE_STR, 32);
	op(v, DIAG_CAP_END, 0, 0);
	CHECK_OK(pt_open(&t, NULL, v, &err), err);
	rec = hit(&t, (uint64_t)(uintptr_t)&outer, 0);
	CHECK(rec != NULL && rec->flags == 0 && nblocks(rec) == 3);
	if (rec && nblocks(rec) == 3) {
		const uint8_t *d;

		CHECK_EQ_INT(blk(rec, 2, &d)->len, 6);
		CHECK_EQ_STR((const char *)d, "/deep");
	}
	/* a NULL next: the fault at 8 + 0, after the first read's block */
	outer.next = NULL;
	rec = hit(&t, (uint64_t)(uintptr_t)&outer, 0);
	CHECK(rec != NULL && rec->flags == DIAG_REC_FAULT && rec->fault_addr == offsetof(struct req, path));
	pt_close(&t);
	/* at a page's end: aligned (nothing read) and unaligned (the bytes before the fault) */
	CHECK_EQ_INT(edge_open(&e), 0);
	for (uint32_t n = 2; n <= 8; n *= 2) {
		for (uint32_t back = 0; back < n; back++) {
			prog_reset(v);
			op(v, DIAG_CAP_REG, reg_off("rdi"), 0);
			op_read_value(v, n);
			op_emit_top(v);
			op(v, DIAG_CAP_END, 0, 0);
			CHECK_OK(pt_open(&t, NULL, v, &err), err);
			rec = hit(&t, e.end - back, 0);
			CHECK(rec != NULL && rec->flags == DIAG_REC_FAULT && rec->fault_addr == e.end &&
			      nblocks(rec) == 1);
			if (rec && nblocks(rec) == 1)
				CHECK_EQ_INT(blk(rec, 0, NULL)->len, n);
			pt_close(&t);
		}
	}
	munmap(e.page, 4096);
}

/* jumps, registers, vector registers, loads of each size and alignment */
static void test_jumps_regs_loads(void)
{
	struct diag_error err = { 0 };
	struct diag_cap_prog *v = &g_value;
	const struct diag_ring_rec *rec;
	struct pt t;
	static const uint8_t buf[32] __attribute__((aligned(16))) = {
		0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8b, 0x8c, 0x8d, 0x8e,
		0x8f, 0x90, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };

	/* rsi ? 111 : 222 via JZ; then JNZ over a block; then JMP */
	prog_reset(v);
	op(v, DIAG_CAP_REG, reg_off("rsi"), 0);      /* 0 */
	op(v, DIAG_CAP_JZ, 6, 0);                    /* 1 */
	op(v, DIAG_CAP_CONST, 0, 111);               /* 2 */
	op_emit_top(v);                              /* 3, 4 */
	op(v, DIAG_CAP_JMP, 9, 0);                   /* 5 */
	op(v, DIAG_CAP_CONST, 0, 222);               /* 6 */
	op_emit_top(v);                              /* 7, 8 */
	op(v, DIAG_CAP_REG, reg_off("rsi"), 0);      /* 9 */
	op(v, DIAG_CAP_JNZ, 14, 0);                  /* 10 */
	op(v, DIAG_CAP_CONST, 0, 333);               /* 11 */
	op_emit_top(v);                              /* 12, 13 */
	op(v, DIAG_CAP_REG, reg_off("rip"), 0);      /* 14 */
	op_emit_top(v);
	op(v, DIAG_CAP_REG, reg_off("rsp"), 0);
	op_emit_top(v);
	op(v, DIAG_CAP_REG, reg_off("r15"), 0);
	op_emit_top(v);
	op(v, DIAG_CAP_REG, reg_off("eflags"), 0);
	op_emit_top(v);
	op(v, DIAG_CAP_END, 0, 0);
	v->max_payload = 8 * diag_cap_block_bytes(1);
	CHECK_OK(pt_open(&t, NULL, v, &err), err);
	rec = hit(&t, 0, 0);
	CHECK(rec != NULL && nblocks(rec) == 6);
	if (rec && nblocks(rec) == 6) {
		CHECK_EQ_INT(blk(rec, 0, NULL)->addr, 222);
		CHECK_EQ_INT(blk(rec, 1, NULL)->addr, 333);
		CHECK_EQ_INT(blk(rec, 2, NULL)->addr, t.p.addr);
		CHECK_EQ_INT(blk(rec, 3, NULL)->addr, rec->regs[DIAG_RING_RSP]);
		CHECK_EQ_INT(blk(rec, 4, NULL)->addr, rec->regs[DIAG_RING_R15]);
		CHECK_EQ_INT(blk(rec, 5, NULL)->addr, rec->regs[DIAG_RING_EFLAGS]);
	}
	rec = hit(&t, 0, 1);
	CHECK(rec != NULL && nblocks(rec) == 5);
	if (rec && nblocks(rec) == 5)
		CHECK_EQ_INT(blk(rec, 0, NULL)->addr, 111);
	pt_close(&t);

	/* loads: every size at every offset 0..8, sign-extended too */
	for (uint32_t off = 0; off < 9; off++)
		check_loads_at(buf, off);

	/* xmm0's low half; xmm1 whole */
	prog_reset(v);
	op(v, DIAG_CAP_FPREG, 0, 0);
	op_emit_top(v);
	op_save(v, DIAG_CAP_SAVE_FPREG, 1);
	op(v, DIAG_CAP_END, 0, 0);
	CHECK_OK(pt_open(&t, NULL, v, &err), err);
	CHECK_EQ_INT(c_call_xmm(t.p.fn, 5, 0x4045000000000000ull), 5); /* 42.0; rsi 0 */
	rec = rec_at(&t.r, 0, 0);
	CHECK_EQ_INT(rec->seq, 1);
	{
		static diag_fpregs f;
		const uint64_t x = 0x4045000000000000ull;

		memset(&f, 0, sizeof(f));
		memcpy((uint8_t *)f.xmm_space, &x, 8);
		memcpy((uint8_t *)f.xmm_space + 16, &x, 8);
		g_fpregs = &f;
		check_replay(NULL, v, rec, 0, 0);
		g_fpregs = NULL;
	}
	CHECK_EQ_INT(nblocks(rec), 2);
	if (nblocks(rec) == 2) {
		const uint8_t *d;
		const struct diag_cap_block *b;
		uint64_t lo, hi;

		CHECK_EQ_INT(blk(rec, 0, NULL)->addr, 0x4045000000000000ull);
		b = blk(rec, 1, &d);
		CHECK_EQ_INT(b->kind, DIAG_CAP_BLOCK_FPREG);
		CHECK_EQ_INT(b->addr, 1);
		CHECK_EQ_INT(b->len, 16);
		memcpy(&lo, d, 8);
		memcpy(&hi, d + 8, 8);
		CHECK_EQ_INT(lo, 0x4045000000000000ull);
		CHECK_EQ_INT(hi, 0); /* movq zeroes the upper half */
	}
	pt_close(&t);
}

/* division by zero: ABORT in a value program, no record in a condition */
static void test_abort(void)
{
	struct diag_error err = { 0 };
	struct diag_cap_prog *v = prog_reset(&g_value), *c = prog_reset(&g_cond);
	const struct diag_ring_rec *rec;
	struct pt t;

	op(v, DIAG_CAP_REG, reg_off("rsi"), 0);
	op_save(v, DIAG_CAP_SAVE_MEM, 2);
	op(v, DIAG_CAP_CONST, 0, 10);
	op(v, DIAG_CAP_REG, reg_off("rdi"), 0);
	op(v, DIAG_CAP_DIVS, 0, 0);
	op_emit_top(v);
	op(v, DIAG_CAP_END, 0, 0);
	CHECK_OK(pt_open(&t, NULL, v, &err), err);
	rec = hit(&t, 0, (uint64_t)(uintptr_t)"ab");
	CHECK(rec != NULL && rec->flags == DIAG_REC_ABORT && nblocks(rec) == 1 &&
	      rec->payload_len == diag_cap_block_bytes(2) && rec->fault_addr == 0);
	rec = hit(&t, 3, (uint64_t)(uintptr_t)"ab");
	CHECK(rec != NULL && rec->flags == 0 && nblocks(rec) == 2 && blk(rec, 1, NULL)->addr == 3);
	pt_close(&t);

	op(c, DIAG_CAP_CONST, 0, 10);
	op(c, DIAG_CAP_REG, reg_off("rdi"), 0);
	op(c, DIAG_CAP_REMU, 0, 0);
	op(c, DIAG_CAP_END, 0, 0);
	CHECK_OK(pt_open(&t, c, NULL, &err), err);
	CHECK(hit(&t, 0, 0) == NULL);
	CHECK(hit(&t, 3, 0) != NULL);  /* 10 % 3 = 1 */
	CHECK(hit(&t, 5, 0) == NULL);  /* 10 % 5 = 0 */
	CHECK_EQ_INT(counter2(&t.r, 0, 11), 3);
	pt_close(&t);
}

/* ---- refusals of programs ---- */

static void expect_prog_refused(const struct diag_cap_prog *c, const struct diag_cap_prog *v, int code,
				const char *word)
{
	struct diag_error err = { 0 };
	struct pt t;
	int rc = pt_open(&t, c, v, &err);

	CHECK_EQ_INT(rc, code);
	if (word && !strstr(err.msg, word)) {
		fprintf(stderr, "refusal lacks '%s': %s\n", word, err.msg);
		CHECK(0);
	}
	pt_close(&t);
}

static void test_prog_refused(void)
{
	struct diag_cap_prog *v = &g_value, *c = &g_cond;

	/* a backward jump */
	prog_reset(c);
	op(c, DIAG_CAP_CONST, 0, 1);
	op(c, DIAG_CAP_JZ, 0, 0);
	op(c, DIAG_CAP_CONST, 0, 1);
	op(c, DIAG_CAP_END, 0, 0);
	expect_prog_refused(c, NULL, -DIAG_E_INVALID, "jump");
	/* a SAVE in a condition */
	prog_reset(c);
	op(c, DIAG_CAP_CONST, 0, 1);
	op(c, DIAG_CAP_DUP, 0, 0);
	op(c, DIAG_CAP_SAVE_MEM, 4, 0);
	op(c, DIAG_CAP_END, 0, 0);
	expect_prog_refused(c, NULL, -DIAG_E_INVALID, "SAVE");
	/* max_payload below what the blocks take */
	prog_reset(v);
	op(v, DIAG_CAP_REG, reg_off("rdi"), 0);
	op(v, DIAG_CAP_SAVE_STR, 64, 0);
	op(v, DIAG_CAP_END, 0, 0);
	v->max_payload = 64;
	expect_prog_refused(NULL, v, -DIAG_E_INVALID, "max_payload");
	/* depth differing between paths */
	prog_reset(v);
	op(v, DIAG_CAP_REG, reg_off("rdi"), 0);
	op(v, DIAG_CAP_JZ, 3, 0);
	op(v, DIAG_CAP_CONST, 0, 1);
	op(v, DIAG_CAP_END, 0, 0);
	expect_prog_refused(NULL, v, -DIAG_E_INVALID, "depth");
	/* a register not saved */
	prog_reset(v);
	op(v, DIAG_CAP_REG, reg_off("cs"), 0);
	op(v, DIAG_CAP_DROP, 0, 0);
	op(v, DIAG_CAP_END, 0, 0);
	expect_prog_refused(NULL, v, -DIAG_E_INVALID, "register");
	/* too much code for a slot */
	prog_reset(v);
	for (int i = 0; i < 120; i++) {
		op(v, DIAG_CAP_REG, reg_off("rdi"), 0);
		op_save(v, DIAG_CAP_SAVE_STR, 8);
	}
	op(v, DIAG_CAP_END, 0, 0);
	expect_prog_refused(NULL, v, -DIAG_E_LIMIT, "slot");
}

/* ---- 4 threads through a condition and a value program ---- */

static const char *const g_names[NTHREADS] = { "thread-zero", "one", "thread-number-two", "3" };

struct prog_seen {
	const struct worker *w;
	uint64_t next_i[NTHREADS];
	uint64_t shift, sub;
};

static int check_prog_rec(const struct diag_ring_rec *rec, void *arg)
{
	struct prog_seen *s = arg;
	uint64_t t = rec->regs[DIAG_RING_RDI], i = rec->regs[DIAG_RING_RSI];
	const struct diag_cap_block *b;
	const uint8_t *d;

	if (t >= NTHREADS || i != s->next_i[t] || rec->thread != s->w[t].tp || rec->flags != 0 ||
	    diag_ring_sub_of(rec->thread, s->shift) != s->sub || nblocks(rec) != 1)
		return 0;
	b = blk(rec, 0, &d);
	if (b->addr != (uint64_t)(uintptr_t)g_names[t] || b->len != strlen(g_names[t]) + 1 ||
	    memcmp(d, g_names[t], b->len) != 0)
		return 0;
	s->next_i[t] += 2;
	return 1;
}

static void test_threads_programs(void)
{
	struct diag_error err = { 0 };
	struct diag_cap_prog *c = prog_reset(&g_cond), *v = prog_reset(&g_value);
	struct ring2 r;
	struct probe p;
	struct worker w[NTHREADS];
	struct prog_seen s = { .w = w };
	uint64_t per_sub[4] = { 0 }, recs = 0;

	/* if (i & 1) str(names[t]) */
	op(c, DIAG_CAP_REG, reg_off("rsi"), 0);
	op(c, DIAG_CAP_CONST, 0, 1);
	op(c, DIAG_CAP_AND, 0, 0);
	op(c, DIAG_CAP_END, 0, 0);
	op(v, DIAG_CAP_CONST, 0, (uint64_t)(uintptr_t)g_names);
	op(v, DIAG_CAP_REG, reg_off("rdi"), 0);
	op(v, DIAG_CAP_CONST, 0, 3);
	op(v, DIAG_CAP_SHL, 0, 0);
	op(v, DIAG_CAP_ADD, 0, 0);
	op(v, DIAG_CAP_LOAD, 8, 0);
	op_save(v, DIAG_CAP_SAVE_STR, 32);
	op(v, DIAG_CAP_END, 0, 0);
	CHECK_EQ_INT(ring2_open(&r, 4, 1u << 18), 0);
	CHECK_OK(install(&g_env, c_fn_add, c_fn_add_end, &r, 0x125, c, v, false, &p, &err), err);
	run_workers(w, (fn2)(uintptr_t)p.fn, NULL, 0);
	s.shift = r.ctl->hash_shift;
	for (size_t i = 0; i < NTHREADS; i++) {
		CHECK_EQ_INT(w[i].bad, 0);
		per_sub[diag_ring_sub_of(w[i].tp, r.ctl->hash_shift)] += NCALLS;
		s.next_i[i] = 1;
	}
	for (uint64_t sub = 0; sub < 4; sub++) {
		long n;

		s.sub = sub;
		n = walk(&r, sub, check_prog_rec, &s, NULL);
		CHECK_EQ_INT(n, per_sub[sub] / 2);
		CHECK_EQ_INT(counter2(&r, sub, 0x125), per_sub[sub]);
		CHECK_EQ_INT(sub_hdr(&r, sub)->drops, 0);
		recs += n > 0 ? (uint64_t)n : 0;
	}
	CHECK_EQ_INT(recs, NTHREADS * NCALLS / 2);
	CHECK_EQ_INT(counter_sum(&r, 0x125), NTHREADS * NCALLS);
	ring2_close(&r);
}

/* A probe mid-function (FUNC+OFF) in a leaf that keeps data in the red zone: the trampoline
 * skips it, and a value program reads it as the function left it. */
static void test_redzone(void)
{
	struct diag_error err = { 0 };
	struct diag_cap_prog *v = prog_reset(&g_value);
	struct ring2 r;
	struct probe p;
	struct diag_tramp_capture c;
	const struct diag_ring_rec *rec;

	op(v, DIAG_CAP_REG, reg_off("rsp"), 0);
	op(v, DIAG_CAP_CONST, 0, (uint64_t)-8);
	op(v, DIAG_CAP_ADD, 0, 0);
	op(v, DIAG_CAP_LOAD, 8, 0);
	op_emit_top(v);
	op(v, DIAG_CAP_END, 0, 0);
	CHECK_EQ_INT(ring2_open(&r, 1, 512), 0);
	p.fn = copy_fn(&g_env, c_fn_redzone, c_fn_redzone_end);
	p.addr = p.fn + 5;
	p.slot = new_slot(&g_env);
	c = cap_for(&p, &r, 6, NULL, v);
	c.avail = (size_t)(c_fn_redzone_end - c_fn_redzone) - 5;
	CHECK_OK(install_cap(&c, &p, &err), err);
	CHECK_EQ_INT(p.patched_len, 5);
	CHECK_EQ_INT(((fn2)(uintptr_t)p.fn)(0x1234567890ull, 0x1111), 0x12345689a1ull);
	rec = rec_at(&r, 0, 0);
	CHECK_EQ_INT(rec->seq, 1);
	CHECK_EQ_INT(rec->regs[DIAG_RING_RIP], p.fn + 5);
	CHECK_EQ_INT(nblocks(rec), 1);
	if (nblocks(rec) == 1)
		CHECK_EQ_INT(blk(rec, 0, NULL)->addr, 0x1234567890ull); /* [rsp - 8] = rdi */
	ring2_close(&r);
}

/* ---- a signal handler re-entering the probed function mid-trampoline ---- */

static volatile fn2 g_sig_fn;
static volatile uint64_t g_sig_calls, g_sig_bad, g_sig_slot, g_sig_in_slot;

static void on_alarm(int sig, siginfo_t *si, void *ucv)
{
	const ucontext_t *uc = ucv;
	uint64_t pc = (uint64_t)uc->uc_mcontext.gregs[REG_RIP];

	(void)sig;
	(void)si;
	if (pc - g_sig_slot < DIAG_TRAMP_SLOT)
		g_sig_in_slot++;
	if (g_sig_fn) {
		if (g_sig_fn(7, 1000000 + g_sig_calls) != (uint32_t)(7 + 1000000 + g_sig_calls))
			g_sig_bad++;
		g_sig_calls++;
	}
}

static int check_reentrant_rec(const struct diag_ring_rec *rec, void *arg)
{
	uint64_t *next = arg, t = rec->regs[DIAG_RING_RDI], i = rec->regs[DIAG_RING_RSI];

	if (rec->flags != 0 || nblocks(rec) != 1 || rec->thread != thread_pointer())
		return 0;
	if (t == 7 && i >= 1000000)
		return blk(rec, 0, NULL)->addr == i;
	if (t != 1 || i != *next)
		return 0;
	(*next)++;
	return blk(rec, 0, NULL)->addr == i;
}

static void test_signal_reentry(void)
{
	struct diag_error err = { 0 };
	struct diag_cap_prog *v = prog_reset(&g_value);
	struct sigaction sa, old;
	struct itimerval it = { .it_interval = { 0, 50 }, .it_value = { 0, 50 } }, off = { 0 };
	struct ring2 r;
	struct probe p;
	uint64_t next = 0, n = 0;
	long recs;

	op(v, DIAG_CAP_REG, reg_off("rsi"), 0);
	op_emit_top(v);
	op(v, DIAG_CAP_END, 0, 0);
	CHECK_EQ_INT(ring2_open(&r, 1, 1u << 20), 0);
	CHECK_OK(install(&g_env, c_fn_add, c_fn_add_end, &r, 31, NULL, v, false, &p, &err), err);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_alarm;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, &old);
	g_sig_slot = p.slot;
	g_sig_fn = (fn2)(uintptr_t)p.fn;
	setitimer(ITIMER_REAL, &it, NULL);
	/* until a hundred signals landed, most of them inside the trampoline (it is most of the
	 * time of a call); 300000 records fit the sub-ring, so none is dropped */
	for (; n < 300000 && (g_sig_calls < 100 || g_sig_in_slot < 10); n++)
		if (((fn2)(uintptr_t)p.fn)(1, n) != (uint32_t)(1 + n))
			g_sig_bad++;
	setitimer(ITIMER_REAL, &off, NULL);
	g_sig_fn = NULL;
	sigaction(SIGALRM, &old, NULL);
	CHECK_EQ_INT(g_sig_bad, 0);
	CHECK(g_sig_in_slot > 0); /* handlers that ran on top of a trampoline's frame */
	CHECK_EQ_INT(counter2(&r, 0, 31), n + g_sig_calls);
	CHECK_EQ_INT(sub_hdr(&r, 0)->drops, 0);
	recs = walk(&r, 0, check_reentrant_rec, &next, NULL);
	CHECK_EQ_INT(recs, (long)(n + g_sig_calls));
	CHECK_EQ_INT(next, n);
	fprintf(stderr, "signal re-entry: %llu calls, %llu from the handler, %llu of them inside the slot\n",
		(unsigned long long)n, (unsigned long long)g_sig_calls, (unsigned long long)g_sig_in_slot);
	ring2_close(&r);
}

/* ---- random programs: the JIT against diag_cap_run ---- */

struct gen {
	struct diag_cap_prog *p;
	uint64_t rng;
	int depth;
	const uint64_t *ptrs;      /* addresses worth loading from: good, at a page end, bad */
	size_t nptrs;
	bool cond;                 /* a condition: no SAVE */
};

static uint64_t rnd(struct gen *g, uint64_t n)
{
	g->rng ^= g->rng << 13;
	g->rng ^= g->rng >> 7;
	g->rng ^= g->rng << 17;
	return g->rng % n;
}

static void gop(struct gen *g, uint8_t o, uint32_t a, uint64_t imm, int effect)
{
	op(g->p, o, a, imm);
	g->depth += effect;
}

/* An address: one of the pointers, maybe plus a small offset, maybe read from memory. */
static void gen_addr(struct gen *g, int budget)
{
	gop(g, DIAG_CAP_CONST, 0, g->ptrs[rnd(g, g->nptrs)], 1);
	if (rnd(g, 2)) {
		gop(g, DIAG_CAP_CONST, 0, rnd(g, 24), 1);
		gop(g, DIAG_CAP_ADD, 0, 0, -1);
	}
	if (budget > 0 && rnd(g, 3) == 0)
		gop(g, DIAG_CAP_LOAD, 8, 0, 0); /* a pointer chain */
}

/* A value on the stack. */
static void gen_expr(struct gen *g, int budget)
{
	static const uint8_t bin[] = { DIAG_CAP_ADD, DIAG_CAP_SUB, DIAG_CAP_MUL, DIAG_CAP_AND,
				       DIAG_CAP_XOR, DIAG_CAP_SHR, DIAG_CAP_SAR, DIAG_CAP_DIVU,
				       DIAG_CAP_REMS, DIAG_CAP_LTS, DIAG_CAP_GEU, DIAG_CAP_NE };
	static const uint32_t sizes[] = { 1, 2, 4, 8 };
	uint64_t k = budget <= 0 || g->depth > 10 ? rnd(g, 2) : rnd(g, 6);

	switch (k) {
	case 0:
		gop(g, DIAG_CAP_CONST, 0, rnd(g, 2) ? rnd(g, 300) : g->rng, 1);
		return;
	case 1:
		gop(g, DIAG_CAP_REG, reg_off(rnd(g, 2) ? "rdi" : "rsi"), 0, 1);
		return;
	case 2: {
		uint32_t n = sizes[rnd(g, 4)];

		gen_addr(g, budget - 1);
		if (!g->cond && g->p->max_payload + 64 < DIAG_CAP_MAX_PAYLOAD && rnd(g, 2)) {
			gop(g, DIAG_CAP_DUP, 0, 0, 1); /* the compiler's read of a kept value */
			op_save(g->p, DIAG_CAP_SAVE_MEM, n);
			g->depth--;
		}
		gop(g, DIAG_CAP_LOAD, n, 0, 0);
		if (n < 8 && rnd(g, 2))
			gop(g, DIAG_CAP_SEXT, n, 0, 0);
		return;
	}
	case 3:
		gen_expr(g, budget - 1);
		gop(g, rnd(g, 2) ? DIAG_CAP_NEG : DIAG_CAP_LNOT, 0, 0, 0);
		return;
	case 4:
		gen_addr(g, budget - 1);
		g->p->lits[0] = "xxxx";
		g->p->lits[1] = "";
		g->p->nlits = 2;
		gop(g, DIAG_CAP_STREQ, (uint32_t)rnd(g, 2), 0, 0);
		return;
	default:
		gen_expr(g, budget - 1);
		gen_expr(g, budget - 1);
		gop(g, bin[rnd(g, sizeof(bin))], 0, 0, -1);
		return;
	}
}

/* A statement of a value program: a block saved, or an expression dropped, or either under a
 * JZ that skips it. */
static void gen_stmt(struct gen *g, int budget)
{
	size_t jz = 0;
	bool cond = budget > 0 && rnd(g, 4) == 0;

	if (cond) {
		gen_expr(g, 1);
		jz = g->p->n;
		gop(g, DIAG_CAP_JZ, 0, 0, -1);
	}
	switch (rnd(g, 4)) {
	case 0:
		gen_addr(g, 1);
		op_save(g->p, DIAG_CAP_SAVE_STR, 1 + (uint32_t)rnd(g, 40));
		g->depth--;
		break;
	case 1:
		gen_addr(g, 1);
		op_save(g->p, DIAG_CAP_SAVE_MEM, 1 + (uint32_t)rnd(g, 40));
		g->depth--;
		break;
	case 2:
		gen_addr(g, 1);
		gen_expr(g, 1);
		op_save(g->p, DIAG_CAP_SAVE_MEM_N, 1 + (uint32_t)rnd(g, 40));
		g->depth -= 2;
		break;
	default:
		gen_expr(g, 2);
		gop(g, DIAG_CAP_DROP, 0, 0, -1);
		break;
	}
	if (cond)
		g->p->ops[jz].a = (uint32_t)g->p->n; /* lands on the next statement (or END) */
}

static void test_random_programs(void)
{
	struct diag_error err = { 0 };
	static uint8_t mem[256] __attribute__((aligned(64)));
	struct edge e;
	uint64_t ptrs[12];
	struct gen g = { .rng = 0x9e3779b97f4a7c15ull, .ptrs = ptrs, .nptrs = 12 };
	int built = 0, faulted = 0;

	CHECK_EQ_INT(edge_open(&e), 0);
	/* readable bytes with NULs and pointers back into it, the page end, NULL, non-canonical */
	for (size_t i = 0; i < sizeof(mem); i++)
		mem[i] = (uint8_t)(i % 7 ? 'a' + i % 26 : 0);
	for (size_t i = 0; i < 4; i++) {
		uint64_t q = (uint64_t)(uintptr_t)(mem + 16 * (i + 1));

		memcpy(mem + 128 + 8 * i, &q, 8);
	}
	for (size_t i = 0; i < 7; i++)
		ptrs[i] = (uint64_t)(uintptr_t)(mem + 128 + 8 * (i % 4));
	ptrs[7] = (uint64_t)(uintptr_t)mem + 3;
	ptrs[8] = e.end - 11;
	ptrs[9] = e.end - 4;
	ptrs[10] = 0;
	ptrs[11] = 0xdead000000000000ull;
	for (int round = 0; round < 400; round++) {
		struct diag_cap_prog *v = prog_reset(&g_value);
		struct pt t;
		int n = 1 + (int)rnd(&g, 5);

		g.p = v;
		g.depth = 0;
		for (int i = 0; i < n && v->n < DIAG_CAP_MAX_OPS - 40; i++)
			gen_stmt(&g, 2);
		op(v, DIAG_CAP_END, 0, 0);
		if (diag_cap_check(v, DIAG_CAP_VALUE, &err) < 0) {
			fprintf(stderr, "generator made a bad program: %s\n", err.msg);
			CHECK(0);
			continue;
		}
		if (pt_open(&t, NULL, v, &err) < 0) {
			CHECK_EQ_INT(err.code, -DIAG_E_LIMIT); /* too long for a slot: allowed */
			pt_close(&t);
			continue;
		}
		built++;
		for (int k = 0; k < 2; k++) {
			const struct diag_ring_rec *rec = hit(&t, ptrs[rnd(&g, 12)], rnd(&g, 64));

			CHECK(rec != NULL); /* replayed by diag_cap_run inside hit() */
			if (rec && (rec->flags & DIAG_REC_FAULT))
				faulted++;
		}
		pt_close(&t);
	}
	fprintf(stderr, "random value programs: %d built, %d records faulted\n", built, faulted);
	CHECK(built > 300);
	CHECK(faulted > 50 && faulted < 2 * built - 50); /* both kinds of record, many of each */
	/* conditions: the verdict (a record or none) as diag_cap_run's */
	built = faulted = 0;
	g.cond = true;
	for (int round = 0; round < 300; round++) {
		struct diag_cap_prog *c = prog_reset(&g_cond);
		struct pt t;

		g.p = c;
		g.depth = 0;
		gen_expr(&g, 3);
		op(c, DIAG_CAP_END, 0, 0);
		if (diag_cap_check(c, DIAG_CAP_CONDITION, &err) < 0 || pt_open(&t, c, NULL, &err) < 0) {
			fprintf(stderr, "random condition refused: %s\n", err.msg);
			CHECK(0);
			continue;
		}
		for (int k = 0; k < 3; k++)
			faulted += hit(&t, ptrs[rnd(&g, 12)], rnd(&g, 64)) != NULL; /* replayed inside */
		built++;
		pt_close(&t);
	}
	fprintf(stderr, "random conditions: %d built, %d of %d hits recorded\n", built, faulted, 3 * built);
	CHECK(faulted > 50 && faulted < 3 * built - 50);
	munmap(e.page, 4096);
}

/* ==== exit trampolines ==== */

static int install_exit(const uint8_t *begin, const uint8_t *end, size_t addr_off, size_t term_off,
			const struct ring2 *r, uint32_t site, const struct diag_cap_prog *value,
			struct probe *p, struct diag_error *err)
{
	struct diag_tramp_capture c;

	p->fn = copy_fn(&g_env, begin, end);
	p->addr = p->fn + addr_off;
	p->slot = new_slot(&g_env);
	c = cap_for(p, r, site, NULL, value);
	c.kind = DIAG_TRAMP_EXIT;
	c.term = p->fn + term_off;
	c.avail = (size_t)(end - begin) - addr_off;
	return install_cap(&c, p, err);
}

static void test_exit_ret(void)
{
	struct diag_error err = { 0 };
	struct diag_cap_prog *v = prog_reset(&g_value);
	struct ring2 r;
	struct probe p;
	const size_t len = (size_t)(c_fn_exit_end - c_fn_exit), term_off = len - 1;
	uint64_t orig = 0;

	/* the result and the return address (*(u64 *)rsp at the ret) */
	op(v, DIAG_CAP_REG, reg_off("rax"), 0);
	op_emit_top(v);
	op(v, DIAG_CAP_REG, reg_off("rsp"), 0);
	op(v, DIAG_CAP_LOAD, 8, 0);
	op_emit_top(v);
	op(v, DIAG_CAP_END, 0, 0);
	CHECK_EQ_INT(ring2_open(&r, 1, 512), 0);
	/* mov rsp, rbp; pop rbp; ret: 3 + 1 + 1 bytes */
	CHECK_OK(install_exit(c_fn_exit, c_fn_exit_end, len - 5, term_off, &r, 21, v, &p, &err), err);
	CHECK_EQ_INT(p.patched_len, 5);
	check_code_clean(&p, p.layout.len);
	for (uint64_t i = 0; i < 4; i++) {
		uint64_t rsp_at_call = 0, flags = 0x202 | (i & 1 ? 0x801 : 0);
		struct pair got = c_call_flags(p.fn, flags, &rsp_at_call);
		const struct diag_ring_rec *rec = rec_at(&r, 0, i * rec_at(&r, 0, 0)->units);

		CHECK_EQ_INT(got.a, p.fn + flags);
		CHECK_EQ_INT(got.b & FLAGS_USER, flags & FLAGS_USER);
		CHECK_EQ_INT(rec->flags, DIAG_REC_EXIT);
		/* no replay: the stack slot read at the ret is reused by the caller since */
		CHECK_EQ_INT(rec->site, 21);
		CHECK_EQ_INT(rec->regs[DIAG_RING_RIP], p.fn + term_off);
		CHECK_EQ_INT(rec->regs[DIAG_RING_RAX], p.fn + flags);
		CHECK_EQ_INT(rec->regs[DIAG_RING_RSP], rsp_at_call - 8); /* at the return address */
		CHECK_EQ_INT(rec->regs[DIAG_RING_EFLAGS] & FLAGS_USER, flags & FLAGS_USER);
		CHECK_EQ_INT(nblocks(rec), 2);
		if (nblocks(rec) == 2) {
			CHECK_EQ_INT(blk(rec, 0, NULL)->addr, p.fn + flags);
			uint64_t ret = blk(rec, 1, NULL)->addr; /* into c_call_flags, after its call */

			CHECK(ret > (uint64_t)(uintptr_t)c_call_flags &&
			      ret < (uint64_t)(uintptr_t)c_call_flags_end);
		}
	}
	CHECK_EQ_INT(counter2(&r, 0, 21), 4);
	/* the layout: two copies then the recording code, the ret last */
	CHECK_EQ_INT(p.layout.n_insns, 3);
	CHECK_EQ_INT(diag_tramp_locate(&p.layout, p.layout.tramp_addr, &orig), DIAG_TRAMP_RELOCATED);
	CHECK_EQ_INT(orig, p.addr);
	CHECK_EQ_INT(diag_tramp_locate(&p.layout, p.layout.tramp_addr + 3, &orig), DIAG_TRAMP_RELOCATED);
	CHECK_EQ_INT(orig, p.addr + 3);
	CHECK_EQ_INT(diag_tramp_locate(&p.layout, p.layout.tramp_addr + 4, &orig), DIAG_TRAMP_RECORDING);
	CHECK_EQ_INT(diag_tramp_locate(&p.layout, p.layout.tramp_addr + p.layout.reloc_off, &orig),
		     DIAG_TRAMP_RELOCATED);
	CHECK_EQ_INT(orig, p.fn + term_off);
	ring2_close(&r);
}

static void test_exit_tail(void)
{
	struct diag_error err = { 0 };
	struct ring2 r;
	struct probe p;
	/* c_fn_tail: lea rax, [rdi + 1] (4 bytes); jmp c_fn_tail_dst (5 bytes) */
	const size_t dst_off = (size_t)(c_fn_tail_dst - c_fn_tail);

	CHECK_EQ_INT(ring2_open(&r, 1, 512), 0);
	for (int variant = 0; variant < 2; variant++) {
		uint64_t rsp_at_call = 0;
		struct pair got;
		const struct diag_ring_rec *rec;
		uint64_t head0 = sub_hdr(&r, 0)->head;

		/* variant 0: the jmp alone (5 bytes); 1: lea + jmp */
		CHECK_OK(install_exit(c_fn_tail, c_fn_tail_dst_end, variant ? 0 : 4, 4, &r, 22, NULL, &p, &err),
			 err);
		CHECK_EQ_INT(p.patched_len, variant ? 9 : 5);
		got = c_call_flags(p.fn, 3, &rsp_at_call); /* (fn, 3) -> fn * 3 */
		CHECK_EQ_INT(got.a, p.fn * 3);
		rec = rec_at(&r, 0, head0);
		CHECK_EQ_INT(rec->seq, head0 + 1);
		CHECK_EQ_INT(rec->flags, DIAG_REC_EXIT);
		CHECK_EQ_INT(rec->regs[DIAG_RING_RIP], p.fn + 4);
		CHECK_EQ_INT(rec->regs[DIAG_RING_RAX], p.fn + 1);
		CHECK_EQ_INT(rec->regs[DIAG_RING_RSP], rsp_at_call - 8);
		CHECK_EQ_INT(p.fn + dst_off, (uint64_t)(uintptr_t)(g_env.region + (g_env.nfn - 1) * FN_SLOT) + dst_off);
	}
	CHECK_EQ_INT(counter2(&r, 0, 22), 2);
	ring2_close(&r);
}

/* A condition at the exit: only results above 100 are recorded, every exit counted. */
static void test_exit_cond(void)
{
	struct diag_error err = { 0 };
	struct diag_cap_prog *c = prog_reset(&g_cond);
	struct diag_tramp_capture cap;
	struct ring2 r;
	struct probe p;
	const size_t len = (size_t)(c_fn_exit_end - c_fn_exit);
	fn2 fn;

	op(c, DIAG_CAP_REG, reg_off("rax"), 0);
	op(c, DIAG_CAP_CONST, 0, 100);
	op(c, DIAG_CAP_GTU, 0, 0);
	op(c, DIAG_CAP_END, 0, 0);
	CHECK_EQ_INT(ring2_open(&r, 1, 512), 0);
	p.fn = copy_fn(&g_env, c_fn_exit, c_fn_exit_end);
	p.addr = p.fn + len - 5;
	p.slot = new_slot(&g_env);
	cap = cap_for(&p, &r, 23, c, NULL);
	cap.kind = DIAG_TRAMP_EXIT;
	cap.term = p.fn + len - 1;
	cap.avail = 5;
	CHECK_OK(install_cap(&cap, &p, &err), err);
	fn = (fn2)(uintptr_t)p.fn;
	for (uint64_t i = 0; i < 10; i++)
		CHECK_EQ_INT(fn(i * 30, 1), i * 30 + 1);
	CHECK_EQ_INT(counter2(&r, 0, 23), 10);
	CHECK_EQ_INT(sub_hdr(&r, 0)->head, 3 * 6); /* 121, 151, ..., 271 */
	CHECK_EQ_INT(rec_at(&r, 0, 0)->regs[DIAG_RING_RAX], 121);
	CHECK_EQ_INT(rec_at(&r, 0, 0)->flags, DIAG_REC_EXIT);
	ring2_close(&r);
}

/* A value program faulting at an exit: the record flagged EXIT and FAULT, the function
 * still returns its result through the relocated ret. */
static void test_exit_fault(void)
{
	struct diag_error err = { 0 };
	struct diag_cap_prog *v = prog_reset(&g_value);
	struct diag_tramp_capture cap;
	struct ring2 r;
	struct probe p;
	const size_t len = (size_t)(c_fn_exit_end - c_fn_exit);
	const struct diag_ring_rec *rec;
	uint64_t before = g_repairs;

	op(v, DIAG_CAP_REG, reg_off("rax"), 0);
	op_save(v, DIAG_CAP_SAVE_STR, 16); /* *(char *)result */
	op(v, DIAG_CAP_END, 0, 0);
	CHECK_EQ_INT(ring2_open(&r, 1, 512), 0);
	p.fn = copy_fn(&g_env, c_fn_exit, c_fn_exit_end);
	p.addr = p.fn + len - 5;
	p.slot = new_slot(&g_env);
	cap = cap_for(&p, &r, 24, NULL, v);
	cap.kind = DIAG_TRAMP_EXIT;
	cap.term = p.fn + len - 1;
	cap.avail = 5;
	CHECK_OK(install_cap(&cap, &p, &err), err);
	CHECK_EQ_INT(((fn2)(uintptr_t)p.fn)(0x10, 0), 0x10);
	CHECK_EQ_INT(g_repairs, before + 1);
	rec = rec_at(&r, 0, 0);
	CHECK_EQ_INT(rec->seq, 1);
	CHECK_EQ_INT(rec->flags, DIAG_REC_EXIT | DIAG_REC_FAULT);
	CHECK_EQ_INT(rec->fault_addr, 0x10);
	CHECK_EQ_INT(rec->payload_len, diag_cap_block_bytes(0));
	check_replay(NULL, v, rec, 0, 0);
	{
		static const char hello[] = "hello";

		CHECK_EQ_INT(((fn2)(uintptr_t)p.fn)((uint64_t)(uintptr_t)hello, 0), (uint64_t)(uintptr_t)hello);
		rec = rec_at(&r, 0, rec->units);
		CHECK_EQ_INT(rec->flags, DIAG_REC_EXIT);
		CHECK_EQ_INT(blk(rec, 0, NULL)->len, 6);
		check_replay(NULL, v, rec, 0, 0);
	}
	ring2_close(&r);
}

static void test_exit_refused(void)
{
	struct diag_error err = { 0 };
	struct ring2 r;
	struct probe p;

	CHECK_EQ_INT(ring2_open(&r, 1, 512), 0);
	/* pop rbp; ret: 2 bytes, too short for the jump */
	CHECK_EQ_INT(install_exit(c_fn_exit, c_fn_exit_end, (size_t)(c_fn_exit_end - c_fn_exit) - 2,
				  (size_t)(c_fn_exit_end - c_fn_exit) - 1, &r, 1, NULL, &p, &err), -DIAG_E_RELOC);
	/* the "terminator" is not a ret or a jmp */
	CHECK_EQ_INT(install_exit(c_fn_exit, c_fn_exit_end, 0, 4, &r, 1, NULL, &p, &err), -DIAG_E_RELOC);
	CHECK(strstr(err.msg, "not a ret") != NULL);
	/* term not on an instruction boundary of the bytes from addr */
	CHECK_EQ_INT(install_exit(c_fn_exit, c_fn_exit_end, 0, 2, &r, 1, NULL, &p, &err), -DIAG_E_PARSE);
	ring2_close(&r);
}

/* ---- the repair itself: only our pcs, only with the slot's magic ---- */

static void test_repair_unit(void)
{
	struct diag_error err = { 0 };
	struct diag_cap_prog *v = prog_reset(&g_value), *c = prog_reset(&g_cond);
	struct ring2 r;
	struct probe p;
	struct diag_tramp_slot_header h;
	diag_regs g;

	op(c, DIAG_CAP_REG, reg_off("rdi"), 0);
	op(c, DIAG_CAP_LOAD, 8, 0);
	op(c, DIAG_CAP_END, 0, 0);
	op(v, DIAG_CAP_REG, reg_off("rdi"), 0);
	op_save(v, DIAG_CAP_SAVE_STR, 16);
	op(v, DIAG_CAP_END, 0, 0);
	CHECK_EQ_INT(ring2_open(&r, 1, 512), 0);
	for (int fsgs = 0; fsgs < 2; fsgs++) {
		CHECK_OK(install(&g_env, c_fn_add, c_fn_add_end, &r, 3, c, v, fsgs, &p, &err), err);
		memcpy(&h, (const void *)(uintptr_t)p.slot, sizeof(h));
		CHECK(h.cond_lo >= DIAG_TRAMP_SLOT_CODE && h.cond_lo < h.cond_hi);
		CHECK(h.value_lo > h.cond_hi && h.value_lo < h.value_hi);
		CHECK(h.cond_landing >= h.cond_hi && h.value_landing >= h.value_hi);
		memset(&g, 0, sizeof(g));
		diag_regs_set_pc(&g, p.slot + h.cond_lo);
		CHECK(diag_tramp_fault_repair(&g, p.slot, &h, 0));
		CHECK_EQ_INT(diag_regs_pc(&g), p.slot + h.cond_landing);
		diag_regs_set_pc(&g, p.slot + h.value_hi - 1);
		CHECK(diag_tramp_fault_repair(&g, p.slot, &h, 0));
		CHECK_EQ_INT(diag_regs_pc(&g), p.slot + h.value_landing);
		/* outside the ranges, another slot, a retired slot: not ours */
		diag_regs_set_pc(&g, p.slot + h.value_hi);
		CHECK(!diag_tramp_fault_repair(&g, p.slot, &h, 0));
		diag_regs_set_pc(&g, p.slot + h.cond_lo + DIAG_TRAMP_SLOT);
		CHECK(!diag_tramp_fault_repair(&g, p.slot, &h, 0));
		diag_regs_set_pc(&g, p.slot + h.cond_lo);
		CHECK(!diag_tramp_fault_repair(&g, p.slot + DIAG_TRAMP_SLOT, &h, 0));
		h.magic = 0;
		CHECK(!diag_tramp_fault_repair(&g, p.slot, &h, 0));
		memcpy(&h, (const void *)(uintptr_t)p.slot, sizeof(h));
		/* a landing outside the slot's code is refused */
		h.cond_landing = 8;
		diag_regs_set_pc(&g, p.slot + h.cond_lo);
		CHECK(!diag_tramp_fault_repair(&g, p.slot, &h, 0));
		CHECK_EQ_INT(diag_regs_pc(&g), p.slot + h.cond_lo);
	}
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
	test_count_only(&g_env);
	test_full_and_pad(&g_env);
	test_threads(&g_env);
	test_thread_table(&g_env);
	test_consumer(&g_env);
	install_fault_handler();
	test_chain();
	test_slim();
	test_strings();
	test_fault_null();
	test_fault_edge();
	test_cond();
	test_cond_streq();
	test_alu();
	test_unary_and_stack();
	test_jumps_regs_loads();
	test_read_value();
	test_random_programs();
	test_abort();
	test_threads_programs();
	test_signal_reentry();
	test_prog_refused();
	test_exit_ret();
	test_exit_tail();
	test_exit_cond();
	test_exit_fault();
	test_exit_refused();
	test_redzone();
	test_repair_unit();
	fprintf(stderr, "%llu value records replayed by diag_cap_run\n", (unsigned long long)g_replays);
	CHECK(g_replays > 100);
	munmap(p, REGION_SIZE);
	return CHECK_DONE();
}
