/* ring: the hit ring of a process's capture trampolines (arch/ring.h: a control block,
 * per-thread sub-rings, the sites' counters), as the daemon sees and drains it. Made shared
 * when asked (diag_engine_set_ring_shared, --shared-ring) and it can: a memfd created in the
 * target (remote syscalls), mapped by the target and by
 * the daemon, so a drain reads records in place, with no system call, and still reads them
 * after the target's exec has taken its memory away (the last records before an exec are
 * delivered). A target that cannot take the memfd (a thread under a seccomp filter, no fd
 * left) gets a private anonymous mapping read with process_vm_readv, as before. Everything the target wrote is
 * hostile: a record is copied out of the shared pages once published and parsed from the copy,
 * the file is sealed against shrinking (the daemon's mapping can never fault), and every
 * index is bounded by the geometry the daemon made. No system call on the hit path: a record
 * names its thread by its thread pointer, which the daemon maps to a tid here (learnt while
 * threads are stopped). A full sub-ring drops hits (counted); a dead daemon stops refreshing
 * the heartbeat (control.alive_until) and the trampolines stop recording.
 * Owns the mapping (create, fork, exec, unmap), the daemon's view, the drain into hit.c and
 * exitjump.c, the counters and counting sites' delivery, the heartbeat, the thread table and
 * thread pointers, and the TSC calibration. Never places or removes a patch (fastpath.c). */
#include "engine/engine_internal.h"
#include "util/clock.h"
#include "util/procfs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "arch/record.h"
#include "capture/capture.h"

#define STALL_SKIP 1000          /* drains before an unpublished record is given up */
#define READ_CHUNK (64 * 1024)   /* bytes of a sub-ring read at once (> the largest record) */
#define HEARTBEAT_NS 200000000ULL /* the target records for this long past the last drain */
#define RING_SUBS 16             /* sub-rings per process (threads hash to them) */
#define RETURN_EVERY 4096        /* units consumed between stores of a sub-ring's tail */
#define PREFETCH_UNITS 8         /* how far ahead a drain fetches the shared ring */
#define RING_NAME "diag-ring"    /* the memfd's name (/proc/PID/maps shows it) */

_Static_assert(DIAG_ENGINE_RING_SUBS_MAX == DIAG_RING_MAX_SUBS, "engine.h names the sub-rings of arch/ring.h");
_Static_assert(READ_CHUNK >= DIAG_RING_REC_HDR + DIAG_CAP_MAX_PAYLOAD + DIAG_RING_UNIT,
	       "a read chunk holds the largest record");

/* ---- the daemon's view: its own mapping when shared, else the target's memory ---- */

/* The daemon's address of [addr, addr + len) of ep's ring; NULL when not shared or out of it. */
static void *local_at(const struct eproc *ep, uint64_t addr, size_t len)
{
	if (!ep->ring_local || addr < ep->ring_addr || addr - ep->ring_addr > ep->ring_bytes ||
	    len > ep->ring_bytes - (addr - ep->ring_addr))
		return NULL;
	return ep->ring_local + (addr - ep->ring_addr);
}

/* Fields the target changes concurrently are read and written whole (u64, aligned). */
static bool ring_u64(const struct eproc *ep, uint64_t addr, uint64_t *v)
{
	const uint64_t *p = local_at(ep, addr, sizeof(*v));
	if (p) {
		*v = __atomic_load_n(p, __ATOMIC_ACQUIRE);
		return true;
	}
	return diag_proc_read(ep->tp, addr, v, sizeof(*v)) == (ssize_t)sizeof(*v);
}

static void ring_set_u64(const struct eproc *ep, uint64_t addr, uint64_t v)
{
	uint64_t *p = local_at(ep, addr, sizeof(v));
	if (p)
		__atomic_store_n(p, v, __ATOMIC_RELEASE);
	else
		diag_proc_write(ep->tp, addr, &v, sizeof(v));
}

/* What only the daemon writes, or the target does not touch while it is written. */
static bool ring_put(const struct eproc *ep, uint64_t addr, const void *buf, size_t len)
{
	void *p = local_at(ep, addr, len);
	if (p) {
		memcpy(p, buf, len);
		return true;
	}
	return diag_proc_write(ep->tp, addr, buf, len) == (ssize_t)len;
}

/* ep has a ring the daemon may write (not a fork child's inherited parent's: ring_foreign) */
static bool ring_ours(const struct eproc *ep)
{
	return ep->ring_addr && !ep->ring_foreign;
}

/* ---- geometry, clock, heartbeat ---- */

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
	ring_set_u64(ep, ep->ring_addr + offsetof(struct diag_ring_control, alive_until),
		     diag_record_ticks() + ticks);
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
	if (!ring_ours(ep))
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

/* ---- the thread table ---- */

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
	if (!ring_ours(ep) || (ep->ring_slot_tp[slot] && ep->ring_slot_tp[slot] != tp))
		return;
	if (ep->ring_slot_tp[slot] == tp) { /* a stack reused: the thread before had this slot */
		ep->ring_slot_tid[slot] = t->tid;
		return;
	}
	struct diag_ring_tpslot ts = {.thread = tp, .sub = least_used_sub(ep)};
	if (!ring_put(ep, ep->ring_addr + DIAG_RING_TP_TABLE + slot * sizeof(ts), &ts, sizeof(ts)))
		return;
	ep->ring_slot_tp[slot] = tp;
	ep->ring_slot_tid[slot] = t->tid;
	ep->ring_slot_sub[slot] = (uint8_t)ts.sub;
}

/* t is gone: its slot (if it still holds it) is free for the next thread there. */
static void slot_release(struct eproc *ep, uint64_t tp, pid_t tid)
{
	uint64_t slot = diag_ring_tp_slot(tp);
	if (!ring_ours(ep) || ep->ring_slot_tp[slot] != tp || ep->ring_slot_tid[slot] != tid)
		return;
	struct diag_ring_tpslot ts = {0};
	ring_put(ep, ep->ring_addr + DIAG_RING_TP_TABLE + slot * sizeof(ts), &ts, sizeof(ts));
	ep->ring_slot_tp[slot] = 0;
	ep->ring_slot_tid[slot] = 0;
}

/* ---- the mapping ---- */

static int remote(struct diag_thread *t, long nr, long a0, long a1, long a2, long a3, long a4,
		  long a5, long *ret)
{
	long args[6] = {a0, a1, a2, a3, a4, a5};
	int r = diag_thread_syscall(t, nr, args, ret);
	if (r < 0)
		return r;
	return *ret < 0 && *ret > -4096 ? (int)*ret : 0;
}

/* An anonymous private mapping of bytes in t's process (at addr when fixed: a fork child's
 * own over the shared one it inherited). */
static int map_private(struct diag_thread *t, uint64_t addr, uint64_t bytes, uint64_t *out)
{
	long ret;
	int r = remote(t, SYS_mmap, (long)addr, (long)bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | (addr ? MAP_FIXED : 0), -1, 0, &ret);
	*out = (uint64_t)ret;
	return r;
}

/* The daemon's mapping of the target's memfd tfd, sealed first so that the target can never
 * shrink it under the daemon (a SIGBUS in the daemon). */
static uint8_t *map_local(struct eproc *ep, int tfd, uint64_t bytes)
{
	int fd = diag_proc_dup_fd(ep->tp, tfd);
	if (fd < 0)
		return NULL;
	void *p = MAP_FAILED;
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0)
		p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	return p == MAP_FAILED ? NULL : p;
}

/* Replace t's anonymous mapping [addr, addr + bytes) by a memfd's, mapped by the daemon too
 * (ep->ring_local). On failure the anonymous mapping stays (the private ring) and 0 < ret. */
static int share(struct eproc *ep, struct diag_thread *t, uint64_t addr, uint64_t bytes)
{
	static const char name[] = RING_NAME;
	long fd, ret;
	/* A thread under a seccomp filter may be killed by a system call the filter does not
	 * expect (memfd_create is not in every allow list): such a target keeps the private
	 * ring, whose mmap every filter that lets the program allocate allows. */
	unsigned long long mode = 1;
	if (!diag_proc_status_field(t->tid, "Seccomp", 10, &mode) || mode != 0)
		return -EPERM;
	if (diag_proc_write(ep->tp, addr, name, sizeof(name)) != (ssize_t)sizeof(name))
		return -EIO;
	int r = remote(t, SYS_memfd_create, (long)addr, MFD_CLOEXEC | MFD_ALLOW_SEALING, 0, 0, 0,
		       0, &fd);
	if (r < 0)
		return r; /* no fd left: the private ring */
	uint8_t *local = NULL;
	r = remote(t, SYS_ftruncate, fd, (long)bytes, 0, 0, 0, 0, &ret);
	if (r == 0 && !(local = map_local(ep, (int)fd, bytes)))
		r = -ENOMEM;
	if (r == 0)
		r = remote(t, SYS_mmap, (long)addr, (long)bytes, PROT_READ | PROT_WRITE,
			   MAP_SHARED | MAP_FIXED, fd, 0, &ret);
	long cr;
	remote(t, SYS_close, fd, 0, 0, 0, 0, 0, &cr); /* the mapping keeps the file */
	if (r < 0) {
		if (local)
			munmap(local, bytes);
		char zero[sizeof(name)] = {0};
		diag_proc_write(ep->tp, addr, zero, sizeof(zero));
		return r;
	}
	ep->ring_local = local;
	return 0;
}

/* A fresh ring at ep->ring_addr: its control block and sub-ring headers. */
static bool ring_init(struct diag_engine *e, struct eproc *ep)
{
	struct diag_ring_control c = {
		.magic = DIAG_RING_MAGIC_V2, .nsubs = ep->ring_nsubs, .sub_units = ep->ring_sub_units,
		.sub_stride = ep->ring_sub_stride, .counters = ep->ring_counters,
		.alive_until = diag_record_ticks() + heartbeat_ticks(e),
		.hash_shift = ep->ring_nsubs > 1 ? 64 - log2_of(ep->ring_nsubs) : 64,
	};
	bool ok = ring_put(ep, ep->ring_addr, &c, sizeof(c));
	for (uint64_t i = 0; ok && i < ep->ring_nsubs; i++) {
		struct diag_ring_header h = {.mask = ep->ring_sub_units - 1};
		ok = ring_put(ep, sub_base(ep, i), &h, sizeof(h));
	}
	memset(ep->ring_tails, 0, sizeof(ep->ring_tails));
	memset(ep->ring_stalls, 0, sizeof(ep->ring_stalls));
	memset(ep->ring_sub_drops, 0, sizeof(ep->ring_sub_drops));
	ep->ring_drops = 0;
	ep->ring_skipped = 0;
	return ok;
}

static uint64_t learn(struct eproc *ep, struct diag_thread *t, bool *fresh);

int eng_ring_map(struct diag_engine *e, struct eproc *ep, struct diag_thread *t)
{
	uint64_t nsubs, units, addr;
	ring_geometry(e, &nsubs, &units);
	uint64_t stride = (sizeof(struct diag_ring_header) + units * DIAG_RING_UNIT + 4095) &
			  ~4095ULL; /* each sub-ring on pages of its own: no line is shared */
	uint64_t counters = DIAG_RING_CONTROL_BYTES + nsubs * stride;
	uint64_t bytes = (counters + nsubs * DIAG_RING_MAX_SITES * sizeof(uint64_t) + 4095) &
			 ~4095ULL;
	int r = map_private(t, 0, bytes, &addr);
	if (r < 0)
		return r;
	calibrate(e);
	ep->ring_addr = addr;
	ep->ring_bytes = bytes;
	ep->ring_nsubs = nsubs;
	ep->ring_sub_units = units;
	ep->ring_sub_stride = stride;
	ep->ring_counters = counters;
	ep->ring_local = NULL;
	if (e->ring_shared)
		share(ep, t, addr, bytes);
	if (!ring_init(e, ep)) {
		long ret;
		remote(t, SYS_munmap, (long)addr, (long)bytes, 0, 0, 0, 0, &ret);
		eng_ring_reset(ep);
		return -EIO;
	}
	eng_journal_map(ep, ep->ring_addr, bytes, "ring");
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

void eng_ring_reset(struct eproc *ep)
{
	if (ep->ring_local)
		munmap(ep->ring_local, ep->ring_bytes);
	ep->ring_local = NULL;
	ep->ring_addr = 0;
	ep->ring_foreign = false;
	slots_clear(ep);
	ep->ring_drops = 0;
	ep->ring_skipped = 0;
	diag_u64map_release(&ep->tps);
	diag_u64map_release(&ep->tp_tried);
	ep->tp_learn = false;
}

void eng_ring_unmap(struct eproc *ep, struct diag_thread *t)
{
	if (t && ep->ring_addr) {
		long ret;
		remote(t, SYS_munmap, (long)ep->ring_addr, (long)ep->ring_bytes, 0, 0, 0, 0, &ret);
	}
	eng_ring_reset(ep);
}

bool eng_ring_shared(const struct eproc *ep)
{
	return ep->ring_local != NULL;
}

size_t eng_ring_subs(const struct eproc *ep, struct diag_engine_ring_sub *out, size_t cap)
{
	unsigned threads[DIAG_RING_MAX_SUBS] = {0};
	size_t pos = 0, n = 0;
	uint64_t tp;
	void *v;
	while (diag_u64map_next(&ep->tps, &pos, &tp, &v)) {
		uint64_t s = sub_of_tp(ep, tp);
		if (s < DIAG_RING_MAX_SUBS)
			threads[s]++;
	}
	for (uint64_t s = 0; s < ep->ring_nsubs && n < cap; s++)
		if (threads[s] || ep->ring_sub_drops[s])
			out[n++] = (struct diag_engine_ring_sub){
				.sub = (unsigned)s, .threads = threads[s],
				.dropped = ep->ring_sub_drops[s]};
	return n;
}

/* ---- counters ---- */

uint64_t eng_fast_count(struct eproc *mem, const struct diag_bp *bp)
{
	uint64_t addrs[DIAG_RING_MAX_SUBS], vals[DIAG_RING_MAX_SUBS], sum = 0;
	size_t n = bp->jump && ring_ours(mem) ? (size_t)mem->ring_nsubs : 0;
	if (n && mem->ring_local) {
		for (size_t i = 0; i < n; i++) {
			uint64_t v = 0;
			ring_u64(mem, counter_addr(mem, i, bp->site_id), &v);
			sum += v;
		}
		return sum;
	}
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

/* ---- counting sites: their counters are their hits ---- */

bool eng_site_counting(const struct site *u)
{
	return u->kind == SITE_CALL && u->pr->counts && !u->value && !u->condition;
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

void eng_fast_learn_all(struct eproc *ep)
{
	size_t pos = 0;
	uint64_t k;
	void *v;
	bool fresh;
	while (diag_u64map_next(&ep->tp->threads, &pos, &k, &v))
		learn(ep, v, &fresh); /* no slot: these threads may have recorded already */
}

/* The tid of a record's thread pointer; 0 when it is not known yet and the record waits for
 * the next dispatch to learn it (-1: never learnt, a tid unknown; so is every unknown one in
 * the last drain of an image: its threads are gone). */
static pid_t tid_of(struct eproc *ep, uint64_t tp)
{
	void *v = diag_u64map_get(&ep->tps, tp);
	if (v)
		return (pid_t)(intptr_t)v;
	if (ep->ring_final || diag_u64map_get(&ep->tp_tried, tp))
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

/* ---- draining ---- */

static void consume(struct diag_engine *e, struct eproc *ep, const struct diag_ring_rec *rec,
		    size_t bytes, pid_t rtid)
{
	/* a record whose header does not fit in its units is malformed: not consumed; a payload
	 * longer than the record is too: nothing captured (every value reads as a fault) */
	uint32_t off, plen;
	if (!diag_ring_rec_payload(rec, bytes, &off, &plen))
		return;
	if (plen > bytes - off)
		plen = 0;
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
	struct diag_cap_snapshot snap;
	diag_cap_snapshot_init(&snap, (const uint8_t *)rec + off, plen,
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

/* Where a drain reads one sub-ring: base, and for a private ring the chunk of it in
 * e->drain_buf (units [at, at + have)). */
struct cursor {
	uint64_t base, head, at, have;
};

/* The record at unit u (before c->head) as a copy the target cannot change while it is parsed,
 * in e->drain_buf; *room: the most units a record there can have (records never wrap). NULL when
 * the sub-ring cannot be read. A record not published yet reads with a seq other than u + 1;
 * a published one is copied whole only once its seq has been read (acquire): a copy of the
 * shared pages taken first could hold the seq of a record and the rest of an older one. */
static const struct diag_ring_rec *rec_at(struct diag_engine *e, struct eproc *ep,
					  struct cursor *c, uint64_t u, uint64_t *room)
{
	uint64_t units = ep->ring_sub_units, off = u & (units - 1), max = units - off;
	if (max > c->head - u)
		max = c->head - u;
	if (max > READ_CHUNK / DIAG_RING_UNIT)
		max = READ_CHUNK / DIAG_RING_UNIT;
	*room = max;
	uint64_t addr = c->base + sizeof(struct diag_ring_header) + off * DIAG_RING_UNIT;
	const struct diag_ring_rec *shared = local_at(ep, addr, (size_t)max * DIAG_RING_UNIT);
	struct diag_ring_rec *copy = (void *)e->drain_buf;
	if (shared) {
		/* the lines ahead, written on the target's CPUs: fetched while this one is
		 * consumed (their miss was a tenth of the engine thread's time per record) */
		if (max > PREFETCH_UNITS)
			__builtin_prefetch((const char *)shared + PREFETCH_UNITS * DIAG_RING_UNIT);
		copy->seq = __atomic_load_n(&shared->seq, __ATOMIC_ACQUIRE);
		if (copy->seq != u + 1)
			return copy;
		uint16_t k = __atomic_load_n(&shared->units, __ATOMIC_RELAXED);
		if (k == 0 || k > max) {
			copy->units = k; /* malformed: the caller stops there */
			return copy;
		}
		memcpy(copy, shared, (size_t)k * DIAG_RING_UNIT);
		copy->seq = u + 1; /* what was checked, whatever the target wrote since */
		copy->units = k;
		return copy;
	}
	if (u < c->at || u >= c->at + c->have) {
		size_t len = (size_t)max * DIAG_RING_UNIT;
		if (diag_proc_read(ep->tp, addr, e->drain_buf, len) != (ssize_t)len)
			return NULL;
		c->at = u;
		c->have = max;
	}
	const struct diag_ring_rec *rec = (const void *)(e->drain_buf + (u - c->at) * DIAG_RING_UNIT);
	if (rec->seq == u + 1 && rec->units && rec->units <= max &&
	    u + rec->units > c->at + c->have) { /* it goes past the chunk: read from it */
		c->have = 0;
		return rec_at(e, ep, c, u, room);
	}
	return rec;
}

/* The records in [from, head) of a sub-ring that a drain gives up, from's never published:
 * it, and each published record behind it (found by its header: a published record's seq
 * names its own start unit, and a pad's site is 0). Counted, never consumed: what follows a
 * record that may still be written is not trusted. */
static uint64_t count_given_up(struct diag_engine *e, struct eproc *ep, uint64_t base,
			       uint64_t from, uint64_t head)
{
	struct cursor c = {.base = base, .head = head};
	uint64_t n = 1, room;
	for (uint64_t u = from + 1; u < head;) {
		const struct diag_ring_rec *rec = rec_at(e, ep, &c, u, &room);
		if (!rec)
			break;
		if (rec->seq == u + 1 && rec->units && rec->units <= room) {
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
	uint64_t base = sub_base(ep, sub), units = ep->ring_sub_units, head, sub_drops;
	if (!ring_u64(ep, base + offsetof(struct diag_ring_header, head), &head) ||
	    !ring_u64(ep, base + offsetof(struct diag_ring_header, drops), &sub_drops))
		return false;
	uint64_t tail = ep->ring_tails[sub], given = tail;
	if (head < tail || head - tail > units)
		tail = head; /* not what a writer can do (the target wrote over it): start over */
	eng_wake_note(e, head - tail, units);
	/* records of this sub-ring were dropped since its last drain: a return probe's frames
	 * spanning the gap are not paired, on either side of what this drain consumes */
	bool lossy = sub_drops != ep->ring_sub_drops[sub];
	if (lossy)
		purge_sub(ep, sub);
	bool stalled = false;
	struct cursor c = {.base = base, .head = head};
	while (tail < head) {
		uint64_t room;
		const struct diag_ring_rec *rec = rec_at(e, ep, &c, tail, &room);
		if (!rec)
			break;
		if (rec->seq != tail + 1) {
			stalled = true; /* reserved, not published yet */
			break;
		}
		uint64_t k = rec->units;
		if (k == 0 || k > room) { /* malformed: the rest cannot be parsed */
			tail = head;
			break;
		}
		if (rec->site) {
			pid_t tid = tid_of(ep, rec->thread);
			if (tid == 0) {
				stalled = true; /* learnt at the next dispatch */
				ep->ring_stalls[sub] = 0;
				goto out;
			}
			consume(e, ep, rec, (size_t)k * DIAG_RING_UNIT, tid);
		}
		tail += k;
		ep->ring_stalls[sub] = 0;
		/* give the units back as they are consumed, not at the end: a drain of a long
		 * backlog takes tens of ms, and the writers would find the sub-ring full */
		if (tail - given >= RETURN_EVERY) {
			ring_set_u64(ep, base + offsetof(struct diag_ring_header, tail), tail);
			given = tail;
		}
	}
	/* A writer between reserving and publishing; one that died there (a thread killed
	 * mid-record) would block the sub-ring: give up what follows it eventually (at once in
	 * an image's last drain: nobody will publish it now). */
	if (stalled && (ep->ring_final || ++ep->ring_stalls[sub] > STALL_SKIP)) {
		ep->ring_skipped += count_given_up(e, ep, base, tail, head);
		tail = head;
		ep->ring_stalls[sub] = 0;
	}
out:
	if (lossy)
		purge_sub(ep, sub);
	ep->ring_sub_drops[sub] = sub_drops;
	ep->ring_tails[sub] = tail;
	if (tail != given)
		ring_set_u64(ep, base + offsetof(struct diag_ring_header, tail), tail);
	*drops = sub_drops;
	return true;
}

void eng_fast_drain(struct diag_engine *e, struct eproc *ep)
{
	if (!ring_ours(ep) || ep->draining)
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

void eng_ring_exec_drain(struct diag_engine *e, struct eproc *ep)
{
	if (!ep->ring_local)
		return; /* a private ring went with the old image's memory */
	ep->ring_final = true;
	eng_fast_drain(e, ep);
	ep->ring_final = false;
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
		eng_fast_learn_all(ep);
		eng_thaw(e, ep);
		/* a record whose thread pointer a stop of every thread did not name (its thread
		 * is gone since): named by no tid from now on */
		for (uint64_t s = 0; s < ep->ring_nsubs && e->drain_buf; s++) {
			uint64_t head, room;
			if (!ring_u64(ep, sub_base(ep, s) + offsetof(struct diag_ring_header, head),
				      &head) ||
			    head <= ep->ring_tails[s])
				continue;
			struct cursor c = {.base = sub_base(ep, s), .head = head};
			const struct diag_ring_rec *rec = rec_at(e, ep, &c, ep->ring_tails[s], &room);
			if (rec && rec->seq == ep->ring_tails[s] + 1 && rec->site &&
			    !diag_u64map_get(&ep->tps, rec->thread))
				diag_u64map_put(&ep->tp_tried, rec->thread, (void *)1);
		}
		eng_fast_drain(e, ep);
	}
}

/* ---- fork ---- */

/* The child's own ring over the parent's shared one it inherited, with the parent's control
 * block (its thread table: the forking thread keeps its slot) and counters (the child's sites
 * count from them, fast_base); empty sub-rings. */
static bool fork_own(struct diag_engine *e, struct eproc *child, const struct eproc *parent,
		     struct diag_thread *t)
{
	uint64_t addr;
	if (!t || map_private(t, parent->ring_addr, parent->ring_bytes, &addr) < 0 ||
	    addr != parent->ring_addr)
		return false;
	if (e->ring_shared)
		share(child, t, addr, parent->ring_bytes);
	bool ok = ring_init(e, child) &&
		  ring_put(child, addr, parent->ring_local, DIAG_RING_CONTROL_BYTES);
	/* the counters of the sites in use only: the rest are zero, and untouched pages stay
	 * unallocated (a fork storm of thousands of children) */
	size_t used = ((size_t)parent->next_site + 1) * sizeof(uint64_t);
	for (uint64_t i = 0; ok && i < child->ring_nsubs; i++) {
		uint64_t at = counter_addr(child, i, 0);
		ok = ring_put(child, at, parent->ring_local + (at - addr), used);
	}
	if (!ok && child->ring_local) {
		munmap(child->ring_local, child->ring_bytes);
		child->ring_local = NULL;
	}
	return ok;
}

void eng_ring_fork(struct diag_engine *e, struct eproc *child, struct eproc *parent,
		   struct diag_thread *t)
{
	child->ring_addr = parent->ring_addr;
	child->ring_bytes = parent->ring_bytes;
	child->ring_nsubs = parent->ring_nsubs;
	child->ring_sub_units = parent->ring_sub_units;
	child->ring_sub_stride = parent->ring_sub_stride;
	child->ring_counters = parent->ring_counters;
	child->ring_local = NULL;
	/* the child's control block is a copy of the parent's: so is its table (the forking
	 * thread keeps its slot; the parent's other threads' slots stay taken, harmlessly) */
	memcpy(child->ring_slot_tp, parent->ring_slot_tp, sizeof(child->ring_slot_tp));
	memcpy(child->ring_slot_tid, parent->ring_slot_tid, sizeof(child->ring_slot_tid));
	memcpy(child->ring_slot_sub, parent->ring_slot_sub, sizeof(child->ring_slot_sub));
	child->next_site = parent->next_site;
	if (parent->ring_local) {
		/* The child would write into its parent's ring, its hits named by the parent's
		 * thread pointers. Without a ring of its own (it could not be waited for, no
		 * memory) its trampolines still write there: its hits count as its parent's. */
		child->ring_foreign = !fork_own(e, child, parent, t);
		return;
	}
	/* a private ring: the child's copy holds the parent's unconsumed records, which are the
	 * parent's */
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
}
