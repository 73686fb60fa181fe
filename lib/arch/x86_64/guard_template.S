/* arch/x86_64/guard_template.S: the fault guard, the SIGSEGV and SIGBUS handler that runs INSIDE
 * the target when a capture program's load faults while no tracer repairs it (the daemon was
 * killed, or is stopped: a stopped tracer holds the fault in its signal-delivery stop, so this
 * runs only once it is gone). Kept here for review only: the library embeds the same bytes as an
 * annotated array in guard.c (the top CMakeLists lists the .S files of the architecture but never
 * assembles them), and tests/unit/x86_64/test_guard.c assembles this file with `cc -c` at test
 * time and compares bytes and symbol offsets, so the two never drift.
 *
 * How the array in guard.c was produced (as for safety_template.S):
 *   cc -c guard_template.S -o g.o
 *   objdump -d -M intel --insn-width=16 g.o | awk -F'\t' '/^ +[0-9a-f]+:\t/ {
 *     gsub(/ +$/, "", $2); gsub(/ /, ", 0x", $2); sub(/ <[^>]*>/, "", $3); printf "\t0x%s, /" "* %s *" "/\n", $2, $3 }'
 *   nm g.o   (the diag_guard_* offsets, absolute symbols)
 *
 * Contract: installed as an SA_SIGINFO handler for SIGSEGV and SIGBUS (rdi = signo, rsi =
 * siginfo, rdx = ucontext). A fault of the instruction at pc = uc.rip (si_code > 0, and not
 * SIGBUS's BUS_MCEERR_AO, which the kernel sends about some other page) whose fault address is
 * not in pc's own page (an instruction fetch: pc's page may not be readable) is a capture's when
 * the slot S = pc & ~4095 starts with the header of arch/trampoline.h ("Capture trampolines")
 * whose magic is DIAG_TRAMP_SLOT_MAGIC ^ S, and pc - S is tp_load (nonzero: the thread
 * pointer's load from %fs:0, which faults in a thread without TLS yet; landing tp_resume, and
 * uc.r14 = 0, the thread pointer it could not read), or lies in [cond_lo, cond_hi) (landing
 * cond_landing) or else in [value_lo, value_hi) (value_landing), with a landing in [64, 4096).
 * Then it does what diag_tramp_fault_repair does to the registers: uc.rip = S + landing, nothing
 * else (but r14 for tp_load), and returns: the capture goes on at its landing (no record, or a
 * record flagged as faulted, the address it could not read being in the program's own address
 * register).
 * Reading the header is safe: pc's page holds the instruction that faulted on another page.
 * Anything else is chained to the action the target had before for that signal, exactly:
 *   a handler: with SA_RESETHAND the action becomes SIG_DFL first (as the kernel would have
 *     done at delivery); then tail-jumped to with rdi, rsi, rdx untouched (it returns through
 *     the frame's restorer; our action has its mask, SA_ONSTACK and SA_NODEFER);
 *   SIG_IGN: a signal sent by a process (si_code <= 0) is ignored; a fault gets the default,
 *     as the kernel gives an ignored forced signal;
 *   SIG_DFL: restore SIG_DFL and return: a fault runs the instruction again and faults again,
 *     killing with the right signal, siginfo and core; a sent signal is sent again with tgkill
 *     (pending until rt_sigreturn unblocks it).
 * Reads only siginfo, ucontext, the slot header and the data area below; writes only the
 * ucontext; uses no stack of its own, no vector registers, no string instructions; never blocks;
 * no libc. Position independent: every datum is reached rip-relative at a fixed offset from the
 * start, so the blob runs wherever it is copied. The daemon fills the data area (guard.h). */
	.intel_syntax noprefix
	.text
	.globl diag_guard_restorer, diag_guard_code_len, diag_guard_data
	.globl diag_guard_d_segv, diag_guard_d_bus, diag_guard_d_dfl, diag_guard_size

	/* The data area, after the code. */
	.set	diag_guard_data, 512
	.set	diag_guard_d_segv, diag_guard_data + 0	/* kernel sigaction: SIGSEGV's previous */
	.set	diag_guard_d_bus, diag_guard_data + 32	/* kernel sigaction: SIGBUS's previous */
	.set	diag_guard_d_dfl, diag_guard_data + 64	/* kernel sigaction: SIG_DFL, all zero */
	.set	diag_guard_size, diag_guard_data + 96

	.set	UC_R14, 88		/* offsetof(ucontext_t, uc_mcontext.gregs[REG_R14]) */
	.set	UC_RIP, 168		/* offsetof(ucontext_t, uc_mcontext.gregs[REG_RIP]) */
	.set	SI_CODE, 8		/* offsetof(siginfo_t, si_code) */
	.set	SI_ADDR, 16		/* offsetof(siginfo_t, si_addr) */
	.set	SIGBUS, 7
	.set	SIGSEGV, 11
	.set	BUS_MCEERR_AO, 5
	.set	SA_RESETHAND, 0x80000000
	.set	H_MAGIC, 0		/* struct diag_tramp_slot_header */
	.set	H_COND_LO, 8
	.set	H_COND_HI, 10
	.set	H_VALUE_LO, 12
	.set	H_VALUE_HI, 14
	.set	H_COND_LANDING, 16
	.set	H_VALUE_LANDING, 18
	.set	H_TP_LOAD, 20
	.set	H_TP_RESUME, 22
	.set	SLOT_CODE, 64		/* DIAG_TRAMP_SLOT_CODE: a landing is code */
	.set	SLOT, 4096		/* DIAG_TRAMP_SLOT: ... inside the slot */

start:
	/* r12d = 1 when the signal is a fault of the instruction at rip (kept for dfl) */
	xor	r12d, r12d
	mov	eax, dword ptr [rsi + SI_CODE]
	test	eax, eax
	jle	chain
	cmp	edi, SIGBUS
	jne	1f
	cmp	eax, BUS_MCEERR_AO
	je	chain
1:	inc	r12d
	mov	rax, [rdx + UC_RIP]
	mov	rcx, rax
	and	rcx, -4096			/* S */
	mov	r8, [rsi + SI_ADDR]
	mov	r9, r8
	and	r9, -4096
	cmp	r9, rcx
	je	chain				/* a fetch fault: pc's page may be unreadable */
	movabs	r9, 0x6f6c73706d617274		/* DIAG_TRAMP_SLOT_MAGIC */
	xor	r9, rcx
	cmp	[rcx + H_MAGIC], r9
	jne	chain
	sub	rax, rcx			/* pc - S */
	xor	r10d, r10d			/* 1: the thread pointer's load */
	movzx	r9d, word ptr [rcx + H_TP_LOAD]
	test	r9d, r9d
	jz	4f
	cmp	rax, r9
	jne	4f
	inc	r10d
	movzx	eax, word ptr [rcx + H_TP_RESUME]
	jmp	repair
4:	movzx	r9d, word ptr [rcx + H_COND_LO]
	cmp	rax, r9
	jb	2f
	movzx	r9d, word ptr [rcx + H_COND_HI]
	cmp	rax, r9
	jae	2f
	movzx	eax, word ptr [rcx + H_COND_LANDING]
	jmp	repair
2:	movzx	r9d, word ptr [rcx + H_VALUE_LO]
	cmp	rax, r9
	jb	chain
	movzx	r9d, word ptr [rcx + H_VALUE_HI]
	cmp	rax, r9
	jae	chain
	movzx	eax, word ptr [rcx + H_VALUE_LANDING]
repair:
	cmp	eax, SLOT_CODE
	jb	chain				/* a landing inside the header: not a slot we built */
	cmp	eax, SLOT
	jae	chain				/* nor one past the slot */
	test	r10d, r10d
	jz	5f
	mov	qword ptr [rdx + UC_R14], 0	/* no TLS yet: thread pointer 0 */
5:	add	rax, rcx
	mov	[rdx + UC_RIP], rax
	ret

chain:
	lea	r8, [rip + start + diag_guard_d_segv]
	cmp	edi, SIGSEGV
	je	3f
	lea	r8, [rip + start + diag_guard_d_bus]
3:	mov	rax, [r8]			/* sa_handler */
	cmp	rax, 1				/* SIG_IGN */
	je	ignored
	test	rax, rax			/* SIG_DFL */
	jz	dfl
	test	dword ptr [r8 + 8], SA_RESETHAND
	jnz	oneshot
	jmp	rax				/* its own handler, with our sig, info, uc */

oneshot:
	/* rt_sigaction(sig, &dfl, NULL, 8); syscall keeps all but rax, rcx, r11 */
	mov	r13, rsi
	mov	r14, rdx
	mov	r15, rax
	mov	eax, 13
	lea	rsi, [rip + start + diag_guard_d_dfl]
	xor	edx, edx
	mov	r10d, 8
	syscall
	mov	rsi, r13
	mov	rdx, r14
	jmp	r15

ignored:
	test	r12d, r12d
	jz	done				/* sent by a process: ignored, as before */

dfl:
	mov	r13d, edi			/* the signal */
	mov	eax, 13				/* rt_sigaction(sig, &dfl, NULL, 8) */
	lea	rsi, [rip + start + diag_guard_d_dfl]
	xor	edx, edx
	mov	r10d, 8
	syscall
	test	r12d, r12d
	jnz	done				/* a fault: it happens again, now with SIG_DFL */
	mov	eax, 39				/* getpid */
	syscall
	mov	r8, rax
	mov	eax, 186			/* gettid */
	syscall
	mov	esi, eax
	mov	edi, r8d
	mov	edx, r13d
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
	.set	diag_guard_restorer, restorer - start
	.set	diag_guard_code_len, end - start
