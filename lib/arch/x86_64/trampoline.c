/* arch/x86_64/trampoline: builds the jump trampolines of the in-process fast path (see
 * trampoline.h) from the recording template plus the relocated displaced instructions, and maps
 * a thread's rip inside one back to the original code. Pure byte work: never touches a process,
 * never chooses addresses. The template is reviewed as trampoline_template.S; the array below
 * is its `cc -c` + `objdump -d` listing (command in that file) and test_trampoline re-assembles
 * the .S to prove the two are identical. */
#include "arch/trampoline.h"

#include <errno.h>
#include <string.h>

#include "arch/insn.h"
#include "arch/ring.h"
#include "arch/x86_64/tramp_internal.h"

/* objdump -d -M intel of trampoline_template.S. Placeholders: 0x1122334455667788 (probed
 * address), 0x99aabbccddeeff00 (site hit counter), 0x8877665544332211 (ring + 128),
 * 0x55aa55aa (site). */
static const uint8_t tmpl_bytes[] = {
	0x48, 0x8d, 0x64, 0x24, 0x80, /* lea    rsp,[rsp-0x80] */
	0x9c, /* pushf */
	0x54, /* push   rsp */
	0x50, /* push   rax */
	0x57, /* push   rdi */
	0x56, /* push   rsi */
	0x52, /* push   rdx */
	0x51, /* push   rcx */
	0x50, /* push   rax */
	0x41, 0x50, /* push   r8 */
	0x41, 0x51, /* push   r9 */
	0x41, 0x52, /* push   r10 */
	0x41, 0x53, /* push   r11 */
	0x53, /* push   rbx */
	0x55, /* push   rbp */
	0x41, 0x54, /* push   r12 */
	0x41, 0x55, /* push   r13 */
	0x41, 0x56, /* push   r14 */
	0x41, 0x57, /* push   r15 */
	0x48, 0x81, 0x84, 0x24, 0x80, 0x00, 0x00, 0x00, 0x88, 0x00, 0x00, 0x00, /* add    QWORD PTR [rsp+0x80],0x88 */
	0x48, 0xb8, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, /* movabs rax,0x1122334455667788 */
	0x48, 0x89, 0x44, 0x24, 0x78, /* mov    QWORD PTR [rsp+0x78],rax */
	0x48, 0xb8, 0x00, 0xff, 0xee, 0xdd, 0xcc, 0xbb, 0xaa, 0x99, /* movabs rax,0x99aabbccddeeff00 */
	0xf0, 0x48, 0xff, 0x00, /* lock inc QWORD PTR [rax] */
	0x48, 0xbb, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, /* movabs rbx,0x8877665544332211 */
	0x48, 0x8b, 0x43, 0x80, /* mov    rax,QWORD PTR [rbx-0x80] */
	0x48, 0x89, 0xc2, /* mov    rdx,rax */
	0x48, 0x2b, 0x53, 0xc0, /* sub    rdx,QWORD PTR [rbx-0x40] */
	0x48, 0x3b, 0x53, 0x08, /* cmp    rdx,QWORD PTR [rbx+0x8] */
	0x7f, 0x5d, /* jg     c0 */
	0x48, 0x8d, 0x48, 0x01, /* lea    rcx,[rax+0x1] */
	0xf0, 0x48, 0x0f, 0xb1, 0x4b, 0x80, /* lock cmpxchg QWORD PTR [rbx-0x80],rcx */
	0x75, 0xe7, /* jne    56 */
	0x49, 0x89, 0xc4, /* mov    r12,rax */
	0x48, 0x89, 0xc7, /* mov    rdi,rax */
	0x48, 0x23, 0x7b, 0x08, /* and    rdi,QWORD PTR [rbx+0x8] */
	0x48, 0x8d, 0x7c, 0x7f, 0x03, /* lea    rdi,[rdi+rdi*2+0x3] */
	0x48, 0xc1, 0xe7, 0x06, /* shl    rdi,0x6 */
	0x48, 0x01, 0xdf, /* add    rdi,rbx */
	0xc7, 0x47, 0x88, 0xaa, 0x55, 0xaa, 0x55, /* mov    DWORD PTR [rdi-0x78],0x55aa55aa */
	0x0f, 0x31, /* rdtsc */
	0x48, 0xc1, 0xe2, 0x20, /* shl    rdx,0x20 */
	0x48, 0x09, 0xd0, /* or     rax,rdx */
	0x48, 0x89, 0x47, 0x90, /* mov    QWORD PTR [rdi-0x70],rax */
	0xb8, 0xba, 0x00, 0x00, 0x00, /* mov    eax,0xba */
	0x0f, 0x05, /* syscall */
	0x89, 0x47, 0x8c, /* mov    DWORD PTR [rdi-0x74],eax */
	0x31, 0xc9, /* xor    ecx,ecx */
	0x48, 0x8b, 0x04, 0xcc, /* mov    rax,QWORD PTR [rsp+rcx*8] */
	0x48, 0x89, 0x44, 0xcf, 0x98, /* mov    QWORD PTR [rdi+rcx*8-0x68],rax */
	0xff, 0xc1, /* inc    ecx */
	0x83, 0xf9, 0x12, /* cmp    ecx,0x12 */
	0x75, 0xf0, /* jne    a5 */
	0x49, 0x8d, 0x44, 0x24, 0x01, /* lea    rax,[r12+0x1] */
	0x48, 0x89, 0x47, 0x80, /* mov    QWORD PTR [rdi-0x80],rax */
	0xeb, 0x04, /* jmp    c4 */
	0xf0, 0x48, 0xff, 0x03, /* lock inc QWORD PTR [rbx] */
	0x41, 0x5f, /* pop    r15 */
	0x41, 0x5e, /* pop    r14 */
	0x41, 0x5d, /* pop    r13 */
	0x41, 0x5c, /* pop    r12 */
	0x5d, /* pop    rbp */
	0x5b, /* pop    rbx */
	0x41, 0x5b, /* pop    r11 */
	0x41, 0x5a, /* pop    r10 */
	0x41, 0x59, /* pop    r9 */
	0x41, 0x58, /* pop    r8 */
	0x58, /* pop    rax */
	0x59, /* pop    rcx */
	0x5a, /* pop    rdx */
	0x5e, /* pop    rsi */
	0x5f, /* pop    rdi */
	0x48, 0x8d, 0x64, 0x24, 0x10, /* lea    rsp,[rsp+0x10] */
	0x9d, /* popf */
	0x48, 0x8d, 0xa4, 0x24, 0x80, 0x00, 0x00, 0x00, /* lea    rsp,[rsp+0x80] */
};

/* nm of the assembled template (absolute symbols diag_tramp_imm_*). */
enum { TMPL_IMM_RIP = 0x2d, TMPL_IMM_COUNTER = 0x3c, TMPL_IMM_RING = 0x4a, TMPL_IMM_SITE = 0x88 };

/* The template addresses the header fields as [rbx-128 .. rbx+8] to keep them in disp8. */
#define TMPL_RING_BIAS 128

#define PATCH_JMP_LEN DIAG_TRAMP_PATCH_LEN /* jmp rel32 */
#define PATCHED_MAX (PATCH_JMP_LEN - 1 + DIAG_INSN_MAX_LEN)

_Static_assert(sizeof(tmpl_bytes) + PATCHED_MAX + DIAG_INSN_JMP_MAX <= DIAG_TRAMP_MAX,
	       "a trampoline must fit in DIAG_TRAMP_MAX bytes");
_Static_assert(DIAG_TRAMP_CODE_AVAIL >= PATCHED_MAX, "DIAG_TRAMP_CODE_AVAIL too small");

static const struct diag_tramp_template tmpl = {
	.source = "lib/arch/x86_64/trampoline_template.S",
	.bytes = tmpl_bytes,
	.len = sizeof(tmpl_bytes),
	.imm_rip = TMPL_IMM_RIP,
	.imm_counter = TMPL_IMM_COUNTER,
	.imm_ring = TMPL_IMM_RING,
	.imm_site = TMPL_IMM_SITE,
};

const struct diag_tramp_template *diag_tramp_template(void)
{
	return &tmpl;
}

int xt_decode_displaced(uint64_t addr, const uint8_t *code, size_t avail, size_t min_len,
			struct xt_displaced *d, struct diag_error *err)
{
	size_t off = 0;
	int rc;

	if (avail < min_len)
		return diag_error_set(err, -DIAG_E_RELOC,
				      "probe at 0x%llx: only %zu bytes available, the jump needs %zu",
				      (unsigned long long)addr, avail, min_len);
	d->n = 0;
	while (off < min_len) {
		struct diag_insn *in = &d->insns[d->n];

		if (d->n == DIAG_TRAMP_MAX_INSNS)
			return diag_error_set(err, -DIAG_E_RELOC,
					      "probe at 0x%llx: more than %d instructions to displace",
					      (unsigned long long)addr, DIAG_TRAMP_MAX_INSNS);
		rc = diag_insn_decode(code + off, avail - off, addr + off, in, err);
		if (rc < 0) {
			diag_error_prefix(err, "probe at 0x%llx: displaced bytes: ", (unsigned long long)addr);
			return rc;
		}
		off += in->len;
		d->n++;
	}
	d->len = off;
	return 0;
}

static int decode_displaced(uint64_t addr, const uint8_t *code, size_t avail,
			    struct xt_displaced *d, struct diag_error *err)
{
	return xt_decode_displaced(addr, code, avail, PATCH_JMP_LEN, d, err);
}

static void put_imm(uint8_t *buf, size_t at, const void *v, size_t n)
{
	memcpy(buf + at, v, n);
}

/* Template, relocated copies, jump back: into buf (DIAG_TRAMP_MAX bytes), layout into l. */
/* What the template's immediates point at, besides the probed address. */
struct sink {
	uint64_t ring_addr;
	uint64_t counter_addr;
	uint32_t site;
};

static int emit(const struct xt_displaced *d, uint64_t addr, uint64_t tramp_addr,
		const struct sink *k, uint8_t *buf, struct diag_tramp_layout *l,
		struct diag_error *err)
{
	uint64_t ring_biased = k->ring_addr + TMPL_RING_BIAS;
	size_t off = sizeof(tmpl_bytes), n, orig = 0;
	int rc;

	memcpy(buf, tmpl_bytes, sizeof(tmpl_bytes));
	put_imm(buf, TMPL_IMM_RIP, &addr, 8);
	put_imm(buf, TMPL_IMM_COUNTER, &k->counter_addr, 8);
	put_imm(buf, TMPL_IMM_RING, &ring_biased, 8);
	put_imm(buf, TMPL_IMM_SITE, &k->site, 4);
	memset(l, 0, sizeof(*l));
	l->reloc_off = off;
	for (size_t i = 0; i < d->n; i++) {
		rc = diag_insn_relocate_linear(&d->insns[i], tramp_addr + off, buf + off,
					       DIAG_TRAMP_MAX - off, &n, err);
		if (rc < 0)
			return diag_error_prefix(err, "probe at 0x%llx: ", (unsigned long long)addr);
		l->insns[i].orig_off = (uint8_t)orig;
		l->insns[i].copy_off = (uint16_t)off;
		orig += d->insns[i].len;
		off += n;
	}
	l->back_off = off;
	rc = diag_insn_emit_jmp(tramp_addr + off, addr + d->len, buf + off, DIAG_TRAMP_MAX - off, &n);
	if (rc < 0)
		return diag_error_set(err, rc, "probe at 0x%llx: no room for the jump back",
				      (unsigned long long)addr);
	l->len = off + n;
	l->addr = addr;
	l->tramp_addr = tramp_addr;
	l->patched_len = d->len;
	l->n_insns = d->n;
	return 0;
}

static int check_args(const uint8_t *code, uint64_t tramp_addr, struct diag_error *err)
{
	if (!code || !tramp_addr)
		return diag_error_set(err, -EINVAL, "trampoline: no code or no trampoline address given");
	return 0;
}

static int build(uint64_t addr, const uint8_t *code, size_t avail, uint64_t tramp_addr,
		 const struct sink *k, uint8_t *out, size_t cap, size_t *len,
		 uint8_t jmp[DIAG_TRAMP_PATCH_LEN], size_t *patched_len, struct diag_error *err)
{
	struct xt_displaced d;
	struct diag_tramp_layout l;
	uint8_t buf[DIAG_TRAMP_MAX], patch[PATCH_JMP_LEN];
	size_t n;
	int rc;

	rc = check_args(code, tramp_addr, err);
	if (rc < 0)
		return rc;
	if (!out || !len || !jmp || !patched_len || !k->ring_addr)
		return diag_error_set(err, -EINVAL, "trampoline: missing output or ring address");
	if (diag_insn_emit_jmp(addr, tramp_addr, patch, sizeof(patch), &n) < 0)
		return diag_error_set(err, -DIAG_E_RELOC,
				      "probe at 0x%llx: trampoline at 0x%llx is out of reach of a jmp rel32",
				      (unsigned long long)addr, (unsigned long long)tramp_addr);
	rc = decode_displaced(addr, code, avail, &d, err);
	if (rc < 0)
		return rc;
	rc = emit(&d, addr, tramp_addr, k, buf, &l, err);
	if (rc < 0)
		return rc;
	if (l.len > cap)
		return diag_error_set(err, -ENOSPC, "probe at 0x%llx: trampoline needs %zu bytes, %zu given",
				      (unsigned long long)addr, l.len, cap);
	memcpy(out, buf, l.len);
	*len = l.len;
	memcpy(jmp, patch, PATCH_JMP_LEN);
	*patched_len = d.len;
	return 0;
}

int diag_tramp_build_counted(uint64_t addr, const uint8_t *code, size_t avail, uint64_t tramp_addr,
			     const struct diag_tramp_ring *ring, uint8_t *out, size_t cap, size_t *len,
			     uint8_t jmp[DIAG_TRAMP_PATCH_LEN], size_t *patched_len, struct diag_error *err)
{
	struct sink k;

	if (!ring)
		return diag_error_set(err, -EINVAL, "trampoline: no ring given");
	if (ring->site == 0 || ring->site >= DIAG_RING_MAX_SITES)
		return diag_error_set(err, -EINVAL, "trampoline: site %u out of range 1..%d",
				      ring->site, DIAG_RING_MAX_SITES - 1);
	if ((ring->mask & (ring->mask + 1)) != 0)
		return diag_error_set(err, -EINVAL,
				      "trampoline: ring mask 0x%llx is not a power of two minus one",
				      (unsigned long long)ring->mask);
	k = (struct sink){ .ring_addr = ring->addr, .site = ring->site,
			   .counter_addr = ring->addr + diag_ring_counter_offset(ring->mask, ring->site) };
	return build(addr, code, avail, tramp_addr, &k, out, cap, len, jmp, patched_len, err);
}

int diag_tramp_build(uint64_t addr, const uint8_t *code, size_t avail, uint64_t tramp_addr,
		     uint64_t ring_addr, uint32_t site, uint8_t *out, size_t cap, size_t *len,
		     uint8_t jmp[DIAG_TRAMP_PATCH_LEN], size_t *patched_len, struct diag_error *err)
{
	const struct sink k = { .ring_addr = ring_addr, .site = site,
				.counter_addr = ring_addr + offsetof(struct diag_ring_header, hits) };

	return build(addr, code, avail, tramp_addr, &k, out, cap, len, jmp, patched_len, err);
}

int diag_tramp_layout(uint64_t addr, const uint8_t *code, size_t avail, uint64_t tramp_addr,
		      struct diag_tramp_layout *out, struct diag_error *err)
{
	struct xt_displaced d;
	struct diag_tramp_layout l;
	uint8_t buf[DIAG_TRAMP_MAX];
	int rc;

	rc = check_args(code, tramp_addr, err);
	if (rc < 0)
		return rc;
	if (!out)
		return diag_error_set(err, -EINVAL, "trampoline: no layout output given");
	rc = decode_displaced(addr, code, avail, &d, err);
	if (rc < 0)
		return rc;
	/* Any nonzero ring address: immediates never change the layout. */
	rc = emit(&d, addr, tramp_addr, &(const struct sink){ .ring_addr = 1 }, buf, &l, err);
	if (rc < 0)
		return rc;
	*out = l;
	return 0;
}

enum diag_tramp_where diag_tramp_locate(const struct diag_tramp_layout *l, uint64_t rip,
					uint64_t *orig)
{
	uint64_t off;

	if (!l || rip < l->tramp_addr || rip - l->tramp_addr >= l->len)
		return DIAG_TRAMP_OUTSIDE;
	off = rip - l->tramp_addr;
	/* Copies first: an exit trampoline runs its relocated copies before its recording code. */
	for (size_t i = 0; i < l->n_insns; i++) {
		if (off == l->insns[i].copy_off) {
			if (orig)
				*orig = l->addr + l->insns[i].orig_off;
			return DIAG_TRAMP_RELOCATED;
		}
	}
	if (off == l->back_off) {
		if (orig)
			*orig = l->addr + l->patched_len;
		return DIAG_TRAMP_RELOCATED;
	}
	if (off < l->reloc_off)
		return DIAG_TRAMP_RECORDING;
	return DIAG_TRAMP_MID_INSN;
}
