/* syscall_stub: the stub place in the target's vDSO (see syscall_stub.h). */
#include "ptrace/syscall_stub.h"

#include <errno.h>
#include <gelf.h>
#include <libelf.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "arch/syscall.h"
#include "util/procfs.h"

/* Start and end of pid's [vdso] mapping; false when it has none. */
static bool vdso_range(pid_t pid, uint64_t *start, uint64_t *end)
{
	struct diag_proc_maps maps;
	struct diag_proc_map m;
	bool found = false;
	if (diag_proc_maps_open(pid, &maps) < 0)
		return false;
	while (!found && diag_proc_maps_next(&maps, &m)) {
		if (strcmp(m.path, "[vdso]") == 0) {
			*start = m.start;
			*end = m.end;
			found = true;
		}
	}
	diag_proc_maps_close(&maps);
	return found;
}

static void grow_to(size_t *end, uint64_t off, uint64_t len)
{
	if (off + len > *end)
		*end = (size_t)(off + len);
}

/* Bytes of the ELF image at img (mapped len bytes long): headers, every segment's file bytes
 * and every section with contents, so the place after it is no part of the image. 0 when the
 * image does not parse. */
static size_t image_end(const uint8_t *img, size_t len)
{
	elf_version(EV_CURRENT);
	Elf *e = elf_memory((char *)img, len);
	GElf_Ehdr eh;
	size_t end = 0, n = 0;
	if (!e || !gelf_getehdr(e, &eh))
		goto out;
	grow_to(&end, eh.e_phoff, (uint64_t)eh.e_phnum * eh.e_phentsize);
	grow_to(&end, eh.e_shoff, (uint64_t)eh.e_shnum * eh.e_shentsize);
	if (elf_getphdrnum(e, &n) == 0)
		for (size_t i = 0; i < n; i++) {
			GElf_Phdr ph;
			if (gelf_getphdr(e, (int)i, &ph))
				grow_to(&end, ph.p_offset, ph.p_filesz);
		}
	for (Elf_Scn *s = elf_nextscn(e, NULL); s; s = elf_nextscn(e, s)) {
		GElf_Shdr sh;
		if (gelf_getshdr(s, &sh) && sh.sh_type != SHT_NOBITS)
			grow_to(&end, sh.sh_offset, sh.sh_size);
	}
out:
	if (e)
		elf_end(e);
	return end <= len ? end : 0;
}

/* The spare bytes are cut in slots of the largest stub. A slot that holds anything but the
 * clean bytes is a stub a tracer killed in the middle of a call left there, and a thread of
 * the target may still be inside it (blocked in its call, or stopped between two of its
 * instructions): it is never written. The first clean slot serves every call. */
static bool pick_slot(const struct diag_mem_io *io, struct diag_syscall_stub *s, uint64_t spare,
		      const uint8_t *clean, size_t room)
{
	uint8_t theirs[DIAG_ARCH_SYSCALL_STUB_MAX];
	for (size_t off = 0; off + sizeof(theirs) <= room; off += sizeof(theirs)) {
		if (io->read(io->ctx, spare + off, theirs, sizeof(theirs)) != (ssize_t)sizeof(theirs))
			return false;
		if (memcmp(theirs, clean + off, sizeof(theirs)) == 0) {
			s->at = spare + off;
			s->clean = clean + off;
			return true;
		}
	}
	return false;
}

/* The target's vDSO must be the daemon's own image (same kernel, same ABI): read it whole and
 * compare. A 32-bit or x32 process, or one whose vDSO was patched, gets no stub. */
static int find_place(struct diag_syscall_stub *s, pid_t pid, const struct diag_mem_io *io)
{
	const uint8_t *own = (const uint8_t *)getauxval(AT_SYSINFO_EHDR);
	uint64_t own_start, own_end, start, end;
	if (!own || !vdso_range(getpid(), &own_start, &own_end) ||
	    own_start != (uint64_t)(uintptr_t)own || !vdso_range(pid, &start, &end) ||
	    end - start != own_end - own_start)
		return -ENOENT;
	size_t size = (size_t)(own_end - own_start);
	size_t used = (image_end(own, size) + 15) & ~(size_t)15;
	if (!used || size - used < DIAG_ARCH_SYSCALL_STUB_MAX)
		return -ENOENT;
	uint8_t *theirs = malloc(used);
	if (!theirs)
		return -ENOMEM;
	bool same = io->read(io->ctx, start, theirs, used) == (ssize_t)used &&
		    memcmp(theirs, own, used) == 0;
	free(theirs);
	if (!same || !pick_slot(io, s, start + used, own + used, size - used))
		return -ENOENT;
	return 0;
}

/* The stub for resume, written over the slot: what was written before stays counted in
 * s->written, so a clear puts back every byte any stub there ever covered. */
static int write_stub(struct diag_syscall_stub *s, const struct diag_mem_io *io,
		      const diag_regs *resume)
{
	uint8_t code[DIAG_ARCH_SYSCALL_STUB_MAX];
	size_t len = 0;
	int rc = diag_arch_syscall_stub(s->at, resume, code, sizeof(code), &len);
	if (rc < 0)
		return rc;
	if (len > s->written)
		s->written = len;
	return io->write(io->ctx, s->at, code, len) == (ssize_t)len ? 0 : -EIO;
}

int diag_syscall_stub_put(struct diag_syscall_stub *s, pid_t pid, const struct diag_mem_io *io,
			  const diag_regs *resume, uint64_t *at)
{
	if (s->state == 0)
		s->state = find_place(s, pid, io) == 0 ? 1 : -1;
	if (s->state < 0)
		return -ENOENT;
	int rc = write_stub(s, io, resume);
	if (rc < 0) {
		diag_syscall_stub_clear(s, io);
		return rc;
	}
	*at = s->at;
	return 0;
}

int diag_syscall_stub_resume_at(struct diag_syscall_stub *s, const struct diag_mem_io *io,
				const diag_regs *resume)
{
	if (s->state <= 0 || !s->written)
		return -ENOENT;
	return write_stub(s, io, resume);
}

void diag_syscall_stub_clear(struct diag_syscall_stub *s, const struct diag_mem_io *io)
{
	if (s->state > 0 && s->written)
		(void)io->write(io->ctx, s->at, s->clean, s->written);
	s->written = 0;
}
