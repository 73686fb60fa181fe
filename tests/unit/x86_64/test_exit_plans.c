/* test_exit_plans: diag_exit_plans (arch/branch.h) on hand-assembled functions whose answer is
 * known by construction (an epilogue branched into, a function too short for the jump, tail
 * calls, an unrelocatable instruction before the ret, an indirect jmp, bytes that do not
 * decode), and on the real functions of tests/fixtures/ret.c built -O0 and -O2, PIE and not,
 * held to objdump's disassembly as an independent oracle: the exits are exactly the rets and
 * the jumps leaving the function, and a plan's start is an instruction boundary, the latest
 * one giving the jump's 5 bytes, with no branch objdump shows landing inside the patch. */
#include <fcntl.h>
#include <gelf.h>
#include <inttypes.h>
#include <libelf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "elf_sym.h"
#include "inproc_code.h"

#include "arch/branch.h"
#include "arch/trampoline.h"
#include "util/error.h"

__asm__(".intel_syntax noprefix\n.text\n"
	FN(x_other) "ret\n" END(x_other)
	/* one ret; the latest start is the mov rbp, rsp (2 + 1 + 1 bytes are too few) */
	FN(x_simple) "push rbp\n mov rbp, rsp\n mov eax, edi\n pop rbp\n ret\n" END(x_simple)
	/* the pop is a branch target inside the window that starts at the mov */
	FN(x_branched) "push rbx\n test edi, edi\n jz 1f\n mov eax, 5\n1: pop rbx\n ret\n"
	END(x_branched)
	/* a branch to the window's start itself is fine */
	FN(x_to_start) "test edi, edi\n jz 1f\n nop\n1: mov eax, 5\n ret\n" END(x_to_start)
	/* three bytes in all */
	FN(x_short) "xor eax, eax\n ret\n" END(x_short)
	/* a tail call: jmp rel32 is itself the 5 bytes */
	FN(x_tail) "mov eax, edi\n add eax, 1\n {disp32} jmp x_other\n" END(x_tail)
	/* a short tail jmp (2 bytes) needs the instructions before it */
	FN(x_tail8) "mov eax, edi\n add eax, 1\n .byte 0xeb, 0xe0\n" END(x_tail8)
	/* two exits, each planned on its own */
	FN(x_two) "test edi, edi\n jz 1f\n mov eax, 1\n add eax, esi\n ret\n"
	"1: mov eax, 2\n sub eax, esi\n ret\n" END(x_two)
	/* the syscall before the ret cannot be relocated */
	FN(x_syscall) "mov eax, 39\n syscall\n ret\n" END(x_syscall)
	/* a rip-relative load before the ret can (the trampoline re-aims it) */
	FN(x_riprel) "mov rax, [rip + x_other]\n ret\n" END(x_riprel)
	/* an indirect jmp: a jump table or a tail call, the bytes do not say */
	FN(x_indirect) "cmp edi, 3\n ja 1f\n jmp rax\n1: mov eax, 7\n nop\n ret\n" END(x_indirect)
	/* a conditional tail call */
	FN(x_condtail) "test edi, edi\n {disp32} jz x_other\n mov eax, 1\n add eax, esi\n ret\n"
	END(x_condtail)
	/* a call just before the ret: not straight-line code */
	FN(x_call) "call x_other\n ret\n" END(x_call)
	/* a loop back to the entry: the entry is the start, so allowed */
	FN(x_loop) "mov eax, 5\n ret\n jmp x_loop\n" END(x_loop)
	".att_syntax prefix\n");

DECL(x_other); DECL(x_simple); DECL(x_branched); DECL(x_to_start); DECL(x_short); DECL(x_tail);
DECL(x_tail8); DECL(x_two); DECL(x_syscall); DECL(x_riprel); DECL(x_indirect); DECL(x_condtail);
DECL(x_call); DECL(x_loop);

#define MAXP 16

static int plan(const uint8_t *b, const uint8_t *e, struct diag_exit_plan *p)
{
	memset(p, 0x5a, sizeof(*p) * MAXP);
	return diag_exit_plans(b, (size_t)(e - b), (uint64_t)(uintptr_t)b, p, MAXP);
}

#define AT(fn, off) ((uint64_t)(uintptr_t)(fn) + (off))

static void check_planned(const struct diag_exit_plan *p, uint64_t term, uint32_t term_len,
			  uint64_t start)
{
	CHECK_EQ_STR(p->why, "");
	CHECK_EQ_INT(p->term, term);
	CHECK_EQ_INT(p->term_len, term_len);
	CHECK_EQ_INT(p->start, start);
}

static void check_refused(const struct diag_exit_plan *p, uint64_t term, const char *why)
{
	CHECK_EQ_INT(p->term, term);
	CHECK(p->why[0] != '\0');
	CHECK_CONTAINS(p->why, why);
}

static void test_handmade(void)
{
	struct diag_exit_plan p[MAXP];

	CHECK_EQ_INT(plan(x_simple, x_simple_end, p), 1);
	check_planned(&p[0], AT(x_simple, 7), 1, AT(x_simple, 1));

	CHECK_EQ_INT(plan(x_branched, x_branched_end, p), 1);
	check_refused(&p[0], AT(x_branched, 11), "a branch lands inside");

	CHECK_EQ_INT(plan(x_to_start, x_to_start_end, p), 1);
	check_planned(&p[0], AT(x_to_start, 10), 1, AT(x_to_start, 5));

	CHECK_EQ_INT(plan(x_short, x_short_end, p), 1);
	check_refused(&p[0], AT(x_short, 2), "only 3 bytes");

	CHECK_EQ_INT(plan(x_tail, x_tail_end, p), 1);
	check_planned(&p[0], AT(x_tail, 5), 5, AT(x_tail, 5));

	CHECK_EQ_INT(plan(x_tail8, x_tail8_end, p), 1);
	check_planned(&p[0], AT(x_tail8, 5), 2, AT(x_tail8, 2));

	CHECK_EQ_INT(plan(x_two, x_two_end, p), 2);
	check_planned(&p[0], AT(x_two, 11), 1, AT(x_two, 4));
	check_planned(&p[1], AT(x_two, 19), 1, AT(x_two, 12));

	CHECK_EQ_INT(plan(x_syscall, x_syscall_end, p), 1);
	check_refused(&p[0], AT(x_syscall, 7), "cannot be relocated");

	CHECK_EQ_INT(plan(x_riprel, x_riprel_end, p), 1);
	check_planned(&p[0], AT(x_riprel, 7), 1, AT(x_riprel, 0));

	/* the indirect jmp is an exit of its own, and the ret is refused because of it */
	CHECK_EQ_INT(plan(x_indirect, x_indirect_end, p), 2);
	check_refused(&p[0], AT(x_indirect, 5), "indirect jmp");
	check_refused(&p[1], AT(x_indirect, 13), "indirect jmp at 0x");

	CHECK_EQ_INT(plan(x_condtail, x_condtail_end, p), 2);
	check_refused(&p[0], AT(x_condtail, 2), "conditional tail call");
	check_planned(&p[1], AT(x_condtail, 15), 1, AT(x_condtail, 8));

	CHECK_EQ_INT(plan(x_call, x_call_end, p), 1);
	check_refused(&p[0], AT(x_call, 5), "cannot be relocated");

	CHECK_EQ_INT(plan(x_loop, x_loop_end, p), 1);
	check_planned(&p[0], AT(x_loop, 5), 1, AT(x_loop, 0));

	/* more exits than room: the count, and only cap plans written */
	struct diag_exit_plan one[2];
	memset(one, 0x5a, sizeof(one));
	CHECK_EQ_INT(diag_exit_plans(x_two, (size_t)(x_two_end - x_two), AT(x_two, 0), one, 1), 2);
	CHECK_EQ_INT(one[0].term, AT(x_two, 11));
	CHECK_EQ_INT(one[1].term, 0x5a5a5a5a5a5a5a5aULL);

	/* no exit at all */
	static const uint8_t spin[] = {0xeb, 0xfe}; /* jmp . */
	CHECK_EQ_INT(diag_exit_plans(spin, sizeof(spin), 0x1000, p, MAXP), 0);

	/* bytes ending inside an instruction (mov rax, imm64 cut short) */
	static const uint8_t cut[] = {0x31, 0xc0, 0x48, 0xb8, 1, 2, 3};
	CHECK_EQ_INT(diag_exit_plans(cut, sizeof(cut), 0x1000, p, MAXP), -DIAG_E_PARSE);
}

/* ---- the fixtures, against objdump ---- */

struct oracle {
	uint64_t insn[512];      /* instruction addresses */
	size_t n;
	uint64_t exits[32];
	size_t nexits;
	uint64_t targets[256];   /* direct branch and call targets inside the function */
	size_t ntargets;
	uint64_t end;            /* the function's end */
};

/* objdump's disassembly of [lo, hi): boundaries, exits (ret, jmp out of the function, jcc out
 * of it, indirect jmp), branch targets inside. */
static void objdump_oracle(const char *path, uint64_t lo, uint64_t hi, struct oracle *o)
{
	char cmd[4400], line[512];
	memset(o, 0, sizeof(*o));
	o->end = hi;
	snprintf(cmd, sizeof(cmd),
		 "objdump -d --no-show-raw-insn --start-address=0x%" PRIx64
		 " --stop-address=0x%" PRIx64 " '%s'", lo, hi, path);
	FILE *f = popen(cmd, "r");
	while (f && fgets(line, sizeof(line), f)) {
		uint64_t a;
		char mn[64] = "", arg[256] = "";
		if (sscanf(line, " %" SCNx64 ":\t%63s %255[^\n]", &a, mn, arg) < 2 || a < lo ||
		    a >= hi)
			continue;
		if (o->n < 512)
			o->insn[o->n++] = a;
		uint64_t t = 0;
		bool direct = sscanf(arg, "%" SCNx64 " <", &t) == 1 && strchr(arg, '<');
		bool jmp = !strncmp(mn, "jmp", 3), jcc = mn[0] == 'j' && !jmp, call = !strncmp(mn, "call", 4);
		bool ret = !strncmp(mn, "ret", 3) || (!strcmp(mn, "bnd") && !strncmp(arg, "ret", 3)) ||
			   (!strcmp(mn, "repz") && !strncmp(arg, "ret", 3));
		if (ret || ((jmp || jcc) && (!direct || t < lo || t >= hi)))
			if (o->nexits < 32)
				o->exits[o->nexits++] = a;
		if ((jmp || jcc || call) && direct && t >= lo && t < hi && o->ntargets < 256)
			o->targets[o->ntargets++] = t;
	}
	if (f)
		pclose(f);
}

/* The bytes of a function from its ELF file (the section holding it). */
static uint8_t *elf_bytes(const char *path, uint64_t addr, uint64_t size)
{
	uint8_t *out = NULL;
	int fd = open(path, O_RDONLY);
	Elf *e = fd >= 0 ? elf_begin(fd, ELF_C_READ, NULL) : NULL;
	Elf_Scn *scn = NULL;
	while (e && !out && (scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;
		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_PROGBITS || addr < sh.sh_addr ||
		    addr + size > sh.sh_addr + sh.sh_size)
			continue;
		Elf_Data *d = elf_getdata(scn, NULL);
		if (d && d->d_size == sh.sh_size && (out = malloc(size)))
			memcpy(out, (const uint8_t *)d->d_buf + (addr - sh.sh_addr), size);
	}
	if (e)
		elf_end(e);
	if (fd >= 0)
		close(fd);
	return out;
}

static bool in(const uint64_t *v, size_t n, uint64_t x)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == x)
			return true;
	return false;
}

/* The plan p of an exit held to the oracle; returns whether it is planned. */
static bool check_against(const struct oracle *o, const struct diag_exit_plan *p)
{
	CHECK(in(o->exits, o->nexits, p->term));
	size_t k = 0;
	while (k < o->n && o->insn[k] != p->term)
		k++;
	uint64_t end = k + 1 < o->n ? o->insn[k + 1] : o->end;
	CHECK_EQ_INT(p->term + p->term_len, end);
	if (p->why[0])
		return false;
	CHECK(in(o->insn, o->n, p->start));
	CHECK(end - p->start >= DIAG_TRAMP_PATCH_LEN);
	/* the latest: the next boundary after start leaves fewer than 5 bytes */
	size_t j = 0;
	while (j < o->n && o->insn[j] != p->start)
		j++;
	if (j < k)
		CHECK(end - o->insn[j + 1] < DIAG_TRAMP_PATCH_LEN);
	for (size_t i = 0; i < o->ntargets; i++)
		CHECK(!(o->targets[i] > p->start && o->targets[i] < end));
	return true;
}

struct expect {
	const char *fn;
	int planned_O0, planned_O2; /* exits with a plan, -1: not checked */
	int exits_O0, exits_O2;
};

static void test_fixture(const char *opt, const char *pie)
{
	static const struct expect ex[] = {
		/* -O0: the ternary's join is the window's start, fine */
		{"fib", 1, 1, 1, 2},
		{"jumper", 1, -1, 1, -1},
		{"nap", 1, -1, 1, -1},
		{"half", 1, 1, 1, 1},
		/* -O0: `jmp` to the pop rbp of the shared epilogue, inside the window */
		{"classify", 0, 1, 1, 1},
		{"make_pair", 1, -1, 1, -1},
		{"make_vec", 1, -1, 1, -1},
		{"main", -1, -1, -1, -1},
	};
	char path[4200];
	bool O0 = !strcmp(opt, "O0");
	snprintf(path, sizeof(path), "%s/ret-%s-%s", getenv("DIAG_FIXTURE_DIR"), opt, pie);
	for (size_t i = 0; i < sizeof(ex) / sizeof(ex[0]); i++) {
		uint64_t size = 0, addr = elf_sym_addr_size(path, ex[i].fn, &size);
		CHECK(addr != 0 && size != 0);
		uint8_t *code = addr && size ? elf_bytes(path, addr, size) : NULL;
		CHECK(code != NULL);
		if (!code)
			continue;
		struct oracle o;
		objdump_oracle(path, addr, addr + size, &o);
		struct diag_exit_plan p[32];
		int n = diag_exit_plans(code, size, addr, p, 32);
		CHECK_EQ_INT(n, o.nexits);
		int planned = 0;
		for (int k = 0; k < n && k < 32; k++) {
			planned += check_against(&o, &p[k]);
			if (p[k].why[0])
				fprintf(stderr, "  %s-%s %s: exit at 0x%" PRIx64 ": %s\n", opt, pie,
					ex[i].fn, p[k].term, p[k].why);
		}
		int want = O0 ? ex[i].planned_O0 : ex[i].planned_O2;
		int want_exits = O0 ? ex[i].exits_O0 : ex[i].exits_O2;
		if (want >= 0)
			CHECK_EQ_INT(planned, want);
		if (want_exits >= 0)
			CHECK_EQ_INT(n, want_exits);
		free(code);
	}
}

int main(void)
{
	elf_version(EV_CURRENT);
	test_handmade();
	static const char *opts[] = {"O0", "O2"}, *pies[] = {"pie", "nopie"};
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2; j++)
			test_fixture(opts[i], pies[j]);
	return CHECK_DONE();
}
