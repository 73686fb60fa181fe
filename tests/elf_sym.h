/* elf_sym: the file address of a function symbol in an ELF file (tests only), read with libelf or,
 * as an oracle independent of any ELF library, with nm. */
#ifndef DIAG_TESTS_ELF_SYM_H
#define DIAG_TESTS_ELF_SYM_H

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <gelf.h>
#include <libelf.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

static inline uint64_t elf_sym_addr_size(const char *path, const char *name, uint64_t *size)
{
	uint64_t addr = 0;
	elf_version(EV_CURRENT);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	Elf *e = elf_begin(fd, ELF_C_READ, NULL);
	Elf_Scn *scn = NULL;
	while (e && !addr && (scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;
		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_SYMTAB)
			continue;
		Elf_Data *d = elf_getdata(scn, NULL);
		for (size_t i = 0; d && i < sh.sh_size / sh.sh_entsize; i++) {
			GElf_Sym s;
			if (gelf_getsym(d, (int)i, &s) && GELF_ST_TYPE(s.st_info) == STT_FUNC &&
			    !strcmp(elf_strptr(e, sh.sh_link, s.st_name), name)) {
				addr = s.st_value;
				if (size)
					*size = s.st_size;
				break;
			}
		}
	}
	if (e)
		elf_end(e);
	close(fd);
	return addr;
}

static inline uint64_t elf_sym_addr(const char *path, const char *name)
{
	return elf_sym_addr_size(path, name, NULL);
}

/* st_value and st_size of a defined symbol, read with nm (the dynamic table if dyn; a version
 * suffix "@..." is not part of the name). 0, or -1 if absent. */
static inline int nm_symbol(const char *file, const char *sym, int dyn, uint64_t *value,
			    uint64_t *size)
{
	char cmd[4200], line[512];
	snprintf(cmd, sizeof(cmd), "nm %s -S --defined-only '%s'", dyn ? "-D" : "", file);
	FILE *p = popen(cmd, "r");
	int found = -1;
	while (p && fgets(line, sizeof(line), p)) {
		char name[256], type;
		uint64_t v, s;
		if (sscanf(line, "%" SCNx64 " %" SCNx64 " %c %255s", &v, &s, &type, name) != 4)
			continue;
		char *at = strchr(name, '@');
		if (at)
			*at = '\0';
		if (strcmp(name, sym) == 0) {
			*value = v;
			*size = s;
			found = 0;
		}
	}
	if (p)
		pclose(p);
	return found;
}

#endif
