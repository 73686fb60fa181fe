/* spec/target: the one grammar of a spec's `target` string. A target is parsed once, here, into
 * a struct diag_target; the spec codec checks it when a spec is added, the dynamic-linker watch
 * reads its MODULE, and lib/sym resolves the struct. What a name means (a clone's own name, an
 * overload, which module) is resolution's business (lib/sym), not the grammar's.
 * Pure string functions on lib/util only: never reads files, symbols or processes.
 *
 * Forms (MODULE is a basename, a full path or a unique prefix, see diag_modmap_by_name):
 *   FUNC                 a C function name (letters, digits, _ . $ @; not starting with a digit),
 *                        e.g. "work", "work.constprop.0", "write@GLIBC_2.2.5"
 *   FUNC+OFF             OFF decimal or 0x hex: an address inside FUNC
 *   ns::Class::meth      a C++ qualified name (or a "::"-suffix of one), also with ~ < > , and
 *                        spaces: "ns::Widget::~Widget", "ns::f<int>"
 *   NAME(PARAMS)         a C++ overload by parameter list: "ns::C::m(int)", "f(char const*)"
 *   GLOB                 a name or qualified name with * ? [ : "handle_*", "ns::*"
 *   FILE:LINE            LINE decimal >= 1: the last lone ':' followed by digits only
 *   0xADDR               a runtime address (never with a MODULE)
 *   MODULE:<any above but 0xADDR>   the first lone ':' (a "::" belongs to a C++ name)
 * Where to add a new form: a new enum diag_target_kind value, its recognition in
 * diag_target_parse (target.c) before the name forms, its resolution in lib/sym/resolve.c,
 * a case in tests/unit/test_target.c, and a line in docs/targets.md. */
#ifndef DIAG_SPEC_TARGET_H
#define DIAG_SPEC_TARGET_H

#include <stdbool.h>
#include <stdint.h>

#include "util/error.h"

/* Longest target the grammar accepts, in bytes (without the NUL). */
#define DIAG_TARGET_MAX 255

enum diag_target_kind {
	DIAG_TARGET_FUNC = 0, /* a C function name, maybe with +OFF */
	DIAG_TARGET_CXX,      /* a C++ qualified name, maybe with (PARAMS) */
	DIAG_TARGET_GLOB,     /* a pattern with * ? [, maybe with (PARAMS) */
	DIAG_TARGET_LINE,     /* FILE:LINE */
	DIAG_TARGET_ADDR,     /* 0xADDR */
};

struct diag_target {
	enum diag_target_kind kind;
	char module[DIAG_TARGET_MAX + 1]; /* MODULE, "" when none */
	char func[DIAG_TARGET_MAX + 1];   /* the name, qualified name or pattern; FILE for LINE */
	char params[DIAG_TARGET_MAX + 1]; /* "(int, char)" as written, "" when not given */
	bool has_off;                     /* FUNC+OFF (only with DIAG_TARGET_FUNC) */
	uint64_t off;
	unsigned line;                    /* DIAG_TARGET_LINE: >= 1 */
	uint64_t addr;                    /* DIAG_TARGET_ADDR */
};

/* Parses text into *out. Returns 0, or -DIAG_E_PARSE with err naming field "target" and a
 * message quoting the target ("target 'work+zz': offset 'zz' is not a decimal or 0x hex
 * number"); *out is written only on success. err may be NULL. */
int diag_target_parse(const char *text, struct diag_target *out, struct diag_error *err);

/* The kind's name for messages and tests: "function", "C++ name", "glob", "FILE:LINE",
 * "address". */
const char *diag_target_kind_name(enum diag_target_kind kind);

#endif
