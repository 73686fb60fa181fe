/* arch/ring: layout of the hit ring that a jump trampoline fills INSIDE the target and the
 * daemon drains (from its own mapping of the same memfd, or with process_vm_readv/writev). The one contract between target code (the
 * architecture's trampoline template hard-codes these offsets) and the daemon; owns no code
 * (what a record's registers and tsc mean is arch/record.h).
 * Writers (target threads) never block or wait: a full ring drops the hit and counts it.
 *
 * Protocol. Writer: reserve index i by an atomic compare-and-swap on head (x86-64: lock
 * cmpxchg), unless head - tail > mask (full: an atomic increment of drops); fill record
 * i & mask; store seq = i + 1 LAST, with release order (x86-64 TSO: a plain store; a reader
 * that sees seq sees the rest). Reader (daemon), for i = tail: read the record; if
 * seq != i + 1 it is not yet published (a writer may also have died between reserve and
 * publish: the reader decides how long to wait before skipping); else consume it and then store tail = i + 1 (the slot may
 * be overwritten from then on). Only the daemon writes tail.
 *
 * Hit counters. Every trampoline first increments its site's u64 counter atomically, before the
 * reservation, so a counter is the exact number of hits even when records were dropped. The
 * counters follow the records in the same mapping: site s (1 .. DIAG_RING_MAX_SITES - 1) at
 * diag_ring_counter_offset(mask, s); map DIAG_RING_MAP_BYTES(capacity) to hold them. Counters
 * only grow; the daemon reads them, never writes them after creating the mapping (zeroed). A
 * trampoline built without a counter of its own (diag_tramp_build) counts into header.hits. */
#ifndef DIAG_ARCH_RING_H
#define DIAG_ARCH_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define DIAG_RING_RECORD_SIZE 192

struct diag_ring_header {      /* at the start of the ring mapping, 64-byte aligned fields */
	uint64_t head;             /* next index to reserve (writers: atomic compare-and-swap) */
	uint64_t hits;             /* hits of trampolines without a site counter (atomic inc) */
	uint64_t pad0[6];
	uint64_t tail;             /* next index the daemon will consume (daemon writes) */
	uint64_t pad1[7];
	uint64_t drops;            /* hits dropped because the ring was full (atomic inc) */
	uint64_t mask;             /* capacity - 1, capacity a power of two */
	uint64_t pad2[6];
};

/* x86-64: index of each register in diag_ring_record.regs (the order of the trampoline's
 * frame). Code outside lib/arch/ reads a record's registers with diag_record_regs
 * (arch/record.h). */
enum diag_ring_reg {
	DIAG_RING_R15, DIAG_RING_R14, DIAG_RING_R13, DIAG_RING_R12, DIAG_RING_RBP, DIAG_RING_RBX,
	DIAG_RING_R11, DIAG_RING_R10, DIAG_RING_R9, DIAG_RING_R8, DIAG_RING_RAX, DIAG_RING_RCX,
	DIAG_RING_RDX, DIAG_RING_RSI, DIAG_RING_RDI, DIAG_RING_RIP, DIAG_RING_RSP,
	DIAG_RING_EFLAGS, DIAG_RING_NREGS
};

struct diag_ring_record {      /* DIAG_RING_RECORD_SIZE bytes */
	uint64_t seq;              /* index + 1, written LAST (readers that see seq see the rest) */
	uint32_t site;             /* which probe site (immediate patched into the trampoline) */
	uint32_t tid;              /* gettid() */
	uint64_t tsc;              /* the cycle counter at the hit (x86-64: rdtsc) */
	/* the registers, values AT THE PROBED ADDRESS (pc = probed address, sp as the function
	 * saw it). x86-64: r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi rip rsp
	 * eflags (enum diag_ring_reg) */
	uint64_t regs[DIAG_RING_NREGS];
	uint64_t pad[(DIAG_RING_RECORD_SIZE - 24 - DIAG_RING_NREGS * 8) / 8];
};

/* Bytes of a ring mapping of `capacity` records (a power of two). */
#define DIAG_RING_BYTES(capacity) \
	(sizeof(struct diag_ring_header) + (size_t)(capacity) * DIAG_RING_RECORD_SIZE)

/* Site ids are 1 .. DIAG_RING_MAX_SITES - 1 (0 is never a site). */
#define DIAG_RING_MAX_SITES 4096

/* Bytes of a ring mapping of `capacity` records with the site counters after the records. */
#define DIAG_RING_MAP_BYTES(capacity) \
	(DIAG_RING_BYTES(capacity) + (size_t)DIAG_RING_MAX_SITES * sizeof(uint64_t))

/* Offset of site's u64 hit counter from the ring header, for a ring of mask + 1 records. */
static inline size_t diag_ring_counter_offset(uint64_t mask, uint32_t site)
{
	return DIAG_RING_BYTES(mask + 1) + (size_t)site * sizeof(uint64_t);
}

/* records at (char*)ring + sizeof(header) + (index & mask) * DIAG_RING_RECORD_SIZE */
static inline size_t diag_ring_record_offset(const struct diag_ring_header *h, uint64_t index)
{
	return sizeof(*h) + (size_t)(index & h->mask) * DIAG_RING_RECORD_SIZE;
}

/* The trampoline template encodes these numbers; they must never move. */
_Static_assert(sizeof(struct diag_ring_header) == 192, "ring header layout");
_Static_assert(offsetof(struct diag_ring_header, hits) == 8, "ring hits offset");
_Static_assert(offsetof(struct diag_ring_header, tail) == 64, "ring tail offset");
_Static_assert(offsetof(struct diag_ring_header, drops) == 128, "ring drops offset");
_Static_assert(offsetof(struct diag_ring_header, mask) == 136, "ring mask offset");
_Static_assert(sizeof(struct diag_ring_record) == DIAG_RING_RECORD_SIZE, "ring record size");
_Static_assert(offsetof(struct diag_ring_record, site) == 8, "ring record site offset");
_Static_assert(offsetof(struct diag_ring_record, tid) == 12, "ring record tid offset");
_Static_assert(offsetof(struct diag_ring_record, tsc) == 16, "ring record tsc offset");
_Static_assert(offsetof(struct diag_ring_record, regs) == 24, "ring record regs offset");

/* ==== Ring v2 (issue 10): per-thread sub-rings of variable-length records ====
 * Replaces the single ring above once the engine moves to diag_tramp_build_capture (the v1
 * structs then go). One mapping per process, a memfd shared with the daemon or an anonymous
 * private one (lib/engine/ring.c; each fork child has its own either way), laid out as:
 *   [control block, DIAG_RING_CONTROL_BYTES]
 *   [sub-ring 0: struct diag_ring_header (head, tail, drops and mask count 64-byte UNITS),
 *                then sub_units * DIAG_RING_UNIT bytes of records] ... [sub-ring nsubs-1]
 *   [counters: u64 per (sub-ring, site), at control.counters + (sub * DIAG_RING_MAX_SITES +
 *    site) * 8]
 * A thread writes only to one sub-ring: its slot's in the thread table (below), else
 * diag_ring_sub_of(thread pointer, hash_shift), so threads do not share cache lines unless
 * there are more of them than sub-rings, or two without a slot hash alike (still correct:
 * reservation is a compare-and-swap).
 * A site's exact hit count is the sum of its counters over the sub-rings.
 *
 * Writer, at a hit: count (atomic increment of its counter); if the condition program says
 * no, stop there; if the clock is at or past control.alive_until (the daemon stopped
 * refreshing it: dead or stopped), increment drops and stop. Else reserve k = units of the record (header + the value
 * program's max_payload, rounded up): off = head & mask; when off + k > sub_units the record
 * cannot wrap, so reserve pad = sub_units - off units more in front of it; full when
 * head + pad + k - tail > sub_units (increment drops, stop). Reserve by compare-and-swap of
 * head. A pad writes only the first 16 bytes of a record at off (seq = head + 1, site 0,
 * units = pad) and is published like a record. Fill the record, store seq LAST (release).
 * Reader: at tail, a record whose seq != tail + 1 is not published yet; else consume it
 * (site 0: skip) and advance tail by its units. */
#define DIAG_RING_UNIT 64
#define DIAG_RING_MAX_SUBS 64
#define DIAG_RING_CONTROL_BYTES 4096
#define DIAG_RING_MAGIC_V2 0x32676e6972676164ULL /* "diagring2" */
#define DIAG_RING_MIN_SUB_UNITS 512               /* the largest record fits in any sub-ring */

struct diag_ring_control {
	uint64_t magic;            /* DIAG_RING_MAGIC_V2 */
	uint64_t nsubs;            /* sub-rings, a power of two, 1 .. DIAG_RING_MAX_SUBS */
	uint64_t sub_units;        /* units of each sub-ring's data area, a power of two */
	uint64_t sub_stride;       /* bytes from one sub-ring's header to the next */
	uint64_t counters;         /* offset of the counters from the mapping's start */
	uint64_t alive_until;      /* record only while the clock (rdtsc) is below this: the
	                            * daemon pushes it forward at every drain (heartbeat) */
	uint64_t hash_shift;       /* 64 - log2(nsubs) (64 when nsubs == 1: sub-ring 0) */
	uint64_t pad[1];
};
_Static_assert(sizeof(struct diag_ring_control) == 64, "ring control layout");

enum diag_rec_flag {
	DIAG_REC_FAULT = 1,        /* the value program stopped at fault_addr */
	DIAG_REC_ABORT = 2,        /* the value program stopped at a division by zero */
	DIAG_REC_EXIT = 4,         /* recorded by an exit trampoline (at a ret or tail call) */
	DIAG_REC_RETSITE = 8,      /* with EXIT: recorded at a return address (a return site): the
	                            * frame returning there had sp - 8 at its exit */
	DIAG_REC_SLIM = 16,        /* the slim layout (struct diag_ring_slim): a subset of the
	                            * registers, the payload after them */
};

struct diag_ring_rec {         /* DIAG_RING_REC_HDR bytes, then payload_len bytes of blocks */
	uint64_t seq;              /* start unit index + 1, written last */
	uint32_t site;             /* 0: padding, skip `units` */
	uint16_t units;            /* the whole record, header included */
	uint16_t flags;            /* enum diag_rec_flag */
	uint64_t tsc;              /* the cycle counter at the hit */
	uint64_t thread;           /* the thread pointer (x86-64: the fs base), the daemon maps it
	                            * to a tid; no system call on the hit path */
	uint64_t fault_addr;       /* DIAG_REC_FAULT */
	uint64_t regs[DIAG_RING_NREGS]; /* as in diag_ring_record: at the probed address, or for
	                            * an exit trampoline at the terminating instruction (ret/jmp) */
	uint32_t payload_len;      /* bytes of blocks (arch/capture.h) after the header */
	uint32_t pad;
};
#define DIAG_RING_REC_HDR 192
_Static_assert(sizeof(struct diag_ring_rec) == DIAG_RING_REC_HDR, "ring v2 record header");
_Static_assert(offsetof(struct diag_ring_rec, regs) == 40, "ring v2 regs offset");

/* The slim record (DIAG_REC_SLIM): the same first 40 bytes, then only the registers the
 * site's expressions and the daemon's pairing read (the trampoline knows them when it is
 * built: expr.h, diag_expr_capture.regs), so a `log $arg1` record is one 64-byte unit instead
 * of three and a ring holds three times the events. regmask bit i (enum diag_ring_reg): regs[i]
 * is present; they follow in index order, the payload after them. A register a slim record
 * lacks reads as 0: only the site's own expressions are evaluated on it. */
struct diag_ring_slim {
	uint64_t seq;
	uint32_t site;
	uint16_t units;
	uint16_t flags;            /* DIAG_REC_SLIM set */
	uint64_t tsc;
	uint64_t thread;
	uint64_t fault_addr;
	uint32_t regmask;          /* bits below DIAG_RING_NREGS */
	uint32_t payload_len;
	/* uint64_t regs[popcount(regmask)], then payload_len bytes of blocks */
};
#define DIAG_RING_SLIM_HDR 48
_Static_assert(sizeof(struct diag_ring_slim) == DIAG_RING_SLIM_HDR, "ring v2 slim record header");
_Static_assert(offsetof(struct diag_ring_slim, regmask) == 40 &&
	       offsetof(struct diag_ring_slim, payload_len) == 44, "ring v2 slim layout");

/* Bytes before the payload of a record with this layout. */
static inline uint32_t diag_ring_rec_hdr_bytes(uint16_t flags, uint32_t regmask)
{
	if (!(flags & DIAG_REC_SLIM))
		return DIAG_RING_REC_HDR;
	uint32_t n = 0; /* a few bits set: a loop beats libgcc's __popcountdi2 (no -mpopcnt) */
	for (uint32_t m = regmask & ((1u << DIAG_RING_NREGS) - 1); m; m &= m - 1)
		n++;
	return DIAG_RING_SLIM_HDR + 8u * n;
}

/* Where the payload of the record at rec (bytes long, a copy the target cannot change) is:
 * *off from rec, and the *len its header claims (the caller bounds it by bytes - *off); false
 * when the header itself does not fit in bytes. */
static inline bool diag_ring_rec_payload(const void *rec, size_t bytes, uint32_t *off,
					  uint32_t *len)
{
	const unsigned char *p = rec;
	uint16_t flags;
	uint32_t mask = 0, plen;
	memcpy(&flags, p + offsetof(struct diag_ring_rec, flags), sizeof(flags));
	if (flags & DIAG_REC_SLIM)
		memcpy(&mask, p + offsetof(struct diag_ring_slim, regmask), sizeof(mask));
	*off = diag_ring_rec_hdr_bytes(flags, mask);
	*len = 0;
	if (bytes < *off)
		return false;
	memcpy(&plen, p + (flags & DIAG_REC_SLIM ? offsetof(struct diag_ring_slim, payload_len)
							   : offsetof(struct diag_ring_rec, payload_len)),
			 sizeof(plen));
	*len = plen;
	return true;
}

/* Units a slim record of nregs registers and a value program of max_payload bytes reserves. */
static inline uint64_t diag_ring_slim_units(uint32_t nregs, uint32_t max_payload)
{
	return (DIAG_RING_SLIM_HDR + 8ull * nregs + max_payload + DIAG_RING_UNIT - 1) / DIAG_RING_UNIT;
}

/* Sub-ring of a thread without a slot of its own (below): Fibonacci hashing of its thread
 * pointer's page. The page, not the pointer: glibc's thread control blocks sit at one offset in
 * stacks 8 MiB + 4 KiB apart, and the pointer itself hashed 16 live threads to 5 of 16
 * sub-rings (4 threads to 3 of 4); its page number spreads them over 15 of 16 (4 of 4) in the
 * layout measured, but as ASLR moves the stacks, 4 threads still share a sub-ring in 12% of
 * runs (half the buffer for each of two threads). */
#define DIAG_RING_HASH_MUL 0x9E3779B97F4A7C15ULL
static inline uint64_t diag_ring_sub_of(uint64_t thread, uint64_t hash_shift)
{
	return hash_shift >= 64 ? 0 : ((thread >> 12) * DIAG_RING_HASH_MUL) >> hash_shift;
}

/* The thread table, in the control block after struct diag_ring_control: DIAG_RING_TP_SLOTS
 * slots, a thread pointer's at diag_ring_tp_slot(thread). A thread whose slot holds its own
 * thread pointer writes the sub-ring the slot names; any other thread the hashed one. The
 * daemon fills a thread's slot only while the thread is stopped and before it has recorded
 * anything in this ring (at the ring's mapping, every thread stopped; at a new thread's
 * first stop), so a thread's records are all in one sub-ring, in order; it gives the least
 * used sub-ring, so threads share one only when there are more threads than sub-rings. */
#define DIAG_RING_TP_TABLE 64  /* offset in the control block */
#define DIAG_RING_TP_BITS 7
#define DIAG_RING_TP_SLOTS (1u << DIAG_RING_TP_BITS)
struct diag_ring_tpslot {
	uint64_t thread;           /* 0: free */
	uint64_t sub;              /* < nsubs (a bigger one sends the hit nowhere: not counted) */
};
_Static_assert(DIAG_RING_TP_TABLE + DIAG_RING_TP_SLOTS * sizeof(struct diag_ring_tpslot) <=
	       DIAG_RING_CONTROL_BYTES, "the thread table fits the control block");

static inline uint64_t diag_ring_tp_slot(uint64_t thread)
{
	return ((thread >> 12) * DIAG_RING_HASH_MUL) >> (64 - DIAG_RING_TP_BITS);
}

/* Units a record with a value program of max_payload bytes reserves. */
static inline uint64_t diag_ring_rec_units(uint32_t max_payload)
{
	return (DIAG_RING_REC_HDR + (uint64_t)max_payload + DIAG_RING_UNIT - 1) / DIAG_RING_UNIT;
}

#endif
