/* fastpath: probes that cost the target no stop. A probe whose value and condition need only
 * registers is placed as a jump to a trampoline that records the registers into a ring in the
 * target's own memory; the daemon drains the ring on a timer and runs the same capture plans
 * on the recorded registers. A full ring drops hits (counted); a dead daemon costs the target
 * nothing but a full ring. Everything else (memory reads, SSE, tiny functions, code that
 * branches into the patched bytes, seccomp-filtered targets) takes an int3. Owns placing and
 * demoting jumps, the ring (mapping, draining, counters) and the TSC calibration; a record is
 * served by hit.c (capture and fire, below this file), its registers and clock read through
 * arch/record.h. Never stops a thread but through stop.c's freeze. */
#include "engine/engine_internal.h"
#include "util/clock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include "arch/branch.h"
#include "arch/record.h"
#include "arch/ring.h"

#define MAX_SCAN (256 * 1024)    /* longest function scanned for branches into a patch */
#define DRAIN_BATCH 256
#define STALL_SKIP 1000          /* drains before an unpublished record is given up */
#define RETURN_EVERY 4096        /* records consumed between stores of the ring's tail */

static int seccomp_mode(pid_t pid)
{
	unsigned long long mode;
	return diag_proc_status_field(pid, "Seccomp", 10, &mode) ? (int)mode : -1;
}

static bool site_registers_only(const struct site *s)
{
	return diag_expr_registers_only(s->value) && diag_expr_registers_only(s->condition);
}

/* A jump covering [addr, addr+span) must not hide another breakpoint, nor lie in another jump. */
static bool range_free(const struct diag_bptable *t, uint64_t addr, size_t span)
{
	for (size_t i = 1; i < span; i++)
		if (diag_bp_at(t, addr + i))
			return false;
	return !eng_bp_in_jump(t, addr);
}

static int branches_into(struct eproc *ep, const struct diag_location *loc, size_t span)
{
	size_t len = loc->func_end - loc->func_start;
	if (len > MAX_SCAN)
		return 1;
	uint8_t *code = malloc(len);
	if (!code)
		return 1;
	int r = diag_proc_read(ep->tp, loc->func_start, code, len) == (ssize_t)len
			? diag_branch_into(code, len, loc->func_start, loc->addr, loc->addr + span)
			: 1;
	free(code);
	return r != 0;
}

/* Records of a ring of e->ring_bytes: a power of two (3 MiB by default: 16384 records). */
static uint64_t ring_capacity(const struct diag_engine *e)
{
	uint64_t n = 1;
	while (n * 2 * DIAG_RING_RECORD_SIZE <= e->ring_bytes)
		n *= 2;
	return n;
}

static int ring_map(struct diag_engine *e, struct eproc *ep, struct diag_thread *t)
{
	uint64_t cap = ring_capacity(e);
	size_t bytes = DIAG_RING_MAP_BYTES(cap);
	long args[6] = {0, (long)bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0};
	long ret;
	int r = diag_thread_syscall(t, SYS_mmap, args, &ret);
	if (r < 0)
		return r;
	if (ret < 0 && ret > -4096)
		return (int)ret;
	struct diag_ring_header h = {.mask = cap - 1};
	if (diag_proc_write(ep->tp, (uint64_t)ret, &h, sizeof(h)) < 0) {
		long un[6] = {ret, (long)bytes, 0, 0, 0, 0};
		diag_thread_syscall(t, SYS_munmap, un, &ret);
		return -EIO;
	}
	ep->ring_addr = (uint64_t)ret;
	eng_journal_map(ep, ep->ring_addr, bytes, "ring");
	ep->ring_mask = cap - 1;
	ep->ring_tail = 0;
	return 0;
}

void eng_fast_unmap(struct eproc *ep, struct diag_thread *t)
{
	if (ep->ring_addr && t) {
		long args[6] = {(long)ep->ring_addr, (long)DIAG_RING_MAP_BYTES(ep->ring_mask + 1), 0, 0,
				0, 0},
		     ret;
		diag_thread_syscall(t, SYS_munmap, args, &ret);
	}
	ep->ring_addr = 0;
	diag_u64map_release(&ep->jumps);
}

uint64_t eng_fast_count(struct eproc *mem, const struct diag_bp *bp)
{
	uint64_t n = 0;
	if (bp->jump && mem->ring_addr)
		diag_proc_read(mem->tp, mem->ring_addr + diag_ring_counter_offset(mem->ring_mask,
										   bp->site_id),
			       &n, sizeof(n));
	return n;
}

uint64_t eng_fast_site_count(struct eproc *mem, const struct site *s)
{
	uint64_t n = s->bp && s->bp->jump ? eng_fast_count(mem, s->bp) : 0;
	return n > s->fast_base ? n - s->fast_base : 0;
}

void eng_fast_forget(struct eproc *mem, struct diag_bp *bp)
{
	if (bp->jump)
		diag_u64map_del(&mem->jumps, bp->site_id);
}

void eng_fast_timer(struct diag_engine *e)
{
	bool want = false;
	size_t pos = 0;
	uint64_t k;
	void *v;
	while (!want && diag_u64map_next(&e->procs, &pos, &k, &v))
		want = ((struct eproc *)v)->ring_addr != 0;
	eng_wake_arm(e, want); /* its period adapts to the rings' fill (wake.c) */
}

/* Why a site cannot be a jump, for the caller to fall back to an int3 (returns 1). */
static int eligible(struct diag_engine *e, struct eproc *ep, struct site *s,
		    const struct diag_location *loc)
{
	if (e->no_fast || ep->tp->mem_owner || s->pr->event != DIAG_EVENT_CALL ||
	    !site_registers_only(s))
		return 1;
	if (ep->seccomp < 0)
		ep->seccomp = seccomp_mode(ep->tp->pid);
	/* the trampoline calls gettid: a seccomp filter might kill the target for it */
	if (ep->seccomp != 0)
		return 1;
	if (!loc->func_end || loc->func_end - loc->addr < 5)
		return 1;
	/* an inlined copy's bounds are its own range, not its caller's: branches from the rest
	 * of the caller into the patched bytes could not be ruled out */
	if (loc->kind == DIAG_LOC_INLINED)
		return 1;
	return 0;
}

/* Every stopped thread out of (lo, hi), the bytes the jump replaces (at lo itself a thread
 * just runs the jump). A thread of a hot function is often caught inside: a few single steps
 * take it out, rather than giving up the jump for an int3 that costs 50 times more per hit.
 * False if one cannot be moved out. */
static bool threads_out_of(struct eproc *ep, uint64_t lo, uint64_t hi)
{
	size_t pos = 0;
	uint64_t k;
	void *v;
	while (diag_u64map_next(&ep->tp->threads, &pos, &k, &v)) {
		struct diag_thread *t = v;
		diag_regs r;
		for (int steps = 0; t->stopped; steps++) {
			if (diag_regs_read(t->tid, &r) < 0 || diag_regs_pc(&r) <= lo ||
			    diag_regs_pc(&r) >= hi)
				break;
			if (steps == 16 || diag_thread_step(t) < 0)
				return false;
		}
	}
	return true;
}

/* A probe that needs a stop joins a fast-path address: turn the jump into an int3 that serves
 * every probe there. Returns 1 (use the int3) or a negative code. */
static int demote(struct diag_engine *e, struct eproc *ep, struct diag_bp *jump,
		  struct diag_error *err)
{
	size_t n = jump->nusers;
	void **users = malloc((n ? n : 1) * sizeof(*users));
	if (!users)
		return diag_error_set(err, -ENOMEM, "out of memory");
	memcpy(users, jump->users, n * sizeof(*users));
	uint64_t addr = jump->addr;
	struct diag_thread *t = eng_freeze(e, ep);
	if (!t) {
		free(users);
		return diag_error_set(err, -DIAG_E_GONE, "process %d exited", (int)ep->tp->pid);
	}
	eng_fast_forget(ep, jump);
	/* original bytes back, every thread stopped; code the target rewrote gets no int3 */
	struct diag_bp *bp = NULL;
	int r = diag_bp_destroy(&ep->bps, ep->tp, jump) == DIAG_BP_LEFT
			? diag_error_set(err, -DIAG_E_STATE,
					 "0x%llx: the target rewrote the patched bytes; not patched again",
					 (unsigned long long)addr)
			: diag_bp_get(&ep->bps, ep->tp, t, addr, &bp, err);
	for (size_t i = 0; i < n; i++) {
		struct site *u = users[i];
		u->bp = NULL;
		if (r == 0 && diag_bp_add_user(bp, u) == 0)
			u->bp = bp;
	}
	eng_thaw(e, ep);
	free(users);
	return r < 0 ? r : 1;
}

int eng_fast_place(struct diag_engine *e, struct eproc *ep, struct site *s,
		     const struct diag_location *loc, struct diag_error *err)
{
	struct diag_bp *bp = diag_bp_at(&ep->bps, loc->addr);
	if (bp && !bp->jump)
		return 1; /* share the int3 already there */
	if (!bp && eligible(e, ep, s, loc))
		return 1;
	if (bp) {
		if (!site_registers_only(s) || s->pr->event != DIAG_EVENT_CALL)
			return demote(e, ep, bp, err); /* then share an int3 */
		s->bp = bp;
		/* the hits before it are not this probe's: neither counted nor delivered */
		s->fast_base = eng_fast_count(ep, bp);
		struct diag_ring_header h;
		if (diag_proc_read(ep->tp, ep->ring_addr, &h, sizeof(h)) == (ssize_t)sizeof(h))
			s->fast_seq0 = h.head;
		return diag_bp_add_user(bp, s) < 0 ? diag_error_set(err, -ENOMEM, "out of memory")
						   : 0;
	}
	size_t room = loc->func_end - loc->addr;
	struct diag_error quiet = {0};
	int span = diag_bp_jump_span(ep->tp, loc->addr, room, &quiet);
	if (span <= 0 || (size_t)span > room || !range_free(&ep->bps, loc->addr, (size_t)span) ||
	    branches_into(ep, loc, (size_t)span))
		return 1;
	struct diag_thread *t = eng_freeze(e, ep);
	if (!t)
		return diag_error_set(err, -DIAG_E_GONE, "process %d exited", (int)ep->tp->pid);
	int r = 1;
	if (threads_out_of(ep, loc->addr, loc->addr + (uint64_t)span) &&
	    (ep->ring_addr || ring_map(e, ep, t) == 0)) {
		uint32_t id = ++ep->next_site;
		r = id < DIAG_RING_MAX_SITES
			    ? diag_bp_make_jump(&ep->bps, ep->tp, t, loc->addr, room, ep->ring_addr,
						ep->ring_mask, id, &bp, &quiet)
			    : 1; /* out of counters: int3 from here on */
		if (r == 0 && diag_u64map_put(&ep->jumps, id, bp) < 0) {
			diag_bp_destroy(&ep->bps, ep->tp, bp);
			r = 1;
		}
		if (r == 0 && diag_bp_add_user(bp, s) < 0) {
			diag_u64map_del(&ep->jumps, id);
			diag_bp_destroy(&ep->bps, ep->tp, bp);
			r = 1;
		}
		if (r == 0)
			s->bp = bp;
		else
			r = 1; /* an int3 will do */
	}
	eng_thaw(e, ep);
	eng_fast_timer(e);
	return r;
}

/* ---- draining ---- */

static uint64_t tsc_to_ns(struct diag_engine *e, uint64_t tsc)
{
	if (e->tsc1 <= e->tsc0)
		return e->ns1;
	double slope = (double)(e->ns1 - e->ns0) / (double)(e->tsc1 - e->tsc0);
	return e->ns0 + (uint64_t)((double)((int64_t)(tsc - e->tsc0)) * slope);
}

static void calibrate(struct diag_engine *e)
{
	uint64_t ns = (uint64_t)diag_clock_wall_ns(), tsc = diag_record_ticks();
	if (!e->ns0) {
		e->ns0 = e->ns1 = ns;
		e->tsc0 = e->tsc1 = tsc;
	} else if (ns - e->ns1 > 10000000ULL) {
		e->ns1 = ns;
		e->tsc1 = tsc;
	}
}

static ssize_t no_memory(void *arg, uint64_t addr, void *buf, size_t len)
{
	(void)arg;
	(void)addr;
	(void)buf;
	(void)len;
	return -EPERM; /* fast-path expressions never read memory */
}

static void consume(struct diag_engine *e, struct eproc *ep, const struct diag_ring_record *rec)
{
	struct diag_bp *bp = diag_u64map_get(&ep->jumps, rec->site);
	if (!bp)
		return; /* its probe was removed after the hit */
	/* The ring is ep's, so the hit is ep's, or a vfork child's running on ep's memory; a
	 * thread of another process that reuses the tid of one gone is neither. */
	struct diag_thread *t = diag_u64map_get(&e->threads, rec->tid);
	if (t && eproc_mem(eproc_of(t->proc)) != ep)
		t = NULL;
	pid_t pid = t ? t->proc->pid : ep->tp->pid;
	diag_regs regs;
	diag_record_regs(rec, &regs);
	uint64_t ts = tsc_to_ns(e, rec->tsc);
	/* $comm: the name the thread has now (within the drain period); a thread already gone
	 * has none */
	struct diag_expr_ctx ctx = {.pid = pid, .tid = (pid_t)rec->tid, .regs = &regs,
				    .read_mem = no_memory, .time_ns = ts,
				    .comm = t ? diag_thread_comm(t) : ""};
	struct site *small[8], **fired = small;
	if (bp->nusers > 8 && !(fired = malloc(bp->nusers * sizeof(*fired))))
		return;
	size_t n = eng_capture(e, NULL, bp, &ctx, rec->seq, fired);
	eng_fire(e, t, pid, (pid_t)rec->tid, fired, n, ts);
	if (fired != small)
		free(fired);
}

/* Store the consumed tail into the ring; returns it. */
static uint64_t ring_give_back(struct eproc *ep)
{
	uint64_t tail = ep->ring_tail;
	diag_proc_write(ep->tp, ep->ring_addr + 64, &tail, sizeof(tail));
	return tail;
}

void eng_fast_drain(struct diag_engine *e, struct eproc *ep)
{
	if (!ep->ring_addr)
		return;
	calibrate(e);
	struct diag_ring_header h;
	if (diag_proc_read(ep->tp, ep->ring_addr, &h, sizeof(h)) != sizeof(h))
		return;
	uint64_t head = h.head;
	if (h.drops > ep->ring_drops)
		e->dropped += h.drops - ep->ring_drops;
	ep->ring_drops = h.drops;
	static const size_t hdr = sizeof(struct diag_ring_header);
	struct diag_ring_record *batch = malloc(DRAIN_BATCH * sizeof(*batch));
	if (!batch)
		return;
	uint64_t start = ep->ring_tail, from = start;
	while (ep->ring_tail < head) {
		uint64_t idx = ep->ring_tail, slot = idx & ep->ring_mask;
		size_t n = head - idx;
		if (n > DRAIN_BATCH)
			n = DRAIN_BATCH;
		if (n > ep->ring_mask + 1 - slot)
			n = ep->ring_mask + 1 - slot; /* up to the end of the ring */
		if (diag_proc_read(ep->tp, ep->ring_addr + hdr + slot * DIAG_RING_RECORD_SIZE, batch,
				   n * DIAG_RING_RECORD_SIZE) != (ssize_t)(n * DIAG_RING_RECORD_SIZE))
			break;
		size_t i = 0;
		for (; i < n; i++) {
			if (batch[i].seq != idx + i + 1)
				break;
			consume(e, ep, &batch[i]);
		}
		ep->ring_tail = idx + i;
		if (i < n) {
			/* a writer is between reserving and publishing; one that died there (a
			 * thread killed mid-record) would block the ring: skip it eventually */
			if (++ep->ring_stalls > STALL_SKIP) {
				ep->ring_tail++;
				ep->ring_stalls = 0;
			}
			break;
		}
		ep->ring_stalls = 0;
		/* give the slots back as they are consumed, not at the end: a drain of a long
		 * backlog takes tens of ms, and the writers would find the ring full meanwhile */
		if (ep->ring_tail - start >= RETURN_EVERY)
			start = ring_give_back(ep);
	}
	free(batch);
	eng_wake_note(e, head - from, ep->ring_mask + 1);
	if (ep->ring_tail != start)
		ring_give_back(ep);
}

void eng_fast_fork(struct diag_engine *e, struct eproc *child, struct eproc *parent)
{
	(void)e;
	if (!parent->ring_addr || child->tp->mem_owner)
		return;
	child->ring_addr = parent->ring_addr;
	child->ring_mask = parent->ring_mask;
	child->next_site = parent->next_site;
	/* the child's copy holds the parent's unconsumed records: they are the parent's */
	uint64_t head = 0;
	diag_proc_read(child->tp, child->ring_addr, &head, sizeof(head));
	child->ring_tail = head;
	diag_proc_write(child->tp, child->ring_addr + 64, &head, sizeof(head));
	size_t pos = 0;
	uint64_t k;
	void *v;
	while (diag_u64map_next(&child->bps.by_addr, &pos, &k, &v)) {
		struct diag_bp *bp = v;
		if (bp->jump)
			diag_u64map_put(&child->jumps, bp->site_id, bp);
	}
}
