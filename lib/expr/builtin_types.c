/* builtin_types: the expression language's own types (ast.h: expr_t_*), used when there is no
 * DWARF and for literals and results; the parser, the checker and the evaluator share them.
 * Constant data only; never holds a DWARF type. */
#include "expr/ast.h"

const struct diag_type expr_t_void = { .kind = DIAG_TYPE_VOID, .name = "void" };
const struct diag_type expr_t_bool = { .kind = DIAG_TYPE_BOOL, .name = "_Bool", .size = 1 };
const struct diag_type expr_t_char = { .kind = DIAG_TYPE_INT, .name = "char", .size = 1, .is_signed = true, .is_char = true };
const struct diag_type expr_t_schar = { .kind = DIAG_TYPE_INT, .name = "signed char", .size = 1, .is_signed = true, .is_char = true };
const struct diag_type expr_t_uchar = { .kind = DIAG_TYPE_INT, .name = "unsigned char", .size = 1, .is_char = true };
const struct diag_type expr_t_short = { .kind = DIAG_TYPE_INT, .name = "short", .size = 2, .is_signed = true };
const struct diag_type expr_t_ushort = { .kind = DIAG_TYPE_INT, .name = "unsigned short", .size = 2 };
const struct diag_type expr_t_int = { .kind = DIAG_TYPE_INT, .name = "int", .size = 4, .is_signed = true };
const struct diag_type expr_t_uint = { .kind = DIAG_TYPE_INT, .name = "unsigned int", .size = 4 };
const struct diag_type expr_t_long = { .kind = DIAG_TYPE_INT, .name = "long", .size = 8, .is_signed = true };
const struct diag_type expr_t_ulong = { .kind = DIAG_TYPE_INT, .name = "unsigned long", .size = 8 };
const struct diag_type expr_t_llong = { .kind = DIAG_TYPE_INT, .name = "long long", .size = 8, .is_signed = true };
const struct diag_type expr_t_ullong = { .kind = DIAG_TYPE_INT, .name = "unsigned long long", .size = 8 };
const struct diag_type expr_t_float = { .kind = DIAG_TYPE_FLOAT, .name = "float", .size = 4 };
const struct diag_type expr_t_double = { .kind = DIAG_TYPE_FLOAT, .name = "double", .size = 8 };
const struct diag_type expr_t_voidptr = { .kind = DIAG_TYPE_PTR, .size = 8 };
const struct diag_type expr_t_charptr = { .kind = DIAG_TYPE_PTR, .size = 8, .target = &expr_t_char };
const struct diag_type expr_t_string = { .kind = DIAG_TYPE_STRING, .name = "string" };
const struct diag_type expr_t_bytes = { .kind = DIAG_TYPE_BYTES, .name = "bytes" };
