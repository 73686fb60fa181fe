/* journal_recover: reading the journals journal.c writes. At attach, a predecessor's journal
 * for the process is replayed backwards: with every thread frozen, its original bytes are
 * restored where our int3 or jump is still there (checked against the file), threads are
 * stepped out of its pages, a SIGTRAP queued for one of its int3s is cancelled, the target's
 * own SIGTRAP action (and the SIGSEGV and SIGBUS actions under the fault guard) come back and
 * the pages are unmapped. At engine start and every attach,
 * journals nobody will recover are swept. Never writes a journal line. */
#include "engine/engine_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "arch/safety.h"
#include "arch/trampoline.h"

#define MAX_RECOVER 4096
#define MAX_PAGES 1024 /* xol regions, the ring, capture slot pages (one each) */

/* ---- recovery: a predecessor's patches ---- */

struct jpatch {
	uint64_t addr, target; /* slot (int3) or trampoline (jump) */
	bool jump, live;
	uint8_t orig[24];
	size_t len;
};

struct jstate {
	struct jpatch *p;
	size_t np;
	uint64_t pages[MAX_PAGES][2];
	bool handler[MAX_PAGES]; /* the page holds a signal handler (safety, guard) */
	size_t npages;
	bool have_sig;
	uint64_t ours;
	struct diag_ksigaction old;
	struct {               /* "A" lines: our action over another signal's */
		int sig;
		uint64_t ours;
		struct diag_ksigaction old;
	} acts[8];
	size_t nacts;
};

static void parse_line(struct jstate *js, const char *line)
{
	unsigned long long a, b, c, d, f;
	int sig;
	char kind[8], orig[64], what[16];
	if (sscanf(line, "P %llx %7s %63s %llx", &a, kind, orig, &b) == 4 && js->np < MAX_RECOVER) {
		struct jpatch *p = &js->p[js->np++];
		*p = (struct jpatch){.addr = a, .target = b, .jump = !strcmp(kind, "jump"), .live = true};
		p->len = strlen(orig) / 2 < sizeof(p->orig) ? strlen(orig) / 2 : sizeof(p->orig);
		for (size_t i = 0; i < p->len; i++) {
			unsigned v;
			sscanf(orig + 2 * i, "%2x", &v);
			p->orig[i] = (uint8_t)v;
		}
	} else if (sscanf(line, "U %llx", &a) == 1) {
		for (size_t i = js->np; i-- > 0;)
			if (js->p[i].addr == a && js->p[i].live) {
				js->p[i].live = false;
				break;
			}
	} else if (sscanf(line, "M %llx %llx %15s", &a, &b, what) == 3 && !strcmp(what, "unmapped")) {
		/* a slot page we unmapped: the address may be the target's own mapping by now */
		for (size_t i = js->npages; i-- > 0;)
			if (js->pages[i][0] == a && js->pages[i][1] == b) {
				js->pages[i][0] = js->pages[--js->npages][0];
				js->pages[i][1] = js->pages[js->npages][1];
				js->handler[i] = js->handler[js->npages];
				break;
			}
	} else if (sscanf(line, "M %llx %llx %15s", &a, &b, what) == 3 && js->npages < MAX_PAGES) {
		js->handler[js->npages] = !strcmp(what, "safety") || !strcmp(what, "guard");
		js->pages[js->npages][0] = a;
		js->pages[js->npages++][1] = b;
	} else if (sscanf(line, "A %d %llx %llx %llx %llx %llx", &sig, &a, &b, &c, &d, &f) == 6 &&
		   js->nacts < sizeof(js->acts) / sizeof(js->acts[0])) {
		js->acts[js->nacts].sig = sig;
		js->acts[js->nacts].ours = a;
		js->acts[js->nacts++].old = (struct diag_ksigaction){b, c, d, f};
	} else if (sscanf(line, "S %llx %llx %llx %llx %llx", &a, &b, &c, &d, &f) == 5) {
		js->have_sig = true;
		js->ours = a;
		js->old = (struct diag_ksigaction){b, c, d, f};
	}
}

/* 0: outside every page; 1: in a slot, trampoline or ring page; 2: in a handler (safety, guard) */
static int in_pages(const struct jstate *js, uint64_t pc)
{
	for (size_t i = 0; i < js->npages; i++)
		if (pc >= js->pages[i][0] && pc < js->pages[i][0] + js->pages[i][1])
			return js->handler[i] ? 2 : 1;
	return 0;
}

/* A load of a capture program in a slot page faulted (a bad pointer the target handed it):
 * the thread stopped with the SIGSEGV or SIGBUS, at the load. Resume it at the slot's landing
 * instead, as the tracer (or the guard) would have, and drop the signal. The header is the
 * target's copy (the predecessor's own is gone): the repair can only move the pc inside the
 * same slot's code. */
static void repair_capture_fault(struct diag_thread *t)
{
	if (t->pending_sig != SIGSEGV && t->pending_sig != SIGBUS)
		return;
	diag_regs r;
	siginfo_t si;
	struct diag_tramp_slot_header h;
	if (diag_regs_read(t->tid, &r) < 0)
		return;
	uint64_t slot = diag_regs_pc(&r) & ~(uint64_t)(DIAG_TRAMP_SLOT - 1);
	if (diag_thread_siginfo(t->tid, &si) < 0 || si.si_signo != t->pending_sig ||
	    si.si_code <= 0 || /* a kill(2) of the signal is the target's own */
	    diag_proc_read(t->proc, slot, &h, sizeof(h)) != (ssize_t)sizeof(h) ||
	    !diag_tramp_fault_repair(&r, slot, &h, (uint64_t)(uintptr_t)si.si_addr) ||
	    diag_regs_write(t->tid, &r) < 0)
		return;
	t->pending_sig = 0;
}

/* Step a thread out of the predecessor's pages (its slot or trampoline runs to the end: a
 * capture program copying a string may take tens of thousands of steps). A
 * thread caught in the safety handler or the fault guard leaves it through the restorer and
 * rt_sigreturn, which puts it back in a slot: keep stepping past that before judging it out.
 * A capture program's fault under the step is repaired as the guard would (no signal). */
static void step_out(struct diag_thread *t, const struct jstate *js)
{
	int after_handler = 0;
	for (int steps = 0; steps < 65536; steps++) {
		diag_regs r;
		if (diag_regs_read(t->tid, &r) < 0)
			return;
		int where = in_pages(js, diag_regs_pc(&r));
		if (where == 1 && t->pending_sig) {
			repair_capture_fault(t);
			if (diag_regs_read(t->tid, &r) < 0)
				return;
		}
		if (where == 2)
			after_handler = 64; /* the restorer and sigreturn are a few steps away */
		if (!where && !after_handler) {
			if (steps && diag_regs_stepping(&r)) { /* see leave_slots: no trap flag left */
				diag_regs_clear_step(&r);
				diag_regs_write(t->tid, &r);
			}
			return;
		}
		if (!where)
			after_handler--;
		else if (where == 1)
			after_handler = 0; /* back in a slot after sigreturn: run it out */
		if (diag_thread_step(t) < 0)
			return;
	}
}

static bool trap_queued(pid_t tid)
{
	unsigned long long pnd = 0;
	return diag_proc_status_field(tid, "SigPnd", 16, &pnd) && (pnd & (1ULL << (SIGTRAP - 1)));
}

/* An int3 hit just before our interrupt leaves its SIGTRAP queued behind the interrupt stop
 * (the kernel reports a ptrace trap before it dequeues signals). Once the target's own action
 * is back, that signal would kill it: dequeue it now (a resume delivers it to us first, before
 * any instruction runs), cancel it and rewind to the restored instruction. */
static void take_queued_trap(struct diag_thread *t, const struct jstate *js)
{
	if (!trap_queued(t->tid))
		return;
	siginfo_t si;
	diag_regs r;
	/* the step stops for the queued signal first; any other signal is kept in pending_sig */
	int before = t->pending_sig;
	t->pending_sig = 0;
	if (diag_thread_step(t) < 0) {
		t->pending_sig = before;
		return;
	}
	if (t->pending_sig)
		return;
	t->pending_sig = before;
	if (diag_regs_read(t->tid, &r) < 0)
		return;
	if (diag_thread_siginfo(t->tid, &si) < 0 || si.si_code != SI_KERNEL)
		return; /* the step itself: nothing was queued after all */
	for (size_t i = 0; i < js->np; i++)
		if (!js->p[i].jump && js->p[i].addr == diag_regs_trap_addr(&r)) {
			diag_regs_set_pc(&r, diag_regs_trap_addr(&r));
			diag_regs_write(t->tid, &r);
			return; /* resumed without the signal: cancelled */
		}
	t->pending_sig = SIGTRAP; /* the target's own trap: deliver it */
}

/* The bytes the file has at addr, for the check of a restore. */
static bool file_bytes(const struct diag_modmap *mods, uint64_t addr, uint8_t *out, size_t n)
{
	const struct diag_module *m = diag_modmap_find(mods, addr);
	if (!m)
		return false;
	char path[128];
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)mods->pid);
	FILE *f = fopen(path, "re");
	char line[512];
	bool ok = false;
	while (f && !ok && fgets(line, sizeof(line), f)) {
		unsigned long long lo, hi, off;
		if (sscanf(line, "%llx-%llx %*s %llx", &lo, &hi, &off) != 3 || addr < lo || addr >= hi ||
		    !strstr(line, m->path))
			continue;
		int fd = open(m->host_path, O_RDONLY | O_CLOEXEC);
		ok = fd >= 0 && pread(fd, out, n, (off_t)(addr - lo + off)) == (ssize_t)n;
		if (fd >= 0)
			close(fd);
	}
	if (f)
		fclose(f);
	return ok;
}

static void restore(struct eproc *ep, const struct jpatch *p, const struct diag_modmap *mods,
		    struct diag_journal_report *rep)
{
	uint8_t cur[24], want[24];
	if (diag_proc_read(ep->tp, p->addr, cur, p->len) != (ssize_t)p->len)
		return;
	memcpy(want, p->orig, p->len);
	if (p->jump) {
		int32_t rel = (int32_t)(p->target - (p->addr + 5));
		want[0] = 0xe9;
		memcpy(want + 1, &rel, 4);
	} else {
		want[0] = 0xcc;
	}
	size_t plen = p->jump ? 5 : 1;
	if (memcmp(cur, want, plen) != 0)
		return; /* not ours (any more): leave it */
	/* only what we wrote: the rest of a jump's displaced bytes was never touched by us, and
	 * may be the target's own rewrite by now */
	if (diag_proc_write(ep->tp, p->addr, p->orig, plen) == (ssize_t)plen)
		rep->restored++;
	uint8_t file[24];
	if (file_bytes(mods, p->addr, file, p->len) && memcmp(file, p->orig, p->len) != 0)
		rep->mismatched++; /* the code was not the file's before the predecessor either */
}

/* The action journaled as ours over `old` for sig: put old back if ours is still there. */
static void restore_action(struct diag_thread *t, int sig, uint64_t ours,
			   const struct diag_ksigaction *old)
{
	struct diag_ksigaction cur;
	if (diag_thread_sigaction(t, sig, NULL, &cur) == 0 && cur.handler == ours)
		diag_thread_sigaction(t, sig, old, NULL);
}

/* ---- sweeping: journals nobody will ever recover ---- */

/* Nothing of ours is left in the process it names: no live patch, no page, no action. */
static bool journal_clean(const char *path)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	struct jstate js = {.p = calloc(MAX_RECOVER, sizeof(*js.p))};
	char line[512];
	while (js.p && fgets(line, sizeof(line), f))
		parse_line(&js, line);
	fclose(f);
	bool live = !js.p || js.npages || js.have_sig || js.nacts;
	for (size_t i = 0; !live && i < js.np; i++)
		live = js.p[i].live;
	free(js.p);
	return !live;
}

/* A journal is for the process that started at its STARTTIME under its PID: once that process
 * is gone (or the pid is another's now) nobody can recover it, and every later recovery would
 * skip it again. A clean one (a daemon killed before its first patch) is useless too, unless a
 * daemon traces that process right now and is about to append to it. */
void eng_journal_sweep(struct diag_engine *e)
{
	DIR *d = e->journal_dir[0] ? opendir(e->journal_dir) : NULL;
	if (!d)
		return;
	for (struct dirent *de; (de = readdir(d));) {
		int pid = 0;
		unsigned long long st = 0;
		char tail;
		if (sscanf(de->d_name, "%d-%llu%c", &pid, &st, &tail) != 2 || pid <= 0)
			continue; /* not a journal: not ours to remove */
		char path[sizeof(e->journal_dir) + sizeof(de->d_name) + 2];
		snprintf(path, sizeof(path), "%s/%s", e->journal_dir, de->d_name);
		bool gone = eng_journal_starttime(pid) != st; /* 0 when /proc/PID is gone */
		unsigned long long tracer = 1;
		if (gone || (diag_proc_status_field(pid, "TracerPid", 10, &tracer) && tracer == 0 &&
			     journal_clean(path)))
			unlink(path);
	}
	closedir(d);
}

int eng_journal_recover(struct diag_engine *e, struct eproc *ep, struct diag_journal_report *rep)
{
	char path[sizeof(ep->journal_path)];
	memset(rep, 0, sizeof(*rep));
	if (!e->journal_dir[0])
		return 0;
	eng_journal_path(e, ep->tp->pid, path, sizeof(path));
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	struct jstate js = {.p = calloc(MAX_RECOVER, sizeof(*js.p))};
	char line[512];
	while (js.p && fgets(line, sizeof(line), f))
		parse_line(&js, line);
	fclose(f);
	rep->found = true;
	struct diag_thread *t = js.p ? eng_freeze(e, ep) : NULL;
	if (!t) {
		free(js.p);
		return js.p ? -DIAG_E_GONE : -ENOMEM;
	}
	struct diag_modmap mods = {0};
	diag_modmap_read(ep->tp->pid, &mods, NULL);
	for (size_t i = 0; i < js.np; i++)
		if (js.p[i].live)
			restore(ep, &js.p[i], &mods, rep);
	diag_modmap_release(&mods);
	size_t pos = 0;
	uint64_t k;
	void *v;
	while (diag_u64map_next(&ep->tp->threads, &pos, &k, &v))
		if (((struct diag_thread *)v)->stopped) {
			take_queued_trap(v, &js);
			step_out(v, &js);
		}
	/* the target's own actions back, unless it set others since */
	if (js.have_sig)
		restore_action(t, SIGTRAP, js.ours, &js.old);
	for (size_t i = js.nacts; i-- > 0;)
		restore_action(t, js.acts[i].sig, js.acts[i].ours, &js.acts[i].old);
	for (size_t i = 0; i < js.npages; i++) {
		long args[6] = {(long)js.pages[i][0], (long)js.pages[i][1], 0, 0, 0, 0}, ret;
		if (diag_thread_syscall(t, SYS_munmap, args, &ret) == 0 && ret == 0)
			rep->unmapped++;
	}
	eng_thaw(e, ep);
	free(js.p);
	unlink(path);
	return 0;
}

