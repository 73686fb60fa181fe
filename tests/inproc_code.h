/* inproc_code: helpers for unit tests that run machine code in their own process (the
 * trampoline and the SIGTRAP safety handler): declaring assembled test functions, copying them
 * into an RWX region, and proving that a byte array in lib/ is what its .S assembles to.
 * Test-only; never used by the library. */
#ifndef DIAG_TESTS_INPROC_CODE_H
#define DIAG_TESTS_INPROC_CODE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

/* A function assembled in a top-level __asm__, with a name_end label after its last byte. */
#define FN(name) ".globl " #name ", " #name "_end\n.hidden " #name ", " #name "_end\n" #name ":\n"
#define END(name) #name "_end:\n"
#define DECL(name) extern const uint8_t name[], name##_end[]

/* rc must be 0; otherwise err's message is printed beside the failed check. */
#define CHECK_OK(rc, err)                                                                    \
	do {                                                                                 \
		int rc_ = (rc);                                                              \
		if (rc_ != 0)                                                                \
			fprintf(stderr, "%s:%d: rc %d: %s\n", __FILE__, __LINE__, rc_, (err).msg); \
		CHECK_EQ_INT(rc_, 0);                                                        \
	} while (0)

/* Copy [begin, end) to a slot of slot_size bytes, the rest int3: a run-off traps. */
static inline uint64_t inproc_copy_fn(uint8_t *slot, size_t slot_size, const uint8_t *begin,
				      const uint8_t *end)
{
	memset(slot, 0xcc, slot_size);
	memcpy(slot, begin, (size_t)(end - begin));
	return (uint64_t)(uintptr_t)slot;
}

static inline int inproc_run(const char *cmd)
{
	int rc = system(cmd);

	if (rc != 0)
		fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
	return rc;
}

/* Value of an absolute symbol in nm's output, -1 if absent. */
static inline long inproc_nm_value(const char *nm_out, const char *sym)
{
	char pattern[128];
	const char *p;

	snprintf(pattern, sizeof(pattern), " A %s\n", sym);
	p = strstr(nm_out, pattern);
	if (!p)
		return -1;
	while (p > nm_out && p[-1] != '\n')
		p--;
	return strtol(p, NULL, 16);
}

static inline size_t inproc_read_file(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "rb");
	size_t n;

	if (!f)
		return 0;
	n = fread(buf, 1, cap - 1, f);
	fclose(f);
	buf[n] = '\0';
	return n;
}

/* Assemble the source tree's src_rel (a template's `source`, e.g. diag_safety_template()) and check that
 * its .text is bytes[0, len). no_reloc: also check that the object has no relocation (position
 * independent). Fills nm (cap bytes) with nm's output for the caller's symbol checks. */
static inline void inproc_check_template(const char *src_rel, const uint8_t *bytes, size_t len,
					 int no_reloc, char *nm, size_t nm_cap)
{
	char src[4096], dir[] = "/tmp/test_inproc.XXXXXX", cmd[16384], bin[4096];
	const char *cut = strstr(__FILE__, "/tests/inproc_code.h");
	size_t n;

	nm[0] = '\0';
	CHECK(cut != NULL); /* sources are compiled by absolute path */
	if (!cut || !mkdtemp(dir)) {
		CHECK(0);
		return;
	}
	snprintf(src, sizeof(src), "%.*s/%s", (int)(cut - __FILE__), __FILE__, src_rel);
	snprintf(cmd, sizeof(cmd),
		 "cc -c '%s' -o %s/t.o && objcopy -O binary --only-section=.text %s/t.o %s/t.bin && "
		 "nm %s/t.o > %s/t.nm%s%s%s",
		 src, dir, dir, dir, dir, dir,
		 no_reloc ? " && test -z \"$(readelf -r " : "", no_reloc ? dir : "",
		 no_reloc ? "/t.o | grep -i 'relocation section')\"" : "");
	CHECK_EQ_INT(inproc_run(cmd), 0);
	snprintf(cmd, sizeof(cmd), "%s/t.bin", dir);
	n = inproc_read_file(cmd, bin, sizeof(bin));
	snprintf(cmd, sizeof(cmd), "%s/t.nm", dir);
	inproc_read_file(cmd, nm, nm_cap);
	CHECK_EQ_INT(n, len);
	for (size_t i = 0; i < n && i < len; i++) {
		if ((uint8_t)bin[i] != bytes[i]) {
			fprintf(stderr, "template byte %zu: assembled 0x%02x, array 0x%02x\n", i,
				(uint8_t)bin[i], bytes[i]);
			CHECK(0);
			break;
		}
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	inproc_run(cmd);
}

#endif
