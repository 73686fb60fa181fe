/* fuzz_expr: libFuzzer target for the value language. Each input is an expression: it is
 * compiled (without DWARF, and with the rich fixture's DWARF when DIAG_FUZZ_ELF names it),
 * and when it compiles, evaluated against a fake stopped thread whose memory is a small buffer
 * (everything else faults) and rendered. The bytes after a NUL in the input, if any, are that
 * memory's first bytes (target memory is hostile input too: floats, pointers, strings). Any crash, leak or sanitizer report is a bug: the
 * language must refuse or survive every input. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "expr/expr.h"

static uint8_t mem[256];

static ssize_t fake_read(void *arg, uint64_t addr, void *buf, size_t len)
{
	(void)arg;
	if (addr < 0x1000 || addr >= 0x1000 + sizeof(mem))
		return -EFAULT;
	size_t n = 0x1000 + sizeof(mem) - addr;
	n = n < len ? n : len;
	memcpy(buf, mem + (addr - 0x1000), n);
	return (ssize_t)n;
}

static void run(const char *src, const struct diag_expr_scope *sc)
{
	static struct diag_expr_result r;
	static char text[8192];
	diag_regs regs = { 0 };
	diag_reg_set(&regs, diag_reg_lookup("rdi", NULL), 0x1000);
	diag_reg_set(&regs, diag_reg_lookup("rsi", NULL), 0x1010);
	diag_reg_set(&regs, diag_reg_lookup("rdx", NULL), 16);
	diag_reg_set(&regs, diag_reg_lookup("rsp", NULL), 0x1080);
	struct diag_expr *x = NULL;
	struct diag_error err = { 0 };
	if (diag_expr_compile(src, sc, &x, &err) != 0)
		return;
	struct diag_expr_ctx ctx = { .pid = 1, .tid = 1, .regs = &regs, .read_mem = fake_read, .comm = "fuzz" };
	diag_expr_eval(x, &ctx, &r);
	struct diag_value v;
	diag_expr_render(x, &r, text, sizeof(text), &v);
	(void)diag_expr_truthy(&r);
	diag_expr_free(x);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct diag_dwarf_cache *dc;
	static const char *elf;
	static uint64_t pc;
	for (size_t i = 0; i < sizeof(mem); i++)
		mem[i] = (uint8_t)(i * 7 + 1);
	const uint8_t *nul = memchr(data, 0, size);
	if (nul) {
		size_t n = size - (size_t)(nul + 1 - data);
		memcpy(mem, nul + 1, n < sizeof(mem) ? n : sizeof(mem));
		size = (size_t)(nul - data);
	}
	if (!dc) {
		elf = getenv("DIAG_FUZZ_ELF");
		const char *p = getenv("DIAG_FUZZ_PC");
		pc = p ? strtoull(p, NULL, 0) : 0;
		if (diag_dwarf_cache_new(&dc))
			return 0;
	}
	char *src = malloc(size + 1);
	if (!src)
		return 0;
	memcpy(src, data, size);
	src[size] = '\0';
	struct diag_expr_scope sc = { .pid = 1, .elf_path = "/fuzz/none", .build_id = "", .pc = 0x401000,
				      .event = (size & 1) ? DIAG_EVENT_RETURN : DIAG_EVENT_CALL };
	run(src, &sc);
	if (elf && pc) {
		sc.elf_path = elf;
		sc.pc = pc;
		sc.dwarf = dc;
		run(src, &sc);
	}
	free(src);
	return 0;
}
