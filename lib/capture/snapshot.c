/* capture/snapshot: serves target memory and vector registers from the blocks a value program
 * left in a ring record (capture.h, diag_cap_snapshot_*), so the daemon's diag_expr_eval reads
 * what the target held at the hit. The payload comes from the target's own memory: hostile.
 * Every header is bounds-checked; a malformed block ends the walk (what follows reads as not
 * captured). Never allocates; never reads outside the payload it was given. */
#include "capture/capture.h"

#include <errno.h>
#include <string.h>

#include "arch/ring.h"

/* One block as the walk sees it: its header and where its data lies in the payload. */
struct blk {
	struct diag_cap_block h;
	const uint8_t *data;
	uint32_t avail;  /* data bytes usable: len, cut by the payload's end and by a fault */
	size_t next;     /* offset of the following block */
};

/* The block at offset off; false at the end or at a malformed header. */
static bool block_at(const struct diag_cap_snapshot *s, size_t off, struct blk *b)
{
	if (off >= s->len || s->len - off < sizeof(b->h))
		return false;
	memcpy(&b->h, s->payload + off, sizeof(b->h));
	if (b->h.kind != DIAG_CAP_BLOCK_MEM && b->h.kind != DIAG_CAP_BLOCK_FPREG)
		return false;
	size_t data = off + sizeof(b->h);
	size_t room = s->len - data;
	uint64_t padded = ((uint64_t)b->h.len + 7u) & ~7ull;
	b->data = s->payload + data;
	b->avail = b->h.len <= room ? b->h.len : (uint32_t)room;
	b->next = padded <= room ? data + (size_t)padded : s->len;
	return true;
}

/* Cut the last block at the fault address: only the bytes below it were copied. */
static void cut(const struct diag_cap_snapshot *s, struct blk *b)
{
	if (!s->faulted || b->next < s->len || b->h.kind != DIAG_CAP_BLOCK_MEM)
		return;
	if (s->fault_addr >= b->h.addr && s->fault_addr - b->h.addr < b->avail)
		b->avail = (uint32_t)(s->fault_addr - b->h.addr);
}

void diag_cap_snapshot_init(struct diag_cap_snapshot *s, const uint8_t *payload, uint32_t len,
			    bool faulted, uint64_t fault_addr)
{
	*s = (struct diag_cap_snapshot){ .payload = payload, .len = payload ? len : 0,
					 .faulted = faulted, .fault_addr = fault_addr };
}

void diag_cap_snapshot_of_rec(struct diag_cap_snapshot *s, const struct diag_ring_rec *rec, size_t avail)
{
	uint32_t off, len;
	if (!rec || avail < DIAG_RING_SLIM_HDR || !diag_ring_rec_payload(rec, avail, &off, &len)) {
		diag_cap_snapshot_init(s, NULL, 0, false, 0);
		return;
	}
	if (len > avail - off) /* a record cut short: what avail holds */
		len = (uint32_t)(avail - off);
	diag_cap_snapshot_init(s, (const uint8_t *)rec + off, len,
			       (rec->flags & DIAG_REC_FAULT) != 0, rec->fault_addr);
}

/* How many bytes from addr one MEM block holds (0: none), with *src their start. */
static size_t covers(const struct blk *b, uint64_t addr, const uint8_t **src)
{
	if (b->h.kind != DIAG_CAP_BLOCK_MEM || addr < b->h.addr || addr - b->h.addr >= b->avail)
		return 0;
	uint64_t skip = addr - b->h.addr;
	*src = b->data + skip;
	return b->avail - (size_t)skip;
}

/* The most bytes any block holds from addr on, into buf (at most len). */
static size_t read_one(const struct diag_cap_snapshot *s, uint64_t addr, uint8_t *buf, size_t len)
{
	size_t best = 0;
	const uint8_t *from = NULL;
	struct blk b;
	for (size_t off = 0; block_at(s, off, &b); off = b.next) {
		cut(s, &b);
		const uint8_t *src;
		size_t n = covers(&b, addr, &src);
		if (n > best) {
			best = n;
			from = src;
		}
		if (b.next <= off)
			break;
	}
	if (best > len)
		best = len;
	if (best)
		memcpy(buf, from, best);
	return best;
}

ssize_t diag_cap_snapshot_read(void *snapshot, uint64_t addr, void *buf, size_t len)
{
	const struct diag_cap_snapshot *s = snapshot;
	uint8_t *out = buf;
	size_t done = 0;
	while (done < len) {
		uint64_t at = addr + done;
		if (at < addr)
			break; /* the address space ends */
		size_t n = read_one(s, at, out + done, len - done);
		if (!n)
			break;
		done += n;
	}
	if (!done && len)
		return -EFAULT;
	return (ssize_t)done;
}

int diag_cap_snapshot_fpregs(void *snapshot, diag_fpregs *out)
{
	const struct diag_cap_snapshot *s = snapshot;
	memset(out, 0, sizeof(*out));
	struct blk b;
	for (size_t off = 0; block_at(s, off, &b); off = b.next) {
		if (b.h.kind == DIAG_CAP_BLOCK_FPREG && b.h.addr < DIAG_CAP_NFPREGS) {
			uint8_t *dst = (uint8_t *)diag_fpregs_vector(out, (unsigned)b.h.addr);
			if (dst)
				memcpy(dst, b.data, b.avail < 16 ? b.avail : 16);
		}
		if (b.next <= off)
			break;
	}
	return 0;
}
