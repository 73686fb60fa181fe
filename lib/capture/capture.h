/* capture: what a capture program (arch/capture.h) means and what it leaves behind, in plain
 * C: the checker every program passes before an architecture compiles it, the reference
 * interpreter that defines each op (the tests hold every architecture's compiled code to it),
 * and the snapshot reader that serves an evaluation in the daemon from the blocks a value
 * program wrote into a ring record. Owns no process and no machine register: reads only the
 * buffers and callbacks it is given. */
#ifndef DIAG_CAPTURE_H
#define DIAG_CAPTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "arch/capture.h"
#include "arch/regs.h"
#include "util/error.h"

enum diag_cap_kind { DIAG_CAP_CONDITION, DIAG_CAP_VALUE };

/* FPREG and SAVE_FPREG name vector registers 0 .. DIAG_CAP_NFPREGS - 1 (arch/capture.h: the
 * ones a capture trampoline saves). */
#define DIAG_CAP_NFPREGS 8

/* Whether REG may read the register at byte offset off of diag_regs: one a record holds
 * (arch/record.h: the trampoline's frame), so the target's value and the daemon's agree. */
bool diag_cap_reg_saved(uint32_t off);

/* Returns 0 when p is well formed for kind: known ops and operands, forward jumps inside the
 * program, the stack depth the same on every path into an op and within DIAG_CAP_MAX_STACK,
 * no SAVE op in a condition, the END it needs, max_payload no less than what the SAVE ops can
 * write and at most DIAG_CAP_MAX_PAYLOAD. Else -DIAG_E_INVALID naming the op index. */
int diag_cap_check(const struct diag_cap_prog *p, enum diag_cap_kind kind, struct diag_error *err);

enum diag_cap_outcome {
	DIAG_CAP_DONE,     /* value: ran to END; condition: true */
	DIAG_CAP_FALSE,    /* condition: false (also after a fault or an abort) */
	DIAG_CAP_FAULTED,  /* value: stopped at *fault_addr */
	DIAG_CAP_ABORTED,  /* value: stopped at a division by zero */
};

struct diag_cap_env {
	const diag_regs *regs;
	const diag_fpregs *fpregs;  /* may be NULL: FPREG reads 0 */
	/* returns bytes read (short at an unmapped page) or -errno, like process_vm_readv */
	ssize_t (*read_mem)(void *arg, uint64_t addr, void *buf, size_t len);
	void *arg;
};

/* Run a checked program as the target would. A value program appends blocks to payload (cap
 * bytes, at least p->max_payload) and sets *payload_len; a fault sets *fault_addr. */
enum diag_cap_outcome diag_cap_run(const struct diag_cap_prog *p, enum diag_cap_kind kind,
				   const struct diag_cap_env *env, uint8_t *payload, size_t cap,
				   uint32_t *payload_len, uint64_t *fault_addr);

/* The memory and vector registers a record's payload holds, for diag_expr_eval's read_mem and
 * read_fpregs. Hostile input: every block is bounds-checked (a malformed payload reads as
 * nothing captured). */
struct diag_cap_snapshot {
	const uint8_t *payload;
	uint32_t len;
	bool faulted;              /* DIAG_REC_FAULT: the last block is cut at fault_addr */
	uint64_t fault_addr;
};

void diag_cap_snapshot_init(struct diag_cap_snapshot *s, const uint8_t *payload, uint32_t len,
			    bool faulted, uint64_t fault_addr);
/* The snapshot of a ring v2 record (arch/ring.h) whose bytes, header included, are the avail
 * bytes at rec: payload_len bounded by them (hostile), DIAG_REC_FAULT and fault_addr from the
 * header. */
struct diag_ring_rec;
void diag_cap_snapshot_of_rec(struct diag_cap_snapshot *s, const struct diag_ring_rec *rec, size_t avail);
/* read_mem over the MEM blocks: the bytes from addr on as far as captured blocks cover them
 * contiguously (a short count where they stop), -EFAULT when no block holds addr. */
ssize_t diag_cap_snapshot_read(void *snapshot, uint64_t addr, void *buf, size_t len);
/* read_fpregs from the FPREG blocks (registers not captured read 0). Returns 0. */
int diag_cap_snapshot_fpregs(void *snapshot, diag_fpregs *out);

#endif
