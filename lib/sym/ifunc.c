/* ifunc: an IFUNC's chosen implementation from the process's own relocated copy (see ifunc.h). */
#include "sym/ifunc.h"

#include <elf.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PHDRS 64
#define CHUNK (64u << 10)

struct segs {
	Elf64_Phdr ph[MAX_PHDRS];
	size_t n;
	uint64_t bias;
};

/* The module's program headers, as mapped at its lowest address (file offset 0). */
static bool read_segs(const struct diag_module *mod, diag_mem_read_fn rd, void *arg,
		      struct segs *s)
{
	Elf64_Ehdr eh;
	if (rd(arg, mod->start, &eh, sizeof(eh)) != (ssize_t)sizeof(eh) ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > MAX_PHDRS ||
	    eh.e_phoff > 4096)
		return false;
	s->n = eh.e_phnum;
	s->bias = mod->bias;
	return rd(arg, mod->start + eh.e_phoff, s->ph, s->n * sizeof(Elf64_Phdr)) ==
	       (ssize_t)(s->n * sizeof(Elf64_Phdr));
}

/* True when [a, a+len) (ELF vaddrs) lies in a loaded segment with all of `flags`. */
static bool in_segment(const struct segs *s, uint64_t a, uint64_t len, uint32_t flags)
{
	for (size_t i = 0; i < s->n; i++) {
		const Elf64_Phdr *p = &s->ph[i];
		if (p->p_type == PT_LOAD && (p->p_flags & flags) == flags && a >= p->p_vaddr &&
		    a - p->p_vaddr <= p->p_memsz && len <= p->p_memsz - (a - p->p_vaddr))
			return true;
	}
	return false;
}

/* The slot an IRELATIVE relocation {offset, R_X86_64_IRELATIVE, addend = resolver} of one
 * read-only segment names, or 0. Relocation tables are 8-aligned arrays of 24-byte records. */
static uint64_t find_slot(const struct segs *s, const Elf64_Phdr *p, uint64_t resolver_vaddr,
			  diag_mem_read_fn rd, void *arg, uint8_t *buf, size_t *budget)
{
	uint64_t lo = (p->p_vaddr + 7) & ~7ULL, hi = p->p_vaddr + p->p_filesz;
	for (uint64_t at = lo; at + sizeof(Elf64_Rela) <= hi && *budget; at += CHUNK) {
		size_t want = hi - at < CHUNK + sizeof(Elf64_Rela) ? (size_t)(hi - at)
								 : CHUNK + sizeof(Elf64_Rela);
		if (want > *budget)
			want = *budget;
		*budget -= want;
		ssize_t got = rd(arg, at + s->bias, buf, want);
		for (size_t i = 0; got > 0 && i + sizeof(Elf64_Rela) <= (size_t)got && i < CHUNK;
		     i += 8) {
			Elf64_Rela r;
			memcpy(&r, buf + i, sizeof(r));
			if (r.r_info == R_X86_64_IRELATIVE && (uint64_t)r.r_addend == resolver_vaddr &&
			    in_segment(s, r.r_offset, 8, PF_W | PF_R))
				return r.r_offset;
		}
	}
	return 0;
}

int diag_ifunc_resolve(const struct diag_module *mod, const char *name, uint64_t resolver,
		       diag_mem_read_fn rd, void *arg, uint64_t *impl, struct diag_error *err)
{
	struct segs s;
	if (!read_segs(mod, rd, arg, &s))
		return diag_error_set(err, -DIAG_E_NOSYM,
				      "'%s' is an IFUNC and the program headers of %s cannot be read "
				      "from the process to find the implementation it chose",
				      name, mod->name);
	uint8_t *buf = malloc(CHUNK + sizeof(Elf64_Rela));
	if (!buf)
		return diag_error_set(err, -ENOMEM, "out of memory");
	size_t budget = DIAG_IFUNC_SCAN_MAX;
	uint64_t rv = resolver - s.bias, slot = 0, code = 0;
	for (size_t i = 0; i < s.n && !code && budget; i++) {
		const Elf64_Phdr *p = &s.ph[i];
		if (p->p_type != PT_LOAD || (p->p_flags & (PF_W | PF_X)) || !(p->p_flags & PF_R))
			continue;
		slot = find_slot(&s, p, rv, rd, arg, buf, &budget);
		uint64_t v = 0;
		if (slot && rd(arg, slot + s.bias, &v, sizeof(v)) == (ssize_t)sizeof(v) &&
		    v != resolver && v >= s.bias && in_segment(&s, v - s.bias, 1, PF_X))
			code = v;
	}
	free(buf);
	if (!code)
		return diag_error_set(err, -DIAG_E_NOSYM,
				      "'%s' is an IFUNC (its resolver picks the code at run time) and "
				      "%s has %s; probe the implementation by its own name",
				      name, mod->name,
				      slot ? "not resolved it yet in this process"
					   : "no IRELATIVE relocation naming its resolver");
	*impl = code;
	return 0;
}
