/* safety_install: installs the SIGTRAP safety handler (built by lib/arch, arch/safety.h) into
 * a target before its first int3 (mapped, written, and our action chained over the target's
 * own), keeps the handler's address table in the target in step with every int3 (covered
 * before the int3 is written, tombstoned after its byte is back: breakpoints.c's hooks call
 * it), copies it at fork and takes it all out at detach. With it, a target whose daemon dies
 * (kill -9, crash, OOM) keeps running through the int3s left behind instead of dying of
 * SIGTRAP. See docs/reliability.md. Never places or removes a breakpoint itself. */
#include "engine/engine_internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>

#include "arch/safety.h"

#define SAFETY_ENTRIES 2048 /* int3 addresses per process (3/4 of it usable) */

struct eng_safety {
	struct diag_safety_layout l;
	struct diag_safety_table t;
	struct diag_ksigaction old; /* the target's own SIGTRAP action before ours */
	uint64_t tomb_seq;
	uint64_t map_len;
};

static int write_u64(struct eproc *ep, uint64_t addr, uint64_t v)
{
	return diag_proc_write(ep->tp, addr, &v, sizeof(v)) == sizeof(v) ? 0 : -EIO;
}

int eng_safety_arm(struct eproc *ep, const struct diag_bp *bp)
{
	uint64_t addr = bp->addr, slot = bp->slot;
	size_t idx;
	int r = diag_safety_table_put(&ep->safety->t, addr, slot, &idx);
	if (r == -EEXIST)
		return 0;
	if (r < 0)
		return r;
	uint64_t b = diag_safety_bucket_addr(&ep->safety->l, idx);
	/* slot first, then the address: a half-written bucket has no address, so it is unused */
	if ((r = write_u64(ep, b + 8, slot)) == 0)
		r = write_u64(ep, b, addr);
	return r;
}

void eng_safety_disarmed(struct eproc *ep, const struct diag_bp *bp)
{
	uint64_t addr = bp->addr;
	struct eng_safety *s = ep->safety;
	size_t idx;
	/* the original byte is back: tombstone first (a thread that trapped just before is
	 * sent back to addr), then the bucket */
	write_u64(ep, diag_safety_tomb_addr(&s->l, s->tomb_seq++), addr);
	if (diag_safety_table_del(&s->t, addr, &idx) == 0)
		write_u64(ep, diag_safety_bucket_addr(&s->l, idx), DIAG_SAFETY_DELETED);
}

static int install(struct eproc *ep, struct diag_thread *t, struct eng_safety *s,
		   struct diag_error *err)
{
	size_t len = diag_safety_size(SAFETY_ENTRIES);
	s->map_len = (len + 4095) & ~4095ULL;
	long args[6] = {0, (long)s->map_len, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1,
			0},
	     ret;
	int r = diag_thread_syscall(t, SYS_mmap, args, &ret);
	if (r == 0 && ret < 0 && ret > -4096)
		r = (int)ret;
	if (r < 0)
		return diag_error_set(err, r, "cannot map the SIGTRAP safety handler: %s",
				      diag_strerror(r));
	uint8_t *blob = malloc(len);
	if (!blob)
		return diag_error_set(err, -ENOMEM, "out of memory");
	r = diag_safety_build((uint64_t)ret, SAFETY_ENTRIES, blob, len, &len, &s->l, err);
	if (r == 0 && diag_proc_write(ep->tp, s->l.page_addr, blob, len) != (ssize_t)len)
		r = diag_error_set(err, -EIO, "cannot write the SIGTRAP safety handler");
	free(blob);
	struct diag_ksigaction ours, check;
	/* install ours, chaining to whatever was there; if the target changed its action in
	 * between, record that one instead and install again */
	for (int tries = 0; r == 0 && tries < 3; tries++) {
		if ((r = diag_thread_sigaction(t, SIGTRAP, NULL, &s->old)) < 0 ||
		    diag_proc_write(ep->tp, s->l.old_action, &s->old, sizeof(s->old)) < 0)
			break;
		diag_safety_action(&s->l, &s->old, &ours);
		if ((r = diag_thread_sigaction(t, SIGTRAP, &ours, &check)) < 0)
			break;
		if (memcmp(&check, &s->old, sizeof(check)) == 0)
			return 0;
	}
	if (r == 0)
		r = -EAGAIN;
	long un[6] = {(long)s->l.page_addr, (long)s->map_len, 0, 0, 0, 0};
	diag_thread_syscall(t, SYS_munmap, un, &ret);
	return diag_error_set(err, r, "cannot install the SIGTRAP safety handler: %s",
			      diag_strerror(r));
}

/* A thread blocking SIGTRAP turns an int3 into a forced signal that makes the kernel reset
 * the process's SIGTRAP action to the default and unblock it in that thread: the target's
 * signal state would change, and the safety handler would be gone. Returns such a tid, or 0. */
static pid_t sigtrap_blocker(struct diag_proc *p)
{
	pid_t pid = p->pid;
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	struct dirent *de;
	pid_t found = 0;
	while (d && !found && (de = readdir(d))) {
		pid_t tid = (pid_t)atoi(de->d_name);
		const struct diag_thread *t = tid > 0 ? diag_proc_thread(p, tid) : NULL;
		if (!t || t->event == PTRACE_EVENT_CLONE)
			continue; /* see below */
		unsigned long long blk = 0;
		char state[8] = "";
		/* /proc/TID: the thread's own state and mask, as in /proc/PID/task/TID */
		diag_proc_stat_field(tid, 3, state, sizeof(state));
		diag_proc_status_field(tid, "SigBlk", 16, &blk);
		/* Not the target's own choice: glibc blocks every signal for the length of a
		 * pthread_create, so its creator stopped at the clone event (reaped or not yet: a
		 * ptrace stop we have not seen) and the new thread (not claimed yet, so not tracked)
		 * show it; an untracked thread may also be one exec killed. Seen after every exec of a
		 * 4-thread target whose library probe was placed while main started its threads. */
		if (state[0] == 't' && !t->stopped)
			continue;
		if (blk & (1ULL << (SIGTRAP - 1)))
			found = tid;
	}
	if (d)
		closedir(d);
	return found;
}

int eng_safety_ensure(struct diag_engine *e, struct eproc *ep, struct diag_thread **stopped,
			struct diag_error *err)
{
	pid_t blocker = ep->tp->mem_owner ? 0 : sigtrap_blocker(ep->tp);
	if (blocker)
		return diag_error_set(err, -DIAG_E_STATE,
				      "thread %d of process %d blocks SIGTRAP: an int3 would reset "
				      "its SIGTRAP action and signal mask; only registers-only values "
				      "(jump probes) can be used here",
				      (int)blocker, (int)ep->tp->pid);
	if (ep->safety || ep->tp->mem_owner)
		return 0;
	if (!*stopped && !(*stopped = eng_stop_one(e, ep)))
		return diag_error_set(err, -DIAG_E_GONE, "process %d has no thread left",
				      (int)ep->tp->pid);
	struct eng_safety *s = calloc(1, sizeof(*s));
	if (!s)
		return diag_error_set(err, -ENOMEM, "out of memory");
	int r = diag_safety_table_init(&s->t, SAFETY_ENTRIES);
	if (r == 0)
		r = install(ep, *stopped, s, err);
	if (r < 0) {
		diag_safety_table_fini(&s->t);
		free(s);
		return r;
	}
	ep->safety = s;
	eng_journal_map(ep, s->l.page_addr, s->map_len, "safety");
	eng_journal_sigaction(ep, s->l.handler, &s->old);
	/* int3s placed before the handler existed (none normally) get covered now */
	size_t pos = 0;
	uint64_t k;
	void *v;
	while (diag_u64map_next(&ep->bps.by_addr, &pos, &k, &v)) {
		const struct diag_bp *bp = v;
		if (!bp->jump)
			eng_safety_arm(ep, bp);
	}
	return 0;
}

void eng_safety_remove(struct eproc *ep, struct diag_thread *t)
{
	struct eng_safety *s = ep->safety;
	if (!s)
		return;
	struct diag_ksigaction cur;
	if (t && diag_thread_sigaction(t, SIGTRAP, &s->old, &cur) == 0 && cur.handler != s->l.handler)
		diag_thread_sigaction(t, SIGTRAP, &cur, &cur); /* the target set its own since: keep it */
	if (t) {
		long args[6] = {(long)s->l.page_addr, (long)s->map_len, 0, 0, 0, 0}, ret;
		diag_thread_syscall(t, SYS_munmap, args, &ret);
	}
	eng_safety_forget(ep);
}

void eng_safety_forget(struct eproc *ep)
{
	if (!ep->safety)
		return;
	diag_safety_table_fini(&ep->safety->t);
	free(ep->safety);
	ep->safety = NULL;
}

int eng_safety_fork(struct eproc *child, const struct eproc *parent)
{
	if (!parent->safety || child->tp->mem_owner)
		return 0;
	struct eng_safety *s = malloc(sizeof(*s));
	if (!s)
		return -ENOMEM;
	*s = *parent->safety;
	if (diag_safety_table_init(&s->t, parent->safety->t.n) < 0) {
		free(s);
		return -ENOMEM;
	}
	memcpy(s->t.e, parent->safety->t.e, parent->safety->t.n * sizeof(*s->t.e));
	s->t.live = parent->safety->t.live;
	child->safety = s; /* the child's copy of the blob, action and table */
	return 0;
}
