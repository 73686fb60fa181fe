/* site_check: the mapping and instruction-boundary checks every patch passes (see
 * site_check.h). What /proc/PID/maps and target memory say is hostile input: every length is
 * bounded and nothing read is trusted beyond the decision it feeds. */
#include "bp/site_check.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/procfs.h"

int diag_mapping_at(pid_t pid, uint64_t addr, struct diag_mapping *out, struct diag_error *err)
{
	struct diag_proc_maps maps;
	struct diag_proc_map m;
	int r = diag_proc_maps_open(pid, &maps);
	if (r < 0)
		return r == -ENOENT ? diag_error_set(err, -DIAG_E_GONE, "process %d exited", (int)pid)
				    : diag_error_set(err, r, "cannot read /proc/%d/maps: %s", (int)pid,
						     strerror(-r));
	bool found = false;
	while (!found && diag_proc_maps_next(&maps, &m)) {
		if (addr < m.start || addr >= m.end)
			continue;
		found = true;
		memset(out, 0, sizeof(*out));
		out->start = m.start;
		out->end = m.end;
		memcpy(out->perms, m.perms, sizeof(out->perms));
		snprintf(out->path, sizeof(out->path), "%s", m.path);
		out->file = m.inode != 0 && out->path[0] == '/';
	}
	diag_proc_maps_close(&maps);
	return found ? 0
		     : diag_error_set(err, -DIAG_E_INVALID, "0x%" PRIx64 " is not mapped in process %d",
				      addr, (int)pid);
}

int diag_site_check_mapping(pid_t pid, uint64_t addr, struct diag_error *err)
{
	struct diag_mapping m;
	int r = diag_mapping_at(pid, addr, &m, err);
	if (r < 0)
		return r;
	const char *what = m.path[0] ? m.path : "anonymous";
	if (m.perms[2] != 'x')
		return diag_error_set(err, -DIAG_E_INVALID,
				      "0x%" PRIx64 " is in a non-executable mapping (%s, %s)", addr, what,
				      m.perms);
	if (!m.file) /* a JIT's code, the vDSO, our own pages: nothing says where code starts */
		return diag_error_set(err, -DIAG_E_INVALID,
				      "0x%" PRIx64 " is in an executable mapping not backed by a file "
				      "(%s, %s); only code mapped from a file is patched",
				      addr, what, m.perms);
	return 0;
}

/* Our own patches inside [base, base+len) read as the bytes they replaced, so the decode sees
 * the function as compiled. A patch the target rewrote since is the target's code now. */
static void unpatch_view(const struct diag_bptable *t, uint64_t base, uint8_t *code, size_t len)
{
	size_t pos = 0;
	uint64_t k;
	void *v;
	while (diag_u64map_next(&t->by_addr, &pos, &k, &v)) {
		const struct diag_bp *bp = v;
		if (bp->addr < base || bp->addr + bp->written_len > base + len ||
		    !diag_bp_is_ours(bp, code + (bp->addr - base)))
			continue;
		memcpy(code + (bp->addr - base), bp->orig_bytes, bp->written_len);
	}
}

int diag_site_check_boundary(const struct diag_bptable *t, struct diag_proc *p, const char *func,
			     uint64_t start, uint64_t addr, const char *label,
			     struct diag_error *err)
{
	if (addr == start)
		return 0; /* a function's first byte starts its first instruction */
	if (addr < start || addr - start > DIAG_SITE_DECODE_MAX)
		return diag_error_set(err, -DIAG_E_INVALID,
				      "%s is more than %u bytes into %s: too far to check that it "
				      "starts an instruction", label, DIAG_SITE_DECODE_MAX, func);
	size_t len = (size_t)(addr - start) + DIAG_INSN_MAX_LEN;
	uint8_t *code = malloc(len);
	if (!code)
		return diag_error_set(err, -ENOMEM, "out of memory");
	ssize_t got = diag_proc_read(p, start, code, len);
	int r = 0;
	if (got < (ssize_t)(addr - start) + 1) {
		r = diag_error_set(err, -DIAG_E_FAULT, "cannot read the code of %s to check %s", func,
				   label);
		free(code);
		return r;
	}
	len = (size_t)got;
	unpatch_view(t, start, code, len);
	uint64_t off = 0, want = addr - start;
	struct diag_insn insn;
	struct diag_error derr = {0};
	while (off < want && (r = diag_insn_decode(code + off, len - off, start + off, &insn,
						   &derr)) == 0 &&
	       off + insn.len <= want)
		off += insn.len;
	free(code);
	if (r < 0)
		return diag_error_set(err, -DIAG_E_INVALID,
				      "cannot check that %s starts an instruction: decoding %s from its "
				      "start stops at %s+%" PRIu64 ": %s",
				      label, func, func, off, derr.msg);
	if (off == want)
		return 0;
	return diag_error_set(err, -DIAG_E_INVALID,
			      "%s is inside the instruction at %s+%" PRIu64 " (%u bytes: %s); nearest "
			      "boundaries: %s+%" PRIu64 ", %s+%" PRIu64,
			      label, func, off, (unsigned)insn.len, insn.text, func, off, func,
			      off + insn.len);
}
