/* capture/check: the checker every capture program passes before an architecture compiles it
 * or the interpreter runs it (capture.h, diag_cap_check). It proves what the compiled code
 * relies on without testing at run time: known ops and operands, forward jumps that land
 * inside the program, one stack depth per op within DIAG_CAP_MAX_STACK, and a payload bound.
 * Reads only the program; never runs it. */
#include "capture/capture.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "arch/record.h"
#include "capture/internal.h"

static const struct cap_op_info infos[DIAG_CAP_NOPS] = {
	[DIAG_CAP_END] = { "END", 0, 0 }, /* its pop is checked apart: 1 (condition) or 0 */
	[DIAG_CAP_REG] = { "REG", 0, 1 },
	[DIAG_CAP_FPREG] = { "FPREG", 0, 1 },
	[DIAG_CAP_CONST] = { "CONST", 0, 1 },
	[DIAG_CAP_LOAD] = { "LOAD", 1, 1 },
	[DIAG_CAP_SEXT] = { "SEXT", 1, 1 },
	[DIAG_CAP_ZEXT] = { "ZEXT", 1, 1 },
	[DIAG_CAP_ADD] = { "ADD", 2, 1 },
	[DIAG_CAP_SUB] = { "SUB", 2, 1 },
	[DIAG_CAP_MUL] = { "MUL", 2, 1 },
	[DIAG_CAP_AND] = { "AND", 2, 1 },
	[DIAG_CAP_OR] = { "OR", 2, 1 },
	[DIAG_CAP_XOR] = { "XOR", 2, 1 },
	[DIAG_CAP_SHL] = { "SHL", 2, 1 },
	[DIAG_CAP_SHR] = { "SHR", 2, 1 },
	[DIAG_CAP_SAR] = { "SAR", 2, 1 },
	[DIAG_CAP_DIVS] = { "DIVS", 2, 1 },
	[DIAG_CAP_DIVU] = { "DIVU", 2, 1 },
	[DIAG_CAP_REMS] = { "REMS", 2, 1 },
	[DIAG_CAP_REMU] = { "REMU", 2, 1 },
	[DIAG_CAP_EQ] = { "EQ", 2, 1 },
	[DIAG_CAP_NE] = { "NE", 2, 1 },
	[DIAG_CAP_LTS] = { "LTS", 2, 1 },
	[DIAG_CAP_LES] = { "LES", 2, 1 },
	[DIAG_CAP_GTS] = { "GTS", 2, 1 },
	[DIAG_CAP_GES] = { "GES", 2, 1 },
	[DIAG_CAP_LTU] = { "LTU", 2, 1 },
	[DIAG_CAP_LEU] = { "LEU", 2, 1 },
	[DIAG_CAP_GTU] = { "GTU", 2, 1 },
	[DIAG_CAP_GEU] = { "GEU", 2, 1 },
	[DIAG_CAP_NEG] = { "NEG", 1, 1 },
	[DIAG_CAP_NOT] = { "NOT", 1, 1 },
	[DIAG_CAP_LNOT] = { "LNOT", 1, 1 },
	[DIAG_CAP_JMP] = { "JMP", 0, 0 },
	[DIAG_CAP_JZ] = { "JZ", 1, 0 },
	[DIAG_CAP_JNZ] = { "JNZ", 1, 0 },
	[DIAG_CAP_DROP] = { "DROP", 1, 0 },
	[DIAG_CAP_DUP] = { "DUP", 1, 2 },
	[DIAG_CAP_STREQ] = { "STREQ", 1, 1 },
	[DIAG_CAP_SAVE_MEM] = { "SAVE_MEM", 1, 0 },
	[DIAG_CAP_SAVE_MEM_N] = { "SAVE_MEM_N", 2, 0 },
	[DIAG_CAP_SAVE_STR] = { "SAVE_STR", 1, 0 },
	[DIAG_CAP_SAVE_FPREG] = { "SAVE_FPREG", 0, 0 },
};

const struct cap_op_info *cap_op_info(unsigned op)
{
	return op < DIAG_CAP_NOPS ? &infos[op] : NULL;
}

bool diag_cap_reg_saved(uint32_t off)
{
	if (off % 8 || off + 8 > sizeof(diag_regs))
		return false;
	struct diag_ring_record rec;
	memset(&rec, 0, sizeof(rec));
	for (int i = 0; i < DIAG_RING_NREGS; i++)
		rec.regs[i] = 0x5afe0000u + (unsigned)i;
	diag_regs r;
	diag_record_regs(&rec, &r);
	uint64_t v = diag_reg_get(&r, (int)off, 8);
	return v >= 0x5afe0000u && v < 0x5afe0000u + DIAG_RING_NREGS;
}

static bool is_save(unsigned op)
{
	return op == DIAG_CAP_SAVE_MEM || op == DIAG_CAP_SAVE_MEM_N || op == DIAG_CAP_SAVE_STR ||
	       op == DIAG_CAP_SAVE_FPREG;
}

static bool is_jump(unsigned op)
{
	return op == DIAG_CAP_JMP || op == DIAG_CAP_JZ || op == DIAG_CAP_JNZ;
}

static int bad(struct diag_error *err, size_t i, const struct diag_cap_op *o, const char *why, ...)
	__attribute__((format(printf, 4, 5)));
static int bad(struct diag_error *err, size_t i, const struct diag_cap_op *o, const char *why, ...)
{
	const struct cap_op_info *in = cap_op_info(o->op);
	char what[160];
	va_list ap;
	va_start(ap, why);
	vsnprintf(what, sizeof(what), why, ap);
	va_end(ap);
	return diag_error_set(err, -DIAG_E_INVALID, "capture program: op %zu (%s): %s", i,
			      in ? in->name : "?", what);
}

/* The operand of one op, and what it may write into the payload (*bytes). */
static int check_operand(const struct diag_cap_prog *p, enum diag_cap_kind kind, size_t i,
			 uint64_t *bytes, struct diag_error *err)
{
	const struct diag_cap_op *o = &p->ops[i];
	uint32_t a = o->a;
	*bytes = 0;
	if (is_save(o->op) && kind == DIAG_CAP_CONDITION)
		return bad(err, i, o, "a condition saves nothing");
	switch (o->op) {
	case DIAG_CAP_REG:
		if (!diag_cap_reg_saved(a))
			return bad(err, i, o, "no saved register at byte offset %u", a);
		return 0;
	case DIAG_CAP_FPREG:
	case DIAG_CAP_SAVE_FPREG:
		if (a >= DIAG_CAP_NFPREGS)
			return bad(err, i, o, "vector register %u is not saved", a);
		*bytes = o->op == DIAG_CAP_SAVE_FPREG ? diag_cap_block_bytes(16) : 0;
		return 0;
	case DIAG_CAP_LOAD:
		if (a != 1 && a != 2 && a != 4 && a != 8)
			return bad(err, i, o, "size %u is not 1, 2, 4 or 8", a);
		return 0;
	case DIAG_CAP_SEXT:
	case DIAG_CAP_ZEXT:
		if (a != 1 && a != 2 && a != 4)
			return bad(err, i, o, "width %u is not 1, 2 or 4", a);
		return 0;
	case DIAG_CAP_JMP:
	case DIAG_CAP_JZ:
	case DIAG_CAP_JNZ:
		if (a <= i || a >= p->n)
			return bad(err, i, o, "jump to op %u: not forward inside the program", a);
		return 0;
	case DIAG_CAP_STREQ:
		if (a >= p->nlits || !p->lits[a])
			return bad(err, i, o, "no literal %u", a);
		if (strnlen(p->lits[a], DIAG_CAP_MAX_LIT) >= DIAG_CAP_MAX_LIT)
			return bad(err, i, o, "literal longer than %d bytes", DIAG_CAP_MAX_LIT - 1);
		return 0;
	case DIAG_CAP_SAVE_MEM:
	case DIAG_CAP_SAVE_MEM_N:
	case DIAG_CAP_SAVE_STR:
		if (a == 0 || a > DIAG_CAP_MAX_PAYLOAD)
			return bad(err, i, o, "size %u is not 1 .. %d", a, DIAG_CAP_MAX_PAYLOAD);
		*bytes = diag_cap_block_bytes(a);
		return 0;
	default:
		return 0;
	}
}

/* Record the depth d flowing into op j; -1: two paths disagree. */
static int flow(int *depth, size_t j, int d)
{
	if (depth[j] >= 0 && depth[j] != d)
		return -1;
	depth[j] = d;
	return 0;
}

int diag_cap_check(const struct diag_cap_prog *p, enum diag_cap_kind kind, struct diag_error *err)
{
	if (!p || p->n == 0 || p->n > DIAG_CAP_MAX_OPS)
		return diag_error_set(err, -DIAG_E_INVALID, "capture program: %zu ops (1 .. %d)",
				      p ? p->n : 0, DIAG_CAP_MAX_OPS);
	if (p->nlits > DIAG_CAP_MAX_LITS)
		return diag_error_set(err, -DIAG_E_INVALID, "capture program: %zu literals (at most %d)",
				      p->nlits, DIAG_CAP_MAX_LITS);
	if (p->max_payload > DIAG_CAP_MAX_PAYLOAD)
		return diag_error_set(err, -DIAG_E_INVALID,
				      "capture program: max_payload %u above DIAG_CAP_MAX_PAYLOAD (%d)",
				      p->max_payload, DIAG_CAP_MAX_PAYLOAD);
	int depth[DIAG_CAP_MAX_OPS];
	for (size_t i = 0; i < p->n; i++)
		depth[i] = -1;
	depth[0] = 0;
	uint64_t payload = 0;
	for (size_t i = 0; i < p->n; i++) {
		const struct diag_cap_op *o = &p->ops[i];
		const struct cap_op_info *in = cap_op_info(o->op);
		if (!in)
			return bad(err, i, o, "unknown opcode %u", o->op);
		uint64_t bytes;
		int rc = check_operand(p, kind, i, &bytes, err);
		if (rc)
			return rc;
		payload += bytes; /* every op runs at most once: jumps go forward */
		int d = depth[i];
		if (d < 0)
			continue; /* no path reaches it */
		if (o->op == DIAG_CAP_END) {
			int want = kind == DIAG_CAP_CONDITION ? 1 : 0;
			if (d != want)
				return bad(err, i, o, "stack depth %d at the end (must be %d)", d, want);
			continue;
		}
		if (d < in->pops)
			return bad(err, i, o, "pops %u values from a stack of %d", in->pops, d);
		int after = d - in->pops + in->pushes;
		if (after > DIAG_CAP_MAX_STACK)
			return bad(err, i, o, "stack deeper than %d", DIAG_CAP_MAX_STACK);
		if (is_jump(o->op) && flow(depth, o->a, after))
			return bad(err, i, o, "jump to op %u: the stack depth differs there", o->a);
		if (o->op == DIAG_CAP_JMP)
			continue;
		if (i + 1 == p->n)
			return bad(err, i, o, "runs off the end of the program");
		if (flow(depth, i + 1, after))
			return bad(err, i + 1, &p->ops[i + 1], "the stack depth differs on its paths");
	}
	if (p->ops[p->n - 1].op != DIAG_CAP_END)
		return bad(err, p->n - 1, &p->ops[p->n - 1], "the last op must be END");
	if (payload > p->max_payload)
		return diag_error_set(err, -DIAG_E_INVALID,
				      "capture program: its SAVE ops may write %llu bytes, above max_payload %u",
				      (unsigned long long)payload, p->max_payload);
	return 0;
}
