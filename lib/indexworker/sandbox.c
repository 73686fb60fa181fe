/* indexworker/sandbox: what the worker does to itself before it reads any request: drop to an
 * unprivileged uid and gid (when started as root), no supplementary groups, no capabilities,
 * no new privileges, not dumpable, resource limits, and a seccomp filter (libseccomp) that
 * allows only what parsing descriptors it was given needs; anything else (open, socket,
 * ptrace, execve, kill of another process...) kills the process. Never loosens anything. */
#include "indexer/indexer.h"
#include "indexworker/worker.h"

#include <errno.h>
#include <grp.h>
#include <seccomp.h>
#include <signal.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define DIAG_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DIAG_ASAN 1
#endif
#endif

#define WORKER_AS_LIMIT (8ull << 30) /* address space: the DWARF of a large binary fits */
#define WORKER_CPU_SECONDS 3600      /* a backstop: the daemon's per-request deadline rules */
#define WORKER_NOFILE 512            /* the files it holds open (DIAG_DWARF_MAX_FILES) + some */

static int set_limit(int res, rlim_t v)
{
	struct rlimit rl = { v, v };
	return setrlimit(res, &rl) < 0 ? -errno : 0;
}

static int drop_ids(uid_t uid, gid_t gid, struct diag_error *err)
{
	if (geteuid() != 0)
		return 0; /* already unprivileged: nothing to give up but what follows */
	if (uid == 0)
		return diag_error_set(err, -EPERM, "refusing to run the indexer as root");
	if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
		return diag_error_set(err, -errno, "cannot drop to uid %u gid %u: %s", (unsigned)uid,
				      (unsigned)gid, strerror(errno));
	if (setresuid(0, 0, 0) == 0)
		return diag_error_set(err, -EPERM, "uid 0 could be regained after the drop");
	return 0;
}

/* The bounding set needs CAP_SETPCAP to shrink: done before the uid drop. */
static int no_bounding_caps(struct diag_error *err)
{
	for (int c = 0; c <= CAP_LAST_CAP; c++)
		if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1 && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 &&
		    errno != EPERM) /* EPERM: started unprivileged, it has no capability to keep */
			return diag_error_set(err, -errno, "cannot drop capability %d: %s", c, strerror(errno));
	return 0;
}

static int no_caps(struct diag_error *err)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	memset(d, 0, sizeof(d));
	if (syscall(SYS_capset, &h, d) < 0)
		return diag_error_set(err, -errno, "cannot clear capabilities: %s", strerror(errno));
	return 0;
}

static int limits(struct diag_error *err)
{
	int rc = set_limit(RLIMIT_CORE, 0);
	if (rc == 0)
		rc = set_limit(RLIMIT_NOFILE, WORKER_NOFILE);
	if (rc == 0)
		rc = set_limit(RLIMIT_CPU, WORKER_CPU_SECONDS);
#ifndef DIAG_ASAN /* ASan reserves terabytes of shadow: no address-space limit under it */
	if (rc == 0)
		rc = set_limit(RLIMIT_AS, WORKER_AS_LIMIT);
#endif
	return rc ? diag_error_set(err, rc, "cannot set resource limits: %s", strerror(-rc)) : 0;
}

/* Parsing descriptors it was given, allocating, answering on its socket, dying. */
static const int allowed[] = {
	SCMP_SYS(read), SCMP_SYS(pread64), SCMP_SYS(readv), SCMP_SYS(write), SCMP_SYS(writev),
	SCMP_SYS(sendmsg), SCMP_SYS(recvmsg), SCMP_SYS(poll), SCMP_SYS(ppoll),
	SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(mprotect), SCMP_SYS(brk),
	SCMP_SYS(madvise), SCMP_SYS(fstat), SCMP_SYS(newfstatat), SCMP_SYS(lseek), SCMP_SYS(close),
	SCMP_SYS(dup), SCMP_SYS(fcntl), SCMP_SYS(exit), SCMP_SYS(exit_group), SCMP_SYS(rt_sigreturn),
	SCMP_SYS(rt_sigprocmask), SCMP_SYS(futex), SCMP_SYS(getrandom), SCMP_SYS(clock_gettime),
	SCMP_SYS(gettid), SCMP_SYS(getpid), SCMP_SYS(sched_yield), SCMP_SYS(sigaltstack),
	SCMP_SYS(sysinfo), /* glibc qsort sizes its buffer by the physical memory */
#ifdef DIAG_ASAN /* the sanitizer runtime's own needs */
	SCMP_SYS(rt_sigaction), SCMP_SYS(prctl), SCMP_SYS(getrlimit), SCMP_SYS(prlimit64),
	SCMP_SYS(sched_getaffinity),
#endif
};

static int filter(struct diag_error *err)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	if (!ctx)
		return diag_error_set(err, -ENOMEM, "seccomp_init failed");
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < sizeof(allowed) / sizeof(allowed[0]); i++)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed[i], 0);
	/* abort() signals itself; no other process */
	struct scmp_arg_cmp self = { .arg = 0, .op = SCMP_CMP_EQ, .datum_a = (scmp_datum_t)getpid(),
				     .datum_b = 0 };
	if (rc == 0)
		rc = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1, &self);
	if (rc == 0)
		rc = seccomp_load(ctx);
	seccomp_release(ctx);
	return rc ? diag_error_set(err, rc, "cannot load the seccomp filter: %s", strerror(-rc)) : 0;
}

int diag_indexer_sandbox(uid_t uid, gid_t gid, struct diag_error *err)
{
	int rc = no_bounding_caps(err);
	if (rc == 0)
		rc = drop_ids(uid, gid, err);
	if (rc == 0)
		rc = no_caps(err);
	if (rc == 0 && (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0))
		rc = diag_error_set(err, -errno, "prctl: %s", strerror(errno));
	if (rc == 0)
		rc = limits(err);
	if (rc == 0)
		rc = filter(err);
	return rc;
}
