/* engine internals shared by the engine's files (engine.c: the wait loop and hits;
 * probe.c: probes and their sites). Not part of the engine's API. */
#ifndef DIAG_ENGINE_INTERNAL_H
#define DIAG_ENGINE_INTERNAL_H

#include "bp/breakpoint.h"
#include "engine/engine.h"
#include "expr/expr.h"
#include "sym/modmap.h"
#include "sym/symtab.h"
#include "target/tracee.h"

struct probe;

/* One probe at one address. */
struct site {
	struct probe *pr;
	struct diag_bp *bp;
	struct diag_expr *value;     /* NULL: no value */
	struct diag_expr *condition; /* NULL: always */
};

struct probe {
	struct probe *next;
	void *cookie;
	char *target, *value, *condition;
	enum diag_event_kind event;
	enum diag_probe_state state;
	char error[DIAG_ERRMSG_MAX];
	uint64_t hits, filtered;
	struct site *sites;
	size_t nsites;
};

/* The engine's state for one process (diag_proc.owner). */
struct eproc {
	struct diag_proc *tp;
	struct diag_bptable bps;  /* unused by a vfork child: it shares its parent's */
	struct probe *probes;
	bool freeze;              /* stopping for detach: keep every stop, resume nothing */
};

struct diag_engine {
	struct diag_engine_callbacks cb;
	int sigfd;
	struct diag_u64map procs;   /* pid -> struct eproc */
	struct diag_u64map threads; /* tid -> struct diag_thread */
	struct diag_u64map orphans; /* tid -> status+1: first stops seen before their clone/fork event */
	struct diag_symcache *syms;
	struct diag_dwarf_cache *dwarf;
	uint64_t hits;
	struct diag_expr_result *scratch; /* one per site of the busiest breakpoint */
	size_t nscratch;
};

static inline struct eproc *eproc_of(struct diag_proc *p)
{
	return p->owner;
}

/* The process whose memory (and breakpoints) a process uses. */
static inline struct eproc *eproc_mem(struct eproc *ep)
{
	return ep->tp->mem_owner ? eproc_of(ep->tp->mem_owner) : ep;
}

/* probe.c */
int diag__probe_install(struct diag_engine *e, struct eproc *ep, struct probe *pr,
			struct diag_error *err);
void diag__probe_uninstall(struct eproc *ep, struct probe *pr);
void diag__probe_free(struct probe *pr);
struct probe *diag__probe_copy(const struct probe *src);
int diag__probes_clone_sites(struct diag_engine *e, struct eproc *child, struct eproc *parent);

/* engine.c */
struct diag_thread *diag__stop_one(struct diag_engine *e, struct eproc *ep);
void diag__resume_stopped(struct diag_engine *e, struct diag_thread *t);

#endif
