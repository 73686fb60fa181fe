/* sym/cxx: C++ and compiler-clone name handling for symbol resolution: demangling (libstdc++'s
 * __cxa_demangle), splitting a demangled name into qualified name and parameter list, clone
 * suffixes (.isra.N, .part.N, .constprop.N, .cold) and the name matching rules of targets.
 * Pure string functions: never reads files or processes. */
#ifndef DIAG_SYM_CXX_H
#define DIAG_SYM_CXX_H

#include <stdbool.h>
#include <stddef.h>

#define DIAG_CXX_NAME_MAX 512

/* What a function symbol is, for matching. */
struct diag_fname {
	char qual[DIAG_CXX_NAME_MAX];   /* "ns::Widget::add" (C: the name without clone suffixes) */
	char params[DIAG_CXX_NAME_MAX]; /* "(int, int)" plus qualifiers (" const"); "" for C */
	bool cxx;                       /* demangled from a C++ mangled name */
	bool clone;                     /* .isra/.part/.constprop (an entry point of its own) */
	bool cold;                      /* a .cold part: not an entry point */
};

/* The demangled form of a mangled C++ name (malloc'd), or NULL if name is not mangled. */
char *diag_cxx_demangle(const char *name);

/* Classify an ELF symbol name (mangled or not) into *out. */
void diag_fname_parse(const char *symbol, struct diag_fname *out);

/* Classify a demangled name (or a plain C name) into *out. */
void diag_fname_parse_demangled(const char *dem, bool cxx, struct diag_fname *out);

/* Parameter lists equal ignoring white space; a query without qualifiers also matches the
 * same list followed by qualifiers (" const"). */
bool diag_cxx_params_match(const char *query, const char *params);

/* Qualified name equal to query, or ending with "::" + query (gdb's rule: "Widget::add"
 * finds "ns::Widget::add"); template arguments of the last component may be omitted. */
bool diag_cxx_qual_match(const char *qual, const char *query);

#endif
