/* arch/x86_64/trampoline_template.S: the recording prologue of a jump trampoline, the code that
 * runs INSIDE the target on every hit of a fast-path probe. Kept here for review only: the
 * library embeds the same bytes as an annotated array in trampoline.c (the top CMakeLists
 * lists the .S files of the architecture but never assembles them), and
 * tests/unit/x86_64/test_trampoline.c assembles this file with `cc -c`
 * at test time and compares bytes and patch offsets, so the two never drift.
 *
 * How the array in trampoline.c was produced:
 *   cc -c trampoline_template.S -o t.o
 *   objdump -d -M intel --insn-width=16 t.o | awk -F'\t' '/^ +[0-9a-f]+:\t/ {
 *     gsub(/ +$/, "", $2); gsub(/ /, ", 0x", $2); sub(/ <[^>]*>/, "", $3); printf "\t0x%s, /" "* %s *" "/\n", $2, $3 }'
 *   nm t.o   (the diag_tramp_imm_* offsets and diag_tramp_tmpl_len, absolute symbols)
 *
 * Contract: entered by `jmp rel32` from the probed address with every register, the flags and
 * the stack exactly as the probed code had them. Records one hit into the ring (layout in
 * ring.h), restores every register and the flags, leaves rsp as it found it, and falls through
 * into the relocated displaced instructions that trampoline.c appends after these bytes.
 * Never blocks, never waits, never calls anything: one `syscall` (gettid) is the only way out.
 * Never writes below rsp-128-144 (red zone, then the 18-slot frame). Uses no vector registers
 * and no string instructions (the target's DF may be set). Position independent: the four
 * immediates are patched per probe (the ring immediate is the ring address + 128, the counter
 * immediate the address of the site's hit counter, see diag_ring_counter_offset). */
	.intel_syntax noprefix
	.text
	/* Offsets of the patched immediates, as absolute symbols so that objdump still decodes the
	 * instruction stream from byte 0. */
	.globl diag_tramp_imm_rip, diag_tramp_imm_counter, diag_tramp_imm_ring, diag_tramp_imm_site
	.globl diag_tramp_tmpl_len

start:
	/* The probe may sit mid-function in a leaf that keeps data below rsp. */
	lea	rsp, [rsp - 128]
	pushfq
	/* Frame laid out exactly like diag_ring_record.regs, from the top: eflags, rsp, rip (a
	 * placeholder), then the general registers. push rsp stores rsp as it was before the push. */
	push	rsp
	push	rax
	push	rdi
	push	rsi
	push	rdx
	push	rcx
	push	rax
	push	r8
	push	r9
	push	r10
	push	r11
	push	rbx
	push	rbp
	push	r12
	push	r13
	push	r14
	push	r15
	/* rsp as the probed code saw it: the pushed value plus pushfq's slot and the red zone. */
	add	qword ptr [rsp + 16 * 8], 8 + 128
	movabs	rax, 0x1122334455667788		/* probed address */
rip_end:
	mov	[rsp + 15 * 8], rax
	/* Counted before the reservation, so even a dropped hit is counted: the site's exact total. */
	movabs	rax, 0x99aabbccddeeff00		/* this site's u64 hit counter */
counter_end:
	lock inc qword ptr [rax]
	/* rbx = ring header + 128, so that every header field is within a disp8:
	 * head [rbx-128], tail [rbx-64], drops [rbx], mask [rbx+8]. */
	movabs	rbx, 0x8877665544332211
ring_end:

	/* Reserve an index: full when head - tail > mask. Signed compare: tail read after head may
	 * already be past a stale head; then the cmpxchg fails and we retry with a fresh head. */
	mov	rax, [rbx - 128]
1:	mov	rdx, rax
	sub	rdx, [rbx - 64]
	cmp	rdx, [rbx + 8]
	jg	3f
	lea	rcx, [rax + 1]
	lock cmpxchg [rbx - 128], rcx
	jne	1b

	/* r12 = index; rdi = record + 128 = ring + 192 * (index & mask + 1) + 128 - 128
	 * (192 = DIAG_RING_RECORD_SIZE = sizeof(struct diag_ring_header)), fields again in disp8. */
	mov	r12, rax
	mov	rdi, rax
	and	rdi, [rbx + 8]
	lea	rdi, [rdi + rdi * 2 + 3]
	shl	rdi, 6
	add	rdi, rbx
	mov	dword ptr [rdi - 128 + 8], 0x55aa55aa	/* site */
site_end:
	rdtsc
	shl	rdx, 32
	or	rax, rdx
	mov	[rdi - 128 + 16], rax
	mov	eax, 186			/* gettid; clobbers rcx and r11, both saved */
	syscall
	mov	[rdi - 128 + 12], eax
	xor	ecx, ecx
2:	mov	rax, [rsp + rcx * 8]
	mov	[rdi - 128 + 24 + rcx * 8], rax
	inc	ecx
	cmp	ecx, 18
	jne	2b
	/* Published last: a plain store is a release on x86 (TSO). */
	lea	rax, [r12 + 1]
	mov	[rdi - 128], rax
	jmp	4f

3:	lock inc qword ptr [rbx]		/* drops */

4:	pop	r15
	pop	r14
	pop	r13
	pop	r12
	pop	rbp
	pop	rbx
	pop	r11
	pop	r10
	pop	r9
	pop	r8
	pop	rax
	pop	rcx
	pop	rdx
	pop	rsi
	pop	rdi
	lea	rsp, [rsp + 16]			/* rip and rsp slots */
	popfq
	lea	rsp, [rsp + 128]
end:
	.set	diag_tramp_imm_rip, rip_end - 8 - start
	.set	diag_tramp_imm_counter, counter_end - 8 - start
	.set	diag_tramp_imm_ring, ring_end - 8 - start
	.set	diag_tramp_imm_site, site_end - 4 - start
	.set	diag_tramp_tmpl_len, end - start
