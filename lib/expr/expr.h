/* expr: the value language of diagnose (probe `value` and `condition`). Parses an expression,
 * type-checks it against the DWARF scope at the probe's PC (lib/dwarf) and turns it into a
 * capture plan that runs while a thread is stopped, then renders the captured bytes as text
 * after the thread resumed. Never dereferences target memory except through ctx->read_mem;
 * never aborts on bad input (every problem is a diag_error at compile time or an ERROR value
 * at a hit). See docs/expressions.md for the language. */
#ifndef DIAG_EXPR_H
#define DIAG_EXPR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <diagnose/event.h>
#include "arch/regs.h"
#include "util/error.h"

/* DWARF indexes per build-id/file, shared by all processes (lib/dwarf). */
struct diag_dwarf_cache;
/* Returns 0 and *out, or -ENOMEM. */
int diag_dwarf_cache_new(struct diag_dwarf_cache **out);
/* Accepts NULL. */
void diag_dwarf_cache_free(struct diag_dwarf_cache *c);

struct diag_expr_scope {
	pid_t pid;
	const char *elf_path;       /* openable path of the module's ELF file (e.g. /proc/PID/root/usr/bin/x) */
	const char *build_id;       /* hex or "" */
	uint64_t bias;              /* runtime = file vaddr + bias */
	uint64_t pc;                /* runtime address of the probe */
	enum diag_event_kind event; /* call / return / end: decides what is in scope (result, elapsed) */
	struct diag_dwarf_cache *dwarf;  /* may be NULL: registers/$args only */
	const char *field;          /* the spec field of the source, named in errors (NULL: "value") */
};

struct diag_expr;

/* Parse and type-check src against DWARF at scope->pc. Returns 0 and *out, or
 * -DIAG_E_PARSE (syntax), -DIAG_E_NOSYM (unknown name), -DIAG_E_NODEBUG (a name without
 * DWARF), -DIAG_E_INVALID (type error, optimised out), -DIAG_E_LIMIT (too long/deep),
 * -ENOMEM; err holds one line with the position and names scope->field (err->field), e.g.
 * "value: unknown name 'lenn' at 1:5; in scope: req, len, buf". */
int diag_expr_compile(const char *src, const struct diag_expr_scope *scope, struct diag_expr **out,
		      struct diag_error *err);
/* Drops a reference (the compiler's, or one of diag_expr_ref's); the last one frees. Accepts
 * NULL. */
void diag_expr_free(struct diag_expr *x);
/* n more references, for results rendered later on another thread (the daemon's event
 * worker): rendering reads the expression's tree and types, nothing the target's life
 * changes. Safe from any thread, as is the diag_expr_free that drops one. */
void diag_expr_ref_n(const struct diag_expr *x, size_t n);
/* n calls of diag_expr_free at once (one atomic operation: a thread releasing a batch of
 * holds does not pull the count's cache line from the holder's CPU once per hold). */
void diag_expr_free_n(struct diag_expr *x, size_t n);

struct diag_expr_ctx {                 /* what a hit offers while the thread is stopped */
	pid_t pid, tid;
	const diag_regs *regs;
	/* fetch the floating-point registers on demand (x86-64: doubles in xmm); may be NULL */
	int (*read_fpregs)(void *arg, diag_fpregs *out);
	/* read target memory: returns bytes read or -errno; must never fault the daemon */
	ssize_t (*read_mem)(void *arg, uint64_t addr, void *buf, size_t len);
	void *arg;
	uint64_t time_ns;
	uint64_t elapsed_ns;  /* return events */
	/* $comm: the thread's name, or NULL to ask comm_of(comm_arg) only when an expression reads
	 * it (a name costs its owner a lookup: most hits never need one); both NULL: "" */
	const char *comm;
	const char *(*comm_of)(void *comm_arg);
	void *comm_arg;
	/* `stack`: the thread's call stack in folded form, root first ("main;worker;handle"), at
	 * most max frames, NUL-terminated in out (cap bytes). Returns the length, or a negative
	 * code with a one-line reason in out. NULL: no stack at this hit (an ERROR value). */
	int (*stack)(void *stack_arg, int max, char *out, size_t cap);
	void *stack_arg;
};

#define DIAG_EXPR_MAX_BYTES 4096
/* `stack` frames: the default and the bound of `stack(N)` */
#define DIAG_EXPR_STACK_DEFAULT 32
#define DIAG_EXPR_STACK_MAX 128

struct diag_expr_result {              /* self-contained: no pointers into the target or the expr */
	enum diag_value_kind kind;         /* SIGNED, UNSIGNED, FLOAT, STRING, BYTES (raw struct bytes etc), ERROR */
	union {
		int64_t i;
		uint64_t u;
		double f;
	};
	size_t len;
	uint8_t data[DIAG_EXPR_MAX_BYTES]; /* STRING/BYTES payload; ERROR: the message text */
};

/* Run the compiled capture plan (called while the thread is stopped: bounded reads). Never
 * fails: problems become kind ERROR with text like "<fault at 0x10>". */
void diag_expr_eval(const struct diag_expr *x, const struct diag_expr_ctx *ctx,
		    struct diag_expr_result *out);

/* After the thread resumed: the user-facing text (gdb print style: 42, 0x7ffd..., "abc",
 * {len = 3, name = 0x4006f4 "abc"}, 3.5, RED) into text (NUL-terminated, truncated to cap) and a
 * diag_value (kind/number/buf pointing into r->data, text = the text buffer). A char pointer
 * renders as kind STRING (buf = the string) with gdb's text `0x4006f4 "abc"`. */
void diag_expr_render(const struct diag_expr *x, const struct diag_expr_result *r, char *text,
		      size_t cap, struct diag_value *out);

/* Condition semantics: true when numeric non-zero / non-empty; ERROR is false. */
bool diag_expr_truthy(const struct diag_expr_result *r);

/* True when the expression needs only general registers, $tid, $pid, $time and constants:
 * it can be evaluated later from a register snapshot (no memory, no SSE state). NULL: true. */
bool diag_expr_registers_only(const struct diag_expr *x);

/* The expression's source text as compiled. */
const char *diag_expr_source(const struct diag_expr *x);

/* One variable in scope at a PC, for `diagnosectl vars`. */
struct diag_expr_var_info {
	const char *name;
	const char *type;      /* C spelling, e.g. "struct req *" */
	const char *location;  /* e.g. "reg rdi", "fbreg -20", "optimised out", "loclist" */
	bool is_param;
};
/* Calls cb for each parameter then each local visible at scope->pc (innermost block first).
 * Returns the number listed, or -DIAG_E_NODEBUG / -DIAG_E_NOSYM / -errno with err set. */
int diag_expr_list_scope(const struct diag_expr_scope *scope,
			 void (*cb)(void *arg, const struct diag_expr_var_info *v), void *arg,
			 struct diag_error *err);

/* ---- capture in the target (issue 10) ----
 * The programs (arch/capture.h) a jump trampoline runs in the target so that a hit needs no
 * stop: the condition's truth, and the memory the value (and the conditions evaluated in the
 * daemon) will read. The daemon then calls diag_expr_eval on the record with regs from the
 * record and read_mem / read_fpregs served from the captured blocks (lib/capture/capture.h,
 * diag_cap_snapshot_*): the result is the one an exact evaluation at the hit would give,
 * faults included, so it renders the same (docs/architecture.md "Capture in the target" lists
 * the few cases where a real fault ends the capture early). value == NULL, cond == NULL and
 * !cond_in_daemon: the record's registers are all the daemon needs (a DWARF variable in a
 * register counts: diag_expr_registers_only is false for it, this is not). */
struct diag_cap_prog;

struct diag_expr_capture {
	struct diag_cap_prog *cond;    /* runs first in the target; NULL: every hit records */
	struct diag_cap_prog *value;   /* NULL: nothing to capture beyond the registers */
	bool cond_in_daemon;           /* evaluate the conditions again on the record (several
	                                * probes share the site, or one needs what only the daemon
	                                * knows, such as elapsed): their reads are captured too */
	uint32_t regs;                 /* the general registers the daemon's evaluations of the
	                                * values (and of the conditions when cond_in_daemon) read
	                                * from the record, bit off / 8 for diag_regs offset off: a
	                                * record of these alone renders every value the same */
};

/* Compile the capture for n probes sharing one site: values[i] and conds[i] (either may be
 * NULL). cond = the OR of the conditions that can run in the target (NULL when one probe has
 * none or one cannot). Returns 0, or -DIAG_E_LIMIT / -DIAG_E_INVALID with err saying, for the
 * field concerned, why this needs a stop ("value: `stack` needs the thread stopped"); the
 * engine then places an int3 and shows that reason in `applied`. */
int diag_expr_capture_compile(const struct diag_expr *const *values,
			      const struct diag_expr *const *conds, size_t n,
			      struct diag_expr_capture *out, struct diag_error *err);
void diag_expr_capture_free(struct diag_expr_capture *c);

#endif
