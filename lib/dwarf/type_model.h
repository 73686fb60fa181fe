/* dwarf/type_model: the C type model shared by the DWARF index (which builds types from DIEs)
 * and the value language (which type-checks and prints with them). Plain data; types are owned
 * by the index that built them (or are static builtins) and are never freed individually. */
#ifndef DIAG_DWARF_TYPE_MODEL_H
#define DIAG_DWARF_TYPE_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum diag_type_kind {
	DIAG_TYPE_VOID = 0,
	DIAG_TYPE_INT,      /* integers and characters (is_char) */
	DIAG_TYPE_BOOL,
	DIAG_TYPE_FLOAT,
	DIAG_TYPE_PTR,      /* target may be NULL: void * */
	DIAG_TYPE_STRUCT,
	DIAG_TYPE_UNION,
	DIAG_TYPE_ARRAY,    /* target = element type, count elements (0: unknown bound) */
	DIAG_TYPE_ENUM,
	DIAG_TYPE_TYPEDEF,
	DIAG_TYPE_CONST,
	DIAG_TYPE_VOLATILE,
	DIAG_TYPE_FUNC,     /* target = return type (NULL: void) */
	DIAG_TYPE_STRING,   /* value-language only: result of str() */
	DIAG_TYPE_BYTES,    /* value-language only: result of bytes() */
};

struct diag_type;

struct diag_member {
	const char *name;              /* NULL for an anonymous struct/union member */
	uint64_t offset;               /* byte offset of the storage unit */
	unsigned bit_size;             /* 0: not a bit field */
	unsigned bit_offset;           /* bits from the least significant bit of the unit */
	const struct diag_type *type;
};

struct diag_enumerator {
	const char *name;
	int64_t value;
};

struct diag_type {
	enum diag_type_kind kind;
	const char *name;              /* "int", tag of struct/union/enum ("req"), typedef name; may be NULL */
	uint64_t size;                 /* bytes */
	bool is_signed;                /* INT, ENUM */
	bool is_char;                  /* INT printed as a character (char, signed char, unsigned char) */
	bool declaration;              /* struct/union without a definition here */
	const struct diag_type *target;
	uint64_t count;
	const struct diag_member *members;
	size_t nmembers;
	const struct diag_enumerator *enums;
	size_t nenums;
};

/* t without typedefs and const/volatile; NULL stays NULL (void). */
static inline const struct diag_type *diag_type_strip(const struct diag_type *t)
{
	while (t && (t->kind == DIAG_TYPE_TYPEDEF || t->kind == DIAG_TYPE_CONST ||
		     t->kind == DIAG_TYPE_VOLATILE))
		t = t->target;
	return t;
}

#endif
