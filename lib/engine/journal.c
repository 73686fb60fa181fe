/* journal: every patch the engine makes in a process, written down before it exists, so a
 * daemon that starts after a predecessor died (kill -9, crash, OOM) can take the patches back
 * out (journal_recover.c reads it). One file per process (DIR/PID-STARTTIME), one line per
 * fact, appended with a single write(2) each: the page cache keeps what a killed daemon wrote.
 * Lines: "P ADDR int3|jump ORIGHEX SLOT|TRAMPOLINE" a patch, "U ADDR" its removal, "M ADDR LEN
 * WHAT" a page mapped (WHAT "unmapped": a slot page unmapped since), "S OURS HANDLER FLAGS
 * RESTORER MASK" our SIGTRAP action over the target's, "A SIG OURS HANDLER FLAGS RESTORER MASK"
 * ours for another signal (the fault guard's).
 * Removed when the engine leaves a process cleanly. Owns the writing only: never reads a
 * journal back, never stops or touches the target. */
#include "engine/engine_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arch/safety.h"

static void jline(struct eproc *ep, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void jline(struct eproc *ep, const char *fmt, ...)
{
	if (ep->journal_fd < 0)
		return;
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0 && (size_t)n < sizeof(buf) && write(ep->journal_fd, buf, (size_t)n) != n)
		ep->journal_fd = ep->journal_fd; /* best effort: a full /run must not stop a probe */
}

static void hex(const uint8_t *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
	out[2 * n] = '\0';
}

void eng_journal_pages(struct eproc *ep)
{
	for (; ep->journal_regions < ep->bps.xol.n; ep->journal_regions++)
		jline(ep, "M %llx %llx xol\n",
		      (unsigned long long)ep->bps.xol.regions[ep->journal_regions].base,
		      (unsigned long long)DIAG_XOL_REGION_SIZE);
}

void eng_journal_map(struct eproc *ep, uint64_t addr, uint64_t len, const char *what)
{
	jline(ep, "M %llx %llx %s\n", (unsigned long long)addr, (unsigned long long)len, what);
}

void eng_journal_sigaction(struct eproc *ep, uint64_t ours, const void *old_action)
{
	const struct diag_ksigaction *o = old_action;
	jline(ep, "S %llx %llx %llx %llx %llx\n", (unsigned long long)ours,
	      (unsigned long long)o->handler, (unsigned long long)o->flags,
	      (unsigned long long)o->restorer, (unsigned long long)o->mask);
}

void eng_journal_action(struct eproc *ep, int sig, uint64_t ours, const void *old_action)
{
	const struct diag_ksigaction *o = old_action;
	jline(ep, "A %d %llx %llx %llx %llx %llx\n", sig, (unsigned long long)ours,
	      (unsigned long long)o->handler, (unsigned long long)o->flags,
	      (unsigned long long)o->restorer, (unsigned long long)o->mask);
}

void eng_journal_patch(struct eproc *ep, const struct diag_bp *bp)
{
	char orig[64];
	hex(bp->orig_bytes, bp->patched_len, orig);
	jline(ep, "P %llx %s %s %llx\n", (unsigned long long)bp->addr, bp->jump ? "jump" : "int3",
	      orig, (unsigned long long)(bp->jump ? bp->tramp : bp->slot));
}

void eng_journal_unpatch(struct eproc *ep, const struct diag_bp *bp)
{
	jline(ep, "U %llx\n", (unsigned long long)bp->addr);
}

unsigned long long eng_journal_starttime(pid_t pid)
{
	char field[32];
	return diag_proc_stat_field(pid, 22, field, sizeof(field)) == 0 ? strtoull(field, NULL, 10)
									 : 0;
}

void eng_journal_path(const struct diag_engine *e, pid_t pid, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%d-%llu", e->journal_dir, (int)pid, eng_journal_starttime(pid));
}

int eng_journal_open(struct diag_engine *e, struct eproc *ep, const char *copy_from)
{
	ep->journal_fd = -1;
	ep->journal_regions = 0;
	if (!e->journal_dir[0])
		return 0;
	char dir[sizeof(e->journal_dir)];
	snprintf(dir, sizeof(dir), "%s", e->journal_dir);
	for (char *p = dir + 1; *p; p++) /* mkdir -p, private to root */
		if (*p == '/') {
			*p = '\0';
			mkdir(dir, 0700);
			*p = '/';
		}
	mkdir(dir, 0700);
	eng_journal_path(e, ep->tp->pid, ep->journal_path, sizeof(ep->journal_path));
	ep->journal_fd = open(ep->journal_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC,
			      0600);
	if (ep->journal_fd < 0)
		return -errno;
	if (copy_from) { /* a forked child inherits its parent's patches */
		int in = open(copy_from, O_RDONLY | O_CLOEXEC);
		char buf[8192];
		ssize_t n;
		while (in >= 0 && (n = read(in, buf, sizeof(buf))) > 0)
			if (write(ep->journal_fd, buf, (size_t)n) != n)
				break;
		if (in >= 0)
			close(in);
		ep->journal_regions = ep->bps.xol.n;
	}
	return 0;
}

void eng_journal_close(struct eproc *ep, bool done)
{
	if (ep->journal_fd >= 0)
		close(ep->journal_fd);
	ep->journal_fd = -1;
	if (done && ep->journal_path[0])
		unlink(ep->journal_path);
	ep->journal_path[0] = '\0';
}

void eng_journal_reset(struct diag_engine *e, struct eproc *ep)
{
	eng_journal_close(ep, true);
	eng_journal_open(e, ep, NULL);
}
