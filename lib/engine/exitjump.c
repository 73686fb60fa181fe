/* exitjump: return and end events served from ring records, without a stop: the records of
 * exit trampolines (DIAG_REC_EXIT, at a ret or a tail call) and the entry records of return
 * probes, matched by thread and stack pointer as retprobe.c does for the int3 path. Called by
 * fastpath.c's drain for every such record. Never stops a thread or patches anything.
 * (A stub until exit trampolines land: such records are dropped.) */
#include "engine/engine_internal.h"

#include "arch/ring.h"
#include "capture/capture.h"

void eng_exit_record(struct diag_engine *e, struct eproc *ep, struct diag_bp *bp,
		     const struct diag_ring_rec *rec, const struct diag_cap_snapshot *snap)
{
	(void)e;
	(void)ep;
	(void)bp;
	(void)rec;
	(void)snap;
}
