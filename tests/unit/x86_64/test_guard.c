/* test_guard: the SIGSEGV/SIGBUS fault guard executed in-process. The built blob is installed as
 * this process's SIGSEGV and SIGBUS action (raw rt_sigaction, restorer from the blob, as the
 * daemon installs it), and code that faults inside a fake capture slot (a 4096-aligned RWX page
 * with a slot header, a faulting load in its value or condition range, landing code that
 * records what it got) must resume at the landing with every other register as at the fault
 * (the landing reads the address it could not read from the load's own address register),
 * from 4 threads, for NULL, small, unmapped, kernel, non-canonical pointers and a SIGBUS past a
 * file's end.
 * Faults elsewhere (outside any slot, in a slot outside its ranges, a retired slot, a sent
 * signal) chain to the previous action: an SA_SIGINFO handler, a plain handler, SA_RESETHAND;
 * SIG_DFL and SIG_IGN kill with the right signal (forked children, status checked); a signal
 * sent to a SIG_IGN process stays ignored. The handler's logic is also called directly with
 * forged siginfo/ucontext for the range edges. Proves that the byte array in guard.c is what
 * its template (diag_guard_template()->source) assembles to. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "check.h"
#include "inproc_code.h"

#include "arch/guard.h"
#include "arch/trampoline.h"
#include "util/error.h"

/* ---- code under test (Intel syntax) ----
 * g_value: the value program's load, u64 (p, out) -> *p; g_cond: the condition's, a byte.
 * g_vland, g_cland: what a landing does after the repair: *out = rdi (the address the load
 * used: registers are as at the fault), returns a marker saying which landing ran. Each is
 * copied to its own offset in the fake slot. */
__asm__(".intel_syntax noprefix\n.text\n"
	FN(g_value) "mov rax, [rdi]\n" END(g_value)
	FN(g_value_ret) "ret\n" END(g_value_ret)
	FN(g_cond) "movzx eax, byte ptr [rdi]\n ret\n" END(g_cond)
	FN(g_vland) "mov [rsi], rdi\n movabs rax, 0x76616c7565\n ret\n" END(g_vland)
	FN(g_cland) "mov [rsi], rdi\n movabs rax, 0x636f6e64\n ret\n" END(g_cland)
	/* a load outside every slot, same signature */
	FN(g_plain) "mov rax, [rdi]\n ret\n" END(g_plain)
	".att_syntax prefix\n");

DECL(g_value); DECL(g_value_ret); DECL(g_cond); DECL(g_vland); DECL(g_cland); DECL(g_plain);

typedef uint64_t (*loadfn)(const void *p, uint64_t *out);
typedef void (*sa_fn)(int, siginfo_t *, void *);

/* The guard runs as a signal handler: the kernel restores every register at sigreturn, so it
 * may use callee-saved ones (r12-r15). Called here as a plain function, they are saved around
 * it (an optimised caller keeps its loop state there). */
void call_as_handler(uint64_t fn, int sig, siginfo_t *si, void *uc);
__asm__(".text\n"
	".type call_as_handler, @function\n"
	"call_as_handler:\n"
	"\tpush %rbx\n\tpush %rbp\n\tpush %r12\n\tpush %r13\n\tpush %r14\n\tpush %r15\n"
	"\tsub $8, %rsp\n"
	"\tmov %rdi, %rax\n\tmov %esi, %edi\n\tmov %rdx, %rsi\n\tmov %rcx, %rdx\n"
	"\tcall *%rax\n"
	"\tadd $8, %rsp\n"
	"\tpop %r15\n\tpop %r14\n\tpop %r13\n\tpop %r12\n\tpop %rbp\n\tpop %rbx\n"
	"\tret\n"
	".size call_as_handler, .-call_as_handler\n");

#define V_OFF 64     /* the value program: [64, 64 + len(g_value)), then ret */
#define C_OFF 160    /* the condition program */
#define VL_OFF 256   /* value_landing */
#define CL_OFF 320   /* cond_landing */
#define OUT_OFF 512  /* in the slot but no range: a load here is not ours */
#define VLAND_MARK 0x76616c7565ull
#define CLAND_MARK 0x636f6e64ull

struct env {
	uint8_t *region;            /* 3 pages: the slot, an unmapped page, the blob */
	uint8_t *slot;
	uint8_t *hole;              /* PROT_NONE */
	struct diag_guard_layout l;
	struct diag_ksigaction saved[DIAG_GUARD_NSIGS];
};

static void *at(uint64_t addr)
{
	return (void *)(uintptr_t)addr;
}

static long ksigaction(int sig, const struct diag_ksigaction *act, struct diag_ksigaction *old)
{
	return syscall(SYS_rt_sigaction, sig, act, old, 8);
}

static void put_code(uint8_t *dst, const uint8_t *begin, const uint8_t *end)
{
	memcpy(dst, begin, (size_t)(end - begin));
}

static void slot_header(struct env *e, uint64_t magic)
{
	struct diag_tramp_slot_header h = {
		.magic = magic,
		.value_lo = V_OFF,
		.value_hi = (uint16_t)(V_OFF + (g_value_end - g_value)),
		.cond_lo = C_OFF,
		.cond_hi = (uint16_t)(C_OFF + (g_cond_end - g_cond) - 1), /* the load, not the ret */
		.value_landing = VL_OFF,
		.cond_landing = CL_OFF,
		.site = 7,
	};
	memcpy(e->slot, &h, sizeof(h));
}

static uint64_t slot_magic(const struct env *e)
{
	return DIAG_TRAMP_SLOT_MAGIC ^ (uint64_t)(uintptr_t)e->slot;
}

static int env_open(struct env *e, struct diag_error *err)
{
	size_t len;

	memset(e, 0, sizeof(*e));
	e->region = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (e->region == MAP_FAILED)
		return -errno;
	e->slot = e->region;
	e->hole = e->region + 4096;
	if (mprotect(e->hole, 4096, PROT_NONE) < 0)
		return -errno;
	memset(e->slot, 0xcc, 4096);
	slot_header(e, slot_magic(e));
	put_code(e->slot + V_OFF, g_value, g_value_end);
	put_code(e->slot + V_OFF + (g_value_end - g_value), g_value_ret, g_value_ret_end);
	put_code(e->slot + C_OFF, g_cond, g_cond_end);
	put_code(e->slot + VL_OFF, g_vland, g_vland_end);
	put_code(e->slot + CL_OFF, g_cland, g_cland_end);
	put_code(e->slot + OUT_OFF, g_plain, g_plain_end);
	uint8_t *blob = e->region + 2 * 4096;
	return diag_guard_build((uint64_t)(uintptr_t)blob, blob, 4096, &len, &e->l, err);
}

/* As the daemon does: remember the previous action in the blob, then install ours. */
static int install(struct env *e)
{
	for (size_t i = 0; i < DIAG_GUARD_NSIGS; i++) {
		struct diag_ksigaction old, ours;
		if (ksigaction(diag_guard_signal(i), NULL, &old) < 0)
			return -errno;
		e->saved[i] = old;
		memcpy(at(e->l.old_action[i]), &old, sizeof(old));
		diag_guard_action(&e->l, &old, &ours);
		if (ksigaction(diag_guard_signal(i), &ours, NULL) < 0)
			return -errno;
	}
	return 0;
}

static void uninstall(struct env *e)
{
	for (size_t i = 0; i < DIAG_GUARD_NSIGS; i++)
		ksigaction(diag_guard_signal(i), &e->saved[i], NULL);
}

static void env_close(struct env *e)
{
	munmap(e->region, 3 * 4096);
}

static loadfn fn_at(const struct env *e, size_t off)
{
	return (loadfn)(uintptr_t)(e->slot + off);
}

/* ---- the template is what the .S assembles to ---- */

static void test_template_matches_source(void)
{
	const struct diag_guard_template *t = diag_guard_template();
	char nm[4096];

	inproc_check_template(t->source, t->bytes, t->len, 1, nm, sizeof(nm));
	CHECK_EQ_INT(inproc_nm_value(nm, "diag_guard_code_len"), t->len);
	CHECK_EQ_INT(inproc_nm_value(nm, "diag_guard_restorer"), t->restorer);
	CHECK_EQ_INT(inproc_nm_value(nm, "diag_guard_data"), t->data);
	CHECK_EQ_INT(inproc_nm_value(nm, "diag_guard_d_segv"), t->d_segv);
	CHECK_EQ_INT(inproc_nm_value(nm, "diag_guard_d_bus"), t->d_bus);
	CHECK_EQ_INT(inproc_nm_value(nm, "diag_guard_d_dfl"), t->d_dfl);
	CHECK_EQ_INT(inproc_nm_value(nm, "diag_guard_size"), t->size);
	CHECK_EQ_INT(diag_guard_size(), t->size);
	CHECK_EQ_INT(memcmp(t->bytes + t->restorer, "\xb8\x0f\x00\x00\x00\x0f\x05", 7), 0);
}

static void test_build_and_action(void)
{
	struct diag_error err = {0};
	uint8_t buf[1024];
	struct diag_guard_layout l;
	size_t len = 0;

	CHECK_EQ_INT(diag_guard_build(0x10004, buf, sizeof(buf), &len, &l, &err), -EINVAL);
	CHECK_EQ_INT(diag_guard_build(0x10000, buf, 100, &len, &l, &err), -ENOSPC);
	CHECK_EQ_INT(len, 0);
	CHECK_OK(diag_guard_build(0x10000, buf, sizeof(buf), &len, &l, &err), err);
	CHECK_EQ_INT(len, diag_guard_size());
	CHECK_EQ_INT(l.handler, 0x10000);
	CHECK_EQ_INT(l.restorer, 0x10000 + diag_guard_template()->restorer);
	CHECK_EQ_INT(l.old_action[0], 0x10000 + diag_guard_template()->d_segv);
	CHECK_EQ_INT(l.old_action[1], 0x10000 + diag_guard_template()->d_bus);
	CHECK_EQ_INT(diag_guard_signal(0), SIGSEGV);
	CHECK_EQ_INT(diag_guard_signal(1), SIGBUS);
	CHECK_EQ_INT(diag_guard_signal(2), 0);
	for (size_t i = diag_guard_template()->data; i < len; i++)
		CHECK_EQ_INT(buf[i], 0); /* previous actions SIG_DFL until the daemon writes them */

	/* SA_ONSTACK and SA_NODEFER kept, SA_RESETHAND never copied, the mask kept, the previous
	 * restorer reused for a previous handler */
	struct diag_ksigaction old = {.handler = 0x5000, .flags = SA_SIGINFO | SA_ONSTACK |
					  SA_RESETHAND | SA_NODEFER | 0x04000000,
				      .restorer = 0x6000, .mask = 0x1234}, ours;
	diag_guard_action(&l, &old, &ours);
	CHECK_EQ_INT(ours.handler, l.handler);
	CHECK_EQ_INT(ours.flags, SA_SIGINFO | 0x04000000 | SA_ONSTACK | SA_NODEFER);
	CHECK_EQ_INT(ours.restorer, 0x6000);
	CHECK_EQ_INT(ours.mask, 0x1234);
	old = (struct diag_ksigaction){0};
	diag_guard_action(&l, &old, &ours);
	CHECK_EQ_INT(ours.flags, SA_SIGINFO | 0x04000000);
	CHECK_EQ_INT(ours.restorer, l.restorer);
}

/* ---- the handler called directly, with forged siginfo and ucontext ---- */

static struct {
	int calls, sig, code;
	uint64_t pc;
} g_chained;

static void chained_handler(int sig, siginfo_t *info, void *ucv)
{
	ucontext_t *uc = ucv;

	g_chained.calls++;
	g_chained.sig = sig;
	g_chained.code = info->si_code;
	g_chained.pc = (uint64_t)uc->uc_mcontext.gregs[REG_RIP];
}

struct call {
	uint64_t rip, rax;
};

static struct call call_handler(const struct env *e, int sig, int code, uint64_t pc,
				uint64_t addr)
{
	siginfo_t si;
	ucontext_t uc;

	memset(&si, 0, sizeof(si));
	memset(&uc, 0, sizeof(uc));
	si.si_signo = sig;
	si.si_code = code;
	si.si_addr = at(addr);
	uc.uc_mcontext.gregs[REG_RIP] = (greg_t)pc;
	uc.uc_mcontext.gregs[REG_RAX] = 0x1111;
	uc.uc_mcontext.gregs[REG_RSI] = 0x2222;
	call_as_handler(e->l.handler, sig, &si, &uc);
	CHECK_EQ_INT(uc.uc_mcontext.gregs[REG_RSI], 0x2222); /* nothing else touched */
	return (struct call){(uint64_t)uc.uc_mcontext.gregs[REG_RIP],
			     (uint64_t)uc.uc_mcontext.gregs[REG_RAX]};
}

static void set_old(const struct env *e, size_t i, uint64_t handler, uint64_t flags)
{
	struct diag_ksigaction old = {.handler = handler, .flags = flags};

	memcpy(at(e->l.old_action[i]), &old, sizeof(old));
}

/* The guard's repair is the tracer's (diag_tramp_fault_repair, arch/trampoline.h). */
static void agrees_with_tracer(const struct env *e, uint64_t pc, uint64_t addr, struct call got,
			       bool repaired)
{
	diag_regs r;
	memset(&r, 0, sizeof(r));
	diag_regs_set_pc(&r, pc);
	r.rax = 0x1111;
	bool ok = diag_tramp_fault_repair(&r, (uint64_t)(uintptr_t)e->slot,
					  (const struct diag_tramp_slot_header *)e->slot, addr);
	CHECK_EQ_INT(ok, repaired);
	CHECK_EQ_INT(diag_regs_pc(&r), got.rip);
	CHECK_EQ_INT(r.rax, got.rax);
}

static void test_logic(void)
{
	struct diag_error err = {0};
	struct env e;
	uint64_t s, vlo, vhi, clo, chi;
	struct call c;

	CHECK_OK(env_open(&e, &err), err);
	s = (uint64_t)(uintptr_t)e.slot;
	vlo = s + V_OFF;
	vhi = vlo + (uint64_t)(g_value_end - g_value);
	clo = s + C_OFF;
	chi = clo + (uint64_t)(g_cond_end - g_cond) - 1;
	set_old(&e, 0, (uint64_t)(uintptr_t)chained_handler, SA_SIGINFO);
	set_old(&e, 1, (uint64_t)(uintptr_t)chained_handler, SA_SIGINFO);
	g_chained.calls = 0;

	/* the edges of each range: [lo, hi) */
	struct {
		uint64_t pc;
		int sig, code;
		uint64_t addr, rip; /* rip 0: chained */
	} cases[] = {
		{vlo, SIGSEGV, SEGV_MAPERR, 0x10, s + VL_OFF},
		{vhi - 1, SIGSEGV, SEGV_ACCERR, 0x7000, s + VL_OFF},
		{vhi, SIGSEGV, SEGV_MAPERR, 0x10, 0},
		{vlo - 1, SIGSEGV, SEGV_MAPERR, 0x10, 0},
		{clo, SIGSEGV, SEGV_MAPERR, 0, s + CL_OFF},
		{chi - 1, SIGBUS, BUS_ADRERR, 0x9000, s + CL_OFF},
		{chi, SIGSEGV, SEGV_MAPERR, 0, 0},
		{vlo, SIGSEGV, SI_KERNEL, 0, s + VL_OFF},     /* #GP: a non-canonical pointer */
		{vlo, SIGBUS, BUS_ADRERR, 0x20, s + VL_OFF},
		{vlo, SIGBUS, BUS_MCEERR_AO, 0x20, 0},        /* about another page, not this load */
		{vlo, SIGSEGV, SI_USER, 0x10, 0},             /* kill(): never a load's fault */
		{vlo, SIGSEGV, SI_TKILL, 0x10, 0},
		{vlo, SIGSEGV, SEGV_MAPERR, vlo, 0},          /* a fetch fault: pc's own page */
		{vlo, SIGSEGV, SEGV_MAPERR, s + 4095, 0},
		{s + OUT_OFF, SIGSEGV, SEGV_MAPERR, 0x10, 0}, /* in the slot, in no range */
	};
	int chained = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		c = call_handler(&e, cases[i].sig, cases[i].code, cases[i].pc, cases[i].addr);
		if (c.rip != (cases[i].rip ? cases[i].rip : cases[i].pc))
			fprintf(stderr, "case %zu\n", i);
		CHECK_EQ_INT(c.rax, 0x1111); /* only the pc changes */
		if (cases[i].rip) {
			CHECK_EQ_INT(c.rip, cases[i].rip);
		} else {
			chained++;
			CHECK_EQ_INT(c.rip, cases[i].pc);
			CHECK_EQ_INT(g_chained.pc, cases[i].pc);
			CHECK_EQ_INT(g_chained.sig, cases[i].sig);
			CHECK_EQ_INT(g_chained.code, cases[i].code);
		}
		if (cases[i].code > 0 && cases[i].code != BUS_MCEERR_AO &&
		    (cases[i].addr & ~4095ull) != s)
			agrees_with_tracer(&e, cases[i].pc, cases[i].addr, c, cases[i].rip != 0);
		CHECK_EQ_INT(g_chained.calls, chained);
	}
	/* the thread pointer's load (no TLS yet): resumes at tp_resume with r14 = 0 */
	struct diag_tramp_slot_header *hp = (struct diag_tramp_slot_header *)e.slot;
	hp->tp_load = OUT_OFF;
	hp->tp_resume = VL_OFF + 2;
	{
		siginfo_t si;
		ucontext_t uc;
		memset(&si, 0, sizeof(si));
		memset(&uc, 0, sizeof(uc));
		si.si_signo = SIGSEGV;
		si.si_code = SEGV_MAPERR;
		uc.uc_mcontext.gregs[REG_RIP] = (greg_t)(s + OUT_OFF);
		uc.uc_mcontext.gregs[REG_R14] = 0x7777;
		uc.uc_mcontext.gregs[REG_RAX] = 0x1111;
		call_as_handler(e.l.handler, SIGSEGV, &si, &uc);
		CHECK_EQ_INT(uc.uc_mcontext.gregs[REG_RIP], s + VL_OFF + 2);
		CHECK_EQ_INT(uc.uc_mcontext.gregs[REG_R14], 0);
		CHECK_EQ_INT(uc.uc_mcontext.gregs[REG_RAX], 0x1111);
		diag_regs r;
		memset(&r, 0, sizeof(r));
		r.rip = s + OUT_OFF;
		r.r14 = 0x7777;
		CHECK(diag_tramp_fault_repair(&r, s, hp, 0));
		CHECK_EQ_INT(r.rip, s + VL_OFF + 2);
		CHECK_EQ_INT(r.r14, 0);
		/* one byte further is not the load; r14 untouched when chained */
		uc.uc_mcontext.gregs[REG_RIP] = (greg_t)(s + OUT_OFF + 1);
		uc.uc_mcontext.gregs[REG_R14] = 0x7777;
		int saved = g_chained.calls;
		g_chained.calls = 0;
		call_as_handler(e.l.handler, SIGSEGV, &si, &uc);
		CHECK_EQ_INT(uc.uc_mcontext.gregs[REG_RIP], s + OUT_OFF + 1);
		CHECK_EQ_INT(uc.uc_mcontext.gregs[REG_R14], 0x7777);
		CHECK_EQ_INT(g_chained.calls, 1);
		/* a resume inside the header is refused, r14 kept */
		hp->tp_resume = 8;
		uc.uc_mcontext.gregs[REG_RIP] = (greg_t)(s + OUT_OFF);
		call_as_handler(e.l.handler, SIGSEGV, &si, &uc);
		CHECK_EQ_INT(uc.uc_mcontext.gregs[REG_RIP], s + OUT_OFF);
		CHECK_EQ_INT(uc.uc_mcontext.gregs[REG_R14], 0x7777);
		r.rip = s + OUT_OFF;
		r.r14 = 0x7777;
		CHECK(!diag_tramp_fault_repair(&r, s, hp, 0));
		CHECK_EQ_INT(r.r14, 0x7777);
		CHECK_EQ_INT(g_chained.calls, 2);
		g_chained.calls = saved;
		hp->tp_load = hp->tp_resume = 0;
	}
	/* a retired slot (magic 0), a wrong magic, a landing inside the header or past the slot:
	 * not ours */
	slot_header(&e, 0);
	c = call_handler(&e, SIGSEGV, SEGV_MAPERR, vlo, 0x10);
	CHECK_EQ_INT(c.rip, vlo);
	slot_header(&e, slot_magic(&e) ^ 1);
	c = call_handler(&e, SIGSEGV, SEGV_MAPERR, vlo, 0x10);
	CHECK_EQ_INT(c.rip, vlo);
	slot_header(&e, slot_magic(&e));
	((struct diag_tramp_slot_header *)e.slot)->value_landing = 63;
	c = call_handler(&e, SIGSEGV, SEGV_MAPERR, vlo, 0x10);
	CHECK_EQ_INT(c.rip, vlo);
	agrees_with_tracer(&e, vlo, 0x10, c, false);
	((struct diag_tramp_slot_header *)e.slot)->value_landing = 4096;
	c = call_handler(&e, SIGSEGV, SEGV_MAPERR, vlo, 0x10);
	CHECK_EQ_INT(c.rip, vlo);
	agrees_with_tracer(&e, vlo, 0x10, c, false);
	((struct diag_tramp_slot_header *)e.slot)->value_landing = 4095;
	c = call_handler(&e, SIGSEGV, SEGV_MAPERR, vlo, 0x10);
	CHECK_EQ_INT(c.rip, s + 4095);
	agrees_with_tracer(&e, vlo, 0x10, c, true);
	CHECK_EQ_INT(g_chained.calls, chained + 4);
	slot_header(&e, slot_magic(&e));
	/* SIG_IGN before: a sent signal stays ignored, nothing else happens */
	set_old(&e, 0, 1, 0);
	g_chained.calls = 0;
	c = call_handler(&e, SIGSEGV, SI_TKILL, vlo, 0);
	CHECK_EQ_INT(c.rip, vlo);
	CHECK_EQ_INT(g_chained.calls, 0);
	env_close(&e);
}

/* ---- real faults, 4 threads ---- */

#define NTHREADS 4
#define NCALLS 2000

struct worker {
	struct env *e;
	const void *bad[5];
	uint64_t wrong;
};

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	loadfn value = fn_at(w->e, V_OFF), cond = fn_at(w->e, C_OFF);
	uint64_t good = 0x600dull, out;

	for (uint64_t i = 0; i < NCALLS; i++) {
		const void *p = w->bad[i % 5];
		out = 0xffff;
		/* a good pointer reads through; a bad one lands with its fault address */
		if (value(&good, &out) != good || out != 0xffff)
			w->wrong++;
		if (value(p, &out) != VLAND_MARK || out != (uint64_t)(uintptr_t)p)
			w->wrong++;
		out = 0xffff;
		if (cond(p, &out) != CLAND_MARK || out != (uint64_t)(uintptr_t)p)
			w->wrong++;
		if (cond("x", &out) != 'x')
			w->wrong++;
	}
	return NULL;
}

static void test_real_faults(void)
{
	struct diag_error err = {0};
	struct sigaction sa;
	struct env e;

	CHECK_OK(env_open(&e, &err), err);
	/* the target's own SIGSEGV handler, set up the usual way: it must never run here */
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = chained_handler;
	sa.sa_flags = SA_SIGINFO;
	struct sigaction before;
	CHECK_EQ_INT(sigaction(SIGSEGV, &sa, &before), 0);
	g_chained.calls = 0;
	CHECK_EQ_INT(install(&e), 0);
	pthread_t th[NTHREADS];
	struct worker w[NTHREADS];
	for (size_t i = 0; i < NTHREADS; i++) {
		w[i] = (struct worker){.e = &e,
				       .bad = {NULL, at(0x10), e.hole + 8 * i,
					       at(0x8000000000000000ull), at(0xffff800000001000ull)}};
		/* 0xffff8...: kernel space, a page fault with the address (SEGV_MAPERR) */
		CHECK_EQ_INT(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
	}
	for (size_t i = 0; i < NTHREADS; i++) {
		pthread_join(th[i], NULL);
		CHECK_EQ_INT(w[i].wrong, 0);
	}
	CHECK_EQ_INT(g_chained.calls, 0);
	uninstall(&e);
	sigaction(SIGSEGV, &before, NULL);
	env_close(&e);
}

/* What a repaired fault costs (printed for docs/reliability.md; not a pass/fail figure). */
static void measure(void)
{
	struct diag_error err = {0};
	struct env e;
	struct timespec t0, t1;
	uint64_t out, n = 200000;

	CHECK_OK(env_open(&e, &err), err);
	CHECK_EQ_INT(install(&e), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (uint64_t i = 0; i < n; i++)
		fn_at(&e, V_OFF)(NULL, &out);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) /
		    (double)n;
	printf("a NULL load repaired by the guard: %.0f ns (%llu faults, one thread)\n", ns,
	       (unsigned long long)n);
	uninstall(&e);
	env_close(&e);
}

/* SIGBUS: a load past the end of a file mapping, inside the slot's value program */
static void test_sigbus(void)
{
	struct diag_error err = {0};
	struct env e;
	uint64_t out = 0;

	CHECK_OK(env_open(&e, &err), err);
	int fd = memfd_create("guard", MFD_CLOEXEC);
	CHECK(fd >= 0);
	uint8_t *m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0); /* size 0: SIGBUS */
	CHECK(m != MAP_FAILED);
	CHECK_EQ_INT(install(&e), 0);
	CHECK_EQ_INT(fn_at(&e, V_OFF)(m + 24, &out), VLAND_MARK);
	CHECK_EQ_INT(out, (uint64_t)(uintptr_t)(m + 24));
	uninstall(&e);
	munmap(m, 4096);
	close(fd);
	env_close(&e);
}

/* ---- chaining, real faults outside any slot ---- */

static sigjmp_buf g_jmp;
static struct {
	int calls, sig;
	uint64_t addr;
} g_prev;

static void prev_siginfo(int sig, siginfo_t *info, void *uc)
{
	(void)uc;
	g_prev.calls++;
	g_prev.sig = sig;
	g_prev.addr = (uint64_t)(uintptr_t)info->si_addr;
	siglongjmp(g_jmp, 1);
}

static void prev_plain(int sig)
{
	g_prev.calls++;
	g_prev.sig = sig;
	siglongjmp(g_jmp, 1);
}

/* One fault outside the slot (or in it, outside its ranges) under a previous handler. */
static int fault_chained(struct env *e, const void *p, bool in_slot)
{
	loadfn volatile f = in_slot ? fn_at(e, OUT_OFF) : (loadfn)(uintptr_t)g_plain;
	uint64_t out = 0;

	if (sigsetjmp(g_jmp, 1) == 0) {
		f(p, &out);
		return 0; /* did not fault: wrong */
	}
	return 1;
}

static void test_chain(void)
{
	struct diag_error err = {0};
	struct sigaction sa, before;
	struct diag_ksigaction now;
	struct env e;

	CHECK_OK(env_open(&e, &err), err);
	sigaction(SIGSEGV, NULL, &before);
	/* an SA_SIGINFO handler: sees its signal and the fault address */
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = prev_siginfo;
	sa.sa_flags = SA_SIGINFO;
	CHECK_EQ_INT(sigaction(SIGSEGV, &sa, NULL), 0);
	CHECK_EQ_INT(install(&e), 0);
	memset(&g_prev, 0, sizeof(g_prev));
	CHECK_EQ_INT(fault_chained(&e, at(0x18), false), 1);
	CHECK_EQ_INT(fault_chained(&e, at(0x28), true), 1);
	CHECK_EQ_INT(g_prev.calls, 2);
	CHECK_EQ_INT(g_prev.sig, SIGSEGV);
	CHECK_EQ_INT(g_prev.addr, 0x28);
	/* a retired slot chains too */
	slot_header(&e, 0);
	uint64_t out = 0;
	if (sigsetjmp(g_jmp, 1) == 0)
		fn_at(&e, V_OFF)(at(0x38), &out);
	CHECK_EQ_INT(g_prev.calls, 3);
	CHECK_EQ_INT(g_prev.addr, 0x38);
	slot_header(&e, slot_magic(&e));
	uninstall(&e);

	/* a plain handler */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = prev_plain;
	CHECK_EQ_INT(sigaction(SIGSEGV, &sa, NULL), 0);
	CHECK_EQ_INT(install(&e), 0);
	memset(&g_prev, 0, sizeof(g_prev));
	CHECK_EQ_INT(fault_chained(&e, NULL, false), 1);
	CHECK_EQ_INT(g_prev.calls, 1);
	CHECK_EQ_INT(g_prev.sig, SIGSEGV);
	/* ... still repairs in the slot, without calling it */
	CHECK_EQ_INT(fn_at(&e, V_OFF)(NULL, &out), VLAND_MARK);
	CHECK_EQ_INT(g_prev.calls, 1);
	uninstall(&e);

	/* SA_RESETHAND: the one-shot handler runs once and SIGSEGV is SIG_DFL afterwards, as
	 * without the guard */
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = prev_siginfo;
	sa.sa_flags = SA_SIGINFO | SA_RESETHAND;
	CHECK_EQ_INT(sigaction(SIGSEGV, &sa, NULL), 0);
	CHECK_EQ_INT(install(&e), 0);
	memset(&g_prev, 0, sizeof(g_prev));
	CHECK_EQ_INT(fault_chained(&e, at(0x48), false), 1);
	CHECK_EQ_INT(g_prev.calls, 1);
	CHECK_EQ_INT(ksigaction(SIGSEGV, NULL, &now), 0);
	CHECK_EQ_INT(now.handler, 0);
	uninstall(&e);
	sigaction(SIGSEGV, &before, NULL);
	env_close(&e);
}

/* SA_ONSTACK kept from the target's action (a target that relies on an alternate stack, for
 * its stack overflows, keeps it), and a repair made on the alternate stack resumes right */
static void *onstack_run(void *arg)
{
	struct env *e = arg;
	static uint8_t alt[64 * 1024];
	stack_t ss = {.ss_sp = alt, .ss_size = sizeof(alt)};
	uint64_t out = 0;

	if (sigaltstack(&ss, NULL) < 0)
		return (void *)1;
	uint64_t r = fn_at(e, V_OFF)(at(0x58), &out);
	stack_t cur;
	sigaltstack(NULL, &cur);
	ss.ss_flags = SS_DISABLE;
	sigaltstack(&ss, NULL);
	return (void *)(uintptr_t)(r == VLAND_MARK && out == 0x58 ? 0 : 2);
}

static void test_onstack(void)
{
	struct diag_error err = {0};
	struct sigaction sa, before;
	struct diag_ksigaction now;
	struct env e;
	void *rv = (void *)9;
	pthread_t th;

	CHECK_OK(env_open(&e, &err), err);
	sigaction(SIGSEGV, NULL, &before);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = prev_siginfo;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	CHECK_EQ_INT(sigaction(SIGSEGV, &sa, NULL), 0);
	CHECK_EQ_INT(install(&e), 0);
	CHECK_EQ_INT(ksigaction(SIGSEGV, NULL, &now), 0);
	CHECK(now.flags & SA_ONSTACK);
	CHECK_EQ_INT(pthread_create(&th, NULL, onstack_run, &e), 0);
	pthread_join(th, &rv);
	CHECK_EQ_INT((uintptr_t)rv, 0);
	uninstall(&e);
	sigaction(SIGSEGV, &before, NULL);
	env_close(&e);
}

/* ---- the default action, in forked children ---- */

enum child_case {
	CHILD_DFL_SEGV,   /* SIG_DFL before: repairs, then a fault outside dies of SIGSEGV */
	CHILD_DFL_BUS,    /* ... SIGBUS outside a slot dies of SIGBUS */
	CHILD_IGN_SEGV,   /* SIG_IGN before: a sent SIGSEGV is ignored, a fault kills */
	CHILD_DFL_SENT,   /* SIG_DFL before: a SIGSEGV sent by tgkill kills */
};

static int child_run(enum child_case c)
{
	struct diag_error err = {0};
	struct diag_ksigaction before = {.handler = c == CHILD_IGN_SEGV ? 1 : 0};
	struct rlimit no_core = {0, 0};
	struct env e;
	uint64_t out = 0;

	setrlimit(RLIMIT_CORE, &no_core);
	if (env_open(&e, &err) < 0 || ksigaction(SIGSEGV, &before, NULL) < 0 ||
	    ksigaction(SIGBUS, &before, NULL) < 0 || install(&e) < 0)
		return 10;
	for (int i = 0; i < 100; i++)
		if (fn_at(&e, V_OFF)(at(0x10 + (uint64_t)i), &out) != VLAND_MARK || out != 0x10u + i)
			return 11;
	if (c == CHILD_IGN_SEGV &&
	    syscall(SYS_tgkill, getpid(), (pid_t)syscall(SYS_gettid), SIGSEGV) < 0)
		return 12;
	if (c == CHILD_DFL_SENT) {
		syscall(SYS_tgkill, getpid(), (pid_t)syscall(SYS_gettid), SIGSEGV);
		return 13; /* must not get here */
	}
	if (c == CHILD_DFL_BUS) {
		int fd = memfd_create("guard", 0);
		volatile uint8_t *m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
		if (m == MAP_FAILED)
			return 14;
		return m[8] ? 15 : 16; /* dies before */
	}
	((loadfn)(uintptr_t)g_plain)(at(0x40), &out);
	return 0; /* the fault must not let us get here */
}

static void expect_child_killed(enum child_case c, int sig)
{
	int status = 0;
	pid_t pid = fork();

	if (pid == 0)
		_exit(child_run(c));
	CHECK(pid > 0);
	CHECK_EQ_INT(waitpid(pid, &status, 0), pid);
	if (!WIFSIGNALED(status))
		fprintf(stderr, "child case %d: exited with %d, expected death by signal %d\n",
			(int)c, WIFEXITED(status) ? WEXITSTATUS(status) : -1, sig);
	CHECK_EQ_INT(WIFSIGNALED(status) ? WTERMSIG(status) : 0, sig);
}

int main(void)
{
	test_template_matches_source();
	test_build_and_action();
	test_logic();
	test_real_faults();
	measure();
	test_sigbus();
	test_chain();
	test_onstack();
	expect_child_killed(CHILD_DFL_SEGV, SIGSEGV);
	expect_child_killed(CHILD_DFL_BUS, SIGBUS);
	expect_child_killed(CHILD_IGN_SEGV, SIGSEGV);
	expect_child_killed(CHILD_DFL_SENT, SIGSEGV);
	return CHECK_DONE();
}
