/* arch/x86_64/safety_template.S: the SIGTRAP safety handler, the code that runs INSIDE the target
 * when one of our int3 bytes is hit while no tracer is there (the daemon was killed). Kept here
 * for review only: the library embeds the same bytes as an annotated array in safety.c (the top
 * CMakeLists lists the .S files of the architecture but never assembles them), and
 * tests/unit/x86_64/test_safety.c assembles this file with
 * `cc -c` at test time and compares bytes and symbol offsets, so the two never drift.
 *
 * How the array in safety.c was produced:
 *   cc -c safety_template.S -o s.o
 *   objdump -d -M intel --insn-width=16 s.o | awk -F'\t' '/^ +[0-9a-f]+:\t/ {
 *     gsub(/ +$/, "", $2); gsub(/ /, ", 0x", $2); sub(/ <[^>]*>/, "", $3); printf "\t0x%s, /" "* %s *" "/\n", $2, $3 }'
 *   nm s.o   (the diag_safety_* offsets, absolute symbols)
 *
 * Contract: installed as an SA_SIGINFO handler for SIGTRAP (rdi = signo, rsi = siginfo,
 * rdx = ucontext). For an int3 (si_code SI_KERNEL) at A = uc.rip - 1:
 *   A in the table   -> uc.rip = the entry's out-of-line slot, return: the displaced instruction
 *                       runs there and jumps back; the hit is simply not recorded;
 *   A a tombstone    -> uc.rip = A, return: the original byte is back, run it;
 *   uc.rip a live slot or a tombstone -> return unchanged: the daemon had moved the thread in
 *                       its signal-delivery stop and died before resuming it with the signal
 *                       cancelled, so the kernel delivers the SIGTRAP after all;
 *   otherwise, and for every other SIGTRAP, chain to the target's previous action: a handler is
 *   tail-jumped to with rdi, rsi, rdx untouched (it returns through the frame's restorer); for
 *   SIG_DFL, and for SIG_IGN unless a process sent the signal (si_code <= 0), restore SIG_DFL
 *   and re-raise with tgkill: the default action (core dump) the target would have had.
 * Reads only the data area below; writes only the ucontext; uses no stack of its own, no
 * vector registers, no string instructions; never blocks. Position independent: every datum is
 * reached rip-relative at a fixed offset from the start (data area at diag_safety_data), so the
 * blob runs wherever it is copied. The daemon fills the data area (safety.h). */
	.intel_syntax noprefix
	.text
	.globl diag_safety_restorer, diag_safety_code_len, diag_safety_data
	.globl diag_safety_d_mask, diag_safety_d_old, diag_safety_d_dfl, diag_safety_d_tombs
	.globl diag_safety_d_table, diag_safety_n_tombs

	/* The data area, after the code; the table runs to the end of the blob. */
	.set	diag_safety_data, 512
	.set	diag_safety_d_mask, diag_safety_data + 0	/* u64: table entries - 1 */
	.set	diag_safety_d_old, diag_safety_data + 32	/* kernel sigaction: the previous one */
	.set	diag_safety_d_dfl, diag_safety_data + 64	/* kernel sigaction: SIG_DFL, all zero */
	.set	diag_safety_d_tombs, diag_safety_data + 128	/* u64[64]: removed addresses */
	.set	diag_safety_n_tombs, 64
	.set	diag_safety_d_table, diag_safety_d_tombs + 8 * 64	/* {u64 addr, u64 slot}[mask + 1] */

	.set	UC_RIP, 168		/* offsetof(ucontext_t, uc_mcontext.gregs[REG_RIP]) */
	.set	SI_CODE, 8		/* offsetof(siginfo_t, si_code) */
	.set	SI_KERNEL, 0x80		/* what an int3 raises (do_int3_user -> force_sig) */
	.set	SIGTRAP, 5

start:
	/* Only a trap raised by an int3 is ours: a SIGTRAP sent by kill() to a thread that just
	 * jumped back to A + 1 from a 1-byte slot must not be sent to the slot again. */
	cmp	dword ptr [rsi + SI_CODE], SI_KERNEL
	jne	chain
	mov	rax, [rdx + UC_RIP]
	dec	rax				/* A */

	/* Open addressing, linear probing: hash = (A * K) >> 32 & mask. A bucket holds 0 (empty:
	 * end of the chain), 1 (deleted: go on) or an address. At most mask + 1 probes. */
	movabs	rcx, 0x9e3779b97f4a7c15
	imul	rcx, rax
	shr	rcx, 32
	mov	r8, [rip + start + diag_safety_d_mask]
	lea	r9, [r8 + 1]
	lea	r10, [rip + start + diag_safety_d_table]
1:	and	rcx, r8
	mov	r11, rcx
	shl	r11, 4
	add	r11, r10
	cmp	[r11], rax
	je	found
	cmp	qword ptr [r11], 0
	je	tombs
	inc	rcx
	dec	r9
	jnz	1b

tombs:
	lea	r10, [rip + start + diag_safety_d_tombs]
	mov	ecx, diag_safety_n_tombs
2:	cmp	[r10], rax
	je	resume
	add	r10, 8
	dec	ecx
	jnz	2b

	/* The daemon may have moved the thread already (rip = a live entry's slot, or a tombstoned
	 * address) and died before resuming it with the signal cancelled: leave rip alone. */
	mov	rax, [rdx + UC_RIP]
	lea	r10, [rip + start + diag_safety_d_table]
	lea	r9, [r8 + 1]
3:	cmp	[r10 + 8], rax
	jne	4f
	cmp	qword ptr [r10], 1		/* live: neither empty nor deleted */
	ja	done
4:	add	r10, 16
	dec	r9
	jnz	3b
	lea	r10, [rip + start + diag_safety_d_tombs]
	mov	ecx, diag_safety_n_tombs
5:	cmp	[r10], rax
	je	done
	add	r10, 8
	dec	ecx
	jnz	5b
	jmp	chain

found:
	/* The daemon writes slot before addr; a slot of 0 is never published, but be sure. */
	mov	rcx, [r11 + 8]
	test	rcx, rcx
	jz	chain
	mov	[rdx + UC_RIP], rcx
	ret

resume:
	mov	[rdx + UC_RIP], rax
	ret

chain:
	mov	rax, [rip + start + diag_safety_d_old]	/* sa_handler */
	cmp	rax, 1					/* SIG_IGN */
	je	ignored
	test	rax, rax				/* SIG_DFL */
	jz	dfl
	jmp	rax				/* its own handler, with our sig, info, uc */

ignored:
	/* A forced trap ignores SIG_IGN (the kernel resets it to SIG_DFL); a sent one does not. */
	cmp	dword ptr [rsi + SI_CODE], 0
	jle	done

dfl:
	mov	eax, 13				/* rt_sigaction(SIGTRAP, &dfl, NULL, 8) */
	mov	edi, SIGTRAP
	lea	rsi, [rip + start + diag_safety_d_dfl]
	xor	edx, edx
	mov	r10d, 8
	syscall
	mov	eax, 39				/* getpid */
	syscall
	mov	r8, rax				/* syscall keeps r8; clobbers rcx, r11 */
	mov	eax, 186			/* gettid */
	syscall
	mov	esi, eax
	mov	edi, r8d
	mov	edx, SIGTRAP
	mov	eax, 234			/* tgkill: pending until sigreturn unblocks it */
	syscall
done:
	ret

	/* sa_restorer for our own frames: rt_sigreturn. */
	.p2align 3
restorer:
	mov	eax, 15
	syscall
end:
	.set	diag_safety_restorer, restorer - start
	.set	diag_safety_code_len, end - start
