/* fastpath: probes that cost the target no stop. A probe whose value and condition compile
 * into capture programs (expr.h, diag_expr_capture_compile) is placed as a jump to a capture
 * trampoline in a slot page of its own near the probed code; the trampoline counts the hit,
 * runs the condition, captures what the value will read and records it into the ring v2
 * mapping in the target (arch/ring.h: a control block, per-thread sub-rings, counters). No
 * system call on the hit path: the thread is named by its thread pointer, which the daemon
 * maps to a tid (learnt while threads are stopped). The daemon drains every sub-ring on a
 * timer and evaluates each record's expressions again from the captured blocks
 * (diag_cap_snapshot), so both paths render alike. A full sub-ring drops hits (counted); a
 * dead daemon stops refreshing the heartbeat (control.alive_until) and the trampolines stop
 * recording. Whatever cannot take a jump takes an int3, and the site says why (s->why).
 * Owns placing, rebuilding, demoting and retiring jumps, slot pages, the ring (mapping,
 * draining, counters, heartbeat), thread pointers, fault repair in slots and the TSC
 * calibration; a record is served by hit.c (capture and fire) or exitjump.c (exits, returns).
 * Never stops a thread but through stop.c's freeze. */
#include "engine/engine_internal.h"
#include "util/clock.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "arch/branch.h"
#include "arch/record.h"
#include "capture/capture.h"
#include "util/grow.h"

#define MAX_SCAN (256 * 1024)    /* longest function scanned for branches into a patch */
#define STALL_SKIP 1000          /* drains before an unpublished record is given up */
#define READ_CHUNK (64 * 1024)   /* bytes of a sub-ring read at once (> the largest record) */
#define HEARTBEAT_NS 200000000ULL /* the target records for this long past the last drain */
#define RING_SUBS 16             /* sub-rings per process (threads hash to them) */
#define RETURN_EVERY 4096        /* units consumed between stores of a sub-ring's tail */
#define STEP_OUT 4096            /* single steps that may take a thread out of a slot */

_Static_assert(READ_CHUNK >= DIAG_RING_REC_HDR + DIAG_CAP_MAX_PAYLOAD + DIAG_RING_UNIT,
	       "a read chunk holds the largest record");

/* ---- the ring ---- */

static uint64_t sub_base(const struct eproc *ep, uint64_t sub)
{
	return ep->ring_addr + DIAG_RING_CONTROL_BYTES + sub * ep->ring_sub_stride;
}

static uint64_t counter_addr(const struct eproc *ep, uint64_t sub, uint32_t site)
{
	return ep->ring_addr + ep->ring_counters +
	       (sub * DIAG_RING_MAX_SITES + site) * sizeof(uint64_t);
}

static unsigned log2_of(uint64_t v)
{
	unsigned n = 0;
	while (v > 1) {
		v >>= 1;
		n++;
	}
	return n;
}

static uint64_t tsc_to_ns(struct diag_engine *e, uint64_t tsc)
{
	if (e->tsc1 <= e->tsc0)
		return e->ns1;
	double slope = (double)(e->ns1 - e->ns0) / (double)(e->tsc1 - e->tsc0);
	return e->ns0 + (uint64_t)((double)((int64_t)(tsc - e->tsc0)) * slope);
}

/* Ticks in ns nanoseconds; before two calibration points, as if the clock ran at 4 GHz
 * (a slower one makes the heartbeat last longer, never shorter than asked). */
static uint64_t ns_to_ticks(const struct diag_engine *e, uint64_t ns)
{
	if (e->tsc1 <= e->tsc0 || e->ns1 <= e->ns0)
		return ns * 4;
	return (uint64_t)((double)ns * (double)(e->tsc1 - e->tsc0) / (double)(e->ns1 - e->ns0));
}

/* A heartbeat's ticks: never fewer than at 4 GHz, whatever the calibration says. A point
 * taken across a preemption makes the early slope wrong (by the preemption over the 10 ms
 * baseline); one that undercounts the ticks would cut a 200 ms heartbeat to a fraction, and
 * every scheduling gap longer than that would stop the recording (now counted as drops). */
static uint64_t heartbeat_ticks(const struct diag_engine *e)
{
	uint64_t t = ns_to_ticks(e, HEARTBEAT_NS);
	return t > HEARTBEAT_NS * 4 ? t : HEARTBEAT_NS * 4;
}

static void calibrate(struct diag_engine *e)
{
	/* the clock read between two TSC reads close together: a pair not split by a preemption
	 * (one that was is skipped: a later drain takes the point) */
	uint64_t t0 = diag_record_ticks(), ns = (uint64_t)diag_clock_wall_ns();
	uint64_t tsc = diag_record_ticks();
	if (e->ns0 && tsc - t0 > 100000) /* 25-100 us at 1-4 GHz; the first point is needed */
		return;
	tsc = t0 + (tsc - t0) / 2;
	if (!e->ns0) {
		e->ns0 = e->ns1 = ns;
		e->tsc0 = e->tsc1 = tsc;
	} else if (ns - e->ns1 > 10000000ULL) {
		e->ns1 = ns;
		e->tsc1 = tsc;
	}
}

/* The target records while its TSC is below alive_until: a drain pushes it forward. */
static void heartbeat_for(struct eproc *ep, uint64_t ticks)
{
	uint64_t until = diag_record_ticks() + ticks;
	diag_proc_write(ep->tp, ep->ring_addr + offsetof(struct diag_ring_control, alive_until),
			&until, sizeof(until));
}

#define DL_BUSY_HEARTBEAT_NS 10000000000ULL

/* While a library's pending probes are placed the threads run between installs (each thaws
 * them) and a drain inside an install would cut the stretch eng_fast_keepalive gave: the
 * heartbeat lasts the placement; the drain after it (dynlink_apply.c) is back to normal. */
static void heartbeat(struct diag_engine *e, struct eproc *ep)
{
	if (ep->dl_busy)
		eng_fast_keepalive(e, ep, DL_BUSY_HEARTBEAT_NS);
	else
		heartbeat_for(ep, heartbeat_ticks(e));
}

void eng_fast_keepalive(struct diag_engine *e, struct eproc *ep, uint64_t ns)
{
	if (!ep->ring_addr)
		return;
	uint64_t t = ns_to_ticks(e, ns);
	heartbeat_for(ep, t > ns * 4 ? t : ns * 4);
}

/* e->ring_bytes split into sub-rings: up to RING_SUBS of them, each a power of two of units
 * and at least DIAG_RING_MIN_SUB_UNITS (the default, 16 MiB: 16 of 1 MiB). */
static void ring_geometry(const struct diag_engine *e, uint64_t *nsubs, uint64_t *units)
{
	uint64_t total = e->ring_bytes ? e->ring_bytes : DIAG_ENGINE_RING_DEFAULT;
	uint64_t n = RING_SUBS;
	while (n > 1 && total / n < DIAG_RING_MIN_SUB_UNITS * DIAG_RING_UNIT)
		n /= 2;
	uint64_t u = DIAG_RING_MIN_SUB_UNITS;
	while (u * 2 * DIAG_RING_UNIT <= total / n)
		u *= 2;
	*nsubs = n;
	*units = u;
}

static void slots_clear(struct eproc *ep)
{
	memset(ep->ring_slot_tp, 0, sizeof(ep->ring_slot_tp));
	memset(ep->ring_slot_tid, 0, sizeof(ep->ring_slot_tid));
	memset(ep->ring_slot_sub, 0, sizeof(ep->ring_slot_sub));
}

/* The sub-ring thread pointer tp writes: its slot's, else the hashed one (arch/ring.h). */
static uint64_t sub_of_tp(const struct eproc *ep, uint64_t tp)
{
	uint64_t slot = diag_ring_tp_slot(tp);
	if (ep->ring_slot_tp[slot] == tp)
		return ep->ring_slot_sub[slot];
	return diag_ring_sub_of(tp, ep->ring_nsubs > 1 ? 64 - log2_of(ep->ring_nsubs) : 64);
}

/* The sub-ring with the fewest threads in the table. */
static uint64_t least_used_sub(const struct eproc *ep)
{
	unsigned use[DIAG_RING_MAX_SUBS] = {0};
	for (size_t i = 0; i < DIAG_RING_TP_SLOTS; i++)
		if (ep->ring_slot_tp[i] && ep->ring_slot_sub[i] < ep->ring_nsubs)
			use[ep->ring_slot_sub[i]]++;
	uint64_t best = 0;
	for (uint64_t s = 1; s < ep->ring_nsubs; s++)
		if (use[s] < use[best])
			best = s;
	return best;
}

/* Give stopped thread t (thread pointer tp), which has recorded nothing in this ring, a slot of
 * its own; a slot another live thread holds leaves t on the hashed sub-ring. */
static void slot_assign(struct eproc *ep, struct diag_thread *t, uint64_t tp)
{
	uint64_t slot = diag_ring_tp_slot(tp);
	if (!ep->ring_addr || (ep->ring_slot_tp[slot] && ep->ring_slot_tp[slot] != tp))
		return;
	if (ep->ring_slot_tp[slot] == tp) { /* a stack reused: the thread before had this slot */
		ep->ring_slot_tid[slot] = t->tid;
		return;
	}
	struct diag_ring_tpslot ts = {.thread = tp, .sub = least_used_sub(ep)};
	if (diag_proc_write(ep->tp, ep->ring_addr + DIAG_RING_TP_TABLE + slot * sizeof(ts), &ts,
			    sizeof(ts)) != (ssize_t)sizeof(ts))
		return;
	ep->ring_slot_tp[slot] = tp;
	ep->ring_slot_tid[slot] = t->tid;
	ep->ring_slot_sub[slot] = (uint8_t)ts.sub;
}

/* t is gone: its slot (if it still holds it) is free for the next thread there. */
static void slot_release(struct eproc *ep, uint64_t tp, pid_t tid)
{
	uint64_t slot = diag_ring_tp_slot(tp);
	if (!ep->ring_addr || ep->ring_slot_tp[slot] != tp || ep->ring_slot_tid[slot] != tid)
		return;
	struct diag_ring_tpslot ts = {0};
	diag_proc_write(ep->tp, ep->ring_addr + DIAG_RING_TP_TABLE + slot * sizeof(ts), &ts,
			sizeof(ts));
	ep->ring_slot_tp[slot] = 0;
	ep->ring_slot_tid[slot] = 0;
}

static uint64_t learn(struct eproc *ep, struct diag_thread *t, bool *fresh);

static int ring_map(struct diag_engine *e, struct eproc *ep, struct diag_thread *t)
{
	uint64_t nsubs, units;
	ring_geometry(e, &nsubs, &units);
	uint64_t stride = (sizeof(struct diag_ring_header) + units * DIAG_RING_UNIT + 4095) &
			  ~4095ULL; /* each sub-ring on pages of its own: no line is shared */
	uint64_t counters = DIAG_RING_CONTROL_BYTES + nsubs * stride;
	uint64_t bytes = (counters + nsubs * DIAG_RING_MAX_SITES * sizeof(uint64_t) + 4095) &
			 ~4095ULL;
	long args[6] = {0, (long)bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0};
	long ret;
	int r = diag_thread_syscall(t, SYS_mmap, args, &ret);
	if (r < 0)
		return r;
	if (ret < 0 && ret > -4096)
		return (int)ret;
	calibrate(e);
	struct diag_ring_control c = {
		.magic = DIAG_RING_MAGIC_V2, .nsubs = nsubs, .sub_units = units,
		.sub_stride = stride, .counters = counters,
		.alive_until = diag_record_ticks() + heartbeat_ticks(e),
		.hash_shift = nsubs > 1 ? 64 - log2_of(nsubs) : 64,
	};
	ep->ring_addr = (uint64_t)ret;
	ep->ring_bytes = bytes;
	ep->ring_nsubs = nsubs;
	ep->ring_sub_units = units;
	ep->ring_sub_stride = stride;
	ep->ring_counters = counters;
	bool ok = diag_proc_write(ep->tp, ep->ring_addr, &c, sizeof(c)) == (ssize_t)sizeof(c);
	for (uint64_t i = 0; ok && i < nsubs; i++) {
		struct diag_ring_header h = {.mask = units - 1};
		ok = diag_proc_write(ep->tp, sub_base(ep, i), &h, sizeof(h)) == (ssize_t)sizeof(h);
		ep->ring_tails[i] = 0;
		ep->ring_stalls[i] = 0;
		ep->ring_sub_drops[i] = 0;
	}
	if (!ok) {
		long un[6] = {ret, (long)bytes, 0, 0, 0, 0};
		diag_thread_syscall(t, SYS_munmap, un, &ret);
		ep->ring_addr = 0;
		return -EIO;
	}
	eng_journal_map(ep, ep->ring_addr, bytes, "ring");
	ep->ring_drops = 0;
	ep->ring_skipped = 0;
	slots_clear(ep);
	/* every thread is stopped and none has recorded into this ring yet: a sub-ring each */
	size_t pos = 0;
	uint64_t k;
	void *v;
	bool fresh;
	while (diag_u64map_next(&ep->tp->threads, &pos, &k, &v)) {
		uint64_t tp = learn(ep, v, &fresh);
		if (tp)
			slot_assign(ep, v, tp);
	}
	return 0;
}

static void slots_release(struct eproc *ep)
{
	size_t pos = 0;
	uint64_t k;
	void *v;
	while (diag_u64map_next(&ep->slots, &pos, &k, &v))
		free(v);
	diag_u64map_release(&ep->slots);
}

void eng_fast_reset(struct eproc *ep)
{
	ep->ring_addr = 0;
	slots_clear(ep);
	ep->ring_drops = 0;
	ep->ring_skipped = 0;
	ep->next_site = 0; /* the new ring's counters start from the first */
	diag_u64map_release(&ep->jumps);
	slots_release(ep);
	diag_u64map_release(&ep->tps);
	diag_u64map_release(&ep->tp_tried);
	ep->tp_learn = false;
}

void eng_fast_unmap(struct eproc *ep, struct diag_thread *t)
{
	if (t) {
		size_t pos = 0;
		uint64_t k;
		void *v;
		while (diag_u64map_next(&ep->slots, &pos, &k, &v))
			diag_xol_unmap_page(t, k);
		if (ep->ring_addr) {
			long args[6] = {(long)ep->ring_addr, (long)ep->ring_bytes, 0, 0, 0, 0}, ret;
			diag_thread_syscall(t, SYS_munmap, args, &ret);
		}
	}
	eng_fast_reset(ep);
}

uint64_t eng_fast_count(struct eproc *mem, const struct diag_bp *bp)
{
	uint64_t addrs[DIAG_RING_MAX_SUBS], vals[DIAG_RING_MAX_SUBS], sum = 0;
	size_t n = bp->jump && mem->ring_addr ? (size_t)mem->ring_nsubs : 0;
	for (size_t i = 0; i < n; i++)
		addrs[i] = counter_addr(mem, i, bp->site_id);
	if (n && diag_proc_read_u64s(mem->tp, addrs, vals, n) == 0)
		for (size_t i = 0; i < n; i++)
			sum += vals[i];
	return sum;
}

uint64_t eng_fast_site_count(struct eproc *mem, const struct site *s)
{
	uint64_t n = s->bp && s->bp->jump ? eng_fast_count(mem, s->bp) : 0;
	return n > s->fast_base ? n - s->fast_base : 0;
}

void eng_fast_forget(struct eproc *mem, struct diag_bp *bp)
{
	if (!bp->jump)
		return;
	diag_u64map_del(&mem->jumps, bp->site_id);
	struct eng_slot *sl = bp->slot_page ? diag_u64map_get(&mem->slots, bp->slot_page) : NULL;
	if (sl)
		sl->retired = true;
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

/* ---- thread pointers ---- */

/* t's thread pointer (0: unknown) into ep->tps; *fresh: it was not there */
static uint64_t learn(struct eproc *ep, struct diag_thread *t, bool *fresh)
{
	diag_regs r;
	*fresh = false;
	if (!t->stopped || diag_regs_read(t->tid, &r) < 0)
		return 0;
	uint64_t tp = diag_record_thread_pointer(&r);
	if (tp) {
		*fresh = !diag_u64map_get(&ep->tps, tp);
		diag_u64map_put(&ep->tps, tp, (void *)(intptr_t)t->tid);
		diag_u64map_del(&ep->tp_tried, tp);
	}
	return tp;
}

/* Every stop comes here (wait.c, life.c). A thread pointer not known yet, once the ring is
 * mapped, is a new thread's at its first stop (every thread was learnt when the ring was
 * mapped, a new one stops before it runs, a gone one is forgotten): it has recorded nothing,
 * so it gets a sub-ring of its own in the table. */
void eng_fast_learn(struct eproc *ep, struct diag_thread *t)
{
	bool fresh;
	uint64_t tp = learn(ep, t, &fresh);
	if (fresh)
		slot_assign(ep, t, tp);
}

void eng_fast_thread_gone(struct eproc *ep, struct diag_thread *t)
{
	size_t pos = 0;
	uint64_t k;
	void *v;
	while (diag_u64map_next(&ep->tps, &pos, &k, &v))
		if ((pid_t)(intptr_t)v == t->tid) {
			slot_release(ep, k, t->tid);
			eng_xf_drop_thread(&ep->xframes, k); /* its frames: never returning now */
			diag_u64map_del(&ep->tps, k);
			return;
		}
}

static void learn_all(struct eproc *ep)
{
	size_t pos = 0;
	uint64_t k;
	void *v;
	bool fresh;
	while (diag_u64map_next(&ep->tp->threads, &pos, &k, &v))
		learn(ep, v, &fresh); /* no slot: these threads may have recorded already */
}

/* The tid of a record's thread pointer; 0 when it is not known yet and the record waits for
 * the next dispatch to learn it (-1: never learnt, a tid unknown). */
static pid_t tid_of(struct eproc *ep, uint64_t tp)
{
	void *v = diag_u64map_get(&ep->tps, tp);
	if (v)
		return (pid_t)(intptr_t)v;
	if (diag_u64map_get(&ep->tp_tried, tp))
		return -1;
	if (ep->tp->threads.count == 1) { /* the one thread: no stop needed */
		size_t pos = 0;
		uint64_t k;
		void *t;
		if (diag_u64map_next(&ep->tp->threads, &pos, &k, &t)) {
			diag_u64map_put(&ep->tps, tp, (void *)(intptr_t)k);
			return (pid_t)k;
		}
	}
	ep->tp_learn = true;
	return 0;
}

/* ---- counting sites: probes whose hits are their counters ---- */

/* A probe that asks for nothing but its count, from an owner that takes counts. */
static bool counting(const struct site *u)
{
	return u->kind == SITE_CALL && u->pr->counts && !u->value && !u->condition;
}

/* Every site at bp (less leaving, plus s when it joins) only counts. */
static bool all_counting(const struct diag_bp *bp, const struct site *s, const struct site *leaving)
{
	bool any = false;
	for (size_t i = 0; bp && i < bp->nusers; i++) {
		const struct site *u = bp->users[i];
		if (u == leaving)
			continue;
		if (!counting(u))
			return false;
		any = true;
	}
	return s ? counting(s) : any;
}

/* Deliver what each counting site of bp counted since the last time, as one hit each. */
static void counts_of(struct diag_engine *e, struct eproc *ep, struct diag_bp *bp, uint64_t ts)
{
	for (size_t i = 0; i < bp->nusers; i++) {
		struct site *u = bp->users[i];
		uint64_t n = eng_fast_site_count(ep, u);
		if (n > u->counted) {
			eng_fire_counted(e, ep->tp->pid, u, n - u->counted, ts);
			u->counted = n;
		}
	}
}

void eng_fast_counts(struct diag_engine *e, struct eproc *ep)
{
	size_t pos = 0;
	uint64_t k, ts = 0;
	void *v;
	while (diag_u64map_next(&ep->jumps, &pos, &k, &v)) {
		struct diag_bp *bp = v;
		const struct eng_slot *sl = diag_u64map_get(&ep->slots, bp->slot_page);
		if (!sl || !sl->count_only || sl->retired)
			continue;
		if (!ts)
			ts = (uint64_t)diag_clock_wall_ns();
		counts_of(e, ep, bp, ts);
	}
}

/* The trampoline at sl switches to counting or back (every thread out of it, the ring
 * drained, so each counter holds exactly the hits already delivered as records). */
static void counting_switch(struct eproc *ep, struct eng_slot *sl, struct diag_bp *bp, bool on)
{
	if (on && !sl->count_only)
		for (size_t i = 0; i < bp->nusers; i++) {
			struct site *u = bp->users[i];
			u->counted = eng_fast_site_count(ep, u);
		}
	sl->count_only = on;
}

/* ---- draining ---- */

static void consume(struct diag_engine *e, struct eproc *ep, const struct diag_ring_rec *rec,
		    size_t bytes, pid_t rtid)
{
	struct diag_bp *bp = diag_u64map_get(&ep->jumps, rec->site);
	if (!bp)
		return; /* its probe was removed after the hit */
	const struct eng_slot *sl = diag_u64map_get(&ep->slots, bp->slot_page);
	/* The ring is ep's, so the hit is ep's (a vfork child's hits carry its parent's thread
	 * pointer: they are named as the parent's thread). */
	struct diag_thread *t = rtid > 0 ? diag_u64map_get(&e->threads, (uint64_t)rtid) : NULL;
	if (t && eproc_mem(eproc_of(t->proc)) != ep)
		t = NULL;
	pid_t pid = t ? t->proc->pid : ep->tp->pid;
	pid_t tid = rtid > 0 ? rtid : 0;
	uint32_t plen = rec->payload_len;
	if (plen > bytes - DIAG_RING_REC_HDR)
		plen = 0; /* malformed: nothing captured (every value reads as a fault) */
	struct diag_cap_snapshot snap;
	diag_cap_snapshot_init(&snap, (const uint8_t *)rec + DIAG_RING_REC_HDR, plen,
			       rec->flags & DIAG_REC_FAULT, rec->fault_addr);
	uint64_t ts = tsc_to_ns(e, rec->tsc);
	if (rec->flags & DIAG_REC_EXIT) {
		eng_exit_record(e, ep, bp, rec, &snap, tid, ts);
		if (!(rec->flags & DIAG_REC_RETSITE))
			return; /* a return site's record also serves a line probe joined there */
	}
	diag_regs regs;
	diag_record_v2_regs(rec, &regs);
	/* $comm: the name the thread has now (within the drain period); a thread already gone
	 * has none */
	struct diag_expr_ctx ctx = {.pid = pid, .tid = tid, .regs = &regs,
				    .read_mem = diag_cap_snapshot_read,
				    .read_fpregs = diag_cap_snapshot_fpregs, .arg = &snap,
				    .time_ns = ts, .comm_of = eng_comm_of, .comm_arg = t};
	struct site *small[8], **fired = small;
	if (bp->nusers > 8 && !(fired = malloc(bp->nusers * sizeof(*fired))))
		return;
	size_t n = eng_capture(e, NULL, bp, &ctx, sl && !sl->cond_in_daemon, fired);
	eng_fire(e, t, pid, tid, fired, n, ts);
	if (fired != small)
		free(fired);
	for (size_t i = 0; i < bp->nusers; i++)
		if (((struct site *)bp->users[i])->kind == SITE_RET_ENTRY) {
			eng_exit_record(e, ep, bp, rec, &snap, tid, ts);
			break;
		}
}

/* The records in [from, head) of a sub-ring that a drain gives up, from's never published:
 * it, and each published record behind it (found by its header: a published record's seq
 * names its own start unit, and a pad's site is 0). Counted, never consumed: what follows a
 * record that may still be written is not trusted. */
static uint64_t count_given_up(struct diag_engine *e, struct eproc *ep, uint64_t base,
			       uint64_t from, uint64_t head)
{
	uint64_t n = 1, units = ep->ring_sub_units, have = 0, at = 0; /* drain_buf holds [at, at+have) */
	for (uint64_t u = from + 1; u < head;) {
		if (u < at || u >= at + have) {
			uint64_t off = u & (units - 1), k = units - off;
			if (k > READ_CHUNK / DIAG_RING_UNIT)
				k = READ_CHUNK / DIAG_RING_UNIT;
			size_t len = (size_t)k * DIAG_RING_UNIT;
			if (diag_proc_read(ep->tp, base + sizeof(struct diag_ring_header) +
							   off * DIAG_RING_UNIT,
					   e->drain_buf, len) != (ssize_t)len)
				break;
			at = u;
			have = k;
		}
		const struct diag_ring_rec *rec =
			(const void *)(e->drain_buf + (u - at) * DIAG_RING_UNIT);
		if (rec->seq == u + 1 && rec->units && rec->units <= head - u) {
			n += rec->site != 0;
			u += rec->units;
		} else {
			u++;
		}
	}
	return n;
}

/* Records of the threads writing sub-ring `sub` were dropped: their open return frames may
 * have lost their exits, and an exit may have lost its entry, so none of them is paired across
 * the gap (exitjump.c). A thread's sub-ring is its slot's or the hashed one (sub_of_tp). */
static void purge_sub(struct eproc *ep, uint64_t sub)
{
	uint64_t k, gone[64];
	size_t pos = 0, n;
	void *v;
	do {
		n = 0;
		while (n < 64 && diag_u64map_next(&ep->xframes, &pos, &k, &v))
			if (sub_of_tp(ep, k) == sub)
				gone[n++] = k;
		for (size_t i = 0; i < n; i++)
			eng_xf_drop_thread(&ep->xframes, gone[i]);
		pos = 0;
	} while (n == 64);
}

/* One sub-ring: consume from our tail to its head. Returns false when it cannot be read
 * (the process is going), else true and its drop counter in *drops. */
static bool drain_sub(struct diag_engine *e, struct eproc *ep, uint64_t sub, uint64_t *drops)
{
	uint64_t base = sub_base(ep, sub), units = ep->ring_sub_units;
	struct diag_ring_header h;
	if (diag_proc_read(ep->tp, base, &h, sizeof(h)) != (ssize_t)sizeof(h))
		return false;
	uint64_t tail = ep->ring_tails[sub], given = tail, head = h.head;
	if (head < tail || head - tail > units)
		tail = head; /* not what a writer can do (the target wrote over it): start over */
	eng_wake_note(e, head - tail, units);
	/* records of this sub-ring were dropped since its last drain: a return probe's frames
	 * spanning the gap are not paired, on either side of what this drain consumes */
	bool lossy = h.drops != ep->ring_sub_drops[sub];
	if (lossy)
		purge_sub(ep, sub);
	bool stalled = false;
	while (tail < head && !stalled) {
		uint64_t off = tail & (units - 1), n = head - tail;
		if (n > units - off)
			n = units - off; /* records never wrap: a pad fills the end */
		if (n > READ_CHUNK / DIAG_RING_UNIT)
			n = READ_CHUNK / DIAG_RING_UNIT;
		size_t len = (size_t)n * DIAG_RING_UNIT;
		if (diag_proc_read(ep->tp, base + sizeof(h) + off * DIAG_RING_UNIT, e->drain_buf,
				   len) != (ssize_t)len)
			break;
		uint64_t i = 0;
		while (i < n) {
			const struct diag_ring_rec *rec =
				(const void *)(e->drain_buf + i * DIAG_RING_UNIT);
			if (rec->seq != tail + 1) {
				stalled = true; /* reserved, not published yet */
				break;
			}
			uint64_t k = rec->units;
			if (k == 0 || k > head - tail) { /* malformed: the rest cannot be parsed */
				tail = head;
				break;
			}
			if (i + k > n)
				break; /* read again from this record */
			if (rec->site) {
				pid_t tid = tid_of(ep, rec->thread);
				if (tid == 0) {
					stalled = true; /* learnt at the next dispatch */
					ep->ring_stalls[sub] = 0;
					goto out;
				}
				if (k * DIAG_RING_UNIT >= DIAG_RING_REC_HDR)
					consume(e, ep, rec, (size_t)k * DIAG_RING_UNIT, tid);
			}
			tail += k;
			i += k;
			ep->ring_stalls[sub] = 0;
		}
		/* give the units back as they are consumed, not at the end: a drain of a long
		 * backlog takes tens of ms, and the writers would find the sub-ring full */
		if (tail - given >= RETURN_EVERY) {
			diag_proc_write(ep->tp, base + offsetof(struct diag_ring_header, tail), &tail,
					sizeof(tail));
			given = tail;
		}
		if (i == 0 && !stalled && tail < head)
			break; /* cannot happen: a record larger than a chunk */
	}
	/* A writer between reserving and publishing; one that died there (a thread killed
	 * mid-record) would block the sub-ring: give up what follows it eventually. */
	if (stalled && ++ep->ring_stalls[sub] > STALL_SKIP) {
		ep->ring_skipped += count_given_up(e, ep, base, tail, head);
		tail = head;
		ep->ring_stalls[sub] = 0;
	}
out:
	if (lossy)
		purge_sub(ep, sub);
	ep->ring_sub_drops[sub] = h.drops;
	ep->ring_tails[sub] = tail;
	if (tail != given)
		diag_proc_write(ep->tp, base + offsetof(struct diag_ring_header, tail), &tail,
				sizeof(tail));
	*drops = h.drops;
	return true;
}

void eng_fast_drain(struct diag_engine *e, struct eproc *ep)
{
	if (!ep->ring_addr || ep->draining)
		return;
	if (!e->drain_buf && !(e->drain_buf = malloc(READ_CHUNK)))
		return;
	ep->draining = true;
	calibrate(e);
	heartbeat(e, ep);
	uint64_t drops = 0, d;
	bool all = true;
	for (uint64_t i = 0; i < ep->ring_nsubs; i++)
		if (drain_sub(e, ep, i, &d))
			drops += d;
		else
			all = false;
	/* the counters only grow: a sum with one missing says nothing */
	drops += ep->ring_skipped;
	if (all && drops > ep->ring_drops) {
		e->dropped += drops - ep->ring_drops;
		ep->ring_drops = drops;
	}
	eng_fast_counts(e, ep);
	ep->draining = false;
}

void eng_fast_learn_pending(struct diag_engine *e)
{
	pid_t pids[64];
	size_t n = 0, pos = 0;
	uint64_t k;
	void *v;
	while (n < 64 && diag_u64map_next(&e->procs, &pos, &k, &v))
		if (((struct eproc *)v)->tp_learn)
			pids[n++] = (pid_t)k;
	for (size_t i = 0; i < n; i++) {
		struct eproc *ep = diag_u64map_get(&e->procs, (uint64_t)pids[i]);
		if (!ep || ep->freeze)
			continue;
		ep->tp_learn = false;
		if (!eng_freeze(e, ep))
			continue; /* gone */
		learn_all(ep);
		eng_thaw(e, ep);
		/* a record whose thread pointer a stop of every thread did not name (its thread
		 * is gone since): named by no tid from now on */
		for (uint64_t s = 0; s < ep->ring_nsubs; s++) {
			struct diag_ring_rec rec;
			uint64_t off = ep->ring_tails[s] & (ep->ring_sub_units - 1);
			if (diag_proc_read(ep->tp, sub_base(ep, s) + sizeof(struct diag_ring_header) +
						       off * DIAG_RING_UNIT,
					   &rec, sizeof(rec)) == (ssize_t)sizeof(rec) &&
			    rec.seq == ep->ring_tails[s] + 1 && rec.site &&
			    !diag_u64map_get(&ep->tps, rec.thread))
				diag_u64map_put(&ep->tp_tried, rec.thread, (void *)1);
		}
		eng_fast_drain(e, ep);
	}
}

/* ---- placing ---- */

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

static int why(struct site *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Says why s takes an int3; returns 1 (the caller's "use an int3"). */
static int why(struct site *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = snprintf(s->why, sizeof(s->why), "int3: ");
	vsnprintf(s->why + n, sizeof(s->why) - (size_t)n, fmt, ap);
	va_end(ap);
	return 1;
}

/* The reasons that need no look at the code. */
static int ineligible(struct diag_engine *e, struct eproc *ep, struct site *s,
		      const struct diag_location *loc)
{
	if (e->no_fast)
		return why(s, "DIAG_NO_FASTPATH");
	if (ep->tp->mem_owner)
		return why(s, "a vfork child shares its parent's patches");
	if (s->kind != SITE_CALL && s->kind != SITE_RET_ENTRY && s->kind != SITE_END)
		return why(s, "this kind of site takes an int3");
	if (!loc->func_end)
		return why(s, "the function's end is unknown (no symbol size)");
	/* an end probe's location is its exit: its patch may start before it (place_end) */
	if (s->kind != SITE_END && loc->func_end - loc->addr < DIAG_TRAMP_PATCH_LEN)
		return why(s, "fewer than %d bytes of the function follow 0x%llx",
			   DIAG_TRAMP_PATCH_LEN, (unsigned long long)loc->addr);
	/* an inlined copy's bounds are its own range, not its caller's: branches from the rest
	 * of the caller into the patched bytes could not be ruled out */
	if (loc->kind == DIAG_LOC_INLINED)
		return why(s, "an inlined copy (branches of its caller into the patch cannot be "
			      "ruled out)");
	return 0;
}

/* What one site asks of the trampoline at its address: a return probe's entry nothing but
 * the record (registers, sp, clock: its expressions are for the exit); a return probe's exit
 * its value and its condition's reads, with no condition in the target (its frame needs the
 * record); the others their value and condition. */
static void capture_of(const struct site *u, const struct diag_expr **vals,
		       const struct diag_expr **conds, size_t *n)
{
	if (u->kind == SITE_RET_ENTRY) {
		vals[*n] = NULL;
		conds[(*n)++] = NULL;
	} else if (u->kind == SITE_RET_EXIT) {
		vals[*n] = u->value;
		conds[(*n)++] = NULL;
		vals[*n] = u->condition;
		conds[(*n)++] = NULL;
	} else {
		vals[*n] = u->value;
		conds[(*n)++] = u->condition;
	}
}

/* The return address ([sp] at entry) saved first in the value program (its jump targets
 * move by the two ops): the entry record of a function that leaves by a tail call names
 * where its callee will return (exitjump.c, retsite.c). */
static int add_ra(struct diag_expr_capture *cap, struct diag_error *err)
{
	struct diag_cap_prog *p = cap->value;
	if (!p && (p = cap->value = calloc(1, sizeof(*p))) != NULL) {
		p->ops[0].op = DIAG_CAP_END;
		p->n = 1;
	}
	if (!p)
		return diag_error_set(err, -ENOMEM, "out of memory");
	uint32_t block = diag_cap_block_bytes(sizeof(uint64_t));
	if (p->n + 2 > DIAG_CAP_MAX_OPS || p->max_payload + block > DIAG_CAP_MAX_PAYLOAD)
		return diag_error_set(err, -DIAG_E_LIMIT,
				      "value: no room left for the return address in the capture");
	memmove(p->ops + 2, p->ops, p->n * sizeof(p->ops[0]));
	for (size_t i = 2; i < p->n + 2; i++)
		if (p->ops[i].op == DIAG_CAP_JMP || p->ops[i].op == DIAG_CAP_JZ ||
		    p->ops[i].op == DIAG_CAP_JNZ)
			p->ops[i].a += 2;
	p->ops[0] = (struct diag_cap_op){.op = DIAG_CAP_REG, .a = (uint32_t)diag_reg_sp()};
	p->ops[1] = (struct diag_cap_op){.op = DIAG_CAP_SAVE_MEM, .a = sizeof(uint64_t)};
	p->n += 2;
	p->max_payload += block;
	return 0;
}

/* The capture of every site at one address, plus s when it joins (s may be NULL), less
 * `leaving` (may be NULL). */
static int compile_for(const struct diag_bp *bp, struct site *s, const struct site *leaving,
		       struct diag_expr_capture *cap, struct diag_error *err)
{
	bool ra = s && s->want_ra;
	size_t n = 0, max = 2 * ((bp ? bp->nusers : 0) + 1);
	const struct diag_expr **vals = calloc(max, sizeof(*vals));
	const struct diag_expr **conds = calloc(max, sizeof(*conds));
	int r = vals && conds ? 0 : diag_error_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; r == 0 && bp && i < bp->nusers; i++)
		if (bp->users[i] != leaving) {
			capture_of(bp->users[i], vals, conds, &n);
			ra = ra || ((const struct site *)bp->users[i])->want_ra;
		}
	if (r == 0 && s)
		capture_of(s, vals, conds, &n);
	memset(cap, 0, sizeof(*cap));
	if (r == 0)
		r = diag_expr_capture_compile((const struct diag_expr *const *)vals,
					      (const struct diag_expr *const *)conds, n, cap, err);
	if (r == 0 && ra && (r = add_ra(cap, err)) < 0)
		diag_expr_capture_free(cap);
	free(vals);
	free(conds);
	return r;
}

/* After steps single steps: a pushf stepped inside a trampoline saved the trap flag and its
 * popf restored it; cleared, or the thread dies of SIGTRAP later (r: its registers now). */
static void unstep(struct diag_thread *t, diag_regs *r, int steps)
{
	if (steps && diag_regs_stepping(r)) {
		diag_regs_clear_step(r);
		diag_regs_write(t->tid, r);
	}
}

/* Every stopped thread out of (lo, hi) (at lo itself a thread just runs the jump). A thread of
 * a hot function is often caught inside: a few single steps take it out, rather than giving
 * up the jump for an int3 that costs 50 times more per hit. False if one cannot be moved. */
static bool threads_out_of(struct eproc *ep, uint64_t lo, uint64_t hi, int max_steps)
{
	size_t pos = 0;
	uint64_t k;
	void *v;
	while (diag_u64map_next(&ep->tp->threads, &pos, &k, &v)) {
		struct diag_thread *t = v;
		diag_regs r;
		for (int steps = 0; t->stopped; steps++) {
			if (diag_regs_read(t->tid, &r) < 0)
				break;
			if (diag_regs_pc(&r) <= lo || diag_regs_pc(&r) >= hi) {
				unstep(t, &r, steps);
				break;
			}
			if (steps == max_steps || diag_thread_step(t) < 0)
				return false;
		}
	}
	return true;
}

static struct diag_thread *any_stopped(struct eproc *ep)
{
	size_t pos = 0;
	uint64_t k;
	void *v;
	while (diag_u64map_next(&ep->tp->threads, &pos, &k, &v)) {
		struct diag_thread *t = v;
		if (t->stopped && !diag_thread_is_zombie(t))
			return t;
	}
	return NULL;
}

static void page_unmap(struct eproc *ep, struct diag_thread *t, uint64_t page)
{
	if (t && diag_xol_unmap_page(t, page) == 0)
		eng_journal_map(ep, page, DIAG_TRAMP_SLOT, "unmapped");
}

/* term: an exit trampoline's terminator (the patch is [addr, term + its length)), 0 for an
 * entry trampoline. */
static void capture_desc(struct diag_tramp_capture *c, uint64_t term, bool retsite,
			 uint64_t addr, const uint8_t *code, size_t avail, uint64_t page,
			 const struct eproc *ep, uint32_t site, const struct diag_expr_capture *cap,
			 bool count_only)
{
	*c = (struct diag_tramp_capture){
		.kind = term ? DIAG_TRAMP_EXIT : DIAG_TRAMP_ENTRY, .addr = addr, .term = term,
		.retsite = retsite,
		.code = code, .avail = avail,
		.slot = page, .ring = ep->ring_addr, .site = site,
		.fsgsbase = false, /* %fs:0: the ABI's self pointer, on every processor */
		.cond = cap->cond, .value = cap->value,
		.count_only = count_only && !term && !retsite && !cap->cond && !cap->value,
	};
}

/* Before a trampoline can run: the in-target fault guard, which repairs its faults when no
 * daemon is there to (a load through a bad pointer, or the thread pointer's load in a thread
 * without TLS yet: guard_install.c). Every thread frozen, t a stopped one. */
static int guard_for(struct diag_engine *e, struct eproc *ep, struct diag_thread *t,
		     struct diag_error *err)
{
	struct diag_thread *stopped = t;
	return eng_guard_ensure(e, ep, &stopped, err);
}

/* A new capture jump for s alone (every thread of ep frozen, t one of them): an entry
 * trampoline at addr (room bytes of the function from there), or for term != 0 an exit
 * trampoline over [addr, term + its length) (room: those bytes). */
static int place_capture(struct diag_engine *e, struct eproc *ep, struct diag_thread *t,
			 struct site *s, uint64_t addr, uint64_t term, size_t room, size_t span,
			 const struct diag_expr_capture *cap)
{
	if (!threads_out_of(ep, addr, addr + span, 16))
		return why(s, "a thread could not be moved out of the patched bytes");
	if (!ep->ring_addr) {
		int r = ring_map(e, ep, t);
		if (r < 0)
			return why(s, "cannot map the ring: %s", diag_strerror(r));
	}
	struct diag_error gerr = {0};
	if (guard_for(e, ep, t, &gerr) < 0)
		return why(s, "%s", gerr.msg);
	uint32_t id = ep->next_site + 1;
	if (id >= DIAG_RING_MAX_SITES)
		return why(s, "out of site counters (%d per process)", DIAG_RING_MAX_SITES - 1);
	uint8_t code[DIAG_TRAMP_CODE_AVAIL];
	size_t avail = room < sizeof(code) ? room : sizeof(code);
	if (diag_proc_read(ep->tp, addr, code, avail) != (ssize_t)avail)
		return why(s, "cannot read the code at 0x%llx", (unsigned long long)addr);
	uint64_t page;
	int r = diag_xol_map_page(t, addr, &page);
	if (r < 0)
		return why(s, "cannot map a slot page near 0x%llx: %s",
			   (unsigned long long)addr, diag_strerror(r));
	eng_journal_map(ep, page, DIAG_TRAMP_SLOT, "slot");
	struct eng_slot *sl = calloc(1, sizeof(*sl));
	struct diag_tramp_capture c;
	bool retsite = s->kind == SITE_RET_EXIT && s->at; /* a return site */
	capture_desc(&c, term, retsite, addr, code, avail, page, ep, id, cap,
		     all_counting(NULL, s, NULL));
	struct diag_error berr = {0};
	struct diag_bp *bp = NULL;
	r = sl ? diag_bp_make_capture(&ep->bps, ep->tp, &c, &bp, &sl->layout, &sl->hdr, &berr)
	       : diag_error_set(&berr, -ENOMEM, "out of memory");
	if (r == 0) {
		sl->page = page;
		sl->term = term;
		sl->retsite = retsite;
		sl->cond_in_daemon = cap->cond_in_daemon || !cap->cond;
		sl->count_only = c.count_only;
		if (diag_u64map_put(&ep->slots, page, sl) < 0 ||
		    diag_u64map_put(&ep->jumps, id, bp) < 0 || diag_bp_add_user(bp, s) < 0) {
			diag_u64map_del(&ep->slots, page);
			diag_u64map_del(&ep->jumps, id);
			diag_bp_destroy(&ep->bps, ep->tp, bp);
			r = diag_error_set(&berr, -ENOMEM, "out of memory");
		}
	}
	if (r < 0) {
		free(sl);
		page_unmap(ep, t, page);
		return why(s, "%s", berr.msg);
	}
	ep->next_site = id;
	s->bp = bp;
	s->fast_base = 0;
	s->counted = 0;
	return 0;
}

static int place_new(struct diag_engine *e, struct eproc *ep, struct diag_thread *t,
		     struct site *s, const struct diag_location *loc,
		     const struct diag_expr_capture *cap, size_t span)
{
	return place_capture(e, ep, t, s, loc->addr, 0, loc->func_end - loc->addr, span, cap);
}

/* A probe that needs a stop joins a fast-path address: turn the jump into an int3 that serves
 * every probe there (ep frozen, t a stopped thread). Returns 1 (use the int3) or a negative
 * code. */
static int demote(struct diag_engine *e, struct eproc *ep, struct diag_bp *jump,
		  struct diag_error *err)
{
	size_t n = jump->nusers;
	void **users = malloc((n ? n : 1) * sizeof(*users));
	if (!users)
		return diag_error_set(err, -ENOMEM, "out of memory");
	memcpy(users, jump->users, n * sizeof(*users));
	uint64_t addr = jump->addr;
	struct diag_thread *t = any_stopped(ep);
	eng_fast_drain(e, ep); /* its records, with the users they were made for */
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
	eng_fast_reap(e, ep);
	free(users);
	return r < 0 ? r : 1;
}

/* The trampoline of bp built again for its users plus s (joining) less leaving (ep frozen):
 * the ring drained first (its records were made for the users then), no thread inside. */
static int rebuild(struct diag_engine *e, struct eproc *ep, struct diag_bp *bp,
		   const struct diag_expr_capture *cap, bool count_only, struct diag_error *err)
{
	struct eng_slot *sl = diag_u64map_get(&ep->slots, bp->slot_page);
	if (!sl)
		return diag_error_set(err, -DIAG_E_STATE, "0x%llx: no slot", (unsigned long long)bp->addr);
	if (!threads_out_of(ep, bp->addr, bp->addr + bp->patched_len, 16) ||
	    !threads_out_of(ep, sl->page, sl->page + DIAG_TRAMP_SLOT, STEP_OUT))
		return diag_error_set(err, -DIAG_E_STATE, "a thread could not be moved out of the "
				      "trampoline at 0x%llx", (unsigned long long)bp->addr);
	eng_fast_drain(e, ep);
	struct diag_tramp_capture c;
	capture_desc(&c, sl->term, sl->retsite, bp->addr, bp->orig_bytes, bp->patched_len,
		     sl->page, ep, bp->site_id, cap, count_only);
	struct diag_tramp_layout l;
	struct diag_tramp_slot_header h;
	int r = diag_bp_rebuild_capture(ep->tp, bp, &c, &l, &h, err);
	if (r == 0) {
		sl->layout = l;
		sl->hdr = h;
		sl->cond_in_daemon = cap->cond_in_daemon || !cap->cond;
		counting_switch(ep, sl, bp, c.count_only);
	}
	return r;
}

/* s joins the capture jump bp: rebuilt for every probe there, or demoted to an int3 when the
 * probes together need a stop. */
static int join(struct diag_engine *e, struct eproc *ep, struct diag_bp *bp, struct site *s,
		struct diag_error *err)
{
	struct eng_slot *sl = diag_u64map_get(&ep->slots, bp->slot_page);
	if (sl && sl->adopt) {
		/* a fork child's probes join the copy of the parent's trampoline, built for the
		 * same probes; the child has not run since the fork (nothing to rebuild) */
		sl->adopt--;
		s->fast_base = eng_fast_count(ep, bp);
		s->counted = 0;
		s->bp = bp;
		return diag_bp_add_user(bp, s) < 0 ? diag_error_set(err, -ENOMEM, "out of memory") : 0;
	}
	struct diag_expr_capture cap;
	struct diag_error cerr = {0};
	/* an exit jump is never demoted: an int3 at its start is not where its sites are (nor
	 * a return site's: its sites pair with jump frames only) */
	bool exit_jump = sl && (sl->term || sl->retsite);
	int cr = compile_for(bp, s, NULL, &cap, &cerr);
	if (cr < 0)
		why(s, "%s", cerr.msg);
	struct diag_thread *t = eng_freeze(e, ep);
	if (!t) {
		if (cr == 0)
			diag_expr_capture_free(&cap);
		return diag_error_set(err, -DIAG_E_GONE, "process %d exited", (int)ep->tp->pid);
	}
	int r;
	if (cr < 0 && exit_jump) {
		r = 1;
	} else if (cr < 0) {
		for (size_t i = 0; i < bp->nusers; i++) /* they take the int3 because of s */
			snprintf(((struct site *)bp->users[i])->why, sizeof(s->why),
				 "int3: another probe here needs it (%.80s)", s->why + 6);
		r = demote(e, ep, bp, err);
	} else {
		struct diag_error rerr = {0};
		r = guard_for(e, ep, t, &rerr);
		if (r == 0)
			r = rebuild(e, ep, bp, &cap, all_counting(bp, s, NULL), &rerr);
		/* the hits before it are not this probe's: neither counted nor delivered */
		if (r == 0) {
			s->fast_base = eng_fast_count(ep, bp);
			s->counted = 0;
			s->bp = bp;
			r = diag_bp_add_user(bp, s) < 0 ? diag_error_set(err, -ENOMEM, "out of memory")
							 : 0;
		} else {
			why(s, "%s", rerr.msg);
			r = exit_jump ? 1 : demote(e, ep, bp, err);
		}
		diag_expr_capture_free(&cap);
	}
	learn_all(ep);
	eng_thaw(e, ep);
	return r;
}

/* ---- return and end probes: entry and exit trampolines ---- */

/* The capture of an exit of a return probe: its value, and its condition as a value too (the
 * condition runs in the daemon: every exit must record, a frame waits for it). */
static int compile_exit(const struct site *s, struct diag_expr_capture *cap,
			struct diag_error *err)
{
	const struct diag_expr *vals[2] = {s->value, s->condition}, *conds[2] = {NULL, NULL};
	memset(cap, 0, sizeof(*cap));
	return diag_expr_capture_compile(vals, conds, 2, cap, err);
}

/* Take a site placed on a capture jump off it again (ep frozen). */
static void unplace(struct diag_engine *e, struct eproc *ep, struct site *s)
{
	if (!s->bp)
		return;
	if (s->bp->nusers == 1)
		eng_fast_forget(ep, s->bp);
	else
		eng_fast_leave(e, ep, s->bp, s);
	diag_bp_del_user(&ep->bps, ep->tp, s->bp, s);
	s->bp = NULL;
}

static struct site *exit_site(struct probe *pr, const struct site *entry,
			      const struct diag_exit_plan *p, enum site_kind kind)
{
	if (DIAG_GROW(&pr->rsites, &pr->caprsites, pr->nrsites + 1) < 0)
		return NULL;
	struct site *x = calloc(1, sizeof(*x));
	if (!x)
		return NULL;
	*x = (struct site){.pr = pr, .kind = kind, .value = entry->value,
			   .condition = entry->condition};
	snprintf(x->what, sizeof(x->what), "exit at 0x%llx", (unsigned long long)p->term);
	pr->rsites[pr->nrsites++] = x;
	return x;
}

/* One exit jump for site x at plan p, new or joined (ep frozen, t one of its threads). */
static int place_exit(struct diag_engine *e, struct eproc *ep, struct diag_thread *t,
		      struct site *x, const struct diag_exit_plan *p, struct diag_error *err)
{
	struct diag_bp *bp = diag_bp_at(&ep->bps, p->start);
	const struct eng_slot *sl = bp ? diag_u64map_get(&ep->slots, bp->slot_page) : NULL;
	if (bp) /* another probe's exit jump there (or a fork child's copy): share it */
		return sl && sl->term == p->term ? join(e, ep, bp, x, err)
						 : why(x, "another patch at 0x%llx",
						       (unsigned long long)p->start);
	if (!t)
		return why(x, "the exit at 0x%llx has no jump in the copy of the parent",
			   (unsigned long long)p->term);
	struct diag_expr_capture cap;
	struct diag_error cerr = {0};
	if ((x->kind == SITE_END ? compile_for(NULL, x, NULL, &cap, &cerr)
				 : compile_exit(x, &cap, &cerr)) < 0)
		return why(x, "%s", cerr.msg);
	size_t window = (size_t)(p->term + p->term_len - p->start);
	int r = place_capture(e, ep, t, x, p->start, p->term, window, window, &cap);
	diag_expr_capture_free(&cap);
	return r;
}

/* A return probe's instance: an entry jump and a jump at every exit, or none (1, s->why):
 * an exit left unwatched would lose its returns without a word. */
static int place_return(struct diag_engine *e, struct eproc *ep, struct site *s,
			const struct diag_location *loc, struct diag_bp *entry, size_t span,
			struct diag_error *err)
{
	char buf[160];
	struct diag_exit_plan *plans = NULL;
	size_t n = 0;
	if (eng_exit_plans_of(ep, loc->func_start, loc->func_end, &plans, &n, buf, sizeof(buf)))
		return why(s, "%s", buf);
	bool tail = false;
	for (size_t i = 0; i < n; i++) {
		/* the callee of a tail call returns in this function's stead: at the jmp the
		 * call is not over (elapsed would stop short, result would be unset). Its return
		 * is watched where it lands: a return site at each return address the entry
		 * records name (retsite.c) */
		if (plans[i].tail_call) {
			tail = true;
			continue;
		}
		if (!eng_exit_plan_free(&ep->bps, &plans[i], loc->addr + span, buf, sizeof(buf))) {
			free(plans);
			return why(s, "%s", buf);
		}
	}
	struct diag_expr_capture xcap;
	struct diag_error xerr = {0};
	if (tail && compile_exit(s, &xcap, &xerr) < 0) { /* what every return site will run */
		free(plans);
		return why(s, "return site: %s", xerr.msg);
	}
	if (tail)
		diag_expr_capture_free(&xcap);
	s->want_ra = tail;
	/* a fork child adopts the copies of its parent's trampolines: no freeze before its
	 * first stop, every jump already there */
	const struct eng_slot *esl = entry ? diag_u64map_get(&ep->slots, entry->slot_page) : NULL;
	bool adopting = esl && esl->adopt;
	struct diag_thread *t = adopting ? NULL : eng_freeze(e, ep);
	if (!t && !adopting) {
		free(plans);
		return diag_error_set(err, -DIAG_E_GONE, "process %d exited", (int)ep->tp->pid);
	}
	size_t first = s->pr->nrsites;
	int r = 0;
	for (size_t i = 0; r == 0 && i < n; i++) {
		if (plans[i].tail_call)
			continue;
		struct site *x = exit_site(s->pr, s, &plans[i], SITE_RET_EXIT);
		r = x ? place_exit(e, ep, t, x, &plans[i], err)
		      : diag_error_set(err, -ENOMEM, "out of memory");
		if (r > 0)
			why(s, "exit at 0x%llx: %s", (unsigned long long)plans[i].term, x->why + 6);
	}
	if (r == 0 && entry) {
		r = join(e, ep, entry, s, err);
	} else if (r == 0) {
		struct diag_expr_capture ecap;
		struct diag_error cerr = {0};
		r = compile_for(NULL, s, NULL, &ecap, &cerr) < 0
			    ? why(s, "%s", cerr.msg)
			    : place_capture(e, ep, t, s, loc->addr, 0, loc->func_end - loc->addr,
					    span, &ecap);
		diag_expr_capture_free(&ecap);
	}
	if (r != 0) { /* all or nothing */
		s->want_ra = false;
		for (size_t i = first; i < s->pr->nrsites; i++) {
			unplace(e, ep, s->pr->rsites[i]);
			free(s->pr->rsites[i]);
		}
		s->pr->nrsites = first;
		eng_fast_reap(e, ep);
	}
	free(plans);
	if (!adopting) {
		learn_all(ep);
		eng_thaw(e, ep);
	}
	eng_fast_timer(e);
	return r;
}

/* An end probe's instance at one exit (loc->addr, the terminator): an exit jump, or an int3
 * there alone (end events need no pairing). */
static int place_end(struct diag_engine *e, struct eproc *ep, struct site *s,
		     const struct diag_location *loc, struct diag_error *err)
{
	char buf[160];
	struct diag_exit_plan *plans = NULL;
	size_t n = 0;
	if (eng_exit_plans_of(ep, loc->func_start, loc->func_end, &plans, &n, buf, sizeof(buf)))
		return why(s, "%s", buf);
	const struct diag_exit_plan *p = NULL;
	for (size_t i = 0; i < n; i++)
		if (plans[i].term == loc->addr)
			p = &plans[i];
	int r = 1;
	if (!p)
		why(s, "0x%llx is not an exit of the function", (unsigned long long)loc->addr);
	else if (diag_bp_at(&ep->bps, p->start) && diag_bp_at(&ep->bps, p->start)->jump)
		r = 0; /* join the exit jump there (place_exit) */
	else if (!eng_exit_plan_free(&ep->bps, p, 0, buf, sizeof(buf)))
		why(s, "%s", buf);
	else
		r = 0;
	struct diag_bp *there = p ? diag_bp_at(&ep->bps, p->start) : NULL;
	const struct eng_slot *sl = there ? diag_u64map_get(&ep->slots, there->slot_page) : NULL;
	if (r == 0 && sl && sl->adopt) { /* a fork child: its copy of the parent's jump */
		r = place_exit(e, ep, NULL, s, p, err);
	} else if (r == 0) {
		struct diag_thread *t = eng_freeze(e, ep);
		if (!t)
			r = diag_error_set(err, -DIAG_E_GONE, "process %d exited", (int)ep->tp->pid);
		else {
			r = place_exit(e, ep, t, s, p, err);
			learn_all(ep);
			eng_thaw(e, ep);
			eng_fast_timer(e);
		}
	}
	free(plans);
	return r;
}

/* A return site's jump at ra (ep frozen, t one of its threads): the bytes there movable, no
 * other patch among them, no branch of the caller's function into them. */
static int place_retsite_jump(struct diag_engine *e, struct eproc *ep, struct diag_thread *t,
			      struct site *x, const struct diag_location *caller)
{
	uint64_t ra = caller->addr, term = 0;
	size_t room = caller->func_end - ra;
	struct diag_error quiet = {0};
	int span = diag_bp_jump_span(ep->tp, ra, room, &quiet);
	if (span <= 0 && room >= DIAG_TRAMP_PATCH_LEN) {
		/* a loop's `jmp` right after the call: an exit trampoline with it as its
		 * terminator (the arch refuses anything but a ret or jmp of the jump's length) */
		term = ra;
		span = DIAG_TRAMP_PATCH_LEN;
	}
	if (span <= 0 || (size_t)span > room)
		return why(x, "%s", quiet.msg[0] ? quiet.msg : "the instructions there cannot be moved");
	if (!range_free(&ep->bps, ra, (size_t)span))
		return why(x, "another patch lies in the %d bytes a jump would replace", span);
	if (branches_into(ep, caller, (size_t)span))
		return why(x, "a branch of %s lands inside the patched bytes",
			   caller->symbol[0] ? caller->symbol : "the caller");
	struct diag_expr_capture cap;
	struct diag_error cerr = {0};
	if (compile_exit(x, &cap, &cerr) < 0)
		return why(x, "%s", cerr.msg);
	int r = place_capture(e, ep, t, x, ra, term, term ? (size_t)span : room, (size_t)span, &cap);
	diag_expr_capture_free(&cap);
	if (r && term && quiet.msg[0]) /* the first reason says more */
		why(x, "%s", quiet.msg);
	return r;
}

int eng_fast_place_retsite(struct diag_engine *e, struct eproc *ep, struct site *entry,
			   uint64_t ra, uint64_t func_start, uint64_t func_end, char *whybuf,
			   size_t cap)
{
	struct probe *pr = entry->pr;
	struct diag_exit_plan where = {.term = ra};
	struct site *x = exit_site(pr, entry, &where, SITE_RET_EXIT);
	if (!x)
		return -ENOMEM;
	x->at = ra;
	snprintf(x->what, sizeof(x->what), "return site at 0x%llx", (unsigned long long)ra);
	struct diag_location caller = {.addr = ra, .func_start = func_start, .func_end = func_end};
	struct diag_bp *bp = diag_bp_at(&ep->bps, ra);
	const struct eng_slot *sl = bp ? diag_u64map_get(&ep->slots, bp->slot_page) : NULL;
	int r;
	if (e->no_fast) {
		r = why(x, "DIAG_NO_FASTPATH");
	} else if (bp && sl && sl->retsite) { /* another probe's return site (or a fork copy) */
		struct diag_error err = {0};
		r = join(e, ep, bp, x, &err);
		if (r < 0)
			why(x, "%s", err.msg);
	} else if (bp) {
		r = why(x, "another probe's patch is at this address");
	} else if (!func_end) {
		r = why(x, "no symbol covers the return address (the caller's bounds are unknown)");
	} else if (func_end <= ra || func_end - ra < DIAG_TRAMP_PATCH_LEN) {
		r = why(x, "fewer than %d bytes of the caller follow it", DIAG_TRAMP_PATCH_LEN);
	} else {
		struct diag_thread *t = eng_freeze(e, ep);
		/* the entry records made before the jump are read while it is not there: a
		 * frame they open is unwatched (its return may pass first), not watched */
		if (t)
			eng_fast_drain(e, ep);
		r = t ? place_retsite_jump(e, ep, t, x, &caller) : -DIAG_E_GONE;
		if (t) {
			learn_all(ep);
			eng_thaw(e, ep);
		}
	}
	pr->nretsites++;
	if (r == 0) {
		eng_fast_timer(e);
		return 0;
	}
	/* kept without a breakpoint: the address is not tried again */
	snprintf(whybuf, cap, "%s", x->why[0] ? x->why + 6 : diag_strerror(r));
	return r < 0 ? r : 1;
}

int eng_fast_place(struct diag_engine *e, struct eproc *ep, struct site *s,
		   const struct diag_location *loc, struct diag_error *err)
{
	s->why[0] = '\0';
	struct diag_bp *bp = diag_bp_at(&ep->bps, loc->addr);
	if (bp && !bp->jump) { /* share the int3 already there, and its reason */
		const struct site *u = bp->nusers ? bp->users[0] : NULL;
		return u && u->why[0] ? why(s, "%s", u->why + 6)
				      : why(s, "another probe's int3 is at this address");
	}
	if (s->kind == SITE_END)
		return ineligible(e, ep, s, loc) ? 1 : place_end(e, ep, s, loc, err);
	if (bp && bp->slot_page && s->kind == SITE_RET_ENTRY)
		return ineligible(e, ep, s, loc) ? 1
						 : place_return(e, ep, s, loc, bp, bp->patched_len, err);
	if (bp && bp->slot_page)
		return join(e, ep, bp, s, err);
	if (bp)
		return why(s, "an old trampoline is at this address");
	if (ineligible(e, ep, s, loc))
		return 1;
	struct diag_expr_capture cap;
	struct diag_error cerr = {0};
	if (compile_for(NULL, s, NULL, &cap, &cerr) < 0)
		return why(s, "%s", cerr.msg);
	size_t room = loc->func_end - loc->addr;
	struct diag_error quiet = {0};
	int span = diag_bp_jump_span(ep->tp, loc->addr, room, &quiet);
	int r = 1;
	if (span <= 0 || (size_t)span > room)
		why(s, "%s", quiet.msg[0] ? quiet.msg : "the instructions there cannot be moved");
	else if (!range_free(&ep->bps, loc->addr, (size_t)span))
		why(s, "another patch lies in the %d bytes a jump would replace", span);
	else if (branches_into(ep, loc, (size_t)span))
		why(s, "a branch of %s lands inside the patched bytes (0x%llx..0x%llx)",
		    loc->symbol[0] ? loc->symbol : "the function", (unsigned long long)loc->addr + 1,
		    (unsigned long long)loc->addr + (unsigned long long)span - 1);
	else
		r = 0;
	if (r) {
		diag_expr_capture_free(&cap);
		return 1;
	}
	if (s->kind == SITE_RET_ENTRY) {
		diag_expr_capture_free(&cap);
		return place_return(e, ep, s, loc, NULL, (size_t)span, err);
	}
	struct diag_thread *t = eng_freeze(e, ep);
	if (!t) {
		diag_expr_capture_free(&cap);
		return diag_error_set(err, -DIAG_E_GONE, "process %d exited", (int)ep->tp->pid);
	}
	r = place_new(e, ep, t, s, loc, &cap, (size_t)span);
	diag_expr_capture_free(&cap);
	learn_all(ep);
	eng_thaw(e, ep);
	eng_fast_timer(e);
	return r;
}

void eng_fast_leave(struct diag_engine *e, struct eproc *mem, struct diag_bp *bp,
		    struct site *s)
{
	struct diag_expr_capture cap;
	struct diag_error err = {0};
	if (!bp->slot_page || bp->nusers < 2 || compile_for(bp, NULL, s, &cap, &err) < 0)
		return; /* the old trampoline captures a little more than needed: still right */
	eng_fast_drain(e, mem);
	rebuild(e, mem, bp, &cap, all_counting(bp, NULL, s), &err);
	diag_expr_capture_free(&cap);
}

/* ---- slots: threads inside, retiring, faults ---- */

uint64_t eng_fast_unslot(const struct eproc *mem, uint64_t pc)
{
	const struct eng_slot *sl =
		diag_u64map_get(&mem->slots, pc & ~(uint64_t)(DIAG_TRAMP_SLOT - 1));
	if (!sl)
		return 0;
	uint64_t orig = 0;
	switch (diag_tramp_locate(&sl->layout, pc, &orig)) {
	case DIAG_TRAMP_RELOCATED:
		return orig;
	case DIAG_TRAMP_OUTSIDE: /* the header or past the code: not where a thread can be */
	case DIAG_TRAMP_RECORDING:
	case DIAG_TRAMP_MID_INSN:
	default:
		return 1;
	}
}

/* Move t out of the slot page sl (its jump is out, so a relocated copy continues at its
 * original); true when it is out. */
static bool move_out(struct eproc *mem, struct diag_thread *t, const struct eng_slot *sl)
{
	for (int steps = 0; steps < STEP_OUT; steps++) {
		diag_regs r;
		/* a step ran a program's faulting load (the fault is held in pending_sig): on to
		 * the landing, as at its signal stop, or it would step the load for ever */
		if ((t->pending_sig == SIGSEGV || t->pending_sig == SIGBUS) &&
		    eng_fast_fault(NULL, t, t->pending_sig))
			t->pending_sig = 0;
		if (diag_regs_read(t->tid, &r) < 0)
			return true; /* gone */
		uint64_t pc = diag_regs_pc(&r);
		if (pc < sl->page || pc >= sl->page + DIAG_TRAMP_SLOT) {
			unstep(t, &r, steps);
			return true;
		}
		uint64_t to = eng_fast_unslot(mem, pc);
		if (to > 1) {
			diag_regs_set_pc(&r, to);
			if (steps && diag_regs_stepping(&r))
				diag_regs_clear_step(&r);
			return diag_regs_write(t->tid, &r) == 0;
		}
		if (diag_thread_step(t) < 0)
			return false;
	}
	return false;
}

void eng_fast_reap(struct diag_engine *e, struct eproc *mem)
{
	(void)e;
	struct diag_thread *any = any_stopped(mem);
	uint64_t gone[64];
	size_t n = 0, pos = 0;
	uint64_t k;
	void *v;
	while (n < 64 && diag_u64map_next(&mem->slots, &pos, &k, &v)) {
		struct eng_slot *sl = v;
		if (!sl->retired)
			continue;
		bool inside = false;
		size_t tpos = 0;
		uint64_t tk;
		void *tv;
		while (diag_u64map_next(&mem->tp->threads, &tpos, &tk, &tv)) {
			struct diag_thread *t = tv;
			if (!t->stopped) /* running: it might be anywhere */
				inside = true;
			else if (!move_out(mem, t, sl))
				inside = true;
		}
		if (!inside && any)
			gone[n++] = k;
	}
	for (size_t i = 0; i < n; i++) {
		free(diag_u64map_del(&mem->slots, gone[i]));
		page_unmap(mem, any, gone[i]);
	}
}

bool eng_fast_fault(struct diag_engine *e, struct diag_thread *t, int sig)
{
	(void)e;
	if (sig != SIGSEGV && sig != SIGBUS)
		return false;
	struct eproc *mem = eproc_mem(eproc_of(t->proc));
	diag_regs r;
	siginfo_t si;
	if (!mem->slots.count || diag_regs_read(t->tid, &r) < 0)
		return false;
	uint64_t page = diag_regs_pc(&r) & ~(uint64_t)(DIAG_TRAMP_SLOT - 1);
	const struct eng_slot *sl = diag_u64map_get(&mem->slots, page);
	if (!sl || diag_thread_siginfo(t->tid, &si) < 0 || si.si_signo != sig ||
	    si.si_code <= 0) /* a kill(2) of SIGSEGV is the target's own */
		return false;
	/* the header as the daemon built it: the target's copy could say anything */
	if (!diag_tramp_fault_repair(&r, page, &sl->hdr, (uint64_t)(uintptr_t)si.si_addr))
		return false;
	return diag_regs_write(t->tid, &r) == 0;
}

/* ---- fork ---- */

void eng_fast_fork(struct diag_engine *e, struct eproc *child, struct eproc *parent)
{
	(void)e;
	if (!parent->ring_addr || child->tp->mem_owner)
		return;
	child->ring_addr = parent->ring_addr;
	child->ring_bytes = parent->ring_bytes;
	child->ring_nsubs = parent->ring_nsubs;
	child->ring_sub_units = parent->ring_sub_units;
	child->ring_sub_stride = parent->ring_sub_stride;
	child->ring_counters = parent->ring_counters;
	/* the child's control block is a copy of the parent's: so is its table (the forking
	 * thread keeps its slot; the parent's other threads' slots stay taken, harmlessly) */
	memcpy(child->ring_slot_tp, parent->ring_slot_tp, sizeof(child->ring_slot_tp));
	memcpy(child->ring_slot_tid, parent->ring_slot_tid, sizeof(child->ring_slot_tid));
	memcpy(child->ring_slot_sub, parent->ring_slot_sub, sizeof(child->ring_slot_sub));
	child->next_site = parent->next_site;
	/* the child's copy holds the parent's unconsumed records: they are the parent's */
	for (uint64_t i = 0; i < child->ring_nsubs; i++) {
		struct diag_ring_header h = {0};
		diag_proc_read(child->tp, sub_base(child, i), &h, sizeof(h));
		uint64_t head = h.head;
		child->ring_tails[i] = head;
		child->ring_stalls[i] = 0;
		child->ring_sub_drops[i] = h.drops; /* the parent's: not a gap in the child's */
		diag_proc_write(child->tp, sub_base(child, i) + offsetof(struct diag_ring_header, tail),
				&head, sizeof(head));
	}
	size_t pos = 0;
	uint64_t k;
	void *v;
	while (diag_u64map_next(&child->bps.by_addr, &pos, &k, &v)) {
		struct diag_bp *bp = v;
		if (bp->jump)
			diag_u64map_put(&child->jumps, bp->site_id, bp);
	}
	pos = 0;
	while (diag_u64map_next(&parent->slots, &pos, &k, &v)) {
		struct eng_slot *sl = malloc(sizeof(*sl));
		if (sl) {
			*sl = *(const struct eng_slot *)v;
			sl->adopt = 0;
			size_t bpos = 0;
			uint64_t bk;
			void *bv;
			while (diag_u64map_next(&parent->bps.by_addr, &bpos, &bk, &bv))
				if (((struct diag_bp *)bv)->slot_page == k)
					sl->adopt = ((struct diag_bp *)bv)->nusers;
			if (diag_u64map_put(&child->slots, k, sl) < 0)
				free(sl);
		}
	}
}
