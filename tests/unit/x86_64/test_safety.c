/* test_safety: the SIGTRAP safety handler executed in-process. The built blob is installed as
 * this process's SIGTRAP action (raw rt_sigaction, restorer from the blob), int3 bytes are put
 * into RWX copies of small functions with out-of-line slots from diag_xol_build, and the calls
 * must give the right results from 4 threads with no tracer: the handler sends each trap to its
 * slot. Also: the lookup logic called directly (collisions, deleted buckets, tombstones, signals
 * sent by a process), chaining to a previous handler, and in forked children the default action
 * (SIG_DFL, SIG_IGN) and the kernel's reset of a blocked SIGTRAP. Proves that the byte array in
 * safety.c is what its template (diag_safety_template()->source) assembles to. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include "check.h"
#include "inproc_code.h"

#include "arch/insn.h"
#include "arch/safety.h"
#include "util/error.h"

/* ---- code under test (Intel syntax) ---- */
__asm__(".intel_syntax noprefix\n.text\n"
	/* u32 (a, b) -> a + b; probes at +0 (1-byte push) and +1 (3-byte mov) */
	FN(s_fn_add) "push rbp\n mov rbp, rsp\n lea eax, [rdi + rsi]\n pop rbp\n ret\n" END(s_fn_add)
	/* u64 (a) -> data + a, the probed instruction is rip-relative */
	FN(s_fn_riprel) "mov rax, [rip + s_riprel_data]\n add rax, rdi\n ret\n .p2align 3\n"
	"s_riprel_data: .quad 0x1000000000\n" END(s_fn_riprel)
	/* a foreign int3 (not ours), then u32 42 */
	FN(s_fn_foreign) "int3\n mov eax, 42\n ret\n" END(s_fn_foreign)
	".att_syntax prefix\n");

DECL(s_fn_add); DECL(s_fn_riprel); DECL(s_fn_foreign);

typedef uint64_t (*fn2)(uint64_t, uint64_t);
typedef void (*sa_fn)(int, siginfo_t *, void *);

/* ---- environment ---- */
#define REGION_SIZE (1u << 20)
#define FN_SLOT 256u
#define XOL_AREA (REGION_SIZE / 4)
#define BLOB_AREA (REGION_SIZE / 2)
#define N_ENTRIES 64

struct env {
	uint8_t *region;             /* RWX: function copies, slots, the blob */
	size_t n_fns, n_slots;
	uint64_t removals;           /* tombstones written */
	struct diag_safety_layout l;
	struct diag_safety_table t;
};

static void *at(uint64_t addr)
{
	return (void *)(uintptr_t)addr;
}

static long ksigaction(int sig, const struct diag_ksigaction *act, struct diag_ksigaction *old)
{
	return syscall(SYS_rt_sigaction, sig, act, old, 8);
}

static uint64_t copy_fn(struct env *e, const uint8_t *begin, const uint8_t *end)
{
	return inproc_copy_fn(e->region + e->n_fns++ * FN_SLOT, FN_SLOT, begin, end);
}

static int env_open(struct env *e, struct diag_error *err)
{
	uint8_t *blob;
	size_t len;
	int rc;

	memset(e, 0, sizeof(*e));
	e->region = mmap(NULL, REGION_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (e->region == MAP_FAILED)
		return -errno;
	blob = e->region + BLOB_AREA;
	rc = diag_safety_build((uint64_t)(uintptr_t)blob, N_ENTRIES, blob, REGION_SIZE - BLOB_AREA,
			       &len, &e->l, err);
	if (rc == 0)
		rc = diag_safety_table_init(&e->t, N_ENTRIES);
	return rc;
}

static void env_close(struct env *e)
{
	diag_safety_table_fini(&e->t);
	munmap(e->region, REGION_SIZE);
}

/* As the daemon does: remember the previous action in the blob, then install ours. */
static int install(struct env *e)
{
	struct diag_ksigaction old, ours;

	if (ksigaction(SIGTRAP, NULL, &old) < 0)
		return -errno;
	memcpy(at(e->l.old_action), &old, sizeof(old));
	diag_safety_action(&e->l, &old, &ours);
	return ksigaction(SIGTRAP, &ours, NULL) < 0 ? -errno : 0;
}

/* The daemon's order: slot, bucket (slot then addr), then the int3. */
static int probe(struct env *e, uint64_t addr, struct diag_error *err)
{
	struct diag_insn insn;
	uint64_t slot = (uint64_t)(uintptr_t)(e->region + XOL_AREA + e->n_slots++ * DIAG_XOL_SLOT_SIZE);
	size_t len, index;
	uint64_t bucket;
	int rc;

	rc = diag_insn_decode(at(addr), DIAG_INSN_MAX_LEN, addr, &insn, err);
	if (rc == 0)
		rc = diag_xol_build(&insn, slot, at(slot), &len, err);
	if (rc == 0)
		rc = diag_safety_table_put(&e->t, addr, slot, &index);
	if (rc < 0)
		return rc;
	bucket = diag_safety_bucket_addr(&e->l, index);
	__atomic_store_n((uint64_t *)at(bucket + 8), slot, __ATOMIC_RELEASE);
	__atomic_store_n((uint64_t *)at(bucket), addr, __ATOMIC_RELEASE);
	__atomic_store_n((uint8_t *)at(addr), 0xcc, __ATOMIC_RELEASE);
	return 0;
}

/* The daemon's order: original byte, tombstone, then the bucket deleted. */
static int unprobe(struct env *e, uint64_t addr, uint8_t orig)
{
	size_t index;
	int rc;

	__atomic_store_n((uint8_t *)at(addr), orig, __ATOMIC_RELEASE);
	__atomic_store_n((uint64_t *)at(diag_safety_tomb_addr(&e->l, e->removals++)), addr,
			 __ATOMIC_RELEASE);
	rc = diag_safety_table_del(&e->t, addr, &index);
	if (rc == 0)
		__atomic_store_n((uint64_t *)at(diag_safety_bucket_addr(&e->l, index)),
				 (uint64_t)DIAG_SAFETY_DELETED, __ATOMIC_RELEASE);
	return rc;
}

/* ---- the template is what the .S assembles to ---- */

static void test_template_matches_source(void)
{
	const struct diag_safety_template *t = diag_safety_template();
	char nm[4096];

	/* no relocation: the blob is copied into the target as is */
	inproc_check_template(t->source, t->bytes, t->len, 1, nm,
			      sizeof(nm));
	CHECK_EQ_INT(inproc_nm_value(nm, "diag_safety_code_len"), t->len);
	CHECK_EQ_INT(inproc_nm_value(nm, "diag_safety_restorer"), t->restorer);
	CHECK_EQ_INT(inproc_nm_value(nm, "diag_safety_data"), t->data);
	CHECK_EQ_INT(inproc_nm_value(nm, "diag_safety_d_mask"), t->d_mask);
	CHECK_EQ_INT(inproc_nm_value(nm, "diag_safety_d_old"), t->d_old);
	CHECK_EQ_INT(inproc_nm_value(nm, "diag_safety_d_dfl"), t->d_dfl);
	CHECK_EQ_INT(inproc_nm_value(nm, "diag_safety_d_tombs"), t->d_tombs);
	CHECK_EQ_INT(inproc_nm_value(nm, "diag_safety_d_table"), t->d_table);
	CHECK_EQ_INT(inproc_nm_value(nm, "diag_safety_n_tombs"), t->n_tombs);
	/* the restorer is rt_sigreturn */
	CHECK_EQ_INT(memcmp(t->bytes + t->restorer, "\xb8\x0f\x00\x00\x00\x0f\x05", 7), 0);
}

/* ---- build and table mirror ---- */

static void test_build(void)
{
	struct diag_error err = { 0 };
	struct diag_safety_layout l, l0 = { 0 };
	uint8_t buf[8192];
	size_t len = 77;
	uint64_t mask;

	CHECK_EQ_INT(diag_safety_build(0x10000, 3, buf, sizeof(buf), &len, &l, &err), -EINVAL);
	CHECK(strstr(err.msg, "3 table entries") != NULL);
	CHECK_EQ_INT(diag_safety_build(0x10004, 4, buf, sizeof(buf), &len, &l, &err), -EINVAL);
	CHECK(strstr(err.msg, "0x10004") != NULL);
	CHECK_EQ_INT(diag_safety_build(0x10000, 1024, buf, sizeof(buf), &len, &l, &err), -ENOSPC);
	CHECK_EQ_INT(len, 77);
	CHECK_OK(diag_safety_build(0x10000, 16, buf, sizeof(buf), &len, &l, &err), err);
	CHECK_EQ_INT(len, diag_safety_size(16));
	CHECK_EQ_INT(l.len, len);
	CHECK_EQ_INT(l.handler, 0x10000);
	CHECK_EQ_INT(l.restorer, 0x10000 + diag_safety_template()->restorer);
	CHECK_EQ_INT(l.table + 16 * 16, 0x10000 + len);
	CHECK_EQ_INT(diag_safety_bucket_addr(&l, 3), l.table + 48);
	CHECK_EQ_INT(diag_safety_tomb_addr(&l, DIAG_SAFETY_TOMBS + 2), l.tombs + 16);
	memcpy(&mask, buf + diag_safety_template()->d_mask, 8);
	CHECK_EQ_INT(mask, 15);
	CHECK_EQ_INT(memcmp(buf + l.old_action - 0x10000, &l0, 32), 0); /* SIG_DFL until written */
}

/* Addresses sharing one bucket, to exercise chains. */
static size_t colliding(uint64_t base, size_t n_entries, uint64_t *out, size_t want)
{
	size_t h = diag_safety_hash(base, n_entries), k = 0;

	for (uint64_t a = base; k < want; a++)
		if (diag_safety_hash(a, n_entries) == h)
			out[k++] = a;
	return h;
}

static void test_table(void)
{
	struct diag_safety_table t;
	uint64_t a[4];
	size_t h, i0, i1, i2, i;

	CHECK_EQ_INT(diag_safety_table_init(&t, 12), -EINVAL);
	CHECK_EQ_INT(diag_safety_table_init(&t, 8), 0);
	h = colliding(0x401000, 8, a, 3);
	CHECK_EQ_INT(diag_safety_table_put(&t, a[0], 0x9000, &i0), 0);
	CHECK_EQ_INT(diag_safety_table_put(&t, a[1], 0x9040, &i1), 0);
	CHECK_EQ_INT(diag_safety_table_put(&t, a[2], 0x9080, &i2), 0);
	CHECK_EQ_INT(i0, h);
	CHECK_EQ_INT(i1, (h + 1) & 7);
	CHECK_EQ_INT(i2, (h + 2) & 7);
	CHECK_EQ_INT(diag_safety_table_put(&t, a[1], 0x9999, &i), -EEXIST);
	CHECK_EQ_INT(diag_safety_table_put(&t, 1, 0x9999, &i), -EINVAL);
	CHECK_EQ_INT(diag_safety_table_put(&t, 0x5000, 0, &i), -EINVAL);
	CHECK_EQ_INT(diag_safety_table_del(&t, a[1], &i), 0);
	CHECK_EQ_INT(i, i1);
	CHECK_EQ_INT(t.e[i1].addr, DIAG_SAFETY_DELETED);
	CHECK_EQ_INT(diag_safety_table_del(&t, a[1], &i), -ENOENT);
	/* a[2] is still found past the deleted bucket, and cannot be put twice */
	CHECK_EQ_INT(diag_safety_table_put(&t, a[2], 0x9999, &i), -EEXIST);
	/* the deleted bucket is reused */
	CHECK_EQ_INT(diag_safety_table_put(&t, a[1], 0x90c0, &i), 0);
	CHECK_EQ_INT(i, i1);
	/* 3/4 of 8 buckets: 6 live at most */
	CHECK_EQ_INT(diag_safety_table_put(&t, 0x7000, 1, &i), 0);
	CHECK_EQ_INT(diag_safety_table_put(&t, 0x7100, 1, &i), 0);
	CHECK_EQ_INT(diag_safety_table_put(&t, 0x7200, 1, &i), 0);
	CHECK_EQ_INT(diag_safety_table_put(&t, 0x7300, 1, &i), -ENOSPC);
	CHECK_EQ_INT(t.live, 6);
	diag_safety_table_fini(&t);
	diag_safety_table_fini(NULL);
}

/* ---- the handler's lookup, called directly with a made-up siginfo and ucontext ---- */

struct chained {
	int calls, sig, code;
	uint64_t pc;
};
static struct chained g_chained; /* written by a signal handler: no other way to reach it */

static void chained_handler(int sig, siginfo_t *info, void *ucv)
{
	ucontext_t *uc = ucv;

	g_chained.calls++;
	g_chained.sig = sig;
	g_chained.code = info->si_code;
	g_chained.pc = (uint64_t)uc->uc_mcontext.gregs[REG_RIP];
}

/* rip after one call of the handler for a trap at addr (rip = addr + 1) with si_code. */
static uint64_t call_handler(const struct env *e, uint64_t addr, int code)
{
	siginfo_t si;
	ucontext_t uc;

	memset(&si, 0, sizeof(si));
	memset(&uc, 0, sizeof(uc));
	si.si_signo = SIGTRAP;
	si.si_code = code;
	uc.uc_mcontext.gregs[REG_RIP] = (greg_t)(addr + 1);
	((sa_fn)(uintptr_t)e->l.handler)(SIGTRAP, &si, &uc);
	return (uint64_t)uc.uc_mcontext.gregs[REG_RIP];
}

static void set_old_handler(const struct env *e, uint64_t handler)
{
	struct diag_ksigaction old = { .handler = handler };

	memcpy(at(e->l.old_action), &old, sizeof(old));
}

static void put_bucket(struct env *e, uint64_t addr, uint64_t slot)
{
	size_t i;

	CHECK_EQ_INT(diag_safety_table_put(&e->t, addr, slot, &i), 0);
	memcpy(at(diag_safety_bucket_addr(&e->l, i)), &e->t.e[i], sizeof(e->t.e[i]));
}

static void del_bucket(struct env *e, uint64_t addr)
{
	size_t i;

	CHECK_EQ_INT(diag_safety_table_del(&e->t, addr, &i), 0);
	memcpy(at(diag_safety_bucket_addr(&e->l, i)), &e->t.e[i], sizeof(e->t.e[i]));
}

static void test_lookup(void)
{
	struct diag_error err = { 0 };
	struct env e;
	uint64_t a[3];

	CHECK_OK(env_open(&e, &err), err);
	colliding(0x555500001000ull, N_ENTRIES, a, 3);
	put_bucket(&e, a[0], 0x1110);
	put_bucket(&e, a[1], 0x2220);
	put_bucket(&e, a[2], 0x3330);
	set_old_handler(&e, (uint64_t)(uintptr_t)chained_handler);
	CHECK_EQ_INT(call_handler(&e, a[0], SI_KERNEL), 0x1110);
	CHECK_EQ_INT(call_handler(&e, a[2], SI_KERNEL), 0x3330);
	del_bucket(&e, a[1]);
	CHECK_EQ_INT(call_handler(&e, a[2], SI_KERNEL), 0x3330); /* past a deleted bucket */
	CHECK_EQ_INT(g_chained.calls, 0);
	/* removed, no tombstone: not ours any more, chained with sig, info and uc intact */
	CHECK_EQ_INT(call_handler(&e, a[1], SI_KERNEL), a[1] + 1);
	CHECK_EQ_INT(g_chained.calls, 1);
	CHECK_EQ_INT(g_chained.sig, SIGTRAP);
	CHECK_EQ_INT(g_chained.code, SI_KERNEL);
	CHECK_EQ_INT(g_chained.pc, a[1] + 1);
	/* tombstoned: resume at the address itself, where the original byte is back */
	*(uint64_t *)at(diag_safety_tomb_addr(&e.l, DIAG_SAFETY_TOMBS - 1)) = a[1];
	CHECK_EQ_INT(call_handler(&e, a[1], SI_KERNEL), a[1]);
	CHECK_EQ_INT(g_chained.calls, 1);
	/* the daemon had already moved the thread (to a live slot, to a tombstoned address) and
	 * died before cancelling the signal: rip stays */
	CHECK_EQ_INT(call_handler(&e, 0x1110 - 1, SI_KERNEL), 0x1110);
	CHECK_EQ_INT(call_handler(&e, a[1] - 1, SI_KERNEL), a[1]);
	CHECK_EQ_INT(g_chained.calls, 1);
	/* a deleted bucket's slot is nobody's */
	CHECK_EQ_INT(call_handler(&e, 0x2220 - 1, SI_KERNEL), 0x2220);
	CHECK_EQ_INT(g_chained.calls, 2);
	g_chained.calls = 1;
	/* a SIGTRAP sent by a process is never a breakpoint hit, even at a probed address + 1 */
	CHECK_EQ_INT(call_handler(&e, a[0], SI_TKILL), a[0] + 1);
	CHECK_EQ_INT(call_handler(&e, a[0], SI_USER), a[0] + 1);
	CHECK_EQ_INT(g_chained.calls, 3);
	CHECK_EQ_INT(g_chained.code, SI_USER);
	/* SIG_IGN before and a sent signal: ignored, nothing else happens */
	set_old_handler(&e, 1);
	CHECK_EQ_INT(call_handler(&e, a[0], SI_TKILL), a[0] + 1);
	CHECK_EQ_INT(g_chained.calls, 3);
	env_close(&e);
}

/* ---- real traps, 4 threads, no tracer ---- */

#define NTHREADS 4
#define NCALLS 10000

struct worker {
	fn2 add, riprel, foreign;
	uint64_t index;
	uint64_t bad;
};

static void *worker_run(void *arg)
{
	struct worker *w = arg;

	for (uint64_t i = 0; i < NCALLS; i++) {
		if (w->add(w->index, i) != (uint32_t)(w->index + i))
			w->bad++;
		if (w->riprel(i, 0) != 0x1000000000ull + i)
			w->bad++;
		if (w->foreign && (uint32_t)w->foreign(0, 0) != 42)
			w->bad++;
	}
	return NULL;
}

static void run_workers(fn2 add, fn2 riprel, fn2 foreign)
{
	pthread_t th[NTHREADS];
	struct worker w[NTHREADS];

	for (size_t i = 0; i < NTHREADS; i++) {
		w[i] = (struct worker){ .add = add, .riprel = riprel, .foreign = foreign, .index = i };
		CHECK_EQ_INT(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
	}
	for (size_t i = 0; i < NTHREADS; i++) {
		pthread_join(th[i], NULL);
		CHECK_EQ_INT(w[i].bad, 0);
	}
}

static void chained_counter(int sig, siginfo_t *info, void *ucv)
{
	(void)ucv;
	if (sig == SIGTRAP && info->si_code == SI_KERNEL)
		__atomic_add_fetch(&g_chained.calls, 1, __ATOMIC_RELAXED);
}

static void test_threads(void)
{
	struct diag_error err = { 0 };
	struct diag_ksigaction saved, now;
	struct sigaction sa;
	struct env e;
	uint64_t add, riprel, foreign;

	CHECK_OK(env_open(&e, &err), err);
	CHECK_EQ_INT(ksigaction(SIGTRAP, NULL, &saved), 0);
	/* the target's own handler, installed the usual way (glibc: SA_RESTORER, __restore_rt) */
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = chained_counter;
	sa.sa_flags = SA_SIGINFO;
	CHECK_EQ_INT(sigaction(SIGTRAP, &sa, NULL), 0);
	g_chained.calls = 0;
	CHECK_EQ_INT(install(&e), 0);
	CHECK_EQ_INT(ksigaction(SIGTRAP, NULL, &now), 0);
	CHECK_EQ_INT(now.handler, e.l.handler);
	CHECK(now.restorer != e.l.restorer); /* glibc's restorer reused for a chained handler */
	add = copy_fn(&e, s_fn_add, s_fn_add_end);
	riprel = copy_fn(&e, s_fn_riprel, s_fn_riprel_end);
	foreign = copy_fn(&e, s_fn_foreign, s_fn_foreign_end);
	CHECK_OK(probe(&e, add, &err), err);
	CHECK_OK(probe(&e, add + 1, &err), err);
	CHECK_OK(probe(&e, riprel, &err), err);
	CHECK_EQ_INT(*(uint8_t *)at(add) & *(uint8_t *)at(add + 1) & *(uint8_t *)at(riprel), 0xcc);
	run_workers((fn2)(uintptr_t)add, (fn2)(uintptr_t)riprel, (fn2)(uintptr_t)foreign);
	/* every foreign int3 reached the target's handler, and only those */
	CHECK_EQ_INT(g_chained.calls, NTHREADS * NCALLS);
	/* removed probes: the original bytes run, nothing traps */
	CHECK_EQ_INT(unprobe(&e, add, s_fn_add[0]), 0);
	CHECK_EQ_INT(unprobe(&e, add + 1, s_fn_add[1]), 0);
	CHECK_EQ_INT(((fn2)(uintptr_t)add)(40, 2), 42);
	CHECK_EQ_INT(memcmp(at(add), s_fn_add, (size_t)(s_fn_add_end - s_fn_add)), 0);
	CHECK_EQ_INT(g_chained.calls, NTHREADS * NCALLS);
	CHECK_EQ_INT(ksigaction(SIGTRAP, &saved, NULL), 0);
	env_close(&e);
}

/* ---- the default action, in forked children ---- */

enum child_case {
	CHILD_DFL,        /* SIG_DFL before: probes served, then a foreign int3 dumps core */
	CHILD_IGN,        /* SIG_IGN before: a sent SIGTRAP is ignored, a foreign int3 kills */
	CHILD_BLOCKED,    /* SIGTRAP blocked: the kernel resets the action, our probe kills */
};

static int child_run(enum child_case c)
{
	struct diag_error err = { 0 };
	struct diag_ksigaction before = { .handler = c == CHILD_IGN ? 1 : 0 };
	struct rlimit no_core = { 0, 0 };
	struct env e;
	uint64_t add, foreign;
	sigset_t trap;

	setrlimit(RLIMIT_CORE, &no_core);
	if (env_open(&e, &err) < 0 || ksigaction(SIGTRAP, &before, NULL) < 0 || install(&e) < 0)
		return 10;
	add = copy_fn(&e, s_fn_add, s_fn_add_end);
	foreign = copy_fn(&e, s_fn_foreign, s_fn_foreign_end);
	if (probe(&e, add, &err) < 0)
		return 11;
	if (c == CHILD_BLOCKED) {
		sigemptyset(&trap);
		sigaddset(&trap, SIGTRAP);
		pthread_sigmask(SIG_BLOCK, &trap, NULL);
		return ((fn2)(uintptr_t)add)(1, 2) == 3 ? 0 : 12; /* dies before returning */
	}
	for (uint64_t i = 0; i < 100; i++)
		if (((fn2)(uintptr_t)add)(i, 1) != i + 1)
			return 13;
	if (c == CHILD_IGN && syscall(SYS_tgkill, getpid(), (pid_t)syscall(SYS_gettid), SIGTRAP) < 0)
		return 14;
	((fn2)(uintptr_t)foreign)(0, 0);
	return 0; /* the foreign int3 must not let us get here */
}

static void expect_child_trapped(enum child_case c)
{
	int status = 0;
	pid_t pid = fork();

	if (pid == 0)
		_exit(child_run(c));
	CHECK(pid > 0);
	CHECK_EQ_INT(waitpid(pid, &status, 0), pid);
	if (!WIFSIGNALED(status))
		fprintf(stderr, "child case %d: exited with %d, expected death by SIGTRAP\n", (int)c,
			WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	CHECK(WIFSIGNALED(status));
	CHECK_EQ_INT(WIFSIGNALED(status) ? WTERMSIG(status) : 0, SIGTRAP);
}

int main(void)
{
	test_template_matches_source();
	test_build();
	test_table();
	test_lookup();
	test_threads();
	expect_child_trapped(CHILD_DFL);
	expect_child_trapped(CHILD_IGN);
	expect_child_trapped(CHILD_BLOCKED);
	return CHECK_DONE();
}
