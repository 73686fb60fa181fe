/* capture/interp: the reference interpreter of capture programs (capture.h, diag_cap_run):
 * the meaning of every op of arch/capture.h in plain C. Every architecture's compiled code is
 * held to it by the tests, outcomes, payload bytes and fault addresses included. Reads memory
 * only through env->read_mem; runs only programs diag_cap_check accepted (it still bounds
 * every access, so a program that was not checked cannot make it write out of bounds). */
#include "capture/capture.h"

#include <string.h>

#include "capture/internal.h"

#define PAGE 4096u

struct run {
	const struct diag_cap_prog *p;
	const struct diag_cap_env *env;
	uint64_t stack[DIAG_CAP_MAX_STACK + 1];
	int sp;
	uint8_t *payload;
	size_t cap, used;
	uint64_t fault;
};

/* Up to len bytes at addr; the count read (a short count at the first byte not read). */
static size_t read_some(struct run *r, uint64_t addr, void *buf, size_t len)
{
	if (!len || !r->env->read_mem)
		return 0;
	ssize_t n = r->env->read_mem(r->env->arg, addr, buf, len);
	return n > 0 ? ((size_t)n < len ? (size_t)n : len) : 0;
}

/* Reads page by page, so a short read is always at the first byte that cannot be read. */
static size_t read_paged(struct run *r, uint64_t addr, uint8_t *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		size_t chunk = PAGE - ((addr + done) & (PAGE - 1));
		if (chunk > len - done)
			chunk = len - done;
		size_t got = read_some(r, addr + done, buf + done, chunk);
		done += got;
		if (got < chunk)
			break;
	}
	return done;
}

/* The block header and room for len bytes at the end of the payload; NULL without room. */
static uint8_t *block(struct run *r, uint16_t kind, uint64_t addr, uint32_t len)
{
	uint32_t bytes = diag_cap_block_bytes(len);
	if (bytes > r->cap - r->used)
		return NULL;
	struct diag_cap_block h = { .addr = addr, .len = len, .kind = kind };
	uint8_t *b = r->payload + r->used;
	memcpy(b, &h, sizeof(h));
	memset(b + sizeof(h), 0, bytes - sizeof(h));
	r->used += bytes;
	return b + sizeof(h);
}

/* Shrink the last block, of data d, to len bytes (the padding follows the new length). */
static void shrink_last(struct run *r, uint8_t *d, uint32_t len)
{
	struct diag_cap_block h;
	memcpy(&h, d - sizeof(h), sizeof(h));
	r->used -= diag_cap_block_bytes(h.len) - diag_cap_block_bytes(len);
	h.len = len;
	memcpy(d - sizeof(h), &h, sizeof(h));
}

enum step { GO, STOP_FAULT, STOP_ABORT };

static enum step save_mem(struct run *r, uint64_t addr, uint32_t len)
{
	uint8_t *d = block(r, DIAG_CAP_BLOCK_MEM, addr, len);
	if (!d)
		return STOP_ABORT;
	size_t got = read_paged(r, addr, d, len);
	if (got == len)
		return GO;
	r->fault = addr + got; /* the block stays whole: readers cut it at the fault */
	return STOP_FAULT;
}

static enum step save_str(struct run *r, uint64_t addr, uint32_t max)
{
	uint8_t *d = block(r, DIAG_CAP_BLOCK_MEM, addr, max);
	if (!d)
		return STOP_ABORT;
	size_t n = 0;
	while (n < max) {
		size_t chunk = PAGE - ((addr + n) & (PAGE - 1));
		if (chunk > max - n)
			chunk = max - n;
		size_t got = read_some(r, addr + n, d + n, chunk);
		uint8_t *nul = memchr(d + n, 0, got);
		if (nul) {
			n = (size_t)(nul - d) + 1;
			break;
		}
		n += got;
		if (got < chunk) {
			shrink_last(r, d, (uint32_t)n);
			r->fault = addr + n;
			return STOP_FAULT;
		}
	}
	memset(d + n, 0, max - n);
	shrink_last(r, d, (uint32_t)n);
	return GO;
}

/* 1 when the C string at addr equals lit (NUL included), reading no byte past the first
 * difference: a fault counts only where every byte before it matched. */
static enum step streq(struct run *r, uint64_t addr, const char *lit, uint64_t *out)
{
	size_t need = strlen(lit) + 1, n = 0;
	uint8_t buf[DIAG_CAP_MAX_LIT];
	while (n < need) {
		size_t chunk = PAGE - ((addr + n) & (PAGE - 1));
		if (chunk > need - n)
			chunk = need - n;
		size_t got = read_some(r, addr + n, buf + n, chunk);
		if (memcmp(buf + n, lit + n, got)) {
			*out = 0;
			return GO;
		}
		n += got;
		if (got < chunk) {
			r->fault = addr + n;
			return STOP_FAULT;
		}
	}
	*out = 1;
	return GO;
}

static uint64_t fpreg(const struct run *r, uint32_t n)
{
	uint64_t v = 0;
	const uint8_t *b = r->env->fpregs ? diag_fpregs_vector(r->env->fpregs, n) : NULL;
	if (b)
		memcpy(&v, b, 8);
	return v;
}

static uint64_t sext(uint64_t v, unsigned bytes)
{
	unsigned bits = bytes * 8;
	v &= (1ULL << bits) - 1;
	return (v >> (bits - 1)) & 1 ? v | (~0ULL << bits) : v;
}

/* A binary op on a (below) and b (top). */
static enum step binary(unsigned op, uint64_t a, uint64_t b, uint64_t *out)
{
	int64_t sa = (int64_t)a, sb = (int64_t)b;
	bool div = op == DIAG_CAP_DIVS || op == DIAG_CAP_DIVU || op == DIAG_CAP_REMS ||
		   op == DIAG_CAP_REMU;
	if (div && b == 0)
		return STOP_ABORT;
	bool minus1 = (op == DIAG_CAP_DIVS || op == DIAG_CAP_REMS) && sb == -1;
	switch (op) {
	case DIAG_CAP_ADD: *out = a + b; break;
	case DIAG_CAP_SUB: *out = a - b; break;
	case DIAG_CAP_MUL: *out = a * b; break;
	case DIAG_CAP_AND: *out = a & b; break;
	case DIAG_CAP_OR: *out = a | b; break;
	case DIAG_CAP_XOR: *out = a ^ b; break;
	case DIAG_CAP_SHL: *out = a << (b & 63); break;
	case DIAG_CAP_SHR: *out = a >> (b & 63); break;
	case DIAG_CAP_SAR: *out = (uint64_t)(sa >> (b & 63)); break;
	case DIAG_CAP_DIVS: *out = minus1 ? 0 - a : (uint64_t)(sa / sb); break;
	case DIAG_CAP_DIVU: *out = a / b; break;
	case DIAG_CAP_REMS: *out = minus1 ? 0 : (uint64_t)(sa % sb); break;
	case DIAG_CAP_REMU: *out = a % b; break;
	case DIAG_CAP_EQ: *out = a == b; break;
	case DIAG_CAP_NE: *out = a != b; break;
	case DIAG_CAP_LTS: *out = sa < sb; break;
	case DIAG_CAP_LES: *out = sa <= sb; break;
	case DIAG_CAP_GTS: *out = sa > sb; break;
	case DIAG_CAP_GES: *out = sa >= sb; break;
	case DIAG_CAP_LTU: *out = a < b; break;
	case DIAG_CAP_LEU: *out = a <= b; break;
	case DIAG_CAP_GTU: *out = a > b; break;
	default: *out = a >= b; break; /* GEU */
	}
	return GO;
}

static uint64_t pop(struct run *r)
{
	return r->sp > 0 ? r->stack[--r->sp] : 0;
}

static void push(struct run *r, uint64_t v)
{
	if (r->sp <= DIAG_CAP_MAX_STACK)
		r->stack[r->sp++] = v;
}

/* One op; *next is the index of the op to run after it. */
static enum step exec(struct run *r, size_t i, size_t *next)
{
	const struct diag_cap_op *o = &r->p->ops[i];
	uint64_t a, b, v = 0;
	uint8_t w[8] = { 0 };
	*next = i + 1;
	if (o->op >= DIAG_CAP_ADD && o->op <= DIAG_CAP_GEU) {
		b = pop(r);
		a = pop(r);
		enum step s = binary(o->op, a, b, &v);
		push(r, v);
		return s;
	}
	switch (o->op) {
	case DIAG_CAP_REG:
		push(r, o->a + 8 <= sizeof(diag_regs) && r->env->regs ?
			diag_reg_get(r->env->regs, (int)o->a, 8) : 0);
		return GO;
	case DIAG_CAP_FPREG:
		push(r, fpreg(r, o->a));
		return GO;
	case DIAG_CAP_CONST:
		push(r, o->imm);
		return GO;
	case DIAG_CAP_LOAD: {
		a = pop(r);
		size_t n = o->a <= 8 ? o->a : 8;
		size_t got = read_paged(r, a, w, n);
		if (got < n) {
			r->fault = a + got;
			return STOP_FAULT;
		}
		memcpy(&v, w, 8);
		push(r, v);
		return GO;
	}
	case DIAG_CAP_SEXT:
		push(r, o->a < 8 && o->a ? sext(pop(r), o->a) : pop(r));
		return GO;
	case DIAG_CAP_ZEXT:
		v = pop(r);
		push(r, o->a < 8 && o->a ? v & ((1ULL << (o->a * 8)) - 1) : v);
		return GO;
	case DIAG_CAP_NEG:
		push(r, 0 - pop(r));
		return GO;
	case DIAG_CAP_NOT:
		push(r, ~pop(r));
		return GO;
	case DIAG_CAP_LNOT:
		push(r, pop(r) == 0);
		return GO;
	case DIAG_CAP_JMP:
		*next = o->a;
		return GO;
	case DIAG_CAP_JZ:
	case DIAG_CAP_JNZ:
		v = pop(r);
		if ((v == 0) == (o->op == DIAG_CAP_JZ))
			*next = o->a;
		return GO;
	case DIAG_CAP_DROP:
		pop(r);
		return GO;
	case DIAG_CAP_DUP:
		v = pop(r);
		push(r, v);
		push(r, v);
		return GO;
	case DIAG_CAP_STREQ: {
		a = pop(r);
		const char *lit = o->a < r->p->nlits && r->p->lits[o->a] ? r->p->lits[o->a] : "";
		enum step s = streq(r, a, lit, &v);
		push(r, v);
		return s;
	}
	case DIAG_CAP_SAVE_MEM:
		return save_mem(r, pop(r), o->a);
	case DIAG_CAP_SAVE_MEM_N:
		b = pop(r);
		a = pop(r);
		return save_mem(r, a, (uint32_t)(b < o->a ? b : o->a));
	case DIAG_CAP_SAVE_STR:
		return save_str(r, pop(r), o->a);
	case DIAG_CAP_SAVE_FPREG: {
		uint8_t *d = block(r, DIAG_CAP_BLOCK_FPREG, o->a, 16);
		const uint8_t *src = r->env->fpregs ? diag_fpregs_vector(r->env->fpregs, o->a) : NULL;
		if (!d)
			return STOP_ABORT;
		if (src)
			memcpy(d, src, 16);
		return GO;
	}
	default:
		return STOP_ABORT; /* unknown: diag_cap_check refuses it */
	}
}

enum diag_cap_outcome diag_cap_run(const struct diag_cap_prog *p, enum diag_cap_kind kind,
				   const struct diag_cap_env *env, uint8_t *payload, size_t cap,
				   uint32_t *payload_len, uint64_t *fault_addr)
{
	struct run r = { .p = p, .env = env, .payload = payload, .cap = payload ? cap : 0 };
	bool cond = kind == DIAG_CAP_CONDITION;
	enum diag_cap_outcome out = cond ? DIAG_CAP_FALSE : DIAG_CAP_DONE;
	size_t i = 0;
	while (i < p->n && i < DIAG_CAP_MAX_OPS) {
		if (p->ops[i].op == DIAG_CAP_END) {
			if (cond)
				out = pop(&r) ? DIAG_CAP_DONE : DIAG_CAP_FALSE;
			break;
		}
		size_t next;
		enum step s = exec(&r, i, &next);
		if (s != GO) {
			out = cond ? DIAG_CAP_FALSE : s == STOP_FAULT ? DIAG_CAP_FAULTED : DIAG_CAP_ABORTED;
			if (s == STOP_FAULT && fault_addr)
				*fault_addr = r.fault;
			break;
		}
		if (next <= i)
			break; /* a backward jump: diag_cap_check refuses it */
		i = next;
	}
	if (payload_len)
		*payload_len = (uint32_t)r.used;
	return out;
}
